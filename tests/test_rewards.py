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
# ground truth of real annotations, times as published
AT_THE_END = [24.3, 30.0]  # a moment that ends where its 30 s video ends
CHARADES_FPJ9D = [25.8, 34.0]  # Charades-STA `FPJ9D 25.8 34.0##person sit on a chair.`: the video is 33.4 s
NEXTGQA_2435100235_7 = [[20.9, 22.7], [23.8, 26.0], [34.4, 35.8], [50.5, 57.5], [58.5, 63.6]]  # gsub_val.json
NEXTGQA_2482028659_2 = [[0.0, 6.1], [9.2, 21.5]]  # gsub_val.json: duration 21, the video 21.45 s
GQA_SPANS = dict(GQA, segment=NEXTGQA_2435100235_7, duration=63.6)


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
    """Every accepted span form ('12.5 to 17.0', '12.5-17.0', '[12.5, 17.0]', the release's JSON, 'mm:ss - mm:ss')
    reads as (start, end) in seconds; the hostile ones give None."""
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


@pytest.mark.parametrize("pred, gt, iou, iop", [
    ((12.5, 17.0), (10, 20), 4.5 / 10, 1.0),  # inside: IoU = 4.5 / 10
    ((15, 25), (10, 20), 5 / 15, 5 / 10),  # overlap 5, union 15
    ((25, 35), (10, 20), 0.0, 0.0),  # disjoint
    ((10, 20), (10, 20), 1.0, 1.0),
    ((25, 40), AT_THE_END, 5 / 15.7, 5 / 15),  # past the video's 30 s: not clipped (clipped would be 0.877)
    ((25, 25), AT_THE_END, 0.0, 1.0),  # zero length inside the span: IoP 1, IoU 0
    ((30, 30), AT_THE_END, 0.0, 1.0),  # ... the span's ends included
    ((31, 31), AT_THE_END, 0.0, 0.0),  # ... outside: 0
    ((25.8, 33.4), CHARADES_FPJ9D, 7.6 / 8.2, 1.0),  # a ground truth past the video's end: as published
    ((0, 25.1), (-0.1, 25.1), 25.1 / 25.2, 1.0),  # a ground truth starting before 0 (NExT-GQA test) as published
    ((20.9, 63.6), NEXTGQA_2435100235_7, 7.0 / 42.7, 7.0 / 42.7),  # max over 5 spans: [50.5, 57.5] (hull: 1.0)
    ((50.0, 60.0), NEXTGQA_2435100235_7, 7.0 / 10.0, 7.0 / 10.0),  # the best span for IoU and for IoP
    ((5.0, 12.0), NEXTGQA_2482028659_2, 2.8 / 16.5, 2.8 / 7.0),  # [9.2, 21.5] beats [0.0, 6.1] (1.1 / 12, 1.1 / 7)
    ((0.5, 3.0), [[0, 1], [2, 10]], 0.5 / 3, 1 / 2.5),  # the max IoU from [0, 1], the max IoP from [2, 10]
    ((5.0, 8.0), NEXTGQA_2482028659_2, 1.1 / 8.0, 1.1 / 3.0),
    ((3.0, 3.0), NEXTGQA_2482028659_2, 0.0, 1.0),
    ((7.0, 7.0), NEXTGQA_2482028659_2, 0.0, 0.0),  # between the spans
    (None, (10, 20), 0.0, 0.0),  # unparseable
])
def test_iou_iop(pred, gt, iou, iop):
    """IoU and IoP on the raw times; several spans: the max over them (NExT-GQA's eval_ground)."""
    assert temporal_iou(pred, gt) == pytest.approx(iou, abs=1e-12)
    assert temporal_iop(pred, gt) == pytest.approx(iop, abs=1e-12)
    assert round(temporal_iou((25, 40), AT_THE_END), 3) == 0.318  # the official number
    assert round(temporal_iou((20.9, 63.6), NEXTGQA_2435100235_7), 3) == 0.164


def official_iou(gt, pred):
    """Temporal-R1's `eval_tvg` and lmms-eval's Charades-STA `iou(A, B)`, in words: the overlap of the two spans,
    floored at 0, divided by the distance from the earlier start to the later end."""
    return max(min(gt[1], pred[1]) - max(gt[0], pred[0]), 0) / (max(gt[1], pred[1]) - min(gt[0], pred[0]))


def official_get_tiou(loc, span):
    """NExT-GQA's `eval_ground.get_tIoU(loc, span)` (loc: a ground-truth span, span: the prediction) -> (IoU, IoP),
    in words: a zero-length prediction scores IoU 0 and IoP 1 if loc[0] <= it <= loc[1], else 0; otherwise the
    overlap (NOT floored at 0) over the distance from the earlier start to the later end, and over the prediction's
    length."""
    if span[0] == span[1]:
        return 0, int(loc[0] <= span[0] <= loc[1])
    overlap = min(loc[1], span[1]) - max(loc[0], span[0])
    return overlap / (max(loc[1], span[1]) - min(loc[0], span[0])), overlap / (span[1] - span[0])


def official_question(locs, span):
    """NExT-GQA's eval_ground per question: the largest IoU and the largest IoP over the spans, each starting at 0
    (which is what floors a negative overlap)."""
    best_iou = best_iop = 0
    for loc in locs:
        iou, iop = official_get_tiou(loc, span)
        best_iou, best_iop = max(best_iou, iou), max(best_iop, iop)
    return best_iou, best_iop


def test_iou_iop_equal_the_official_formulas_on_random_spans():
    """2000 random predictions (overshooting the video, zero-length, disjoint) against random one- and
    several-span ground truths, times on a 0.1 s grid as annotations and answers write them: equal to 1e-12."""
    rng = random.Random(0)

    def tenth(lo, hi):
        return round(rng.uniform(lo, hi), 1)

    for _ in range(2000):
        duration = tenth(5, 60)
        gt = sorted({(a, b) for a, b in (sorted((tenth(-0.2, duration + 1), tenth(0, duration + 1)))
                                         for _ in range(rng.randint(1, 5))) if a < b}) or [(1.0, 2.0)]
        start = tenth(0, duration + 10)
        pred = (start, start if rng.random() < 0.2 else tenth(start, duration + 20))
        gt_field = [list(s) for s in gt] if len(gt) > 1 else list(gt[0])
        iou, iop = official_question(gt, pred)
        assert temporal_iou(pred, gt_field) == pytest.approx(iou, abs=1e-12)
        assert temporal_iop(pred, gt_field) == pytest.approx(iop, abs=1e-12)
        if len(gt) == 1 and pred[0] < pred[1]:
            assert temporal_iou(pred, gt_field) == pytest.approx(official_iou(gt[0], pred), abs=1e-12)


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
    # tvg: accuracy = IoU with [10, 20] (the video: 30 s)
    ("<think>x</think><answer>12.5 to 17.0</answer>", TVG, r(0.5 * 0.45 + 0.5, 1.0, 0.45, 0.45)),
    ("<think>x</think><answer>12.5-17.0</answer><|endoftext|>", TVG, r(0.725, 1.0, 0.45, 0.45)),
    ('<think>x</think><answer>{"start_time": "15", "end_time": "25"}</answer>', TVG,
     r(0.5 / 3 + 0.5, 1.0, 1 / 3, 1 / 3)),
    ("<think>x</think><answer>[15, 40]</answer>", TVG, r(0.5 / 6 + 0.5, 1.0, 1 / 6, 1 / 6)),  # 5 / 30, not clipped
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
    # gqa with several ground-truth spans (NExT-GQA 2435100235 qid 7): IoU is the best span's, 7 / 42.7
    ("<think>x</think><answer>B, 20.9 to 63.6</answer>", GQA_SPANS, r(0.5 * (1 + 7 / 42.7) / 2 + 0.5, 1.0,
                                                                      (1 + 7 / 42.7) / 2, 7 / 42.7)),
    ("<think>x</think><answer>B, 50.5 to 57.5</answer>", GQA_SPANS, r(1.0, 1.0, 1.0, 1.0)),
])
def test_score_table(completion, sample, expected):
    """The whole dual reward, one completion at a time: total = 0.5 * accuracy + 0.5 * format, where accuracy is
    the option's correctness (mcq), the temporal IoU with the ground truth (tvg), or their mean (gqa; with several
    spans, the best span's IoU); a span past the video is not clipped, a reversed or non-finite one scores IoU 0."""
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


def test_answer_only_reward_scores_gqa_on_its_option_alone():
    # gt B, [10, 20]; the answer: B, [15, 25] -> IoU 5 / 15 = 1/3
    completion = "<think>x</think><answer>B, 15.0 to 25.0</answer>"
    dual, answer_only = score(completion, GQA), score(completion, GQA, dual=False)
    assert dual.accuracy == pytest.approx((1 + 1 / 3) / 2) and dual.total == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert answer_only.accuracy == 1.0 and answer_only.total == 1.0 and answer_only.iou == pytest.approx(1 / 3)
    mcq = "<think>x</think><answer>B</answer>"
    assert score(mcq, MCQ, dual=False) == score(mcq, MCQ)  # only gqa has two parts


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
        for sample in (MCQ, TVG, GQA, GQA_SPANS):
            got = score(c, sample)
            for v in (getattr(got, k) for k in NUMBERS):
                assert type(v) is float and math.isfinite(v) and 0.0 <= v <= 1.0, (c[:200], got)
