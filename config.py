"""The knobs of train.py: one flat Config, every field a --flag with its help (python train.py --help lists them).

Defaults are the Temporal-R1 release's where it has one (G = 8, beta 0.01, clip 0.2, lr 1e-6, temperature 1); the
video defaults are VideoConfig's, shared with select_data.py and eval.py.
"""

import argparse
import dataclasses
from dataclasses import dataclass, field

import data
import distributed
import grpo
import video


def arg(default, help):
    """A config field with its one-line help, shown by --help."""
    return field(default=default, metadata={"help": help})


# video defaults and help shared with eval.py and select_data.py (inside Config, `data` is a field)
VIDEO, VIDEO_HELP, MAX_TEXT_CHARS = data.VideoConfig(), video.VIDEO_FLAGS, data.MAX_TEXT_CHARS


@dataclass
class Config:
    # what to train, on what, where to write
    model: str = arg("", "Hugging Face checkpoint folder (Qwen2.5-VL or Qwen3-VL); empty = the toy default")
    data: str = arg("", "training JSONL in our schema (README); empty = the toy task")
    test_data: str = arg("", "held-out JSONL answered greedily every --eval-every steps; test/... in metrics.jsonl")
    eval_every: int = arg(0, "steps between --test-data evaluations (and at the last step); 0 = the last step only")
    out: str = arg("runs/toy", "run folder: metrics.jsonl, samples.jsonl, curves.png, checkpoint-STEP/")
    mode: str = arg("grpo", "grpo | sft (supervised targets built from the ground truth)")
    skip_bad: bool = arg(False, "drop malformed JSONL rows (listed in OUT/bad_rows.txt) instead of stopping")
    max_text_chars: int = arg(MAX_TEXT_CHARS, "a row with a longer text field is refused at load")
    # the method's knobs (defaults of the Temporal-R1 release)
    steps: int = arg(200, "optimizer steps")
    batch_size: int = arg(2, "prompts per rank per step")
    pack_prompts: int = arg(1, "prompt groups per packed forward (micro-batch); gradients accumulate over them")
    group_size: int = arg(8, "G, completions per prompt")
    beta: float = arg(0.01, "k3 KL coefficient; 0 drops the reference model")
    clip_low: float = arg(0.2, "ratio clipped below at 1 - clip_low")
    clip_high: float = arg(0.2, "ratio clipped above at 1 + clip_high")
    aggregate: str = arg("token", "token (mean over all completion tokens; TRL's dapo) | sequence (original GRPO)"
                         " | dr_grpo (sum over tokens / (completions x max_new_tokens))")
    scale_advantages: bool = arg(True, "divide by the group std; False (with --aggregate dr_grpo) = Dr. GRPO")
    prompt_style: str = arg("vrl", "vrl (our instructions; answers like <answer>2.5 to 7.0</answer>) | temporal_r1 (the "
                            "Temporal-R1 release's system prompt, grounding question and strict JSON answer reward)")
    reward: str = arg("dual", "dual (gqa: (1[option right] + IoU) / 2) | answer (gqa: 1[option right] alone)")
    kl_clamp: float = arg(10.0, "cap on each token's k3 KL term, as verl's low_var_kl; 0 = no cap")
    min_group_std: float = arg(0.0, "online selection: a group whose rewards' std (N - 1) is below this leaves the"
                                    " update (counted as dropped_groups); 0 = every group counts. --aggregate token")
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
    max_prompt_tokens: int = arg(VIDEO.max_prompt_tokens, "a longer prompt (video included) fails its sample")
    # optimisation
    lr: float = arg(1e-6, "peak learning rate (AdamW)")
    warmup_steps: int = arg(0, "linear warm-up steps")
    schedule: str = arg("constant", "constant | cosine (after warm-up)")
    weight_decay: float = arg(0.0, "AdamW weight decay")
    grad_clip: float = arg(1.0, "global gradient-norm clip")
    dtype: str = arg("bfloat16", "compute dtype, bfloat16 | float32 (weights and optimizer stay float32)")
    freeze_vision: bool = arg(False, "keep the vision tower's weights as loaded (only the language model trains)")
    grad_checkpointing: bool = arg(False, "recompute each decoder layer and vision block in backward (long outputs)")
    seed: int = arg(0, "seeds the data order and every rollout")
    # bookkeeping
    save_every: int = arg(50, "checkpoint every N steps (and at the end)")
    keep_last: int = arg(2, "checkpoints kept")
    save_dtype: str = arg("bfloat16", "dtype of the weights a checkpoint exports (model.safetensors), bfloat16 | "
                          "float32; the float32 weights a resume needs are kept beside them either way")
    resume: str = arg("", "'' | auto (last complete checkpoint in OUT) | a checkpoint folder")
    overwrite: bool = arg(False, "delete an earlier run's checkpoints and logs in OUT instead of refusing to start")
    log_samples: int = arg(2, "completions per step written to samples.jsonl")
    stop_after: int = arg(0, "exit after this many steps of this process (tests simulate a kill); 0 = never")
    dist_timeout_minutes: float = arg(distributed.TIMEOUT_MINUTES, "minutes a rank waits for the others (collectives)")
    # the toy default (no --model)
    toy_n: int = arg(600, "toy clips generated (the last quarter is the test split)")
    toy_pretrain_steps: int = arg(300, "toy pre-training steps on the train clips' captions (before any question)")
    toy_labelled: int = arg(24, "toy train rows the SFT warm start sees (GRPO sees them all)")
    toy_sft_steps: int = arg(150, "toy SFT warm-start steps")
    toy_grpo_steps: int = arg(100, "toy GRPO steps")
    toy_seeds: int = arg(3, "toy runs, seeds --seed, --seed + 1, ...: the table shows the mean and the spread")


# what a resume may change: per-invocation flags (not compared), bookkeeping (reported); anything else refuses it
PER_INVOCATION = ("resume", "overwrite", "stop_after")
RESUMABLE_CHANGES = ("steps", "save_every", "keep_last", "save_dtype", "log_samples", "out", "test_data",
                     "grad_checkpointing", "eval_every", "dist_timeout_minutes", "toy_n", "toy_pretrain_steps",
                     "toy_labelled", "toy_sft_steps", "toy_grpo_steps", "toy_seeds")


def parse_config(argv=None):
    """Every Config field is a flag, spelt with dashes or underscores alike (--max-new-tokens, --max_new_tokens)."""
    parser = argparse.ArgumentParser(description="train.py: GRPO (and SFT) for video LLMs")
    for f in dataclasses.fields(Config):
        flags = dict.fromkeys([f"--{f.name.replace('_', '-')}", f"--{f.name}"])  # one flag when the name has no _
        if f.type is bool or f.type == "bool":
            kind = lambda s: s.lower() in ("1", "true", "yes")
        else:
            kind = type(f.default)
        parser.add_argument(*flags, dest=f.name, type=kind, default=f.default, help=f.metadata["help"])
    cfg = Config(**vars(parser.parse_args(argv)))
    assert cfg.mode in ("grpo", "sft"), cfg.mode
    assert cfg.mode == "sft" or cfg.group_size >= 2, "GRPO needs G >= 2 completions per prompt"
    assert cfg.batch_size % cfg.pack_prompts == 0, "batch_size must be a multiple of pack_prompts"
    assert cfg.reward in ("dual", "answer"), cfg.reward
    assert cfg.min_group_std == 0 or cfg.aggregate == "token", "--min-group-std needs --aggregate token"
    assert cfg.prompt_style in data.PROMPT_STYLES, f"--prompt-style {cfg.prompt_style!r}: one of {data.PROMPT_STYLES}"
    assert cfg.aggregate in grpo.AGGREGATES and cfg.schedule in ("constant", "cosine")
    if cfg.save_dtype not in ("bfloat16", "float32"):
        parser.error(f"--save-dtype {cfg.save_dtype!r}: expected bfloat16 or float32")
    return cfg
