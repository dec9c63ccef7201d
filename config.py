"""The knobs of train.py: one flat Config, every field a --flag with its help (python train.py --help lists them).

Defaults are the Temporal-R1 release's where it has one (G = 8, beta 0.01, clip 0.2, lr 1e-6, temperature 1); the
video defaults are VideoConfig's, shared with select_data.py and eval.py. Each flag is checked when parsed
(a type from flags.py, or choices), and a refusal names the flag.
"""

import argparse
import dataclasses
from dataclasses import dataclass, field

import data
import schema
import video
from flags import (add_switch, at_least_two, below_one, count, non_negative, positive, positive_int, probability,
                   toy_clips)


def arg(default, help, kind=None, choices=None):
    """A config field with its one-line help (shown by --help) and how its flag is checked: kind, a flag type
    above (booleans and strings need none), or choices."""
    return field(default=default, metadata={"help": help, "kind": kind, "choices": choices})


# How long a collective waits for the slowest rank, the default of every entry point's --dist-timeout-minutes. NCCL's
# own 10 minutes can be shorter than a 7B checkpoint: every rank writes its share of AdamW's state, then rank 0 the
# 33 GB of float32 weights while the others wait at a barrier, about 2 minutes at 300 MB/s and 10 at 60 MB/s on busy
# shared storage; an hour leaves room for slower disks. A rank that really hangs is then found an hour late.
TIMEOUT_MINUTES = 60.0
AGGREGATES = ("token", "sequence", "dr_grpo")  # grpo.policy_loss's ways to average the loss
DTYPES = ("bfloat16", "float32")
# video defaults and help shared with eval.py and select_data.py (inside Config, `data` is a field)
VIDEO, VIDEO_HELP, MAX_TEXT_CHARS = video.VideoConfig(), video.VIDEO_FLAGS, schema.MAX_TEXT_CHARS
PROMPT_STYLES = data.PROMPT_STYLES


@dataclass
class Config:
    # what to train, on what, where to write
    model: str = arg("", "Hugging Face checkpoint folder (Qwen2.5-VL or Qwen3-VL); empty = the toy default")
    data: str = arg("", "training JSONL in our schema (README); empty = the toy task")
    test_data: str = arg("", "held-out JSONL answered greedily every --eval-every steps; test/... in metrics.jsonl")
    eval_every: int = arg(0, "steps between --test-data evaluations (and at the last step); 0 = the last step only",
                          count)
    out: str = arg("runs/toy", "run folder: metrics.jsonl, samples.jsonl, curves.png, checkpoint-STEP/")
    mode: str = arg("grpo", "grpo | sft (supervised targets built from the ground truth)", choices=("grpo", "sft"))
    skip_bad: bool = arg(False, "drop malformed JSONL rows (listed in OUT/bad_rows.txt) instead of stopping")
    max_text_chars: int = arg(MAX_TEXT_CHARS, "a row with a longer text field is refused at load", positive_int)
    # the method's knobs (defaults of the Temporal-R1 release)
    steps: int = arg(200, "optimizer steps", positive_int)
    batch_size: int = arg(2, "prompts per rank per step", positive_int)
    pack_prompts: int = arg(1, "prompt groups per packed forward (micro-batch); gradients accumulate over them",
                            positive_int)
    group_size: int = arg(8, "G, completions per prompt", at_least_two)
    beta: float = arg(0.01, "k3 KL coefficient; 0 drops the reference model", non_negative)
    clip_low: float = arg(0.2, "ratio clipped below at 1 - clip_low", below_one)
    clip_high: float = arg(0.2, "ratio clipped above at 1 + clip_high", non_negative)
    aggregate: str = arg("token", "token (mean over all completion tokens; TRL's dapo) | sequence (original GRPO)"
                         " | dr_grpo (sum over tokens / (completions x max_new_tokens))", choices=AGGREGATES)
    scale_advantages: bool = arg(True, "divide by the group std; False (with --aggregate dr_grpo) = Dr. GRPO")
    prompt_style: str = arg("vrl", "vrl (our instructions; answers like <answer>2.5 to 7.0</answer>) | temporal_r1"
                            " (the Temporal-R1 release's system prompt, grounding question and strict JSON answer"
                            " reward)",
                            choices=PROMPT_STYLES)
    reward: str = arg("dual", "dual (gqa: (1[option right] + IoU) / 2) | answer (gqa: 1[option right] alone)",
                      choices=("dual", "answer"))
    kl_clamp: float = arg(10.0, "cap on each token's k3 KL term, as verl's low_var_kl; 0 = no cap", non_negative)
    min_group_std: float = arg(0.0, "online selection: a group whose rewards' std (N - 1) is below this leaves the"
                                    " update (counted as dropped_groups); 0 = every group counts. --aggregate token",
                               non_negative)
    updates_per_batch: int = arg(1, "policy updates per rollout batch (old log-probs kept when > 1)", positive_int)
    temperature: float = arg(1.0, "rollout sampling temperature; log-probs are taken at it too, so > 0", positive)
    top_p: float = arg(1.0, "rollout nucleus sampling", probability)
    max_new_tokens: int = arg(256, "completion length limit (cut completions are flagged 'truncated')", positive_int)
    # video (data.VideoConfig: qwen-vl-utils' frame rule at the Temporal-R1 release's budget)
    fps: float = arg(VIDEO.fps, VIDEO_HELP["fps"], positive)
    min_frames: int = arg(VIDEO.min_frames, VIDEO_HELP["min_frames"], positive_int)
    max_frames: int = arg(VIDEO.max_frames, VIDEO_HELP["max_frames"], positive_int)
    video_tokens: int = arg(VIDEO.video_tokens, VIDEO_HELP["video_tokens"], positive_int)
    frame_min_tokens: int = arg(VIDEO.frame_min_tokens, VIDEO_HELP["frame_min_tokens"], positive_int)
    max_prompt_tokens: int = arg(VIDEO.max_prompt_tokens, "a longer prompt (video tokens included) is refused, never"
                                 " truncated", positive_int)
    # optimisation
    lr: float = arg(1e-6, "peak learning rate (AdamW)", non_negative)
    warmup_steps: int = arg(0, "linear warm-up steps", count)
    schedule: str = arg("constant", "constant | cosine (after warm-up)", choices=("constant", "cosine"))
    weight_decay: float = arg(0.0, "AdamW weight decay", non_negative)
    grad_clip: float = arg(1.0, "global gradient-norm clip", positive)
    dtype: str = arg("bfloat16", "compute dtype (weights and optimizer stay float32)", choices=DTYPES)
    freeze_vision: bool = arg(False, "keep the vision tower's weights as loaded (only the language model trains)")
    grad_checkpointing: bool = arg(False, "recompute each decoder layer and vision block in backward (long outputs)")
    seed: int = arg(0, "seeds the data order and every rollout", count)
    # bookkeeping
    save_every: int = arg(50, "checkpoint every N steps (and at the end)", positive_int)
    keep_last: int = arg(2, "checkpoints kept", positive_int)
    save_dtype: str = arg("bfloat16", "dtype of the weights a checkpoint exports (model.safetensors); the float32"
                          " weights a resume needs are kept beside them either way", choices=DTYPES)
    resume: str = arg("", "'' | auto (last complete checkpoint in OUT) | a checkpoint folder")
    overwrite: bool = arg(False, "delete an earlier run's checkpoints and logs in OUT instead of refusing to start")
    log_samples: int = arg(2, "completions per step written to samples.jsonl", count)
    stop_after: int = arg(0, "exit after this many steps of this process (tests simulate a kill); 0 = never", count)
    dist_timeout_minutes: float = arg(TIMEOUT_MINUTES, "minutes a rank waits at a collective for the others (ranks"
                                      " finish unevenly)", positive)
    # the toy default (no --model)
    toy_n: int = arg(600, "toy clips generated (the last quarter is the test split)", toy_clips)
    toy_pretrain_steps: int = arg(300, "toy pre-training steps on the train clips' captions (before any question)",
                                  count)
    toy_labelled: int = arg(24, "toy train rows the SFT warm start sees (GRPO sees them all)", positive_int)
    toy_sft_steps: int = arg(150, "toy SFT warm-start steps", count)
    toy_grpo_steps: int = arg(100, "toy GRPO steps", positive_int)
    toy_seeds: int = arg(2, "toy runs, seeds --seed, --seed + 1, ... (one per core of a 2-core machine): the table"
                         " shows the mean and the spread",
                         positive_int)


# what a resume may change: per-invocation flags (not compared), bookkeeping (reported); anything else refuses it
PER_INVOCATION = ("resume", "overwrite", "stop_after")
RESUMABLE_CHANGES = ("steps", "save_every", "keep_last", "save_dtype", "log_samples", "out", "test_data",
                     "grad_checkpointing", "eval_every", "dist_timeout_minutes", "toy_n", "toy_pretrain_steps",
                     "toy_labelled", "toy_sft_steps", "toy_grpo_steps", "toy_seeds")


def add_flags(parser, *names):
    """These Config fields as flags, spelt with dashes or underscores alike (--max-new-tokens, --max_new_tokens);
    select_data.py and eval.py take INPUT_FLAGS and dist_timeout_minutes this way, as train.py has them."""
    for name in names:
        f = FIELDS[name]
        flags = dict.fromkeys([f"--{name.replace('_', '-')}", f"--{name}"])  # one flag when the name has no _
        if isinstance(f.default, bool):
            add_switch(parser, *flags, dest=name, default=f.default, help=f.metadata["help"])
        else:
            parser.add_argument(*flags, dest=name, type=f.metadata["kind"] or str, choices=f.metadata["choices"],
                                default=f.default, help=f.metadata["help"])


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
INPUT_FLAGS = (*video.VIDEO_FLAGS, "max_text_chars", "max_prompt_tokens")  # train.py's, select_data.py's, eval.py's
TOY_IGNORES = ("data", "test_data", "mode")  # the toy default makes its own data and runs both modes


def parse_config(argv=None):
    """Every Config field is a flag, checked as its field says; then the checks that involve two flags."""
    parser = argparse.ArgumentParser(description="train.py: GRPO (and SFT) for video LLMs",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_flags(parser, *FIELDS)
    cfg = Config(**vars(parser.parse_args(argv)))
    ignored = [f"--{name.replace('_', '-')}" for name in TOY_IGNORES if getattr(cfg, name) != FIELDS[name].default]
    if not cfg.model and ignored:
        parser.error(f"{' and '.join(ignored)} need{'s' * (len(ignored) == 1)} --model: without it train.py runs the"
                     " toy default, which builds its own model and data")
    if cfg.batch_size % cfg.pack_prompts:
        parser.error(f"--batch-size {cfg.batch_size} must be a multiple of --pack-prompts {cfg.pack_prompts}")
    if cfg.min_group_std and cfg.aggregate != "token":
        parser.error(f"--min-group-std {cfg.min_group_std} needs --aggregate token, got {cfg.aggregate}")
    return cfg


if __name__ == "__main__":
    raise SystemExit("config.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
