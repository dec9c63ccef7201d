"""Checkpoints: a Hugging Face folder the field's tools open (transformers' from_pretrained and AutoProcessor,
lmms-eval, vLLM) plus the trainer state an exact resume needs (float32 weights, AdamW's moments, scheduler, step,
every rank's RNG, config), written to a temporary folder and renamed, so a kill at any moment leaves either the whole
checkpoint or none.

    OUT/checkpoint-STEP/   model.safetensors       the weights in --save-dtype (bfloat16, the release's; rank 0)
                           config.json, generation_config.json
                           processor files         preprocessor_config.json, video_preprocessor_config.json,
                                                   chat_template.json/.jinja, tokenizer.json, tokenizer_config.json,
                                                   vocab.json, merges.txt: those of the model the run started from
                           master_weights.safetensors  the float32 weights training goes on from (resume)
                           trainer_state.pt   step, scheduler, optimizer hyper-parameters, RNG of each rank, config
                           optimizer/         AdamW's moments, sharded: each rank writes its own part
                                              (torch.distributed.checkpoint: one .distcp file per rank + .metadata)

Nothing here is unpickled as code. trainer_state.pt holds only tensors, numbers, strings and lists/tuples/dicts of
them, and is read with `torch.load(weights_only=True)`. optimizer/ holds tensors only, which DCP reads with
weights_only=True; its .metadata file is a plain pickle of DCP's own index classes, which we read with an
unpickler that admits those classes (and torch's dtypes and sizes) and nothing else, and an entry stored as bytes
(which DCP would read as a full pickle) is refused. A pickle read without such limits runs whatever code it names:
a checkpoint folder is a file someone could plant, so a state that needs more than plain data is refused.
"""

import json
import math
import os
import pickle
import random
import re
import shutil

import numpy as np
import torch
from safetensors.torch import save_file
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_optimizer_state_dict)

import distributed
import video

STATE = "trainer_state.pt"
MASTER = distributed.MASTER_WEIGHTS  # the float32 weights a resume goes on from (model.safetensors may be bf16)
OPTIMIZER = "optimizer"  # the sharded AdamW moments (a DCP folder)
NAME = re.compile(r"checkpoint-(\d+)")  # checkpoint-best, checkpoint-final ... are not ours and left alone
TMP = re.compile(r"\.tmp-checkpoint-(\d+)")  # a save in progress, or one a kill interrupted


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the folder and what to do."""


def checkpoints(out):
    """The checkpoint-STEP folders of a run folder, oldest first."""
    found = [d for d in os.listdir(out) if NAME.fullmatch(d)] if os.path.isdir(out) else []
    return sorted((os.path.join(out, d) for d in found), key=step_of)


def step_of(path):
    """checkpoint-STEP -> STEP."""
    return int(NAME.fullmatch(os.path.basename(os.path.normpath(path))).group(1))


def rng_state():
    """The torch, python and numpy RNG states in plain types (numpy's key array as a list of ints)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": [kind, keys.tolist(), pos, has_gauss, cached]}


def set_rng_state(rng):
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def save(out, step, policy, optimizer, scheduler, config, keep_last, rank):
    """Write OUT/checkpoint-STEP and keep the last keep_last. Every rank must call it (collectives): each rank writes
    its shard of AdamW's moments; rank 0 writes the gathered full weights (the HF folder, export below, with the
    processor files of config["model"]) and the trainer state. A failed write on any rank (a full disk), or one
    interrupted (Ctrl-C), leaves no temporary folder, the checkpoints before it intact, and raises CheckpointError on
    every rank. Returns the folder."""
    model_state = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    optim_state = get_optimizer_state_dict(policy, optimizer)  # sharded: {"state": DTensors, "param_groups": ...}
    rngs = distributed.gather([rng_state()])  # ranks' RNG states, in rank order, on rank 0
    final, tmp = os.path.join(out, f"checkpoint-{step}"), os.path.join(out, f".tmp-checkpoint-{step}")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    distributed.broadcast(None)  # no rank writes before the old temporary folder is gone
    problem = None
    try:
        dcp.save({"state": optim_state["state"]}, checkpoint_id=os.path.join(tmp, OPTIMIZER))
        if rank == 0:
            export(tmp, policy, model_state, config["model"], config)
            save_file(distinct(model_state), os.path.join(tmp, MASTER))
            torch.save({"step": step, "param_groups": optim_state["param_groups"], "scheduler": scheduler.state_dict(),
                        "rng": rngs, "config": config}, os.path.join(tmp, STATE))
    except (Exception, dcp.CheckpointException, KeyboardInterrupt) as e:  # a full disk: OSError, RuntimeError
        problem = reason(e)  # (torch.save), DCP's; Ctrl-C: KeyboardInterrupt (DCP wraps it in its own exception)
    problems = [p for p in distributed.gather([problem]) if p]
    error = None
    if rank == 0 and problems:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = [os.path.basename(c) for c in checkpoints(out)]
        intact = f"in {out} are intact ({', '.join(kept) or 'none yet'})"
        if any(p.startswith("KeyboardInterrupt") for p in problems):
            error = (f"the write of {final} was interrupted (Ctrl-C) and discarded; the checkpoints before it "
                     f"{intact}: resume with --resume auto.")
        else:
            error = (f"could not write {final} ({problems[0]}). Is the disk full? The checkpoints already {intact}: "
                     "free some space, then run again with --resume auto.")
    elif rank == 0:
        shutil.rmtree(final, ignore_errors=True)  # only when re-running a step that was already saved
        os.replace(tmp, final)
        for old in checkpoints(out)[:-keep_last]:
            shutil.rmtree(old)
    error = distributed.broadcast(error)  # also the barrier: no rank goes on before the folder is complete
    if error:
        raise CheckpointError(error)
    return final


def reason(e):
    """An error in one line; DCP's CheckpointException (a BaseException) carries each failed rank's traceback,
    whose last line says what went wrong."""
    lines = str(e).strip().splitlines() or [""]
    return (lines[-1] if isinstance(e, dcp.CheckpointException) else f"{type(e).__name__}: {lines[0]}")[:300]


class MetadataReader(dcp.FileSystemReader):
    """DCP's reader, but its .metadata pickle may name only DCP's index classes and torch's dtypes and sizes, each
    by its exact name (a dotted name such as `os.system` reached through a module's imports is refused too)."""

    ALLOWED = {("torch.distributed.checkpoint.metadata", name) for name in (
        "Metadata", "TensorStorageMetadata", "BytesStorageMetadata", "ChunkStorageMetadata", "TensorProperties",
        "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING")} | {
        ("torch.distributed.checkpoint.filesystem", "_StorageInfo"), ("torch", "Size"),
        ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"),
        ("collections", "OrderedDict")}  # shapes, layouts, the folder's path

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            dtype = module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)  # torch.float32 ...
            if (module, name) in MetadataReader.ALLOWED or dtype:
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"GLOBAL {module}.{name}")

    def read_metadata(self, *args, **kwargs):
        path = self.fs.concat_path(self.path, ".metadata")
        with self.fs.create_stream(path, "rb") as f:
            metadata = self.Unpickler(f).load()
        metadata.storage_meta = metadata.storage_meta or dcp.metadata.StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class TensorsOnly(DefaultLoadPlanner):
    """DCP reads an entry stored as bytes with a full pickle: our optimizer folder has none, so one is refused."""

    def load_bytes(self, read_item, value):
        raise CheckpointError(f"{read_item.dest_index.fqn} is stored as a pickle, not a tensor: refused")


def read_state(path):
    """The trainer state of a checkpoint folder, read with weights_only=True (lazily: the optimizer's tensors
    stay on disk until used). Anything else is a CheckpointError naming the file."""
    file = os.path.join(path, STATE)
    if not os.path.isfile(file):
        raise CheckpointError(f"{path} is not a checkpoint of a training run: it has no {STATE}")
    try:
        return torch.load(file, weights_only=True, mmap=True)
    except Exception as e:  # UnpicklingError for a pickle that names code, RuntimeError for a torn file
        code = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f"it calls {code.group(1)}, which is code, not data" if code else f"{type(e).__name__}: " + \
            (str(e).strip().splitlines() or [""])[0][:120]
        raise CheckpointError(
            f"refused to load {file} ({what}). A trainer state holds only tensors, numbers and strings; loading this "
            "file as a full pickle could run code planted in it. Resume from another checkpoint, or delete this "
            "one.") from e


def resume_from(resume, out):
    """The checkpoint folder to resume from, or None. resume: '' | 'auto' (the last complete one in out) | a folder."""
    if resume == "auto":
        found = [d for d in checkpoints(out) if os.path.exists(os.path.join(d, STATE))]
        return found[-1] if found else None
    if resume and not os.path.isfile(os.path.join(resume, STATE)):
        raise CheckpointError(f"--resume {resume}: not a checkpoint folder of a training run (no {STATE} in it)")
    return resume or None


def check_config(path, config, resumable):
    """A resumed run is the same experiment: a setting that differs from the config stored in the checkpoint refuses
    the resume (a CheckpointError naming each), unless it is one of `resumable` -> those, as text ('' if none).
    A key NAME_sha256 is the digest of the file --NAME names: where the checkpoint stored one, the file's contents
    decide and its path may change (reported); a checkpoint from before the digest compares the path."""
    stored = read_state(path)["config"]
    resumable = (*resumable, *(k[:-len("_sha256")] for k in config if k.endswith("_sha256") and k in stored))
    changed = [k for k in config if k in stored and stored[k] != config[k]]
    said = lambda keys: ", ".join(f"the contents of --{k[:-7].replace('_', '-')} (sha256 {stored[k][:12]} -> "
                                  f"{config[k][:12]})" if k.endswith("_sha256") else
                                  f"--{k.replace('_', '-')} {stored[k]!r} -> {config[k]!r}" for k in keys)
    refused = [k for k in changed if k not in resumable]
    if refused:
        raise CheckpointError(f"{path} was trained with other settings: {said(refused)}. Resume with the "
                              f"checkpoint's values, or start a new run from its weights in another --out.")
    return said(changed)


def load_state(path, policy, optimizer, scheduler, rank):
    """Restore AdamW (each rank reads its own shard), scheduler and this rank's RNG -> the step to continue from."""
    state = read_state(path)
    shards = get_optimizer_state_dict(policy, optimizer)["state"]  # this rank's part, to be filled in place
    try:
        dcp.load({"state": shards}, storage_reader=MetadataReader(os.path.join(path, OPTIMIZER)),
                 planner=TensorsOnly())
    except (Exception, dcp.CheckpointException) as e:
        raise CheckpointError(f"could not read {os.path.join(path, OPTIMIZER)} ({reason(e)}). Resume from another "
                              "checkpoint, or delete this one.") from e
    set_optimizer_state_dict(policy, optimizer, {"state": shards, "param_groups": state["param_groups"]})
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"][min(rank, len(state["rng"]) - 1)])  # more ranks than saved: the last rank's
    return state["step"]


# ----------------------------------------------------------------------------------------------------------------
# the Hugging Face folder other tools open (safe to skip on a first read)
#
# What lmms-eval, vLLM and transformers' AutoProcessor need from checkpoint-STEP/ beside the weights: the processor
# files of the model the run started from, copied as they are. A starting folder that has none (the toy default, the
# tests' tiny models) gets the family's processor written from our video settings, with a chat template rendering
# exactly the prompt data.build_prompt builds. A Qwen2.5-VL config.json is written in its release's layout, the text
# model's fields at the top level: transformers 4.5x reads them only there (given transformers 5's text_config alone
# it reads a 7B checkpoint as the class defaults, hidden 8192 and 80 layers, without a word); 5 reads both layouts.

PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json",
                   "chat_template.json", "chat_template.jinja", "tokenizer.json", "tokenizer_config.json",
                   "vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json", "generation_config.json")
QWEN_TOKENIZERS = ("Qwen2Tokenizer", "Qwen2TokenizerFast")  # the class names transformers 4.5x and 5 both know
PROCESSOR_CLASSES = {  # family -> (processor, image processor, video processor) class names of its release
    "qwen2_5_vl": ("Qwen2_5_VLProcessor", "Qwen2VLImageProcessor", "Qwen2VLVideoProcessor"),
    "qwen3_vl": ("Qwen3VLProcessor", "Qwen2VLImageProcessorFast", "Qwen3VLVideoProcessor")}
# The family's chat format: Qwen2.5-VL opens with a default system turn when the messages bring none, Qwen3-VL not;
# a video part is one <|video_pad|>, which the processor expands to the video's tokens.
TURNS = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
         "{{ message['content'] }}{% else %}{% for part in message['content'] %}"
         "{% if part['type'] == 'video' or 'video' in part %}<|vision_start|><|video_pad|><|vision_end|>"
         "{% elif part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
         "{% elif 'text' in part %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CHAT_TEMPLATES = {
    "qwen2_5_vl": "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant."
                  "<|im_end|>\n{% endif %}" + TURNS,
    "qwen3_vl": TURNS}


def export(folder, policy, model_state, source, config):
    """The HF folder: weights in config["save_dtype"], config.json that transformers 4.5x and 5 both read, and the
    processor files of `source` (the folder training started from), or the family's written from our settings."""
    policy.save_pretrained(folder, state_dict={k: v.to(getattr(torch, config["save_dtype"]))
                                               for k, v in model_state.items()})
    family = policy.config.model_type
    write_config(os.path.join(folder, "config.json"), family, config["save_dtype"])
    for name in PROCESSOR_FILES:
        if os.path.isfile(os.path.join(source, name)):
            shutil.copyfile(os.path.join(source, name), os.path.join(folder, name))
    if tokenizer_class(source) not in QWEN_TOKENIZERS:
        write_tokenizer(folder, source)
    if not os.path.isfile(os.path.join(source, "preprocessor_config.json")):
        write_processor(folder, family, config)


def write_config(path, family, dtype):
    """config.json with the save dtype; for Qwen2.5-VL in its release's layout, which transformers 4.5x needs and 5
    reads the same: the text model's fields at the top level (rope as `rope_theta` + `rope_scaling`) beside
    vision_config, and no text_config (4.5x would keep it as a plain dict and fail on it)."""
    with open(path, encoding="utf-8") as f:
        fields = json.load(f)
    for part in (fields.get("text_config", {}), fields.get("vision_config", {})):
        if "dtype" in part:
            part["dtype"] = dtype
    fields["dtype"] = fields["torch_dtype"] = dtype  # transformers 5's name, 4.5x's
    if family == "qwen2_5_vl":
        text = fields.pop("text_config")
        rope = text.pop("rope_parameters")
        top = {k: v for k, v in text.items() if k not in ("model_type", "dtype")}
        top.update(rope_theta=rope["rope_theta"],
                   rope_scaling={"rope_type": rope["rope_type"], "mrope_section": rope["mrope_section"]})
        fields = {**top, **fields}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(fields, f, indent=2, sort_keys=True)


def tokenizer_class(folder):
    """The tokenizer class a folder's tokenizer_config.json names, or None."""
    try:
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
            return json.load(f).get("tokenizer_class")
    except (OSError, ValueError):
        return None


def write_tokenizer(folder, source):
    """The source's tokenizer re-saved as a Qwen2Tokenizer (same tokenizer.json, so the same ids), with vocab.json
    and merges.txt: transformers 4.5x does not know the generic class transformers 5 saves a tokenizer as."""
    from transformers import AutoTokenizer, Qwen2Tokenizer
    loaded = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    Qwen2Tokenizer(tokenizer_object=loaded.backend_tokenizer, eos_token=loaded.eos_token,
                   pad_token=loaded.pad_token).save_pretrained(folder)
    loaded.backend_tokenizer.model.save(folder)  # vocab.json, merges.txt


def write_processor(folder, family, config):
    """The family's processor files for our video settings (data.VideoConfig, from the run's config): frames at
    config fps within [min_frames, max_frames], each frame between frame_min_tokens and the most our budget gives
    one frame (video_tokens over the fewest frames, at most video.FRAME_MAX_TOKENS), in (patch x merge)^2 squares.
    (Transformers' processors have no whole-video pixel budget; this is their nearest setting.)"""
    processor, image, video_processor = PROCESSOR_CLASSES[family]
    c = video.FAMILIES[family]
    square = (c["patch_size"] * c["merge_size"]) ** 2
    fewest = max(video.FRAME_FACTOR, math.ceil(config["min_frames"] / video.FRAME_FACTOR) * video.FRAME_FACTOR)
    min_pixels = config["frame_min_tokens"] * square
    max_pixels = max(min(video.FRAME_MAX_TOKENS, config["video_tokens"] * video.FRAME_FACTOR // fewest) * square,
                     min_pixels)
    common = dict(patch_size=c["patch_size"], temporal_patch_size=c["temporal_patch_size"], merge_size=c["merge_size"],
                  image_mean=list(c["mean"]), image_std=list(c["std"]), do_convert_rgb=True, do_resize=True,
                  do_rescale=True, rescale_factor=1 / 255, do_normalize=True, processor_class=processor)
    files = {
        "preprocessor_config.json": dict(common, image_processor_type=image, min_pixels=4 * square,  # images:
                                         max_pixels=16384 * square,  # the Qwen2.5-VL release's budget
                                         size=dict(shortest_edge=4 * square, longest_edge=16384 * square)),
        "video_preprocessor_config.json": dict(common, video_processor_type=video_processor, min_pixels=min_pixels,
                                               max_pixels=max_pixels,
                                               size=dict(shortest_edge=min_pixels, longest_edge=max_pixels),
                                               fps=config["fps"], min_frames=config["min_frames"],
                                               max_frames=config["max_frames"], do_sample_frames=True),
        "chat_template.json": {"chat_template": CHAT_TEMPLATES[family]}}
    for name, fields in files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            json.dump(fields, f, indent=2, sort_keys=True)
    with open(os.path.join(folder, "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write(CHAT_TEMPLATES[family])


def distinct(state):
    """A state dict whose tensors share no memory (tied embeddings), as safetensors requires: shared ones copied."""
    seen, out = set(), {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        out[name] = tensor.clone() if key in seen else tensor.contiguous()
        seen.add(key)
    return out


if __name__ == "__main__":
    raise SystemExit("checkpoint.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
