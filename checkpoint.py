"""Checkpoints: a Hugging Face folder (safetensors, config, tokenizer; `from_pretrained` loads it) plus the trainer
state an exact resume needs (AdamW's moments, scheduler, step, every rank's RNG, config), written to a temporary
folder and renamed, so a kill at any moment leaves either the whole checkpoint or none.

    OUT/checkpoint-STEP/   model.safetensors, config.json, generation_config.json, tokenizer files (rank 0)
                           trainer_state.pt   step, scheduler, optimizer hyper-parameters, RNG of each rank, config
                           optimizer/         AdamW's moments, sharded: each rank writes its own part
                                              (torch.distributed.checkpoint: one .distcp file per rank + .metadata)

Nothing here is unpickled as code. trainer_state.pt holds only tensors, numbers, strings and lists/tuples/dicts of
them, and is read with `torch.load(weights_only=True)`. optimizer/ holds tensors only, which DCP reads with
weights_only=True; its .metadata file is a plain pickle of DCP's own index classes, which we read with an
unpickler that admits those classes (and torch's dtypes and sizes) and nothing else, and an entry stored as bytes
(which DCP would read as a full pickle) is refused. A pickle read without such limits runs whatever code it names:
a checkpoint folder is a file someone could plant, so a state that needs more than plain data is refused.
"""

import os
import pickle
import random
import re
import shutil

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_optimizer_state_dict)

import distributed

STATE = "trainer_state.pt"
OPTIMIZER = "optimizer"  # the sharded AdamW moments (a DCP folder)
NAME = re.compile(r"checkpoint-(\d+)")  # checkpoint-best, checkpoint-final ... are not ours and left alone
TMP = re.compile(r"\.tmp-checkpoint-(\d+)")  # a save in progress, or one a kill interrupted


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the folder and what to do."""


def checkpoints(out):
    """The checkpoint-STEP folders of a run folder, oldest first."""
    found = [d for d in os.listdir(out) if NAME.fullmatch(d)] if os.path.isdir(out) else []
    return sorted((os.path.join(out, d) for d in found), key=step_of)


def step_of(path):
    """checkpoint-STEP -> STEP."""
    return int(NAME.fullmatch(os.path.basename(os.path.normpath(path))).group(1))


def rng_state():
    """The torch, python and numpy RNG states in plain types (numpy's key array as a list of ints)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": [kind, keys.tolist(), pos, has_gauss, cached]}


def set_rng_state(rng):
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def save(out, step, policy, optimizer, scheduler, tokenizer, config, keep_last, rank):
    """Write OUT/checkpoint-STEP and keep the last keep_last. Every rank must call it (collectives): each rank writes
    its shard of AdamW's moments; rank 0 writes the gathered full weights (the HF folder) and the trainer state.
    A failed write on any rank (a full disk) leaves no temporary folder and raises CheckpointError on every rank.
    Returns the folder."""
    model_state = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    optim_state = get_optimizer_state_dict(policy, optimizer)  # sharded: {"state": DTensors, "param_groups": ...}
    rngs = distributed.gather([rng_state()])  # ranks' RNG states, in rank order, on rank 0
    final, tmp = os.path.join(out, f"checkpoint-{step}"), os.path.join(out, f".tmp-checkpoint-{step}")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    distributed.broadcast(None)  # no rank writes before the old temporary folder is gone
    problem = None
    try:
        dcp.save({"state": optim_state["state"]}, checkpoint_id=os.path.join(tmp, OPTIMIZER))
        if rank == 0:
            policy.save_pretrained(tmp, state_dict=model_state)  # config.json, generation_config.json, safetensors
            tokenizer.save_pretrained(tmp)
            torch.save({"step": step, "param_groups": optim_state["param_groups"], "scheduler": scheduler.state_dict(),
                        "rng": rngs, "config": config}, os.path.join(tmp, STATE))
    except (Exception, dcp.CheckpointException) as e:  # a full disk: OSError, RuntimeError (torch.save), DCP's
        problem = reason(e)
    problems = [p for p in distributed.gather([problem]) if p]
    error = None
    if rank == 0 and problems:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = [os.path.basename(c) for c in checkpoints(out)]
        error = (f"could not write {final} ({problems[0]}). Is the disk full? The checkpoints already in {out} are "
                 f"intact ({', '.join(kept) or 'none yet'}): free some space, then run again with --resume auto.")
    elif rank == 0:
        shutil.rmtree(final, ignore_errors=True)  # only when re-running a step that was already saved
        os.replace(tmp, final)
        for old in checkpoints(out)[:-keep_last]:
            shutil.rmtree(old)
    error = distributed.broadcast(error)  # also the barrier: no rank goes on before the folder is complete
    if error:
        raise CheckpointError(error)
    return final


def reason(e):
    """An error in one line; DCP's CheckpointException (a BaseException) carries each failed rank's traceback,
    whose last line says what went wrong."""
    lines = str(e).strip().splitlines() or [""]
    return (lines[-1] if isinstance(e, dcp.CheckpointException) else f"{type(e).__name__}: {lines[0]}")[:300]


class MetadataReader(dcp.FileSystemReader):
    """DCP's reader, but its .metadata pickle may name only DCP's index classes and torch's dtypes and sizes, each
    by its exact name (a dotted name such as `os.system` reached through a module's imports is refused too)."""

    ALLOWED = {("torch.distributed.checkpoint.metadata", name) for name in (
        "Metadata", "TensorStorageMetadata", "BytesStorageMetadata", "ChunkStorageMetadata", "TensorProperties",
        "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING")} | {
        ("torch.distributed.checkpoint.filesystem", "_StorageInfo"), ("torch", "Size"),
        ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"),
        ("collections", "OrderedDict")}  # shapes, layouts, the folder's path

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            dtype = module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)  # torch.float32 ...
            if (module, name) in MetadataReader.ALLOWED or dtype:
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"GLOBAL {module}.{name}")

    def read_metadata(self, *args, **kwargs):
        path = self.fs.concat_path(self.path, ".metadata")
        with self.fs.create_stream(path, "rb") as f:
            metadata = self.Unpickler(f).load()
        metadata.storage_meta = metadata.storage_meta or dcp.metadata.StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class TensorsOnly(DefaultLoadPlanner):
    """DCP reads an entry stored as bytes with a full pickle: our optimizer folder has none, so one is refused."""

    def load_bytes(self, read_item, value):
        raise CheckpointError(f"{read_item.dest_index.fqn} is stored as a pickle, not a tensor: refused")


def read_state(path):
    """The trainer state of a checkpoint folder, read with weights_only=True (lazily: the optimizer's tensors
    stay on disk until used). Anything else is a CheckpointError naming the file."""
    file = os.path.join(path, STATE)
    if not os.path.isfile(file):
        raise CheckpointError(f"{path} is not a checkpoint of a training run: it has no {STATE}")
    try:
        return torch.load(file, weights_only=True, mmap=True)
    except Exception as e:  # UnpicklingError for a pickle that names code, RuntimeError for a torn file
        code = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f"it calls {code.group(1)}, which is code, not data" if code else f"{type(e).__name__}: " + \
            (str(e).strip().splitlines() or [""])[0][:120]
        raise CheckpointError(
            f"refused to load {file} ({what}). A trainer state holds only tensors, numbers and strings; loading this "
            "file as a full pickle could run code planted in it. Resume from another checkpoint, or delete this "
            "one.") from e


def resume_from(resume, out):
    """The checkpoint folder to resume from, or None. resume: '' | 'auto' (the last complete one in out) | a folder."""
    if resume == "auto":
        found = [d for d in checkpoints(out) if os.path.exists(os.path.join(d, STATE))]
        return found[-1] if found else None
    if resume and not os.path.isfile(os.path.join(resume, STATE)):
        raise CheckpointError(f"--resume {resume}: not a checkpoint folder of a training run (no {STATE} in it)")
    return resume or None


def check_config(path, config, resumable):
    """A resumed run is the same experiment: a setting that differs from the config stored in the checkpoint refuses
    the resume (a CheckpointError naming each), unless it is one of `resumable` -> those, as text ('' if none)."""
    stored = read_state(path)["config"]
    changed = [k for k in config if k in stored and stored[k] != config[k]]
    said = lambda keys: ", ".join(f"--{k.replace('_', '-')} {stored[k]!r} -> {config[k]!r}" for k in keys)
    refused = [k for k in changed if k not in resumable]
    if refused:
        raise CheckpointError(f"{path} was trained with other settings: {said(refused)}. Resume with the "
                              f"checkpoint's values, or start a new run from its weights in another --out.")
    return said(changed)


def load_state(path, policy, optimizer, scheduler, rank):
    """Restore AdamW (each rank reads its own shard), scheduler and this rank's RNG -> the step to continue from."""
    state = read_state(path)
    shards = get_optimizer_state_dict(policy, optimizer)["state"]  # this rank's part, to be filled in place
    try:
        dcp.load({"state": shards}, storage_reader=MetadataReader(os.path.join(path, OPTIMIZER)),
                 planner=TensorsOnly())
    except (Exception, dcp.CheckpointException) as e:
        raise CheckpointError(f"could not read {os.path.join(path, OPTIMIZER)} ({reason(e)}). Resume from another "
                              "checkpoint, or delete this one.") from e
    set_optimizer_state_dict(policy, optimizer, {"state": shards, "param_groups": state["param_groups"]})
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"][min(rank, len(state["rng"]) - 1)])  # more ranks than saved: the last rank's
    return state["step"]


if __name__ == "__main__":
    raise SystemExit("checkpoint.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py / toy.py")
