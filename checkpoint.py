"""Checkpoints: a Hugging Face folder (safetensors, config, tokenizer; `from_pretrained` loads it) plus the trainer
state an exact resume needs (optimizer, scheduler, step, RNG, config), written to a temporary folder and renamed,
so a kill at any moment leaves either the whole checkpoint or none.

    OUT/checkpoint-STEP/   model.safetensors, config.json, generation_config.json, tokenizer files, trainer_state.pt
"""

import os
import random
import shutil

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_optimizer_state_dict)

STATE = "trainer_state.pt"


def checkpoints(out):
    """The checkpoint-STEP folders of a run folder, oldest first."""
    found = [d for d in os.listdir(out) if d.startswith("checkpoint-")] if os.path.isdir(out) else []
    return sorted((os.path.join(out, d) for d in found), key=lambda d: int(d.rsplit("-", 1)[1]))


def save(out, step, policy, optimizer, scheduler, tokenizer, config, keep_last, rank):
    """Gather the full weights and optimizer state, write OUT/checkpoint-STEP on rank 0, keep the last keep_last.
    Every rank must call it (the gathers are collectives). Returns the folder."""
    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(policy, options=full)
    optim_state = get_optimizer_state_dict(policy, optimizer, options=full)
    final = os.path.join(out, f"checkpoint-{step}")
    if rank == 0:
        tmp = os.path.join(out, f".tmp-checkpoint-{step}")
        shutil.rmtree(tmp, ignore_errors=True)
        policy.save_pretrained(tmp, state_dict=model_state)  # config.json, generation_config.json, safetensors
        tokenizer.save_pretrained(tmp)
        torch.save({"step": step, "optimizer": optim_state, "scheduler": scheduler.state_dict(),
                    "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                            "numpy": np.random.get_state()},
                    "config": config}, os.path.join(tmp, STATE))
        shutil.rmtree(final, ignore_errors=True)  # only when re-running a step that was already saved
        os.replace(tmp, final)
        for old in checkpoints(out)[:-keep_last]:
            shutil.rmtree(old)
    dist.barrier()
    return final


def resume_from(resume, out):
    """The checkpoint folder to resume from, or None. resume: '' | 'auto' (the last complete one in out) | a folder."""
    if resume == "auto":
        found = [d for d in checkpoints(out) if os.path.exists(os.path.join(d, STATE))]
        return found[-1] if found else None
    return resume or None


def load_state(path, policy, optimizer, scheduler, rank):
    """Restore optimizer (rank 0 reads, every rank gets its shard), scheduler and RNG -> the step to continue from."""
    state = torch.load(os.path.join(path, STATE), weights_only=False, mmap=True)  # read lazily
    set_optimizer_state_dict(policy, optimizer, state["optimizer"] if rank == 0 else {},
                             options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    return state["step"]
