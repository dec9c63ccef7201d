"""Video input as the released checkpoints saw it, as worked examples.

The released Qwen2.5-VL / Qwen3-VL checkpoints were tuned, and Temporal-R1 trains and evaluates, on frames made by
Qwen's helper package qwen-vl-utils (qwen_vl_utils/vision_process.py). Each worked example below names the rule of
that file (version 0.0.14) it states; the last test compares a whole grid of videos with the package itself.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import data
import eval as ev
import select_data as sd
import toy
import train
import video
from data import VideoConfig

RELEASE = VideoConfig()  # the defaults: 2 fps, 4 to 768 frames, total_pixels 2048 * 28^2, min_pixels 3,136
HELPER = VideoConfig(video_tokens=115200, frame_min_tokens=128)  # the package's own defaults, in f x f squares


def sample(duration, video_fps, height, width, family="qwen2_5_vl", cfg=RELEASE):
    """What the rule makes of a clip, without decoding one: (frame indices, resized (h, w), video tokens,
    second_per_grid)."""
    n = round(duration * video_fps)
    idx = video.frame_indices(n, video_fps, cfg)
    fam = video.FAMILIES[family]
    f = fam["patch_size"] * fam["merge_size"]
    h, w = video.smart_resize(height, width, f, *video.frame_pixels(len(idx), family, cfg))
    return idx, (h, w), len(idx) // 2 * (h // f) * (w // f), 2 / video.sampled_fps(len(idx), n, video_fps)


def test_the_defaults_are_the_release_budget():
    """Temporal-R1's release calls the helper at 2 fps (its FPS), 4 to 768 frames (FPS_MIN_FRAMES,
    FPS_MAX_FRAMES), total_pixels = 2048 * 28 * 28 and min_pixels = 3136: in 28 x 28 squares, 2048 and 4."""
    assert (RELEASE.fps, RELEASE.min_frames, RELEASE.max_frames) == (2.0, 4, 768)
    assert video.frame_pixels(2, "qwen2_5_vl", RELEASE)[0] == 3136
    assert RELEASE.video_tokens * 28 * 28 == 2048 * 28 * 28


def test_a_30_s_clip_at_the_release_budget():
    """smart_nframes: 899 frames / 29.97 fps * 2 fps = 59.99 -> 58 (rounded down to FRAME_FACTOR 2).
    _read_video_decord: torch.linspace(0, 899 - 1, 58).round(), first frame to last.
    fetch_video: max_pixels = max(min(768 * 28^2, total_pixels / 58 * 2), int(min_pixels * 1.05)) = 55,366.6,
    then smart_resize(480, 640) -> 196 x 252, 7 x 9 = 63 tokens per block of 2 frames, 29 blocks.
    sample_fps = 58 / 899 * 29.97; the processor's second_per_grid = 2 / sample_fps."""
    idx, size, tokens, second_per_grid = sample(30, 29.97, 480, 640)
    assert len(idx) == 58 and idx[0] == 0 and idx[-1] == 898
    assert video.frame_pixels(58, "qwen2_5_vl", RELEASE) == (3136, 2048 * 784 / 58 * 2)
    assert size == (196, 252) and tokens == 29 * 63 == 1827
    assert second_per_grid == pytest.approx(1.0344, abs=1e-4)  # blocks about 1 s apart


def test_a_600_s_clip_stays_within_the_budget():
    """smart_nframes: 17,982 frames would give 1,199 at 2 fps: FPS_MAX_FRAMES caps it at 768.
    fetch_video: total_pixels / 768 * 2 = 4,181 pixels a frame (above int(3136 * 1.05) = 3,292): smart_resize
    floors 480 x 640 to 56 x 56, 4 tokens per block, 384 blocks: 1,536 tokens, within 2,048.
    The indices are the helper's float32 linspace: index 432 is 10,128, where exact arithmetic gives
    432 * 17,981 / 767 = 10,127.49 -> 10,127."""
    idx, size, tokens, second_per_grid = sample(600, 29.97, 480, 640)
    assert len(idx) == 768 and idx[0] == 0 and idx[-1] == 17981
    assert size == (56, 56) and tokens == 384 * 4 == 1536 <= RELEASE.video_tokens
    assert second_per_grid == 2 / (768 / 17982 * 29.97) == 1.5625
    assert idx[432] == 10128 and round(432 * 17981 / 767) == 10127


def test_qwen3_vl_counts_in_32_by_32_squares():
    """fetch_video: image_factor = image_patch_size * 2 = 32 for Qwen3-VL (patch 16), and its limits
    VIDEO_MIN_TOKEN_NUM, VIDEO_MAX_TOKEN_NUM and total_pixels' default are counts of image_factor^2 squares.
    The same budget in squares gives Qwen3-VL the same tokens as Qwen2.5-VL: 224 x 288 = 7 x 9 squares of 32^2."""
    assert video.frame_pixels(58, "qwen3_vl", RELEASE) == (4 * 1024, 2048 * 1024 / 58 * 2)
    assert video.frame_pixels(58, "qwen3_vl", HELPER) == (128 * 1024, 768 * 1024)
    idx, size, tokens, _ = sample(30, 29.97, 480, 640, "qwen3_vl")
    assert len(idx) == 58 and size == (224, 288) and tokens == 1827


def test_the_helpers_own_defaults():
    """fetch_video without pixel keys: min_pixels = VIDEO_MIN_TOKEN_NUM (128) squares, total_pixels =
    MODEL_SEQ_LEN (128,000) * 0.9 squares, a frame at most VIDEO_MAX_TOKEN_NUM (768) squares. The 30 s clip keeps
    its 480 x 640 frames, rounded to 476 x 644: 17 x 23 = 391 tokens a block, 11,339 in all (six times the release)."""
    _, size, tokens, _ = sample(30, 29.97, 480, 640, cfg=HELPER)
    assert size == (476, 644) and tokens == 29 * 391 == 11339


def test_a_short_clip_is_sampled_faster():
    """smart_nframes: 1 s at 25 fps gives 2 frames at 2 fps; FPS_MIN_FRAMES raises it to 4, spread over the
    second (linspace(0, 24, 4)), so the sampled rate is 4 fps and a block of 2 frames lasts 0.5 s."""
    idx, _, _, second_per_grid = sample(1, 25.0, 480, 640)
    assert idx == [0, 8, 16, 24] and second_per_grid == 0.5


def test_resize_is_bicubic_with_antialiasing_clamped_and_rounded():
    """fetch_video resizes with torchvision's resize(BICUBIC, antialias=True) on uint8 frames, which clamps the
    bicubic overshoot to [0, 255] and rounds; a frame already at the size is returned as it is."""
    edge = np.zeros((1, 8, 8, 3), np.uint8)
    edge[:, :, 4:] = 255  # a hard black/white edge: bicubic overshoots on both sides of it
    raw = torch.nn.functional.interpolate(torch.from_numpy(edge).permute(0, 3, 1, 2).float(), size=(28, 28),
                                          mode="bicubic", align_corners=False, antialias=True)
    ours = video.resize(edge, 28, 28)
    assert raw.min() < 0 and raw.max() > 255  # what the clamp is for
    assert torch.equal(ours, raw.clamp(0, 255).round()) and ours.shape == (1, 3, 28, 28)
    frames = np.random.default_rng(0).integers(0, 256, (3, 28, 56, 3), dtype=np.uint8)
    assert torch.equal(video.resize(frames, 28, 56), torch.from_numpy(frames).permute(0, 3, 1, 2).float())


def test_prepare_sample_follows_the_rule_end_to_end(tmp_path, toy_tok):
    """A real 3 s, 25 fps, 96 x 128 mp4: 6 frames linspace(0, 74, 6) = 0, 15, 30, 44, 59, 74; 84 x 140 pixels
    (smart_resize's rounding, well within the budget), a 3 x 6 x 10 grid, 3 x 15 = 45 video tokens; Qwen3-VL's
    timestamp of a block is the mean of its two frames' times."""
    path = tmp_path / "clip.mp4"
    toy.write_mp4(str(path), np.zeros((75, 96, 128, 3), np.uint8), fps=25)
    row = dict(id="c", video=str(path), task="tvg", question="When?", segment=[0.5, 1.0], duration=3.0)
    s = data.prepare_sample(row, toy_tok, "qwen2_5_vl")
    assert s.grid_thw.tolist() == [[3, 6, 10]] and s.second_per_grid == 2 / (6 / 75 * 25) == 1.0
    assert (s.prompt_ids == toy_tok.convert_tokens_to_ids("<|video_pad|>")).sum() == 45
    text = toy_tok.decode(data.prepare_sample(row, toy_tok, "qwen3_vl").prompt_ids)  # block b: <t seconds>
    assert all(f"<{t:.1f} seconds><|vision_start|>" in text for t in ((0 + 15) / 50, (30 + 44) / 50, (59 + 74) / 50))


def test_every_entry_point_takes_the_same_video_flags():
    """One set of defaults (VideoConfig's) and one set of flags, here switched to the helper's own defaults."""
    flags = ["--video-tokens", "115200", "--frame-min-tokens", "128"]
    sel = sd.parse_args(["--model", "m", "--data", "d.jsonl", "--out", "o.jsonl", *flags])
    test = ev.parse_args(["--model", "m", "--data", "d.jsonl", *flags])
    trained = train.parse_config(["--video_tokens", "115200", "--frame_min_tokens", "128"])  # train.py's style
    assert video.video_config(sel) == video.video_config(test) == video.video_config(trained) == HELPER


GRID = json.loads((Path(__file__).parent / "qwen_vl_utils_0.0.14_grid.json").read_text())


@pytest.mark.parametrize("setting", ["defaults", "release"])
@pytest.mark.parametrize("family", list(video.FAMILIES))
def test_a_grid_of_videos_equals_qwen_vl_utils(family, setting):
    """The fixture holds what qwen-vl-utils 0.0.14 itself computes (the PyPI wheel's fetch_video on its decord path,
    with torchvision stubbed and a reader that only reports frame count and fps) for 13 durations of 1-600 s x
    5 frame rates x 5 frame sizes, per family (image_patch_size 14 / 16), at the package's defaults and at the
    release's budget (total_pixels 2048 * f^2, min_pixels 4 * f^2): 325 videos each. Ours must equal it in frame
    count, first and last index, every index (a hash of the list), second_per_grid (to the last bit), resized
    height and width, and video tokens."""
    cfg = {"defaults": HELPER, "release": RELEASE}[setting]
    sizes = {tuple(r[:5]): r[5:] for r in GRID["sizes"]}
    checked = 0
    for duration, video_fps, n, T, first, last, sha, second_per_grid in GRID["videos"]:
        assert n == round(duration * video_fps)
        idx = video.frame_indices(n, video_fps, cfg)
        assert (len(idx), idx[0], idx[-1]) == (T, first, last), (duration, video_fps)
        assert hashlib.sha256(json.dumps(idx).encode()).hexdigest()[:16] == sha, (duration, video_fps)
        assert 2 / video.sampled_fps(T, n, video_fps) == second_per_grid, (duration, video_fps)
        for height, width in GRID["grid"]["size_hw"]:
            _, size, tokens, _ = sample(duration, video_fps, height, width, family, cfg)
            assert [*size, tokens] == sizes[family, setting, T, height, width], (duration, video_fps, height, width)
            checked += 1
    assert checked == 13 * 5 * 5


@pytest.mark.skipif(video.decord is None, reason="decord has no wheel here")
def test_frames_decord_refuses_are_read_by_pyav(tmp_path):
    """A 16-px-wide clip: decord's buffer copy fails on it, PyAV reads it; with the decoder left to "auto" the
    frames come from PyAV, and only a file neither can read is a bad video."""
    path = str(tmp_path / "narrow.mp4")
    toy.write_mp4(path, np.full((8, 16, 16, 3), 128, np.uint8), 4)
    with pytest.raises(Exception):
        video._decode_decord(path, [0, 2])  # the failure this guards against
    frames, timestamps, _ = video.read_video(path, VideoConfig(min_frames=4, max_frames=4))
    assert frames.shape == (4, 16, 16, 3) and len(timestamps) == 4
    with pytest.raises(video.DataError, match="cannot decode"):  # asked for decord alone, its error stands
        video.read_video(path, VideoConfig(min_frames=4, max_frames=4, decoder="decord"))


def test_a_folder_passed_as_a_video_is_named_as_a_folder(tmp_path):
    """read_video on a directory (a dataset folder passed by mistake) says what it is, not 'file not found'."""
    with pytest.raises(video.DataError, match=f"{tmp_path} .sample clip-1.: is a directory, not a video file"):
        video.read_video(str(tmp_path), RELEASE, "clip-1")
