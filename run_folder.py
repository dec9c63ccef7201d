"""The run folder train.py writes: one writer at a time, and a run that either continues its own checkpoints or
starts in a folder that holds no run, so two runs never mix.

    OUT/.lock              held (flock) by the process writing OUT. The kernel frees it when that process dies, so a
                           run killed with kill -9 blocks nothing; the file itself stays (it holds the last pid)
    OUT/metrics.jsonl      one row per step
    OUT/samples.jsonl      a few completions per step
    OUT/curves.png         metrics.jsonl plotted at each checkpoint
    OUT/checkpoint-STEP/   see checkpoint.py

Why refuse rather than guess: keep-last sorts checkpoints by step, so a fresh 10-step run into a folder holding
another run's checkpoint-30 would delete its own checkpoint-5 and -10 and keep the stranger's; metrics.jsonl would
interleave both runs, and a later --resume auto would pick the other run. So a run starts at step 0 only in a folder
without a run's files, resumes only a checkpoint with nothing newer beside it, and `--overwrite` deletes what is in
the way when that is what you want.

Logs: a run resumed from step S first drops the log rows past S (it writes those steps again), so no step appears
twice whatever the moment of a kill; a run that died before its first checkpoint restarts at step 0 with empty logs.
A line that does not parse (torn by a kill or a full disk) is dropped with a warning naming the file and line.
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys

import numpy as np

import checkpoint
import distributed

LOCK, LOGS, CURVES = ".lock", ("metrics.jsonl", "samples.jsonl"), "curves.png"


class RunFolderError(RuntimeError):
    """OUT is being written by another process or holds another run; the message says what to do."""


@contextlib.contextmanager
def lock(out, rank):
    """Hold OUT/.lock (rank 0) while the body runs: a second run into OUT fails at once, on every rank."""
    held, error = None, None
    if rank == 0:
        os.makedirs(out, exist_ok=True)
        try:
            held = open_unlinked(os.path.join(out, LOCK))
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except RunFolderError as e:
            error = str(e)
        except BlockingIOError:
            pid = held.read().strip() or "?"
            held.close()
            held, error = None, (f"{out} is being written by another run (pid {pid} holds {os.path.join(out, LOCK)}):"
                                 " wait for it to end, stop it (under torchrun: its worker processes too), or pass"
                                 " another --out")
        else:
            held.truncate(0)
            held.write(f"{os.getpid()}\n")
            held.flush()
    error = distributed.broadcast(error)
    if error:
        raise RunFolderError(error)
    try:
        yield
    finally:
        if held:
            held.close()  # releases the lock


def run_files(out):
    """What a run wrote in OUT: checkpoints (complete or not), logs, curves."""
    names = os.listdir(out) if os.path.isdir(out) else []
    ours = [n for n in names if checkpoint.NAME.fullmatch(n) or checkpoint.TMP.fullmatch(n) or n in (*LOGS, CURVES)]
    return sorted(os.path.join(out, n) for n in ours)


def _listed(paths):
    names = [os.path.basename(p) for p in paths]
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _plan(out, resume, overwrite, inputs):
    refuse_links(out)
    found = checkpoint.resume_from(resume, out)
    step = checkpoint.read_state(found)["step"] if found else 0
    own = resume == "auto" or (found is not None and os.path.dirname(os.path.abspath(found)) == os.path.abspath(out))
    if own:  # its own run: only checkpoints newer than the one resumed from are in the way
        in_the_way = [c for c in checkpoint.checkpoints(out) if checkpoint.step_of(c) > step]
        half_written = [p for p in run_files(out) if checkpoint.TMP.fullmatch(os.path.basename(p))]
    else:
        in_the_way, half_written = run_files(out), []
    if in_the_way and not overwrite:
        if own:
            why = (f"{out} holds {_listed(in_the_way)}, newer than {found}, which you resume from: going on would mix "
                   "two runs. --resume auto continues from the newest; --overwrite true deletes the newer ones")
        else:
            what = f"you resume from {found}, which is not in it" if found else "starting another run there"
            why = (f"{out} already holds a run ({_listed(in_the_way)}); {what} would mix the two (keep-last deletes "
                   "by step, the logs interleave). Pass --resume auto to continue it, --overwrite true to delete "
                   "it first, or another --out")
        raise RunFolderError(why)
    refuse_deleting_inputs(out, in_the_way + half_written, inputs)
    return found, step, in_the_way + half_written


def plan(out, resume, overwrite, rank, inputs=None):
    """What OUT holds against what the run asks (decided on rank 0, the same on every rank) -> (the checkpoint to
    resume from or None, its step or 0, the paths to delete before the run writes). resume: '' | 'auto' | a
    folder; inputs: {flag: path} the run reads. Raises RunFolderError when another run's files are in the way and
    overwrite is off, when a path to delete holds one of the inputs, or when a file of the run is a symbolic link."""
    outcome = None
    if rank == 0:
        try:
            outcome = _plan(out, resume, overwrite, inputs or {})
        except (RunFolderError, checkpoint.CheckpointError) as e:
            outcome = e
    outcome = distributed.broadcast(outcome)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def clear(out, doomed, step):
    """Delete the paths plan() named (rank 0), and the log rows past step."""
    for path in doomed:
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    if doomed:
        print(f"deleted from {out}: {_listed(doomed)}", file=sys.stderr)
    trim_logs(out, step)


# ----------------------------------------------------------------------------------------------------------------
# what is never deleted or written through (safe to skip on a first read)

BAD_ROWS = "bad_rows.txt"  # train.py --skip-bad lists the dropped rows here


def linked(path):
    return (f"{path} is a symbolic link (to {os.readlink(path)}): a run never writes or deletes through a link in its"
            " folder (the lock and the logs would overwrite its target, keep-last and --overwrite would delete it)."
            " Remove the link, or pass another --out")


def open_unlinked(path):
    """path opened to read and write (created if missing; O_NOFOLLOW: a symbolic link is refused, not followed;
    a file with another hard link is refused too, as that other name is someone's file)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise RunFolderError(linked(path)) from None
    if os.fstat(fd).st_nlink > 1:
        os.close(fd)
        raise RunFolderError(f"{path} has {os.stat(path).st_nlink - 1} other hard link(s): writing the run's pid "
                             "there would overwrite that file too. Remove it, or pass another --out")
    return os.fdopen(fd, "r+", encoding="utf-8")


def refuse_links(out):
    """A file or folder the run writes or deletes in OUT (checkpoints, logs, curves, bad rows) that is a symbolic
    link is refused: its target is not the run's to truncate or delete."""
    for path in run_files(out) + [os.path.join(out, BAD_ROWS)]:
        if os.path.islink(path):
            raise RunFolderError(linked(path))


def refuse_deleting_inputs(out, doomed, inputs):
    """--overwrite with --model OUT/checkpoint-8 would delete the model the run is about to load: a path to delete
    that is, or holds, an input ({flag: path}; compared as real paths, links resolved) is refused first."""
    for flag, path in inputs.items():
        real = os.path.realpath(path) if path else None
        for gone in doomed:
            if real and (real == os.path.realpath(gone) or real.startswith(os.path.realpath(gone) + os.sep)):
                raise RunFolderError(f"{flag} {path} is in {gone}, which starting this run in {out} would delete "
                                     "(--overwrite deletes the run there): copy it elsewhere first, or pass "
                                     "another --out")


def input_digest(path):
    """sha256 of a file's bytes: a resumed run is keyed on what its --data holds, not on how its path is spelt."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# logs

def read_log(path):
    """[(row, line as written)] of a JSONL log; a line that is not a JSON object with a step is dropped with a
    warning naming the file and line (a kill or a full disk can tear the last line)."""
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not (isinstance(row, dict) and isinstance(row.get("step"), int)):
                print(f"[warn] {path}:{lineno}: dropped a torn or foreign line ({line[:60]!r})", file=sys.stderr)
                continue
            rows.append((row, line if line.endswith("\n") else line + "\n"))
    return rows


def trim_logs(out, step):
    """Keep the log rows of steps <= step (a resumed run writes the later ones again); the rewrite is atomic."""
    for name in LOGS:
        path = os.path.join(out, name)
        if os.path.exists(path):
            kept = [line for row, line in read_log(path) if row["step"] <= step]
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.writelines(kept)
            os.replace(path + ".tmp", path)


def log_step(out, step, stats, samples):
    """Append a metrics row and the logged completions (rank 0)."""
    with open(os.path.join(out, "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, **stats}) + "\n")
    if samples:
        with open(os.path.join(out, "samples.jsonl"), "a", encoding="utf-8") as f:
            f.writelines(json.dumps({"step": step, "id": i, "completion": c, "reward": r}) + "\n"
                         for i, c, r in samples)


def moving_average(values, window):
    """Mean of each value and the window - 1 before it (fewer at the start): [1, 3, 5, 7], 2 -> [1, 2, 4, 6]."""
    sums = np.cumsum([0.0, *values])
    starts = np.maximum(np.arange(1, len(values) + 1) - window, 0)
    return (sums[1:] - sums[starts]) / (np.arange(1, len(values) + 1) - starts)


def plot_curves(out):
    """curves.png: each per-step metric raw (faint) and as a moving average over a tenth of the run, and on the
    reward panel the held-out test reward (test/reward) at each step it was measured."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [row for row, _ in read_log(os.path.join(out, "metrics.jsonl"))]
    keys = [k for k in ("reward", "accuracy", "iou", "kl", "loss") if k in rows[0]]
    window = max(1, len(rows) // 10)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8))
    for ax, key in zip(np.atleast_1d(axes), keys):
        steps, values = [r["step"] for r in rows], [r[key] for r in rows]
        ax.plot(steps, values, alpha=0.3, lw=0.8, label="per step")
        ax.plot(steps, moving_average(values, window), lw=1.8, label=f"mean of {window}")
        tested = [(r["step"], r["test/reward"]) for r in rows if r.get("test/reward") is not None]
        if key == "reward" and tested:
            ax.plot(*zip(*tested), "o-", ms=4, label="test reward")
        ax.set_title(key)
        ax.set_xlabel("step")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, CURVES), dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit("run_folder.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
