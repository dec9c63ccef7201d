"""The paper's evaluation benchmarks, each converted and scored the way its own evaluation scores it.

    benchmark            public file (--from)          prompt layout            read by              aggregation
    mvbench              json/<task>.json              Question:/Option:/(A) x  mvbench_letter       per task; all
    videomme             Video-MME rows (jsonl)        Select the best.../A. x  videomme_letter      per duration; all
    videomme_w_subtitle  same + --subtitles DIR (srt)  + subtitles at frames    videomme_letter      same
    mmvu                 data/validation.json (mc)     Question:/A: x           mmvu_correct         per discipline; all
    tempcompass          questions/multi-choice.json   question + A. x lines    tempcompass_correct  per dimension; all
    activitynet          val_1.json / val_2.json       vrl grounding question   parse_segment        R@0.3/0.5/0.7, mIoU
    charades_sta         (convert.py lmms_charades)    vrl grounding question   parse_segment        R@0.3/0.5/0.7, mIoU

The answer a benchmark reads is the content of the completion's last <answer>...</answer> (a vrl model thinks first;
lmms-eval strips <think> before it scores), or, without one, the completion with its <think> part removed. Each reader
is the one of lmms-eval 0.7.3's task (tests/test_benchmarks.py checks ours against it on the same answers):

    mvbench      the first standalone letter A-E after punctuation is cleaned (tasks/mvbench mcq_acc)
    videomme     the best-ranked letter A-D: "(B)" / "B." / "B:" / "B)" / "B " / "the answer is B" / leading or
                 trailing B, the last of the best kind (tasks/_task_utils/mcq_extract)
    mmvu         right if the first standalone letter is the answer, or the answer letter stands anywhere, or the
                 right option's text is in the answer (evaluate_with_rule_based)
    tempcompass  the whole answer equals "B. text", is "B", or starts with "B." or "B)" (the rule-based part; where
                 lmms-eval then asks ChatGPT, we score 0 and count the answer as unmatched)

An answer that reads as nothing scores 0 and stays in every denominator (lmms-eval's MVBench alone leaves empty
answers out of its denominator; the official MVBench evaluation counts them, as we do).

Prompts: the benchmark's own layout of the question and options (and Video-MME's subtitles), followed by vrl's
<think>/<answer> instruction in place of the benchmark's "answer with the letter only" line (data.user_text).
"""

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path

import rewards

LETTERS = string.ascii_uppercase
THRESHOLDS = (0.3, 0.5, 0.7)  # R@m of the grounding benchmarks
VIDEOMME_GROUPS = ("duration_bucket", "category")  # short / medium / long, then the 12 task types
METRICS = {"mcq": ("accuracy",), "tvg": ("R@0.3", "R@0.5", "R@0.7", "mIoU")}  # reported per benchmark task


@dataclass(frozen=True)
class Benchmark:
    title: str  # the paper table's column name
    task: str  # our task of its rows: mcq or tvg (METRICS: what is reported)
    groups: tuple  # the row fields it is broken down by (empty: overall only)
    about: str  # one line for convert.py --help


BENCHMARKS = {
    "mvbench": Benchmark("MVBench", "mcq", ("category",), "MVBench json/<task>.json (task from file name)"),
    "tempcompass": Benchmark("TempCompass", "mcq", ("category",), "TempCompass questions/multi-choice.json"),
    "videomme": Benchmark("VideoMME (w/o sub)", "mcq", VIDEOMME_GROUPS, "Video-MME rows (json/jsonl)"),
    "videomme_w_subtitle": Benchmark("VideoMME (w/ sub)", "mcq", VIDEOMME_GROUPS,
                                     "Video-MME rows + --subtitles DIR of <videoID>.srt"),
    "mmvu": Benchmark("MMVU (mc)", "mcq", ("category",), "MMVU data/validation.json (multiple-choice)"),
    "charades_sta": Benchmark("Charades-STA", "tvg", (), "(use --from lmms_charades or charades_sta)"),
    "activitynet": Benchmark("ActivityNet", "tvg", (), "ActivityNet Captions val_1.json / val_2.json"),
}
CONVERTIBLE = tuple(name for name, b in BENCHMARKS.items() if not b.about.startswith("("))


# ---------------------------------------------------------------------------------------------------- reading answers


def response(completion: str) -> str:
    """What a benchmark's reader sees: the last <answer> content, else the completion without its <think> part."""
    inside = rewards.parse_answer(completion)
    if inside is not None:
        return inside
    return re.sub(r"<think>.*?</think>", "", completion, flags=re.S).strip()


_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]


def mvbench_letter(text: str) -> str:
    """MVBench's reader (lmms-eval mcq_acc.process): `B. text` -> B; else, after punctuation is removed (next to a
    space, or anywhere when the text has a 1,000 separator like 1,5) or turned into spaces, and up to 32 periods not
    before a digit are dropped, the first standalone letter a-e in any case -> upper case; else the cleaned text."""
    if m := re.match(r"^([A-E])\.\s*(.+)$", text.strip(), re.I):
        return m.group(1).upper()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    glued = re.search(r"(\d)(,)(\d)", text) is not None
    cleaned = text
    for p in _PUNCT:
        cleaned = cleaned.replace(p, "" if (p + " " in text or " " + p in text or glued) else " ")
    cleaned = re.sub(r"(?!<=\d)(\.)(?!\d)", "", cleaned, count=32)
    cleaned = cleaned.strip("'").strip('"').strip(")").strip("(").strip().lower()
    m = re.search(r"\b([A-E])\b", cleaned, re.I)
    return m.group(1).upper() if m else cleaned


_PHRASES = ["the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
            "best answer is", "the correct option is", "correct option is", "the best option is", "best option is",
            "the choice is", "choice is", "the correct choice is", "correct choice is", "i choose", "i select",
            "i pick", "my answer is", "my choice is", "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは"]
_RANK = {"start": 10, "end": 9, "phrase": 7, "(X)": 6, "X.": 5, "X:": 4, "X)": 3, "X ": 2, "anywhere": 0}


def videomme_letter(text: str, choices: str = "ABCD") -> str:
    """Video-MME's reader (lmms-eval mcq_extract): every way a letter may be given is a candidate with a rank
    (_RANK: a leading letter beats a trailing one beats "the answer is X" beats "(X)" ...); the best rank wins, and
    within it the latest position. A bare letter anywhere counts only when nothing else does. "" when none."""
    if not text.strip():
        return ""
    text = text.strip()
    for ch in ",.!?;:'\"":
        text = text.strip(ch)
    padded, bare = f" {text} ", text.strip()
    found = []  # (rank, position, letter)
    for c in choices:
        for kind in ("(X)", "X.", "X:", "X)", "X "):
            if (pattern := kind.replace("X", c)) in padded:
                found.append((_RANK[kind], padded.rfind(pattern), c))
    lower = padded.lower()
    for phrase in _PHRASES:
        if (at := lower.find(phrase)) != -1:
            found += [(_RANK["phrase"], pos, c) for c in choices if (pos := padded.find(c, at + len(phrase))) != -1]
    for c in choices:
        if bare.startswith(c) and (len(bare) == 1 or not bare[1].isalpha()):
            found.append((_RANK["start"], 0, c))
        if bare.endswith(c) and (len(bare) == 1 or not bare[-2].isalpha()):
            found.append((_RANK["end"], len(padded) - 1, c))
    if not found:
        found = [(_RANK["anywhere"], padded.rfind(c), c) for c in choices if c in padded]
    return max(found, key=lambda f: (f[0], f[1]))[2] if found else ""


def mmvu_correct(text: str, answer: str, options: list[str]) -> bool:
    """MMVU's multiple-choice rules (lmms-eval evaluate_with_rule_based): right when the first standalone letter
    a-e (any case) is the answer, or the answer letter stands alone anywhere, or the right option's text is in the
    answer, or the answer letter occurs anywhere (even inside a word) together with a word of 3+ letters of the
    right option. Lenient by design: we reproduce it, we do not fix it."""
    first = re.search(r"\b([A-E])\b", text, re.I)
    if first and first.group(1).upper() == answer.upper():
        return True
    if answer.upper() in text.upper() and re.search(rf"\b{re.escape(answer)}\b", text, re.I):
        return True
    right = options[LETTERS.index(answer)].strip().lower()
    if right in text.lower():
        return True
    words = [w.strip(string.punctuation) for w in right.split() if len(w.strip(string.punctuation)) > 2]
    return answer.upper() in text.upper() and any(w in text.lower() for w in words)


def tempcompass_correct(text: str, answer: str, options: list[str]) -> bool | None:
    """TempCompass multi-choice rules (lmms-eval tempcompass_process_results_multi_choice, its rule-based part):
    the answer as published ("B. text"), or "B", or text starting with "B." or "B)" -> right or wrong; anything else
    -> None (unmatched: lmms-eval asks ChatGPT there, we score 0)."""
    full = f"{answer}. {options[LETTERS.index(answer)]}"
    if text == full:
        return True
    if text in ("A", "B", "C", "D"):
        return text == answer
    for sep in ".)":
        if any(text.startswith(c + sep) for c in "ABCD"):
            return text.split(sep)[0] == answer
    return None


def score(completion: str, row: dict) -> dict:
    """One completion on one benchmark row -> {benchmark, its group fields, bench_correct | bench_iou, bench_read}.
    bench_read is what the benchmark's reader took from the answer (a letter, "" or None when it read nothing)."""
    name, text = row["benchmark"], response(completion)
    bench = BENCHMARKS[name]
    out = {"benchmark": name} | {field: row.get(field) for field in bench.groups}
    if bench.task == "tvg":
        seg = rewards.parse_segment(text)
        out |= {"bench_read": list(seg) if seg else None,
                "bench_iou": rewards.temporal_iou(seg, row["segment"]) if seg else 0.0}
    elif name == "mvbench":
        read = mvbench_letter(text)  # a letter, or the cleaned text when it holds none
        out |= {"bench_read": read if read in tuple("ABCDE") else None, "bench_correct": read == row["answer"]}
    elif name.startswith("videomme"):
        out |= {"bench_read": (read := videomme_letter(text)), "bench_correct": read == row["answer"]}
    elif name == "mmvu":
        first = re.search(r"\b([A-E])\b", text)
        out |= {"bench_read": first.group(1) if first else None,
                "bench_correct": mmvu_correct(text, row["answer"], row["options"])}
    else:  # tempcompass
        right = tempcompass_correct(text, row["answer"], row["options"])
        out |= {"bench_read": None if right is None else text, "bench_correct": bool(right)}
    return out


# ---------------------------------------------------------------------------------------------------- aggregation


def _rate(xs):
    return sum(float(x) for x in xs) / len(xs) if xs else None


def headline(records: list[dict]) -> dict:
    """Per-sample benchmark records -> {n, accuracy} or {n, R@0.3, R@0.5, R@0.7, mIoU} (fractions; None if no rows)."""
    if records and "bench_iou" in records[0]:  # a grounding benchmark
        ious = [r["bench_iou"] for r in records]
        return ({"n": len(ious)} | {f"R@{m}": _rate([i >= m for i in ious]) for m in THRESHOLDS}
                | {"mIoU": _rate(ious), "n_unread": sum(r["bench_read"] is None for r in records)})
    return {"n": len(records), "accuracy": _rate([r["bench_correct"] for r in records]),
            "n_unread": sum(not r["bench_read"] for r in records)}  # read as nothing: scored 0, counted in n


def aggregate(records: list[dict]) -> dict:
    """Records of benchmark rows -> {benchmark: {overall, by_<field>: {value: metrics}}}, each number as
    the benchmark's own evaluation computes it: overall over every scored question (MVBench's 20 tasks hold 200
    each, so this is also the mean of the task accuracies), the breakdown over the questions of each value."""
    out = {}
    for name in dict.fromkeys(r["benchmark"] for r in records):
        mine = [r for r in records if r["benchmark"] == name]
        section = {"overall": headline(mine)}
        for field in BENCHMARKS[name].groups:
            values = sorted(set(r[field] for r in mine), key=str)
            section[f"by_{field}"] = {str(v): headline([r for r in mine if r[field] == v]) for v in values}
        out[name] = section
    return out


# Published numbers of the paper's 7B model, percent (None or absent: not found in a public source).
PAPER_7B = {"charades_sta": {"R@0.3": 79.6, "R@0.5": 67.9, "R@0.7": 44.1, "mIoU": 57.0}}
SETTINGS = ("fps", "min_frames", "max_frames", "video_tokens", "frame_min_tokens", "temperature", "max_new_tokens")


def settings_text(settings: dict) -> str:
    """The frame/pixel/decoding settings an eval ran with (its metrics JSON's `settings`), as one short string."""
    return " ".join(f"{k}={settings[k]}" for k in SETTINGS if k in settings)


def _cells(name: str, metrics: dict) -> str:
    return "  ".join(f"{m} {'-' if metrics.get(m) is None else f'{100 * metrics[m]:.1f}'}"
                     for m in METRICS[BENCHMARKS[name].task])


def report(results: dict, settings: dict) -> str:
    """aggregate()'s output -> per benchmark: the overall line, then one line per task / category / duration
    bucket, with the settings that produced them."""
    lines = []
    for name, section in results.items():
        overall = section["overall"]
        lines.append(f"{BENCHMARKS[name].title}: {_cells(name, overall)}  (n={overall['n']})  "
                     f"[{settings_text(settings)}]")
        for group in (k for k in section if k.startswith("by_")):
            lines += [f"  {group[3:]}={v}: {_cells(name, m)}  (n={m['n']})" for v, m in section[group].items()]
    return "\n".join(lines)


def paper_table(evals: list[dict]) -> str:
    """Metrics JSONs written by eval.py (each with `benchmarks` and `settings`) -> one line per benchmark and metric
    in the paper's layout: ours beside the paper's 7B numbers (percent), and the settings that produced ours. A
    benchmark evaluated in several files (MVBench's 20 task files) is one line: each rate weighted by its n, which
    is the rate over all their questions."""
    merged = {}  # name -> [(overall, settings text)]
    for ev in evals:
        for name, section in ev.get("benchmarks", {}).items():
            merged.setdefault(name, []).append((section["overall"], settings_text(ev.get("settings", {}))))
    lines = [f"{'benchmark':<20}{'metric':<10}{'ours':>7}{'paper 7B':>10}{'n':>7}  settings"]
    for name, parts in merged.items():
        n, settings = sum(o["n"] for o, _ in parts), " | ".join(dict.fromkeys(t for _, t in parts))
        for m in METRICS[BENCHMARKS[name].task]:
            rates = [(o[m], o["n"]) for o, _ in parts if o.get(m) is not None]
            ours = f"{100 * sum(r * k for r, k in rates) / sum(k for _, k in rates):.1f}" if rates else "-"
            theirs = "-" if PAPER_7B.get(name, {}).get(m) is None else f"{PAPER_7B[name][m]:.1f}"
            lines.append(f"{BENCHMARKS[name].title:<20}{m:<10}{ours:>7}{theirs:>10}{n:>7}  {settings}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- prompts


def layout(row: dict, timestamps: list[float] | None = None) -> str:
    """The benchmark's own text around the question and options (data.user_text adds vrl's answer instruction).
    timestamps: the sampled frames' times; Video-MME's subtitles are the lines on screen at those times."""
    name, q, opts = row["benchmark"], row["question"], list(enumerate(row.get("options") or []))
    if name == "mvbench":
        return f"Question:{q}\nOption:\n" + "\n".join(f"({LETTERS[i]}) {o}" for i, o in opts)
    if name == "mmvu":
        options = "".join(f"{LETTERS[i]}: {o}\n" for i, o in opts)
        return f"Question:{q}\n{options}Visual Information: processed video"
    if name == "tempcompass":
        return q + "".join(f"\n{LETTERS[i]}. {o}" for i, o in opts)
    if name.startswith("videomme"):
        subs = name.endswith("subtitle")
        text = (f"Select the best answer to the following multiple-choice question based on the video"
                f"{' and the subtitles' if subs else ''}. Respond with only the letter (A, B, C, or D) of the correct"
                f" option.\n{q}\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in opts))
        if subs:
            lines = subtitles_at(row, timestamps) or "No subtitles available"
            text = f"This video's subtitles are listed below:\n{lines}\n{text}"
        return text
    return f"The video is {row['duration']:.1f} seconds long.\n{q}"  # grounding: vrl's own prompt


def subtitles_at(row: dict, timestamps: list[float] | None) -> str:
    """Video-MME with subtitles: the subtitle lines shown at the sampled frames (all of them without timestamps), in
    time order, one a line."""
    subs = row.get("subtitles") or []
    if timestamps is not None:
        subs = [s for s in subs if any(s[0] <= t < s[1] for t in timestamps)]
    return "\n".join(s[2] for s in subs)


# ---------------------------------------------------------------------------------------------------- converters
# Each takes one record of the public file (and where it sits) and returns a list of rows; a record that does not
# convert raises, and convert() lists it with its place in the file.


def from_mvbench(rec: dict, task: str) -> list[dict]:
    """MVBench json/<task>.json entry: {video, question, candidates, answer (the text), [start, end]}. Videos are
    read from each task's folder of pre-cut clips (MVBENCH_FOLDERS, as lmms-eval plays them: star/Charades_segment
    rather than the full Charades videos), so the start/end bounds some entries carry are already applied."""
    if task not in MVBENCH_FOLDERS:
        raise ValueError(f"unknown MVBench task {task!r} (the file name must be one of {sorted(MVBENCH_FOLDERS)})")
    options = [str(c) for c in rec["candidates"]]
    if options.count(rec["answer"]) != 1:
        raise ValueError(f"answer {rec['answer']!r} is not exactly one of the candidates {options}")
    return [dict(video=f"{MVBENCH_FOLDERS[task]}/{rec['video']}", task="mcq", question=rec["question"],
                 options=options, answer=LETTERS[options.index(rec["answer"])], benchmark="mvbench", category=task)]


def from_videomme(rec: dict, subtitles_dir: str | None) -> list[dict]:
    """Video-MME row: {videoID, question_id, duration: short|medium|long, domain, sub_category, task_type, question,
    options: ["A. ...", ...], answer: letter}. With subtitles_dir, the row carries <videoID>.srt as [start, end, text]
    lines (a video without one has none: "No subtitles available", as the benchmark prompts)."""
    options = []
    for i, o in enumerate(rec["options"]):
        if not o.startswith(f"{LETTERS[i]}. "):
            raise ValueError(f"option {i} {o!r} does not start with '{LETTERS[i]}. '")
        options.append(o[3:])
    if rec["answer"] not in LETTERS[:len(options)] or rec["duration"] not in ("short", "medium", "long"):
        raise ValueError(f"answer {rec['answer']!r} or duration {rec['duration']!r} is not one the benchmark uses")
    row = dict(id=rec["question_id"], video=f"{rec['videoID']}.mp4", task="mcq", question=rec["question"],
               options=options, answer=rec["answer"], benchmark="videomme", duration_bucket=rec["duration"],
               category=rec["task_type"], domain=rec["domain"], sub_category=rec["sub_category"])
    if subtitles_dir is not None:
        srt = Path(subtitles_dir) / f"{rec['videoID']}.srt"
        row |= {"benchmark": "videomme_w_subtitle", "subtitles": read_srt(srt) if srt.exists() else []}
    return [row]


def read_srt(path) -> list[list]:
    """An .srt file -> [[start, end, text], ...] in seconds; Video-MME wraps each line's text in a <font> tag."""
    out = []
    for block in Path(path).read_text(encoding="utf-8-sig").replace("\r\n", "\n").split("\n\n"):
        lines = block.strip().split("\n")
        if len(lines) >= 3 and " --> " in lines[1]:
            start, end = (_srt_seconds(t) for t in lines[1].split(" --> "))
            text = " ".join(lines[2:])
            font = re.search(r"<font[^>]*>(.*?)</font>", text)
            out.append([start, end, font.group(1) if font else text])
    return out


def _srt_seconds(stamp: str) -> float:
    h, m, s = stamp.strip().replace(",", ".").split(":")
    return 3600 * int(h) + 60 * int(m) + float(s)


def from_mmvu(rec: dict) -> list[dict]:
    """MMVU validation.json entry: {id, video (URL .../videos/<Subject>/<n>.mp4) or video_path, question_type,
    question, choices {A..E}, answer letter}. Open-ended questions are not converted (the paper reports the
    multiple-choice ones); `category` is the subject's discipline (MMVU_DISCIPLINES, as lmms-eval aggregates)."""
    if rec["question_type"] != "multiple-choice":
        raise ValueError(f"question_type {rec['question_type']!r}: only multiple-choice questions are converted")
    path = rec.get("video_path") or rec["video"].split("/resolve/main/")[-1]
    subject = path.split("/")[-2]
    if subject not in MMVU_DISCIPLINES:
        raise ValueError(f"subject folder {subject!r} is in no MMVU discipline")
    options = [rec["choices"][c] for c in sorted(rec["choices"])]
    return [dict(id=rec["id"], video=path, task="mcq", question=rec["question"], options=options, answer=rec["answer"],
                 benchmark="mmvu", category=MMVU_DISCIPLINES[subject], subject=subject)]


def from_tempcompass(video_id: str, dim: str, k: int, rec: dict) -> list[dict]:
    """TempCompass multi-choice.json: {video_id: {dimension: [{question: "...?\\nA. x\\nB. y", answer: "B. y"}]}}."""
    head, *lines = rec["question"].split("\n")
    options = []
    for i, line in enumerate(lines):
        if not line.startswith(f"{LETTERS[i]}. "):
            raise ValueError(f"option line {line!r} does not start with '{LETTERS[i]}. '")
        options.append(line[3:])
    letter = rec["answer"][:1]
    if letter not in LETTERS[:len(options)] or rec["answer"] != f"{letter}. {options[LETTERS.index(letter)]}":
        raise ValueError(f"answer {rec['answer']!r} is not one of the option lines")
    return [dict(id=f"{video_id}-{dim}-{k}", video=f"{video_id}.mp4", task="mcq", question=head, options=options,
                 answer=letter, benchmark="tempcompass", category=dim)]


def from_activitynet(video_id: str, rec: dict, split: str) -> list[dict]:
    """ActivityNet Captions {v_id: {duration, timestamps: [[s, e], ...], sentences: [...]}} -> one grounding row
    per sentence, times as published (some end past `duration`; scored as they are, like Charades-STA). A reversed
    or empty span cannot be scored: the record is refused with that sentence named."""
    if len(rec["timestamps"]) != len(rec["sentences"]):
        raise ValueError(f"{len(rec['timestamps'])} timestamps for {len(rec['sentences'])} sentences")
    rows = []
    for k, ((a, b), sentence) in enumerate(zip(rec["timestamps"], rec["sentences"])):
        if not float(a) < float(b):
            raise ValueError(f"sentence {k} ({sentence.strip()!r}): span [{a}, {b}] is empty or reversed")
        question = f'When does "{sentence.strip().rstrip(".")}" happen in the video?'
        rows.append(dict(id=f"{video_id}-{k}", video=f"{video_id}.mp4", task="tvg", question=question,
                         segment=[float(a), float(b)], duration=float(rec["duration"]), benchmark="activitynet",
                         split=split))
    return rows


def convert(fmt: str, path: str, subtitles_dir: str | None = None) -> tuple[list[dict], list[str]]:
    """A public benchmark file -> (rows, problems as 'PATH:place: message'); every record is one or the other."""
    data, stem = _load(path), Path(path).stem
    nested = fmt in ("tempcompass", "activitynet")  # {video id: ...}; the others are lists (or JSONL lines)
    if nested != (isinstance(data, dict) and not path.endswith(".jsonl")):
        raise ValueError(f"{path}: a --from {fmt} file holds a JSON {'object' if nested else 'list or JSONL lines'}")
    if fmt == "mvbench":
        places = [(at, lambda r=r, at=at: _with_id(from_mvbench(_parsed(r), stem), f"{stem}-{at.split()[-1]}"))
                  for at, r in _entries(data)]
    elif fmt in ("videomme", "videomme_w_subtitle"):
        subs = subtitles_dir if fmt == "videomme_w_subtitle" else None
        places = [(at, lambda r=r: from_videomme(_parsed(r), subs)) for at, r in _entries(data)]
    elif fmt == "mmvu":
        places = [(f"{at} id={r.get('id')}" if isinstance(r, dict) else at, lambda r=r: from_mmvu(_parsed(r)))
                  for at, r in _entries(data)]
    elif fmt == "tempcompass":
        places = [(f"{vid}/{dim}/{k}", lambda v=vid, d=dim, k=k, r=r: from_tempcompass(v, d, k, r))
                  for vid, dims in data.items() for dim, recs in dims.items() for k, r in enumerate(recs)]
    elif fmt == "activitynet":
        split = next((s for s in ("val_1", "val_2", "train") if s in stem), stem)
        places = [(vid, lambda v=vid, r=r: from_activitynet(v, r, split)) for vid, r in data.items()]
    else:
        raise ValueError(f"no converter for benchmark {fmt!r}; converters: {CONVERTIBLE}")
    rows, problems = [], []
    for place, one in places:
        try:
            rows += one()
        except Exception as e:  # any shape of bad record: listed with its place, never dropped silently
            problems.append(f"{path}:{place}: {type(e).__name__}: {e}")
    return rows, problems


def _load(path: str):
    """A JSON file's value; a JSONL file's lines as {line number: text} (each parsed with its record, so a line that
    does not parse is listed like any other bad record)."""
    text = Path(path).read_text(encoding="utf-8-sig")
    if path.endswith(".jsonl"):
        return {f"line {i}": line for i, line in enumerate(text.splitlines(), 1) if line.strip()}
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def _entries(data) -> list[tuple[str, dict | str]]:
    """(place, record) of a JSON list (entry 1, 2, ...) or of a JSONL file's lines (line 1, ...)."""
    return list(data.items()) if isinstance(data, dict) else [(f"entry {i}", r) for i, r in enumerate(data, 1)]


def _parsed(rec):
    return json.loads(rec) if isinstance(rec, str) else rec


def _with_id(rows, id_):
    return [{"id": id_} | r for r in rows]


# ---------------------------------------------------------------------------------------------------- release facts
# (safe to skip on a first read) where each MVBench task's videos sit in its release, and MMVU's subject -> discipline.

MVBENCH_FOLDERS = {
    "object_interaction": "star/Charades_segment", "action_sequence": "star/Charades_segment",
    "action_prediction": "star/Charades_segment", "action_localization": "sta/sta_video_segment",
    "moving_count": "clevrer/video_validation", "fine_grained_pose": "nturgbd_convert",
    "character_order": "perception/videos", "object_shuffle": "perception/videos", "egocentric_navigation": "vlnqa",
    "moving_direction": "clevrer/video_validation", "episodic_reasoning": "tvqa/video_fps3_hq_segment",
    "fine_grained_action": "Moments_in_Time_Raw/videos", "scene_transition": "scene_qa/video",
    "state_change": "perception/videos", "moving_attribute": "clevrer/video_validation",
    "action_antonym": "ssv2_video_mp4", "unexpected_action": "FunQA_test/test",
    "counterfactual_inference": "clevrer/video_validation", "object_existence": "clevrer/video_validation",
    "action_count": "perception/videos",
}
_DISCIPLINES = {
    "Science": "Biology Chemistry Modern_Physics Astronomy Geography Materials_Science Neurobiology Electromagnetism "
               "Thermodynamics Mechanics",
    "Engineering": "Civil_Engineering Electrical_Engineering Mechanical_Engineering Biomedical_Engineering "
                   "Electronics_and_Communication Computer_Science",
    "Healthcare": "Clinical_Medicine Basic_Medicine Preventive_Medicine Pharmacy Dentistry",
    "Humanities_and_Social_Science": "Art Literature History Law Economics Management",
}
MMVU_DISCIPLINES = {subject: d for d, subjects in _DISCIPLINES.items() for subject in subjects.split()}


if __name__ == "__main__":
    raise SystemExit("benchmarks.py is a library module, not a command: convert.py --from BENCHMARK converts a "
                     "benchmark file, eval.py scores it, eval.py --table METRICS... prints the paper's table")
