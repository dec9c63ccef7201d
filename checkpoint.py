"""Checkpoints: a Hugging Face folder (safetensors, config, tokenizer; `from_pretrained` loads it) plus the trainer
state an exact resume needs (optimizer, scheduler, step, RNG, config), written to a temporary folder and renamed,
so a kill at any moment leaves either the whole checkpoint or none.

    OUT/checkpoint-STEP/   model.safetensors, config.json, generation_config.json, tokenizer files, trainer_state.pt

trainer_state.pt holds only tensors, numbers, strings and lists/tuples/dicts of them, and is read with
`torch.load(weights_only=True)`. A pickle read without that restriction runs whatever code it names: a checkpoint
folder is a file someone could plant, so a state that needs more than plain data is refused, never executed.
"""

import os
import random
import re
import shutil

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_optimizer_state_dict)

import distributed

STATE = "trainer_state.pt"
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
    """Gather the full weights and optimizer state, write OUT/checkpoint-STEP on rank 0, keep the last keep_last.
    Every rank must call it (the gathers are collectives). A failed write (a full disk) leaves no temporary folder
    and raises CheckpointError on every rank. Returns the folder."""
    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(policy, options=full)
    optim_state = get_optimizer_state_dict(policy, optimizer, options=full)
    final, error = os.path.join(out, f"checkpoint-{step}"), None
    if rank == 0:
        tmp = os.path.join(out, f".tmp-checkpoint-{step}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            policy.save_pretrained(tmp, state_dict=model_state)  # config.json, generation_config.json, safetensors
            tokenizer.save_pretrained(tmp)
            torch.save({"step": step, "optimizer": optim_state, "scheduler": scheduler.state_dict(),
                        "rng": rng_state(), "config": config}, os.path.join(tmp, STATE))
        except (OSError, RuntimeError) as e:  # a full disk: OSError from safetensors, RuntimeError from torch.save
            shutil.rmtree(tmp, ignore_errors=True)
            kept = [os.path.basename(c) for c in checkpoints(out)]
            error = (f"could not write {final} ({type(e).__name__}: {e}). Is the disk full? The checkpoints already "
                     f"in {out} are intact ({', '.join(kept) or 'none yet'}): free some space, then run again with "
                     "--resume auto.")
        else:
            shutil.rmtree(final, ignore_errors=True)  # only when re-running a step that was already saved
            os.replace(tmp, final)
            for old in checkpoints(out)[:-keep_last]:
                shutil.rmtree(old)
    error = distributed.broadcast(error)  # also the barrier: no rank goes on before the folder is complete
    if error:
        raise CheckpointError(error)
    return final


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
    """Restore optimizer (rank 0 reads, every rank gets its shard), scheduler and RNG -> the step to continue from."""
    state = read_state(path)
    set_optimizer_state_dict(policy, optimizer, state["optimizer"] if rank == 0 else {},
                             options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state["step"]
