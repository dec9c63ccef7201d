"""toy.py as worked examples: the synthetic clips show exactly what their rows say, and the tokenizer reads any text."""

import numpy as np
from transformers import PreTrainedTokenizerFast

import data
import toy
import video
from data import VideoConfig


def toy_rows(toy_dir):
    return data.load_jsonl(str(toy_dir / "train.jsonl")) + data.load_jsonl(str(toy_dir / "test.jsonl"))


def test_make_toy_layout_and_split(toy_dir, toy_tok):
    train, test = data.load_jsonl(str(toy_dir / "train.jsonl")), data.load_jsonl(str(toy_dir / "test.jsonl"))
    assert (len(train), len(test)) == (5, 1)  # n=6: the last n//4 clips are the test split
    assert sorted(p.name for p in (toy_dir / "videos").iterdir()) == [f"toy_{i:05d}.mp4" for i in range(6)]
    assert [r["task"] for r in train + test] == ["mcq", "tvg", "gqa"] * 2
    for r in train + test:
        assert 4 <= r["duration"] <= 8 and all(2 * x == int(2 * x) for x in r.get("segment", []))
    saved = PreTrainedTokenizerFast.from_pretrained(str(toy_dir / "tokenizer"))
    assert saved.get_vocab() == toy_tok.get_vocab() and saved.eos_token == "<|im_end|>"


def test_make_toy_is_deterministic_from_the_seed(tmp_path, toy_dir):
    a, b, c = (toy.make_toy(str(tmp_path / name), n=2, seed=seed)[0] for name, seed in [("a", 0), ("b", 0), ("c", 1)])
    assert open(a).read() == open(b).read() != open(c).read()
    ours = {r["id"]: r for r in toy_rows(toy_dir)}
    for r in data.load_jsonl(a):  # clip i depends on (seed, i) only, not on n
        assert {**r, "video": ""} == {**ours[r["id"]], "video": ""}
        frames = [video.read_video(path, VideoConfig())[0] for path in (r["video"], ours[r["id"]]["video"])]
        assert np.array_equal(*frames)


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
        masks = colour_masks(frames, colour)
        seen = masks.sum((1, 2)) > 30  # [T]
        if row["task"] in ("tvg", "gqa"):
            start, end = row["segment"]
            assert seen.tolist() == [start <= t < end for t in times], row
        if row["task"] == "mcq":
            xs = [np.nonzero(m)[1].mean() for m in masks if m.sum() > 30]  # centroid column per visible frame
            assert len(xs) >= 2 and (xs[-1] < xs[0]) == ("left" in row["question"]), row
        if row["task"] == "gqa":
            others = [c for c in toy.COLOURS if c != colour and colour_masks(frames, c).sum() > 30]
            first_seen = {c: times[int(np.argmax(colour_masks(frames, c).sum((1, 2)) > 30))] for c in others}
            earlier = all(start < t for t in first_seen.values())
            assert earlier == ("first" in row["question"]), row


def test_toy_tokenizer(toy_dir, toy_tok):
    text = 'Héllo {"start_time": 12.5} 你好\n\t<answer>12.5 to 17.0</answer>'
    assert toy_tok.decode(toy_tok(text, add_special_tokens=False)["input_ids"]) == text  # bytes: any text
    for token in toy.SPECIAL_TOKENS + toy.TAG_TOKENS:
        assert len(toy_tok(token, add_special_tokens=False)["input_ids"]) == 1
    assert (toy_tok.eos_token, toy_tok.pad_token) == ("<|im_end|>", "<|endoftext|>") and len(toy_tok) <= 1024
    assert toy.toy_tokenizer().get_vocab() == toy_tok.get_vocab()  # trained deterministically
    for row in toy_rows(toy_dir):
        assert len(toy_tok(data.target_text(row))["input_ids"]) < 40  # short completions: fast CPU training


def test_toy_command(tmp_path):
    toy.main(["--out", str(tmp_path / "t"), "--n", "4", "--seed", "3"])
    assert len(data.load_jsonl(str(tmp_path / "t/train.jsonl"))) == 3
    assert len(data.load_jsonl(str(tmp_path / "t/test.jsonl"))) == 1
    assert (tmp_path / "t/tokenizer/tokenizer.json").exists()
