"""Everything between a file on disk and the tensors a Qwen-VL model eats.

    JSONL row --read_jsonl--> validated dict --video.read_video--> frames uint8 [T, H, W, 3] + timestamps
      --video.patchify--> pixel_values [N_patch, C*t*P*P] + grid_thw (T/t, H/P, W/P)
      --build_prompt--> prompt ids with one <|video_pad|> per merged patch       ==> Sample

Two model families share these functions; only the constants in video.FAMILIES and the way the prompt marks time differ
(Qwen2.5-VL: one video block, time through mRoPE and `second_per_grid`; Qwen3-VL: a textual `<t seconds>` before
each temporal block). Video decoding and patches are in video.py, the synthetic toy world in toy.py, the converters
from public formats in convert.py.
"""

import json
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache

import torch

import benchmarks
from rewards import ANSWER_FORMATS, TASKS, gt_spans
from video import FAMILIES, DataError, VideoConfig, patchify, probe_video, read_video, video_error

SYSTEM = "You are a helpful assistant."  # Qwen2.5-VL's template writes it when a conversation has no system turn
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
GROUNDING_QUESTION = 'When does "{}" happen in the video?'  # a tvg question as convert.py writes it from a caption

# --prompt-style (docs/prompt_styles.md): vrl, the default, is the above; temporal_r1 is the Temporal-R1 release's
# system prompt (its evaluation's, as published) and, for grounding, its question and strict JSON answer
# (rewards.release_format_reward). The release covers grounding only: for mcq and gqa temporal_r1 keeps vrl's user
# turn (question, options, instruction) under the release's system prompt, since the release has no prompt or reward
# of its own for them and the instruction's example answer is what rewards.score reads there.
PROMPT_STYLES = ("vrl", "temporal_r1")
RELEASE_SYSTEM = ("You FIRST think about the reasoning process as an internal monologue and then provide the final "
                  "answer. The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST "
                  "BE put in <answer> </answer> tags. Output the final answer in JSON format.")
RELEASE_GROUNDING = 'Give the query: "{}", when does the described content occur in the video?.'
RELEASE_ANSWER = '{{"start_time": "{start:.1f}", "end_time": "{end:.1f}"}}'  # what its format reward matches
THINK_OPEN = "<think>\n"  # how a Qwen3-VL Thinking checkpoint's template opens the assistant turn (opens_thinking)


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


# ---------------------------------------------------------------------------------------------------- prompts


def grounding_query(question: str) -> str:
    """The moment a tvg question asks for: X of GROUNDING_QUESTION's `When does "X" happen in the video?` (the form
    convert.py writes), else the question itself."""
    head, tail = GROUNDING_QUESTION.split("{}")
    q = question.strip()
    wrapped = q.startswith(head) and q.endswith(tail) and len(q) > len(head) + len(tail)
    return q[len(head):len(q) - len(tail)] if wrapped else question


def system_text(style: str, family: str) -> str | None:
    """The system turn's text, or None for no system turn: the release's prompt for temporal_r1; for vrl, what the
    family's own template writes for a conversation without one (Qwen2.5-VL: SYSTEM; Qwen3-VL: no system turn)."""
    if style == "temporal_r1":
        return RELEASE_SYSTEM
    return SYSTEM if family == "qwen2_5_vl" else None


def user_text(row: dict, style: str = "vrl", timestamps: list[float] | None = None) -> str:
    """The text after the video: duration (tvg/gqa), question, options as `A. …` lines, task instruction (a caption
    row: its question alone). temporal_r1 grounding: the release's question, RELEASE_GROUNDING, alone. A benchmark
    row (benchmarks.py) lays out its question and options as its benchmark does (Video-MME's subtitles: those on
    screen at the sampled `timestamps`), then the same task instruction."""
    if row["task"] == CAPTION:
        return row["question"]
    if style == "temporal_r1" and row["task"] == "tvg":
        return RELEASE_GROUNDING.format(grounding_query(row["question"]))
    if row.get("benchmark") in benchmarks.BENCHMARKS:
        return benchmarks.layout(row, timestamps) + "\n" + INSTRUCTIONS[row["task"]]
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


def build_prompt(row: dict, tokenizer, family: str, grid_thw, timestamps: list[float], style: str = "vrl",
                 thinking: bool = False) -> list[int]:
    """Qwen chat prompt ids, as the family's chat template renders them: system turn (system_text; none for vrl on
    Qwen3-VL), user turn (video placeholder + user_text), open assistant turn, followed by THINK_OPEN when the
    checkpoint thinks (opens_thinking): the completion then continues an open `<think>`."""
    system = system_text(style, family)
    text = (
        (f"<|im_start|>system\n{system}<|im_end|>\n" if system is not None else "")
        + f"<|im_start|>user\n{video_text(family, grid_thw, timestamps)}{user_text(row, style, timestamps)}<|im_end|>\n"
        + "<|im_start|>assistant\n" + (THINK_OPEN if thinking else "")
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    gt, gh, gw = (int(v) for v in torch.as_tensor(grid_thw).reshape(3))
    expected = gt * gh * gw // FAMILIES[family]["merge_size"] ** 2
    if ids.count(tokenizer.convert_tokens_to_ids("<|video_pad|>")) != expected:  # e.g. a question with one in it
        raise DataError(f"sample {row.get('id')}: prompt does not hold exactly {expected} video tokens")
    return ids


def target_text(row: dict, style: str = "vrl", opened: str = "") -> str:
    """SFT target: a one-sentence think, then the answer in rewards.ANSWER_FORMATS (times with one decimal; the
    first span of a ground truth with several; temporal_r1 grounding: RELEASE_ANSWER); a caption row's is its
    caption. With the prompt already ending in `opened` (THINK_OPEN), the target is what follows it."""
    if row["task"] == CAPTION:
        return row[CAPTION]
    task, (start, end) = row["task"], gt_spans(row["segment"])[0] if row.get("segment") else (0.0, 0.0)
    release = style == "temporal_r1" and task == "tvg"
    answer = (RELEASE_ANSWER if release else ANSWER_FORMATS[task]).format(letter=row.get("answer"), start=start,
                                                                           end=end)
    span = ANSWER_FORMATS["tvg"].format(start=start, end=end)
    option = row["options"][ord(row["answer"]) - ord("A")] if task in ("mcq", "gqa") else ""
    think = {"mcq": f"The answer is {option}.", "tvg": f"The moment lasts from {span} seconds.",
             "gqa": f"From {span} seconds the answer is {option}."}[task]
    full = f"<think>{think}</think><answer>{answer}</answer>"
    return full[len("<think>"):] if opened == THINK_OPEN else full


@dataclass
class Sample:
    """One prompt, ready for the model."""

    id: str
    row: dict  # the validated schema row (rewards.score reads task/options/answer/segment/duration)
    prompt_ids: torch.Tensor  # LongTensor [P]
    pixel_values: torch.Tensor  # FloatTensor [N_patch, C*t*P*P]
    grid_thw: torch.Tensor  # LongTensor [1, 3]
    second_per_grid: float  # seconds between temporal blocks = temporal_patch_size / sampled fps
    style: str = "vrl"  # the prompt style (PROMPT_STYLES); rewards.score(..., style=) reads answers the same way
    opened: str = ""  # the answer's start the prompt already holds (THINK_OPEN for a thinking checkpoint, else ""):
    #                   rewards.score(opened + completion, row, style=style) reads what the model wrote


def prepare_sample(row: dict, tokenizer, family: str, cfg: VideoConfig = VideoConfig(), style: str = "vrl",
                   thinking: bool = False) -> Sample:
    """Row -> Sample. Bad video or too long a prompt -> DataError naming the file and the sample id.

    second_per_grid = temporal_patch_size / sampled fps, where sampled fps = T / video duration is the rate of the
    frames actually kept (it differs from cfg.fps when min_frames or max_frames clamp T). Qwen2.5-VL's temporal
    rotary positions are built from it: lose it between rollout and training and the model loses absolute time.
    """
    frames, times, sampled_fps = read_video(row["video"], cfg, row["id"])
    try:
        pixel_values, grid = patchify(frames, family, cfg)
    except ValueError as err:  # e.g. an aspect ratio smart_resize refuses
        raise video_error(row["video"], row["id"], str(err)) from err
    t = FAMILIES[family]["temporal_patch_size"]
    blocks = [sum(times[i : i + t]) / len(times[i : i + t]) for i in range(0, len(times), t)]
    ids = build_prompt(row, tokenizer, family, grid, blocks, style, thinking)
    if cfg.max_prompt_tokens is not None and len(ids) > cfg.max_prompt_tokens:
        raise DataError(
            f"{row['video']} (sample {row['id']}): prompt of {len(ids)} tokens > max_prompt_tokens="
            f"{cfg.max_prompt_tokens}; lower video_tokens or max_frames (video prompts are never truncated)"
        )
    return Sample(
        id=row["id"],
        row=row,
        prompt_ids=torch.tensor(ids, dtype=torch.long),
        pixel_values=pixel_values,
        grid_thw=grid[None],
        second_per_grid=t / sampled_fps,
        style=style,
        opened=THINK_OPEN if thinking else "",
    )


def prepare_batch(rows: list[dict], tokenizer, family: str, cfg: VideoConfig,
                  style: str = "vrl") -> tuple[list[Sample], list[Problem]]:
    """Rows -> (samples, problems): a video that fails to decode fails its own row (field `video`), nothing else.
    The prompts open a think when the checkpoint's template does (opens_thinking)."""
    samples, failed, thinking = [], [], opens_thinking(tokenizer)
    for row in rows:
        try:
            samples.append(prepare_sample(row, tokenizer, family, cfg, style, thinking))
        except DataError as err:
            failed.append(Problem(row["video"], None, row["id"], row["task"], "video", str(err)))
    return samples, failed


# ------------------------------------------------------------------ thinking checkpoints (safe to skip on a first read)


def chat_template(tokenizer) -> str | None:
    """The checkpoint's chat template: the tokenizer's, else the processor's `chat_template.json` (or
    `chat_template.jinja`) in the folder the tokenizer was read from (transformers' tokenizer reads only the
    .jinja); None when there is none (the toy tokenizer)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    folder = getattr(tokenizer, "name_or_path", "") or ""
    for name in ("chat_template.json", "chat_template.jinja"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            try:
                return json.loads(text).get("chat_template") if name.endswith(".json") else text
            except (ValueError, AttributeError) as err:
                raise DataError(f"{path}: not a chat template file ({err})") from err
    return None


def opens_thinking(tokenizer) -> bool:
    """Does the checkpoint's chat template end its generation prompt with THINK_OPEN (`<think>\\n`), as Qwen3-VL's
    Thinking checkpoints do? Then the model was trained to continue an open think: our prompts end the same way
    and the format reward reads `<think>\\n` + completion (Sample.opened). Detected, not a flag: a checkpoint that
    thinks always does, and a forgotten flag would silently score every completion's format 0."""
    template = chat_template(tokenizer)
    return template is not None and _ends_thinking(template, tokenizer)


@lru_cache(maxsize=8)
def _ends_thinking(template: str, tokenizer) -> bool:
    text = tokenizer.apply_chat_template([{"role": "user", "content": "?"}], chat_template=template, tokenize=False,
                                         add_generation_prompt=True)
    return text.endswith(THINK_OPEN)


if __name__ == "__main__":
    raise SystemExit("data.py is a library module, not a command (`python data.py toy|convert` are now toy.py and"
                     " convert.py): see train.py / eval.py / select_data.py / convert.py / toy.py")
