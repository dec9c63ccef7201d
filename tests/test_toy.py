"""toy.py as worked examples: the synthetic clips show exactly what their rows say, and the tokenizer reads any text."""

import numpy as np
from transformers import PreTrainedTokenizerFast

import data
import schema
import toy
import video
from data import VideoConfig


def toy_rows(toy_dir):
    return schema.load_jsonl(str(toy_dir / "train.jsonl")) + schema.load_jsonl(str(toy_dir / "test.jsonl"))


def test_make_toy_layout_and_split(toy_dir, toy_tok):
    train, test = schema.load_jsonl(str(toy_dir / "train.jsonl")), schema.load_jsonl(str(toy_dir / "test.jsonl"))
    assert (len(train), len(test)) == (5, 1)  # n=6: the last n//4 clips are the test split
    assert sorted(p.name for p in (toy_dir / "videos").iterdir()) == [f"toy_{i:05d}.mp4" for i in range(6)]
    assert [r["task"] for r in train + test] == ["mcq", "tvg", "gqa"] * 2
    for r in train + test:
        assert 4 <= r["duration"] <= 8 and all(x == int(x) for x in r.get("segment", []))  # whole seconds
        if "segment" in r:  # the moment lasts 1 s to half its clip
            assert 1 <= r["segment"][1] - r["segment"][0] <= r["duration"] // 2 and r["segment"][1] <= r["duration"]
    saved = PreTrainedTokenizerFast.from_pretrained(str(toy_dir / "tokenizer"))
    assert saved.get_vocab() == toy_tok.get_vocab() and saved.eos_token == "<|im_end|>"


def test_make_toy_is_deterministic_from_the_seed(tmp_path, toy_dir):
    a, b, c = (toy.make_toy(str(tmp_path / name), n=2, seed=seed)[0] for name, seed in [("a", 0), ("b", 0), ("c", 1)])
    assert open(a).read() == open(b).read() != open(c).read()
    ours = {r["id"]: r for r in toy_rows(toy_dir)}
    for r in schema.load_jsonl(a):  # clip i depends on (seed, i) only, not on n
        assert {**r, "video": ""} == {**ours[r["id"]], "video": ""}
        frames = [video.read_video(path, VideoConfig())[0] for path in (r["video"], ours[r["id"]]["video"])]
        assert np.array_equal(*frames)


def test_each_train_clip_has_a_caption_of_what_it_shows(toy_dir):
    """captions.jsonl: one caption row per train clip (none of a test clip), naming the clip's colour and shape; read
    by SFT only (a caption has no reward)."""
    train, captions = schema.load_jsonl(str(toy_dir / "train.jsonl")), schema.load_jsonl(
        str(toy_dir / "captions.jsonl"), tasks=schema.SFT_TASKS)
    assert [c["video"] for c in captions] == [r["video"] for r in train]
    for row, c in zip(train, captions):
        assert c["task"] == "caption" and c["question"] == "Describe the video." and c["duration"] == row["duration"]
        colour, kind = c["caption"].split()[1:3]  # "A red circle slides left from 2.0 to 4.0 seconds."
        if "segment" in row:  # the caption says when, as the row's ground truth
            assert c["caption"].endswith(f" from {row['segment'][0]:.1f} to {row['segment'][1]:.1f} seconds.")
        if row["task"] == "tvg":
            assert row["question"] == f"When is the {colour} {kind} visible?"
        else:
            assert row["options"][ord(row["answer"]) - ord("A")] == colour and kind in row["question"]


def test_chance_levels_worked_example():
    """Video-blind answers on hand-made rows: one option of 4 (0.25), the whole clip (IoU 1 on a 4 s clip whose
    moment is all of it, 0.5 on one whose moment is its first half), and a random span drawn as the generator draws
    the true ones, which can only lose against a moment that fills the clip."""
    options = dict(options=["red", "green", "blue", "yellow"], answer="A")
    rows = [dict(task="mcq", **options), dict(task="tvg", duration=4.0, segment=[0.0, 4.0]),
            dict(task="gqa", duration=4.0, segment=[0.0, 2.0], **options)]
    levels = toy.chance_levels(rows)
    assert levels["mcq/accuracy"] == levels["gqa/accuracy"] == "chance 0.25"
    random_tvg, whole_tvg = (float(x.split()[-1]) for x in levels["tvg/mIoU"].split(", "))
    assert whole_tvg == 1.0 and 0.2 < random_tvg < 1.0
    assert levels["gqa/mIoU"].endswith("whole clip 0.50")
    # Acc@GQA: the whole 4 s clip has IoP 2/4 = 0.5 >= 0.5 against [0, 2], so a random option of 4 scores 0.25
    assert levels["gqa/Acc@GQA"] == "random option and whole clip 0.25"


def colour_masks(frames, colour):
    """[T, H, W] bool: pixels close to a toy colour (the encoding leaves a few levels of noise)."""
    return np.abs(frames.astype(int) - np.array(toy.COLOURS[colour])).max(-1) < 40


def test_toy_ground_truth_is_what_the_frames_show(toy_dir):
    for row in toy_rows(toy_dir):
        frames, times, _ = video.read_video(row["video"], VideoConfig(), row["id"])
        if row["task"] == "tvg":
            colour = row["question"].split()[3]  # "When is the {colour} {kind} visible?"
        else:
            colour = row["options"][ord(row["answer"]) - ord("A")]
        seen = colour_masks(frames, colour).sum((1, 2)) > 10  # [T]: the shape (about 100 px of 32x32) is there
        assert seen.any() and not any(colour_masks(frames, c).sum() > 10 for c in toy.COLOURS if c != colour), row
        if row["task"] in ("tvg", "gqa"):
            start, end = row["segment"]
            assert seen.tolist() == [start <= t < end for t in times], row


def test_the_background_enters_the_vision_tower_as_zero(toy_dir):
    """The mid-grey background is the mean of the Qwen pixel normalisation: its patches are (nearly) zero, so a
    patch's values are those of the shape over it."""
    row = toy_rows(toy_dir)[0]
    frames, _, _ = video.read_video(row["video"], VideoConfig(), row["id"])
    corners = frames[:, [0, 0, -1, -1], [0, -1, 0, -1]]  # [T, 4, 3]: no shape ever reaches a corner
    normalised = (corners / 255.0 - np.array(video.CLIP_MEAN)) / np.array(video.CLIP_STD)
    assert np.abs(normalised).max() < 0.05


def test_out_of_domain_variant_has_longer_clips(tmp_path):
    toy.make_toy(str(tmp_path / "ood"), n=3, seed=0, n_test=3, durations=(10, 14))
    rows = schema.load_jsonl(str(tmp_path / "ood" / "test.jsonl"))
    assert len(rows) == 3 and all(10 <= r["duration"] <= 14 for r in rows)
    assert schema.load_jsonl(str(tmp_path / "ood" / "train.jsonl")) == []


def test_toy_tokenizer(toy_dir, toy_tok):
    text = 'Héllo {"start_time": 12.5} 你好\n\t<answer>12.5 to 17.0</answer>'
    assert toy_tok.decode(toy_tok(text, add_special_tokens=False)["input_ids"]) == text  # bytes: any text
    for token in toy.SPECIAL_TOKENS + toy.TAG_TOKENS:
        assert len(toy_tok(token, add_special_tokens=False)["input_ids"]) == 1
    assert (toy_tok.eos_token, toy_tok.pad_token) == ("<|im_end|>", "<|endoftext|>") and len(toy_tok) <= 1024
    assert toy.toy_tokenizer().get_vocab() == toy_tok.get_vocab()  # trained deterministically
    for row in toy_rows(toy_dir):
        assert len(toy_tok(data.target_text(row))["input_ids"]) < 40  # short completions: fast CPU training


def test_toy_dataset_alone(tmp_path):
    """make_toy(n=4): the first n - n // 4 clips are the train split, the rest the test split."""
    toy.make_toy(str(tmp_path / "t"), n=4, seed=3)
    assert len(schema.load_jsonl(str(tmp_path / "t/train.jsonl"))) == 3
    assert len(schema.load_jsonl(str(tmp_path / "t/test.jsonl"))) == 1
    assert (tmp_path / "t/tokenizer/tokenizer.json").exists()
