"""A video file -> the frames and patches a Qwen-VL model takes, as the released checkpoints saw them.

    file --probe_video--> (frames, fps) --frame_indices--> which frames --read_video--> uint8 [T, H, W, 3]
      --patchify--> pixel_values [N_patch, C*t*P*P] + grid_thw (T/t, H/P, W/P)

The rule is that of Qwen's helper package qwen-vl-utils (0.0.14): frames spread evenly from the first to the last at
2 fps, a pixel budget shared by the frames of a video, bicubic antialiased resize; see VideoConfig.
"""

import math
import os
from dataclasses import dataclass

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


class DataError(ValueError):
    """A bad row or a bad video. The message names the file (and line), the sample id and the field."""


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
VIDEO_FLAGS = {  # the VideoConfig fields that train.py, select_data.py and eval.py all take as flags (config.py)
    "fps": "frames sampled per second of video",
    "min_frames": "frames per video at least (rounded up to even)",
    "max_frames": "frames per video at most (rounded down to even)",
    "video_tokens": "pixel budget of a whole video in (patch*merge)^2 squares, about its video tokens",
    "frame_min_tokens": "pixels per frame at least, in (patch*merge)^2 squares",
}


def video_config(args) -> VideoConfig:
    """The VideoConfig of parsed flags (or of train.py's Config, which has the same names)."""
    return VideoConfig(max_prompt_tokens=args.max_prompt_tokens, **{name: getattr(args, name) for name in VIDEO_FLAGS})


def video_error(path, sample_id, msg) -> DataError:
    return DataError(f"{path} (sample {sample_id}): {msg}")


def probe_video(path: str, sample_id=None) -> tuple[int, float]:
    """(number of frames, frames per second) of a video, from its container, opened with PyAV.

    An empty, garbage or truncated file (no index) fails here with a DataError instead of reaching decord, which
    can crash the whole process on garbage input. Corrupt frame data is found later, by the decoder.
    """
    if not os.path.isfile(path):
        raise video_error(path, sample_id, "is a directory, not a video file" if os.path.isdir(path) else
                          "video file not found")
    if os.path.getsize(path) == 0:
        raise video_error(path, sample_id, "video file is empty")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise video_error(path, sample_id, "no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            n = stream.frames or round((container.duration or 0) / av.time_base * fps)
            if fps <= 0 or n <= 0:
                raise video_error(path, sample_id, f"no frames (fps={fps}, frames={n})")
    except DataError:
        raise
    except Exception as e:  # av.error.InvalidDataError and friends
        raise video_error(path, sample_id, f"cannot read video ({type(e).__name__}: {e})") from e
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
        if not (use_decord and cfg.decoder == "auto"):
            raise video_error(path, sample_id, f"cannot decode video ({type(e).__name__}: {e})") from e
        frames = _decode_pyav_after(path, idx, sample_id, e)
    return frames, [i / fps for i in idx], sampled_fps(len(idx), n_frames, fps)


def _decode_decord(path: str, idx: list[int]) -> np.ndarray:
    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    return reader.get_batch(idx).asnumpy()  # [T, H, W, 3] uint8


def _decode_pyav_after(path: str, idx: list[int], sample_id, decord_error: Exception) -> np.ndarray:
    """decord refuses some files PyAV reads (frames 16 px wide or less fail its buffer copy): with the decoder left
    to "auto", PyAV gets a second try, and only when both fail is the video bad (both errors in the message)."""
    try:
        return _decode_pyav(path, idx)
    except Exception as e:
        raise video_error(path, sample_id, f"cannot decode video (decord: {type(decord_error).__name__}: "
                                           f"{decord_error}; PyAV: {type(e).__name__}: {e})") from e


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


if __name__ == "__main__":
    raise SystemExit("video.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
