"""The JSONL schema (docs/data.md): every row read, checked field by field, and every problem named by its file and
line, the row's id and the field. Safe to skip on a first read: the method starts where a row is valid (data.py).

    {"id": "v1", "video": "clips/v1.mp4", "task": "mcq" | "tvg" | "gqa" | "caption", "question": "...",
     "options": ["...", ...] (mcq, gqa), "answer": "A" (mcq, gqa), "segment": [start, end] or [[s, e], ...] (tvg, gqa),
     "duration": seconds (optional: read from the video when absent)}

read_jsonl returns the valid rows and the problems as data; load_jsonl raises on the first problem, or with
--skip-bad drops the bad rows and lists them. Prompt text may not hold a chat control token, nor be longer than
--max-text-chars; a video must exist and be readable; a segment may reach past the video (public annotations do)
and is scored as published.
"""

import json
import os
import re
import sys
from dataclasses import dataclass

from rewards import TASKS, gt_spans
from video import DataError, probe_video

# The Qwen special tokens our prompts are made of (the toy tokenizer has exactly these). Prompt text holding one, or
# any `<|name|>` control token of the Qwen tokenizers, could end the user turn and add turns of its own: refused.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>",
                  "<|image_pad|>"]
CONTROL_TOKEN = re.compile(r"<\|[^\s<>|]{1,64}\|>")
MAX_TEXT_CHARS = 10_000  # per text field; public video QA questions run to a few hundred characters
# A caption row ({"task": "caption", "question": "Describe the video.", "caption": "A red circle ..."}) is text to
# learn about a video, not a question with a checkable answer: SFT reads it (the toy's pre-training stage stands in
# for a pretrained model that has seen videos described), GRPO, eval and selection have no reward for it.
CAPTION = "caption"
SFT_TASKS = TASKS + (CAPTION,)

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


def read_jsonl(path: str, max_text_chars: int = MAX_TEXT_CHARS, tasks: tuple = TASKS) -> Jsonl:
    """Read and validate every row of a JSONL file; problems are returned as data, never raised (a missing file
    is a DataError).

    Each row gets `video` made absolute (relative paths are relative to the JSONL's folder) and `duration` read
    from the video when absent. Rows whose ground truth reaches outside the video are valid and listed in `outside`.
    A row of a task outside `tasks` is a problem (caption rows are read only by SFT, with tasks=SFT_TASKS).
    """
    if not os.path.isfile(path):
        raise DataError(f"{path!r}: no such JSONL file (pass the data with --data)")
    folder = os.path.dirname(os.path.abspath(path))
    out, seen = Jsonl([], [], [], []), {}
    with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Windows tools write one) is skipped
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:  # JSONDecodeError, or an integer past Python's 4300-digit limit
                why = e.msg if isinstance(e, json.JSONDecodeError) else str(e).split(";")[0]
                row, errors = None, [("<line>", f"not valid JSON ({why})")]
            else:
                errors = check_row(row, folder, max_text_chars, tasks) if isinstance(row, dict) \
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


def moved_video_path(line, data_dir, out_dir):
    """A kept line as written, unless its video path is relative and the output lives in another folder: then
    the path is rewritten relative to the output's folder, so the selected file loads where it is."""
    row = json.loads(line)
    if os.path.realpath(data_dir) == os.path.realpath(out_dir) or os.path.isabs(row["video"]):
        return line
    row["video"] = os.path.relpath(os.path.join(data_dir, row["video"]), out_dir)
    return json.dumps(row)


def load_jsonl(path: str, skip_bad: bool = False, report: str | None = None,
               max_text_chars: int = MAX_TEXT_CHARS, tasks: tuple = TASKS) -> list[dict]:
    """The valid rows of a JSONL file (read_jsonl), or one DataError listing every problem of the file, one per
    `file:line id=… field=…` line. With skip_bad the bad rows are dropped instead, counted on stderr and listed in
    `report` (default: `<path>.bad.txt`) - never dropped silently. Rows whose ground truth reaches outside the
    video are kept and counted on stderr."""
    read = read_jsonl(path, max_text_chars, tasks)
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


def refuse_overwriting_inputs(outputs: list, inputs: dict) -> None:
    """A DataError when a file a command would write is one it reads ({flag: path}): the same path, or the same
    file through a symbolic or hard link (os.path.samefile). `--out X.jsonl` with `--data X.jsonl` would replace
    the user's data with the command's results."""
    for out in map(str, outputs):
        for flag, path in ((f, str(p)) for f, p in inputs.items() if p):
            same = os.path.exists(out) and os.path.exists(path) and os.path.samefile(out, path)
            if same or os.path.realpath(out) == os.path.realpath(path):
                raise DataError(f"{out} would be written over {flag} {path} (the same file), replacing your input "
                                "with this command's output: choose another output path")


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
    """A finite int or float that is also a float: a 400-digit integer is not (it would overflow later)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and -sys.float_info.max <= x <= sys.float_info.max


def check_text(row: dict, max_chars: int) -> list[tuple[str, str]]:
    """Text fields longer than max_chars characters, and prompt or target text (question, options, caption) holding
    a control token."""
    options = row["options"] if isinstance(row.get("options"), list) else []
    texts = [(f, row.get(f)) for f in ("id", "video", "answer", "question", CAPTION)]
    texts += [("options", o) for o in options]
    texts += [("subtitles", s[-1]) for s in row.get("subtitles") or [] if isinstance(s, list) and s]  # Video-MME
    errors = []
    for field, text in (t for t in texts if isinstance(t[1], str)):
        token = CONTROL_TOKEN.search(text) if field in ("question", "options", CAPTION, "subtitles") else None
        if len(text) > max_chars:
            errors.append((field, f"{len(text)} characters, more than --max-text-chars {max_chars}"))
        elif token:
            errors.append((field, f"holds the special token {token.group()!r}, which could add chat turns"))
    return errors


def check_row(row: dict, folder: str, max_text_chars: int = MAX_TEXT_CHARS,
              tasks: tuple = TASKS) -> list[tuple[str, str]]:
    """Problems of one row as (field, message); fills row['video'] (absolute) and row['duration'] in place.
    Over-long or special-token text is checked first and alone: such a row is reported without further work."""
    errors = check_text(row, max_text_chars)
    if errors:
        return errors
    for field in ("id", "video", "question"):
        if not isinstance(row.get(field), str) or not row[field].strip():
            errors.append((field, f"missing or not a non-empty string: {row.get(field)!r}"))
    task = row.get("task")
    if task == CAPTION and task not in tasks:
        errors.append(("task", "a caption row has no reward: it trains with --mode sft only"))
    elif task not in tasks:
        errors.append(("task", f"unknown task {task!r}, expected one of {tasks}"))
    if task == CAPTION and not (isinstance(row.get(CAPTION), str) and row[CAPTION].strip()):
        errors.append((CAPTION, f"missing or not a non-empty string: {row.get(CAPTION)!r}"))
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
            what = "is a directory, not a video file" if os.path.isdir(row["video"]) else "file not found"
            errors.append(("video", f"{what}: {row['video']}"))
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


if __name__ == "__main__":
    raise SystemExit("schema.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
