"""--prompt-style and the families' own chat templates, as worked examples.

temporal_r1 is the Temporal-R1 release's prompt and answer format: the release's literal strings are the fixtures
below, and its strict grounding format reward is checked against its own regular expression. The prompts of both
styles are compared with the official chat templates (tests/chat_templates/*.jinja: Qwen2.5-VL-Instruct, Qwen3-VL
Instruct and Thinking) rendered by transformers' apply_chat_template, the video placeholder expanded as the
processors expand it.
"""

import json
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

import config
import data
import eval as ev
import metrics
import rewards
import schema
import select_data
import toy

# ------------------------------------------------------------------------------------------ the release's strings
# Its evaluation's system prompt (the same text as its training launch script's, which breaks the line after
# "final answer." and starts the next with a space).
RELEASE_EVAL_SYSTEM = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer."
    " The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in <answer>"
    " </answer> tags. Output the final answer in JSON format."
)
RELEASE_TRAIN_SYSTEM = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer.\n"
    " The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in <answer>"
    " </answer> tags. Output the final answer in JSON format."
)
# Its grounding question: pre_prompt + the moment's caption + post_prompt.
RELEASE_PRE_PROMPT, RELEASE_POST_PROMPT = 'Give the query: "', '", when does the described content occur in the video?.'
# Its grounding format reward and its evaluation's answer reader both use this pattern (fullmatch / search, DOTALL).
RELEASE_PATTERN = (r'<think>.*?</think>\s*<answer>\s*{\s*"start_time"\s*:\s*"([\d.]+)"\s*,\s*"end_time"\s*:\s*'
                   r'"([\d.]+)"\s*}\s*</answer>')

TEMPLATES = Path(__file__).parent / "chat_templates"
TVG = dict(id="p", task="tvg", question='When does "the red circle appears" happen in the video?', segment=[2.5, 7.0],
           duration=8.0)
MCQ = dict(id="m", task="mcq", question="What colour is it?", options=["red", "blue"], answer="B")
GRID, BLOCKS = torch.tensor([2, 4, 4]), [0.25, 1.25]  # 2 temporal blocks of 4x4 patches: 4 video tokens a block


def test_our_strings_are_the_releases():
    """data.RELEASE_SYSTEM is the release's evaluation system prompt (its training one differs by a line break),
    the grounding question its pre/post prompt around the caption, and rewards' pattern its regex, piece by piece."""
    assert data.RELEASE_SYSTEM == RELEASE_EVAL_SYSTEM == RELEASE_TRAIN_SYSTEM.replace("\n", "")
    assert data.RELEASE_GROUNDING == RELEASE_PRE_PROMPT + "{}" + RELEASE_POST_PROMPT
    assert "<think>.*?" + rewards._RELEASE_TAIL.pattern == RELEASE_PATTERN


# ------------------------------------------------------------------------------------- the strict format reward
JSON = '{"start_time": "2.5", "end_time": "7.0"}'
FORMAT_CASES = {  # completion -> the release's format reward
    f"<think>The light goes on at 2.5 s.</think><answer>{JSON}</answer>": 1.0,
    f"<think>t</think><answer>{JSON}</answer><|im_end|>": 1.0,  # decoded without special tokens: EOS aside
    f'<think>t</think>\n<answer>\n{{"start_time":"2.5","end_time":"7.0"}}\n</answer>': 1.0,  # whitespace between
    f"<think>a</think>b</think><answer>{JSON}</answer>": 1.0,  # `.*?` runs to the last </think>
    '<think>t</think><answer>{"start_time": "1.2.3", "end_time": "7"}</answer>': 1.0,  # digits and dots pass
    "<think>t</think><answer>2.5 to 7.0</answer>": 0.0,  # vrl's answer
    '<think>t</think><answer>{"start_time": 2.5, "end_time": 7.0}</answer>': 0.0,  # numbers not quoted
    '<think>t</think><answer>{"end_time": "7.0", "start_time": "2.5"}</answer>': 0.0,  # keys in the other order
    '<think>t</think><answer>{"start_time": "2.5", "end_time": "7.0", "c": 1}</answer>': 0.0,  # another key
    f"<think>t</think><answer>{JSON}</answer>\n": 0.0,  # anything after </answer>, even a newline
    f"Sure. <think>t</think><answer>{JSON}</answer>": 0.0,  # anything before <think>
    f"<answer>{JSON}</answer>": 0.0,  # no think
}


@pytest.mark.parametrize("completion", FORMAT_CASES)
def test_release_format_reward_worked_examples(completion):
    """Each completion gets the release's format reward, and it is what the release's own regex gives."""
    decoded = completion.removesuffix("<|im_end|>")  # what the release matches: decoded without special tokens
    assert rewards.release_format_reward(completion) == FORMAT_CASES[completion]
    assert FORMAT_CASES[completion] == float(bool(re.fullmatch(RELEASE_PATTERN, decoded, re.DOTALL)))


def test_temporal_r1_scores_vrls_answer_zero_and_the_releases_json_one():
    """The issue's two cases: vrl's `2.5 to 7.0` gets format 0 and IoU 0 under temporal_r1 (the release cannot read
    it), the release's JSON format 1 and IoU 1; total = 0.5 * IoU + 0.5 * format, as the release's reward."""
    ours, theirs = "<think>t</think><answer>2.5 to 7.0</answer>", f"<think>t</think><answer>{JSON}</answer>"
    assert rewards.score(ours, TVG, style="temporal_r1") == rewards.Reward(0.0, 0.0, 0.0, 0.0, 0.0)
    r = rewards.score(theirs, TVG, style="temporal_r1")
    assert (r.total, r.format, r.iou, r.segment, r.parsed) == (1.0, 1.0, 1.0, (2.5, 7.0), True)
    assert rewards.score(ours, TVG).total == 1.0  # vrl reads its own form (and the JSON, see test_rewards)
    half = '<think>t</think><answer>{"start_time": "4.75", "end_time": "7.0"}</answer>'  # IoU 2.25 / 4.5
    assert rewards.score(half, TVG, style="temporal_r1").total == 0.5 * 0.5 + 0.5 * 1.0


def test_release_segment_reads_as_the_release_evaluation():
    """The first answer after the first <think> is read, a reversed pair swapped; none, or a time that is not a
    number, is None (the release's evaluation then scores IoU 0)."""
    two = f'<think>t</think><answer>{JSON}</answer> <think>u</think><answer>{JSON.replace("2.5", "1.0")}</answer>'
    assert rewards.release_segment(two) == (2.5, 7.0)
    assert rewards.release_segment(f'<think>t</think><answer>{{"start_time": "7", "end_time": "2"}}</answer>') == (
        2.0, 7.0)
    assert rewards.release_segment('<think>t</think><answer>{"start_time": "1.2.3", "end_time": "7"}</answer>') is None
    assert rewards.release_segment(f"<answer>{JSON}</answer>") is None


def test_mcq_under_temporal_r1_keeps_vrls_reward():
    """The release has no mcq reward: temporal_r1 scores mcq (and gqa) exactly as vrl does."""
    for text in ("<think>t</think><answer>B</answer>", '<think>t</think><answer>{"answer": "B"}</answer>'):
        assert rewards.score(text, MCQ, style="temporal_r1") == rewards.score(text, MCQ)


# -------------------------------------------------------------------------------------------- prompts, rendered


def rendered(template_file, system, user, expanded):
    """A chat template rendered by transformers for [system?, user: video + text], the generation prompt added and
    the one video placeholder replaced by our expanded video text (what the processor does with it)."""
    tok = toy.toy_tokenizer()
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": [{"type": "video", "video": "clip.mp4"}, {"type": "text", "text": user}]}]
    text = tok.apply_chat_template(messages, chat_template=(TEMPLATES / template_file).read_text(), tokenize=False,
                                   add_generation_prompt=True)
    placeholder = "<|vision_start|><|video_pad|><|vision_end|>"
    assert text.count(placeholder) == 1
    return text.replace(placeholder, expanded)


def ours(row, family, style="vrl", thinking=False):
    tok = toy.toy_tokenizer()
    return tok.decode(data.build_prompt(row, tok, family, GRID, BLOCKS, style, thinking))


@pytest.mark.parametrize("row", [TVG, MCQ], ids=["tvg", "mcq"])
@pytest.mark.parametrize("style", data.PROMPT_STYLES)
def test_qwen2_5_vl_prompt_equals_its_template(style, row):
    """Qwen2.5-VL: vrl writes the template's default system turn; temporal_r1 passes the release's system prompt,
    which the template writes instead. Either way our prompt is the template's, byte for byte."""
    video = data.video_text("qwen2_5_vl", GRID, BLOCKS)
    system = data.RELEASE_SYSTEM if style == "temporal_r1" else None  # vrl: the template adds its own default
    expected = rendered("qwen2_5_vl_instruct.jinja", system, data.user_text(row, style), video)
    assert ours(row, "qwen2_5_vl", style) == expected
    assert expected.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n") == (style == "vrl")


@pytest.mark.parametrize("style", data.PROMPT_STYLES)
@pytest.mark.parametrize("variant", ["instruct", "thinking"])
def test_qwen3_vl_prompt_equals_its_template(variant, style):
    """Qwen3-VL: no system turn unless the style has one (its template has no default), timestamps per block, and
    the Thinking checkpoints' generation prompt ending with `<think>\\n`, which our prompt ends with too."""
    video = data.video_text("qwen3_vl", GRID, BLOCKS)  # "<0.2 seconds><|vision_start|>...", as the processor
    system = data.system_text(style, "qwen3_vl")
    expected = rendered(f"qwen3_vl_{variant}.jinja", system, data.user_text(TVG, style), video)
    assert ours(TVG, "qwen3_vl", style, thinking=variant == "thinking") == expected
    assert expected.startswith("<|im_start|>system\n") == (style == "temporal_r1")
    assert expected.endswith("<|im_start|>assistant\n<think>\n" if variant == "thinking" else "<|im_start|>assistant\n")


def test_temporal_r1_grounding_prompt_written_out():
    """The release's system prompt, the video, then its grounding question around the moment (the caption inside
    the question convert.py writes; any other question is used as it is). No duration line, no answer example."""
    video = "<|vision_start|>" + "<|video_pad|>" * 8 + "<|vision_end|>"
    assert ours(TVG, "qwen2_5_vl", "temporal_r1") == (
        f"<|im_start|>system\n{RELEASE_EVAL_SYSTEM}<|im_end|>\n<|im_start|>user\n{video}"
        'Give the query: "the red circle appears", when does the described content occur in the video?.<|im_end|>\n'
        "<|im_start|>assistant\n")
    assert data.user_text(dict(TVG, question="The red circle appears."), "temporal_r1") == (
        'Give the query: "The red circle appears.", when does the described content occur in the video?.')
    assert data.user_text(MCQ, "temporal_r1") == data.user_text(MCQ)  # mcq / gqa: vrl's user turn


def test_sft_targets_per_style_and_after_an_open_think():
    """temporal_r1's grounding target is the release's JSON (format 1 under its reward); after a prompt that opened
    `<think>\\n` the target is the rest, and `<think>\\n` + target has vrl's format."""
    target = data.target_text(TVG, "temporal_r1")
    assert target.endswith('<answer>{"start_time": "2.5", "end_time": "7.0"}</answer>')
    assert rewards.release_format_reward(target) == 1.0
    rest = data.target_text(MCQ, "vrl", data.THINK_OPEN)
    assert rest == "The answer is blue.</think><answer>B</answer>"
    assert rewards.format_reward(data.THINK_OPEN + rest) == 1.0


# ------------------------------------------------------------------------------------------ thinking checkpoints


def test_thinking_is_detected_from_the_checkpoints_template(tmp_path):
    """Thinking template -> True; Instruct, Qwen2.5-VL or none (the toy) -> False. A checkpoint folder whose template
    is only the processor's chat_template.json (which the tokenizer does not read) is detected too."""
    tok = toy.toy_tokenizer()
    assert not data.opens_thinking(tok)
    for name, thinks in [("qwen3_vl_thinking", True), ("qwen3_vl_instruct", False), ("qwen2_5_vl_instruct", False)]:
        tok.chat_template = (TEMPLATES / f"{name}.jinja").read_text()
        assert data.opens_thinking(tok) == thinks
    toy.toy_tokenizer().save_pretrained(tmp_path)
    (tmp_path / "chat_template.json").write_text(
        json.dumps({"chat_template": (TEMPLATES / "qwen3_vl_thinking.jinja").read_text()}))
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.chat_template is None and data.opens_thinking(loaded)


def test_a_thinking_prompt_is_scored_with_its_open_think(toy_dir):
    """The bug: a Thinking checkpoint continues the `<think>\\n` its prompt ends with, so its completion alone has
    format 0. Sample.opened holds that start and eval/select_data/train score opened + completion: format 1."""
    tok = toy.toy_tokenizer()
    tok.chat_template = (TEMPLATES / "qwen3_vl_thinking.jinja").read_text()
    row = schema.load_jsonl(str(toy_dir / "train.jsonl"))[0]
    (sample,), _ = data.prepare_batch([row], tok, "qwen3_vl", data.VideoConfig(max_frames=4))
    tail = tok.encode(data.THINK_OPEN, add_special_tokens=False)
    assert sample.opened == data.THINK_OPEN and sample.prompt_ids[-len(tail):].tolist() == tail
    assert tok.convert_ids_to_tokens(tail[:1]) == ["<think>"]  # one token, as in the Qwen3-VL vocabulary
    completion = "It moves.</think>\n\n<answer>B</answer><|im_end|>"
    assert rewards.format_reward(completion) == 0.0
    assert metrics.score_completion(completion, sample.row, opened=sample.opened)["format"] == 1.0
    assert select_data.reward_table([completion], sample.row, sample.style, sample.opened)[0][1] == 1.0


def test_prompt_style_flags():
    """train.py, eval.py and select_data.py take --prompt-style (vrl by default); eval and select_data refuse an
    unknown style when parsing, and select_data's resume log records it (its rewards depend on it)."""
    assert config.parse_config([]).prompt_style == "vrl"
    assert config.parse_config(["--prompt-style", "temporal_r1"]).prompt_style == "temporal_r1"
    args = ev.parse_args(["--model", "m", "--data", "d", "--prompt_style", "temporal_r1"])
    assert args.prompt_style == "temporal_r1"
    with pytest.raises(SystemExit):
        ev.parse_args(["--model", "m", "--data", "d", "--prompt-style", "r1"])
    args = select_data.parse_args(["--model", "m", "--data", "d", "--out", "o.jsonl", "--prompt-style", "temporal_r1"])
    assert select_data.sampling_settings(args)["prompt_style"] == "temporal_r1"


def test_train_takes_its_prompts_in_the_configured_style(toy_dir):
    """train.take_prompts builds the batch in cfg.prompt_style: the samples carry it (grpo_step scores with it) and
    their prompts hold the release's system prompt."""
    import train
    tok = toy.toy_tokenizer()
    rows = schema.load_jsonl(str(toy_dir / "train.jsonl"))
    (sample,) = train.take_prompts(rows, iter(range(len(rows))), 1, tok, "qwen2_5_vl", data.VideoConfig(max_frames=4),
                                   [], "temporal_r1")
    assert sample.style == "temporal_r1" and data.RELEASE_SYSTEM in tok.decode(sample.prompt_ids)


def test_eval_and_select_data_score_in_the_style_they_are_given(toy_dir, monkeypatch):
    """eval.answer and select_data.sample_chunk build prompts and score answers in the given style: the same
    `2.5 to 7.0`-form answer (sampling replaced by a fixed text) has format 1 under vrl and 0 under temporal_r1."""
    import types
    tok = toy.toy_tokenizer()
    row = next(r for r in schema.load_jsonl(str(toy_dir / "train.jsonl")) if r["task"] == "tvg")
    fixed = lambda policy, tok, samples, group_size, *a, **kw: types.SimpleNamespace(
        texts=["<think>t</think><answer>1.0 to 2.0</answer>"] * (len(samples) * group_size),
        truncated=torch.zeros(len(samples) * group_size, dtype=torch.bool))
    monkeypatch.setattr(metrics.vlm, "rollout", fixed)
    video_cfg = data.VideoConfig(max_frames=4)
    for style, fmt in [("vrl", 1.0), ("temporal_r1", 0.0)]:
        (record,), _ = metrics.answer(None, tok, [row], "qwen2_5_vl", video_cfg, progress=False, style=style)
        assert record["format"] == fmt
        args = types.SimpleNamespace(group_size=2, max_new_tokens=8, temperature=1.0, prompt_style=style)
        (result,) = select_data.sample_chunk(None, tok, [row], "qwen2_5_vl", video_cfg, args, seed=0)
        assert [parts[1] for parts in result["rewards"]] == [fmt, fmt]
