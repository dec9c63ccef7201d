"""Processes: one set-up for train.py, select_data.py and eval.py, FSDP2 sharding and loading, the collectives,
and independent runs side by side (the toy default's seeds, reproduce.py's), each in a process of one thread.

Under torchrun each process reads its rank from the environment and joins one process group (nccl on GPUs, gloo on
CPUs). Under plain `python` the same code is a world of one: train.py still asks for a group (FSDP2 needs one even
for a single process), made on a free local port without touching os.environ; select_data.py and eval.py need none.
"""

import concurrent.futures
import multiprocessing
import os
import socket
import sys
import threading
import time
from datetime import timedelta

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from transformers import AutoConfig, GenerationConfig

import model as vlm

MASTER_WEIGHTS = "master_weights.safetensors"  # a checkpoint's float32 weights (its model.safetensors may be bf16)


def init(need_group=False, timeout_minutes=None):
    """-> (rank, world, device). need_group: make a one-process group under plain python too. timeout_minutes: how
    long a collective may wait for the slowest rank (the entry points pass --dist-timeout-minutes, config.py's
    TIMEOUT_MINUTES unless told; None keeps torch's default, 10 minutes with NCCL)."""
    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    timeout = None if timeout_minutes is None else timedelta(minutes=timeout_minutes)
    if "RANK" in os.environ:  # torchrun
        if cuda:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=timeout)
    elif need_group and not dist.is_initialized():  # (the toy default trains twice in one process)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                                timeout=timeout)
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    if not dist.is_initialized():
        return 0, 1, device
    return dist.get_rank(), dist.get_world_size(), device


def gather(items):
    """Every rank's list -> their concatenation, in rank order, on rank 0 ([] on the others)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return list(items)
    parts = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(list(items), parts, dst=0)
    return [x for part in parts for x in part] if dist.get_rank() == 0 else []


def broadcast(obj):
    """Rank 0's obj on every rank (a picklable object; under a world of one, obj itself). A collective: every rank
    waits for rank 0, so it doubles as a barrier, and an error found on rank 0 reaches every rank."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def close():
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(module, mesh, compute_dtype):
    """FSDP2: each decoder layer and vision block is a unit, the root holds the rest (embeddings, head, merger).
    Parameters are kept as they are stored; forward and backward run in compute_dtype, gradients reduce in float32.

    FSDP2 also casts a unit's floating-point inputs to compute_dtype by default. A vision block's inputs include the
    tower's rotary tables (cos, sin), float32 by design (the tower rotates q and k in float32), which would then
    reach the blocks in bf16 in training but float32 in eval and selection; so vision blocks keep their inputs as
    they come. Their hidden states already arrive in compute_dtype: the patch embedding, a root weight, casts to it."""
    mp = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    vision_mp = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32, cast_forward_inputs=False)
    for block in module.model.visual.blocks:
        fully_shard(block, mesh=mesh, mp_policy=vision_mp)
    for layer in module.model.language_model.layers:
        fully_shard(layer, mesh=mesh, mp_policy=mp)
    fully_shard(module, mesh=mesh, mp_policy=mp)
    return module


def load_sharded(path, dtype, compute_dtype, mesh, device, grad_checkpointing=False):
    """A checkpoint folder -> the FSDP2-sharded model, its weights read from disk once: rank 0 loads the full model
    on the CPU; every rank builds the same model on the meta device (no memory), shards it, allocates only its shard
    on device and receives its part of rank 0's weights (set_model_state_dict with broadcast_from_rank0). Host
    memory then holds one full copy per node instead of one per rank (8 x 33 GB in float32 at 7B).
    Buffers outside the state dict (the rotary inv_freq tables, computed at construction) come from rank 0 too.
    A checkpoint of ours also holds the float32 weights training had (MASTER_WEIGHTS): they are the ones read, so
    that a resume (or a next stage started from it) goes on from them, not from their bf16 export."""
    full = vlm.load_model(path, dtype=dtype) if dist.get_rank() == 0 else None
    if full is not None and os.path.isfile(os.path.join(path, MASTER_WEIGHTS)):
        full.load_state_dict(load_file(os.path.join(path, MASTER_WEIGHTS)), strict=True)
    with torch.device("meta"):
        module = vlm.load_model(AutoConfig.from_pretrained(path, trust_remote_code=False), dtype=dtype)
    if os.path.isfile(os.path.join(path, "generation_config.json")):
        module.generation_config = GenerationConfig.from_pretrained(path)
    if grad_checkpointing:
        module.activation_checkpointing_enable()
    if full is not None:  # rank 0 saves: keep the key renaming from_pretrained used, so checkpoints keep its names
        module._weight_conversions = getattr(full, "_weight_conversions", None)
    module = shard(module, mesh, compute_dtype)
    module.to_empty(device=device)
    weights = full.state_dict() if full is not None else {}
    extra = broadcast({n: b for n, b in full.named_buffers() if n not in weights} if full is not None else None)
    set_model_state_dict(module, weights, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    with torch.no_grad():
        for name, value in extra.items():
            module.get_buffer(name).copy_(value)
    return module


def gathered_for_rollout(module, gather):
    """Gather (True) or re-shard (False) every FSDP unit: decoding then runs no collective per token."""
    for m in module.modules():
        if isinstance(m, FSDPModule):
            if m is not module:  # the root never re-shards after forward: FSDP2 keeps it gathered for backward
                m.set_reshard_after_forward(not gather, recurse=False)
            m.unshard() if gather else m.reshard()


def all_reduce_mean(values, device):
    """Mean over ranks of a dict of floats (only metrics cross ranks)."""
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: v / dist.get_world_size() for k, v in zip(keys, t.tolist())}


def reshard(module):
    """Free the gathered weights of an FSDP2 root after a no-grad forward (FSDP2 keeps a root gathered for a
    backward, which a frozen reference never runs); a module that is not sharded is left as it is."""
    if isinstance(module, FSDPModule):
        module.reshard()


# ----------------------------------------------------------------------------------------------------------------
# independent runs side by side (the toy default's seeds)

def in_own_process(parent, log, fn, *args):
    """fn(*args) in this (spawned) process with one thread, its output appended to `log`; the process ends when
    `parent` (the command that started it) is gone, killed or not, so nothing runs on unseen (resume continues)."""
    def exit_with_parent():
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(1)
    threading.Thread(target=exit_with_parent, daemon=True).start()
    torch.set_num_threads(1)
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "a", encoding="utf-8") as out:
        sys.stdout = sys.stderr = out
        try:
            return fn(*args)
        finally:
            close()


def side_by_side(fn, runs, out):
    """[fn(*args) for (name, args) in runs], each in its own process of one thread (logs in OUT/NAME/log.txt)."""
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(len(runs), mp_context=spawn) as pool:
        futures = [pool.submit(in_own_process, os.getpid(), os.path.join(out, name, "log.txt"), fn, *args)
                   for name, args in runs]
        return [f.result() for f in futures]


if __name__ == "__main__":
    raise SystemExit("distributed.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
