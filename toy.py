"""The synthetic toy world: short clips of a coloured shape sliding across a grey frame, with questions whose
answers come from the generator's own parameters, and a small real tokenizer for its texts.

    toy.make_toy("toy", n=64, seed=0)     # 48 train / 16 test clips (32x32 mp4) + toy/tokenizer (train.py does it)

It exists so that the whole method (SFT warm start, GRPO, selection, eval) runs end to end on a CPU in minutes,
with the three tasks of the paper keeping their nature: mcq asks a colour, tvg a time span, gqa both. Each train
clip also gets a caption ("A red circle slides left from 2.0 to 4.0 seconds.", captions.jsonl): the toy's
stand-in for the timestamped video-text corpus a real model is pretrained on, so that its model can see colours and
read times before it is asked anything.

Made to be learnable by a model of a million parameters in minutes: one shape per clip, frames of 32x32 (one
video token per 1 s block at the toy's video budget), and a mid-grey background, the mean pixel of the Qwen
image normalisation, so a background pixel enters the vision tower as zero and a frame's features are its shape.
"""

import json
import os
import random

import av
import numpy as np
import torch

import metrics
import model as vlm
from data import SYSTEM, TASKS, VideoConfig, target_text, user_text
from schema import CAPTION, SPECIAL_TOKENS, letters, load_jsonl
from rewards import temporal_iop, temporal_iou

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 230), "yellow": (230, 210, 40)}
KINDS = ("circle", "square")
TOY_FPS, TOY_SIZE, TOY_BACKGROUND = 4, 32, (123, 117, 104)  # background = Qwen's normalisation mean x 255


def toy_scene(rng: random.Random, durations=(4, 8)) -> dict:
    """A clip of a whole number of seconds in `durations` with one shape, visible on [start, end) (toy_span) while
    sliding horizontally, left or right."""
    duration = rng.randint(*durations)
    start, end = toy_span(rng, duration)
    shape = dict(colour=rng.choice(list(COLOURS)), kind=rng.choice(KINDS), y=rng.choice([9, 16, 23]),
                 direction=rng.choice(["left", "right"]), start=start, end=end)
    return dict(duration=duration, shapes=[shape])


def toy_span(rng: random.Random, duration: int) -> list[float]:
    """A random [start, end) within a clip of `duration` seconds, in whole seconds, 1 s to half the clip long: the
    moment is short against its clip, as in the grounding benchmarks (a Charades-STA moment is about a quarter of
    its video), so answering the whole clip scores little, and each 1 s video token shows the shape or does not."""
    length = rng.randint(1, max(1, duration // 2))
    start = rng.randint(0, duration - length)
    return [float(start), float(start + length)]


def toy_row(scene: dict, task: str, rng: random.Random, rid: str, video: str) -> dict:
    """Question and ground truth of a scene, from the generator's own parameters: mcq asks the shape's colour, tvg
    when the shape of a colour is visible, gqa both (the colour, and the moment that shows it)."""
    row = dict(id=rid, video=video, task=task, duration=float(scene["duration"]))
    shape, options = rng.choice(scene["shapes"]), list(COLOURS)
    if task == "tvg":
        row["question"] = f"When is the {shape['colour']} {shape['kind']} visible?"
    else:
        row["question"] = f"What colour is the {shape['kind']}?"
    if task in ("mcq", "gqa"):
        row["options"], row["answer"] = options, letters(4)[options.index(shape["colour"])]
    if task in ("tvg", "gqa"):
        row["segment"] = [shape["start"], shape["end"]]
    return row


def toy_caption(scene: dict, rid: str, video: str) -> dict:
    """A caption row of a scene (schema.CAPTION): what a timestamped video-text corpus says of a clip, "A red
    circle slides left from 2.0 to 4.0 seconds." - its colour, shape, direction and when it is there. Pre-training
    on these is where the toy model learns to read the time of a frame from its timestamp; it never sees a question
    there."""
    shape = scene["shapes"][0]
    caption = (f"A {shape['colour']} {shape['kind']} slides {shape['direction']} from {shape['start']:.1f} to"
               f" {shape['end']:.1f} seconds.")
    return dict(id=rid, video=video, task=CAPTION, duration=float(scene["duration"]), question="Describe the video.",
                caption=caption)


def toy_frames(scene: dict) -> np.ndarray:
    """Render a scene at TOY_FPS -> uint8 [T, 32, 32, 3]. A shape crosses 16 px during its visible interval."""
    T = TOY_FPS * scene["duration"]
    frames = np.empty((T, TOY_SIZE, TOY_SIZE, 3), np.uint8)
    frames[:] = TOY_BACKGROUND
    yy, xx = np.mgrid[:TOY_SIZE, :TOY_SIZE]
    for s in scene["shapes"]:
        for k in range(T):
            if s["start"] <= k / TOY_FPS < s["end"]:
                p = (k / TOY_FPS - s["start"]) / (s["end"] - s["start"])
                x = 8 + 16 * p if s["direction"] == "right" else 24 - 16 * p
                if s["kind"] == "circle":
                    mask = (xx - x) ** 2 + (yy - s["y"]) ** 2 <= 36
                else:
                    mask = (np.abs(xx - x) <= 5) & (np.abs(yy - s["y"]) <= 5)
                frames[k][mask] = COLOURS[s["colour"]]
    return frames


def write_mp4(path: str, frames: np.ndarray, fps: int) -> None:
    """H.264 at crf 1 (near lossless), yuv420p, one thread (deterministic bytes)."""
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "1", "threads": "1"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def make_toy(out: str, n: int = 64, seed: int = 0, n_test: int | None = None, durations=(4, 8)) -> tuple[str, str]:
    """Write the toy dataset: out/videos/toy_XXXXX.mp4, out/train.jsonl (the first n - n_test clips),
    out/test.jsonl (the last n_test, n//4 by default), out/captions.jsonl (a caption row of each train clip),
    out/tokenizer. Clip i has task TASKS[i % 3] and depends only on (seed, i, durations). Other durations make a
    variant of the toy world (e.g. longer clips, out of domain)."""
    os.makedirs(os.path.join(out, "videos"), exist_ok=True)
    rows, captions, tag = [], [], "" if tuple(durations) == (4, 8) else f"-{durations[0]}-{durations[1]}"
    for i in range(n):
        rng, task = random.Random(f"toy-{seed}-{i}{tag}"), TASKS[i % 3]
        scene, video = toy_scene(rng, durations), f"videos/toy_{i:05d}.mp4"
        write_mp4(os.path.join(out, video), toy_frames(scene), TOY_FPS)
        rows.append(toy_row(scene, task, rng, f"toy-{i:05d}", video))
        captions.append(toy_caption(scene, f"caption-{i:05d}", video))
    n_train = n - (n // 4 if n_test is None else n_test)
    parts = (("train.jsonl", rows[:n_train]), ("test.jsonl", rows[n_train:]), ("captions.jsonl", captions[:n_train]))
    for name, part in parts:
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in part)
    toy_tokenizer().save_pretrained(os.path.join(out, "tokenizer"))
    return os.path.join(out, "train.jsonl"), os.path.join(out, "test.jsonl")


TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]
# Qwen2's pre-tokenizer regex: letters in words, every digit alone, punctuation runs, whitespace runs.
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def toy_corpus() -> list[str]:
    """Every kind of text the toy world produces: prompts and targets of 300 scenes, timestamps 0.0-20.0."""
    texts = [f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"]
    for i in range(300):
        rng, task = random.Random(f"corpus-{i}"), TASKS[i % 3]
        row = toy_row(toy_scene(rng), task, rng, "", "")
        texts += [user_text(row), target_text(row)]
    return texts + [f"<{t / 10:.1f} seconds>" for t in range(201)]


def toy_tokenizer():
    """A small real tokenizer for the toy world, as a transformers PreTrainedTokenizerFast.

    Vocab (439 ids): the 7 Qwen special tokens (ids 0-6: <|endoftext|> = pad, <|im_start|>, <|im_end|> = eos,
    <|vision_start|>, <|vision_end|>, <|video_pad|>, <|image_pad|>), the 256 byte-level symbols (so ANY text
    round-trips), byte-level BPE merges learned deterministically from toy_corpus() (vocab_size 512 caps them; the
    corpus runs out first), and the 4 tags <think> </think> <answer> </answer> as single (non-special) tokens.
    Pre-tokenization is Qwen2's, so digits are single tokens: "12.5 to 17.0" -> 1 2 . 5 ' to' ' ' 1 7 . 0.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(QWEN_SPLIT), "isolated"), pre_tokenizers.ByteLevel(False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(toy_corpus(), trainer)
    tok.add_tokens(TAG_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", extra_special_tokens=SPECIAL_TOKENS
    )


# ------------------------------------------------------------------------------------------ the toy default's table

# metric (as eval.py names it) -> its row in the table of `python train.py`: each task's main metrics
RESULT_METRICS = {"reward": "test reward", "mcq/accuracy": "mcq accuracy", "tvg/mIoU": "tvg mIoU",
                  "tvg/R@0.5": "tvg R@0.5", "gqa/accuracy": "gqa accuracy", "gqa/mIoU": "gqa mIoU",
                  "gqa/Acc@GQA": "gqa Acc@GQA"}


def chance_levels(rows: list[dict], draws: int = 100) -> dict:
    """What answers blind to the video score on these rows: a random option (accuracy), for mIoU a random span
    drawn as the generator draws the true ones (the mean of `draws` per row) and the whole clip, and for Acc@GQA a
    random option with the whole clip as its evidence (right and IoP >= 0.5)."""
    rng, levels = random.Random(0), {}
    for task in ("mcq", "gqa"):
        levels[f"{task}/accuracy"] = f"chance {np.mean([1 / len(r['options']) for r in rows if r['task'] == task]):.2f}"
    for task in ("tvg", "gqa"):
        asked = [r for r in rows if r["task"] == task]
        random_span = np.mean([temporal_iou(toy_span(rng, int(r["duration"])), r["segment"])
                               for r in asked for _ in range(draws)])
        whole = np.mean([temporal_iou([0, r["duration"]], r["segment"]) for r in asked])
        levels[f"{task}/mIoU"] = f"random span {random_span:.2f}, whole clip {whole:.2f}"
    blind = [(temporal_iop([0, r["duration"]], r["segment"]) >= 0.5) / len(r["options"]) for r in rows
             if r["task"] == "gqa"]
    levels["gqa/Acc@GQA"] = f"random option and whole clip {np.mean(blind):.2f}"
    return levels


def results_table(results: list, chance: dict) -> str:
    """[(before, after) test metrics per seed] -> the table: SFT start, after GRPO, gain; the mean over seeds, each
    seed's gain and their spread; chance (chance_levels) under its metric."""
    lines = [f" {'toy test split':<16} {'SFT start':>10} {'after GRPO':>11} {'gain':>7}   gain per seed"]
    for key, name in RESULT_METRICS.items():
        before, after = (np.array([r[i][key] for r in results]) for i in (0, 1))
        gains = after - before
        lines.append(f" {name:<16} {before.mean():>10.3f} {after.mean():>11.3f} {gains.mean():>+7.3f}   "
                     + " ".join(f"{g:+.3f}" for g in gains) + f"  (spread {gains.max() - gains.min():.3f})")
        lines += [f"   ({chance[key]})"] if key in chance else []
    return "\n".join(lines)


# -------------------------------------------------------------------------------- the toy default's recipe (budget)

# `python train.py` with no --model, and every arm of reproduce.py: its own budget, so that the toy run keeps its time
# whatever the release's defaults. Video: 2 fps, at most 16 frames, each 32x32 frame 28x28 (one video token per 1 s
# block). Model: a Qwen3-VL of hidden 128, 4 layers (0.9 M parameters), its vision tower random and frozen. Why
# each number: docs/toy.md.
TOY_MODEL = dict(hidden=128, layers=4, vision_init=0.1)
TOY_FAMILY = "qwen3_vl"
TOY_VIDEO = dict(fps=2.0, min_frames=4, max_frames=16, video_tokens=16, frame_min_tokens=1)
TOY_RUN = dict(freeze_vision=True, dtype="float32", save_dtype="float32", resume="auto", **TOY_VIDEO)  # every stage
TOY_SFT = dict(mode="sft", batch_size=8, pack_prompts=8, lr=2e-3, warmup_steps=10, schedule="cosine",
               save_every=1000, **TOY_RUN)
TOY_GRPO = dict(mode="grpo", batch_size=8, pack_prompts=8, group_size=8, lr=2e-4, beta=0.0, temperature=0.7,
                max_new_tokens=48, save_every=25, eval_every=25, **TOY_RUN)
TOY_EVAL = dict(batch_size=16, max_new_tokens=TOY_GRPO["max_new_tokens"])  # greedy answers on a split


def toy_data(folder, n, seed, n_labelled):
    """The toy world in `folder` (made once): (train, labelled part, test) JSONL paths; the labelled part is the
    first n_labelled train rows, the test split the last quarter of the n clips."""
    train_file, test_file = os.path.join(folder, "train.jsonl"), os.path.join(folder, "test.jsonl")
    labelled = os.path.join(folder, "labelled.jsonl")
    if not os.path.exists(labelled):
        make_toy(folder, n=n, seed=seed, n_test=n // 4)
        with open(train_file, encoding="utf-8") as f, open(labelled + ".tmp", "w", encoding="utf-8") as out:
            out.writelines(f.readlines()[:n_labelled])
        os.replace(labelled + ".tmp", labelled)
    return train_file, labelled, test_file


def save_toy_model(folder, seed):
    """The toy model (a random Qwen3-VL of TOY_MODEL's size) and the toy tokenizer, saved in HF format. Qwen3-VL
    because it writes each frame's time as text before its tokens (`<2.0 seconds>`): a model of four layers learns
    to copy a timestamp in minutes, where reading Qwen2.5-VL's temporal rotary positions took it longer than the
    toy's budget (docs/toy.md)."""
    tokenizer = toy_tokenizer()
    torch.manual_seed(seed)
    vlm.load_model(vlm.tiny_config(TOY_FAMILY, tokenizer, **TOY_MODEL)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def toy_evaluate(checkpoint, jsonl):
    """Greedy answers of a checkpoint on a toy split at the toy's video budget -> flat metrics (metrics.flatten)."""
    policy, tokenizer = vlm.load_policy(checkpoint, torch.device("cpu"), torch.float32)
    scores = metrics.evaluate(policy, tokenizer, load_jsonl(jsonl), policy.config.model_type,
                              VideoConfig(**TOY_VIDEO), progress=False, **TOY_EVAL)
    return metrics.flatten(scores)


def as_flags(settings: dict) -> list[str]:
    """{"batch_size": 8, "freeze_vision": True} -> ["--batch-size=8", "--freeze-vision=true"]: a stage's settings
    as the command line of train.py (how reproduce.py runs its arms)."""
    spell = lambda v: str(v).lower() if isinstance(v, bool) else str(v)
    return [f"--{k.replace('_', '-')}={spell(v)}" for k, v in settings.items()]


if __name__ == "__main__":
    raise SystemExit("toy.py is a library module, not a command: `python train.py` writes the toy world to "
                     "runs/toy/toy-data; for the dataset alone, python -c \"import toy; toy.make_toy('toy', n=64, "
                     "seed=0)\" (see train.py / eval.py / select_data.py / convert.py)")
