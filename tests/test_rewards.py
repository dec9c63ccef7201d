"""Reward worked examples: literal completions in, parses and scores out (IoUs by hand), then a fuzz test."""

import math
import random

import pytest

from rewards import (ANSWER_FORMATS, MAX_ANSWER_CHARS, format_reward, parse_answer, parse_gqa,
                     parse_option, parse_segment, score, temporal_iop, temporal_iou)

OPTIONS = ["a dog runs", "a cat sleeps", "a bird sings", "a fish swims"]
MCQ = {"task": "mcq", "options": OPTIONS, "answer": "B"}
TVG = {"task": "tvg", "segment": [10.0, 20.0], "duration": 30.0}
GQA = {"task": "gqa", "options": OPTIONS, "answer": "B", "segment": [10.0, 20.0], "duration": 30.0}


@pytest.mark.parametrize("text, expected", [
    ("<think>x</think><answer>B</answer>", "B"),
    ("<answer> 12.5 to 17.0 \n</answer><|im_end|>", "12.5 to 17.0"),
    ("<answer>A</answer> then <answer>C</answer>", "C"),  # the last one
    ("<answer><answer>D</answer>", "D"),
    ("<answer></answer>", ""),
    ("<answer>B", None),
    ("B</answer>", None),
    ("</answer><answer>", None),
    ("no tags at all", None),
])
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected


@pytest.mark.parametrize("text, options, expected", [
    ("B", None, "B"),
    ("(B)", None, "B"),
    ("B.", None, "B"),
    ("B) a cat sleeps", OPTIONS, "B"),
    ("B. because it is lying still", OPTIONS, "B"),
    ("(B) a cat sleeps", OPTIONS, "B"),
    ("Answer: B", None, "B"),
    ("The answer is (B)", OPTIONS, "B"),
    ("a cat sleeps", OPTIONS, "B"),  # the exact text of an option
    ("  A Cat   sleeps. ", OPTIONS, "B"),  # case, spacing and a final period aside
    ("a cat sleeps", None, None),  # option text without the options
    ("B) a dog runs", OPTIONS, None),  # letter and text disagree: ambiguous
    ("A or B", OPTIONS, None),
    ("A, B", OPTIONS, None),
    ("E", OPTIONS, None),  # past the last of 4 options
    ("E", None, "E"),
    ("b", OPTIONS, None),  # lower case is not a letter answer
    ("a cat", OPTIONS, None),
    ("same", ["same", "same"], None),  # two options with the same text
    ("", OPTIONS, None),
    (None, OPTIONS, None),
])
def test_parse_option(text, options, expected):
    assert parse_option(text, options) == expected


@pytest.mark.parametrize("text, expected", [
    ("12.5 to 17.0", (12.5, 17.0)),
    ("12.5 To 17", (12.5, 17.0)),
    ("12.5-17.0", (12.5, 17.0)),
    (" 12.5 - 17.0 ", (12.5, 17.0)),
    ("[12.5, 17.0]", (12.5, 17.0)),
    ('{"start_time": 12.5, "end_time": 17.0}', (12.5, 17.0)),
    ('{"start_time": "12.5", "end_time": "17.0"}', (12.5, 17.0)),  # the Temporal-R1 release's format
    ("00:12.5 - 00:17", (12.5, 17.0)),
    ("01:02 to 01:10.5", (62.0, 70.5)),
    ("3 to 3", (3.0, 3.0)),  # zero length is a segment
    ("17.0 to 12.5", None),  # start > end
    ("-1 to 2", None),
    ('{"start_time": -1, "end_time": 2}', None),
    ("nan to inf", None),
    ('{"start_time": NaN, "end_time": 1}', None),
    ('{"start_time": 1, "end_time": Infinity}', None),
    ('{"start_time": "nan", "end_time": "1"}', None),
    ('{"start_time": 1, "end_time": 1e999}', None),  # json reads inf
    ('{"start_time": 0, "end_time": 1' + "0" * 400 + "}", None),  # int too large for a float
    ("0 to " + "9" * 400, None),  # float() gives inf
    ('{"start_time": true, "end_time": 2}', None),
    ('{"start_time": 1}', None),
    ("[1, 2", None),
    ("00:75 - 01:20", None),  # mm:ss with 75 seconds
    ("from 12.5 to 17.0 seconds", None),  # only the forms above
    ("12.5", None),
    ("", None),
    (None, None),
    ("1 to " + " " * MAX_ANSWER_CHARS + "2", None),  # longer than MAX_ANSWER_CHARS: not parsed
])
def test_parse_segment(text, expected):
    assert parse_segment(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("B, 12.5 to 17.0", ("B", (12.5, 17.0))),  # ANSWER_FORMATS["gqa"]
    ("B, [12.5, 17.0]", ("B", (12.5, 17.0))),
    ("(B) a cat sleeps; 12.5-17.0", ("B", (12.5, 17.0))),
    ('Answer: B {"start_time": "1", "end_time": "2"}', ("B", (1.0, 2.0))),
    ("B", ("B", None)),  # partial answers keep their part
    ("12.5 to 17.0", (None, (12.5, 17.0))),
    ("E, 1 to 2", (None, (1.0, 2.0))),
    ("B, 17 to 12", (None, None)),
])
def test_parse_gqa(text, expected):
    assert parse_gqa(text, OPTIONS) == expected


@pytest.mark.parametrize("pred, gt, duration, iou, iop", [
    ((12.5, 17.0), (10, 20), None, 4.5 / 10, 1.0),  # inside: IoU = 4.5 / 10
    ((15, 25), (10, 20), None, 5 / 15, 5 / 10),  # overlap 5, union 15
    ((15, 40), (10, 20), None, 5 / 30, 5 / 25),
    ((15, 40), (10, 20), 30.0, 5 / 20, 5 / 15),  # clipped to [15, 30]
    ((25, 35), (10, 20), 30.0, 0.0, 0.0),  # disjoint
    ((10, 20), (10, 20), None, 1.0, 1.0),
    ((12, 12), (10, 20), None, 0.0, 0.0),  # zero-length prediction
    ((3, 3), (3, 3), None, 0.0, 0.0),  # zero union: no division by zero
    ((40, 50), (10, 20), 30.0, 0.0, 0.0),  # clipped to [30, 30]
    (None, (10, 20), 30.0, 0.0, 0.0),  # unparseable
])
def test_iou_iop(pred, gt, duration, iou, iop):
    assert temporal_iou(pred, gt, duration) == pytest.approx(iou, abs=1e-12)
    assert temporal_iop(pred, gt, duration) == pytest.approx(iop, abs=1e-12)


@pytest.mark.parametrize("completion, expected", [
    ("<think>x</think><answer>B</answer>", 1.0),
    ("  <think>\nx\n</think>\n\n<answer>B</answer>\n", 1.0),
    ("<think>x</think><answer>B</answer><|im_end|>", 1.0),  # decoded with its EOS token
    ("<think>x</think><answer>B</answer>\n<|endoftext|><|endoftext|> ", 1.0),  # and padding
    ("<think></think><answer></answer>", 1.0),
    ("<think>x</think><answer>B</answer>.", 0.0),  # text outside the tags
    ("Sure! <think>x</think><answer>B</answer>", 0.0),
    ("<think>x</think> so <answer>B</answer>", 0.0),
    ("<answer>B</answer><think>x</think>", 0.0),  # wrong order
    ("<think><answer></think></answer>", 0.0),  # interleaved
    ("<think>x</think><answer>A</answer><answer>B</answer>", 0.0),  # two answers
    ("<think>a <think> b</think><answer>B</answer>", 0.0),  # nested
    ("<answer>B</answer>", 0.0),
    ("<think>x</think><answer>B</answer><|im_end|>more", 0.0),
    ("", 0.0),
])
def test_format_reward(completion, expected):
    assert format_reward(completion) == expected


NUMBERS = ("total", "format", "accuracy", "iou", "iop")  # the float fields of a Reward


def r(total, fmt, accuracy, iou):
    return (pytest.approx(total, abs=1e-9), fmt, pytest.approx(accuracy, abs=1e-9), pytest.approx(iou, abs=1e-9))


@pytest.mark.parametrize("completion, sample, expected", [
    # mcq: accuracy 0/1, total = 0.5 accuracy + 0.5 format
    ("<think>the cat lies still</think><answer>B</answer>", MCQ, r(1.0, 1.0, 1.0, 0.0)),
    ("<think>x</think>\n<answer>(B)</answer><|im_end|>", MCQ, r(1.0, 1.0, 1.0, 0.0)),
    ("<think>x</think><answer>Answer: B</answer>", MCQ, r(1.0, 1.0, 1.0, 0.0)),
    ("<think>x</think><answer>a cat sleeps</answer>", MCQ, r(1.0, 1.0, 1.0, 0.0)),
    ("<think>x</think><answer>A</answer>", MCQ, r(0.5, 1.0, 0.0, 0.0)),
    ("<think>x</think><answer>A or B</answer>", MCQ, r(0.5, 1.0, 0.0, 0.0)),
    ("<think>x</think><answer>E</answer>", MCQ, r(0.5, 1.0, 0.0, 0.0)),
    ("<answer>B</answer>", MCQ, r(0.5, 0.0, 1.0, 0.0)),
    ("<think>x</think><answer>B</answer> I hope", MCQ, r(0.5, 0.0, 1.0, 0.0)),
    ("B", MCQ, r(0.0, 0.0, 0.0, 0.0)),
    # tvg: accuracy = IoU with [10, 20], duration 30
    ("<think>x</think><answer>12.5 to 17.0</answer>", TVG, r(0.5 * 0.45 + 0.5, 1.0, 0.45, 0.45)),
    ("<think>x</think><answer>12.5-17.0</answer><|endoftext|>", TVG, r(0.725, 1.0, 0.45, 0.45)),
    ('<think>x</think><answer>{"start_time": "15", "end_time": "25"}</answer>', TVG,
     r(0.5 / 3 + 0.5, 1.0, 1 / 3, 1 / 3)),
    ("<think>x</think><answer>[15, 40]</answer>", TVG, r(0.625, 1.0, 0.25, 0.25)),  # clipped to [15, 30]
    ("<think>x</think><answer>00:10 - 00:20</answer>", TVG, r(1.0, 1.0, 1.0, 1.0)),
    ("<think>x</think><answer>17.0 to 12.5</answer>", TVG, r(0.5, 1.0, 0.0, 0.0)),
    ("<think>x</think><answer>nan to inf</answer>", TVG, r(0.5, 1.0, 0.0, 0.0)),
    ("<answer>10 to 20</answer>", TVG, r(0.5, 0.0, 1.0, 1.0)),
    # gqa: accuracy = (letter right + IoU) / 2
    ("<think>x</think><answer>B, 12.5 to 17.0</answer>", GQA, r(0.5 * 0.725 + 0.5, 1.0, 0.725, 0.45)),
    ("<think>x</think><answer>A, 10 to 20</answer>", GQA, r(0.75, 1.0, 0.5, 1.0)),
    ("<think>x</think><answer>B</answer>", GQA, r(0.75, 1.0, 0.5, 0.0)),
    ("<think>x</think><answer>(B) a cat sleeps; [10, 20]</answer>", GQA, r(1.0, 1.0, 1.0, 1.0)),
    ("<think>x</think><answer>20 to 10, B</answer>", GQA, r(0.5, 1.0, 0.0, 0.0)),
])
def test_score_table(completion, sample, expected):
    got = score(completion, sample)
    assert (got.total, got.format, got.accuracy, got.iou) == expected
    assert all(type(getattr(got, k)) is float for k in NUMBERS)


@pytest.mark.parametrize("completion, sample, read", [
    # (option, segment, right, parsed, iop): what score() read, carried on the Reward for eval and selection
    ("<think>x</think><answer>(B)</answer>", MCQ, ("B", None, True, True, 0.0)),
    ("<think>x</think><answer>maybe</answer>", MCQ, (None, None, False, False, 0.0)),
    ("<think>x</think><answer>12 to 16</answer>", TVG, (None, (12.0, 16.0), False, True, 1.0)),
    ("<think>x</think><answer>A, 15 to 25</answer>", GQA, ("A", (15.0, 25.0), False, True, 0.5)),
    ("<think>x</think><answer>B</answer>", GQA, ("B", None, True, False, 0.0)),  # no segment: not fully parsed
])
def test_reward_carries_what_it_read(completion, sample, read):
    got = score(completion, sample)
    assert (got.option, got.segment, got.right, got.parsed, got.iop) == read


def test_weights_and_unknown_task():
    c = "<think>x</think><answer>12.5 to 17.0</answer>"
    assert score(c, TVG, w_accuracy=1.0, w_format=0.0).total == pytest.approx(0.45)
    assert score(c, TVG, w_accuracy=2.0, w_format=0.25).total == pytest.approx(2 * 0.45 + 0.25)
    with pytest.raises(ValueError):
        score(c, {"task": "caption"})


@pytest.mark.parametrize("sample", [MCQ, TVG, GQA])
def test_answer_formats_score_full_marks(sample):
    """The targets data.py writes (ANSWER_FORMATS) parse back to the ground truth: total 1 for an exact answer."""
    start, end = sample.get("segment", (None, None))
    answer = ANSWER_FORMATS[sample["task"]].format(letter=sample.get("answer"), start=start, end=end)
    assert score(f"<think>reasoning</think><answer>{answer}</answer><|im_end|>", sample).total == 1.0


HOSTILE = [
    "<answer>" * 200_000,
    "</answer>" * 200_000,
    "<think>" + "a" * 1_000_000 + "</think><answer>12.5 to 17.0</answer>",
    "<answer>" + "1" * 100_000 + "</answer>",  # quadratic for the range regex if it were not capped
    "<answer>" + "1" * (MAX_ANSWER_CHARS - 1) + "x</answer>",
    "<answer>" + "0:" * 499 + "</answer>",
    "<answer>" + "1, " * 333 + "</answer>",  # many gqa split points
    "<answer>B" + " 1" * 499 + "</answer>",
    "<answer>B" + " 1" * 300_000 + "</answer>",  # quadratic gqa splitting if answers were not capped
    '<answer>{"start_time": ' + "[" * 980 + "</answer>",  # deep JSON
    "<answer>" + "{" * 999 + "</answer>",
    "<answer>" + "(" * 999 + "</answer>",
    "<|im_end|> " * 100_000,
    "<think>x</think><answer>B</answer>" + "<|im_end|>\n" * 100_000,
    "\u202e<think>漢字</think><answer>Ⅻ.5 to １７</answer>",  # unicode digits are not \d here
    "\x00" * 10_000 + "<answer>\x00</answer>",
    "",
]


def random_completion(rng):
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "<|im_end|>", "<|endoftext|>", "A", "B", "(B)",
              "E", " ", "\n", ",", ";", "to", "-", ":", "12.5", "17", "0", "00:", "nan", "inf", "-1", "1e999",
              "9" * 400, "{", "}", '"start_time"', '"end_time"', '"', "[", "]", "Answer:", "a cat sleeps", "é", "漢",
              "\u202e", "\x00", "\ud800"]
    kind = rng.random()
    if kind < 0.6:
        return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
    if kind < 0.8:
        return "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(0, 60)))
    a, b = (rng.choice([rng.uniform(-1e3, 1e3), math.nan, math.inf, -math.inf, 0.0]) for _ in range(2))
    body = rng.choice([f"{a} to {b}", f"{a}-{b}", f"[{a}, {b}]", f'{{"start_time": {a}, "end_time": {b}}}',
                       f'{{"start_time": "{a}", "end_time": "{b}"}}', f"B, {b} to {a}"])
    return f"<think>{rng.random()}</think><answer>{body}</answer>"


def test_fuzz_scores_are_finite_and_in_range():
    """Thousands of random and hostile completions: every score is a finite float in [0, 1]."""
    rng = random.Random(0)
    completions = HOSTILE + [random_completion(rng) for _ in range(3000)]
    for c in completions:
        for sample in (MCQ, TVG, GQA):
            got = score(c, sample)
            for v in (getattr(got, k) for k in NUMBERS):
                assert type(v) is float and math.isfinite(v) and 0.0 <= v <= 1.0, (c[:200], got)
