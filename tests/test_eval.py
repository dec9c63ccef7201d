"""eval.py as worked examples: per-sample tables in, metrics out; then a real model on toy videos."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import data
import eval as ev
import metrics
import model as vlm
import schema
from test_rewards import official_iou, official_question

ROOT = Path(__file__).resolve().parents[1]


def test_mcq_metrics():
    assert metrics.mcq_metrics([True, False, True, True]) == {"n": 4, "accuracy": 0.75}
    assert metrics.mcq_metrics([]) == {"n": 0, "accuracy": None}  # no samples: None, never 0/0


def test_grounding_metrics_worked_example():
    # IoU 0.3 counts for R@0.3 (>=); the unparseable answer is in the table as IoU 0
    m = metrics.grounding_metrics([0.8, 0.55, 0.3, 0.0])
    assert m == {"n": 4, "R@0.3": 0.75, "R@0.5": 0.5, "R@0.7": 0.25, "mIoU": pytest.approx(1.65 / 4)}
    assert metrics.grounding_metrics([0.0, 0.0]) == {"n": 2, "R@0.3": 0.0, "R@0.5": 0.0, "R@0.7": 0.0, "mIoU": 0.0}
    assert metrics.grounding_metrics([]) == {"n": 0, "R@0.3": None, "R@0.5": None, "R@0.7": None, "mIoU": None}


def test_gqa_metrics_worked_example():
    correct = [True, True, False, True]
    ious = [0.6, 0.2, 0.9, 0.0]
    iops = [0.9, 0.4, 1.0, 0.0]
    m = metrics.gqa_metrics(correct, ious, iops)
    assert m["n"] == 4 and m["accuracy"] == 0.75
    assert m["mIoU"] == pytest.approx(0.425) and m["mIoP"] == pytest.approx(0.575)
    assert (m["IoP@0.3"], m["IoP@0.5"]) == (0.75, 0.5)  # samples 0, 1, 2 and samples 0, 2
    assert (m["IoU@0.3"], m["IoU@0.5"]) == (0.5, 0.5)  # samples 0 and 2
    assert m["Acc@GQA"] == 0.25  # right AND IoP >= 0.5: only sample 0 (sample 2 is grounded but wrong)
    assert metrics.gqa_metrics([], [], []) == {"n": 0, "accuracy": None, "Acc@GQA": None, "mIoP": None, "IoP@0.3": None,
                                          "IoP@0.5": None, "mIoU": None, "IoU@0.3": None, "IoU@0.5": None}


def test_flatten_and_table():
    m = {"n_rows": 3, "n_failed": 1, "tvg": {"n": 2, "n_failed": 1, "R@0.5": 0.5, "mIoU": None},
         "unparseable_ids": ["x"], "failed": [{"id": "y", "task": "tvg", "reason": "no video"}]}
    assert metrics.flatten(m) == {"n_rows": 3, "n_failed": 1, "tvg/n": 2, "tvg/n_failed": 1, "tvg/R@0.5": 0.5,
                             "tvg/mIoU": None}
    lines = metrics.metrics_table(m).splitlines()
    assert lines[:6] == ["n_rows                       3", "n_failed                     1",
                         "tvg/n                        2", "tvg/n_failed                 1",
                         "tvg/R@0.5                50.00", "tvg/mIoU                     -"]
    assert lines[6:] == ["unparseable: x", "failed: y (no video)"]


# ----------------------------------------------------------------------------------------------------------------
# completions -> records -> metrics, with literal completions

MCQ = {"id": "m", "task": "mcq", "options": ["red", "green", "blue"], "answer": "B"}
TVG = {"id": "t", "task": "tvg", "segment": [2.0, 6.0], "duration": 8.0}
GQA = {"id": "g", "task": "gqa", "options": ["red", "green"], "answer": "A", "segment": [2.0, 6.0], "duration": 8.0}


def test_score_completion_worked_examples():
    r = metrics.score_completion("<think>it moves left</think><answer>B</answer><|im_end|>", MCQ)
    assert (r["format"], r["option"], r["correct"], r["parsed"]) == (1.0, "B", True, True)
    r = metrics.score_completion("<answer>green</answer>", MCQ)  # option text counts; no <think>: format 0
    assert (r["format"], r["option"], r["correct"], r["parsed"]) == (0.0, "B", True, True)
    r = metrics.score_completion("<think></think><answer>4.0 to 8.0</answer>", TVG)
    assert r["segment"] == [4.0, 8.0] and r["iou"] == 2 / 6 and r["iop"] == 0.5  # ∩ [4, 6], ∪ [2, 8]
    r = metrics.score_completion("<think></think><answer>A, 3.0 to 5.0</answer>", GQA)
    assert (r["correct"], r["iou"], r["iop"], r["parsed"]) == (True, 0.5, 1.0, True)
    r = metrics.score_completion("<think></think><answer>A</answer>", GQA)  # letter without a segment: not parsed
    assert (r["correct"], r["iou"], r["parsed"]) == (True, 0.0, False)
    r = metrics.score_completion("B, 2.0 to 6.0", GQA)  # no answer tags: nothing is read, as in rewards.score
    assert (r["correct"], r["iou"], r["iop"], r["parsed"]) == (False, 0.0, 0.0, False)


def test_summarize_counts_and_all_unparseable():
    texts = {"m": "<think></think><answer>B</answer>", "t": "<think></think><answer>4.0 to 8.0</answer>",
             "g": "<think></think><answer>A, 3.0 to 5.0</answer>"}
    records = [metrics.score_completion(texts[row["id"]], row) for row in (MCQ, TVG, GQA)]
    m = metrics.summarize(records, [{"id": "v", "task": "tvg", "reason": "cannot read video"}])
    assert (m["n_rows"], m["n_scored"], m["n_failed"], m["n_unparseable"]) == (4, 3, 1, 0)
    assert m["mcq"] == {"n": 1, "n_failed": 0, "accuracy": 1.0}
    assert (m["tvg"]["n"], m["tvg"]["n_failed"]) == (1, 1)  # the metrics are over the 1 scored row of 2
    assert m["tvg"]["R@0.3"] == 1.0 and m["tvg"]["R@0.5"] == 0.0  # IoU 1/3
    assert m["gqa"]["Acc@GQA"] == 1.0 and m["format_error_rate"] == 0.0 and m["truncated_rate"] == 0.0
    assert m["failed"] == [{"id": "v", "task": "tvg", "reason": "cannot read video"}]
    # the training reward on the split, 0.5 accuracy + 0.5 format: mcq 1, tvg IoU 1/3, gqa (1 + 1/2) / 2
    assert abs(m["reward"] - (1.0 + (0.5 / 3 + 0.5) + (0.375 + 0.5)) / 3) < 1e-9

    garbage = [metrics.score_completion("no idea", row) for row in (MCQ, TVG, GQA)]
    m = metrics.summarize(garbage, [])
    assert m["n_unparseable"] == 3 and m["unparseable_ids"] == ["m", "t", "g"] and m["format_error_rate"] == 1.0
    assert m["mcq"]["accuracy"] == 0.0 and m["tvg"]["mIoU"] == 0.0 and m["gqa"]["Acc@GQA"] == 0.0

    m = metrics.summarize([], [{"id": "line 3", "task": "?", "reason": "not valid JSON"}])  # nothing scored
    assert (m["n_rows"], m["n_failed"], m["format_error_rate"]) == (1, 1, None) and "mcq" not in m
    m = metrics.summarize([], [{"id": "v", "task": "gqa", "reason": "cannot read video"}])  # a task with no scored row
    assert m["gqa"]["n"] == 0 and m["gqa"]["n_failed"] == 1 and m["gqa"]["Acc@GQA"] is None


# ----------------------------------------------------------------------------------------------------------------
# the metrics equal the official evaluations' on the same answers (their formulas transcribed in test_rewards.py)

FPJ9D = {"task": "tvg", "segment": [25.8, 34.0], "duration": 33.4}  # Charades-STA: ends past the decoded video
AT_END = {"task": "tvg", "segment": [24.3, 30.0], "duration": 30.0}
NEXTGQA_7 = {"task": "gqa", "segment": [[20.9, 22.7], [23.8, 26.0], [34.4, 35.8], [50.5, 57.5], [58.5, 63.6]],
             "options": ["give him catalogue", "show him a video", "show him the watch", "dismount his bicycle",
                         "give him the watch strap"], "answer": "C", "duration": 63.6}  # 2435100235 qid 7
NEXTGQA_2 = {"task": "gqa", "segment": [[0.0, 6.1], [9.2, 21.5]], "options": ["speech script",
             "hold painted picture", "birthday card", "draw on it", "set up fire"], "answer": "A",
             "duration": 21.45}  # 2482028659 qid 2: gsub's duration is 21, the video 643 frames at 29.97 fps
ANSWERS = [  # (row, answer): overshooting the video, one of several spans, zero length, unparseable
    (FPJ9D, "25.8 to 33.4"), (FPJ9D, "25.8 to 34.0"), (FPJ9D, "25 to 40"), (FPJ9D, "30 to 30"), (FPJ9D, "soon"),
    (AT_END, "25 to 40"), (AT_END, "24.3 to 30"), (AT_END, "20 to 28"), (AT_END, "10 to 20"),
    (NEXTGQA_7, "C, 20.9 to 63.6"), (NEXTGQA_7, "C, 50 to 60"), (NEXTGQA_7, "A, 50.5 to 57.5"),
    (NEXTGQA_7, "C, 55 to 55"), (NEXTGQA_7, "C, 36 to 50"), (NEXTGQA_7, "C, 21 to 27"),
    (NEXTGQA_2, "A, 0 to 21.5"), (NEXTGQA_2, "A, 9 to 25"), (NEXTGQA_2, "A, 7 to 7"), (NEXTGQA_2, "B, 3 to 3"),
    (NEXTGQA_2, "A, 5 to 12"),
]


def official_charades(gts, preds):
    """Temporal-R1's `eval_tvg` / lmms-eval Charades-STA main loop, in words: IoU of each answer (an unparseable
    one is replaced by a span 10 s after the ground truth, so IoU 0); R@m = count(IoU >= m) / count; mIoU the mean."""
    ious = [official_iou(gt, pred if pred else (gt[1] + 10, gt[1] + 20)) for gt, pred in zip(gts, preds)]
    return {**{f"R@{m}": sum(iou >= m for iou in ious) / len(ious) for m in (0.3, 0.5, 0.7)},
            "mIoU": sum(ious) / len(ious)}


def official_nextgqa(spans, preds, right):
    """NExT-GQA's `eval_ground` main loop, in words: per question the max IoU and max IoP over its spans; TIoP@m and
    TIoU@m count those >= m; Acc&GQA counts the questions with IoP >= 0.5 answered right; all over the count."""
    best = [official_question(locs, pred) for locs, pred in zip(spans, preds)]
    n = len(best)
    out = {"Acc@GQA": sum(iop >= 0.5 and ok for (_, iop), ok in zip(best, right)) / n,
           "mIoU": sum(iou for iou, _ in best) / n, "mIoP": sum(iop for _, iop in best) / n}
    for m in (0.3, 0.5):
        out |= {f"IoU@{m}": sum(iou >= m for iou, _ in best) / n, f"IoP@{m}": sum(iop >= m for _, iop in best) / n}
    return out


def test_metrics_equal_the_official_evaluations():
    records = [metrics.score_completion(f"<think></think><answer>{text}</answer>", {**row, "id": f"a{i}"})
               for i, (row, text) in enumerate(ANSWERS)]
    m = metrics.summarize(records, [])
    tvg = [(row, rec) for (row, _), rec in zip(ANSWERS, records) if row["task"] == "tvg"]
    expected = official_charades([row["segment"] for row, _ in tvg], [rec["segment"] for _, rec in tvg])
    assert m["tvg"] == {"n": 9, "n_failed": 0, **{k: pytest.approx(v, abs=1e-6) for k, v in expected.items()}}
    # by hand: IoU 7.6/8.2, 1, 8.2/15, 0, 0 (FPJ9D); 5/15.7 (0.318, not 0.877 clipped), 1, 3.7/10, 0 (AT_END)
    ious = [7.6 / 8.2, 1, 8.2 / 15, 0, 0, 5 / 15.7, 1, 3.7 / 10, 0]
    assert expected == {"R@0.3": 6 / 9, "R@0.5": 4 / 9, "R@0.7": 3 / 9, "mIoU": pytest.approx(sum(ious) / 9)}
    gqa = [(row, rec) for (row, _), rec in zip(ANSWERS, records) if row["task"] == "gqa"]
    expected = official_nextgqa([row["segment"] for row, _ in gqa], [rec["segment"] for _, rec in gqa],
                                [rec["correct"] for _, rec in gqa])
    assert {k: m["gqa"][k] for k in expected} == {k: pytest.approx(v, abs=1e-6) for k, v in expected.items()}
    # by hand: right with IoP >= 0.5 are "C, 50 to 60" (7/10), "C, 55 to 55" (a point in a span: 1),
    # "A, 0 to 21.5" (12.3/21.5) and "A, 9 to 25" (12.3/16); "C, 20.9 to 63.6" has IoP 7/42.7 (the hull would be 1)
    assert m["gqa"]["n"] == 11 and expected["Acc@GQA"] == 4 / 11


# ----------------------------------------------------------------------------------------------------------------
# end to end: a random tiny model on toy videos (checks the plumbing and the counts, not the numbers)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, toy_tok):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny")
    vlm.load_model(vlm.tiny_config("qwen2_5_vl", toy_tok)).save_pretrained(path)
    toy_tok.save_pretrained(path)
    return path


def test_evaluate_random_model(tiny, toy_dir):
    """The function train.py calls: rows in, metrics out; a random model answers nothing parseable."""
    policy, tokenizer = vlm.load_policy(tiny, torch.device("cpu"), torch.float32)
    rows = schema.load_jsonl(str(toy_dir / "train.jsonl"))  # mcq, tvg, gqa, mcq, tvg
    m = metrics.evaluate(policy, tokenizer, rows, "qwen2_5_vl", data.VideoConfig(max_frames=4), batch_size=2,
                    max_new_tokens=8, progress=False)
    assert (m["n_rows"], m["n_scored"], m["n_failed"]) == (5, 5, 0)
    assert (m["mcq"]["n"], m["tvg"]["n"], m["gqa"]["n"]) == (2, 2, 1)
    assert m["n_unparseable"] == 5 and m["mcq"]["accuracy"] == 0.0 and m["tvg"]["mIoU"] == 0.0
    assert m["truncated_rate"] is not None and 0 <= m["truncated_rate"] <= 1
    assert metrics.flatten(m)["gqa/Acc@GQA"] == 0.0


@pytest.fixture(scope="module")
def test_file(tmp_path_factory, toy_dir):
    """The toy test row (gqa) + a row whose ground truth ends 0.6 s past its video (duration read from the video)
    + a row whose video does not decode + a row whose video is missing."""
    out = tmp_path_factory.mktemp("bad")
    (out / "broken.mp4").write_bytes(b"\x00" * 64)
    rows = [json.loads(line) for line in (toy_dir / "test.jsonl").read_text().splitlines()]
    rows = [{**r, "video": str(toy_dir / r["video"])} for r in rows]
    rows += [{"id": "past-end", "video": rows[0]["video"], "task": "tvg", "question": "When?",
              "segment": [1.0, rows[0]["duration"] + 0.6]},
             {"id": "broken", "video": "broken.mp4", "task": "mcq", "question": "?", "options": ["x", "y"],
              "answer": "A", "duration": 4.0},
             {"id": "missing", "video": "nope.mp4", "task": "tvg", "question": "?", "segment": [1, 2],
              "duration": 4.0}]
    (out / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out / "test.jsonl"


ARGS = ["--batch-size", "2", "--max-new-tokens", "8", "--max-frames", "4"]


def test_eval_cli_with_a_broken_and_a_missing_video(tiny, test_file):
    ev.main(["--model", str(tiny), "--data", str(test_file), *ARGS])
    (out,) = tiny.glob("eval_test_*.json")  # default: next to the model, named by the data file (stem and hash)
    m = json.loads(out.read_text())
    assert (m["n_rows"], m["n_scored"], m["n_failed"], m["n_gt_outside_video"]) == (4, 2, 2, 1)  # every row counted
    assert sorted(f["id"] for f in m["failed"]) == ["broken", "missing"]
    assert (m["tvg"]["n"], m["tvg"]["n_failed"], m["mcq"]["n"], m["mcq"]["n_failed"]) == (1, 1, 0, 1)
    assert m["gqa"]["n"] == 1 and m["settings"]["temperature"] == 0.0
    samples = [json.loads(line) for line in out.with_suffix(".samples.jsonl").read_text().splitlines()]
    assert [s["id"] for s in samples] == ["toy-00005", "past-end"] and "completion" in samples[0]
    assert "file not found" in out.with_suffix(".bad.txt").read_text()


def test_eval_torchrun_two_ranks_matches_one(tiny, test_file, tmp_path):
    """Two CPU ranks (gloo), each answering rows[rank::2], rank 0 gathering: the same metrics as one process."""
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    ev.main(["--model", str(tiny), "--data", str(test_file), "--out", str(one), *ARGS])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(ROOT / "eval.py"), "--model", str(tiny), "--data", str(test_file), "--out", str(two), *ARGS]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, timeout=300)
    m1, m2 = json.loads(one.read_text()), json.loads(two.read_text())
    assert m2.pop("settings")["world"] == 2 and m1.pop("settings")["world"] == 1
    assert m1 == m2
    assert two.with_suffix(".samples.jsonl").read_text() == one.with_suffix(".samples.jsonl").read_text()


def test_eval_on_a_read_only_model_folder_writes_its_metrics_in_the_current_folder(tiny, test_file, tmp_path,
                                                                                   monkeypatch, capsys):
    """A shared, read-only model folder: the default MODEL/eval_test_<hash>.json cannot be written, so the metrics
    go to ./eval_<model folder name>_test_<hash>.json instead, and the run says so. chmod does not bind root, so the
    filesystem's refusal is also simulated where eval asks it (tempfile in that folder)."""
    model, here = tmp_path / "shared-model", tmp_path / "here"
    shutil.copytree(tiny, model)
    model.chmod(0o555)
    here.mkdir()
    monkeypatch.chdir(here)
    real = tempfile.TemporaryFile

    def read_only(*args, dir=None, **kwargs):
        if Path(dir) == model:
            raise PermissionError(13, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    ev.main(["--model", str(model), "--data", str(test_file), *ARGS])
    (out,) = here.glob("eval_shared-model_test_*.json")
    assert json.loads(out.read_text())["n_rows"] == 4
    assert sorted(os.listdir(model)) == sorted(os.listdir(tiny))
    said = capsys.readouterr().err
    assert f"{model} is not writable: the metrics go to {out}" in said


def test_eval_input_errors_come_before_the_model_loads(tiny, tmp_path, monkeypatch):
    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(vlm, "load_model", loaded)
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit, match="empty.jsonl holds no rows: nothing to evaluate"):
        ev.main(["--model", str(tiny), "--data", str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "m.json")])
    with pytest.raises(SystemExit, match="cannot write --out .*a_file/m"):
        ev.main(["--model", str(tiny), "--data", str(tmp_path / "empty.jsonl"), "--out",
                 str(tmp_path / "a_file" / "m")])
    with pytest.raises(FileNotFoundError, match="--model 'Qwen/Qwen2.5-VL-7B-Instuct' is not a checkpoint folder"):
        ev.main(["--model", "Qwen/Qwen2.5-VL-7B-Instuct", "--data", str(tmp_path / "empty.jsonl")])
