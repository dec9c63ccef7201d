"""train.py: GRPO (and SFT) for video LLMs, one file you read top to bottom.

    python train.py                                   # the embedded toy default: tiny model, synthetic videos, CPU
    torchrun --nproc_per_node 8 train.py --model Qwen/Qwen2.5-VL-7B-Instruct --data train.jsonl --out runs/tvg

One GRPO step (the loop in `train`, in this order):
    B prompts per rank -> model.sample: G completions each (prompt prefilled once, KV cache forked G ways)
    -> rewards.score -> grpo.group_advantages -> model.pack ([prompt, c_1 .. c_G] per group)
    -> old log-probs (only when updates_per_batch > 1) and reference log-probs
    -> grpo.policy_loss -> backward -> grad-norm clip -> optimizer step -> log -> checkpoint

How this departs from textbook GRPO (Shao et al. 2024), on purpose and as the Temporal-R1 release does:
  - the loss averages over all completion tokens of the global batch (`--aggregate token`, DAPO-style): each
    micro-batch is weighted by its share of the tokens of all ranks, so every token counts the same;
  - with one update per batch (the default) the old policy is the current one, so the ratio is 1 in value and
    only its gradient matters; `--updates_per_batch > 1` recomputes old log-probs with the packed forward;
  - groups whose G rewards are all equal carry no signal: their advantage is 0 and they are counted.

Distributed: FSDP2 (`fully_shard`) on every decoder layer and vision block, then the root. Without torchrun the
same code runs as a world of one. Rollouts gather the full weights once and decode without collectives.
Precision: the policy's weights and AdamW states are float32; with `--dtype bfloat16` FSDP2 computes in bf16 and
reduces gradients in float32 (an lr of 1e-6 would vanish in bf16 weights). The reference is stored in `--dtype`.
"""

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_optimizer_state_dict)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from tqdm import tqdm
from transformers import AutoTokenizer

import data
import eval as evaluation
import grpo
import model as vlm
import rewards


def arg(default, help):
    """A config field with its one-line help, shown by --help."""
    return field(default=default, metadata={"help": help})


# video defaults and help shared with eval.py and select_data.py (inside Config, `data` is a field)
VIDEO, VIDEO_HELP = data.VideoConfig(), data.VIDEO_FLAGS


@dataclass
class Config:
    # what to train, on what, where to write
    model: str = arg("", "Hugging Face checkpoint folder (Qwen2.5-VL or Qwen3-VL); empty = the toy default")
    data: str = arg("", "training JSONL in our schema (README); empty = the toy task")
    test_data: str = arg("", "JSONL evaluated before and after training (optional)")
    out: str = arg("runs/toy", "run folder: metrics.jsonl, samples.jsonl, curves.png, checkpoint-STEP/")
    mode: str = arg("grpo", "grpo | sft (supervised targets built from the ground truth)")
    skip_bad: bool = arg(False, "drop malformed JSONL rows (listed in OUT/bad_rows.json) instead of stopping")
    # the method's knobs (defaults of the Temporal-R1 release)
    steps: int = arg(200, "optimizer steps")
    batch_size: int = arg(2, "prompts per rank per step")
    pack_prompts: int = arg(1, "prompt groups per packed forward (micro-batch); gradients accumulate over them")
    group_size: int = arg(8, "G, completions per prompt")
    beta: float = arg(0.01, "k3 KL coefficient; 0 drops the reference model")
    clip_low: float = arg(0.2, "ratio clipped below at 1 - clip_low")
    clip_high: float = arg(0.2, "ratio clipped above at 1 + clip_high")
    aggregate: str = arg("token", "token (mean over all completion tokens) | sequence (original GRPO)")
    scale_advantages: bool = arg(True, "divide by the group std; False = Dr. GRPO")
    updates_per_batch: int = arg(1, "policy updates per rollout batch (old log-probs kept when > 1)")
    temperature: float = arg(1.0, "rollout sampling temperature")
    top_p: float = arg(1.0, "rollout nucleus sampling")
    max_new_tokens: int = arg(256, "completion length limit (cut completions are flagged 'truncated')")
    # video (data.VideoConfig: qwen-vl-utils' frame rule at the Temporal-R1 release's budget)
    fps: float = arg(VIDEO.fps, VIDEO_HELP["fps"])
    min_frames: int = arg(VIDEO.min_frames, VIDEO_HELP["min_frames"])
    max_frames: int = arg(VIDEO.max_frames, VIDEO_HELP["max_frames"])
    video_tokens: int = arg(VIDEO.video_tokens, VIDEO_HELP["video_tokens"])
    frame_min_tokens: int = arg(VIDEO.frame_min_tokens, VIDEO_HELP["frame_min_tokens"])
    # optimisation
    lr: float = arg(1e-6, "peak learning rate (AdamW)")
    warmup_steps: int = arg(0, "linear warm-up steps")
    schedule: str = arg("constant", "constant | cosine (after warm-up)")
    weight_decay: float = arg(0.0, "AdamW weight decay")
    grad_clip: float = arg(1.0, "global gradient-norm clip")
    dtype: str = arg("bfloat16", "compute dtype, bfloat16 | float32 (weights and optimizer stay float32)")
    grad_checkpointing: bool = arg(False, "recompute each decoder layer and vision block in backward (long completions)")
    seed: int = arg(0, "seeds the data order and every rollout")
    # bookkeeping
    save_every: int = arg(50, "checkpoint every N steps (and at the end)")
    keep_last: int = arg(2, "checkpoints kept")
    resume: str = arg("", "'' | auto (last complete checkpoint in OUT) | a checkpoint folder")
    log_samples: int = arg(2, "completions per step written to samples.jsonl")
    stop_after: int = arg(0, "exit after this many steps of this process (tests simulate a kill); 0 = never")
    # the toy default (no --model)
    toy_n: int = arg(240, "toy clips generated (train and test split)")
    toy_sft_steps: int = arg(400, "toy SFT warm-start steps")
    toy_grpo_steps: int = arg(120, "toy GRPO steps")


def parse_config(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for f in dataclasses.fields(Config):
        if f.type is bool or f.type == "bool":
            parser.add_argument(f"--{f.name}", type=lambda s: s.lower() in ("1", "true", "yes"), default=f.default,
                                help=f.metadata["help"])
        else:
            parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default, help=f.metadata["help"])
    cfg = Config(**vars(parser.parse_args(argv)))
    assert cfg.mode in ("grpo", "sft"), cfg.mode
    assert cfg.mode == "sft" or cfg.group_size >= 2, "GRPO needs G >= 2 completions per prompt"
    assert cfg.batch_size % cfg.pack_prompts == 0, "batch_size must be a multiple of pack_prompts"
    assert cfg.aggregate in ("token", "sequence") and cfg.schedule in ("constant", "cosine")
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# distributed set-up: torchrun's env, or a world of one

def init_distributed():
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():  # (the toy default trains twice in one process)
        if "RANK" not in os.environ:  # plain `python train.py`: the same code as a world of one
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                              MASTER_PORT=str(port))
        if cuda:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    return dist.get_rank(), dist.get_world_size(), device


def shard(module, mesh, compute_dtype):
    """FSDP2: each decoder layer and vision block is a unit, the root holds the rest (embeddings, head, merger).
    Parameters are kept as they are stored; forward and backward run in compute_dtype, gradients reduce in float32."""
    mp = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    for block in module.model.visual.blocks:
        fully_shard(block, mesh=mesh, mp_policy=mp)
    for layer in module.model.language_model.layers:
        fully_shard(layer, mesh=mesh, mp_policy=mp)
    fully_shard(module, mesh=mesh, mp_policy=mp)
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


# ----------------------------------------------------------------------------------------------------------------
# data order: a pure function of (seed, step, rank), so resume needs only the step

def prompt_indices(n_rows, seed, step, batch_size, rank, world):
    """Global batch `step` = the next B*W rows of an endless sequence of seeded permutations; rank r takes every
    W-th of them (nanochat's rule). Returns the rank's row indices in order, then spares for failed samples."""
    per_step = batch_size * world
    start = step * per_step
    needed = per_step * 2  # a rank's batch plus as many spares, for samples whose video fails to load
    out, epoch, pos = [], start // n_rows, start % n_rows
    while len(out) < needed:
        order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
        out += order[pos:]
        epoch, pos = epoch + 1, 0
    return out[rank:needed:world]


def take_samples(rows, indices, want, tokenizer, family, video_cfg, skipped):
    """Decode videos for the first `want` rows that load; a failing video is skipped, counted and logged by id."""
    samples = []
    for i in indices:
        if len(samples) == want:
            break
        try:
            samples.append(data.prepare_sample(rows[i], tokenizer, family, video_cfg))
        except data.DataError as err:
            skipped.append(rows[i]["id"])
            print(f"[skip] {err}", file=sys.stderr)
    assert len(samples) == want, f"too many unreadable videos in a row (skipped: {skipped[-8:]})"
    return samples


# ----------------------------------------------------------------------------------------------------------------
# checkpoints: HF format + trainer state, written to a temporary folder and renamed

def checkpoints(out):
    found = [d for d in os.listdir(out) if d.startswith("checkpoint-")] if os.path.isdir(out) else []
    return sorted((os.path.join(out, d) for d in found), key=lambda d: int(d.rsplit("-", 1)[1]))


def save_checkpoint(cfg, step, policy, optimizer, scheduler, tokenizer, rank):
    model_state = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    optim_state = get_optimizer_state_dict(policy, optimizer,
                                           options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    final = os.path.join(cfg.out, f"checkpoint-{step}")
    if rank == 0:
        tmp = os.path.join(cfg.out, f".tmp-checkpoint-{step}")
        shutil.rmtree(tmp, ignore_errors=True)
        policy.save_pretrained(tmp, state_dict=model_state)  # config.json, generation_config.json, safetensors
        tokenizer.save_pretrained(tmp)
        torch.save({"step": step, "optimizer": optim_state, "scheduler": scheduler.state_dict(),
                    "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                            "numpy": np.random.get_state()},
                    "config": dataclasses.asdict(cfg)}, os.path.join(tmp, "trainer_state.pt"))
        shutil.rmtree(final, ignore_errors=True)  # only when re-running a step that was already saved
        os.replace(tmp, final)
        for old in checkpoints(cfg.out)[:-cfg.keep_last]:
            shutil.rmtree(old)
    dist.barrier()
    return final


def resume_from(cfg):
    """The checkpoint folder to resume from, or None."""
    if cfg.resume == "auto":
        found = [d for d in checkpoints(cfg.out) if os.path.exists(os.path.join(d, "trainer_state.pt"))]
        return found[-1] if found else None
    return cfg.resume or None


def load_trainer_state(path, policy, optimizer, scheduler, rank):
    state = torch.load(os.path.join(path, "trainer_state.pt"), weights_only=False, mmap=True)  # read lazily
    set_optimizer_state_dict(policy, optimizer, state["optimizer"] if rank == 0 else {},
                             options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    return state["step"]


def trim_logs(out, step):
    """Drop log rows past the checkpoint a run resumes from: the resumed run writes those steps again."""
    for name in ("metrics.jsonl", "samples.jsonl"):
        path = os.path.join(out, name)
        if os.path.exists(path):
            with open(path) as f:
                kept = [line for line in f if json.loads(line)["step"] <= step]
            with open(path, "w") as f:
                f.writelines(kept)


def plot_curves(out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    keys = [k for k in ("reward", "accuracy", "iou", "kl", "loss") if k in rows[0]]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8))
    for ax, key in zip(np.atleast_1d(axes), keys):
        ax.plot([r["step"] for r in rows], [r[key] for r in rows])
        ax.set_title(key)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=80)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------------
# the loop

def lr_lambda(cfg):
    def factor(step):
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine":
            progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0
    return factor


def train(cfg):
    """Run `cfg.steps` steps of GRPO or SFT; returns the last checkpoint's folder."""
    rank, world, device = init_distributed()
    master = rank == 0
    os.makedirs(cfg.out, exist_ok=True)
    torch.manual_seed(cfg.seed)
    dtype = getattr(torch, cfg.dtype)
    mesh = init_device_mesh(device.type, (world,))

    resume = resume_from(cfg)
    tokenizer = AutoTokenizer.from_pretrained(resume or cfg.model)
    policy = vlm.load_model(resume or cfg.model, dtype=torch.float32).to(device)  # float32 master weights
    if cfg.grad_checkpointing:
        policy.activation_checkpointing_enable()
    policy = shard(policy, mesh, dtype)
    family = policy.config.model_type
    reference = None
    if cfg.mode == "grpo" and cfg.beta > 0:  # the frozen reference is always the starting model
        reference = vlm.load_model(cfg.model, dtype=dtype).to(device).eval().requires_grad_(False)
        reference = shard(reference, mesh, dtype)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    start = load_trainer_state(resume, policy, optimizer, scheduler, rank) if resume else 0
    if resume and master:
        trim_logs(cfg.out, start)

    bad_report = os.path.join(cfg.out, "bad_rows.json") if cfg.skip_bad else None
    rows = data.load_jsonl(cfg.data, skip_bad=cfg.skip_bad, report=bad_report)
    video_cfg = data.video_config(cfg)
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id
    if master:
        print(f"{cfg.mode}: {len(rows)} rows, world {world}, {cfg.batch_size} prompts/rank x G={cfg.group_size}"
              f" = {cfg.batch_size * world * (cfg.group_size if cfg.mode == 'grpo' else 1)} sequences/step,"
              f" steps {start}->{cfg.steps}, resume={resume}")
    skipped = []
    last_checkpoint = resume
    bar = tqdm(range(start, cfg.steps), disable=not master, initial=start, total=cfg.steps, dynamic_ncols=True)
    for step in bar:
        t0 = time.time()
        indices = prompt_indices(len(rows), cfg.seed, step, cfg.batch_size, rank, world)
        prompts = take_samples(rows, indices, cfg.batch_size, tokenizer, family, video_cfg, skipped)

        # ---- rollouts: G completions per prompt (SFT: the one ground-truth target) ----------------------------
        if cfg.mode == "sft":
            completions = [torch.tensor(tokenizer.encode(data.target_text(s.row)) + [eos]) for s in prompts]
            groups = [(s, [c]) for s, c in zip(prompts, completions)]
            stats = {}
        else:
            policy.eval()
            gathered_for_rollout(policy, True)
            with torch.no_grad():
                rollout = vlm.sample(policy, prompts, cfg.group_size, cfg.max_new_tokens, cfg.temperature,
                                     cfg.top_p, seed=cfg.seed * 1_000_003 + step * world + rank,
                                     eos_token_id=eos, pad_token_id=pad)
            gathered_for_rollout(policy, False)
            policy.train()
            completions = rollout.completions()  # list of [len_i] ids, prompt-major
            t_rollout = time.time() - t0

            # ---- rewards and group-relative advantages ---------------------------------------------------------
            texts = tokenizer.batch_decode(completions, skip_special_tokens=False)
            scores = [rewards.score(text, prompts[i // cfg.group_size].row) for i, text in enumerate(texts)]
            reward = torch.tensor([s.total for s in scores], dtype=torch.float32)  # [B*G]
            finite = torch.isfinite(reward)
            if not finite.all():  # rewards.score never returns NaN; if a custom weight does, do not learn from it
                print(f"[skip] non-finite reward for {[prompts[i // cfg.group_size].id for i in (~finite).nonzero()]}")
                reward = torch.where(finite, reward, 0.0)
            advantages, n_flat = grpo.group_advantages(reward, cfg.group_size, scale=cfg.scale_advantages)
            advantages = torch.where(finite, advantages, 0.0)
            groups = [(s, completions[i * cfg.group_size:(i + 1) * cfg.group_size]) for i, s in enumerate(prompts)]
            stats = {"reward": reward.mean().item(),
                     "format": float(np.mean([s.format for s in scores])),
                     "accuracy": float(np.mean([s.accuracy for s in scores])),
                     "iou": float(np.mean([s.iou for s in scores])),
                     "zero_variance_groups": n_flat,
                     "truncated": rollout.truncated.float().mean().item(),
                     "completion_len": rollout.lengths.float().mean().item()}
        t1 = time.time()

        # ---- pack micro-batches; old and reference log-probs ------------------------------------------------------
        micro = [groups[i:i + cfg.pack_prompts] for i in range(0, len(groups), cfg.pack_prompts)]
        packs = [vlm.pack(m, policy.config).to(device) for m in micro]
        n_seq = cfg.pack_prompts * (1 if cfg.mode == "sft" else cfg.group_size)
        temp = cfg.temperature if cfg.mode == "grpo" else 1.0  # log-probs of the distribution rollouts sampled
        with torch.no_grad():
            old_logps = [vlm.completion_logprobs(policy, p, temp) for p in packs] if cfg.updates_per_batch > 1 \
                else None
            ref_logps = [vlm.completion_logprobs(reference, p, temp) for p in packs] if reference is not None \
                else None
        t_logprob = time.time() - t1
        n_tokens = sum(int(p.mask.sum()) for p in packs)  # this rank's completion tokens
        all_tokens = torch.tensor(float(n_tokens), device=device)
        dist.all_reduce(all_tokens)  # every rank's: a micro-batch weighs its share of them (x world: FSDP averages)
        token_share = world / all_tokens.item()

        # ---- policy update(s): loss -> backward -> clip -> step ----------------------------------------------
        t2 = time.time()
        for _ in range(cfg.updates_per_batch):
            loss_sum, kl, clip_lo, clip_hi = 0.0, 0.0, 0.0, 0.0
            for j, p in enumerate(packs):
                logp = p.unflatten(vlm.completion_logprobs(policy, p, temp))  # [n_seq, T_max]
                mask = p.mask.to(logp.device)
                if cfg.mode == "sft":
                    loss = -(logp * mask).sum() * token_share  # mean NLL over all target tokens of the batch
                    part = {}
                else:
                    old = p.unflatten(old_logps[j]) if old_logps else logp.detach()
                    ref = p.unflatten(ref_logps[j]) if ref_logps else None
                    adv = advantages[j * n_seq:(j + 1) * n_seq].to(logp.device)
                    loss, part = grpo.policy_loss(logp, old, ref, adv, mask, cfg.clip_low, cfg.clip_high, cfg.beta,
                                                  cfg.aggregate)
                    weight = mask.sum() * token_share if cfg.aggregate == "token" else 1 / len(packs)
                    loss = loss * weight  # micro-batches add up to the batch's mean
                    weight = float(weight)
                    kl += part["kl"] * weight
                    clip_lo += part["clip_low_frac"] * weight
                    clip_hi += part["clip_high_frac"] * weight
                loss.backward()
                loss_sum += loss.item()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            bad = torch.tensor([0.0 if math.isfinite(loss_sum) and torch.isfinite(grad_norm) else 1.0], device=device)
            dist.all_reduce(bad)
            if bad.item() > 0:  # never let a NaN reach the weights
                print(f"[warn] step {step}: non-finite loss or gradient, update skipped", file=sys.stderr)
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        t_update = time.time() - t2

        # ---- log: metrics averaged over ranks, a few completions, the progress bar -------------------------------
        stats.update(loss=loss_sum, grad_norm=grad_norm.item(), lr=scheduler.get_last_lr()[0],
                     tokens_per_s=n_tokens / max(1e-9, time.time() - t0), skipped_samples=len(skipped),
                     update_skipped=float(bad.item() > 0))
        if cfg.mode == "grpo":
            stats.update(kl=kl, clip_low_frac=clip_lo, clip_high_frac=clip_hi, time_rollout=t_rollout,
                         time_logprob=t_logprob)
        stats["time_update"] = t_update
        stats = all_reduce_mean(stats, device)
        if master:
            with open(os.path.join(cfg.out, "metrics.jsonl"), "a") as f:
                f.write(json.dumps({"step": step + 1, **stats}) + "\n")
            if cfg.mode == "grpo":
                with open(os.path.join(cfg.out, "samples.jsonl"), "a") as f:
                    for i in range(min(cfg.log_samples, len(texts))):
                        f.write(json.dumps({"step": step + 1, "id": prompts[i // cfg.group_size].id,
                                            "completion": texts[i], "reward": scores[i].total}) + "\n")
            bar.set_postfix({k: f"{stats[k]:.3f}" for k in ("reward", "kl", "loss") if k in stats})

        # ---- checkpoint ----------------------------------------------------------------------------------------
        done = step + 1 == cfg.steps
        if (step + 1) % cfg.save_every == 0 or done:
            last_checkpoint = save_checkpoint(cfg, step + 1, policy, optimizer, scheduler, tokenizer, rank)
            if master:
                plot_curves(cfg.out)
        if cfg.stop_after and step + 1 - start >= cfg.stop_after:
            break
    return last_checkpoint


# ----------------------------------------------------------------------------------------------------------------
# the embedded toy default: `python train.py` with no arguments

# The toy's own video budget, so that the toy run keeps its time whatever the release defaults: 2 fps, at most 16
# frames, each 64x64 clip frame 56x56 (4 squares of 28x28: 4 video tokens per block, at most 32 per clip).
TOY_VIDEO = dict(fps=2.0, min_frames=4, max_frames=16, video_tokens=32, frame_min_tokens=4)
TOY_SFT = dict(mode="sft", batch_size=8, pack_prompts=8, lr=2e-3, warmup_steps=10, schedule="cosine", dtype="float32",
               save_every=1000, **TOY_VIDEO)
TOY_GRPO = dict(mode="grpo", batch_size=4, pack_prompts=4, group_size=8, lr=2e-4, beta=0.01,
                max_new_tokens=48, dtype="float32", save_every=20, **TOY_VIDEO)


def toy_default(cfg):
    """Toy task -> tiny model -> SFT warm start -> GRPO -> test accuracy/mIoU before and after."""
    rank, world, device = init_distributed()
    toy = os.path.join(cfg.out, "toy-data")
    if rank == 0 and not os.path.exists(os.path.join(toy, "test.jsonl")):
        data.make_toy(toy, n=cfg.toy_n, seed=cfg.seed)
    init = os.path.join(cfg.out, "init")
    if rank == 0 and not os.path.exists(os.path.join(init, "config.json")):
        tokenizer = data.toy_tokenizer()
        torch.manual_seed(cfg.seed)
        vlm.load_model(vlm.tiny_config("qwen2_5_vl", tokenizer)).save_pretrained(init)
        tokenizer.save_pretrained(init)
    dist.barrier()
    train_file, test_file = os.path.join(toy, "train.jsonl"), os.path.join(toy, "test.jsonl")
    sft = train(dataclasses.replace(cfg, model=init, data=train_file, out=os.path.join(cfg.out, "sft"),
                                    steps=cfg.toy_sft_steps, **TOY_SFT))
    before = evaluate_checkpoint(sft, test_file, cfg)
    final = train(dataclasses.replace(cfg, model=sft, data=train_file, out=os.path.join(cfg.out, "grpo"),
                                      steps=cfg.toy_grpo_steps, **TOY_GRPO))
    after = evaluate_checkpoint(final, test_file, cfg)
    if rank == 0:
        print("\n toy test split     SFT start -> after GRPO")
        for key in sorted(set(before) & set(after)):
            if isinstance(before[key], float):
                print(f" {key:<18} {before[key]:.3f}  ->  {after[key]:.3f}")
        print(f"\n curves: {os.path.join(cfg.out, 'grpo', 'curves.png')}\n checkpoint: {final}")
    return before, after


def evaluate_checkpoint(path, test_file, cfg):
    """Greedy answers of a checkpoint on a JSONL, on rank 0's full copy (the toy model is tiny)."""
    metrics = {}
    if dist.get_rank() == 0:
        policy = vlm.load_model(path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
        video_cfg = data.video_config(dataclasses.replace(cfg, **TOY_GRPO))
        metrics = evaluation.flatten(evaluation.evaluate(policy, tokenizer, data.load_jsonl(test_file),
                                                         policy.config.model_type, video_cfg,
                                                         max_new_tokens=TOY_GRPO["max_new_tokens"]))
    dist.barrier()
    return metrics


if __name__ == "__main__":
    config = parse_config()
    toy_default(config) if not config.model else train(config)
    dist.destroy_process_group()
