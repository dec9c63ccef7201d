"""Evaluate a video LLM on a JSONL file: greedy answers -> the reward parsers -> a metrics table.

    python eval.py --model runs/ckpt --data test.jsonl [--out metrics.json] [--batch-size 4] [--temperature 0]
    torchrun --nproc-per-node 8 eval.py --model ... --data ...     # each rank answers rows[rank::world]

Every completion is read once, by rewards.score, the training reward itself: the Reward it returns carries the
option and segment it read, whether the option is right, the IoU and the IoP, so an eval number and a training
reward never disagree on what an answer says. Metrics, per task, each the official evaluation's on the same answers:

    mcq  accuracy  = mean(correct)
    tvg  R@m       = mean(IoU >= m) for m in 0.3, 0.5, 0.7;   mIoU = mean(IoU)
                     = Temporal-R1's `eval_tvg` and lmms-eval's Charades-STA (its `iou`, R@m with >=, mean over all)
    gqa  accuracy  = mean(correct);  mIoP = mean(IoP);  IoP@m = mean(IoP >= m);  mIoU;  IoU@m   (m in 0.3, 0.5)
         Acc@GQA   = mean(correct and IoP >= 0.5)
                     = NExT-GQA's `eval_ground` (get_tIoU per span, the max over a question's spans, over all questions)

where IoU = |pred ∩ gt| / |pred ∪ gt| and IoP = |pred ∩ gt| / |pred| (how much of the predicted span is inside the
ground truth) are rewards.temporal_iou / temporal_iop: on the raw times, neither the prediction nor the ground truth
clipped to the video (annotations that end past the decoded video are scored as published); with several
ground-truth spans each is the max over them; a zero-length prediction inside a span has IoP 1 and IoU 0. An
unparseable answer is wrong with IoU = IoP = 0 (as the grounding evaluations score it); it is counted in every
denominator and its id listed, never raised. A rate over zero samples is None (JSON null), not 0: "no samples" must
not read as "a model that scores 0".

Every row of the file is counted: n_rows = n_scored + n_failed. A row that read_jsonl rejects (a bad field, a missing
video) or whose video fails to decode is not scored: it is listed under `failed` with its id and reason, and each
task's section says over how many rows its metrics were computed (n) and how many of its rows failed (n_failed).
Also reported: format-error rate = fraction of completions with rewards.format_reward == 0, truncated rate =
fraction that hit --max-new-tokens without EOS, the unparseable ids (the first 10), and n_gt_outside_video, the
valid rows whose ground truth reaches outside the video (kept and scored as published).

Outputs: the table on stdout; metrics (+ the settings) as JSON at --out (default: eval_<data stem>.json inside
the model folder, so a checkpoint keeps its own results; a model folder we cannot write to, such as a shared
read-only copy, gives eval_<model folder name>_<data stem>.json in the current folder instead); next to it
<out stem>.samples.jsonl, one line per answered sample (completion, parsed option/segment, IoU, IoP, truncated),
and <out stem>.bad.txt listing the rows data.read_jsonl rejects (a missing video, a bad field), when there are
any - those count as failed too.

Rows are read with data.read_jsonl, videos decoded with data.prepare_batch and answers sampled with model.rollout:
the same prompts and decoding as a GRPO rollout, with group size 1.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

import config
import data
import distributed
import model as vlm
import rewards
import video

RECALL_THRESHOLDS = (0.3, 0.5, 0.7)  # Charades-STA's R@m
GQA_THRESHOLDS = (0.3, 0.5)  # NExT-GQA's IoP@m and IoU@m
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
    """Grounded QA (NExT-GQA): per-sample answer correctness, IoU and IoP -> {n, accuracy, Acc@GQA, mIoP, IoP@0.3,
    IoP@0.5, mIoU, IoU@0.3, IoU@0.5}, the table of NExT-GQA's eval_ground. Acc@GQA = fraction of ALL samples
    answered right with IoP >= 0.5."""
    assert len(correct) == len(ious) == len(iops)
    out = {"n": len(correct), "accuracy": _mean(correct),
           "Acc@GQA": _mean([c and iop >= 0.5 for c, iop in zip(correct, iops)])}
    for name, values in (("IoP", iops), ("IoU", ious)):
        out[f"m{name}"] = _mean(values)
        out |= {f"{name}@{m}": _mean([v >= m for v in values]) for m in GQA_THRESHOLDS}
    return out


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
    """Per-sample records + failed [{id, task, reason}] -> metrics dict (per task + counts + error lists).

    n_rows = n_scored + n_failed; a task with any row, scored or failed, gets a section whose n counts the rows its
    metrics are computed over and n_failed the ones that could not be scored."""
    out = {"n_rows": len(records) + len(failed), "n_scored": len(records), "n_failed": len(failed)}
    for task in rewards.TASKS:
        scored, n_failed = [r for r in records if r["task"] == task], sum(f["task"] == task for f in failed)
        if scored or n_failed:
            correct, ious, iops = ([r.get(k) for r in scored] for k in ("correct", "iou", "iop"))
            metrics = (mcq_metrics(correct) if task == "mcq" else grounding_metrics(ious) if task == "tvg"
                       else gqa_metrics(correct, ious, iops))
            out[task] = {"n": len(scored), "n_failed": n_failed} | metrics
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
        name = k.split("/")[-1]
        is_count = name == "n" or name.startswith("n_")
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
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", **config.REQUIRED, help="checkpoint folder (weights + tokenizer)")
    p.add_argument("--data", **config.REQUIRED, help="test JSONL (our schema)")
    p.add_argument("--out", default=None, help="metrics JSON; None = MODEL/eval_<data stem>.json")
    p.add_argument("--batch-size", "--batch_size", type=config.positive_int, default=4, help="prompts per sampler call")
    p.add_argument("--temperature", type=config.non_negative, default=0.0, help="0 = greedy")
    p.add_argument("--max-new-tokens", "--max_new_tokens", type=config.positive_int, default=512,
                   help="answer length limit")
    p.add_argument("--seed", type=config.count, default=0, help="used when --temperature > 0")
    config.add_flags(p, *config.INPUT_FLAGS)
    p.add_argument("--dtype", default=None, choices=config.DTYPES, help="None = bfloat16 on GPU, float32 on CPU")
    config.add_flags(p, "dist_timeout_minutes")
    return p.parse_args(argv)


def writable(folder):
    """Whether a file can be created in folder (created if missing), asked of the filesystem itself."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def output_path(args):
    """Where the metrics go, decided before the model loads: --out, else MODEL/eval_<data stem>.json, else (a
    read-only model folder) ./eval_<model name>_<data stem>.json. An --out that cannot be written is an error."""
    if args.out:
        if not writable(Path(args.out).parent):
            raise SystemExit(f"cannot write --out {args.out}: its folder is not writable; pass another --out")
        return Path(args.out)
    beside = Path(args.model) / f"eval_{Path(args.data).stem}.json"
    if writable(beside.parent):
        return beside
    here = Path(f"eval_{Path(args.model).resolve().name}_{Path(args.data).stem}.json")
    print(f"{args.model} is not writable: the metrics go to {here.resolve()} (--out to choose)", file=sys.stderr)
    return here


def main(argv=None):
    args = parse_args(argv)
    rank, world, device = distributed.init(timeout_minutes=args.dist_timeout_minutes)
    args.dtype = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    vlm.require_folder(args.model)  # inputs first: no model loads before they hold
    out = output_path(args)
    read = data.read_jsonl(args.data, args.max_text_chars)  # the rows that load; the others are reported as failed
    if not read.rows and not read.problems:
        raise SystemExit(f"{args.data} holds no rows: nothing to evaluate")
    if read.problems and rank == 0:
        data.write_problems(out.with_suffix(".bad.txt"), read.problems)
    policy, tokenizer = vlm.load_policy(args.model, device, getattr(torch, args.dtype))
    video_cfg = video.video_config(args)
    records, failed = answer(policy, tokenizer, read.rows[rank::world], policy.config.model_type, video_cfg,
                             args.batch_size, args.temperature, args.max_new_tokens, args.seed + rank * 1_000_003,
                             rank == 0)
    records, failed = distributed.gather(records), distributed.gather(failed)  # each rank answered rows[rank::world]
    if rank == 0:
        order = {r["id"]: i for i, r in enumerate(read.rows)}
        records.sort(key=lambda r: order[r["id"]])
        failed.sort(key=lambda f: order[f["id"]])
        metrics = summarize(records, data.failed_rows(read.problems) + failed)
        metrics["n_gt_outside_video"] = len(read.outside)  # scored as published (data._check_segment)
        print(metrics_table(metrics))
        settings = {k: v for k, v in vars(args).items() if k != "out"} | {"world": world}
        out.write_text(json.dumps({**metrics, "settings": settings}, indent=1))
        out.with_suffix(".samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        print(f"metrics -> {out}; per-sample answers -> {out.with_suffix('.samples.jsonl')}")
    distributed.close()


if __name__ == "__main__":
    try:
        main()
    except (data.DataError, FileNotFoundError) as e:  # bad input: the message names the path and what to do
        raise SystemExit(f"eval.py: {e}")
