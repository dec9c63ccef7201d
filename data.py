"""Everything between a valid row and the tensors a Qwen-VL model eats: the prompt, the frames, the patches.

    JSONL row --schema.read_jsonl--> validated dict --video.read_video--> frames uint8 [T, H, W, 3] + timestamps
      --video.patchify--> pixel_values [N_patch, C*t*P*P] + grid_thw (T/t, H/P, W/P)
      --build_prompt--> prompt ids with one <|video_pad|> per merged patch       ==> Sample

Two model families share these functions; only the constants in video.FAMILIES and the way the prompt marks time differ
(Qwen2.5-VL: one video block, time through mRoPE and `second_per_grid`; Qwen3-VL: a textual `<t seconds>` before
each temporal block). Video decoding and patches are in video.py, the synthetic toy world in toy.py, the converters
from public formats in convert.py.
"""

import json
import os
from dataclasses import dataclass
from functools import lru_cache

import torch

import benchmarks
from rewards import ANSWER_FORMATS, TASKS, gt_spans
from schema import CAPTION, Problem, letters
from video import FAMILIES, DataError, VideoConfig, patchify, read_video, video_error

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
    raise SystemExit("data.py is a library module, not a command (`python data.py toy|convert` are gone: train.py "
                     "writes the toy world, convert.py converts): see train.py / eval.py / select_data.py / convert.py")
