"""Rewards: parse a completion, score it against a schema row (pure Python: re, json, math).

The paper's dual reward (Temporal-RLT, arXiv 2506.01908): a discrete reward for semantic answers (the
chosen option is right or wrong) and a continuous one for temporal answers (the IoU of the predicted and the
true segment), each added to a format reward:

    total = w_accuracy * accuracy + w_format * format        (defaults 0.5 and 0.5, as in the Temporal-R1 release)

    task  the model writes                      accuracy                          iou
    mcq   <answer>B</answer>                    1 if the letter is right, else 0  0 (no segment)
    tvg   <answer>12.5 to 17.0</answer>         IoU(pred, gt)                     IoU(pred, gt)
    gqa   <answer>B, 12.5 to 17.0</answer>      (1[letter right] + IoU) / 2       IoU(pred, gt)

IoU is taken on the raw predicted and ground-truth times, the prediction not clipped to the video, and with several
ground-truth spans (NExT-GQA) it is the max over them: exactly the IoU of the official evaluations (temporal_iou), so
a prediction that runs past the end of the moment, or of the video, pays for it in the reward as in the benchmark.
format is 1 when the completion is exactly `<think>...</think><answer>...</answer>` (see format_reward).

style="temporal_r1" (`--prompt-style temporal_r1`) scores grounding as the Temporal-R1 release does, and only
grounding (the release publishes no other reward; mcq and gqa keep the table above):

    tvg   <answer>{"start_time": "12.5", "end_time": "17.0"}</answer>   accuracy = iou = IoU(pred, gt)

where format is 1 only for the release's full match (release_format_reward: quoted numbers, nothing else in the
answer) and the segment is read by that same pattern (release_segment), so `<answer>12.5 to 17.0</answer>` scores
format 0 and IoU 0 there, as the release's evaluation scores it.

Every part lies in [0, 1], so total lies in [0, w_accuracy + w_format] = [0, 1] with the defaults; every field
is a python float. score() never raises on a completion: any string gets a finite total. An unparseable answer
scores 0 accuracy and 0 IoU (as the release's grounding evaluation does).

TASKS and ANSWER_FORMATS below are defined here once: data.py builds its instructions and the SFT targets from
them. Times are written in seconds with one decimal (frames are sampled at 2 fps, so 0.1 s is finer than anything
the model can see). A Reward carries what was read (option, segment, right, iop), so eval.py and select_data.py
read every answer through score() and nothing parses an answer twice.

Hostile inputs: parse_answer and format_reward use only linear-time string methods (find/rfind/count), and the
regular expressions only ever see an answer of at most MAX_ANSWER_CHARS characters (a longer one is not
parsed: None), so no input, however long or crafted, makes the reward slow. The one exception, the release's
pattern (_RELEASE_TAIL), reads whole completions but cannot backtrack: its runs of whitespace and of digits never
take the same character, and an attempt at one `</think>` cannot reach the next, so it is linear too.
"""

import json
import math
import re
from dataclasses import dataclass

TASKS = ("mcq", "tvg", "gqa")  # multiple-choice VideoQA, temporal grounding, grounded VideoQA
ANSWER_FORMATS = {
    "mcq": "{letter}",  # B
    "tvg": "{start:.1f} to {end:.1f}",  # 12.5 to 17.0
    "gqa": "{letter}, {start:.1f} to {end:.1f}",  # B, 12.5 to 17.0
}
MAX_ANSWER_CHARS = 1000  # longer answers are not parsed (bounds all regex work)
EOS_TEXTS = ("<|im_end|>", "<|endoftext|>")  # end-of-sequence texts a decoded completion may end with
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
STYLES = ("vrl", "temporal_r1")  # answer formats: ours (the table above), the Temporal-R1 release's (tvg)

_PREFIX = re.compile(r"(?:the\s+)?(?:answer|option)(?:\s+is)?\s*:?\s*", re.I)  # "Answer: ", "The answer is "
_LETTER = re.compile(r"\(?([A-Z])\)?\.?")  # B, (B), B.
_LETTER_TEXT = re.compile(r"\(?([A-Z])[.):]\s*(.+)", re.S)  # B) text, B. text, (B) text, B: text
_NUM = r"\d+(?:\.\d+)?"  # unsigned: negative times, nan and inf never match
_TIME = rf"(?:(\d+):)?({_NUM})"  # seconds, or mm:ss
_RANGE = re.compile(rf"{_TIME}\s*(?:-|to)\s*{_TIME}", re.I)  # 12.5 to 17.0, 12.5-17.0, 00:12.5 - 00:17
_PAIR = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*\]")  # [12.5, 17.0]
_GQA_SEP = re.compile(r"[,;\s]+")  # between the letter and the segment of a gqa answer
_GQA_MAX_SPLITS = 64
# The release's grounding answer after its think: `</think>`, then the answer holding exactly one JSON object of two
# quoted times, whitespace allowed between the parts (the release matches `<think>.*?` + this, in full, DOTALL).
_QUOTED = r'"([\d.]+)"'
_RELEASE_TAIL = re.compile(rf'</think>\s*<answer>\s*{{\s*"start_time"\s*:\s*{_QUOTED}\s*,\s*"end_time"\s*:\s*'
                           rf'{_QUOTED}\s*}}\s*</answer>')


@dataclass
class Reward:
    total: float  # w_accuracy * accuracy + w_format * format
    format: float  # 0 or 1
    accuracy: float  # in [0, 1]
    iou: float  # temporal_iou in [0, 1]; 0 for mcq
    iop: float  # temporal_iop, |pred ∩ gt| / |pred| in [0, 1]; 0 for mcq
    option: str | None = None  # the option letter read (mcq, gqa), None if absent or unreadable
    segment: tuple | None = None  # the (start, end) read (tvg, gqa), None if absent or unreadable
    right: bool = False  # the option read is the answer (mcq, gqa)
    parsed: bool = False  # every part the task asks for was read


def parse_answer(text):
    """The content of the last `<answer>...</answer>`, stripped of surrounding whitespace; None if absent."""
    close = text.rfind("</answer>")
    start = text.rfind("<answer>", 0, max(close, 0))
    if close < 0 or start < 0:
        return None
    return text[start + len("<answer>"):close].strip()


def _norm(s):
    return " ".join(s.split()).casefold().rstrip(".")


def _option_by_text(text, options):
    """The letter of the one option whose text equals `text` (case and spacing aside); None if none or several."""
    hits = [i for i, o in enumerate(options) if _norm(o) == _norm(text)]
    return chr(ord("A") + hits[0]) if len(hits) == 1 else None


def parse_option(text, options=None):
    """An option letter from an answer, or None when absent or ambiguous.

    Accepted: `B`, `(B)`, `B.`, `B) text`, `B. text`, `B: text`, each optionally after `Answer:` or
    `The answer is`; with `options` given, also the exact text of one option (case and spacing aside).
    Letters are upper case; with `options` a letter past the last option is None, and so is `B) text` when
    `text` is another option's text. `A or B`, `A, B` and the like match nothing: None.
    """
    if text is None or len(text) > MAX_ANSWER_CHARS:
        return None
    text = text.strip()
    if options and (letter := _option_by_text(text, options)):
        return letter
    prefix = _PREFIX.match(text)
    text = text[prefix.end():] if prefix else text
    if m := _LETTER.fullmatch(text):
        letter = m.group(1)
    elif m := _LETTER_TEXT.fullmatch(text):
        letter, rest = m.groups()
        named = _option_by_text(rest, options) if options else None
        if named and named != letter:
            return None
    elif options:
        return _option_by_text(text, options)
    else:
        return None
    if options and ord(letter) - ord("A") >= len(options):
        return None
    return letter


def _json_time(v):
    """A JSON start/end value as seconds: a number, or a string holding an unsigned decimal; else None."""
    if isinstance(v, str) and re.fullmatch(_NUM, v.strip()):
        return float(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        try:
            return float(v)
        except OverflowError:  # an integer too large for a float
            return None
    return None


def parse_segment(text):
    """`(start, end)` in seconds from a temporal answer, or None.

    Accepted (whitespace aside, the whole text must be one of these):
        12.5 to 17.0     12.5-17.0     [12.5, 17.0]     00:12.5 - 00:17   (mm:ss, seconds < 60)
        {"start_time": 12.5, "end_time": 17.0}   {"start_time": "12.5", "end_time": "17.0"}
    None for anything else, including NaN/inf, negative times, start > end, and texts over MAX_ANSWER_CHARS.
    """
    if text is None or len(text) > MAX_ANSWER_CHARS:
        return None
    text = text.strip()
    if m := _RANGE.fullmatch(text):
        m1, s1, m2, s2 = m.groups()
        if (m1 and float(s1) >= 60) or (m2 and float(s2) >= 60):
            return None
        start = 60 * float(m1 or 0) + float(s1)
        end = 60 * float(m2 or 0) + float(s2)
    elif m := _PAIR.fullmatch(text):
        start, end = float(m.group(1)), float(m.group(2))
    elif text.startswith("{"):
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(obj, dict):
            return None
        start, end = _json_time(obj.get("start_time")), _json_time(obj.get("end_time"))
        if start is None or end is None:
            return None
    else:
        return None
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start <= end):
        return None
    return start, end


def parse_gqa(text, options=None):
    """`(letter, segment)` from a grounded-QA answer `B, 12.5 to 17.0` (ANSWER_FORMATS["gqa"]); each may be None.

    The answer is split at a run of `,`, `;` or whitespace; the leftmost split whose right side parses as a
    segment (any parse_segment form) wins and its left side goes to parse_option, so `B, [12.5, 17.0]`,
    `(B) the dog; 12.5-17.0` and `Answer: B {"start_time": 1, "end_time": 2}` all work. With no such split the
    whole answer is tried as a letter and as a segment alone (partial credit). At most 64 splits are tried.
    """
    if text is None or len(text) > MAX_ANSWER_CHARS:
        return None, None
    text = text.strip()
    for i, sep in enumerate(_GQA_SEP.finditer(text)):
        if i == _GQA_MAX_SPLITS:
            break
        segment = parse_segment(text[sep.end():])
        if segment is not None:
            return parse_option(text[:sep.start()], options), segment
    return parse_option(text, options), parse_segment(text)


def gt_spans(segment):
    """The ground-truth spans of a schema row's `segment` -> [(start, end), ...].

    A segment is one span `[start, end]` or a list of spans `[[start, end], ...]` (a question with several
    ground-truth moments, as NExT-GQA annotates them).
    """
    if segment and isinstance(segment[0], (list, tuple)):
        return [tuple(span) for span in segment]
    return [tuple(segment)]


def _iou_iop(pred, span):
    """(IoU, IoP) of a predicted (start, end) and one ground-truth span, both as given (neither clipped to the video).

        inter = max(0, min(pe, ge) - max(ps, gs))
        IoU   = inter / (max(pe, ge) - min(ps, gs))     overlapping spans: the hull is the union; disjoint: 0 / hull
        IoP   = inter / (pe - ps)                        the share of the prediction inside the span

    A zero-length prediction (ps == pe) has IoU 0, and IoP 1 when it lies in the span (ends included), else 0.
    """
    (ps, pe), (gs, ge) = pred, span
    if ps == pe:
        return 0.0, float(gs <= ps <= ge)
    inter = max(0.0, min(pe, ge) - max(ps, gs))
    return float(inter / (max(pe, ge) - min(ps, gs))), float(inter / (pe - ps))


def temporal_iou(pred, gt):
    """Temporal IoU of a prediction and the ground truth `gt` (a segment: one span or several, see gt_spans): the max
    over the spans of |pred ∩ span| / |pred ∪ span| (_iou_iop), on the raw times. 0 for pred None.

    One span: Temporal-R1's reward and grounding evaluation (`eval_tvg`) and lmms-eval's Charades-STA `iou`. Several:
    NExT-GQA's evaluation (`eval_ground`), which keeps the largest IoU of get_tIoU over a question's spans.
    """
    return 0.0 if pred is None else max(_iou_iop(pred, span)[0] for span in gt_spans(gt))


def temporal_iop(pred, gt):
    """Temporal IoP (intersection over prediction), grounded QA's metric: the max over the spans of gt of
    |pred ∩ span| / |pred| on the raw times; a zero-length prediction inside a span has IoP 1. 0 for pred None.

    Equals NExT-GQA's evaluation (`eval_ground`): get_tIoU's IoP, the largest over a question's spans.
    """
    return 0.0 if pred is None else max(_iou_iop(pred, span)[1] for span in gt_spans(gt))


def _strip_eos(text):
    """The completion without trailing whitespace and end-of-sequence texts (EOS_TEXTS), in linear time."""
    end = len(text.rstrip())
    while eos := next((e for e in EOS_TEXTS if text.endswith(e, 0, end)), None):
        end -= len(eos)
        while end and text[end - 1].isspace():
            end -= 1
    return text[:end]


def format_reward(completion):
    """1.0 when the completion is exactly `<think>...</think>` then `<answer>...</answer>`, else 0.0.

    One of each tag, in that order, nothing outside them but whitespace. Trailing end-of-sequence texts
    (`<|im_end|>`, `<|endoftext|>`, any number, with whitespace) are stripped first: a completion decoded with its
    EOS token keeps its format reward.
    """
    text = _strip_eos(completion).strip()
    if any(text.count(tag) != 1 for tag in TAGS):
        return 0.0
    think, think_end, answer, answer_end = (text.find(tag) for tag in TAGS)
    ok = (think == 0 and think < think_end < answer < answer_end == len(text) - len("</answer>")
          and text[think_end + len("</think>"):answer].strip() == "")
    return float(ok)


def _drop_eos(text):
    """The text without the end-of-sequence texts it ends with (nothing else removed: the release decodes without
    special tokens and matches what is left as it is, whitespace included)."""
    while eos := next((e for e in EOS_TEXTS if text.endswith(e)), None):
        text = text[:-len(eos)]
    return text


def release_format_reward(completion):
    """The Temporal-R1 release's grounding format reward: 1.0 when the whole completion (end-of-sequence texts
    aside) is `<think>...</think>` then `<answer>{"start_time": "X", "end_time": "Y"}</answer>` with X, Y quoted
    runs of digits and dots, whitespace allowed only between the parts; else 0.0.

        <think>t</think><answer>{"start_time": "2.5", "end_time": "7.0"}</answer>      1.0
        <think>t</think><answer>{"start_time": 2.5, "end_time": 7.0}</answer>          0.0 (unquoted)
        <think>t</think><answer>2.5 to 7.0</answer>                                    0.0 (vrl's form)

    The release's full match of `<think>.*?` + _RELEASE_TAIL can only end at the last `</think>` (the tail holds
    none), so this checks the start and matches the tail from there: linear time, same answers.
    """
    text = _drop_eos(completion)
    last = text.rfind("</think>")
    return float(text.startswith("<think>") and last >= len("<think>") and bool(_RELEASE_TAIL.fullmatch(text, last)))


def release_segment(completion):
    """`(start, end)` read as the release's grounding evaluation reads it: its answer pattern searched in the
    completion (the first `<think>`, then the first tail after it), the two quoted times as floats, a reversed pair
    swapped; None when the pattern is absent or a time is not a number (`1.2.3`) - the release scores both IoU 0."""
    first = completion.find("<think>")
    m = _RELEASE_TAIL.search(completion, first + len("<think>")) if first >= 0 else None
    try:
        start, end = (float(t) for t in m.groups()) if m else (None, None)
    except ValueError:
        return None
    return None if start is None else (min(start, end), max(start, end))


def score(completion, sample, w_accuracy=0.5, w_format=0.5, dual=True, style="vrl"):
    """Reward of one completion for one schema row (`task`, `options`, `answer`, `segment`).

    total = w_accuracy * accuracy + w_format * format, in [0, w_accuracy + w_format] (see the module docstring
    for accuracy and iou per task). dual=False scores gqa on its option letter alone (accuracy = 1[right]; the IoU
    is still measured, not rewarded): the answer-only baseline of the dual reward. style="temporal_r1" reads and
    formats a tvg answer as the release does (release_segment, release_format_reward). Never raises on the
    completion; an unknown task or style is a ValueError.
    """
    task = sample["task"]
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} (expected one of {TASKS})")
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r} (expected one of {STYLES})")
    release = style == "temporal_r1" and task == "tvg"
    answer = parse_answer(completion)
    option = segment = None
    if task == "mcq":
        option = parse_option(answer, sample["options"])
    elif release:
        segment = release_segment(completion)
    elif task == "tvg":
        segment = parse_segment(answer)
    else:
        option, segment = parse_gqa(answer, sample["options"])
    right = option is not None and option == sample["answer"]
    iou = iop = 0.0
    if task != "mcq":
        iou, iop = temporal_iou(segment, sample["segment"]), temporal_iop(segment, sample["segment"])
    accuracy = {"mcq": float(right), "tvg": iou, "gqa": (float(right) + iou) / 2 if dual else float(right)}[task]
    parsed = (option is not None or task == "tvg") and (segment is not None or task == "mcq")
    fmt = release_format_reward(completion) if release else format_reward(completion)
    return Reward(total=w_accuracy * accuracy + w_format * fmt, format=fmt, accuracy=accuracy, iou=iou, iop=iop,
                  option=option, segment=segment, right=right, parsed=parsed)


if __name__ == "__main__":
    raise SystemExit("rewards.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
