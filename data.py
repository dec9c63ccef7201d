"""Everything between a file on disk and the tensors a Qwen-VL model eats.

    JSONL row --load_jsonl--> validated dict --read_video--> frames uint8 [T, H, W, 3] + timestamps
      --patchify--> pixel_values [N_patch, C*t*P*P] + grid_thw (T/t, H/P, W/P)
      --build_prompt--> prompt ids with one <|video_pad|> per merged patch       ==> Sample

Two model families share these functions; only the constants in FAMILIES and the way the prompt marks time differ
(Qwen2.5-VL: one video block, time through mRoPE and `second_per_grid`; Qwen3-VL: a textual `<t seconds>` before
each temporal block). The synthetic toy world (`python data.py toy`) and the converters from public formats
(`python data.py convert`) live here too.
"""

import argparse
import csv
import json
import math
import os
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

try:  # decord is faster, but has no wheel on some platforms (aarch64, macOS): PyAV is the fallback
    import decord
except ImportError:
    decord = None

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
FAMILIES = {  # vision preprocessing constants of the released checkpoints
    "qwen2_5_vl": dict(patch_size=14, temporal_patch_size=2, merge_size=2, mean=CLIP_MEAN, std=CLIP_STD),
    "qwen3_vl": dict(patch_size=16, temporal_patch_size=2, merge_size=2, mean=(0.5,) * 3, std=(0.5,) * 3),
}
TASKS = ("mcq", "tvg", "gqa")
SYSTEM = "You are a helpful assistant."
INSTRUCTIONS = {
    "mcq": "Think briefly in <think> </think>, then give the option letter in <answer> </answer>, "
    "as <answer>A</answer>.",
    "tvg": "Think briefly in <think> </think>, then give the start and end time in seconds in <answer> </answer>, "
    "as <answer>2.5 to 7.0</answer>.",
    "gqa": "Think briefly in <think> </think>, then give the option letter and the start and end time in seconds "
    "of the moment that shows it in <answer> </answer>, as <answer>A, 2.5 to 7.0</answer>.",
}


class DataError(ValueError):
    """A bad row or a bad video. The message names the file (and line), the sample id and the field."""


# ----------------------------------------------------------------------------------------------------- loading


def load_jsonl(path: str, skip_bad: bool = False, report: str | None = None) -> list[dict]:
    """Read and validate every row of a JSONL file before anything trains on it.

    Each row gets `video` made absolute (relative paths are relative to the JSONL's folder) and `duration` read
    from the video when absent. All problems of the file are collected, one per `file:line id=… field=…` entry,
    and raised together as one DataError. With skip_bad the bad rows are dropped instead, counted on stderr and
    listed in `report` (default: `<path>.bad.txt`) - never dropped silently.
    """
    folder = os.path.dirname(os.path.abspath(path))
    rows, problems, n_bad, seen = [], [], 0, {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                row, errors = None, [("<line>", f"not valid JSON ({e.msg})")]
            else:
                errors = check_row(row, folder) if isinstance(row, dict) else [("<line>", "not a JSON object")]
            rid = row.get("id") if isinstance(row, dict) else None
            if isinstance(rid, str) and rid in seen:
                errors.append(("id", f"duplicate id, first seen on line {seen[rid]}"))
            elif isinstance(rid, str):
                seen[rid] = lineno
            problems += [f"{path}:{lineno} id={rid!r} field={field}: {msg}" for field, msg in errors]
            n_bad += bool(errors)
            if not errors:
                rows.append(row)
    if problems and not skip_bad:
        raise DataError(f"{len(problems)} problem(s) in {n_bad} row(s) of {path}:\n  " + "\n  ".join(problems))
    if problems:
        report = report or path + ".bad.txt"
        with open(report, "w", encoding="utf-8") as f:
            f.write("\n".join(problems) + "\n")
        print(f"skipped {n_bad} bad row(s) of {path}, kept {len(rows)}; see {report}", file=sys.stderr)
    return rows


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_row(row: dict, folder: str) -> list[tuple[str, str]]:
    """Problems of one row as (field, message); fills row['video'] (absolute) and row['duration'] in place."""
    errors = []
    for field in ("id", "video", "question"):
        if not isinstance(row.get(field), str) or not row[field].strip():
            errors.append((field, f"missing or not a non-empty string: {row.get(field)!r}"))
    task = row.get("task")
    if task not in TASKS:
        errors.append(("task", f"unknown task {task!r}, expected one of {TASKS}"))
    if task in ("mcq", "gqa"):
        options = row.get("options")
        strings = isinstance(options, list) and all(isinstance(o, str) and o.strip() for o in options)
        if not strings or not 2 <= len(options) <= 26:
            errors.append(("options", f"expected a list of 2-26 non-empty strings, got {options!r}"))
        elif not isinstance(row.get("answer"), str) or row["answer"] not in _letters(len(options)):
            errors.append(("answer", f"expected one of {_letters(len(options))}, got {row.get('answer')!r}"))
    if isinstance(row.get("video"), str) and row["video"].strip():
        row["video"] = os.path.abspath(os.path.join(folder, row["video"]))  # join keeps an absolute path as is
        if not os.path.isfile(row["video"]):
            errors.append(("video", f"file not found: {row['video']}"))
        elif "duration" not in row:
            try:
                n_frames, fps = probe_video(row["video"], row.get("id"))
                row["duration"] = round(n_frames / fps, 3)
            except DataError as e:
                errors.append(("video", str(e)))
    if "duration" in row and not (_number(row["duration"]) and row["duration"] > 0):
        errors.append(("duration", f"expected a positive number of seconds, got {row['duration']!r}"))
    if task in ("tvg", "gqa"):
        errors += _check_segment(row.get("segment"), row.get("duration"))
    return errors


def _letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def _check_segment(seg, duration) -> list[tuple[str, str]]:
    if not (isinstance(seg, list) and len(seg) == 2 and all(_number(x) for x in seg)):
        return [("segment", f"expected [start, end] in seconds, got {seg!r}")]
    if seg[0] >= seg[1]:
        return [("segment", f"reversed or empty segment {seg}")]
    if seg[0] < 0 or (_number(duration) and seg[1] > duration + 1e-6):
        return [("segment", f"segment {seg} outside [0, duration={duration}]")]
    return []


# ---------------------------------------------------------------------------------------- video -> frames


@dataclass
class VideoConfig:
    """How a video becomes frames and patches: the rule of Qwen's helper package qwen-vl-utils (0.0.14), which the
    released Qwen2.5-VL / Qwen3-VL checkpoints were tuned with, at the budget of the Temporal-R1 release.

    Pixel budgets are counted in squares of f x f pixels, f = patch * merge (28 for Qwen2.5-VL, 32 for Qwen3-VL):
    one square of a frame is one merged patch, i.e. one LLM token per temporal block, so `video_tokens` is about the
    video's token count, the same way for both families. The helper's own defaults, instead of the release's:
    video_tokens=115200 (its total_pixels, 0.9 * 128,000 squares) and frame_min_tokens=128.
    """

    fps: float = 2.0  # frames sampled per second of video
    min_frames: int = 4  # at least this many (a short clip is sampled faster), rounded up to even
    max_frames: int = 768  # at most this many (a long clip is sampled slower), rounded down to even
    video_tokens: int = 2048  # the video's pixel budget in f x f squares (release: total_pixels 2048 * 28^2)
    frame_min_tokens: int = 4  # each frame at least this many squares (release: min_pixels 3,136 = 4 * 28^2)
    max_prompt_tokens: int | None = None  # a longer prompt is an error, never truncated (it holds video tokens)
    decoder: str = "auto"  # "auto" (decord if importable, else PyAV), "decord" or "pyav"


FRAME_FACTOR = 2  # frames are kept in pairs: one temporal patch of both families
FRAME_MAX_TOKENS = 768  # no frame gets more f x f squares than this, whatever the budget (the helper's ceiling)
VIDEO_FLAGS = {  # the VideoConfig fields that train.py, select_data.py and eval.py all take as flags
    "fps": "frames sampled per second of video",
    "min_frames": "frames per video at least (rounded up to even)",
    "max_frames": "frames per video at most (rounded down to even)",
    "video_tokens": "pixel budget of a whole video in (patch*merge)^2 squares, about its video tokens",
    "frame_min_tokens": "pixels per frame at least, in (patch*merge)^2 squares",
}


def add_video_flags(parser):
    """--fps, --min-frames, --max-frames, --video-tokens, --frame-min-tokens, with VideoConfig's defaults."""
    for name, help in VIDEO_FLAGS.items():
        default = getattr(VideoConfig, name)
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default, help=help)


def video_config(args) -> VideoConfig:
    """The VideoConfig of parsed flags (or of train.py's Config, which has the same names)."""
    return VideoConfig(**{name: getattr(args, name) for name in VIDEO_FLAGS})


def _video_error(path, sample_id, msg) -> DataError:
    return DataError(f"{path} (sample {sample_id}): {msg}")


def probe_video(path: str, sample_id=None) -> tuple[int, float]:
    """(number of frames, frames per second) of a video, from its container, opened with PyAV.

    An empty, garbage or truncated file (no index) fails here with a DataError instead of reaching decord, which
    can crash the whole process on garbage input. Corrupt frame data is found later, by the decoder.
    """
    if not os.path.isfile(path):
        raise _video_error(path, sample_id, "video file not found")
    if os.path.getsize(path) == 0:
        raise _video_error(path, sample_id, "video file is empty")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise _video_error(path, sample_id, "no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            n = stream.frames or round((container.duration or 0) / av.time_base * fps)
            if fps <= 0 or n <= 0:
                raise _video_error(path, sample_id, f"no frames (fps={fps}, frames={n})")
    except DataError:
        raise
    except Exception as e:  # av.error.InvalidDataError and friends
        raise _video_error(path, sample_id, f"cannot read video ({type(e).__name__}: {e})") from e
    return n, fps


def frame_count(n_frames: int, video_fps: float, cfg: VideoConfig) -> int:
    """How many frames to keep, by qwen-vl-utils' rule (its smart_nframes with an fps):

        T = n_frames / video_fps * cfg.fps,  clamped to [min_frames up to even, max_frames down to even],
            then to at most n_frames, then rounded down to even

    An even T makes every temporal patch (2 frames) whole. A 1-frame video, which the helper refuses, keeps its
    frame twice.
    """
    lo = math.ceil(cfg.min_frames / FRAME_FACTOR) * FRAME_FACTOR
    hi = cfg.max_frames // FRAME_FACTOR * FRAME_FACTOR
    T = min(max(n_frames / video_fps * cfg.fps, lo), hi, n_frames)
    return max(FRAME_FACTOR, math.floor(T / FRAME_FACTOR) * FRAME_FACTOR)


def frame_indices(n_frames: int, video_fps: float, cfg: VideoConfig) -> list[int]:
    """Which frames to keep: T = frame_count(...) spread evenly from the first frame to the last,

        index_k = round(k * (n_frames - 1) / (T - 1)),  k = 0..T-1

    computed as the helper does, torch.linspace in float32 then round: in a long video float32 moves an index by
    one now and then (frame 432 of 768 of a 600 s, 29.97 fps clip is 10,128; exact arithmetic gives 10,127).
    """
    T = frame_count(n_frames, video_fps, cfg)
    return torch.linspace(0, n_frames - 1, T, dtype=torch.float32).round().long().tolist()


def sampled_fps(n_sampled: int, n_frames: int, video_fps: float) -> float:
    """The rate of the kept frames over the whole video, T / n_frames * video_fps, in the helper's order of
    operations: second_per_grid = 2 / this feeds the floor in Qwen2.5-VL's temporal positions, so its last bit
    counts. It differs from cfg.fps when min_frames, max_frames or the even rounding change T."""
    return n_sampled / n_frames * video_fps


def read_video(path: str, cfg: VideoConfig = VideoConfig(), sample_id=None) -> tuple[np.ndarray, list[float]]:
    """Decode the sampled frames -> (uint8 [T, H, W, 3] RGB, timestamps [T] in seconds), T even.

    Any failure (missing, empty, corrupt, truncated file) is a DataError naming the file and the sample id.
    """
    frames, times, _ = _read_video(path, cfg, sample_id)
    return frames, times


def _read_video(path: str, cfg: VideoConfig, sample_id) -> tuple[np.ndarray, list[float], float]:
    """read_video plus the sampled fps (see sampled_fps)."""
    n_frames, fps = probe_video(path, sample_id)
    idx = frame_indices(n_frames, fps, cfg)
    use_decord = cfg.decoder == "decord" or (cfg.decoder == "auto" and decord is not None)
    try:
        frames = _decode_decord(path, idx) if use_decord else _decode_pyav(path, idx)
    except Exception as e:
        raise _video_error(path, sample_id, f"cannot decode video ({type(e).__name__}: {e})") from e
    return frames, [i / fps for i in idx], sampled_fps(len(idx), n_frames, fps)


def _decode_decord(path: str, idx: list[int]) -> np.ndarray:
    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    return reader.get_batch(idx).asnumpy()  # [T, H, W, 3] uint8


def _decode_pyav(path: str, idx: list[int]) -> np.ndarray:
    """Decode sequentially, keeping the frames in idx (an index may repeat)."""
    wanted, kept = set(idx), {}
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                kept[i] = frame.to_ndarray(format="rgb24")
            if i >= idx[-1]:
                break
    if len(kept) < len(wanted):
        raise EOFError(f"truncated: decoded {len(kept)} of the {len(wanted)} frames needed (last index {idx[-1]})")
    return np.stack([kept[i] for i in idx])  # [T, H, W, 3] uint8


# ---------------------------------------------------------------------------------------- frames -> patches


def smart_resize(height: int, width: int, factor: int, min_pixels: float, max_pixels: float) -> tuple[int, int]:
    """Qwen's resize rule: both sides multiples of `factor` (= patch * merge), h*w within [min, max] pixels,
    aspect ratio kept as well as rounding allows.

        h, w = round(H / f) * f, round(W / f) * f
        if h*w > max:  b = sqrt(H*W / max);  h, w = max(f, floor(H / b / f) * f), max(f, floor(W / b / f) * f)
        if h*w < min:  b = sqrt(min / (H*W)); h, w = ceil(H * b / f) * f, ceil(W * b / f) * f

    This is transformers' smart_resize; qwen-vl-utils' agrees except for a side under f/2 pixels, which it first
    rounds up to f instead of 0 (no real video is that thin).
    """
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be below 200, got {height}x{width}")
    h, w = round(height / factor) * factor, round(width / factor) * factor
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


def frame_pixels(n_sampled: int, family: str, cfg: VideoConfig) -> tuple[int, float]:
    """(min_pixels, max_pixels) of each frame of a video of n_sampled frames: qwen-vl-utils' per-video budget,

        min = frame_min_tokens * f^2
        max = max(min(768 * f^2, video_tokens * f^2 / n_sampled * 2), int(min * 1.05))      f = patch * merge

    The blocks (2 frames each) share video_tokens; a frame stays between the floor and the 768-square ceiling.
    """
    fam = FAMILIES[family]
    f2 = (fam["patch_size"] * fam["merge_size"]) ** 2
    lo = cfg.frame_min_tokens * f2
    hi = max(min(FRAME_MAX_TOKENS * f2, cfg.video_tokens * f2 / n_sampled * FRAME_FACTOR), int(lo * 1.05))
    return lo, hi


def resize(frames: np.ndarray, h: int, w: int) -> torch.Tensor:
    """uint8 [T, H, W, C] -> float32 [T, C, h, w] holding whole numbers 0..255.

    Bicubic with antialiasing, clamped to [0, 255] and rounded: what the helper's torchvision resize computes on
    uint8 frames (torch's interpolate, no torchvision needed). Frames already h x w are left as they are, as there.
    16 frames at a time, so a long video never has a float copy of all its decoded frames.
    """
    x = torch.from_numpy(frames).permute(0, 3, 1, 2)  # [T, C, H, W] uint8
    if x.shape[-2:] == (h, w):
        return x.float()
    chunks = [F.interpolate(c.float(), size=(h, w), mode="bicubic", align_corners=False, antialias=True)
              for c in x.split(16)]
    return torch.cat(chunks).clamp_(0, 255).round_()


def patchify(frames: np.ndarray, family: str, cfg: VideoConfig = VideoConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames [T, H, W, 3] -> (pixel_values float32 [N_patch, C*t*P*P], grid_thw LongTensor [3]).

    Resize (smart_resize within frame_pixels' budget for T frames, then `resize`), scale to [0, 1], normalize
    with the family's mean/std, then cut into t x P x P patches (t = temporal patch size 2, P = patch size). Rows
    are ordered (time block, merge-window row, merge-window col, row in window, col in window), so the m x m = 2 x 2
    patches the vision tower merges into one LLM token are consecutive rows; each row is flattened as (C, t, P, P).
    This is the layout of transformers' Qwen2VL image/video processors, which Qwen2.5-VL and Qwen3-VL both take.
    """
    fam = FAMILIES[family]
    P, t, m = fam["patch_size"], fam["temporal_patch_size"], fam["merge_size"]
    if len(frames) % t:  # pad the last temporal patch by repeating the last frame, as the processors do
        frames = np.concatenate([frames, frames[-1:].repeat(t - len(frames) % t, axis=0)])
    T, H, W, C = frames.shape
    h, w = smart_resize(H, W, P * m, *frame_pixels(T, family, cfg))
    mean, std = (torch.tensor(fam[k], dtype=torch.float32)[:, None, None] for k in ("mean", "std"))
    x = (resize(frames, h, w) / 255.0 - mean) / std  # [T, C, h, w]
    gt, gh, gw = T // t, h // P, w // P
    x = x.reshape(gt, t, C, gh // m, m, P, gw // m, m, P)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # [gt, gh/m, gw/m, m, m, C, t, P, P]
    return x.reshape(gt * gh * gw, C * t * P * P).contiguous(), torch.tensor([gt, gh, gw])


# ---------------------------------------------------------------------------------------------------- prompts


def user_text(row: dict) -> str:
    """The text after the video: duration (tvg/gqa), question, options as `A. …` lines, task instruction."""
    lines = [f"The video is {row['duration']:.1f} seconds long."] if row["task"] in ("tvg", "gqa") else []
    lines.append(row["question"])
    lines += [f"{letter}. {option}" for letter, option in zip(_letters(26), row.get("options") or [])]
    lines.append(INSTRUCTIONS[row["task"]])
    return "\n".join(lines)


def video_text(family: str, grid_thw, timestamps: list[float]) -> str:
    """The video placeholder, one <|video_pad|> per merged patch (h*w/m^2 per temporal block).

    qwen2_5_vl: <|vision_start|><|video_pad|>*(t*h*w/m^2)<|vision_end|>
    qwen3_vl:   per block b: <{timestamps[b]:.1f} seconds><|vision_start|><|video_pad|>*(h*w/m^2)<|vision_end|>
    """
    gt, gh, gw = (int(v) for v in torch.as_tensor(grid_thw).reshape(3))
    per_block = gh * gw // FAMILIES[family]["merge_size"] ** 2
    block = "<|vision_start|>" + "<|video_pad|>" * per_block + "<|vision_end|>"
    if family == "qwen2_5_vl":
        return "<|vision_start|>" + "<|video_pad|>" * (gt * per_block) + "<|vision_end|>"
    if len(timestamps) != gt:
        raise ValueError(f"qwen3_vl needs one timestamp per temporal block: {len(timestamps)} for {gt} blocks")
    return "".join(f"<{ts:.1f} seconds>" + block for ts in timestamps)


def build_prompt(row: dict, tokenizer, family: str, grid_thw, timestamps: list[float]) -> list[int]:
    """Qwen chat prompt ids: system turn, user turn (video placeholder + user_text), open assistant turn."""
    text = (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{video_text(family, grid_thw, timestamps)}"
        f"{user_text(row)}<|im_end|>\n<|im_start|>assistant\n"
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    gt, gh, gw = (int(v) for v in torch.as_tensor(grid_thw).reshape(3))
    expected = gt * gh * gw // FAMILIES[family]["merge_size"] ** 2
    if ids.count(tokenizer.convert_tokens_to_ids("<|video_pad|>")) != expected:  # e.g. a question with one in it
        raise DataError(f"sample {row.get('id')}: prompt does not hold exactly {expected} video tokens")
    return ids


def target_text(row: dict) -> str:
    """SFT target in the answer format of the row's task, with a one-sentence think. Times with one decimal."""
    span = f"{row['segment'][0]:.1f} to {row['segment'][1]:.1f}" if row["task"] in ("tvg", "gqa") else ""
    option = row["options"][ord(row["answer"]) - ord("A")] if row["task"] in ("mcq", "gqa") else ""
    if row["task"] == "mcq":
        return f"<think>The answer is {option}.</think><answer>{row['answer']}</answer>"
    if row["task"] == "tvg":
        return f"<think>The moment lasts from {span} seconds.</think><answer>{span}</answer>"
    return f"<think>From {span} seconds the answer is {option}.</think><answer>{row['answer']}, {span}</answer>"


@dataclass
class Sample:
    """One prompt, ready for the model."""

    id: str
    row: dict  # the validated schema row (rewards.score reads task/options/answer/segment/duration)
    prompt_ids: torch.Tensor  # LongTensor [P]
    pixel_values: torch.Tensor  # FloatTensor [N_patch, C*t*P*P]
    grid_thw: torch.Tensor  # LongTensor [1, 3]
    second_per_grid: float  # seconds between temporal blocks = temporal_patch_size / sampled fps
    timestamps: list[float]  # one per temporal block (mean of its frames' times), seconds
    family: str


def prepare_sample(row: dict, tokenizer, family: str, cfg: VideoConfig = VideoConfig()) -> Sample:
    """Row -> Sample. Bad video or too long a prompt -> DataError naming the file and the sample id.

    second_per_grid = temporal_patch_size / sampled fps (trap 2), where sampled fps = T / video duration is the
    rate of the frames actually kept: it differs from cfg.fps when min_frames or max_frames clamp T.
    """
    frames, times, sampled_fps = _read_video(row["video"], cfg, row["id"])
    try:
        pixel_values, grid = patchify(frames, family, cfg)
    except ValueError as err:  # e.g. an aspect ratio smart_resize refuses
        raise _video_error(row["video"], row["id"], str(err)) from err
    t = FAMILIES[family]["temporal_patch_size"]
    blocks = [sum(times[i : i + t]) / len(times[i : i + t]) for i in range(0, len(times), t)]
    ids = build_prompt(row, tokenizer, family, grid, blocks)
    if cfg.max_prompt_tokens is not None and len(ids) > cfg.max_prompt_tokens:
        raise DataError(
            f"{row['video']} (sample {row['id']}): prompt of {len(ids)} tokens > max_prompt_tokens="
            f"{cfg.max_prompt_tokens}; lower video_tokens or max_frames (video prompts are never truncated)"
        )
    return Sample(
        id=row["id"],
        row=row,
        prompt_ids=torch.tensor(ids, dtype=torch.long),
        pixel_values=pixel_values,
        grid_thw=grid[None],
        second_per_grid=t / sampled_fps,
        timestamps=blocks,
        family=family,
    )


# ---------------------------------------------------------------------------------------------- the toy world

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 230), "yellow": (230, 210, 40)}
KINDS = ("circle", "square")
TOY_FPS, TOY_SIZE, TOY_BACKGROUND = 4, 64, (24, 24, 24)


def toy_scene(rng: random.Random, task: str) -> dict:
    """A clip of 4-8 s with one or two shapes of distinct colours, each visible on [start, end) (a 0.5 s grid,
    >= 1 s long) while sliding horizontally, left or right (two shapes move in opposite directions)."""
    duration = rng.randint(4, 8)
    n = 1 if task == "tvg" and rng.random() < 0.5 else 2
    while True:
        shapes = []
        directions = rng.sample(["left", "right"], 2)
        for colour, y, direction in zip(rng.sample(list(COLOURS), n), rng.sample([18, 46], n), directions):
            a = rng.randint(0, 2 * duration - 2)  # half seconds
            b = rng.randint(a + 2, 2 * duration)
            shape = dict(colour=colour, kind=rng.choice(KINDS), y=y, direction=direction, start=a / 2, end=b / 2)
            shapes.append(shape)
        if n == 1 or shapes[0]["start"] != shapes[1]["start"]:  # "appears first" must be well defined
            return dict(duration=duration, shapes=shapes)


def toy_row(scene: dict, task: str, rng: random.Random, rid: str, video: str) -> dict:
    """Question and ground truth of a scene, from the generator's own parameters."""
    row = dict(id=rid, video=video, task=task, duration=float(scene["duration"]))
    shapes, options = scene["shapes"], list(COLOURS)
    if task == "mcq":
        direction = rng.choice(["left", "right"])
        shape = next(s for s in shapes if s["direction"] == direction)
        row["question"] = f"What colour is the shape that moves {direction}?"
    elif task == "tvg":
        shape = rng.choice(shapes)
        row["question"] = f"When is the {shape['colour']} {shape['kind']} visible?"
    else:
        which = rng.choice(["first", "last"])
        shape = sorted(shapes, key=lambda s: s["start"])[0 if which == "first" else -1]
        row["question"] = f"What colour is the shape that appears {which}?"
    if task in ("mcq", "gqa"):
        row["options"], row["answer"] = options, _letters(4)[options.index(shape["colour"])]
    if task in ("tvg", "gqa"):
        row["segment"] = [shape["start"], shape["end"]]
    return row


def toy_frames(scene: dict) -> np.ndarray:
    """Render a scene at TOY_FPS -> uint8 [T, 64, 64, 3]. A shape crosses 36 px during its visible interval."""
    T = TOY_FPS * scene["duration"]
    frames = np.empty((T, TOY_SIZE, TOY_SIZE, 3), np.uint8)
    frames[:] = TOY_BACKGROUND
    yy, xx = np.mgrid[:TOY_SIZE, :TOY_SIZE]
    for s in scene["shapes"]:
        for k in range(T):
            if s["start"] <= k / TOY_FPS < s["end"]:
                p = (k / TOY_FPS - s["start"]) / (s["end"] - s["start"])
                x = 14 + 36 * p if s["direction"] == "right" else 50 - 36 * p
                if s["kind"] == "circle":
                    mask = (xx - x) ** 2 + (yy - s["y"]) ** 2 <= 81
                else:
                    mask = (np.abs(xx - x) <= 8) & (np.abs(yy - s["y"]) <= 8)
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


def make_toy(out: str, n: int = 64, seed: int = 0) -> tuple[str, str]:
    """Write the toy dataset: out/videos/toy_XXXXX.mp4, out/train.jsonl (first n - n//4 clips),
    out/test.jsonl (last n//4), out/tokenizer. Clip i has task TASKS[i % 3] and depends only on (seed, i)."""
    os.makedirs(os.path.join(out, "videos"), exist_ok=True)
    rows = []
    for i in range(n):
        rng, task = random.Random(f"toy-{seed}-{i}"), TASKS[i % 3]
        scene, video = toy_scene(rng, task), f"videos/toy_{i:05d}.mp4"
        write_mp4(os.path.join(out, video), toy_frames(scene), TOY_FPS)
        rows.append(toy_row(scene, task, rng, f"toy-{i:05d}", video))
    n_train = n - n // 4
    for name, part in (("train.jsonl", rows[:n_train]), ("test.jsonl", rows[n_train:])):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in part)
    toy_tokenizer().save_pretrained(os.path.join(out, "tokenizer"))
    return os.path.join(out, "train.jsonl"), os.path.join(out, "test.jsonl")


SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
SPECIAL_TOKENS += ["<|video_pad|>", "<|image_pad|>"]
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
        row = toy_row(toy_scene(rng, task), task, rng, "", "")
        texts += [user_text(row), target_text(row)]
    return texts + [f"<{t / 10:.1f} seconds>" for t in range(201)]


def toy_tokenizer():
    """A small real tokenizer for the toy world, as a transformers PreTrainedTokenizerFast.

    Vocab (458 ids): the 7 Qwen special tokens (ids 0-6: <|endoftext|> = pad, <|im_start|>, <|im_end|> = eos,
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


# ------------------------------------------------------------------------------------------------ converters


def grounding_question(caption: str) -> str:
    return f'When does "{caption.strip().rstrip(".")}" happen in the video?'


def from_temporal_r1(rec: dict, k: int) -> dict:
    """Temporal-R1 training JSON: `solution` = [start, end] as FRACTIONS of `video_length` (seconds)."""
    (a, b), length = rec["solution"], float(rec["video_length"])
    if not 0 <= a < b <= 1:
        raise ValueError(f"solution {rec['solution']} is not an increasing pair of fractions in [0, 1]")
    return dict(
        id=f"{rec.get('dataset', 'temporal_r1')}-{k}", video=rec["video"], task="tvg",
        question=grounding_question(rec["problem"]),
        segment=[round(a * length, 2), min(round(b * length, 2), length)],  # rounding may not pass the end
        duration=length,
    )


def from_lmms_charades(rec: dict, k: int) -> dict:
    """lmms-eval Charades-STA rows: `video`, `caption`, `timestamp` = [start, end] in seconds."""
    a, b = (float(x) for x in rec["timestamp"])
    question = grounding_question(rec["caption"])
    return dict(id=f"charades-{k}", video=rec["video"], task="tvg", question=question, segment=[a, b])


def from_charades_sta(line: str, k: int, ext: str = ".mp4") -> dict:
    """Charades-STA's own text lines: `3MSZA 24.3 30.4##person turn a light on.`"""
    head, sentence = line.split("##", 1)
    vid, a, b = head.split()
    question = grounding_question(sentence)
    return dict(id=f"{vid}-{k}", video=vid + ext, task="tvg", question=question, segment=[float(a), float(b)])


def from_nextgqa(rec: dict, k: int, spans: dict, video_map: dict | None = None, ext: str = ".mp4") -> dict:
    """NExT-GQA: QA csv row (video_id, qid, question, answer as text or index, a0..a4) + grounding json
    {video_id: {duration, location: {qid: [[s, e], ...]}}}. Several spans -> their hull (our schema has one)."""
    options = [rec[f"a{i}"].strip() for i in range(5)]
    answer = rec["answer"].strip()
    answer = int(answer) if answer.isdigit() else options.index(answer)
    info = spans[rec["video_id"]]
    segs = info["location"][str(rec["qid"])]
    return dict(
        id=f"{rec['video_id']}_{rec['qid']}", video=(video_map or {}).get(rec["video_id"], rec["video_id"]) + ext,
        task="gqa", question=rec["question"].strip() + "?", options=options, answer=_letters(5)[answer],
        segment=[min(s[0] for s in segs), max(s[1] for s in segs)], duration=float(info["duration"]),
    )


def from_video_r1(rec: dict, k: int) -> dict:
    """Video-R1 style JSON: multiple-choice video items, options "A. …", solution "<answer>B</answer>"."""
    if rec.get("data_type") != "video" or rec.get("problem_type") != "multiple choice":
        raise ValueError(f"not a video multiple-choice item ({rec.get('data_type')}, {rec.get('problem_type')})")
    options = [re.sub(r"^\s*[A-Z][.:)]\s*", "", o) for o in rec["options"]]
    answer = re.search(r"<answer>\s*([A-Z])\s*</answer>", rec["solution"]).group(1)
    return dict(
        id=f"video_r1-{rec.get('problem_id', k)}", video=rec["path"], task="mcq", question=rec["problem"],
        options=options, answer=answer,
    )


def _records(path: str):
    """(line number, record) of a csv (dict rows), a JSON list (entry number, from 1) or a text/JSONL file (the
    line's text, parsed by the converter so that a malformed line is reported like any other bad record)."""
    with open(path, encoding="utf-8") as f:
        if path.endswith(".csv"):
            yield from enumerate(csv.DictReader(f), 2)
            return
        text = f.read()
    if text.lstrip().startswith("["):
        yield from enumerate(json.loads(text), 1)
    else:
        yield from ((i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip())


def convert(
    fmt: str, inp: str, out: str, video_dir: str | None = None, ext: str = ".mp4", grounding: str | None = None,
    video_map: str | None = None,
) -> tuple[int, list[str]]:
    """Convert a public file to our JSONL -> (rows written, problems as 'IN:line: message').

    Video paths get video_dir prepended when given (our schema reads them relative to OUT's folder)."""
    if fmt == "nextgqa":
        spans = json.loads(Path(grounding).read_text(encoding="utf-8"))
        vmap = json.loads(Path(video_map).read_text(encoding="utf-8")) if video_map else None
    one = {
        "temporal_r1": from_temporal_r1,
        "lmms_charades": from_lmms_charades,
        "charades_sta": lambda rec, k: from_charades_sta(rec, k, ext),
        "nextgqa": lambda rec, k: from_nextgqa(rec, k, spans, vmap, ext),
        "video_r1": from_video_r1,
    }[fmt]
    rows, problems = [], []
    for line, rec in _records(inp):
        try:
            row = one(json.loads(rec) if isinstance(rec, str) and fmt != "charades_sta" else rec, line)
        except Exception as e:  # any shape of bad record: reported with its line, never dropped silently
            problems.append(f"{inp}:{line}: {type(e).__name__}: {e}")
            continue
        row["video"] = os.path.join(video_dir, row["video"]) if video_dir else row["video"]
        rows.append(row)
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return len(rows), problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    toy = sub.add_parser("toy", help="write the synthetic toy dataset")
    toy.add_argument("--out", default="toy")
    toy.add_argument("--n", type=int, default=64)
    toy.add_argument("--seed", type=int, default=0)
    conv = sub.add_parser("convert", help="convert a public dataset file to our JSONL schema")
    formats = ["temporal_r1", "lmms_charades", "charades_sta", "nextgqa", "video_r1"]
    conv.add_argument("--from", dest="fmt", required=True, choices=formats)
    conv.add_argument("inp")
    conv.add_argument("out")
    conv.add_argument("--video-dir", help="prepended to every video path")
    conv.add_argument("--ext", default=".mp4", help="video file extension (charades_sta, nextgqa)")
    conv.add_argument("--grounding", help="nextgqa: the grounding json (gsub_*.json)")
    conv.add_argument("--video-map", help="nextgqa: map_vid_vidorID.json")
    args = parser.parse_args(argv)
    if args.cmd == "convert" and args.fmt == "nextgqa" and not args.grounding:
        parser.error("--from nextgqa needs --grounding gsub_*.json")
    if args.cmd == "toy":
        train, test = make_toy(args.out, args.n, args.seed)
        print(f"wrote {train}, {test} and {args.out}/tokenizer")
        return
    n, problems = convert(args.fmt, args.inp, args.out, args.video_dir, args.ext, args.grounding, args.video_map)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"wrote {n} rows to {args.out}; {len(problems)} record(s) not converted (listed above)")


if __name__ == "__main__":
    main()
