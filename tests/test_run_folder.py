"""What happens when things go wrong around a training run, as worked examples: a used run folder, a kill before
the first checkpoint, a torn log line, a full disk, a planted pickle, a second writer, changed flags on resume, and
inputs that cannot work. The folder logic is checked in-process; train.py itself runs in subprocesses."""

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys

import pytest
import torch

import checkpoint
import model as vlm
import run_folder
from checkpoint import CheckpointError
from run_folder import RunFolderError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


def write_state(folder, step, **config):
    """A minimal trainer state as checkpoint.save writes it (plain data only)."""
    os.makedirs(folder, exist_ok=True)
    torch.save({"step": step, "config": config}, os.path.join(folder, checkpoint.STATE))
    return str(folder)


def write_metrics(out, steps, tail=""):
    with open(os.path.join(out, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in steps)
        f.write(tail)


def logged_steps(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line)["step"] for line in f]


# ----------------------------------------------------------------------------------------------------------------
# the run folder: what may be resumed, what is in the way (rank 0 of a world of one)


def test_a_fresh_run_into_a_folder_holding_another_run_is_refused_or_overwritten(tmp_path):
    """Another run left checkpoint-25 and checkpoint-30 and 30 log rows. A fresh run there would write checkpoint-5
    and -10, which keep-last (by step) would delete: refused, nothing touched; --overwrite deletes that run first.
    checkpoint-best is not a name this code writes: never counted, never deleted."""
    out = str(tmp_path)
    write_state(tmp_path / "checkpoint-25", 25)
    write_state(tmp_path / "checkpoint-30", 30)
    (tmp_path / "checkpoint-best").mkdir()
    write_metrics(out, range(1, 31))
    with pytest.raises(RunFolderError, match="already holds a run .checkpoint-25, checkpoint-30, metrics.jsonl.*"
                                             "--resume auto.*--overwrite"):
        run_folder.plan(out, "", overwrite=False, rank=0)
    assert sorted(os.listdir(out)) == ["checkpoint-25", "checkpoint-30", "checkpoint-best", "metrics.jsonl"]

    resume, step, doomed = run_folder.plan(out, "", overwrite=True, rank=0)
    assert (resume, step) == (None, 0)
    run_folder.clear(out, doomed, step)
    assert sorted(os.listdir(out)) == ["checkpoint-best"]


def test_resume_auto_takes_the_newest_own_checkpoint_and_drops_later_log_rows(tmp_path):
    out = str(tmp_path)
    write_state(tmp_path / "checkpoint-2", 2)
    write_state(tmp_path / "checkpoint-4", 4)
    (tmp_path / ".tmp-checkpoint-6").mkdir()  # a kill during the save of step 6
    (tmp_path / "checkpoint-best").mkdir()  # int("best") once crashed resume and save
    write_metrics(out, range(1, 7))
    resume, step, doomed = run_folder.plan(out, "auto", overwrite=False, rank=0)
    assert (resume, step, doomed) == (str(tmp_path / "checkpoint-4"), 4, [str(tmp_path / ".tmp-checkpoint-6")])
    run_folder.clear(out, doomed, step)
    assert logged_steps(out) == [1, 2, 3, 4]  # steps 5 and 6 are trained (and logged) again
    assert [os.path.basename(c) for c in checkpoint.checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]


def test_resuming_an_older_checkpoint_with_newer_ones_beside_it_is_refused_or_overwritten(tmp_path):
    out = str(tmp_path)
    old = write_state(tmp_path / "checkpoint-2", 2)
    write_state(tmp_path / "checkpoint-4", 4)
    with pytest.raises(RunFolderError, match="holds checkpoint-4, newer than .*checkpoint-2"):
        run_folder.plan(out, old, overwrite=False, rank=0)
    assert run_folder.plan(out, old, overwrite=True, rank=0) == (old, 2, [str(tmp_path / "checkpoint-4")])


def test_resuming_into_another_folder_that_holds_a_run_is_refused(tmp_path):
    elsewhere = write_state(tmp_path / "a" / "checkpoint-2", 2)
    out = tmp_path / "b"
    out.mkdir()
    write_metrics(str(out), [1, 2, 3])
    with pytest.raises(RunFolderError, match="you resume from .*checkpoint-2, which is not in it"):
        run_folder.plan(str(out), elsewhere, overwrite=False, rank=0)
    (out / "metrics.jsonl").unlink()
    assert run_folder.plan(str(out), elsewhere, overwrite=False, rank=0) == (elsewhere, 2, [])


def test_a_run_that_died_before_its_first_checkpoint_restarts_with_empty_logs(tmp_path):
    """Killed during its first save (step 5): metrics for steps 1-5, no checkpoint. --resume auto starts at step 0
    and the rows are dropped, so steps 1-5 are logged once, not once per attempt."""
    out = str(tmp_path)
    write_metrics(out, range(1, 6))
    (tmp_path / ".tmp-checkpoint-5").mkdir()
    resume, step, doomed = run_folder.plan(out, "auto", overwrite=False, rank=0)
    assert (resume, step) == (None, 0)
    run_folder.clear(out, doomed, step)
    assert logged_steps(out) == [] and os.listdir(out) == ["metrics.jsonl"]


def test_a_torn_last_log_line_is_dropped_with_its_file_and_line_named(tmp_path, capsys):
    """A full disk (or a kill) mid-write leaves half a row: resume names the file and line and drops it."""
    out = str(tmp_path)
    write_metrics(out, [1, 2, 3], tail='{"step": 4, "lo')
    run_folder.trim_logs(out, 3)
    assert logged_steps(out) == [1, 2, 3]
    assert f"{tmp_path / 'metrics.jsonl'}:4: dropped a torn" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# the lock: one writer per folder; a dead writer blocks nothing


def test_overwrite_never_deletes_what_the_run_reads(tmp_path):
    """--overwrite deletes the old run, but not when --model, --data or --test-data lies in what it would delete
    (paths compared resolved: a link to the folder, or `..` in the path, is seen through). Refused, nothing deleted."""
    out = tmp_path / "run"
    write_state(out / "checkpoint-8", 8)
    (out / "checkpoint-8" / "train.jsonl").write_text("{}\n")
    write_metrics(str(out), [1, 2])
    os.symlink(out, tmp_path / "link")
    before = sorted(os.listdir(out))
    for flag, path in [("--model", out / "checkpoint-8"), ("--data", tmp_path / "link/checkpoint-8/train.jsonl"),
                       ("--test-data", out / "checkpoint-8/../metrics.jsonl")]:
        with pytest.raises(RunFolderError, match=f"{flag} .* is in .*, which starting this run in .* would delete"):
            run_folder.plan(str(out), "", overwrite=True, rank=0, inputs={flag: str(path)})
    assert sorted(os.listdir(out)) == before
    assert run_folder.plan(str(out), "", True, 0, inputs={"--data": str(tmp_path / "elsewhere.jsonl")})[2] == [
        str(out / "checkpoint-8"), str(out / "metrics.jsonl")]


def test_a_lock_file_that_is_a_symbolic_link_is_refused_and_its_target_kept(tmp_path):
    """OUT/.lock linked to a file of the user's (symbolic or hard link): the lock once truncated that file to write
    its pid there."""
    precious = tmp_path / "thesis.txt"
    precious.write_text("three years of work\n")
    (tmp_path / "run").mkdir()
    os.symlink(precious, tmp_path / "run" / ".lock")
    with pytest.raises(RunFolderError, match=r"run/.lock is a symbolic link .to .*thesis.txt.: a run never writes"):
        with run_folder.lock(str(tmp_path / "run"), rank=0):
            pass
    os.remove(tmp_path / "run" / ".lock")
    os.link(precious, tmp_path / "run" / ".lock")  # a hard link: the same file under a second name
    with pytest.raises(RunFolderError, match=r"run/.lock has 1 other hard link.s.: writing the run's pid"):
        with run_folder.lock(str(tmp_path / "run"), rank=0):
            pass
    assert precious.read_text() == "three years of work\n"


@pytest.mark.parametrize("name", ["checkpoint-4", "metrics.jsonl", "samples.jsonl", "bad_rows.txt"])
def test_a_run_file_that_is_a_symbolic_link_is_refused_never_followed(tmp_path, name):
    """A checkpoint or log of the run folder that links elsewhere: keep-last and --overwrite would delete through
    it (or crash: 'rmtree on a symbolic link'), the logs would append to and rewrite its target. Refused at the
    start of the run, resumed or not, the target untouched."""
    out, target = tmp_path / "run", tmp_path / "users"
    write_state(out / "checkpoint-2", 2)
    write_state(target, 4) if name.startswith("checkpoint") else target.write_text('{"step": 9}\n')
    os.symlink(target, out / name)
    kept = sorted(os.listdir(target)) if target.is_dir() else target.read_text()
    for resume, overwrite in [("auto", False), ("", True)]:
        with pytest.raises(RunFolderError, match=f"run/{name} is a symbolic link"):
            run_folder.plan(str(out), resume, overwrite, rank=0)
    assert (sorted(os.listdir(target)) if target.is_dir() else target.read_text()) == kept
    assert os.path.islink(out / name)


def test_resume_compares_the_training_file_by_its_digest_where_the_checkpoint_stored_one(tmp_path):
    """train.py stores data_sha256 (the bytes of --data) with the config: the path may then change, the contents
    may not. A checkpoint written before the digest existed still compares the path."""
    keyed = write_state(tmp_path / "keyed", 3, data="toy/train.jsonl", data_sha256="ab" * 32)
    assert checkpoint.check_config(keyed, {"data": "toy/../toy/train.jsonl", "data_sha256": "ab" * 32}, ()) == \
        "--data 'toy/train.jsonl' -> 'toy/../toy/train.jsonl'"
    with pytest.raises(CheckpointError, match=r"other settings: the contents of --data .sha256 abababababab -> "
                                              r"cdcdcdcdcdcd."):
        checkpoint.check_config(keyed, {"data": "toy/train.jsonl", "data_sha256": "cd" * 32}, ())
    older = write_state(tmp_path / "older", 3, data="toy/train.jsonl")
    with pytest.raises(CheckpointError, match="other settings: --data 'toy/train.jsonl' -> 'toy/../toy/train.jsonl'"):
        checkpoint.check_config(older, {"data": "toy/../toy/train.jsonl", "data_sha256": "ab" * 32}, ())


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path):
    with run_folder.lock(str(tmp_path), rank=0):
        with pytest.raises(RunFolderError, match=f"being written by another run .pid {os.getpid()} holds"):
            with run_folder.lock(str(tmp_path), rank=0):
                pass
    with run_folder.lock(str(tmp_path), rank=0):  # released when the first run ended
        pass


def test_a_writer_killed_with_sigkill_leaves_no_lock_behind(tmp_path):
    """The kernel drops a flock with its process: after kill -9 the folder is free at once, pid file or not."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time, run_folder\n"
                               "with run_folder.lock(sys.argv[1], 0):\n    print('held', flush=True)\n"
                               "    time.sleep(600)\n", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(RunFolderError, match=f"pid {holder.pid}"):
        with run_folder.lock(str(tmp_path), rank=0):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_folder.lock(str(tmp_path), rank=0):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"


# ----------------------------------------------------------------------------------------------------------------
# the trainer state: plain data, read with weights_only=True


class Payload:
    """What an attacker pickles: unpickling calls os.system with a command of their choice."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant(folder, marker):
    """Replace a checkpoint's trainer state with one whose unpickling runs a command (touch marker)."""
    torch.save({"step": 2, "optimizer": Payload(marker)}, os.path.join(folder, checkpoint.STATE))


def test_a_planted_pickle_in_the_trainer_state_is_refused_not_run(tmp_path):
    folder = write_state(tmp_path / "checkpoint-2", 2)
    marker = tmp_path / "pwned"
    plant(folder, marker)
    torch.load(os.path.join(folder, checkpoint.STATE), weights_only=False)  # what a plain torch.load would do
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match="refused to load .*trainer_state.pt .it calls posix.system, which is "
                                              "code, not data.*could run code"):
        checkpoint.read_state(folder)
    assert not marker.exists()


def test_a_planted_pickle_in_the_sharded_optimizer_state_is_refused_not_run(tmp_path):
    """optimizer/ is a torch.distributed.checkpoint folder: its .metadata is a pickle, and DCP reads an entry stored
    as bytes with a full torch.load. Our reader admits only DCP's index classes in .metadata, and our planner
    refuses bytes entries: neither planted payload runs."""
    import torch.distributed.checkpoint as dcp

    marker = tmp_path / "pwned"
    dcp.save({"exp_avg": torch.zeros(3), "planted": Payload(marker)}, checkpoint_id=tmp_path / "bytes")
    with pytest.raises(dcp.CheckpointException, match="planted is stored as a pickle, not a tensor: refused"):
        dcp.load({"exp_avg": torch.ones(3), "planted": None}, storage_reader=checkpoint.MetadataReader(
            tmp_path / "bytes"), planner=checkpoint.TensorsOnly())
    assert not marker.exists()
    dcp.save({"exp_avg": torch.zeros(3)}, checkpoint_id=tmp_path / "metadata")
    (tmp_path / "metadata" / ".metadata").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(dcp.CheckpointException, match="GLOBAL posix.system"):
        dcp.load({"exp_avg": torch.ones(3)}, storage_reader=checkpoint.MetadataReader(tmp_path / "metadata"),
                 planner=checkpoint.TensorsOnly())
    assert not marker.exists()
    # the same call reached through a module the reader admits (pickle protocol 4 resolves dotted names)
    via_import = f"\x80\x04ctorch.distributed.checkpoint.metadata\nos.system\n(Vtouch {marker}\ntR.".encode("latin-1")
    (tmp_path / "metadata" / ".metadata").write_bytes(via_import)
    with pytest.raises(dcp.CheckpointException, match="GLOBAL torch.distributed.checkpoint.metadata.os.system"):
        dcp.load({"exp_avg": torch.ones(3)}, storage_reader=checkpoint.MetadataReader(tmp_path / "metadata"),
                 planner=checkpoint.TensorsOnly())
    assert not marker.exists()
    restored = {"exp_avg": torch.ones(3)}  # an honest folder loads
    dcp.save({"exp_avg": torch.zeros(3)}, checkpoint_id=tmp_path / "honest")
    dcp.load(restored, storage_reader=checkpoint.MetadataReader(tmp_path / "honest"), planner=checkpoint.TensorsOnly())
    assert torch.equal(restored["exp_avg"], torch.zeros(3))


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    """torch, python and numpy RNG states survive save -> torch.load(weights_only=True) -> restore."""
    import random

    import numpy as np
    torch.save({"rng": checkpoint.rng_state()}, tmp_path / "s.pt")
    expected = (torch.rand(3), random.random(), np.random.rand())
    checkpoint.set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]


# ----------------------------------------------------------------------------------------------------------------
# train.py end to end (subprocesses): SFT on the toy rows, tiny model


@pytest.fixture(scope="module")
def init(tmp_path_factory, toy_tok):
    path = tmp_path_factory.mktemp("init")
    torch.manual_seed(0)
    vlm.load_model(vlm.tiny_config("qwen2_5_vl", toy_tok)).save_pretrained(path)
    toy_tok.save_pretrained(path)
    return path


def train_args(init, data, out, *extra):
    return ["--model", str(init), "--data", str(data), "--out", str(out), "--mode", "sft", "--batch-size", "2",
            "--pack-prompts", "2", "--max-frames", "4", "--dtype", "float32", "--lr", "1e-3", *extra]


def train(args, script=None, ok=True):
    """train.py ARGS (or python -c SCRIPT ARGS); ok: it must succeed, else fail."""
    cmd = [sys.executable, *(["-c", script] if script else ["train.py"]), *map(str, args)]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
    assert (proc.returncode == 0) == ok, f"rc {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory, init, toy_dir):
    """A run stopped after 2 steps (before its first checkpoint, at step 3), rerun with --resume auto (steps 1-3,
    checkpoint-3); then a kill tears the row of step 4, and a resume with --steps 4 goes on."""
    out = tmp_path_factory.mktemp("resumed") / "run"
    first = train(train_args(init, toy_dir / "train.jsonl", out, "--steps", "3", "--save-every", "3",
                             "--stop-after", "2"))
    after_kill = logged_steps(out)
    (out / "checkpoint-best").mkdir()  # a folder the user made
    second = train(train_args(init, toy_dir / "train.jsonl", out, "--steps", "3", "--save-every", "3",
                              "--resume", "auto"))
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "grad_norm": 0.1')
    third = train(train_args(init, toy_dir / "train.jsonl", out, "--steps", "4", "--save-every", "3",
                             "--resume", "auto"))
    return out, after_kill, (first, second, third)


def test_no_step_is_logged_twice_after_a_kill_before_the_first_checkpoint_or_a_torn_line(killed_then_resumed):
    out, after_kill, (_, second, third) = killed_then_resumed
    assert after_kill == [1, 2]
    assert "resume=None" in second.stdout  # nothing to resume: steps 1 and 2 again, logged once
    assert f"{out / 'metrics.jsonl'}:4: dropped a torn" in third.stderr
    assert "[resume] changed: --steps 3 -> 4" in third.stderr  # bookkeeping: reported, taken
    assert logged_steps(out) == [1, 2, 3, 4]
    assert sorted(os.listdir(out)) == [".lock", "checkpoint-3", "checkpoint-4", "checkpoint-best", "curves.png",
                                       "metrics.jsonl"]


def test_a_full_disk_during_save_says_so_and_leaves_no_temporary_folder(killed_then_resumed, init, toy_dir,
                                                                       tmp_path):
    """torch.save fails as it does on a full disk (the C++ stream's 'basic_ios::clear'): one message naming the
    checkpoint and what to do; no .tmp-checkpoint-5; the checkpoints before it intact."""
    out = tmp_path / "run"
    shutil.copytree(killed_then_resumed[0], out)
    full_disk = ("import sys, torch, train\n"
                 "real = torch.save\n"
                 "def full(obj, f, *a, **k):\n"
                 "    if str(f).endswith('trainer_state.pt'):\n"
                 "        raise RuntimeError('basic_ios::clear: iostream error')\n"
                 "    return real(obj, f, *a, **k)\n"
                 "torch.save = full\n"
                 "train.main(sys.argv[1:])\n")
    proc = train(train_args(init, toy_dir / "train.jsonl", out, "--steps", "5", "--save-every", "3",
                            "--resume", "auto"), script=full_disk, ok=False)
    assert f"could not write {out / 'checkpoint-5'} (RuntimeError: " in proc.stderr
    assert "Is the disk full?" in proc.stderr and "checkpoint-3, checkpoint-4" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p for p in os.listdir(out) if "checkpoint" in p) == ["checkpoint-3", "checkpoint-4",
                                                                       "checkpoint-best"]
    assert checkpoint.read_state(out / "checkpoint-4")["step"] == 4


@pytest.mark.parametrize("where", ["checkpoint.save_file", "dcp.FileSystemWriter.write_data"])
def test_ctrl_c_during_save_says_the_write_was_interrupted_and_the_checkpoints_before_it_are_intact(
        killed_then_resumed, init, toy_dir, tmp_path, where):
    """Ctrl-C (KeyboardInterrupt) while checkpoint-5 is written, in rank 0's weights or in the optimizer shards (DCP
    wraps it in its own exception): one message saying the write was interrupted, not "Is the disk full?"; no
    .tmp-checkpoint-5; the checkpoints before it intact."""
    out = tmp_path / "run"
    shutil.copytree(killed_then_resumed[0], out)
    ctrl_c = ("import sys, checkpoint, train\n"
              "import torch.distributed.checkpoint as dcp\n"
              "def ctrl_c(*a, **k): raise KeyboardInterrupt\n"
              f"{where} = ctrl_c\n"
              "train.main(sys.argv[1:])\n")
    proc = train(train_args(init, toy_dir / "train.jsonl", out, "--steps", "5", "--save-every", "3",
                            "--resume", "auto"), script=ctrl_c, ok=False)
    assert f"the write of {out / 'checkpoint-5'} was interrupted (Ctrl-C) and discarded; the checkpoints before " \
           f"it in {out} are intact (checkpoint-3, checkpoint-4)" in proc.stderr
    assert "disk full" not in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p for p in os.listdir(out) if "checkpoint" in p) == ["checkpoint-3", "checkpoint-4",
                                                                       "checkpoint-best"]


def test_bad_inputs_and_used_folders_fail_with_one_message_before_any_model_loads(killed_then_resumed, init, toy_dir,
                                                                                 tmp_path):
    """Each case ends train.main with its one message (SystemExit, no traceback) before any model loads (load_model
    is made to fail); the cases run one after the other in one process."""
    used = killed_then_resumed[0]
    planted = tmp_path / "planted"
    shutil.copytree(used, planted)
    plant(planted / "checkpoint-4", tmp_path / "pwned")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "all_bad.jsonl").write_text('{"id": "a", "video": "nope.mp4"}\n')
    data, locked = toy_dir / "train.jsonl", tmp_path / "locked"
    cases = {  # case -> (train.py arguments, what the message says)
        "planted pickle": (train_args(init, data, planted, "--resume", "auto"), "refused to load .*could run code"),
        "used --out": (train_args(init, data, used, "--steps", "6"), "already holds a run .*--resume auto"),
        "changed flags": (train_args(init, data, used, "--resume", "auto", "--seed", "3", "--lr", "0.1"),
                          "other settings: --lr 0.001 -> 0.1, --seed 0 -> 3"),
        "held lock": (train_args(init, data, locked), "being written by another run .pid"),
        "empty JSONL": (train_args(init, tmp_path / "empty.jsonl", tmp_path / "o1"), "no valid row to train on"),
        "--skip-bad drops all": (train_args(init, tmp_path / "all_bad.jsonl", tmp_path / "o2", "--skip-bad", "true"),
                                 "no valid row to train on .the bad ones are listed in .*bad_rows.txt"),
        "no --data": (train_args(init, "", tmp_path / "o3"), "--data is missing"),
        "typo in --model": (train_args(tmp_path / "chekpoint-2", data, tmp_path / "o4"),
                            "is not a checkpoint folder .no config.json"),
    }
    each_case = ("import json, sys, model, train\n"
                 "def refuse(*a, **k): raise AssertionError('a model was loaded')\n"
                 "model.load_model = refuse\n"
                 "said = {}\n"
                 "for case, args in json.loads(sys.argv[1]).items():\n"
                 "    try:\n"
                 "        train.main(args)\n"
                 "    except SystemExit as e:\n"
                 "        said[case] = e.code\n"
                 "print(json.dumps(said))\n")
    with run_folder.lock(str(locked), rank=0):
        proc = train([json.dumps({case: list(map(str, args)) for case, (args, _) in cases.items()})], each_case)
    said = json.loads(proc.stdout.splitlines()[-1])
    for case, (_, expected) in cases.items():
        assert re.fullmatch("train.py: .*" + expected + ".*", said[case], re.DOTALL), (case, said[case])
    assert not (tmp_path / "pwned").exists()
    assert logged_steps(used) == [1, 2, 3, 4]  # the refused runs touched nothing


def test_moving_average_over_a_window_shorter_at_the_start():
    """curves.png smooths each metric: the mean of a value and the window - 1 values before it."""
    assert run_folder.moving_average([1.0, 3.0, 5.0, 7.0], 2).tolist() == [1.0, 2.0, 4.0, 6.0]
    assert run_folder.moving_average([2.0, 4.0, 9.0], 5).tolist() == [2.0, 3.0, 5.0]
