"""Nothing the user owns is lost, as worked examples: each command is run the way a user runs it, with an input
that once cost a file (a run folder's own checkpoint as --model, an --out that is the --data, a link planted in the
run folder, a conversion that converts nothing, two test files of one name, an edited training file on resume),
and each test shows the user's files byte for byte as they were. The refusals come before any model loads, so the
cases run in seconds (in one process where several share the same setup)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import eval as ev
import model as vlm
import select_data as sd
import video
from test_run_folder import ENV, ROOT, init, train, train_args, write_state  # init: a tiny model in HF format


def snapshot(path):
    """{path relative to `path`: bytes} of every file under a folder (links as 'link -> target'), or a file's bytes;
    the run folder's .lock is left out (the run creates it)."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    files = {}
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, path)
            if rel != ".lock":
                files[rel] = f"link -> {os.readlink(full)}" if os.path.islink(full) else snapshot(full)
    return files


def refused_load(*args, **kwargs):
    raise AssertionError("a model was loaded")


# ----------------------------------------------------------------------------------------------------------------
# train.py


def test_overwrite_with_the_model_inside_the_run_folder_is_refused_before_anything_is_deleted(init, toy_dir,
                                                                                                 tmp_path):
    """`--overwrite true --model RUN/checkpoint-8 --out RUN` deleted checkpoint-8, then failed to load the model it
    had just deleted. It is refused, naming the flag, and RUN is as it was."""
    run = tmp_path / "run"
    shutil.copytree(init, run / "checkpoint-8")
    write_state(run / "checkpoint-8", 8)
    before = snapshot(run)
    proc = train(train_args(run / "checkpoint-8", toy_dir / "train.jsonl", run, "--overwrite", "true"), ok=False)
    assert f"train.py: --model {run / 'checkpoint-8'} is in {run / 'checkpoint-8'}, which starting this run" in \
        proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(run) == before


EACH_CASE = """import json, sys, model, train
model.load_model = lambda *a, **k: (_ for _ in ()).throw(AssertionError('a model was loaded'))
said = {}
for case, args in json.loads(sys.argv[1]).items():
    try:
        train.main(args)
    except SystemExit as e:
        said[case] = str(e.code)
    except Exception as e:
        said[case] = f'{type(e).__name__}: {e}'
print(json.dumps(said))
"""


def train_cases(cases):
    """{case: train.py arguments} -> {case: what train.main ended with}, all in one process (no model loads)."""
    proc = train([json.dumps({case: list(map(str, args)) for case, args in cases.items()})], EACH_CASE)
    return json.loads(proc.stdout.splitlines()[-1])


def test_links_planted_in_the_run_folder_are_never_followed(init, toy_dir, tmp_path):
    """A run folder whose .lock, log or checkpoint is a symbolic link to the user's files: the lock truncated the
    target of .lock, --overwrite and keep-last deleted through (or crashed on) a linked checkpoint, the logs appended
    to their targets. Each run is refused with the link named, and the targets are as they were."""
    users = tmp_path / "users"
    (users / "notes").mkdir(parents=True)
    (users / "notes.txt").write_text("do not lose\n")
    (users / "notes" / "a.txt").write_text("nor this\n")
    runs = {}
    for case, name, target in [("lock", ".lock", "notes.txt"), ("log", "metrics.jsonl", "notes.txt"),
                               ("checkpoint", "checkpoint-4", "notes")]:
        run = runs[case] = tmp_path / case
        write_state(run / "checkpoint-2", 2)
        os.symlink(users / target, run / name)
    before = snapshot(users)
    data_file = toy_dir / "train.jsonl"
    said = train_cases({
        "linked .lock": train_args(init, data_file, runs["lock"], "--resume", "auto"),
        "linked log, resumed": train_args(init, data_file, runs["log"], "--resume", "auto"),
        "linked checkpoint, resumed": train_args(init, data_file, runs["checkpoint"], "--resume", "auto"),
        "linked checkpoint, overwritten": train_args(init, data_file, runs["checkpoint"], "--overwrite", "true"),
    })
    for case, run, name in [("linked .lock", runs["lock"], ".lock"), ("linked log, resumed", runs["log"],
                             "metrics.jsonl"), ("linked checkpoint, resumed", runs["checkpoint"], "checkpoint-4"),
                            ("linked checkpoint, overwritten", runs["checkpoint"], "checkpoint-4")]:
        assert said[case].startswith(f"train.py: {run / name} is a symbolic link (to {users}"), (case, said[case])
    assert snapshot(users) == before


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory, init, toy_dir):
    """One SFT step on a copy of the toy data of its own (so it can be edited), saved as checkpoint-1."""
    root = tmp_path_factory.mktemp("keyed")
    shutil.copytree(toy_dir, root / "toy")
    train(train_args(init, root / "toy" / "train.jsonl", root / "run", "--steps", "1", "--save-every", "1"))
    return root


def test_resume_is_keyed_on_the_bytes_of_the_training_file_not_on_its_path(trained_once, init):
    """The run is keyed on a sha256 of --data's bytes. The same file spelt toy/../toy/train.jsonl was refused as
    other settings: it resumes (the path change reported). The file cut from 5 rows to 3 at the same path was
    accepted: it is refused, the change named."""
    root, respelt = trained_once, trained_once / "toy" / ".." / "toy" / "train.jsonl"
    first = train_cases({"respelt": train_args(init, respelt, root / "run", "--steps", "2", "--resume", "auto")})
    assert first["respelt"] == "AssertionError: a model was loaded"  # past every check: it would resume
    rows = (root / "toy" / "train.jsonl").read_text().splitlines(keepends=True)
    (root / "toy" / "train.jsonl").write_text("".join(rows[:3]))
    cut = train_cases({"cut": train_args(init, root / "toy" / "train.jsonl", root / "run", "--steps", "2",
                                         "--resume", "auto")})
    assert cut["cut"].startswith(f"train.py: {root / 'run' / 'checkpoint-1'} was trained with other settings: "
                                 "the contents of --data (sha256 "), cut["cut"]


# ----------------------------------------------------------------------------------------------------------------
# select_data.py and eval.py: an output that is an input


def outputs_onto_the_input(tmp_path, toy_dir, side):
    """(--data, --out) pairs where --out, or a file written beside it (`side`: its suffix), is --data: the same
    path, a symbolic link to it, a hard link to it, and the side file."""
    rows = (toy_dir / "train.jsonl").read_text().replace('"videos/', f'"{toy_dir}/videos/')
    own = tmp_path / "own.jsonl"
    own.write_text(rows)
    os.symlink(own, tmp_path / "symlink.jsonl")
    os.link(own, tmp_path / "hardlink.jsonl")
    (tmp_path / f"sel{side}").write_text(rows)
    return {"same path": (own, own), "symbolic link": (own, tmp_path / "symlink.jsonl"),
            "hard link": (own, tmp_path / "hardlink.jsonl"), f"its {side} file": (tmp_path / f"sel{side}",
                                                                                 tmp_path / "sel.jsonl")}


def test_select_data_refuses_an_output_that_is_its_input(init, toy_dir, tmp_path, monkeypatch):
    """`--out X.jsonl --data X.jsonl` replaced the 5 training rows with the kept subset; --out sel.jsonl with
    --data sel.partial.jsonl rewrote the data as its resume log. Each is refused before the model loads, the data
    byte for byte as it was."""
    monkeypatch.setattr(vlm, "load_policy", refused_load)
    for case, (data_file, out) in outputs_onto_the_input(tmp_path, toy_dir, ".partial.jsonl").items():
        before = snapshot(data_file)
        with pytest.raises(video.DataError, match=f"would be written over --data {data_file} .the same file."):
            sd.main(["--model", str(init), "--data", str(data_file), "--out", str(out), "--group-size", "2"])
        assert snapshot(data_file) == before, case


def test_eval_refuses_an_output_that_is_its_input(init, toy_dir, tmp_path, monkeypatch):
    """eval.py --out equal to --data replaced the test file with metrics (and --out sel.jsonl, the file
    sel.samples.jsonl with the answers). Refused before the model loads; the test file unchanged."""
    monkeypatch.setattr(vlm, "load_policy", refused_load)
    for case, (data_file, out) in outputs_onto_the_input(tmp_path, toy_dir, ".samples.jsonl").items():
        before = snapshot(data_file)
        with pytest.raises(video.DataError, match=f"would be written over --data {data_file} .the same file."):
            ev.main(["--model", str(init), "--data", str(data_file), "--out", str(out)])
        assert snapshot(data_file) == before, case


def test_two_test_files_of_one_name_get_results_of_their_own(init, toy_dir, tmp_path):
    """a/test.jsonl and b/test.jsonl both wrote MODEL/eval_test.json: the second silently replaced the first. The
    default name carries a short hash of the file's resolved path, so each keeps its results; an --out holding the
    results of another input, or a file that is not an eval result, is refused and left as it was."""
    model = tmp_path / "model"
    shutil.copytree(init, model)
    rows = (toy_dir / "train.jsonl").read_text().replace('"videos/', f'"{toy_dir}/videos/').splitlines()
    for name, row in (("a", rows[0]), ("b", rows[1])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "test.jsonl").write_text(row + "\n")
        ev.main(["--model", str(model), "--data", str(tmp_path / name / "test.jsonl"), "--max-new-tokens", "4",
                 "--max-frames", "4"])
    results = sorted(p for p in os.listdir(model) if p.startswith("eval_test_") and p.endswith(".json"))
    assert len(results) == 2, os.listdir(model)
    inputs = [json.loads((model / r).read_text())["settings"]["data_file"] for r in results]
    assert sorted(inputs) == [str(tmp_path / "a" / "test.jsonl"), str(tmp_path / "b" / "test.jsonl")]

    a_result = model / results[inputs.index(str(tmp_path / "a" / "test.jsonl"))]
    mine = tmp_path / "notes.json"
    mine.write_text('{"mine": true}\n')
    for out, expected in ((a_result, "holds the results of another input"), (mine, "is not an eval.py result")):
        before = snapshot(out)
        with pytest.raises(SystemExit, match=expected):
            ev.main(["--model", str(model), "--data", str(tmp_path / "b" / "test.jsonl"), "--out", str(out)])
        assert snapshot(out) == before


# ----------------------------------------------------------------------------------------------------------------
# convert.py


def convert(*args):
    return subprocess.run([sys.executable, "convert.py", *map(str, args)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)


def test_a_conversion_that_converts_nothing_leaves_the_old_output_as_it_was(tmp_path):
    """`convert.py --from temporal_r1 wrong.json good.jsonl`, where good.jsonl holds an earlier conversion: it was
    truncated to 0 bytes. Now nothing is written, the exit says which input converted nothing; and an output that
    is the input is refused."""
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "x-0", "video": "a.mp4", "task": "tvg", "question": "When?", "segment": [1, 2]}\n')
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{"video": "a.mp4"}, {"video": "b.mp4"}]))
    before, source = snapshot(good), snapshot(wrong)
    proc = convert("--from", "temporal_r1", wrong, good)
    assert proc.returncode == 1 and f"no record of {wrong} converted" in proc.stderr
    assert f"{good} left as it was" in proc.stderr
    assert snapshot(good) == before

    proc = convert("--from", "temporal_r1", wrong, wrong)
    assert proc.returncode == 1 and f"would be written over the input {wrong}" in proc.stderr
    assert snapshot(wrong) == source
