"""select_data.py as worked examples: reward tables in, statistics and keep decisions out; then one real run."""

import builtins
import io
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import config
import data
import model as vlm
import rewards
import schema
import select_data as sd
import selection_log
import video

ROOT = Path(__file__).resolve().parents[1]

# A reward table has one row per completion: (total, format, accuracy, iou, right), as rewards.score computes them
# (total = 0.5 * accuracy + 0.5 * format; tvg: accuracy = IoU; gqa: accuracy = (right + IoU) / 2).
MCQ_HALF = [[1.0, 1, 1, 0, 1], [0.5, 1, 0, 0, 0], [1.0, 1, 1, 0, 1], [0.5, 1, 0, 0, 0]]  # right 2 of 4
MCQ_ALL_RIGHT = [[1.0, 1, 1, 0, 1]] * 4
MCQ_ALL_WRONG_FORMAT_VARIES = [[0.5, 1, 0, 0, 0], [0.0, 0, 0, 0, 0], [0.5, 1, 0, 0, 0], [0.0, 0, 0, 0, 0]]
TVG_SPREAD = [[0.6, 1, 0.2, 0.2, 0], [0.8, 1, 0.6, 0.6, 0], [0.6, 1, 0.2, 0.2, 0], [0.8, 1, 0.6, 0.6, 0]]
TVG_FLAT = [[0.75, 1, 0.5, 0.50, 0], [0.76, 1, 0.52, 0.52, 0], [0.74, 1, 0.48, 0.48, 0], [0.75, 1, 0.5, 0.50, 0]]


def gqa_table(rights, ious):
    """gqa rows from the option outcome and IoU of each completion (format 1)."""
    return [[0.5 * (r + iou) / 2 + 0.5, 1, (r + iou) / 2, iou, r] for r, iou in zip(rights, ious)]


def test_reward_stats_worked_example():
    """Mean and sample std (N - 1 = 3, as GRPO's advantage) of each reward part over the G = 4 completions: an mcq
    sample right 2 of 4 times has accuracy std sqrt(4 x 0.25 / 3) = 0.577; a tvg sample with IoU 0.2, 0.6, 0.2,
    0.6 has IoU std sqrt(4 x 0.04 / 3) = 0.231, and one with IoU 0.48-0.52 only sqrt(0.0008 / 3) = 0.016."""
    s = sd.reward_stats(MCQ_HALF)
    assert s["group_size"] == 4
    assert s["total_mean"] == 0.75 and s["total_std"] == pytest.approx(math.sqrt(4 * 0.25 ** 2 / 3))  # ±0.25
    assert s["format_mean"] == 1.0 and s["format_std"] == 0.0
    assert s["accuracy_mean"] == 0.5 and s["accuracy_std"] == pytest.approx(math.sqrt(1 / 3))
    assert s["n_right"] == 2 and s["frac_right"] == 0.5

    assert s["right_mean"] == 0.5 and s["iou_std"] == 0.0

    s = sd.reward_stats(TVG_SPREAD)
    assert s["iou_mean"] == pytest.approx(0.4) and s["iou_std"] == pytest.approx(math.sqrt(0.16 / 3))
    assert s["iou_range"] == pytest.approx(0.4)
    s = sd.reward_stats(TVG_FLAT)
    assert s["iou_std"] == pytest.approx(math.sqrt(0.0008 / 3)) and s["iou_range"] == pytest.approx(0.04)


def test_keep_rule_mcq():
    """An mcq sample is kept when 0 < #right < G: right half the time is kept; always right, or always wrong while
    only the format varies, is dropped (every completion would get the same accuracy, so no signal on the answer)."""
    assert sd.verdict(sd.reward_stats(MCQ_HALF), "mcq", 0.1) == "kept"
    assert sd.verdict(sd.reward_stats(MCQ_ALL_RIGHT), "mcq", 0.1) == "always_right"
    # the total reward varies (format), but the option never does: dropped, selection looks at correctness
    assert sd.verdict(sd.reward_stats(MCQ_ALL_WRONG_FORMAT_VARIES), "mcq", 0.1) == "always_wrong"


def test_keep_rule_tvg_threshold():
    """A tvg sample is kept when its IoU std is strictly above min_iou_std: IoU std 0.231 is kept at 0.1, 0.016 is
    "low_spread" at 0.1 but kept at 0.01."""
    assert sd.verdict(sd.reward_stats(TVG_SPREAD), "tvg", 0.1) == "kept"
    assert sd.verdict(sd.reward_stats(TVG_FLAT), "tvg", 0.1) == "low_spread"
    assert sd.verdict(sd.reward_stats(TVG_FLAT), "tvg", 0.01) == "kept"  # 0.0163 > 0.01
    assert sd.verdict(sd.reward_stats(TVG_SPREAD), "tvg", math.sqrt(0.16 / 3) + 1e-9) == "low_spread"  # strictly >


def test_keep_rule_gqa_either_part():
    """A gqa sample is kept when either part varies: the option's correctness, or the IoU beyond min_iou_std;
    neither varying, it is always right or always wrong by its option."""
    right_spread = gqa_table([1, 1, 1, 1], [0.1, 0.7, 0.1, 0.7])  # IoU std 0.35
    varies_flat = gqa_table([1, 0, 1, 1], [0.3] * 4)
    right_flat = gqa_table([1, 1, 1, 1], [0.3, 0.32, 0.3, 0.28])  # IoU std 0.016
    wrong_flat = gqa_table([0, 0, 0, 0], [0.3] * 4)
    assert sd.verdict(sd.reward_stats(right_spread), "gqa", 0.1) == "kept"  # IoU varies
    assert sd.verdict(sd.reward_stats(varies_flat), "gqa", 0.1) == "kept"  # option varies
    assert sd.verdict(sd.reward_stats(right_flat), "gqa", 0.1) == "always_right"
    assert sd.verdict(sd.reward_stats(wrong_flat), "gqa", 0.1) == "always_wrong"


def test_select_top_n_and_counts():
    """select() gives every row a verdict; top_n keeps the N kept rows of largest total-reward std (ties: file
    order) and marks the rest "beyond_top_n"; a failed video is counted and named, never kept."""
    results = [
        {"id": "a", "task": "mcq", "rewards": MCQ_HALF},  # total std 0.29
        {"id": "b", "task": "tvg", "rewards": TVG_SPREAD},  # total std 0.12
        {"id": "c", "task": "mcq", "rewards": MCQ_ALL_RIGHT},
        {"id": "d", "task": "tvg", "failed": "cannot open video d.mp4"},
        {"id": "e", "task": "mcq", "rewards": MCQ_HALF},  # ties with a: a comes first in the file
        {"id": "f", "task": "tvg", "rewards": TVG_FLAT},
    ]
    sel = sd.select(results, min_iou_std=0.1)
    assert [r["verdict"] for r in sel] == ["kept", "kept", "always_right", "failed", "kept", "low_spread"]
    sel = sd.select(results, min_iou_std=0.1, top_n=2)
    assert [r["verdict"] for r in sel] == ["kept", "beyond_top_n", "always_right", "failed", "kept", "low_spread"]
    counts = sd.task_counts(sel)
    assert counts["mcq"] == {"seen": 3, "kept": 2, "always_right": 1, "always_wrong": 0, "low_spread": 0,
                             "beyond_top_n": 0, "failed": 0, "failed_ids": []}
    assert counts["tvg"] == {"seen": 3, "kept": 0, "always_right": 0, "always_wrong": 0, "low_spread": 1,
                             "beyond_top_n": 1, "failed": 1, "failed_ids": ["d"]}
    table = sd.counts_table(counts)
    assert table.splitlines()[0].split() == ["task", "seen", *sd.VERDICTS, "failed"]
    assert table.splitlines()[-1].split() == ["all", "6", "2", "1", "0", "1", "1", "1"]


def test_write_outputs_copies_original_lines(tmp_path):
    lines = {"a": '{"id": "a",  "video": "videos/a.mp4"}', "b": '{"id":"b","video":"videos/b.mp4"}'}
    sel = sd.select([{"id": "a", "task": "mcq", "rewards": MCQ_ALL_RIGHT},
                     {"id": "b", "task": "mcq", "rewards": MCQ_HALF}], min_iou_std=0.1)
    out = tmp_path / "sel.jsonl"
    settings = {"group_size": 4, "data": str(tmp_path / "train.jsonl")}  # the data's folder: lines copied as written
    report = sd.write_outputs(sel, lines, out, settings)
    assert out.read_text() == lines["b"] + "\n"
    paths = sd.out_paths(out)
    assert json.loads(paths["report"].read_text()) == report
    assert report["counts"]["mcq"]["kept"] == 1 and report["settings"] == settings
    assert paths["hist"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_outputs_elsewhere_rewrites_relative_video_paths(tmp_path):
    """--out in another folder than the data: a relative video path is rewritten to point at the same file from
    there; an absolute one, and every other field, stay as they were."""
    lines = {"a": '{"id": "a", "video": "videos/a.mp4", "task": "mcq"}', "b": '{"id": "b", "video": "/v/b.mp4"}'}
    sel = sd.select([{"id": "a", "task": "mcq", "rewards": MCQ_HALF},
                     {"id": "b", "task": "mcq", "rewards": MCQ_HALF}], min_iou_std=0.1)
    out = tmp_path / "selected" / "sel.jsonl"
    out.parent.mkdir()
    sd.write_outputs(sel, lines, out, {"data": str(tmp_path / "data" / "train.jsonl")})
    a, b = out.read_text().splitlines()
    assert json.loads(a) == {"id": "a", "video": "../data/videos/a.mp4", "task": "mcq"}
    assert (out.parent / json.loads(a)["video"]).resolve() == (tmp_path / "data" / "videos" / "a.mp4").resolve()
    assert b == lines["b"]


# ----------------------------------------------------------------------------------------------------------------
# end to end: the real sampler on toy videos with a tiny model


def short_target(row):
    """The shortest well-formed completion for a row: empty think, then the answer in rewards.ANSWER_FORMATS."""
    start, end = row.get("segment", (0, 0))
    answer = rewards.ANSWER_FORMATS[row["task"]].format(letter=row.get("answer"), start=start, end=end)
    return f"<think></think><answer>{answer}</answer>"


@pytest.fixture(scope="module")
def warm_model(tmp_path_factory, toy_dir, toy_tok):
    """A tiny Qwen2.5-VL, 60 Adam steps of supervised short targets on the 5 toy train rows: it then writes
    `<think></think><answer>..</answer>` often, and at temperature 1 its letters and times vary (a random init
    never reaches the answer tags, so every reward would be 0 and nothing would vary)."""
    torch.manual_seed(0)
    policy = vlm.load_model(vlm.tiny_config("qwen2_5_vl", toy_tok))
    rows = schema.load_jsonl(str(toy_dir / "train.jsonl"))
    samples = [data.prepare_sample(r, toy_tok, "qwen2_5_vl", data.VideoConfig(max_frames=4)) for r in rows]
    eos = toy_tok.convert_tokens_to_ids("<|im_end|>")
    packed = vlm.pack([(s, [torch.tensor(toy_tok.encode(short_target(s.row)) + [eos])]) for s in samples],
                         policy.config)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(60):
        loss = -vlm.completion_logprobs(policy, packed).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("warm")
    policy.save_pretrained(path)
    toy_tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def toy_with_bad_rows(tmp_path_factory, toy_dir):
    """The 5 toy train rows + a row whose video does not decode + a row whose video is missing."""
    out = tmp_path_factory.mktemp("bad")
    (out / "broken.mp4").write_bytes(b"\x00" * 64)
    bad = [{"id": "broken", "video": "broken.mp4", "task": "mcq", "question": "?", "options": ["x", "y"],
            "answer": "A", "duration": 4.0},
           {"id": "missing", "video": "nope.mp4", "task": "tvg", "question": "?", "segment": [1, 2],
            "duration": 4.0}]
    toy = (toy_dir / "train.jsonl").read_text().replace('"videos/', f'"{toy_dir}/videos/').splitlines()
    lines = toy[:2] + [json.dumps(bad[0])] + toy[2:] + [json.dumps(bad[1])]
    (out / "train.jsonl").write_text("\n".join(lines) + "\n")
    return out / "train.jsonl"


def run_select(model, data_file, out, *extra):
    sd.main(["--model", str(model), "--data", str(data_file), "--out", str(out), "--group-size", "4",
             "--max-new-tokens", "16", "--batch-size", "2", "--max-frames", "4", "--min-iou-std", "0.05", "--seed", "3",
             *extra])  # seed 3:
    # on these frames the warm model's samples split, 2 of 5 vary (test_select_end_to_end needs both kinds)
    return {k: p.read_bytes() for k, p in sd.out_paths(out).items()}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, warm_model, toy_with_bad_rows):
    out = tmp_path_factory.mktemp("sel") / "selected.jsonl"
    return out, run_select(warm_model, toy_with_bad_rows, out)


def test_select_end_to_end(first_run, toy_with_bad_rows):
    out, files = first_run
    header, *logged = [json.loads(line) for line in files["partial"].decode().splitlines()]
    assert header["settings"]["group_size"] == 4
    tables = {r["id"]: r["rewards"] for r in logged if "rewards" in r}
    assert sorted(tables) == ["toy-00000", "toy-00001", "toy-00002", "toy-00003", "toy-00004"]
    assert all(len(t) == 4 and all(len(row) == 5 for row in t) for t in tables.values())
    assert [r["id"] for r in logged if r.get("failed")] == ["broken"]  # the missing video never reaches sampling

    # kept == the samples whose recorded rewards vary, by the rule worked out in the tests above
    tasks = {r["id"]: r["task"] for r in logged}
    def varies(i):
        right = {row[4] for row in tables[i]}
        spread = sd.reward_stats(tables[i])["iou_std"] > 0.05
        return {"mcq": len(right) > 1, "tvg": spread, "gqa": len(right) > 1 or spread}[tasks[i]]
    wanted = [i for i in tables if varies(i)]
    assert 0 < len(wanted) < 5  # the warm model is neither always right nor always wrong
    original = {json.loads(line)["id"]: line for line in toy_with_bad_rows.read_text().splitlines()}
    assert files["kept"].decode() == "".join(original[i] + "\n" for i in wanted)

    report = json.loads(files["report"])
    counts = report["counts"]
    assert sum(c["seen"] for c in counts.values()) == 7
    assert counts["mcq"]["failed_ids"] == ["broken"] and counts["tvg"]["failed_ids"] == ["missing"]
    assert sum(c["kept"] for c in counts.values()) == len(wanted)
    stats = {s["id"]: s["stats"] for s in report["samples"] if s["stats"]}
    assert stats == {i: sd.reward_stats(t) for i, t in tables.items()}
    assert files["hist"][:4] == b"\x89PNG"


def test_select_resume_recomputes_only_missing(first_run, warm_model, toy_with_bad_rows, tmp_path, monkeypatch):
    out, files = first_run
    resumed = tmp_path / out.name
    head = files["partial"].decode().splitlines()[:3]  # settings + the first 2 results
    sd.out_paths(resumed)["partial"].write_text("\n".join(head) + "\n" + head[-1][:10])  # + a torn line
    sampled = []
    real_sample = vlm.sample
    monkeypatch.setattr(vlm, "sample", lambda m, prompts, *a, **kw: sampled.extend(p.id for p in prompts)
                        or real_sample(m, prompts, *a, **kw))
    again = run_select(warm_model, toy_with_bad_rows, resumed)
    done = {json.loads(line)["id"] for line in head[1:]}
    appended = [json.loads(line)["id"] for line in again["partial"].decode().splitlines()[3:]]
    assert sorted(appended) == sorted({"toy-00000", "toy-00001", "broken", "toy-00002", "toy-00003",
                                       "toy-00004"} - done)
    assert again["partial"].decode().splitlines()[:3] == head  # torn line dropped, nothing recomputed
    assert set(sampled) - {"toy-00000", "toy-00001", "toy-00002", "toy-00003", "toy-00004"} == set()
    assert len(sampled) < 5  # the finished batch was not sampled again
    assert again["kept"] == files["kept"] and again["report"] == files["report"]  # same as never interrupted

    with pytest.raises(SystemExit, match="other settings"):  # a log from other sampling settings is refused
        run_select(warm_model, toy_with_bad_rows, resumed, "--temperature", "0.7")


def test_select_torchrun_two_ranks_matches_one(first_run, warm_model, toy_with_bad_rows, tmp_path):
    """Two CPU ranks (gloo): batches dealt round-robin, results gathered on rank 0 -> the same selection."""
    out, files = first_run
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(ROOT / "select_data.py"), "--model", str(warm_model), "--data", str(toy_with_bad_rows),
           "--out", str(tmp_path / "selected.jsonl"), "--group-size", "4", "--max-new-tokens", "16",
           "--batch-size", "2", "--max-frames", "4", "--min-iou-std", "0.05", "--seed", "3"]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, timeout=300)
    paths = sd.out_paths(tmp_path / "selected.jsonl")
    assert paths["kept"].read_bytes() == files["kept"]
    two, one = json.loads(paths["report"].read_text()), json.loads(files["report"])
    assert two["settings"]["world"] == 2
    assert two["counts"] == one["counts"] and two["samples"] == one["samples"]


def test_after_a_resume_the_batches_left_are_dealt_round_robin():
    """6 batches of 2; a run on 2 ranks was killed after rank 0 finished its batches 0, 2, 4. Dealing all batches
    and skipping the done ones would give rank 1 all three left (1, 3, 5) and rank 0 none; dealing what is left
    gives rank 0 batches 1 and 5, rank 1 batch 3. A batch with one sample missing is left to do (batch 3 here)."""
    rows = [{"id": c} for c in "abcdefghijkl"]
    chunks = [rows[i:i + 2] for i in range(0, 12, 2)]
    done = dict.fromkeys("ab" "ef" "ij" "g")  # batches 0, 2, 4 and half of batch 3
    assert [selection_log.deal(chunks, done, rank, 2) for rank in (0, 1)] == [[1, 5], [3]]
    assert selection_log.deal(chunks, {}, 0, 1) == [0, 1, 2, 3, 4, 5]


def test_selection_and_eval_see_the_videos_as_training_does():
    """Selection scores a sample as a GRPO step would: same frames, same pixels, by default, in all three tools."""
    import eval as ev

    sel = sd.parse_args(["--model", "m", "--data", "d.jsonl", "--out", "o.jsonl"])
    test = ev.parse_args(["--model", "m", "--data", "d.jsonl"])
    configs = [video.video_config(args) for args in (sel, test, config.Config())]
    assert configs == [video.VideoConfig()] * 3


def test_resume_log_tries_failed_videos_again(tmp_path):
    """A video that failed to load (and may since have been fixed) is not counted as done on resume."""
    log = tmp_path / "sel.partial.jsonl"
    log.write_text(json.dumps({"settings": {"group_size": 4}, "model": "m1"}) + "\n"
                   + json.dumps({"id": "a", "task": "mcq", "key": "ka", "rewards": []}) + "\n"
                   + json.dumps({"id": "b", "task": "mcq", "key": "kb", "failed": "truncated file"}) + "\n")
    done = selection_log.open_partial(log, {"group_size": 4}, "m1", {"a": "ka", "b": "kb"}, rank=0, world=1)
    assert list(done) == ["a"]


class DiesHalfway:
    """A file open for writing whose first write stops halfway and fails, as a kill or a full disk would."""

    def __init__(self, file):
        self.file = file

    def write(self, text):
        self.file.write(text[:len(text) // 2])
        self.file.flush()
        raise OSError(28, "No space left on device")

    def writelines(self, lines):
        self.write("".join(lines))

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_a_kill_while_the_resume_log_is_rewritten_leaves_the_old_log_whole(tmp_path, monkeypatch):
    """Each start rewrites the resume log (it drops a torn last line). It was rewritten in place: a kill in the
    middle left it cut short, or 0 bytes, and every sampled result was gone. It is now written to a new file that
    is renamed over the old one: here the write dies halfway and the old log is intact, and the next start resumes
    from it."""
    log = tmp_path / "sel.partial.jsonl"
    log.write_text(json.dumps({"settings": {"group_size": 4}, "model": "m1"}) + "\n"
                   + json.dumps({"id": "a", "task": "mcq", "key": "ka", "rewards": [[1.0, 1, 1, 0, 1]]}) + "\n"
                   + '{"id": "b", "task": "mc')  # torn by an earlier kill: this start rewrites the log
    before = log.read_bytes()
    real_open = io.open

    def dying_open(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        return DiesHalfway(opened) if "w" in mode and str(file).startswith(str(tmp_path)) else opened

    with monkeypatch.context() as patch:
        patch.setattr(io, "open", dying_open)  # pathlib's write_text opens through io.open
        patch.setattr(builtins, "open", dying_open)
        with pytest.raises(OSError, match="No space left on device"):
            selection_log.open_partial(log, {"group_size": 4}, "m1", {"a": "ka", "b": "kb"}, rank=0, world=1)
    assert log.read_bytes() == before
    done = selection_log.open_partial(log, {"group_size": 4}, "m1", {"a": "ka", "b": "kb"}, rank=0, world=1)
    assert list(done) == ["a"]


@pytest.fixture
def own_copy(tmp_path, toy_with_bad_rows):
    """toy_with_bad_rows in a folder of this test's own, so that it can be edited in place."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(toy_with_bad_rows.parent / "broken.mp4", folder)
    shutil.copy(toy_with_bad_rows, folder / "train.jsonl")
    return folder / "train.jsonl"


def logged_ids(files):
    return [json.loads(line)["id"] for line in files["partial"].decode().splitlines()[1:]]


def test_rows_changed_since_they_were_logged_are_sampled_again(warm_model, own_copy, tmp_path, capsys):
    """Every mcq answer and tvg segment of the file changed in place, ids kept, same --out: those samples are
    sampled again (their logged rewards scored other ground truth), the unchanged gqa row is not, and the result is
    a fresh run's on the changed file. Batches of 2: [toy-00000, toy-00001] [broken, toy-00002] [toy-00003,
    toy-00004]; `broken` fails to load and is tried on every run."""
    out = tmp_path / "sel" / "selected.jsonl"
    before = run_select(warm_model, own_copy, out)
    rows = [json.loads(line) for line in own_copy.read_text().splitlines()]
    for row in rows:
        row.update({"mcq": {"answer": "B" if row.get("answer") == "A" else "A"}, "tvg": {"segment": [0.0, 0.75]},
                    "gqa": {}}[row["task"]])
    own_copy.write_text("".join(json.dumps(row) + "\n" for row in rows))
    after = run_select(warm_model, own_copy, out)
    fresh = run_select(warm_model, own_copy, tmp_path / "fresh" / "selected.jsonl")
    assert logged_ids(after)[len(logged_ids(before)):] == ["toy-00000", "toy-00001", "broken", "toy-00003",
                                                           "toy-00004"]
    assert "4 sample(s) changed since" in capsys.readouterr().out
    assert after["kept"] == fresh["kept"] and after["report"] == fresh["report"]


def test_a_log_written_by_other_weights_is_refused(warm_model, own_copy, tmp_path, toy_tok):
    """The checkpoint at --model replaced by another one (same path, same size): the log is refused, not reused."""
    model, out = tmp_path / "model", tmp_path / "sel" / "selected.jsonl"
    shutil.copytree(warm_model, model)
    run_select(model, own_copy, out)
    torch.manual_seed(1)
    vlm.load_model(vlm.tiny_config("qwen2_5_vl", toy_tok)).save_pretrained(model)
    with pytest.raises(SystemExit, match="written by other weights than those now at --model .weights hash"):
        run_select(model, own_copy, out)


def test_a_video_rewritten_with_its_size_and_mtime_kept_is_sampled_again(tmp_path):
    """The row's key follows its video's bytes: other bytes of the same size written in place with the old mtime
    put back (as `cp -p` or `rsync -t` would) give another key, so the logged rewards are not reused."""
    video_file = tmp_path / "v.mp4"
    video_file.write_bytes(b"a" * 100)
    row = {"id": "v", "video": str(video_file)}
    line = json.dumps(row)
    before, stat = selection_log.row_key(line, row), video_file.stat()
    assert selection_log.row_key(line, row) == before  # unchanged: the same key
    time.sleep(0.05)  # past the file system's timestamp tick
    video_file.write_bytes(b"b" * 100)
    os.utime(video_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert video_file.stat().st_size == stat.st_size and video_file.stat().st_mtime_ns == stat.st_mtime_ns
    assert selection_log.row_key(line, row) != before
