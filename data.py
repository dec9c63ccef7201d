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
from PIL import Image

from rewards import ANSWER_FORMATS, TASKS

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


def read_jsonl(path: str, max_text_chars: int = MAX_TEXT_CHARS) -> Jsonl:
    """Read and validate every row of a JSONL file; problems are returned as data, never raised (a missing file
    is a DataError).

    Each row gets `video` made absolute (relative paths are relative to the JSONL's folder) and `duration` read
    from the video when absent.
    """
    if not os.path.isfile(path):
        raise DataError(f"{path!r}: no such JSONL file (pass the data with --data)")
    folder = os.path.dirname(os.path.abspath(path))
    out, seen = Jsonl([], [], []), {}
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
    return out


def load_jsonl(path: str, skip_bad: bool = False, report: str | None = None,
               max_text_chars: int = MAX_TEXT_CHARS) -> list[dict]:
    """The valid rows of a JSONL file (read_jsonl), or one DataError listing every problem of the file, one per
    `file:line id=… field=…` line. With skip_bad the bad rows are dropped instead, counted on stderr and listed in
    `report` (default: `<path>.bad.txt`) - never dropped silently."""
    read = read_jsonl(path, max_text_chars)
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
    """How a video becomes frames and patches."""

    fps: float = 2.0  # frames sampled per second of video
    min_frames: int = 4  # at least this many frames (a short clip is sampled faster)
    max_frames: int = 16  # at most this many (a long clip is sampled slower); 16 frames x 256 tokens = paper's 2k
    min_pixels: int = 56 * 56  # per frame, after the Qwen resize
    max_pixels: int = 256 * 28 * 28  # per frame: <= 256 merged tokens per temporal block for Qwen2.5-VL
    # a longer prompt is an error, never truncated (it holds video tokens); 32768 = Qwen2.5's native context, far
    # above the default video budget (16 frames: <= 2048 tokens), room for qwen-vl-utils' long-video one (~24k)
    max_prompt_tokens: int | None = 32768
    decoder: str = "auto"  # "auto" (decord if importable, else PyAV), "decord" or "pyav"


def add_video_flags(parser):
    """--fps, --max-frames, --max-pixels for the command-line tools; their defaults are VideoConfig's (and train.py's)."""
    parser.add_argument("--fps", type=float, default=VideoConfig.fps, help="frames sampled per second")
    parser.add_argument("--max-frames", type=int, default=VideoConfig.max_frames, help="frames per video at most")
    parser.add_argument("--max-pixels", type=int, default=VideoConfig.max_pixels, help="pixels per frame at most")


def add_limit_flags(parser):
    """--max-text-chars and --max-prompt-tokens for the command-line tools (train.py has them as Config fields)."""
    parser.add_argument("--max-text-chars", "--max_text_chars", type=int, default=MAX_TEXT_CHARS,
                        help="a row with a longer text field is refused at load")
    parser.add_argument("--max-prompt-tokens", "--max_prompt_tokens", type=int,
                        default=VideoConfig.max_prompt_tokens,
                        help="a sample with a longer prompt (video tokens included) is refused, never truncated")


def video_config(args) -> VideoConfig:
    """The VideoConfig of parsed flags (or of train.py's Config, which has the same names)."""
    return VideoConfig(fps=args.fps, max_frames=args.max_frames, max_pixels=args.max_pixels,
                       max_prompt_tokens=args.max_prompt_tokens)


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


def frame_indices(n_frames: int, video_fps: float, cfg: VideoConfig) -> list[int]:
    """Which frames to keep: about cfg.fps per second, clamped to [min_frames, max_frames], an even count.

        n = clamp(n_frames / video_fps * cfg.fps, min_frames, min(max_frames, n_frames)),  rounded down to even
        index_k = floor(k * n_frames / n)           (k = 0..n-1; uniform stride, as Qwen2VLVideoProcessor)

    An even n lets every temporal patch (2 frames) be whole. A 1-frame video repeats its frame.
    """
    n = min(max(n_frames / video_fps * cfg.fps, cfg.min_frames), cfg.max_frames, n_frames)
    n = max(2, int(n) // 2 * 2)
    return [k * n_frames // n for k in range(n)]


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
    return frames, [i / fps for i in idx], len(idx) * fps / n_frames


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


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen's resize rule: both sides multiples of `factor` (= patch * merge), h*w within [min, max] pixels,
    aspect ratio kept as well as rounding allows.

        h, w = round(H / f) * f, round(W / f) * f
        if h*w > max:  b = sqrt(H*W / max);  h, w = max(f, floor(H / b / f) * f), max(f, floor(W / b / f) * f)
        if h*w < min:  b = sqrt(min / (H*W)); h, w = ceil(H * b / f) * f, ceil(W * b / f) * f
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


def patchify(frames: np.ndarray, family: str, cfg: VideoConfig = VideoConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames [T, H, W, 3] -> (pixel_values float32 [N_patch, C*t*P*P], grid_thw LongTensor [3]).

    Resize (smart_resize, PIL bicubic), scale to [0, 1], normalize with the family's mean/std, then cut into
    t x P x P patches (t = temporal patch size 2, P = patch size). Rows are ordered
    (time block, merge-window row, merge-window col, row in window, col in window), so the m x m = 2 x 2 patches
    the vision tower merges into one LLM token are consecutive rows; each row is flattened as (C, t, P, P).
    This is the layout of transformers' Qwen2VL image/video processors, which Qwen2.5-VL and Qwen3-VL both take.
    """
    fam = FAMILIES[family]
    P, t, m = fam["patch_size"], fam["temporal_patch_size"], fam["merge_size"]
    if len(frames) % t:  # pad the last temporal patch by repeating the last frame, as the processors do
        frames = np.concatenate([frames, frames[-1:].repeat(t - len(frames) % t, axis=0)])
    T, H, W, C = frames.shape
    h, w = smart_resize(H, W, P * m, cfg.min_pixels, cfg.max_pixels)
    x = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in frames])  # [T, h, w, C]
    x = (x.astype(np.float32) / 255.0 - np.array(fam["mean"], np.float32)) / np.array(fam["std"], np.float32)
    x = torch.from_numpy(x).permute(0, 3, 1, 2)  # [T, C, h, w]
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
    """SFT target: a one-sentence think, then the answer in rewards.ANSWER_FORMATS (times with one decimal)."""
    task, (start, end) = row["task"], row.get("segment") or (0.0, 0.0)
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
            f"{cfg.max_prompt_tokens}; lower VideoConfig.max_frames or max_pixels (video prompts are never truncated)"
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
