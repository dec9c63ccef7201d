"""reproduce.py: the paper's three claims in miniature on the toy world, a few seeds each, verdicts computed.

    python reproduce.py              # 5 seeds, B = 50 steps per arm -> runs/reproduce/table.md and claims.png
    python reproduce.py --quick      # a few minutes: fewer clips and steps, 2 seeds (what the tests run)

Per seed s, from one warm start W_s (the tiny toy model pre-trained on the captions of the train clips, then SFT
on the labelled part, as `python train.py`; every stage is a train.py or select_data.py command run as its own
process, as a user would run it, so each arm's folder holds its log, metrics and checkpoint):
  1. RL vs SFT: W_s + B steps of GRPO  vs  W_s + B steps of SFT, both on the whole train split (same prompts and
     batch size; SFT reads the ground truth). Scored on the test split (in domain) and on a variant of the toy world
     that no stage trains on: clips of 10-14 s instead of 4-8 (out of domain); by tvg mIoU, the paper's metric
     for grounding, and by the test reward.
  2. Data efficiency: GRPO for B steps on the rows that select_data.py keeps with W_s (at most half of them) vs
     on all rows vs on a random subset of the same size; and the online form of the selection: GRPO on all rows
     with --min-group-std, each step's groups whose rewards barely vary left out of the update. Every GRPO arm
     samples the same number of rollouts (B steps x 8 prompts x G). These four arms also score the test split
     every B/5 steps during training, which gives the second measure of "less data": the steps (and so rollouts)
     each arm takes to reach the test reward that the all-rows arm ends with.
  3. Dual reward: GRPO for B steps with gqa rewarded by (1[option right] + IoU) / 2 vs by 1[option right] alone.

A verdict compares two arms by their difference d_s on each seed: "holds" when the mean of d lies more than two
standard errors (std(d) / sqrt(seeds)) above zero, "does not hold" when as far below, else "within noise". A claim
that one arm is only "no worse" does not hold when the mean lies two standard errors below zero, is "not shown
worse" when it lies below zero within noise (a is behind on these seeds, by less than the noise), and holds when
it is zero or above. Nothing here chooses among seeds.
"""

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import time

import numpy as np

import config
import flags
import distributed
import run_folder
import schema
import toy

ROOT = os.path.dirname(os.path.abspath(__file__))
ONLINE_MIN_STD = 0.1  # the online arm drops groups whose rewards' std is below this (--min-group-std)

ARMS = ("warm", "grpo", "sft", "selected", "random", "online", "answer_only")
CURVE_ARMS = ("grpo", "selected", "random", "online")  # the data-efficiency arms ("grpo" = all rows)
# (claim, metric, split, arm a, arm b, kind): kind "better" = a beats b, "no worse" = a is not beaten by b
# metrics: tvg mIoU for grounding, as the paper scores Charades-STA (and ActivityNet out of domain); reward = the
# mean over all three tasks' test rows of the training reward
COMPARISONS = [
    ("1. RL vs SFT", "tvg/mIoU", "test", "grpo", "sft", "better"),
    ("1. RL vs SFT", "tvg/mIoU", "ood", "grpo", "sft", "better"),
    ("1. RL vs SFT", "reward", "test", "grpo", "sft", "better"),
    ("1. RL vs SFT", "reward", "ood", "grpo", "sft", "better"),
    ("2. data efficiency", "reward", "test", "selected", "all", "no worse"),
    ("2. data efficiency", "tvg/mIoU", "test", "selected", "all", "no worse"),
    ("2. data efficiency", "reward", "test", "selected", "random", "better"),
    ("2. data efficiency", "reward", "test", "online", "all", "no worse"),
    ("3. dual reward", "gqa/accuracy", "test", "grpo", "answer_only", "no worse"),
    ("3. dual reward", "gqa/mIoU", "test", "grpo", "answer_only", "better"),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="runs/reproduce", help="table.md, claims.png, results.json, a folder per seed")
    flags.add_switch(p, "--quick", help="a few minutes: 96 clips, short runs, 2 seeds")
    p.add_argument("--seeds", type=flags.at_least_two, default=None,
                   help="seeds (a verdict needs the spread of two or more); None = 5, or 2 with --quick")
    p.add_argument("--steps", type=flags.positive_int, default=None,
                   help="B, the steps of every arm after the warm start; None = 50 (5 seeds took 32 min on 2"
                        " cores), or 8 with --quick")
    return p.parse_args(argv)


def settings(args):
    """The toy default's Config with reproduce's folder and budget: toy_grpo_steps holds B, every arm's steps."""
    cfg = config.Config(out=args.out)
    if args.quick:
        cfg = dataclasses.replace(cfg, toy_n=96, toy_pretrain_steps=100, toy_sft_steps=150)
    return dataclasses.replace(cfg, toy_grpo_steps=args.steps or (8 if args.quick else 50))


def write_ood(cfg):
    """The out-of-domain test split: clips of 10-14 s (training sees 4-8 s), as many as the test split."""
    ood_dir = os.path.join(cfg.out, "toy-ood")
    if not os.path.exists(os.path.join(ood_dir, "test.jsonl")):
        n = cfg.toy_n // 4
        toy.make_toy(ood_dir, n=n, seed=cfg.seed, n_test=n, durations=(10, 14))
    return os.path.join(ood_dir, "test.jsonl")


def command(script, *flags):
    """Run one of the repo's commands as its own process, as a user would, its output in this seed's log."""
    sys.stdout.flush()
    one_thread = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # as side_by_side's own processes
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script), *flags], stdout=sys.stdout,
                          stderr=subprocess.STDOUT, env=one_thread)
    if proc.returncode:
        raise RuntimeError(f"{script} {' '.join(flags)} exited with {proc.returncode} (its output is above)")


def train_stage(start, data_file, out, seed, steps, stage):
    """train.py from `start` on `data_file` for `steps` steps with a toy stage's settings -> its last checkpoint."""
    command("train.py", "--model", start, "--data", data_file, "--out", out, "--seed", str(seed),
            "--steps", str(steps), *toy.as_flags(stage))
    return os.path.join(out, f"checkpoint-{steps}")


def warm_start(cfg, seed, labelled):
    """W_s, as `python train.py` makes it: the toy model -> caption pre-training -> SFT on the labelled part."""
    folder, captions = os.path.join(cfg.out, f"seed-{seed}"), os.path.join(os.path.dirname(labelled), "captions.jsonl")
    if not os.path.exists(os.path.join(folder, "init", "config.json")):
        toy.save_toy_model(os.path.join(folder, "init"), seed)
    base = train_stage(os.path.join(folder, "init"), captions, os.path.join(folder, "base"), seed,
                       cfg.toy_pretrain_steps, toy.TOY_SFT)
    return train_stage(base, labelled, os.path.join(folder, "sft"), seed, cfg.toy_sft_steps, toy.TOY_SFT)


def arm(cfg, seed, name, start, data_file, **changes):
    """B more steps from the warm start: GRPO (the toy default's) unless changes say otherwise -> last checkpoint."""
    run = {**(toy.TOY_SFT if changes.get("mode") == "sft" else toy.TOY_GRPO), "eval_every": 0, **changes}
    if run["mode"] == "sft":  # the same prompts per step as GRPO, at GRPO's learning rate
        run.update(batch_size=toy.TOY_GRPO["batch_size"], pack_prompts=toy.TOY_GRPO["pack_prompts"],
                   schedule="constant", warmup_steps=0, lr=toy.TOY_GRPO["lr"])
    return train_stage(start, data_file, os.path.join(cfg.out, f"seed-{seed}", name), seed, cfg.toy_grpo_steps, run)


def select_rows(cfg, seed, start, train_file):
    """select_data.py with the warm start (G and the sampling settings of the GRPO arms), at most half the rows kept
    -> (selected JSONL, random JSONL of the same size)."""
    folder = os.path.join(cfg.out, f"seed-{seed}")
    selected, rand = os.path.join(folder, "selected.jsonl"), os.path.join(folder, "random.jsonl")
    rows = open(train_file, encoding="utf-8").readlines()
    if not os.path.exists(rand):
        command("select_data.py", "--model", start, "--data", train_file, "--out", selected,
                "--group-size", str(toy.TOY_GRPO["group_size"]),
                "--max-new-tokens", str(toy.TOY_GRPO["max_new_tokens"]),
                "--temperature", str(toy.TOY_GRPO["temperature"]), "--batch-size", "8", "--seed", str(seed),
                "--top-n", str(len(rows) // 2), *toy.as_flags(toy.TOY_VIDEO))
        n_kept = len(open(selected, encoding="utf-8").readlines())
        picked = random.Random(seed).sample(rows, n_kept)  # video paths rewritten as select_data.py does for its own
        with open(rand + ".tmp", "w", encoding="utf-8") as f:
            f.writelines(schema.moved_video_path(line.rstrip("\n"), os.path.dirname(train_file), folder) + "\n"
                         for line in picked)
        os.replace(rand + ".tmp", rand)
    return selected, rand


def seed_runs(cfg, seed, files, ood_file):
    """Every arm of one seed -> {arm: {"test": metrics, "ood": metrics}, "rows": (kept, all), "curves": {arm:
    [[step, test reward], ...]} of the data-efficiency arms}."""
    train_file, labelled, test_file = files
    warm = warm_start(cfg, seed, labelled)  # in OUT/seed-S/sft, as the toy default's
    selected, rand = select_rows(cfg, seed, warm, train_file)
    curve = dict(test_data=test_file, eval_every=eval_every(cfg.toy_grpo_steps))  # the test reward during the run
    finals = {"warm": warm,
              "grpo": arm(cfg, seed, "grpo", warm, train_file, **curve),
              "sft": arm(cfg, seed, "more_sft", warm, train_file, mode="sft"),
              "selected": arm(cfg, seed, "selected", warm, selected, **curve),
              "random": arm(cfg, seed, "random", warm, rand, **curve),
              "online": arm(cfg, seed, "online", warm, train_file, min_group_std=ONLINE_MIN_STD, **curve),
              "answer_only": arm(cfg, seed, "answer_only", warm, train_file, reward="answer")}
    scores = {name: {"test": toy.toy_evaluate(path, test_file), "ood": toy.toy_evaluate(path, ood_file)}
              for name, path in finals.items()}
    scores["rows"] = (len(open(selected).readlines()), len(open(train_file).readlines()))
    scores["curves"] = {name: reward_curve(os.path.dirname(finals[name])) for name in CURVE_ARMS}
    return scores


def eval_every(steps):
    """The data-efficiency arms score the test split every B // 5 steps (every step if B < 10)."""
    return max(1, steps // 5)


def reward_curve(folder):
    """An arm's test reward at each step train.py measured it (its metrics.jsonl; a resumed run has trimmed the
    rows past its checkpoint, so each step is there once) -> [[step, reward], ...]."""
    rows = run_folder.read_log(os.path.join(folder, "metrics.jsonl"))
    return [[row["step"], row["test/reward"]] for row, _ in rows if "test/reward" in row]


def steps_to_reach(curve, target):
    """The first measured step whose test reward is at least `target`, or None if the run never gets there."""
    return next((step for step, reward in curve if reward >= target), None)


def value(scores, arm_name, split, metric):
    return scores["grpo" if arm_name == "all" else arm_name][split][metric]


def verdict(diffs, kind):
    """Per-seed differences a - b -> "holds" | "does not hold" | "within noise", or for a "no worse" claim
    "holds" | "not shown worse" | "does not hold" (see the module docstring)."""
    d = np.asarray(diffs, dtype=float)
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("inf")
    above, below = d.mean() - 2 * se > 0, d.mean() + 2 * se < 0
    if kind == "no worse":
        return "does not hold" if below else "not shown worse" if d.mean() < 0 else "holds"
    return "holds" if above else "does not hold" if below else "within noise"


def table(results, minutes, steps):
    """results: [seed_runs(...) per seed] -> the Markdown table (one row per comparison, then one per claim)."""
    n_kept, n_rows = results[0]["rows"]
    batch, G = toy.TOY_GRPO["batch_size"], toy.TOY_GRPO["group_size"]
    lines = [f"{len(results)} seeds; every arm takes B = {steps} steps of {batch} prompts (GRPO: x G = {G}, so"
             f" {steps * batch * G} rollouts each, selected and online included); selection kept {n_kept} of"
             f" {n_rows} rows (seed 0)",
             "", "| claim | metric (split) | a | b | mean a | mean b | a - b per seed | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    claims = {}
    for claim, metric, split, a, b, kind in COMPARISONS:
        va = [value(r, a, split, metric) for r in results]
        vb = [value(r, b, split, metric) for r in results]
        diffs = [x - y for x, y in zip(va, vb)]
        v = verdict(diffs, kind)
        claims.setdefault(claim, []).append(v)
        lines.append(f"| {claim} | {metric} ({split}) | {a} | {b} ({kind}) | {np.mean(va):.3f} | {np.mean(vb):.3f} | "
                     + " ".join(f"{x:+.3f}" for x in diffs) + f" | {v} |")
    lines += ["", "| claim | verdict |", "|---|---|"]
    for claim, vs in claims.items():
        whole = "does not hold" if "does not hold" in vs else "holds" if all(v == "holds" for v in vs) \
            else "within noise"
        lines.append(f"| {claim} | {whole} |")
    lines += ["", *reach_table(results, steps)]
    warm = np.mean([r["warm"]["test"]["reward"] for r in results])
    lines += ["", f"Measured in {minutes:.1f} min; warm start = caption pre-training, then SFT on the labelled part"
                  f" (test reward {warm:.3f})."]
    return "\n".join(lines) + "\n"


def reach_table(results, steps):
    """The second measure of "less data": per data-efficiency arm, the steps each seed took to reach the test
    reward that the all-rows arm ends with (its own in-run evals; "-" = not within the B steps)."""
    every, rollouts = eval_every(steps), toy.TOY_GRPO["batch_size"] * toy.TOY_GRPO["group_size"]
    lines = [f"Steps to reach the all-rows arm's test reward at step {steps} (each arm scores the test split every"
             f" {every} steps; one step = {rollouts} rollouts; - = not reached within {steps} steps):",
             "", "| arm | steps per seed | seeds that reach it | median steps |", "|---|---|---|---|"]
    for name in CURVE_ARMS:
        reached = [steps_to_reach(r["curves"][name], r["curves"]["grpo"][-1][1]) for r in results]
        found = [n for n in reached if n is not None]
        median = f"{np.median(found):g}" if len(found) == len(reached) else "-"
        lines.append(f"| {'all' if name == 'grpo' else name} | " + " ".join("-" if n is None else str(n)
                     for n in reached) + f" | {len(found)} of {len(reached)} | {median} |")
    return lines


def plot(results, path):
    """claims.png: one panel per claim, each arm's mean with one dot per seed, and claim 2's test reward along the
    run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("1. RL vs SFT: tvg mIoU (test, ood)", [("warm", "test"), ("sft", "test"), ("grpo", "test"),
                                                     ("warm", "ood"), ("sft", "ood"), ("grpo", "ood")], "tvg/mIoU"),
              ("2. data efficiency: test reward", [("all", "test"), ("selected", "test"), ("random", "test"),
                                                  ("online", "test")], "reward"),
              ("3. dual reward: gqa mIoU", [("answer_only", "test"), ("grpo", "test")], "gqa/mIoU")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
    for ax, (title, bars, metric) in zip(axes, panels):
        for x, (a, split) in enumerate(bars):
            values = [value(r, a, split, metric) for r in results]
            ax.bar(x, np.mean(values), color="C0" if split == "test" else "C1", alpha=0.6)
            ax.plot([x] * len(values), values, "k.", ms=5)
        ax.set_xticks(range(len(bars)), [f"{a}\n({s})" for a, s in bars], fontsize=7)
        ax.set_title(title, fontsize=9)
    ax = axes[3]  # claim 2's second measure: the test reward along the run, the mean over seeds
    for name in CURVE_ARMS:
        steps_measured = [step for step, _ in results[0]["curves"][name]]
        mean = np.mean([[reward for _, reward in r["curves"][name]] for r in results], axis=0)
        ax.plot(steps_measured, mean, "o-", ms=3, label="all" if name == "grpo" else name)
    ax.set_xlabel("step", fontsize=7)
    ax.legend(fontsize=7)
    ax.set_title("2. data efficiency: test reward along the run", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    cfg, t0 = settings(args), time.time()
    seeds = [cfg.seed + k for k in range(args.seeds or (2 if args.quick else 5))]
    files = toy.toy_data(os.path.join(cfg.out, "toy-data"), cfg.toy_n, cfg.seed, cfg.toy_labelled)
    ood_file = write_ood(cfg)
    print(f"reproduce: {len(seeds)} seeds side by side, logs in {cfg.out}/seed-*/log.txt")
    runs = [(f"seed-{s}", (cfg, s, files, ood_file)) for s in seeds]
    results = distributed.side_by_side(seed_runs, runs, cfg.out)
    with open(os.path.join(cfg.out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    text = table(results, (time.time() - t0) / 60, cfg.toy_grpo_steps)
    with open(os.path.join(cfg.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(text)
    plot(results, os.path.join(cfg.out, "claims.png"))
    print(text + f"\n-> {cfg.out}/table.md, {cfg.out}/claims.png")


if __name__ == "__main__":
    main()
