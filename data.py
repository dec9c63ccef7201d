"""Everything between a file on disk and the tensors a Qwen-VL model eats.

    JSONL row --read_jsonl--> validated dict --read_video--> frames uint8 [T, H, W, 3] + timestamps
      --patchify--> pixel_values [N_patch, C*t*P*P] + grid_thw (T/t, H/P, W/P)
      --build_prompt--> prompt ids with one <|video_pad|> per merged patch       ==> Sample

Two model families share these functions; only the constants in FAMILIES and the way the prompt marks time differ
(Qwen2.5-VL: one video block, time through mRoPE and `second_per_grid`; Qwen3-VL: a textual `<t seconds>` before
each temporal block). The synthetic toy world is in toy.py, the converters from public formats in convert.py.
"""

import json
import math
import os
import re
import sys
from dataclasses import dataclass

import av
import numpy as np
import torch
import torch.nn.functional as F

from rewards import ANSWER_FORMATS, TASKS, gt_spans

try:  # decord is faster, but has no wheel on some platforms (aarch64, macOS): PyAV is the fallback
    import decord
except ImportError:
    decord = None

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
FAMILIES = {  # vision preprocessing constants of the released checkpoints
    "qwen2_5_vl": dict(patch_size=14, temporal_patch_size=2, merge_size=2, mean=CLIP_MEAN, std=CLIP_STD),
    "qwen3_vl": dict(patch_size=16, temporal_patch_size=2, merge_size=2, mean=(0.5,) * 3, std=(0.5,) * 3),
}
SYSTEM = "You are a helpful assistant."
ASKED = {  # what each task's answer holds; the example after "as" is rewards.ANSWER_FORMATS filled in
    "mcq": "the option letter",
    "tvg": "the start and end time in seconds",
    "gqa": "the option letter and the start and end time in seconds of the moment that shows it",
}
INSTRUCTIONS = {
    task: f"Think briefly in <think> </think>, then give {ASKED[task]} in <answer> </answer>, as <answer>"
    + ANSWER_FORMATS[task].format(letter="A", start=2.5, end=7.0) + "</answer>."
    for task in TASKS
}


# The Qwen special tokens our prompts are made of (the toy tokenizer has exactly these). Prompt text holding one, or
# any `<|name|>` control token of the Qwen tokenizers, could end the user turn and add turns of its own: refused.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>",
                  "<|image_pad|>"]
CONTROL_TOKEN = re.compile(r"<\|[^\s<>|]{1,64}\|>")
MAX_TEXT_CHARS = 10_000  # per text field; public video QA questions run to a few hundred characters


class DataError(ValueError):
    """A bad row or a bad video. The message names the file (and line), the sample id and the field."""


# ----------------------------------------------------------------------------------------------------- loading


@dataclass
class Problem:
    """One thing wrong with one row of a JSONL file."""

    path: str  # the JSONL file (or, for a video that fails to decode, the video)
    line: int | None  # 1-based line of the JSONL file; None for a video problem
    id: object  # the row's id as written (None when it has none)
    task: object  # the row's task as written (None when it has none)
    field: str  # the field at fault, or <line> for the whole line
    message: str

    def __str__(self):
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        name = repr(self.id) if len(repr(self.id)) <= 80 else repr(self.id)[:60] + "...(cut)"
        return f"{where} id={name} field={self.field}: {self.message}"


@dataclass
class Jsonl:
    """A read JSONL file: the valid rows (and each one's line as written), and the problems of the others."""

    rows: list  # validated dicts, file order: `video` made absolute, `duration` filled
    lines: list  # the text of each valid row's line, as written
    problems: list  # [Problem], file order; a bad row may have several
    outside: list  # ids of valid rows whose ground truth starts before 0 or ends after `duration` (_check_segment)


def read_jsonl(path: str, max_text_chars: int = MAX_TEXT_CHARS) -> Jsonl:
    """Read and validate every row of a JSONL file; problems are returned as data, never raised (a missing file
    is a DataError).

    Each row gets `video` made absolute (relative paths are relative to the JSONL's folder) and `duration` read
    from the video when absent. Rows whose ground truth reaches outside the video are valid and listed in `outside`.
    """
    if not os.path.isfile(path):
        raise DataError(f"{path!r}: no such JSONL file (pass the data with --data)")
    folder = os.path.dirname(os.path.abspath(path))
    out, seen = Jsonl([], [], [], []), {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                row, errors = None, [("<line>", f"not valid JSON ({e.msg})")]
            else:
                errors = check_row(row, folder, max_text_chars) if isinstance(row, dict) \
                    else [("<line>", "not a JSON object")]
            rid, task = (row.get("id"), row.get("task")) if isinstance(row, dict) else (None, None)
            if isinstance(rid, str) and rid in seen:
                errors.append(("id", f"duplicate id, first seen on line {seen[rid]}"))
            elif isinstance(rid, str):
                seen[rid] = lineno
            out.problems += [Problem(path, lineno, rid, task, field, msg) for field, msg in errors]
            if not errors:
                out.rows.append(row)
                out.lines.append(line.rstrip("\n"))
                spans = gt_spans(row["segment"]) if task in ("tvg", "gqa") else []
                out.outside += [rid] if any(s < 0 or e > row["duration"] for s, e in spans) else []
    return out


def load_jsonl(path: str, skip_bad: bool = False, report: str | None = None,
               max_text_chars: int = MAX_TEXT_CHARS) -> list[dict]:
    """The valid rows of a JSONL file (read_jsonl), or one DataError listing every problem of the file, one per
    `file:line id=… field=…` line. With skip_bad the bad rows are dropped instead, counted on stderr and listed in
    `report` (default: `<path>.bad.txt`) - never dropped silently. Rows whose ground truth reaches outside the
    video are kept and counted on stderr."""
    read = read_jsonl(path, max_text_chars)
    if read.outside:
        print(f"{path}: {len(read.outside)} row(s) whose ground truth reaches outside the video, kept as published",
              file=sys.stderr)
    n_bad = len({p.line for p in read.problems})
    if read.problems and not skip_bad:
        listed = "\n  ".join(map(str, read.problems))
        raise DataError(f"{len(read.problems)} problem(s) in {n_bad} row(s) of {path}:\n  {listed}")
    if read.problems:
        write_problems(report or path + ".bad.txt", read.problems)
        print(f"skipped {n_bad} bad row(s) of {path}, kept {len(read.rows)}; see {report or path + '.bad.txt'}",
              file=sys.stderr)
    return read.rows


def write_problems(path: str, problems: list[Problem]) -> None:
    """One problem a line (`file:line id=… field=…: message`)."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{p}\n" for p in problems)


def failed_rows(problems: list[Problem]) -> list[dict]:
    """Problems -> one {id, task, reason} per failed row, in order: a row's problems joined; a row without a
    string id is named by its line, one without a task string gets task '?'."""
    rows = {}
    for p in problems:
        name = p.id if isinstance(p.id, str) else f"line {p.line}"
        task = p.task if isinstance(p.task, str) else "?"
        row = rows.setdefault((p.path, p.line, name), {"id": name, "task": task, "reason": []})
        row["reason"].append(f"field={p.field}: {p.message}")
    return [{**r, "reason": "; ".join(r["reason"])} for r in rows.values()]


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_text(row: dict, max_chars: int) -> list[tuple[str, str]]:
    """Text fields longer than max_chars characters, and prompt text (question, options) holding a control token."""
    options = row["options"] if isinstance(row.get("options"), list) else []
    texts = [(f, row.get(f)) for f in ("id", "video", "answer", "question")] + [("options", o) for o in options]
    errors = []
    for field, text in (t for t in texts if isinstance(t[1], str)):
        token = CONTROL_TOKEN.search(text) if field in ("question", "options") else None
        if len(text) > max_chars:
            errors.append((field, f"{len(text)} characters, more than --max-text-chars {max_chars}"))
        elif token:
            errors.append((field, f"holds the special token {token.group()!r}, which could add chat turns"))
    return errors


def check_row(row: dict, folder: str, max_text_chars: int = MAX_TEXT_CHARS) -> list[tuple[str, str]]:
    """Problems of one row as (field, message); fills row['video'] (absolute) and row['duration'] in place.
    Over-long or special-token text is checked first and alone: such a row is reported without further work."""
    errors = check_text(row, max_text_chars)
    if errors:
        return errors
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
        elif not isinstance(row.get("answer"), str) or row["answer"] not in letters(len(options)):
            errors.append(("answer", f"expected one of {letters(len(options))}, got {row.get('answer')!r}"))
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


def letters(n: int) -> list[str]:
    """The first n option letters, A, B, ..."""
    return [chr(ord("A") + i) for i in range(n)]


def _check_segment(seg, duration) -> list[tuple[str, str]]:
    """Problems of a ground-truth `segment`: one span [start, end] or a list of them (rewards.gt_spans). Each span
    must be increasing and overlap the video (start < duration, end > 0), but may reach outside it: rounded public
    annotations do (Charades-STA `FPJ9D 25.8 34.0` in a 33.4 s video, NExT-GQA starts at -0.1 s) and the official
    evaluations score them as published; so do we (read_jsonl keeps and counts them in Jsonl.outside)."""
    spans = seg if isinstance(seg, list) and seg and isinstance(seg[0], list) else [seg]
    for span in spans:
        if not (isinstance(span, list) and len(span) == 2 and all(_number(x) for x in span)):
            return [("segment", f"expected [start, end] or a list of [start, end] in seconds, got {seg!r}")]
        if span[0] >= span[1]:
            return [("segment", f"reversed or empty span {span}")]
        if span[1] <= 0 or (_number(duration) and span[0] >= duration):
            return [("segment", f"span {span} lies outside the video [0, duration={duration}]")]
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
    # a longer prompt is an error, never truncated (it holds video tokens); 32768 = Qwen2.5's native context, far
    # above the default video budget (about 2048 tokens), room for qwen-vl-utils' long-video one (~24k)
    max_prompt_tokens: int | None = 32768
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
        flags = dict.fromkeys(["--" + name.replace("_", "-"), "--" + name])  # underscores accepted too
        parser.add_argument(*flags, dest=name, type=type(default), default=default, help=help)


def add_limit_flags(parser):
    """--max-text-chars and --max-prompt-tokens for the command-line tools (train.py has them as Config fields)."""
    parser.add_argument("--max-text-chars", "--max_text_chars", type=int, default=MAX_TEXT_CHARS,
                        help="a row with a longer text field is refused at load")
    parser.add_argument("--max-prompt-tokens", "--max_prompt_tokens", type=int,
                        default=VideoConfig.max_prompt_tokens,
                        help="a sample with a longer prompt (video tokens included) is refused, never truncated")


def video_config(args) -> VideoConfig:
    """The VideoConfig of parsed flags (or of train.py's Config, which has the same names)."""
    return VideoConfig(max_prompt_tokens=args.max_prompt_tokens, **{name: getattr(args, name) for name in VIDEO_FLAGS})


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


def read_video(path: str, cfg: VideoConfig, sample_id=None) -> tuple[np.ndarray, list[float], float]:
    """Decode the sampled frames -> (uint8 [T, H, W, 3] RGB, timestamps [T] in seconds, sampled fps), T even.

    sampled fps = T / video duration = T * video_fps / n_frames (as qwen-vl-utils). Any failure (missing, empty,
    corrupt, truncated file) is a DataError naming the file and the sample id.
    """
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
    lines += [f"{letter}. {option}" for letter, option in zip(letters(26), row.get("options") or [])]
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
    """SFT target: a one-sentence think, then the answer in rewards.ANSWER_FORMATS (times with one decimal; the
    first span of a ground truth with several)."""
    task, (start, end) = row["task"], gt_spans(row["segment"])[0] if row.get("segment") else (0.0, 0.0)
    answer = ANSWER_FORMATS[task].format(letter=row.get("answer"), start=start, end=end)
    span = ANSWER_FORMATS["tvg"].format(start=start, end=end)
    option = row["options"][ord(row["answer"]) - ord("A")] if task in ("mcq", "gqa") else ""
    think = {"mcq": f"The answer is {option}.", "tvg": f"The moment lasts from {span} seconds.",
             "gqa": f"From {span} seconds the answer is {option}."}[task]
    return f"<think>{think}</think><answer>{answer}</answer>"


@dataclass
class Sample:
    """One prompt, ready for the model."""

    id: str
    row: dict  # the validated schema row (rewards.score reads task/options/answer/segment/duration)
    prompt_ids: torch.Tensor  # LongTensor [P]
    pixel_values: torch.Tensor  # FloatTensor [N_patch, C*t*P*P]
    grid_thw: torch.Tensor  # LongTensor [1, 3]
    second_per_grid: float  # seconds between temporal blocks = temporal_patch_size / sampled fps


def prepare_sample(row: dict, tokenizer, family: str, cfg: VideoConfig = VideoConfig()) -> Sample:
    """Row -> Sample. Bad video or too long a prompt -> DataError naming the file and the sample id.

    second_per_grid = temporal_patch_size / sampled fps, where sampled fps = T / video duration is the rate of the
    frames actually kept (it differs from cfg.fps when min_frames or max_frames clamp T). Qwen2.5-VL's temporal
    rotary positions are built from it: lose it between rollout and training and the model loses absolute time.
    """
    frames, times, sampled_fps = read_video(row["video"], cfg, row["id"])
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
    )


def prepare_batch(rows: list[dict], tokenizer, family: str, cfg: VideoConfig) -> tuple[list[Sample], list[Problem]]:
    """Rows -> (samples, problems): a video that fails to decode fails its own row (field `video`), nothing else."""
    samples, failed = [], []
    for row in rows:
        try:
            samples.append(prepare_sample(row, tokenizer, family, cfg))
        except DataError as err:
            failed.append(Problem(row["video"], None, row["id"], row["task"], "video", str(err)))
    return samples, failed
