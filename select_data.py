"""Variance-aware data selection: sample G answers per training sample, keep the samples whose rewards vary.

    python select_data.py --model PATH --data train.jsonl --group-size 8 --out selected.jsonl
    torchrun --nproc-per-node 8 select_data.py ...        # the batches left to do dealt to ranks round-robin
    python train.py --data selected.jsonl ...             # then train on the kept subset

Why. GRPO scores each completion relative to its own group: advantage_i = (r_i - mean(r)) / std(r) over the G
completions of one prompt. A sample the model always answers right (or always wrong) gives G equal rewards, so
every advantage is 0: the whole group costs a rollout and a backward pass and teaches nothing. The learning signal
lives in the samples whose rewards vary across completions. So before training we run the rollout sampler exactly
as a GRPO step would (the prompt prefilled once, G completions at the training temperature, each scored with
rewards.score) and keep, per task:

    mcq  the option is sometimes right and sometimes wrong: 0 < #right < G
         (dropped as always_right / always_wrong)
    tvg  the IoU spread is real: std(IoU over the G completions) > --min-iou-std
         (IoU is continuous, so "varies" needs a threshold; dropped as low_spread)
    gqa  either of the two: the option varies OR the IoU spread exceeds --min-iou-std, since either part of the
         reward then gives non-zero advantages. A dropped gqa sample is labelled by its option (always_right /
         always_wrong); its IoU spread was low too.

Standard deviations are the sample std (N - 1) over the G completions: the one grpo.group_advantages divides by
and the one the online selection (train.py --min-group-std, grpo.varied_groups) asks of a group, so offline and
online selection measure "varies" the same way. --top-n N then keeps only the N kept samples with the largest std
of the total reward, ties in file order.

Outputs, for --out selected.jsonl:
    selected.jsonl               kept rows, in file order, each the input line as written (relative video paths
                                 stay relative; nothing is re-serialized)
    selected.report.json         settings, per-task counts (seen, kept, always_right, always_wrong, low_spread,
                                 beyond_top_n, failed + ids) and per-sample statistics; the table is also printed
    selected.std_hist.png        histogram of the per-sample std of the total reward, per task
    selected.partial.jsonl       the resume log: a header (sampling settings, a hash of the model's weights),
                                 then one JSON line per finished sample (id, task, key, G x [total, format,
                                 accuracy, iou, right], or the load error). A rerun skips every sample already in
                                 it (so changing only --min-iou-std or --top-n costs no sampling); other sampling
                                 settings or other weights are refused, and a sample whose row or video changed
                                 since (its key: a hash of the line as written and the video's path, inode, size,
                                 modification and change times) is sampled again (selection_log.py).
    selected.bad.txt             rows schema.load_jsonl rejects (missing video, bad field), when there are any

Determinism. Samples are cut into fixed batches of --batch-size in file order and batch j is sampled with seed
seed + j, so a resumed run re-samples an interrupted batch with the same prompts and seed and gets the same
completions as an uninterrupted run (exactly on CPU; on GPU up to non-deterministic kernels); only samples
missing from the log are appended. The result does not depend on the number of ranks. Ranks append to the one log
(so --out must be on a filesystem all ranks share) and rank 0 gathers the results (gather_object). A sample whose
video fails to load is logged as failed with its id and never stops the run.
"""

import argparse
import json
import math
import os
from pathlib import Path

import torch
from tqdm import tqdm

import config
import flags
import data
import distributed
import model as vlm
import rewards
import schema
import selection_log
import video

# The columns of a sample's reward table [G, 5]: the four parts of rewards.Reward, then whether the option letter
# was right (mcq, gqa; 0 for tvg). For gqa, accuracy = (right + IoU) / 2, so `right` is kept as its own column.
PARTS = ("total", "format", "accuracy", "iou", "right")
VERDICTS = ("kept", "always_right", "always_wrong", "low_spread", "beyond_top_n")


# ----------------------------------------------------------------------------------------------------------------
# per-sample statistics and the keep rule (pure)


def _mean_std(xs):
    """Mean and sample std (N - 1, as torch.std and grpo.group_advantages) of a list of G >= 2 numbers."""
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def reward_stats(table):
    """One sample's reward table, G rows of PARTS -> statistics.

    {k, total_mean, total_std, ..., iou_std, right_mean, right_std,   mean / sample std of every part
     n_right, frac_right,                                             completions with the right option
     iou_range}                                                       max(IoU) - min(IoU)
    """
    out = {"group_size": len(table)}
    for j, part in enumerate(PARTS):
        out[f"{part}_mean"], out[f"{part}_std"] = _mean_std([row[j] for row in table])
    out["n_right"] = sum(row[4] == 1.0 for row in table)
    out["frac_right"] = out["n_right"] / len(table)
    ious = [row[3] for row in table]
    out["iou_range"] = max(ious) - min(ious)
    return out


def verdict(stats, task, min_iou_std):
    """Keep rule (see module docstring) -> "kept" | "always_right" | "always_wrong" | "low_spread"."""
    option_varies = 0 < stats["n_right"] < stats["group_size"]
    spread = stats["iou_std"] > min_iou_std
    if (task == "mcq" and option_varies) or (task == "tvg" and spread):
        return "kept"
    if task == "gqa" and (option_varies or spread):
        return "kept"
    if task == "tvg":
        return "low_spread"
    return "always_right" if stats["n_right"] == stats["group_size"] else "always_wrong"


def select(results, min_iou_std, top_n=None):
    """Per-sample results (id, task, rewards | failed) in file order -> same dicts with "stats" and "verdict".

    A failed sample gets verdict "failed". With top_n, kept samples beyond the top_n largest total_std are
    relabelled "beyond_top_n" (stable: ties keep file order).
    """
    out = []
    for r in results:
        if r.get("failed"):
            out.append({**r, "verdict": "failed"})
            continue
        stats = reward_stats(r["rewards"])
        out.append({**r, "stats": stats, "verdict": verdict(stats, r["task"], min_iou_std)})
    if top_n is not None:
        kept = [r for r in out if r["verdict"] == "kept"]
        kept.sort(key=lambda r: -r["stats"]["total_std"])  # sort is stable: ties stay in file order
        for r in kept[top_n:]:
            r["verdict"] = "beyond_top_n"
    return out


def task_counts(selected):
    """Selected results -> {task: {seen, kept, always_right, ..., failed, failed_ids}} for the tasks present."""
    counts = {}
    for r in selected:
        c = counts.setdefault(r["task"], {"seen": 0, **{v: 0 for v in VERDICTS}, "failed": 0, "failed_ids": []})
        c["seen"] += 1
        c[r["verdict"]] += 1
        if r["verdict"] == "failed":
            c["failed_ids"].append(r["id"])
    return counts


def counts_table(counts):
    """Per-task counts -> aligned text table (one row per task plus a total row)."""
    cols = ("seen", *VERDICTS, "failed")
    head = f"{'task':<6}" + "".join(f"{c:>14}" for c in cols)
    rows = [f"{t:<6}" + "".join(f"{counts[t][c]:>14d}" for c in cols) for t in counts]
    total = f"{'all':<6}" + "".join(f"{sum(counts[t][c] for t in counts):>14d}" for c in cols)
    return "\n".join([head, *rows, total])


# ----------------------------------------------------------------------------------------------------------------
# outputs


def out_paths(out):
    """--out selected.jsonl -> the paths of everything written next to it."""
    out = Path(out)
    return {
        "kept": out,
        "report": out.with_suffix(".report.json"),
        "hist": out.with_suffix(".std_hist.png"),
        "partial": out.with_suffix(".partial.jsonl"),
    }


def plot_std_hist(selected, path):
    """Histogram of the per-sample std of the total reward, one stacked colour per task -> PNG at path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stds = {t: [r["stats"]["total_std"] for r in selected if r["task"] == t and "stats" in r] for t in rewards.TASKS}
    stds = {t: v for t, v in stds.items() if v}
    top = max([0.5, *[max(v) for v in stds.values()]])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if stds:
        ax.hist(list(stds.values()), bins=25, range=(0, top), stacked=True, label=list(stds))
        ax.legend()
    ax.set_xlabel("std of total reward over G completions")
    ax.set_ylabel("samples")
    ax.set_title("per-sample reward spread (0 = no GRPO signal)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(selected, lines, out, settings):
    """Kept rows (original lines, file order) -> out; report JSON; std histogram. Returns the report dict."""
    paths = out_paths(out)
    kept = [schema.moved_video_path(lines[r["id"]], Path(settings["data"]).parent, paths["kept"].parent)
            for r in selected if r["verdict"] == "kept"]
    paths["kept"].write_text("".join(line + "\n" for line in kept))
    report = {
        "settings": settings,
        "counts": task_counts(selected),
        "samples": [{k: r.get(k) for k in ("id", "task", "verdict", "stats", "failed")} for r in selected],
    }
    paths["report"].write_text(json.dumps(report, indent=1))
    plot_std_hist(selected, paths["hist"])
    return report


# ----------------------------------------------------------------------------------------------------------------
# sampling


def reward_table(texts, row, style="vrl", opened=""):
    """G completion texts of one row (each after the `opened` start its prompt holds) -> its reward table, G rows
    of PARTS."""
    table = []
    for text in texts:
        r = rewards.score(opened + text, row, style=style)
        table.append([r.total, r.format, r.accuracy, r.iou, float(r.right)])
    return table


def sample_chunk(policy, tokenizer, rows, family, video_cfg, args, seed):
    """One batch of rows -> one result per row: {id, task, rewards [G, 5]} or {id, task, failed: reason}."""
    samples, problems = data.prepare_batch(rows, tokenizer, family, video_cfg, args.prompt_style)
    results = {f["id"]: {"id": f["id"], "task": f["task"], "failed": f["reason"]} for f in schema.failed_rows(problems)}
    if samples:
        G = args.group_size
        texts = vlm.rollout(policy, tokenizer, samples, G, args.max_new_tokens, args.temperature, seed=seed).texts
        for b, s in enumerate(samples):
            results[s.id] = {"id": s.id, "task": s.row["task"],
                             "rewards": reward_table(texts[b * G:(b + 1) * G], s.row, s.style, s.opened)}
    return [results[r["id"]] for r in rows]


# ----------------------------------------------------------------------------------------------------------------
# CLI


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", **flags.REQUIRED, help="checkpoint folder (weights + tokenizer)")
    p.add_argument("--data", **flags.REQUIRED, help="training JSONL (our schema)")
    p.add_argument("--out", **flags.REQUIRED, help="kept rows go here; report, histogram and resume log next to it")
    p.add_argument("--group-size", "--group_size", type=flags.at_least_two, default=8,
                   help="G, completions per sample (as a GRPO step samples them)")
    p.add_argument("--temperature", type=flags.positive, default=1.0, help="sampling temperature (as in training)")
    p.add_argument("--max-new-tokens", "--max_new_tokens", type=flags.positive_int, default=512,
                   help="completion length limit")
    p.add_argument("--batch-size", "--batch_size", type=flags.positive_int, default=4,
                   help="samples per sampler call (x G sequences)")
    p.add_argument("--seed", type=flags.count, default=0, help="batch j is sampled with seed + j")
    p.add_argument("--min-iou-std", "--min_iou_std", type=flags.non_negative, default=0.1,
                   help="tvg/gqa keep: IoU std over G above this")
    p.add_argument("--top-n", "--top_n", type=flags.positive_int, default=None,
                   help="then keep only the N kept with the largest reward std; None = all kept")
    config.add_flags(p, *config.INPUT_FLAGS, "prompt_style")
    p.add_argument("--dtype", default=None, choices=config.DTYPES, help="None = bfloat16 on GPU, float32 on CPU")
    config.add_flags(p, "dist_timeout_minutes")
    return p.parse_args(argv)


def sampling_settings(args):
    """Everything a sample's rewards depend on: the resume log must have been written with the same."""
    keys = ("group_size", "temperature", "max_new_tokens", "batch_size", "seed", *video.VIDEO_FLAGS, "dtype",
            "prompt_style")
    return {"model": os.path.abspath(args.model), "data": os.path.abspath(args.data),
            **{k: getattr(args, k) for k in keys}}


def main(argv=None):
    args = parse_args(argv)
    rank, world, device = distributed.init(timeout_minutes=args.dist_timeout_minutes)
    args.dtype = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    paths = out_paths(args.out)
    schema.refuse_overwriting_inputs([*paths.values(), paths["kept"].with_suffix(".bad.txt")], {"--data": args.data})
    vlm.require_folder(args.model)  # inputs first: no model loads before they hold
    paths["kept"].parent.mkdir(parents=True, exist_ok=True)
    read = schema.read_jsonl(args.data, args.max_text_chars)  # the rows that load; the others fail with their reasons
    rows, lines = read.rows, {row["id"]: line for row, line in zip(read.rows, read.lines)}
    if not rows and not read.problems:
        raise SystemExit(f"{args.data} holds no rows: nothing to select from")
    if read.problems and rank == 0:
        schema.write_problems(paths["kept"].with_suffix(".bad.txt"), read.problems)
    settings, keys = sampling_settings(args), {row["id"]: selection_log.row_key(lines[row["id"]], row) for row in rows}
    model = distributed.broadcast(selection_log.model_identity(args.model) if rank == 0 else None)
    done = selection_log.open_partial(paths["partial"], settings, model, keys, rank, world)
    policy, tokenizer = vlm.load_policy(args.model, device, getattr(torch, args.dtype))
    family = policy.config.model_type
    video_cfg = video.video_config(args)

    chunks = [rows[i:i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
    mine = selection_log.deal(chunks, done, rank, world)
    new = []
    bar = tqdm(total=sum(len(chunks[j]) for j in mine), disable=rank != 0, desc=f"select (rank 0 of {world})")
    for j in mine:
        results = [{**r, "key": keys[r["id"]]} for r in
                   sample_chunk(policy, tokenizer, chunks[j], family, video_cfg, args, args.seed + j)
                   if r["id"] not in done]
        selection_log.append_partial(paths["partial"], results)
        new += results
        bar.update(len(chunks[j]))
    bar.close()
    new = distributed.gather(new)
    if rank == 0:
        by_id = {**done, **{r["id"]: r for r in new}}
        failed = [{"id": f["id"], "task": f["task"], "failed": f["reason"]} for f in schema.failed_rows(read.problems)]
        results = [by_id[r["id"]] for r in rows] + failed
        selected = select(results, args.min_iou_std, args.top_n)
        settings.update(min_iou_std=args.min_iou_std, top_n=args.top_n, world=world)
        report = write_outputs(selected, lines, args.out, settings)
        print(counts_table(report["counts"]))
        print(f"kept {sum(r['verdict'] == 'kept' for r in selected)} of {len(selected)} -> {args.out}")
    distributed.close()


if __name__ == "__main__":
    try:
        main()
    except (video.DataError, FileNotFoundError) as e:  # bad input: the message names the path and what to do
        raise SystemExit(f"select_data.py: {e}")
