"""train.py: GRPO (and SFT) for video LLMs, one file you read top to bottom.

    python train.py                                   # the embedded toy default: tiny model, synthetic videos, CPU
    torchrun --nproc-per-node 8 train.py --model Qwen/Qwen2.5-VL-7B-Instruct --data train.jsonl --out runs/tvg

One GRPO step (`grpo_step`, in this order):
    B prompts per rank -> model.rollout: G completions each (prompt prefilled once, KV cache forked G ways)
    -> rewards.score -> grpo.group_advantages -> model.pack ([prompt, c_1 .. c_G] per group, micro-batches)
    -> reference log-probs (and old log-probs when updates_per_batch > 1)
    -> per micro-batch: grpo.policy_loss x weight -> backward; then grad-norm clip -> optimizer step
then the loop logs and checkpoints. `--mode sft` (`sft_step`) trains on the ground-truth targets instead.

How this departs from textbook GRPO and from the Temporal-R1 release: see docs/release_differences.md.

Distributed: FSDP2 (`fully_shard`) on every decoder layer and vision block, then the root. Without torchrun the
same code runs as a world of one. Rollouts gather the full weights once and decode without collectives.
Precision: the policy's weights and AdamW states are float32; with `--dtype bfloat16` FSDP2 computes in bf16 and
reduces gradients in float32 (an lr of 1e-6 would vanish in bf16 weights). The reference is stored in `--dtype`.
"""

import dataclasses
import math
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from tqdm import tqdm
from transformers import AutoTokenizer

import checkpoint
from config import PER_INVOCATION, RESUMABLE_CHANGES, parse_config
import data
import distributed
import grpo
import metrics
import model as vlm
import rewards
import run_folder
import schema
import toy
import video


# ----------------------------------------------------------------------------------------------------------------
# the data order: a pure function of (seed, step, rank), so resume needs only the step

def prompt_indices(n_rows, seed, step, batch_size, rank, world):
    """Global batch `step` = the next B*W rows of an endless sequence of seeded permutations; rank r takes every
    W-th of them (nanochat's rule). Yields the rank's row indices in order: its batch, then, for samples whose
    video fails to load, the spares that follow."""
    start = step * batch_size * world
    epoch, pos, k = start // n_rows, start % n_rows, 0
    while True:
        order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
        for i in order[pos:]:
            if k % world == rank:
                yield i
            k += 1
        epoch, pos = epoch + 1, 0


def take_prompts(rows, indices, want, tokenizer, family, video_cfg, skipped, style="vrl"):
    """Decode videos for the first `want` rows that load; a failing one (a corrupt video: rows with `duration` are not
    probed at load; too long a prompt) is skipped, counted, logged by id, and the batch walks on through the spares.
    Only when every row has failed does the run stop, naming the first failure."""
    samples, failed = [], {}
    for i in indices:
        if i in failed:
            continue
        ok, problems = data.prepare_batch([rows[i]], tokenizer, family, video_cfg, style)
        samples += ok
        for problem in problems:
            skipped.append(problem.id)
            failed.setdefault(i, problem)
            print(f"[skip] {problem}", file=sys.stderr)
        if len(samples) == want:
            return samples
        if len(failed) == len(rows):
            raise video.DataError(f"none of the {len(rows)} rows loads, e.g. {failed[min(failed)]}: are the videos "
                                 "there and readable?")


def lr_lambda(cfg):
    def factor(step):
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine":
            progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0
    return factor


# ----------------------------------------------------------------------------------------------------------------
# one step

def micro_batches(groups, pack_prompts, config, device):
    """[(sample, [completion ids])] -> packed rows of pack_prompts groups each (model.pack), on device."""
    return [vlm.pack(groups[i:i + pack_prompts], config).to(device) for i in range(0, len(groups), pack_prompts)]


def token_share(packs, device):
    """world / (completion tokens of all ranks): a micro-batch's token-mean loss times its tokens times this sums,
    over micro-batches and ranks (FSDP averages gradients over ranks, hence the world), to the global token mean.
    0 when no rank has a token (every group left the update)."""
    all_tokens = torch.tensor(float(sum(int(p.mask.sum()) for p in packs)), device=device)
    dist.all_reduce(all_tokens)
    return dist.get_world_size() / all_tokens.item() if all_tokens.item() else 0.0


def as_many_as_every_rank(packs, spare, device):
    """[FSDP] every rank must run as many forward and backward passes as the others (each one gathers and reduces
    the shards): pad this rank's micro-batches with copies of a spare one, weighted 0, up to the most any rank has.
    Only the online selection (--min-group-std) makes the counts differ."""
    most = torch.tensor(len(packs), device=device)
    dist.all_reduce(most, op=dist.ReduceOp.MAX)
    return packs + [spare] * (int(most) - len(packs))


def clip_and_step(policy, optimizer, loss_sum, grad_clip, device, step=True):
    """The end of every step, after the micro-batches' backward passes: clip the global gradient norm, then step,
    unless the loss or the gradient is not finite on any rank (a NaN never reaches the weights) or step is False
    (no rank kept a group: AdamW would still move the weights on its momentum). -> (grad_norm, skipped)."""
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm  # [FSDP] a DTensor
    bad = torch.tensor([0.0 if math.isfinite(loss_sum) and torch.isfinite(grad_norm) else 1.0], device=device)
    dist.all_reduce(bad)  # [NaN safety] every rank skips together, or none does
    if bad.item() > 0:
        print("[warn] non-finite loss or gradient, update skipped", file=sys.stderr)
    elif step:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm.item(), bad.item() > 0 or not step


def rollouts(policy, tokenizer, prompts, cfg, seed):
    """G completions per prompt with the policy's full weights gathered once (decoding runs no collectives)."""
    policy.eval()
    distributed.gathered_for_rollout(policy, True)
    out = vlm.rollout(policy, tokenizer, prompts, cfg.group_size, cfg.max_new_tokens, cfg.temperature, cfg.top_p,
                      seed=seed)
    distributed.gathered_for_rollout(policy, False)
    policy.train()
    return out


def test_metrics(cfg, policy, tokenizer, rows, video_cfg, rank, world):
    """Greedy answers on this rank's share of the held-out rows -> the metrics of all of them as `test/<name>` on
    rank 0 ({} on the others), with the policy's weights gathered once as for rollouts."""
    policy.eval()
    distributed.gathered_for_rollout(policy, True)
    records, failed = metrics.answer(policy, tokenizer, rows[rank::world], policy.config.model_type, video_cfg,
                                     max_new_tokens=cfg.max_new_tokens, progress=False, style=cfg.prompt_style)
    distributed.gathered_for_rollout(policy, False)
    policy.train()
    records, failed = distributed.gather(records), distributed.gather(failed)
    scores = metrics.flatten(metrics.summarize(records, failed)) if rank == 0 else {}
    return {f"test/{name}": value for name, value in scores.items()}


def reward_tensor(scores, prompts, group_size):
    """[B*G] total rewards; a non-finite one (a custom weight gone wrong) becomes 0 and is reported."""
    reward = torch.tensor([s.total for s in scores], dtype=torch.float32)  # [B*G]
    finite = torch.isfinite(reward)
    if not finite.all():
        print(f"[skip] non-finite reward for {[prompts[i // group_size].id for i in (~finite).nonzero()]}")
    return torch.where(finite, reward, 0.0), finite


def grpo_step(cfg, policy, reference, optimizer, tokenizer, prompts, seed, device):
    """One GRPO step on this rank's B prompts, read top to bottom -> (stats, [(prompt id, completion, reward)] to
    log). Lines marked [FSDP], [NaN safety] are there for many GPUs or for bad numbers: skip them on a first read."""
    G, t0 = cfg.group_size, time.time()
    # 1. rollout: G completions per prompt (prompt prefilled once, KV cache forked G ways)
    rollout = rollouts(policy, tokenizer, prompts, cfg, seed)  # B*G completions, prompt-major
    t_rollout = time.time() - t0

    # 2. rewards, 3. group-relative advantages (a group whose G rewards are equal gets 0 and is counted)
    dual = cfg.reward == "dual"
    scores = [rewards.score(prompts[i // G].opened + text, prompts[i // G].row, dual=dual, style=cfg.prompt_style)
              for i, text in enumerate(rollout.texts)]
    reward, finite = reward_tensor(scores, prompts, G)  # [B*G]
    advantages, n_zero_variance = grpo.group_advantages(reward, G, scale=cfg.scale_advantages)  # [B*G]
    advantages = torch.where(finite, advantages, 0.0)  # [NaN safety] a non-finite reward teaches nothing
    #    online selection (--min-group-std > 0): a group whose rewards barely vary leaves the update
    keep = grpo.varied_groups(reward, G, cfg.min_group_std)  # [B] bool
    advantages = advantages.view(-1, G)[keep].view(-1)  # [B_kept*G]

    # 4. pack: one row per micro-batch, [prompt_1, c_11 .. c_1G, prompt_2, ...]
    completions = rollout.completions()
    groups = [(s, completions[i * G:(i + 1) * G]) for i, s in enumerate(prompts)]
    packs = micro_batches([g for g, kept in zip(groups, keep.tolist()) if kept], cfg.pack_prompts, policy.config,
                          device)
    n_real = len(packs)
    packs = as_many_as_every_rank(packs, packs[0] if packs else micro_batches(groups[:1], 1, policy.config, device)[0],
                                  device)  # [FSDP] copies weigh 0

    # 5. reference (and old) log-probs, without gradients, at the rollout temperature: the ratio and the KL are
    #    taken on the distribution that was sampled from
    t1 = time.time()
    with torch.no_grad():
        ref_logps = [vlm.completion_logprobs(reference, p, cfg.temperature) for p in packs] if reference else None
        distributed.reshard(reference)  # [FSDP] free the reference's gathered weights before the policy's pass
        old_logps = [vlm.completion_logprobs(policy, p, cfg.temperature) for p in packs] \
            if cfg.updates_per_batch > 1 else None
    t_logprob, t2 = time.time() - t1, time.time()

    # 6. per micro-batch: log-probs -> policy_loss x weight -> backward (gradients add up); then clip -> step
    share, n_seq = token_share(packs[:n_real], device), cfg.pack_prompts * G  # so micro-batches sum to the batch
    for _ in range(cfg.updates_per_batch):
        loss_sum, parts = 0.0, dict.fromkeys(("kl", "clip_low_frac", "clip_high_frac"), 0.0)
        for j, p in enumerate(packs):
            logp = p.unflatten(vlm.completion_logprobs(policy, p, cfg.temperature))  # [n_seq, T_max]
            mask = p.mask.to(logp.device)  # [n_seq, T_max], completion tokens up to EOS
            old = p.unflatten(old_logps[j]) if old_logps else logp.detach()  # one update: the ratio is 1
            ref = p.unflatten(ref_logps[j]) if ref_logps else None
            adv = advantages[j * n_seq:(j + 1) * n_seq].to(logp.device) if j < n_real \
                else torch.zeros(len(mask), device=logp.device)  # [n_seq]
            loss, part = grpo.policy_loss(logp, old, ref, adv, mask, cfg.clip_low, cfg.clip_high, cfg.beta,
                                          cfg.aggregate, cfg.max_new_tokens, cfg.kl_clamp)
            weight = grpo.micro_batch_weight(cfg.aggregate, mask.sum(), share, n_real) if j < n_real else 0.0
            weighted = loss * weight
            weighted.backward()
            loss_sum += weighted.item()
            parts = {k: parts[k] + part[k] * float(weight) for k in parts}
        grad_norm, skipped = clip_and_step(policy, optimizer, loss_sum, cfg.grad_clip, device, step=share > 0)

    stats = {"reward": reward.mean().item(), "format": float(np.mean([s.format for s in scores])),
             "accuracy": float(np.mean([s.accuracy for s in scores])), "iou": float(np.mean([s.iou for s in scores])),
             "zero_variance_groups": n_zero_variance,
             "dropped_groups": len(prompts) - int(keep.sum()), "truncated": rollout.truncated.float().mean().item(),
             "completion_len": rollout.lengths.float().mean().item(), "loss": loss_sum, "grad_norm": grad_norm,
             "update_skipped": float(skipped), **parts, "time_rollout": t_rollout, "time_logprob": t_logprob,
             "time_update": time.time() - t2, "tokens": sum(int(p.mask.sum()) for p in packs[:n_real])}
    logged = [(prompts[i // G].id, rollout.texts[i], scores[i].total) for i in range(min(cfg.log_samples, len(scores)))]
    return stats, logged


def sft_step(cfg, policy, optimizer, tokenizer, prompts, device):
    """One supervised step: the mean NLL of the ground-truth targets (data.target_text + EOS) over all their tokens."""
    eos, t0 = tokenizer.convert_tokens_to_ids("<|im_end|>"), time.time()
    targets = [data.target_text(s.row, s.style, s.opened) for s in prompts]
    groups = [(s, [torch.tensor(tokenizer.encode(t) + [eos])]) for s, t in zip(prompts, targets)]
    packs = micro_batches(groups, cfg.pack_prompts, policy.config, device)
    share, loss_sum = token_share(packs, device), 0.0
    for p in packs:
        logp = p.unflatten(vlm.completion_logprobs(policy, p, 1.0))  # [n_seq, T_max]
        nll = -(logp * p.mask.to(logp.device)).sum() * share  # summed over micro-batches and ranks: the global mean
        nll.backward()
        loss_sum += nll.item()
    grad_norm, skipped = clip_and_step(policy, optimizer, loss_sum, cfg.grad_clip, device)
    return {"loss": loss_sum, "grad_norm": grad_norm, "update_skipped": float(skipped), "time_update": time.time() - t0,
            "tokens": sum(int(p.mask.sum()) for p in packs)}, []


# ----------------------------------------------------------------------------------------------------------------
# the loop; the inputs, the run folder and the resume are checked before any model loads

def load_rows(cfg):
    """(training rows, held-out rows), or one clear error: a --model that is no checkpoint folder, no --data, no
    valid row."""
    vlm.require_folder(cfg.model)
    if not cfg.data:
        raise video.DataError("--data is missing: pass the training JSONL (our schema, README)")
    report = os.path.join(cfg.out, run_folder.BAD_ROWS) if cfg.skip_bad else None
    tasks = schema.SFT_TASKS if cfg.mode == "sft" else data.TASKS  # caption rows: SFT only
    rows = schema.load_jsonl(cfg.data, cfg.skip_bad, report, cfg.max_text_chars, tasks)
    if not rows:
        raise video.DataError(f"{cfg.data}: no valid row to train on" + (f" (the bad ones are listed in {report})"
                                                                        if cfg.skip_bad else " (the file is empty)"))
    return rows, schema.load_jsonl(cfg.test_data, max_text_chars=cfg.max_text_chars) if cfg.test_data else []


def train(cfg):
    """Run `cfg.steps` steps of GRPO or SFT, holding the run folder's lock; returns the last checkpoint's folder."""
    rank, world, device = distributed.init(need_group=True, timeout_minutes=cfg.dist_timeout_minutes)
    with run_folder.lock(cfg.out, rank):
        return run(cfg, rank, world, device)


def run(cfg, rank, world, device):
    master = rank == 0
    inputs = {"--model": cfg.model, "--data": cfg.data, "--test-data": cfg.test_data,
              "--resume": "" if cfg.resume == "auto" else cfg.resume}  # --overwrite never deletes one of these
    resume, start, doomed = run_folder.plan(cfg.out, cfg.resume, cfg.overwrite, rank, inputs)
    # a run is keyed on the bytes of its --data (a sha256), not on the path: an edited file refuses the resume, the
    # same file spelt another way (toy/../toy/train.jsonl) resumes with the path change reported
    digest = run_folder.input_digest(cfg.data) if os.path.isfile(cfg.data) else ""
    saved = dataclasses.asdict(cfg) | {"data_sha256": digest}  # what the checkpoints store
    now = {k: v for k, v in saved.items() if k not in PER_INVOCATION}
    changed = checkpoint.check_config(resume, now, RESUMABLE_CHANGES) if resume else ""
    if changed and master:
        print(f"[resume] changed: {changed}", file=sys.stderr)
    rows, test_rows = load_rows(cfg)
    if master:  # the inputs hold: only now is anything deleted
        run_folder.clear(cfg.out, doomed, start)
    torch.manual_seed(cfg.seed)
    dtype = getattr(torch, cfg.dtype)
    mesh = init_device_mesh(device.type, (world,))

    tokenizer = AutoTokenizer.from_pretrained(resume or cfg.model, trust_remote_code=False)
    # float32 master weights, read once per node (rank 0) and sent to each rank's shard
    policy = distributed.load_sharded(resume or cfg.model, torch.float32, dtype, mesh, device, cfg.grad_checkpointing)
    policy.model.visual.requires_grad_(not cfg.freeze_vision)
    reference = None
    if cfg.mode == "grpo" and cfg.beta > 0:  # the frozen reference is always the starting model
        reference = distributed.load_sharded(cfg.model, dtype, dtype, mesh, device).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    if resume:
        checkpoint.load_state(resume, policy, optimizer, scheduler, rank)

    video_cfg, family = video.video_config(cfg), policy.config.model_type
    if master:
        print(f"{cfg.mode}: {len(rows)} rows, world {world}, {cfg.batch_size} prompts/rank x G={cfg.group_size}"
              f" = {cfg.batch_size * world * (cfg.group_size if cfg.mode == 'grpo' else 1)} sequences/step,"
              f" steps {start}->{cfg.steps}, resume={resume}")
    skipped, last_checkpoint = [], resume
    bar = tqdm(range(start, cfg.steps), disable=not master, initial=start, total=cfg.steps, dynamic_ncols=True)
    for step in bar:
        t0 = time.time()
        indices = prompt_indices(len(rows), cfg.seed, step, cfg.batch_size, rank, world)
        prompts = take_prompts(rows, indices, cfg.batch_size, tokenizer, family, video_cfg, skipped, cfg.prompt_style)
        if cfg.mode == "grpo":
            seed = cfg.seed * 1_000_003 + step * world + rank  # every rollout's seed: a function of (seed, step, rank)
            stats, samples = grpo_step(cfg, policy, reference, optimizer, tokenizer, prompts, seed, device)
        else:
            stats, samples = sft_step(cfg, policy, optimizer, tokenizer, prompts, device)
        scheduler.step()

        stats.update(lr=scheduler.get_last_lr()[0], tokens_per_s=stats.pop("tokens") / max(1e-9, time.time() - t0),
                     skipped_samples=len(skipped))
        stats = distributed.all_reduce_mean(stats, device)  # only metrics cross ranks
        if test_rows and (step + 1 == cfg.steps or cfg.eval_every and (step + 1) % cfg.eval_every == 0):
            stats.update(test_metrics(cfg, policy, tokenizer, test_rows, video_cfg, rank, world))
        if master:
            run_folder.log_step(cfg.out, step + 1, stats, samples)
            bar.set_postfix({k: f"{stats[k]:.3f}" for k in ("reward", "kl", "loss") if k in stats})
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            last_checkpoint = checkpoint.save(cfg.out, step + 1, policy, optimizer, scheduler, saved,
                                              cfg.keep_last, rank)
            if master:
                run_folder.plot_curves(cfg.out)
        if cfg.stop_after and step + 1 - start >= cfg.stop_after:
            break
    return last_checkpoint


# ----------------------------------------------------------------------------------------------------------------
# the embedded toy default: `python train.py` with no arguments (its budget: toy.TOY_*; its design: docs/toy.md)

def make_toy_model(init, seed):
    """The toy model and tokenizer in `init` (toy.save_toy_model), made once, by rank 0."""
    if dist.get_rank() == 0 and not os.path.exists(os.path.join(init, "config.json")):
        toy.save_toy_model(init, seed)
    dist.barrier()


def toy_warm_start(cfg, seed, labelled):
    """This seed's toy model (OUT/seed-S/init), pre-trained on the captions of the train clips (OUT/seed-S/base: it
    has seen videos described, never a question), then SFT on the labelled part next to them -> its checkpoint
    (OUT/seed-S/sft). The start of the toy default and of every reproduce.py arm."""
    out, captions = os.path.join(cfg.out, f"seed-{seed}"), os.path.join(os.path.dirname(labelled), "captions.jsonl")
    make_toy_model(os.path.join(out, "init"), seed)
    base = train(dataclasses.replace(cfg, model=os.path.join(out, "init"), data=captions, out=os.path.join(out, "base"),
                                     seed=seed, steps=cfg.toy_pretrain_steps, **toy.TOY_SFT))
    return train(dataclasses.replace(cfg, model=base, data=labelled, out=os.path.join(out, "sft"), seed=seed,
                                     steps=cfg.toy_sft_steps, **toy.TOY_SFT))


def toy_seed(cfg, seed, files):
    """One seed of the toy default in OUT/seed-S: tiny model -> captions -> SFT warm start -> GRPO -> (before,
    after) test metrics. Runs as a world of one (its own process) or on every rank of a torchrun world."""
    distributed.init(need_group=True, timeout_minutes=cfg.dist_timeout_minutes)
    train_file, labelled, test_file = files
    sft = toy_warm_start(cfg, seed, labelled)
    before = evaluate_checkpoint(sft, test_file)
    final = train(dataclasses.replace(cfg, model=sft, data=train_file, test_data=test_file, seed=seed,
                                      out=os.path.join(cfg.out, f"seed-{seed}", "grpo"), steps=cfg.toy_grpo_steps,
                                      **toy.TOY_GRPO))
    return before, evaluate_checkpoint(final, test_file)


def toy_files(cfg):
    """The toy world under OUT/toy-data (made once): (train, labelled part, test) JSONL paths."""
    return toy.toy_data(os.path.join(cfg.out, "toy-data"), cfg.toy_n, cfg.seed, cfg.toy_labelled)


def toy_default(cfg):
    """The toy world -> `--toy-seeds` seeds of (tiny model -> captions -> SFT warm start -> GRPO), side by side in
    processes of one thread each (in turn under torchrun) -> test metrics before and after, mean and spread over the
    seeds, and what video-blind answers score."""
    t0, seeds = time.time(), [cfg.seed + k for k in range(cfg.toy_seeds)]
    if "RANK" in os.environ:  # torchrun: every rank runs every seed, in turn
        distributed.init(need_group=True, timeout_minutes=cfg.dist_timeout_minutes)
        files = toy_files(cfg) if dist.get_rank() == 0 else None
        files = distributed.broadcast(files)
        results = [toy_seed(cfg, seed, files) for seed in seeds]
    else:
        files = toy_files(cfg)
        print(f"toy default: {len(seeds)} seeds side by side, logs in {cfg.out}/seed-*/log.txt")
        results = distributed.side_by_side(toy_seed, [(f"seed-{s}", (cfg, s, files)) for s in seeds], cfg.out)
    if not dist.is_initialized() or dist.get_rank() == 0:
        table = toy.results_table(results, toy.chance_levels(schema.load_jsonl(files[2])))
        print(f"\n{table}\n\n {len(seeds)} seeds in {(time.time() - t0) / 60:.1f} min;"
              f" curves: {cfg.out}/seed-{seeds[0]}/grpo/curves.png")
    return results


def evaluate_checkpoint(path, test_file):
    """Greedy answers of a checkpoint on a toy split, on rank 0's full copy (the toy model is tiny); {} elsewhere."""
    scores = toy.toy_evaluate(path, test_file) if dist.get_rank() == 0 else {}
    dist.barrier()
    return scores


def main(argv=None):
    config = parse_config(argv)
    try:
        toy_default(config) if not config.model else train(config)
    except (video.DataError, checkpoint.CheckpointError, run_folder.RunFolderError, FileNotFoundError) as e:
        sys.exit(f"train.py: {e}")  # bad input or a used run folder: the message names the path and what to do
    finally:
        distributed.close()


if __name__ == "__main__":
    main()
