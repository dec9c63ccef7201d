"""Evaluate a video LLM on a JSONL file: greedy answers -> the reward parsers -> a metrics table.

    python eval.py --model runs/ckpt --data test.jsonl [--out metrics.json] [--batch-size 4] [--temperature 0]
    torchrun --nproc-per-node 8 eval.py --model ... --data ...     # each rank answers rows[rank::world]

Metrics: metrics.py (each task's, as the official evaluation computes it; an unparseable answer counts 0 in every
denominator).

Rows converted from a public benchmark (benchmarks.py: MVBench, Video-MME, MMVU, TempCompass, ActivityNet,
Charades-STA) are also read by that benchmark's own answer reader and aggregated as its evaluation does (overall,
then per task / category / duration bucket), under `benchmarks`; `python eval.py --table METRICS...` tabulates them
beside the paper's numbers.

Every row of the file is counted: n_rows = n_scored + n_failed. A row that read_jsonl rejects (a bad field, a missing
video) or whose video fails to decode is not scored: it is listed under `failed` with its id and reason, and each
task's section says over how many rows its metrics were computed (n) and how many of its rows failed (n_failed).
Also reported: format-error rate = fraction of completions with rewards.format_reward == 0, truncated rate =
fraction that hit --max-new-tokens without EOS, the unparseable ids (the first 10), and n_gt_outside_video, the
valid rows whose ground truth reaches outside the video (kept and scored as published).

Outputs: the table on stdout; metrics (+ the settings) as JSON at --out (default: eval_<data stem>_<hash>.json
inside the model folder, so a checkpoint keeps its own results, the hash a short sha256 of the data file's resolved
path so that two test files of one name never share a result; a model folder we cannot write to, such as a shared
read-only copy, gives eval_<model folder name>_<data stem>_<hash>.json in the current folder instead); next to it
<out stem>.samples.jsonl, one line per answered sample (completion, parsed option/segment, IoU, IoP, truncated),
and <out stem>.bad.txt listing the rows schema.read_jsonl rejects (a missing video, a bad field), when there are
any - those count as failed too.

Rows are read with schema.read_jsonl, videos decoded with data.prepare_batch and answers sampled with model.rollout:
the same prompts and decoding as a GRPO rollout, with group size 1.
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

import benchmarks
import config
import flags
import distributed
import metrics
import model as vlm
import schema
import video


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=argparse.SUPPRESS, help="checkpoint folder (weights + tokenizer); required")
    p.add_argument("--data", default=argparse.SUPPRESS, help="test JSONL (our schema); required")
    p.add_argument("--out", default=None, help="metrics JSON; None = MODEL/eval_<data stem>_<hash>.json")
    p.add_argument("--batch-size", "--batch_size", type=flags.positive_int, default=4, help="prompts per sampler call")
    p.add_argument("--temperature", type=flags.non_negative, default=0.0, help="0 = greedy")
    p.add_argument("--max-new-tokens", "--max_new_tokens", type=flags.positive_int, default=512,
                   help="answer length limit")
    p.add_argument("--seed", type=flags.count, default=0, help="used when --temperature > 0")
    config.add_flags(p, *config.INPUT_FLAGS, "prompt_style")
    p.add_argument("--dtype", default=None, choices=config.DTYPES, help="None = bfloat16 on GPU, float32 on CPU")
    config.add_flags(p, "dist_timeout_minutes")
    p.add_argument("--table", nargs="+", default=None, metavar="METRICS",
                   help="instead: print the paper's table from these metrics JSONs of eval.py, one per benchmark file"
                        " (no model, no --data)")
    args = p.parse_args(argv)
    given = [f"--{name}" for name in ("model", "data") if hasattr(args, name)]
    if args.table and given:
        p.error(f"--table reads metrics files only: drop {' and '.join(given)}")
    if not args.table and len(given) < 2:
        p.error("the following arguments are required: --model, --data (or --table METRICS...)")
    return args


def print_table(paths):
    """--table: the paper's layout (benchmarks.paper_table), ours beside the paper's 7B numbers, from the metrics
    JSONs eval.py wrote, one per benchmark file."""
    evals = []
    for path in paths:
        try:
            evals.append(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"eval.py --table {path}: {e}")
        if not evals[-1].get("benchmarks"):
            raise SystemExit(f"eval.py --table {path}: no benchmark section (was its data converted with a benchmark"
                             " --from?)")
    print(benchmarks.paper_table(evals))


def writable(folder):
    """Whether a file can be created in folder (created if missing), asked of the filesystem itself."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def output_path(args):
    """Where the metrics go, decided before the model loads: --out, else MODEL/eval_<data stem>_<hash>.json, else
    (a read-only model folder) ./eval_<model name>_<data stem>_<hash>.json; <hash> is a short sha256 of the data
    file's resolved path, so two test.jsonl in two folders never share a name. An --out that cannot be written is
    an error."""
    if args.out:
        if not writable(Path(args.out).parent):
            raise SystemExit(f"cannot write --out {args.out}: its folder is not writable; pass another --out")
        return Path(args.out)
    name = f"{Path(args.data).stem}_{hashlib.sha256(os.path.realpath(args.data).encode()).hexdigest()[:8]}.json"
    beside = Path(args.model) / f"eval_{name}"
    if writable(beside.parent):
        return beside
    here = Path(f"eval_{Path(args.model).resolve().name}_{name}")
    print(f"{args.model} is not writable: the metrics go to {here.resolve()} (--out to choose)", file=sys.stderr)
    return here


def refuse_replacing(out, data_path):
    """An existing `out` is replaced only when it holds this command's metrics of the same data file (resolved
    path): the result of another input, or a file that is not an eval.py result, is refused, never overwritten."""
    if not out.exists():
        return
    try:
        settings = json.loads(out.read_text(encoding="utf-8"))["settings"]
        before = settings.get("data_file") or os.path.realpath(settings["data"])
    except (ValueError, KeyError, TypeError, AttributeError):  # not JSON, not an object, no settings
        raise SystemExit(f"{out} exists and is not an eval.py result: refused to overwrite it; pass another --out")
    if before != os.path.realpath(data_path):
        raise SystemExit(f"{out} holds the results of another input ({before}): refused to overwrite them with "
                         f"those of {data_path}; pass another --out")


def main(argv=None):
    args = parse_args(argv)
    if args.table:
        return print_table(args.table)
    rank, world, device = distributed.init(timeout_minutes=args.dist_timeout_minutes)
    args.dtype = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    vlm.require_folder(args.model)  # inputs first: no model loads before they hold
    out = output_path(args)
    schema.refuse_overwriting_inputs([out, out.with_suffix(".samples.jsonl"), out.with_suffix(".bad.txt")],
                                   {"--data": args.data})
    refuse_replacing(out, args.data)
    read = schema.read_jsonl(args.data, args.max_text_chars)  # the rows that load; the others are reported as failed
    if not read.rows and not read.problems:
        raise SystemExit(f"{args.data} holds no rows: nothing to evaluate")
    if read.problems and rank == 0:
        schema.write_problems(out.with_suffix(".bad.txt"), read.problems)
    policy, tokenizer = vlm.load_policy(args.model, device, getattr(torch, args.dtype))
    video_cfg = video.video_config(args)
    records, failed = metrics.answer(policy, tokenizer, read.rows[rank::world], policy.config.model_type, video_cfg,
                             args.batch_size, args.temperature, args.max_new_tokens, args.seed + rank * 1_000_003,
                             rank == 0, args.prompt_style)
    records, failed = distributed.gather(records), distributed.gather(failed)  # each rank answered rows[rank::world]
    if rank == 0:
        order = {r["id"]: i for i, r in enumerate(read.rows)}
        records.sort(key=lambda r: order[r["id"]])
        failed.sort(key=lambda f: order[f["id"]])
        scores = metrics.summarize(records, schema.failed_rows(read.problems) + failed)
        scores["n_gt_outside_video"] = len(read.outside)  # scored as published (schema._check_segment)
        print(metrics.metrics_table(scores))
        settings = {k: v for k, v in vars(args).items() if k != "out"} | {"world": world,
                                                                           "data_file": os.path.realpath(args.data)}
        if "benchmarks" in scores:
            print(benchmarks.report(scores["benchmarks"], settings))
        out.write_text(json.dumps({**scores, "settings": settings}, indent=1))
        out.with_suffix(".samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        print(f"metrics -> {out}; per-sample answers -> {out.with_suffix('.samples.jsonl')}")
    distributed.close()


if __name__ == "__main__":
    try:
        main()
    except (video.DataError, FileNotFoundError) as e:  # bad input: the message names the path and what to do
        raise SystemExit(f"eval.py: {e}")
