"""select_data.py's resume log (safe to skip on a first read: it makes a long selection restartable, nothing more).

    selected.partial.jsonl   line 1: {"settings": the sampling settings, "model": a hash of the weights}
                             then one JSON line per finished sample: id, task, key, G x [total, format, accuracy,
                             iou, right] (or the load error)

A rerun skips every sample already in the log whose key (the row as written and its video file) is unchanged;
other sampling settings or other weights are refused. Rank 0 rewrites the log once at start (a new file renamed
over the old, so a kill then loses nothing); then every rank appends finished batches with O_APPEND writes.
"""

import hashlib
import json
import os
from pathlib import Path

import torch.distributed as dist

import distributed


def model_identity(path):
    """A hash of the checkpoint's config.json and weight files, read in full: the resume log's rewards hold only for
    the weights that sampled them (a checkpoint replaced at the same path must not be answered from the log)."""
    digest = hashlib.sha256()
    for name in ["config.json", *sorted(n for n in os.listdir(path) if n.endswith((".safetensors", ".bin")))]:
        digest.update(name.encode() + b"\0")
        with open(os.path.join(path, name), "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def row_key(line, row):
    """A hash of what a sample's rewards depend on besides the model and the settings: the row as written and its
    video file (path, inode, size, modification and change times). The change time (ctime) moves on every write and
    no tool sets it back, so a video rewritten in place with its size and mtime kept (cp -p, rsync -t, touch -r) is
    sampled again; reading every video's bytes at start would cost as much as a first pass of decoding."""
    stat = os.stat(row["video"])
    video = f"{row['video']}\0{stat.st_ino}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}"
    return hashlib.sha256(f"{line}\0{video}".encode()).hexdigest()[:16]


def deal(chunks, done, rank, world):
    """The batch indices j this rank samples: the batches still to do (any sample missing from the log; the batch is
    re-sampled whole, with seed + j), dealt round-robin. Dealing what remains, not all batches, keeps a resumed run
    fair: dealing all and skipping the done ones could leave one rank with every batch left. Rank 0's log decides
    (a rank reading the log later might already see another's new lines)."""
    todo = [j for j, chunk in enumerate(chunks) if any(r["id"] not in done for r in chunk)]
    return distributed.broadcast(todo)[rank::world]


def open_partial(path, settings, model, keys, rank, world):
    """Create or check the resume log -> {id: result} already finished, for the rows as they are now.

    Line 1 is {"settings": ..., "model": model identity}; a log written with other settings or by other weights
    is refused (its rewards would mix two experiments). A logged result counts only while its key is the row's
    (keys: {id: row_key}); a row changed since is sampled again. Rank 0 drops a torn last line (a run killed
    mid-write) before any rank appends.
    """
    path = Path(path)
    if rank == 0:
        lines = path.read_text(encoding="utf-8").split("\n") if path.exists() else []
        good = []
        for line in lines:
            try:
                good.append(json.dumps(json.loads(line)))
            except ValueError:
                continue
        if not good:
            good = [json.dumps({"settings": settings, "model": model})]
        tmp = path.with_name(path.name + ".tmp")  # a kill while it is written leaves the old log whole
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in good)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    if world > 1:
        dist.barrier()
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    if json.loads(header).get("settings") != settings:
        raise SystemExit(f"{path} was written with other settings:\n  {header}\nnow:\n  {json.dumps(settings)}\n"
                         "use the same ones, or delete it to start over")
    if json.loads(header).get("model") != model:
        raise SystemExit(f"{path} was written by other weights than those now at --model (weights hash "
                         f"{json.loads(header).get('model')} -> {model}): delete it to select again with these "
                         "weights, or pass another --out")
    logged = [r for r in map(json.loads, lines) if "failed" not in r]  # failed videos are tried again
    done = {r["id"]: r for r in logged if r.get("key") == keys.get(r["id"])}
    changed = sorted({r["id"] for r in logged if r["id"] in keys} - set(done))
    if changed and rank == 0:
        print(f"{len(changed)} sample(s) changed since {path} logged them (row or video), sampled again: "
              f"{', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}")
    return done


def append_partial(path, results):
    """Append finished results, one JSON line each, in one write (O_APPEND: ranks do not interleave lines)."""
    text = "".join(json.dumps(r) + "\n" for r in results)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


if __name__ == "__main__":
    raise SystemExit("selection_log.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
