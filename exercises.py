"""Course exercises: each concept of the method as a graded exercise, from the ground up (EXERCISES.md has the reading).

    python exercises.py list                    # the exercises in learning order, each with its goal
    python exercises.py start 2 [--dir DIR]     # a copy of the repository with exercise 2's functions blanked
    python exercises.py check 2 [--dir DIR]     # run exactly the tests that grade exercise 2 in that copy

`start` copies the repository (default exercises/N-name/, which git ignores) and, with the ast module, replaces the
body of every function the exercise names by `raise NotImplementedError("exercise N: ...")`, keeping its signature
and docstring: the reference code itself carries no exercise markers. `check` runs the exercise's grading tests
(the project's own worked-example tests) in the copy, prints pass/fail per test and, for the first failure, what
the test checks and a hint with the equation to implement. It exits 0 only when every grading test passes.
"""

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
COPY_IGNORE = shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "build", "runs", "toy", "exercises")


def grading(test_file, *names):
    """Node ids of the grading tests test_<name> in tests/<test_file>."""
    return tuple(f"tests/{test_file}::test_{name}" for name in names)


@dataclass
class Exercise:
    name: str
    goal: str  # one line, shown by `list`
    blank: tuple  # qualified names "module.function" whose bodies the student writes
    tests: tuple  # pytest node ids that grade it (a test function without [params] selects all its cases)
    hint: str  # the equation or rule, printed with the first failure


EXERCISES = [
    Exercise(
        "iou", "score a temporal answer with temporal IoU and IoP, the grounding half of the dual reward",
        ("rewards._iou_iop", "rewards.temporal_iou", "rewards.temporal_iop"),
        grading("test_rewards.py", "iou_iop", "iou_iop_equal_the_official_formulas_on_random_spans", "score_table"),
        "IoU = |pred ∩ gt| / |pred ∪ gt|, IoP = |pred ∩ gt| / |pred|, with |a ∩ b| = max(0, min(ends) -"
        " max(starts)), on the raw times; a zero-length prediction inside a span has IoP 1; several ground-truth"
        " spans: the max over them; an unparseable answer (None) scores 0."),
    Exercise(
        "advantages", "group-relative advantages, and Dr. GRPO's unscaled variant",
        ("grpo.group_advantages",),
        grading("test_grpo.py", "worked_example_advantages", "zero_variance_group_is_exactly_zero",
                "advantages_eps_sample_std_and_dr_grpo"),
        "A_i = (r_i - mean_g) / (std_g + eps) with the sample std (N - 1); scale=False: A_i = r_i - mean_g; a group"
        " of equal rewards gets exactly 0."),
    Exercise(
        "loss", "the k3 KL, the clipped surrogate and the token / sequence / Dr. GRPO averaging",
        ("grpo.kl_k3", "grpo.policy_loss"),
        grading("test_grpo.py", "worked_example_sequence_loss", "worked_example_dr_grpo_loss", "clip_branches",
                "asymmetric_clip", "kl_k3", "kl_cap_of_ten", "beta_zero_needs_no_reference",
                "token_vs_sequence_aggregation", "dr_grpo_weighs_every_token_the_same",
                "gradient_matches_finite_differences"),
        "rho = exp(logp - old); pg = -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A); k3 = e^d - d - 1 with"
        " d = ref - logp (capped); loss = sum(pg + beta k3) / tokens (token), mean of row means (sequence), or"
        " sum / (N * max_len) (dr_grpo); masked positions never enter."),
    Exercise(
        "ranks", "loss accounting: micro-batches and ranks add up to the token mean of the whole batch",
        ("grpo.micro_batch_weight", "train.token_share"),
        grading("test_grpo.py", "micro_batches_add_up_to_the_batch_loss")
        + grading("test_exercises.py", "token_share_counts_the_completion_tokens_of_every_rank")
        + grading("test_grpo_step.py", "grpo_step_equals_the_loss_by_hand"),
        "token: a micro-batch's token-mean loss times n_tokens * W / (completion tokens of all W ranks), summed"
        " over micro-batches, averaged over ranks, is sum(l) / N_all; sequence and dr_grpo: 1 / n_micro; the"
        " token count of all ranks is one all_reduce (sum)."),
    Exercise(
        "selection", "the variance-aware keep rule of data selection",
        ("select_data.reward_stats", "select_data.verdict"),
        grading("test_select_data.py", "reward_stats_worked_example", "keep_rule_mcq", "keep_rule_tvg_threshold",
                "keep_rule_gqa_either_part", "select_top_n_and_counts"),
        "sample std (N - 1) over the G completions; mcq keeps 0 < #right < G, tvg keeps std(IoU) > min_iou_std,"
        " gqa keeps either."),
    Exercise(
        "frames", "which frames a video keeps, and the pixel budget they share",
        ("video.frame_count", "video.frame_indices", "video.frame_pixels"),
        grading("test_data.py", "frame_indices_sample_target_fps_clamped_even")
        + grading("test_video.py", "a_30_s_clip_at_the_release_budget", "a_600_s_clip_stays_within_the_budget",
                  "a_short_clip_is_sampled_faster", "qwen3_vl_counts_in_32_by_32_squares",
                  "a_grid_of_videos_equals_qwen_vl_utils"),
        "T = n_frames / video_fps * fps, clamped to [min_frames up to even, max_frames down to even] and to"
        " n_frames, rounded down to even (at least 2); index_k = round(linspace(0, n_frames - 1, T)) in float32;"
        " per frame min = frame_min_tokens f^2, max = max(min(768 f^2, video_tokens f^2 / T * 2), int(1.05 min)),"
        " f = patch * merge."),
    Exercise(
        "prompt", "the prompt layout: video placeholder, per-block timestamps (Qwen3-VL), question, chat turns",
        ("data.video_text", "data.build_prompt"),
        grading("test_data.py", "qwen2_5_prompt_written_out", "qwen3_video_placeholder_equals_transformers_processor",
                "text_with_a_video_token_in_it_is_refused")
        + grading("test_video.py", "prepare_sample_follows_the_rule_end_to_end"),
        "one <|video_pad|> per merged patch, h * w / m^2 per temporal block; qwen2_5_vl: one <|vision_start|> ..."
        " <|vision_end|> around all blocks; qwen3_vl: per block '<t seconds>' (one decimal) and its own start/end;"
        " then system turn, user turn (video + user_text), open assistant turn; refuse a prompt whose video pads"
        " do not match the grid."),
    Exercise(
        "rope", "3-D rotary positions (M-RoPE) of a video prompt",
        ("model._video_blocks", "model.rope_positions"),
        grading("test_model.py", "rope_positions_qwen2_5_by_hand", "rope_positions_qwen2_5_float32_truncation",
                "rope_positions_qwen3_by_hand",
                "rope_positions_refuse_video_tokens_that_do_not_match_the_grid")
        + grading("test_rope.py", "video_positions_equal_transformers_get_rope_index"),
        "text counts up by 1; a video token at (t, h, w) of its block gets (start + trunc(t * second_per_grid *"
        " tokens_per_second in float32), start + h, start + w); what follows starts at max(previous) + 1."),
    Exercise(
        "packing", "the shared-prefix attention mask and packing [prompt, c_1 .. c_G] on one row",
        ("attention.block_mask", "model.pack"),
        grading("test_attention.py", "block_mask_by_hand") + grading("test_model.py", "pack_layout",
                "packed_logprobs_equal_the_plain_forward_of_each_completion",
                "vision_tower_and_prompt_run_once_per_group"),
        "query i sees key j when both are in its own segment with j <= i, or j lies in its segment's prefix (its"
        " prompt); a completion's token k sits at max(prompt positions) + 1 + k, as if it were alone."),
    Exercise(
        "temperature", "completion log-probs at the sampling temperature, the LM head in chunks",
        ("model.lm_head_logprobs",),
        grading("test_model.py", "logprobs_at_the_sampling_temperature_equal_the_plain_forward",
                "packed_logprobs_equal_the_plain_forward_of_each_completion", "lm_head_runs_in_chunks"),
        "log p(target) = z_target / T - logsumexp(z / T), z = lm_head(h) in float32; LOGIT_CHUNK rows of h at a"
        " time, each chunk under torch.utils.checkpoint when grad is on, so no [T, vocab] logits live at once."),
    Exercise(
        "sampler", "the prompt-once sampler: prefill, fork the KV cache G ways, decode",
        ("model.sample",),
        grading("test_rollout.py", "greedy_sampling_equals_generate", "seeded_sampling_is_reproducible",
                "rollout_lengths_truncation_and_padding", "sampling_never_emits_a_vision_pad"),
        "prefill the B prompts once (vision tower once), repeat each prompt's cache G times, then decode B*G rows"
        " together: token k at position max(prompt positions) + 1 + k, pad after EOS, never a vision pad."),
    Exercise(
        "grpo-step", "one GRPO step of train.py, from rollouts to the optimizer step",
        ("train.grpo_step",),
        grading("test_grpo_step.py", "grpo_step_equals_the_loss_by_hand"),
        "rollouts -> rewards.score -> group_advantages -> pack micro-batches -> reference log-probs -> policy_loss"
        " weighted by grpo.micro_batch_weight -> backward -> clip -> step (train.clip_and_step does the last two)."),
]


# ----------------------------------------------------------------------------------------------------------------
# blanking


def blank_functions(source, names, message):
    """Source text -> the same text with each top-level function in `names` reduced to its signature, its docstring
    and `raise NotImplementedError(message)`. Everything else is left byte for byte."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    found = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    missing = set(names) - set(found)
    if missing:
        raise ValueError(f"no top-level function(s) {sorted(missing)}")
    for node in sorted((found[n] for n in names), key=lambda n: -n.lineno):  # bottom-up: line numbers stay valid
        body = node.body[1:] if ast.get_docstring(node) is not None else node.body
        first = body[0].lineno if body else node.end_lineno + 1
        indent = " " * body[0].col_offset if body else " " * (node.col_offset + 4)
        lines[first - 1:node.end_lineno] = [f"{indent}raise NotImplementedError({message!r})\n"]
    return "".join(lines)


def default_dir(number):
    return ROOT / "exercises" / f"{number}-{EXERCISES[number - 1].name}"


def start(number, folder):
    """Copy the repository to folder and blank exercise `number`'s functions there."""
    ex = EXERCISES[number - 1]
    if folder.exists():
        raise SystemExit(f"{folder} exists: check it, or remove it to start over")
    shutil.copytree(ROOT, folder, ignore=COPY_IGNORE)
    by_module = {}
    for name in ex.blank:
        module, function = name.split(".")
        by_module.setdefault(module, []).append(function)
    for module, functions in by_module.items():
        path = folder / f"{module}.py"
        message = f"exercise {number}: implement {', '.join(f'{module}.{f}' for f in functions)}"
        path.write_text(blank_functions(path.read_text(encoding="utf-8"), functions, message), encoding="utf-8")
    print(f"exercise {number} ({ex.name}): {ex.goal}\n  write {', '.join(ex.blank)} in {folder}\n"
          f"  then: python exercises.py check {number} --dir {folder}")


# ----------------------------------------------------------------------------------------------------------------
# grading


def test_docstring(folder, node_id):
    """The first paragraph of a test's docstring (what it checks), or its name when it has none."""
    path, name = node_id.split("::")
    name = name.split("[")[0]
    tree = ast.parse((folder / path).read_text(encoding="utf-8"))
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    doc = ast.get_docstring(node) if node else None
    return doc.split("\n\n")[0] if doc else name.replace("_", " ")


def run_tests(folder, node_ids):
    """Run pytest on node_ids in folder -> (pytest's exit status, [(outcome, node id, reason)], its output tail)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", COLUMNS="300")  # untruncated reasons
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *node_ids],
                          cwd=folder, env=env, capture_output=True, text=True)
    results = re.findall(r"^(PASSED|FAILED|ERROR) (\S+)(?: - (.*))?$", proc.stdout, re.M)
    return proc.returncode, results, proc.stdout[-4000:] + proc.stderr[-2000:]


def check(number, folder):
    """Run exercise `number`'s grading tests in folder -> the number of failures (printed per test)."""
    ex = EXERCISES[number - 1]
    if not folder.is_dir():
        raise SystemExit(f"{folder} does not exist: run `python exercises.py start {number}` first")
    returncode, results, tail = run_tests(folder, ex.tests)
    if returncode not in (0, 1) or not results:  # a collection error, or nothing ran
        print(tail)
        print(f"exercise {number}: the grading tests did not run (pytest exit {returncode})")
        return max(1, len(ex.tests))
    for outcome, node_id, _ in results:
        print(f"{'pass' if outcome == 'PASSED' else 'FAIL'}  {node_id}")
    failed = [(node_id, why) for outcome, node_id, why in results if outcome != "PASSED"]
    if failed:
        node_id, why = failed[0]
        print(f"\nfirst failure: {node_id}\n  it checks: {test_docstring(folder, node_id)}\n  error: {why}\n"
              f"  hint: {ex.hint}")
    print(f"\nexercise {number} ({ex.name}): {len(results) - len(failed)} of {len(results)} tests pass")
    return len(failed)


def main(argv=None):
    defaults = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=defaults)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the exercises in learning order", formatter_class=defaults)
    for command, does in (("start", "a copy of the repository with the exercise's functions blanked"),
                          ("check", "run the tests that grade the exercise in that copy")):
        p = sub.add_parser(command, help=does, formatter_class=defaults)
        p.add_argument("number", type=int, choices=range(1, len(EXERCISES) + 1), help="the exercise (see list)")
        p.add_argument("--dir", type=Path, default=None, help="the copy; None = exercises/N-name/")
    args = parser.parse_args(argv)
    if args.command == "list":
        for i, ex in enumerate(EXERCISES, 1):
            print(f"{i:>2}. {ex.name:<12} {ex.goal}   ({', '.join(ex.blank)})")
        return 0
    folder = (args.dir or default_dir(args.number)).resolve()
    if args.command == "start":
        start(args.number, folder)
        return 0
    return 1 if check(args.number, folder) else 0


if __name__ == "__main__":
    sys.exit(main())
