"""Evaluate a video LLM on a JSONL file: greedy answers -> the reward parsers -> a metrics table.

    python eval.py --model runs/ckpt --data test.jsonl [--out metrics.json] [--batch-size 4] [--temperature 0]
    torchrun --nproc-per-node 8 eval.py --model ... --data ...     # each rank answers rows[rank::world]

Every completion is read once, by rewards.score, the training reward itself: the Reward it returns carries the
option and segment it read, whether the option is right, the IoU and the IoP, so an eval number and a training
reward never disagree on what an answer says. Metrics, per task:

    mcq  accuracy  = mean(correct)
    tvg  R@m       = mean(IoU >= m) for m in 0.3, 0.5, 0.7;   mIoU = mean(IoU)
    gqa  accuracy  = mean(correct);  mIoU = mean(IoU);  mIoP = mean(IoP);  IoP@0.5 = mean(IoP >= 0.5)
         Acc@GQA   = mean(correct and IoP >= 0.5)          (NExT-GQA: right answer AND grounded, over all samples)

where IoP = |pred ∩ gt| / |pred| (how much of the predicted span is inside the ground truth). An unparseable
answer is wrong with IoU = IoP = 0; it is counted in every denominator and its id listed, never raised. A sample
whose video fails to load is not scored: it is reported under `failed` with its id and left out of the task
metrics. A rate over zero samples is None (JSON null), not 0: "no samples" must not read as "a model that scores
0". Also reported: format-error rate = fraction of completions with rewards.format_reward == 0, truncated rate
= fraction that hit --max-new-tokens without EOS, the unparseable ids (the first 10) and every failed id.

Outputs: the table on stdout; metrics (+ the settings) as JSON at --out (default: eval_<data stem>.json inside
the model folder, so a checkpoint keeps its own results); next to it <out stem>.samples.jsonl, one line per
answered sample (completion, parsed option/segment, IoU, IoP, truncated), and <out stem>.bad.txt listing the rows
data.load_jsonl rejects (a missing video, a bad field), when there are any - those count as failed too.

Rows are read with data.read_jsonl, videos decoded with data.prepare_batch and answers sampled with model.rollout:
the same prompts and decoding as a GRPO rollout, with group size 1.
"""

import argparse
import json
from pathlib import Path

import torch
from tqdm import tqdm

import data
import distributed
import model as vlm
import rewards

RECALL_THRESHOLDS = (0.3, 0.5, 0.7)
N_IDS_SHOWN = 10  # unparseable ids listed in the metrics (the per-sample file has them all)


# ----------------------------------------------------------------------------------------------------------------
# pure metric functions


def _mean(xs):
    """Mean of a list of numbers (bools count 0/1); None for an empty list."""
    return sum(float(x) for x in xs) / len(xs) if xs else None


def mcq_metrics(correct):
    """correct: list[bool] -> {n, accuracy}."""
    return {"n": len(correct), "accuracy": _mean(correct)}


def grounding_metrics(ious):
    """ious: list[float] (0 for unparseable) -> {n, R@0.3, R@0.5, R@0.7, mIoU}; R@m = fraction with IoU >= m."""
    out = {"n": len(ious)}
    for m in RECALL_THRESHOLDS:
        out[f"R@{m}"] = _mean([iou >= m for iou in ious])
    out["mIoU"] = _mean(ious)
    return out


def gqa_metrics(correct, ious, iops):
    """Grounded QA (NExT-GQA): per-sample answer correctness, IoU and IoP -> {n, accuracy, mIoU, mIoP, IoP@0.5,
    Acc@GQA}. Acc@GQA = fraction of ALL samples answered right with IoP >= 0.5."""
    assert len(correct) == len(ious) == len(iops)
    return {
        "n": len(correct),
        "accuracy": _mean(correct),
        "mIoU": _mean(ious),
        "mIoP": _mean(iops),
        "IoP@0.5": _mean([iop >= 0.5 for iop in iops]),
        "Acc@GQA": _mean([c and iop >= 0.5 for c, iop in zip(correct, iops)]),
    }


# ----------------------------------------------------------------------------------------------------------------
# one completion -> one per-sample record


def score_completion(text, row, truncated=False):
    """One completion, read by rewards.score -> per-sample record.

    record: id, task, completion, truncated (hit the token limit; as given), format, reward (the training
    reward's total), option / segment (read, or None), parsed (every part the task needs was read), correct
    (mcq, gqa), iou and iop (tvg, gqa; 0 when unparseable).
    """
    r = rewards.score(text, row)
    rec = {"id": row["id"], "task": row["task"], "completion": text, "truncated": truncated, "format": r.format,
           "reward": r.total, "option": r.option, "segment": list(r.segment) if r.segment else None,
           "parsed": r.parsed}
    if row["task"] in ("mcq", "gqa"):
        rec["correct"] = r.right
    if row["task"] in ("tvg", "gqa"):
        rec["iou"], rec["iop"] = r.iou, r.iop
    return rec


def summarize(records, failed):
    """Per-sample records + failed [{id, task, reason}] -> metrics dict (per task + counts + error lists)."""
    by_task = {t: [r for r in records if r["task"] == t] for t in rewards.TASKS}
    out = {"n": len(records) + len(failed), "n_scored": len(records), "n_failed": len(failed)}
    if by_task["mcq"]:
        out["mcq"] = mcq_metrics([r["correct"] for r in by_task["mcq"]])
    if by_task["tvg"]:
        out["tvg"] = grounding_metrics([r["iou"] for r in by_task["tvg"]])
    if by_task["gqa"]:
        rs = by_task["gqa"]
        out["gqa"] = gqa_metrics([r["correct"] for r in rs], [r["iou"] for r in rs], [r["iop"] for r in rs])
    unparsed = [r["id"] for r in records if not r["parsed"]]
    out["reward"] = _mean([r["reward"] for r in records])  # the training reward's total, on this split
    out["format_error_rate"] = _mean([r["format"] == 0 for r in records])
    out["truncated_rate"] = _mean([r["truncated"] for r in records])  # hit --max-new-tokens without EOS
    out["n_unparseable"] = len(unparsed)
    out["unparseable_ids"] = unparsed[:N_IDS_SHOWN]
    out["failed"] = list(failed)
    return out


def flatten(metrics):
    """{"tvg": {"R@0.5": .4}, "n": 9, "unparseable_ids": [...]} -> {"tvg/R@0.5": .4, "n": 9}: the numbers only
    (None included), one key each, for logs and tables."""
    out = {}
    for k, v in metrics.items():
        for kk, vv in (v.items() if isinstance(v, dict) else [("", v)]):
            if vv is None or (isinstance(vv, (int, float)) and not isinstance(vv, bool)):
                out[f"{k}/{kk}" if kk else k] = vv
    return out


def metrics_table(metrics):
    """Metrics dict -> aligned two-column text table (rates as percentages, None as '-')."""
    lines = []
    for k, v in flatten(metrics).items():
        is_count = k == "n" or k.endswith("/n") or k.startswith("n_")
        cell = "-" if v is None else (f"{v:d}" if is_count else f"{100 * v:6.2f}")
        lines.append(f"{k:<22}{cell:>8}")
    if metrics.get("unparseable_ids"):
        lines.append("unparseable: " + ", ".join(metrics["unparseable_ids"]))
    if metrics.get("failed"):
        lines.append("failed: " + ", ".join(f"{f['id']} ({f['reason']})" for f in metrics["failed"]))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# model side


def answer(policy, tokenizer, rows, family, video_cfg, batch_size=4, temperature=0.0, max_new_tokens=512, seed=0,
           progress=True):
    """Rows -> (records, failed): one completion per row (greedy at temperature 0), scored by score_completion;
    failed = [{id, task, reason}] for the videos that do not load. Batch j of the rows is sampled with seed + j."""
    records, failed = [], []
    bar = tqdm(total=len(rows), disable=not progress, desc="eval")
    for j, i in enumerate(range(0, len(rows), batch_size)):
        samples, problems = data.prepare_batch(rows[i:i + batch_size], tokenizer, family, video_cfg)
        failed += data.failed_rows(problems)
        if samples:
            out = vlm.rollout(policy, tokenizer, samples, 1, max_new_tokens, temperature, seed=seed + j)
            records += [score_completion(text, s.row, cut)
                        for s, text, cut in zip(samples, out.texts, out.truncated.tolist())]
        bar.update(len(rows[i:i + batch_size]))
    bar.close()
    return records, failed


def evaluate(policy, tokenizer, rows, family, video_cfg, batch_size=4, temperature=0.0, max_new_tokens=512, seed=0,
             progress=True):
    """Metrics dict of a model on rows (schema dicts from data.load_jsonl): answer() then summarize().
    Local: no collectives, so train.py can call it on one rank with a full copy of the model."""
    return summarize(*answer(policy, tokenizer, rows, family, video_cfg, batch_size, temperature, max_new_tokens,
                             seed, progress))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="checkpoint folder (weights + tokenizer)")
    p.add_argument("--data", required=True, help="test JSONL (our schema)")
    p.add_argument("--out", default=None, help="metrics JSON (default: MODEL/eval_<data stem>.json)")
    p.add_argument("--batch-size", "--batch_size", type=int, default=4, help="prompts per sampler call")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--max-new-tokens", "--max_new_tokens", type=int, default=512)
    p.add_argument("--seed", type=int, default=0, help="used when --temperature > 0")
    data.add_video_flags(p)
    p.add_argument("--dtype", default=None, help="bfloat16 on GPU, float32 on CPU unless given")
    p.add_argument("--dist-timeout-minutes", "--dist_timeout_minutes", type=float, default=distributed.TIMEOUT_MINUTES,
                   help="minutes a rank waits at a collective for the others (ranks finish unevenly)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rank, world, device = distributed.init(timeout_minutes=args.dist_timeout_minutes)
    args.dtype = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    out = Path(args.out or Path(args.model) / f"eval_{Path(args.data).stem}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    read = data.read_jsonl(args.data)  # the rows that load; the others are reported as failed
    if read.problems and rank == 0:
        data.write_problems(out.with_suffix(".bad.txt"), read.problems)
    policy, tokenizer = vlm.load_policy(args.model, device, getattr(torch, args.dtype))
    video_cfg = data.video_config(args)
    records, failed = answer(policy, tokenizer, read.rows[rank::world], policy.config.model_type, video_cfg,
                             args.batch_size, args.temperature, args.max_new_tokens, args.seed + rank * 1_000_003,
                             rank == 0)
    records, failed = distributed.gather(records), distributed.gather(failed)  # each rank answered rows[rank::world]
    if rank == 0:
        order = {r["id"]: i for i, r in enumerate(read.rows)}
        records.sort(key=lambda r: order[r["id"]])
        failed.sort(key=lambda f: order[f["id"]])
        metrics = summarize(records, data.failed_rows(read.problems) + failed)
        print(metrics_table(metrics))
        settings = {k: v for k, v in vars(args).items() if k != "out"} | {"world": world}
        out.write_text(json.dumps({**metrics, "settings": settings}, indent=1))
        out.with_suffix(".samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        print(f"metrics -> {out}; per-sample answers -> {out.with_suffix('.samples.jsonl')}")
    distributed.close()


if __name__ == "__main__":
    main()
