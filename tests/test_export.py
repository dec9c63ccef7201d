"""The checkpoint folder as the field's tools see it, as worked examples: a tiny run's checkpoint-N/ opens with
transformers' from_pretrained and AutoProcessor, its chat template renders exactly the prompt vrl trains on, its
weights are bf16 (the float32 ones a resume needs lie beside them), and its config.json reads the same in
transformers 5 and in transformers 4.51 (the version lmms-eval and vLLM stacks of the paper's time use)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

import checkpoint
import data
import model as vlm
import schema
import video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
VIDEO = video.VideoConfig(max_frames=4)
PROCESSOR_FILES = ["chat_template.jinja", "chat_template.json", "generation_config.json", "merges.txt",
                   "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
                   "video_preprocessor_config.json", "vocab.json"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, toy_dir, toy_tok):
    """One SFT step of a tiny Qwen2.5-VL from a folder holding only its weights and the toy tokenizer (no
    processor files: the toy default's case) -> (the starting folder, checkpoint-1)."""
    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    vlm.load_model(vlm.tiny_config("qwen2_5_vl", toy_tok)).save_pretrained(root / "init")
    toy_tok.save_pretrained(root / "init")
    proc = subprocess.run([sys.executable, "train.py", "--model", str(root / "init"), "--data",
                           str(toy_dir / "train.jsonl"), "--out", str(root / "run"), "--mode", "sft", "--steps", "1",
                           "--batch-size", "2", "--pack-prompts", "2", "--max-frames", "4", "--dtype", "float32",
                           "--lr", "1e-3", "--save-every", "1"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root / "init", root / "run" / "checkpoint-1"


def messages(row, family="qwen2_5_vl"):
    """The chat messages of vrl's prompt for a row: its system turn (none for Qwen3-VL, as its template), then the
    video and the user text."""
    system = data.system_text("vrl", family)
    return [{"role": "system", "content": [{"type": "text", "text": system}]}] * (system is not None) + \
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": data.user_text(row)}]}]


def vrl_prompt(row, tokenizer, family="qwen2_5_vl"):
    """(text, ids) of the prompt vrl builds for a row (data.prepare_sample), and its number of video tokens."""
    ids = data.prepare_sample(row, tokenizer, family, VIDEO).prompt_ids.tolist()
    return tokenizer.decode(ids), ids, ids.count(tokenizer.convert_tokens_to_ids("<|video_pad|>"))


def test_a_checkpoint_holds_the_processor_files_and_bf16_weights_that_round_the_float32_ones(run):
    """checkpoint-1 holds the processor files, model.safetensors in bf16 (half the bytes of float32) and the
    float32 weights training goes on from; from_pretrained loads the export, each weight the float32 one rounded."""
    _, ckpt = run
    assert set(PROCESSOR_FILES) <= set(os.listdir(ckpt))
    master = load_file(ckpt / checkpoint.MASTER)
    assert {w.dtype for w in load_file(ckpt / "model.safetensors").values()} == {torch.bfloat16}
    assert {w.dtype for w in master.values()} == {torch.float32}
    loaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(ckpt, dtype=torch.float32).state_dict()
    assert loaded.keys() == master.keys()
    assert all(torch.equal(loaded[k], master[k].to(torch.bfloat16).float()) for k in master)
    assert AutoConfig.from_pretrained(ckpt).dtype == torch.bfloat16


def test_the_checkpoint_chat_template_renders_exactly_vrls_prompt(run, toy_dir):
    """For each toy row, the checkpoint's chat template (read by AutoTokenizer, as a processor reads it) applied to
    the row's messages, its one <|video_pad|> expanded to the video's tokens as the processor does, is the text
    and the token ids of the prompt vrl trains on."""
    _, ckpt = run
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    for row in schema.load_jsonl(str(toy_dir / "train.jsonl")):
        text, ids, n_video = vrl_prompt(row, tokenizer)
        rendered = tokenizer.apply_chat_template(messages(row), add_generation_prompt=True, tokenize=False)
        assert rendered.count("<|video_pad|>") == 1
        rendered = rendered.replace("<|video_pad|>", "<|video_pad|>" * n_video)
        assert rendered == text
        assert tokenizer(rendered, add_special_tokens=False)["input_ids"] == ids


def test_the_processor_configs_carry_the_family_and_our_video_settings(run):
    """preprocessor_config.json loads with transformers' image processor; video_preprocessor_config.json names the
    family's video processor and our frame rule (2 fps, 4..4 frames here) and per-frame pixel bounds."""
    from transformers import Qwen2VLImageProcessorPil
    _, ckpt = run
    image = Qwen2VLImageProcessorPil.from_pretrained(ckpt)
    assert (image.patch_size, image.merge_size, image.temporal_patch_size) == (14, 2, 2)
    fields = json.loads((ckpt / "video_preprocessor_config.json").read_text())
    assert fields["video_processor_type"] == "Qwen2VLVideoProcessor" and fields["processor_class"] == \
        "Qwen2_5_VLProcessor"
    assert (fields["fps"], fields["min_frames"], fields["max_frames"]) == (2.0, 4, 4)
    assert fields["min_pixels"] == VIDEO.frame_min_tokens * 28 ** 2
    # the most one frame gets: 2048 squares over the fewest frames (4) x 2 frames a patch = 1024, capped at 768
    assert fields["max_pixels"] == video.FRAME_MAX_TOKENS * 28 ** 2


def test_autoprocessor_opens_the_checkpoint(run, toy_dir):
    """transformers.AutoProcessor opens checkpoint-1 and renders vrl's prompt (transformers 5 builds a Qwen-VL
    processor only with torchvision installed, as the field's evaluation stacks have it)."""
    try:
        import torchvision  # noqa: F401
    except Exception as e:  # absent, or built for another torch
        pytest.skip(f"transformers 5's Qwen-VL processors need torchvision, which does not import here ({e!r}); "
                    "test_transformers_4_51_reads_the_checkpoint opens it with AutoProcessor instead")
    from transformers import AutoProcessor
    _, ckpt = run
    processor = AutoProcessor.from_pretrained(ckpt)
    row = schema.load_jsonl(str(toy_dir / "train.jsonl"))[0]
    text, _, n_video = vrl_prompt(row, processor.tokenizer)
    rendered = processor.apply_chat_template(messages(row), add_generation_prompt=True, tokenize=False)
    assert rendered.replace("<|video_pad|>", "<|video_pad|>" * n_video) == text


def test_config_json_holds_the_text_fields_at_the_top_level_and_transformers_5_reads_it_unchanged(run):
    """config.json of a Qwen2.5-VL checkpoint in its release's layout: every field of the text model at the top
    level, with the value transformers 5 writes in text_config (rope as rope_theta + rope_scaling), vision_config
    beside them; transformers 5 reads the same text and vision configs from it as from the starting folder."""
    init, ckpt = run
    written = json.loads((init / "config.json").read_text())["text_config"]  # transformers 5's own layout
    exported = json.loads((ckpt / "config.json").read_text())
    assert "text_config" not in exported and "vision_config" in exported
    rope = written.pop("rope_parameters")
    for name, value in written.items():
        if name not in ("model_type", "dtype"):
            assert exported[name] == value, name
    assert exported["rope_theta"] == rope["rope_theta"]
    assert exported["rope_scaling"] == {"rope_type": "default", "mrope_section": rope["mrope_section"]}
    before, after = AutoConfig.from_pretrained(init), AutoConfig.from_pretrained(ckpt)
    for part in ("text_config", "vision_config"):
        a, b = getattr(before, part).to_dict(), getattr(after, part).to_dict()
        assert {k: v for k, v in a.items() if k != "dtype"} == {k: v for k, v in b.items() if k != "dtype"}


def test_a_run_from_a_checkpoint_copies_its_processor_files_byte_for_byte(run, tmp_path):
    """A starting folder that has processor files (a released checkpoint, or one of ours) hands them on as they
    are: exporting a model started from checkpoint-1 writes the same bytes, and its float32 weights as asked."""
    _, ckpt = run
    model = vlm.load_model(str(ckpt))
    config = {"model": str(ckpt), "save_dtype": "float32", "fps": 1.0, "min_frames": 8, "max_frames": 8,
              "video_tokens": 64, "frame_min_tokens": 1}
    checkpoint.export(str(tmp_path), model, model.state_dict(), str(ckpt), config)
    for name in PROCESSOR_FILES:
        assert (tmp_path / name).read_bytes() == (ckpt / name).read_bytes(), name
    assert {w.dtype for w in load_file(tmp_path / "model.safetensors").values()} == {torch.float32}


def test_a_qwen3_vl_export_keeps_its_nested_config_and_its_template_renders_vrls_prompt(tmp_path, toy_dir, toy_tok):
    """Qwen3-VL: config.json keeps text_config (its release's layout, which every transformers that knows the
    family reads), the processor files name Qwen3-VL's classes, and the chat template renders vrl's prompt (its
    timestamps and per-block video tokens are the processor's expansion of the one <|video_pad|>)."""
    source = tmp_path / "source"
    toy_tok.save_pretrained(source)
    model = vlm.load_model(vlm.tiny_config("qwen3_vl", toy_tok))
    config = {"model": str(source), "save_dtype": "bfloat16", **{k: getattr(VIDEO, k) for k in video.VIDEO_FLAGS}}
    checkpoint.export(str(tmp_path / "ckpt"), model, model.state_dict(), str(source), config)
    ckpt = tmp_path / "ckpt"
    assert "text_config" in json.loads((ckpt / "config.json").read_text())
    loaded = vlm.load_model(str(ckpt)).state_dict()  # from_pretrained, bf16 weights read back as float32
    assert all(torch.equal(loaded[k], w.to(torch.bfloat16).float()) for k, w in model.state_dict().items())
    assert json.loads((ckpt / "video_preprocessor_config.json").read_text())["video_processor_type"] == \
        "Qwen3VLVideoProcessor"
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    row = schema.load_jsonl(str(toy_dir / "train.jsonl"))[1]
    text, _, _ = vrl_prompt(row, tokenizer, "qwen3_vl")
    rendered = tokenizer.apply_chat_template(messages(row, "qwen3_vl"), add_generation_prompt=True, tokenize=False)
    video_part = text[text.index("user\n") + 5:text.index(data.user_text(row))]
    assert rendered.replace("<|vision_start|><|video_pad|><|vision_end|>", video_part) == text


# ------------------------------------------------------------------------------ transformers 4.51, in a subprocess

# huggingface_hub 0.30 imports requests, which the transformers 5 stack no longer installs: it and its own
# dependencies come along (--no-deps keeps pip from touching torch)
OLD_STACK = ["transformers==4.51.3", "tokenizers==0.21.1", "huggingface_hub==0.30.2", "requests==2.32.3",
             "urllib3==2.2.3", "idna==3.10", "charset-normalizer==3.4.0", "certifi==2024.8.30"]
READ_WITH_4_51 = """
import json, sys, torch, transformers
from transformers import AutoConfig, AutoProcessor, Qwen2_5_VLForConditionalGeneration
ckpt, messages = sys.argv[1], json.loads(sys.argv[2])
config = AutoConfig.from_pretrained(ckpt)
processor = AutoProcessor.from_pretrained(ckpt)
model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(ckpt, torch_dtype=torch.float32,
                                                                 output_loading_info=True)
print(json.dumps({"version": transformers.__version__, "hidden_size": config.hidden_size,
                  "num_hidden_layers": config.num_hidden_layers, "vocab_size": config.vocab_size,
                  "mrope_section": config.rope_scaling["mrope_section"], "processor": type(processor).__name__,
                  "prompt": processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
                  "missing": info["missing_keys"], "unexpected": info["unexpected_keys"],
                  "weights": {k: v.sum().item() for k, v in model.state_dict().items()}}))
"""


@pytest.fixture(scope="module")
def transformers_4_51(tmp_path_factory):
    """transformers 4.51.3 and its tokenizers, installed by pip into a temporary folder (skipped if pip cannot)."""
    target = tmp_path_factory.mktemp("transformers-4.51")
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                               str(target), *OLD_STACK], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("pip could not install transformers 4.51.3 within 5 minutes")
    if proc.returncode != 0:
        pytest.skip(f"pip could not install {' '.join(OLD_STACK)}: {proc.stderr.strip()[-300:]}")
    return target


def test_transformers_4_51_reads_the_checkpoint(run, toy_dir, transformers_4_51):
    """transformers 4.51.3 (a separate process) reads checkpoint-1 as it is: the config's true sizes (not its
    class defaults, hidden 8192 / 80 layers), AutoProcessor with the chat template rendering vrl's prompt, and
    the model with every weight found and equal to the export."""
    _, ckpt = run
    row = schema.load_jsonl(str(toy_dir / "train.jsonl"))[0]
    proc = subprocess.run([sys.executable, "-c", READ_WITH_4_51, str(ckpt), json.dumps(messages(row))],
                          env=dict(ENV, PYTHONPATH=str(transformers_4_51)), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["version"] == "4.51.3"
    assert (got["hidden_size"], got["num_hidden_layers"], got["vocab_size"]) == (64, 2, 439)
    assert got["mrope_section"] == [2, 3, 3] and got["processor"] == "Qwen2_5_VLProcessor"
    text, _, n_video = vrl_prompt(row, AutoTokenizer.from_pretrained(ckpt))
    assert got["prompt"].replace("<|video_pad|>", "<|video_pad|>" * n_video) == text
    assert got["missing"] == [] and got["unexpected"] == []
    export = Qwen2_5_VLForConditionalGeneration.from_pretrained(ckpt, dtype=torch.float32).state_dict()
    assert {k.replace("model.language_model.", "model.").replace("model.visual.", "visual."): v.sum().item()
            for k, v in export.items()} == pytest.approx(got["weights"], rel=1e-6)  # a sum's order may differ
