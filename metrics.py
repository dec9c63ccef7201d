"""The metrics of our three tasks, as the official evaluations compute them, and the answering loop that feeds
them: rows -> greedy answers (model.rollout, group size 1) -> per-sample records -> per-task metrics.

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

Used by eval.py (the command) and by train.py (the held-out split during training).
"""

from tqdm import tqdm

import benchmarks
import data
import model as vlm
import rewards
import schema

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


def score_completion(text, row, truncated=False, style="vrl", opened=""):
    """One completion, read by rewards.score (after the `opened` start its prompt holds, in the prompt style) ->
    per-sample record.

    record: id, task, completion, truncated (hit the token limit; as given), format, reward (the training
    reward's total), option / segment (read, or None), parsed (every part the task needs was read), correct
    (mcq, gqa), iou and iop (tvg, gqa; 0 when unparseable).
    """
    r = rewards.score(opened + text, row, style=style)
    rec = {"id": row["id"], "task": row["task"], "completion": text, "truncated": truncated, "format": r.format,
           "reward": r.total, "option": r.option, "segment": list(r.segment) if r.segment else None,
           "parsed": r.parsed}
    if row["task"] in ("mcq", "gqa"):
        rec["correct"] = r.right
    if row["task"] in ("tvg", "gqa"):
        rec["iou"], rec["iop"] = r.iou, r.iop
    if row.get("benchmark") in benchmarks.BENCHMARKS:  # also read as the benchmark's own evaluation reads it
        rec |= benchmarks.score(text, row)
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
    if bench := [r for r in records if r.get("benchmark")]:
        out["benchmarks"] = benchmarks.aggregate(bench)  # each benchmark's official aggregate (benchmarks.py)
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
           progress=True, style="vrl"):
    """Rows -> (records, failed): one completion per row (greedy at temperature 0), scored by score_completion;
    failed = [{id, task, reason}] for the videos that do not load. Batch j of the rows is sampled with seed + j."""
    records, failed = [], []
    bar = tqdm(total=len(rows), disable=not progress, desc="eval")
    for j, i in enumerate(range(0, len(rows), batch_size)):
        samples, problems = data.prepare_batch(rows[i:i + batch_size], tokenizer, family, video_cfg, style)
        failed += schema.failed_rows(problems)
        if samples:
            out = vlm.rollout(policy, tokenizer, samples, 1, max_new_tokens, temperature, seed=seed + j)
            records += [score_completion(text, s.row, cut, style, s.opened)
                        for s, text, cut in zip(samples, out.texts, out.truncated.tolist())]
        bar.update(len(rows[i:i + batch_size]))
    bar.close()
    return records, failed


def evaluate(policy, tokenizer, rows, family, video_cfg, batch_size=4, temperature=0.0, max_new_tokens=512, seed=0,
             progress=True, style="vrl"):
    """Metrics dict of a model on rows (schema dicts from schema.load_jsonl): answer() then summarize().
    Local: no collectives, so train.py can call it on one rank with a full copy of the model."""
    return summarize(*answer(policy, tokenizer, rows, family, video_cfg, batch_size, temperature, max_new_tokens,
                             seed, progress, style))


if __name__ == "__main__":
    raise SystemExit("metrics.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
