"""Policy and reference models, 3-D rotary positions, shared-prompt packing, per-token log-probs, rollouts.

The G completions of a prompt share the prompt, and the prompt's video tokens are most of the sequence. So each group
is laid out once on a row, [prompt, c_1 .. c_G], and the vision tower and the prompt are computed once per group:

    row         | prompt_1: text, video, text | c_11      | c_12    | prompt_2 ...        | c_21      | ...
    rotary pos  | 0 1 2 (t,h,w) ...         m | m+1 m+2 . | m+1 ..  | 0 1 2 ...        m' | m'+1 ..   |

    query sees key      prompt_1   c_11     c_12        A completion's query j sees all of its prompt's keys and
        prompt_1        causal                          its own keys 0..j, at the positions it would have had
        c_11            all        causal               alone after its prompt: exactly the plain forward of
        c_12            all        .        causal      [prompt, c], with the prompt computed once.

Attention lives in attention.py: on the language model, ours (a completion sees its prompt and itself: an exact
block mask with SDPA on CPU, one varlen kernel call on CUDA); on the vision tower, every window of a block in one
varlen call on CUDA. Both are set on their sub-model's config by load_model.

Positions are always ours and always explicit, as the 4-row [text; t; h; w] tensor: the model's own get_rope_index
and its stateful rope_deltas are never used, since transformers has changed that rule between releases and the
checkpoints were trained with one fixed rule (rope_positions below); Qwen3-VL marks time in the prompt's text
instead. We call the model's parts (vision tower, language model, LM head) ourselves, inside a forward of the top
module so that FSDP2's root hooks fire (_root_call).
"""

import json
import os
import types
from dataclasses import dataclass

import torch
from torch.distributed.fsdp import FSDPModule, register_fsdp_forward_method
from torch.utils.checkpoint import checkpoint
from transformers import (AutoConfig, AutoTokenizer, DynamicCache, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                          Qwen3VLConfig, Qwen3VLForConditionalGeneration)
from transformers.cache_utils import DynamicLayer

import attention
from video import DataError

# each family's HF config and model class (its vision constants: video.FAMILIES, the one family table)
CLASSES = {"qwen2_5_vl": (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration),
           "qwen3_vl": (Qwen3VLConfig, Qwen3VLForConditionalGeneration)}
LOGIT_CHUNK = 1024  # completion tokens per LM-head chunk: [1024, 152k] float32 logits is 0.6 GB


# ----------------------------------------------------------------------------------------------------------------
# models

def tiny_config(family, tokenizer, hidden=64, layers=2, vision_init=0.02):
    """A small config of the real class (2 layers of hidden 64 for tests; wider and deeper for the toy world; head
    dim 16, vision depth 2). Vocabulary and special ids come from the tokenizer (any with Qwen's special tokens).
    vision_init: the std of the vision tower's random weights (HF's initializer_range)."""
    tid = tokenizer.convert_tokens_to_ids
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                num_attention_heads=hidden // 16, num_key_value_heads=hidden // 32, max_position_embeddings=4096,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tid("<|im_end|>"),
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden,
                  spatial_merge_size=2, temporal_patch_size=2, initializer_range=vision_init)
    if family == "qwen2_5_vl":  # head_dim 16: mrope_section sums to 8, as (16, 24, 24) does to 64 at 7B
        text["rope_parameters"] = dict(rope_type="default", rope_theta=1e6, mrope_section=[2, 3, 3])
        vision.update(patch_size=14, tokens_per_second=2, window_size=112, fullatt_block_indexes=[1])
    else:  # Qwen3-VL: interleaved mRoPE, deepstack features from both vision blocks
        text.update(head_dim=16, rope_parameters=dict(rope_type="default", rope_theta=5e6, mrope_section=[4, 2, 2],
                                                      mrope_interleaved=True))
        vision.update(patch_size=16, num_position_embeddings=64, deepstack_visual_indexes=[0, 1])
    return CLASSES[family][0](
        text_config=text, vision_config=vision, tie_word_embeddings=False,
        video_token_id=tid("<|video_pad|>"), image_token_id=tid("<|image_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"), vision_end_token_id=tid("<|vision_end|>"))


def load_model(path_or_config, dtype=torch.float32):
    """The real HF class from a checkpoint folder (from_pretrained) or a config (random init), with our attention
    functions (attention.py): shared-prefix on the language model, one varlen call per block on the vision tower.
    A folder is checked first (require_folder) and never runs code of its own (trust_remote_code=False)."""
    if isinstance(path_or_config, (str, os.PathLike)):
        require_folder(path_or_config)
        config = AutoConfig.from_pretrained(path_or_config, trust_remote_code=False)
        model = CLASSES[config.model_type][1].from_pretrained(path_or_config, dtype=dtype, trust_remote_code=False,
                                                               use_safetensors=True)
    else:
        model = CLASSES[path_or_config.model_type][1]._from_config(path_or_config, dtype=dtype)
    model.set_attn_implementation({"text_config": attention.ATTENTION,
                                  "vision_config": attention.VISION_ATTENTION})
    return model


def load_policy(path, device, dtype):
    """A checkpoint folder -> (model on device in eval mode, its tokenizer); the family is config.model_type."""
    model = load_model(path, dtype=dtype).to(device).eval()
    return model, AutoTokenizer.from_pretrained(path, trust_remote_code=False)


# ----------------------------------------------------------------------------------------------------------------
# what a --model folder must be before anything loads (safe to skip on a first read)

class ModelFolderError(DataError):
    """A --model folder vrl will not load; the message says what it is and what to pass instead."""


TEXT_ONLY = ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "llama", "mistral", "gemma", "gemma2", "gemma3_text", "phi3")
PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def require_folder(path):
    """Refuse, before anything loads and with one clear message, a --model that is not a local checkpoint folder
    of a supported family: a typo or a hub id (weights are never downloaded at run time); a config with `auto_map`
    or a model_type transformers does not know, which would ask to run Python files shipped in the folder (never
    run: a checkpoint folder is a thing someone could plant); a text-only model; weights stored as pickles, which
    torch can only read by running whatever code they name."""
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        raise FileNotFoundError(f"--model {path!r} is not a checkpoint folder (no config.json): pass a local Hugging "
                                "Face checkpoint folder (weights are never downloaded at run time)")
    try:
        with open(config, encoding="utf-8") as f:
            fields = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{config}: not valid JSON ({e})") from e
    fields = fields if isinstance(fields, dict) else {}
    kind, supported = fields.get("model_type"), "vrl loads Qwen2.5-VL (qwen2_5_vl) and Qwen3-VL (qwen3_vl) checkpoints"
    if "auto_map" in fields:
        raise ModelFolderError(f"refused to load {path}: its config.json's `auto_map` names Python code shipped in the "
                               f"folder, and vrl never runs code from a checkpoint folder; {supported} with "
                               "transformers' own classes.")
    if kind in TEXT_ONLY:
        raise ModelFolderError(f"{path} is a text-only model (model_type {kind!r}): vrl trains video models and "
                               "needs a Qwen2.5-VL or Qwen3-VL checkpoint (e.g. Qwen2.5-VL-7B-Instruct).")
    if kind not in CLASSES:
        raise ModelFolderError(f"refused to load {path}: model_type {kind!r} is not a supported family; {supported}.")
    pickles = sorted(f for f in os.listdir(path) if f.endswith(PICKLE_WEIGHTS))
    if pickles and not any(f.endswith(".safetensors") for f in os.listdir(path)):
        raise ModelFolderError(f"{path} stores its weights as pickles ({', '.join(pickles)}), which can run code when "
                               "read: refused. Convert them to safetensors (load the model once where you trust the "
                               "file, then save_pretrained(folder), which writes model.safetensors).")


def _root_call(model, fn):
    """fn() run as a forward of the top module. FSDP2 gathers the root's own weights (embeddings, LM head, vision
    merger) and arms the backward reduce-scatter only around a root forward, and our passes call the model's parts
    directly; register_fsdp_forward_method makes a trampoline method count as one. No-op without FSDP."""
    if not isinstance(model, FSDPModule):
        return fn()
    if "_vrl_forward" not in vars(model):
        model._vrl_forward = types.MethodType(lambda self, f: f(), model)
        register_fsdp_forward_method(model, "_vrl_forward")
    return model._vrl_forward(fn)


# ----------------------------------------------------------------------------------------------------------------
# 3-D rotary positions

def _grid(t_index, h, w):
    """[3, T*h*w] (t, h, w) index of every merged token of a block, row-major as the vision tower emits them."""
    return torch.stack(torch.meshgrid(t_index, torch.arange(h), torch.arange(w), indexing="ij")).reshape(3, -1)


def _video_blocks(grid_thw, second_per_grid, config):
    """Relative positions of each run of video tokens, in prompt order.

    Qwen2.5-VL: one run per video, temporal index (t * (second_per_grid * tokens_per_second)).long() in float32,
    the arithmetic the checkpoints were trained with: the processor hands second_per_grid to the model as a
    float32 tensor, the products stay float32 and .long() truncates. Flooring in float64 instead moves an index by
    one for a fraction of a percent of videos: 944 frames at 24 fps, 16 sampled, second_per_grid = 2 / (16 * 24 /
    944) = 4.91666..: block 6 is 6 * 9.8333.. = 59 in float32 but 58.99999.. -> 58 in float64. (The released
    fine-tuning code multiplies by second_per_grid first and by tokens_per_second after; the numbers are the same,
    since tokens_per_second is 2 in every released config and doubling is exact.)
    Qwen3-VL: one run per temporal block, each at t index 0 (time is in the text: "<2.5 seconds>")."""
    m = config.vision_config.spatial_merge_size
    spgs = torch.as_tensor(second_per_grid, dtype=torch.float32).reshape(-1).expand(len(grid_thw))  # [n_videos]
    blocks = []
    for (t, h, w), spg in zip(grid_thw.tolist(), spgs.cpu()):
        if config.model_type == "qwen3_vl":
            blocks += [_grid(torch.zeros(1, dtype=torch.long), h // m, w // m)] * t
        else:
            step = spg * config.vision_config.tokens_per_second  # float32 scalar tensor
            blocks.append(_grid((torch.arange(t) * step).long(), h // m, w // m))  # [T] float32 -> truncated
    return blocks


def rope_positions(input_ids, grid_thw, second_per_grid, config):
    """[4, L] positions of one prompt: row 0 the token index (what HF builds masks from), rows 1-3 the rotary (t, h, w).

    Text counts up by 1. A run of video tokens gets its block's (t, h, w) offset by the position where the run
    starts; whatever follows starts at max(all previous positions) + 1, the rule the released checkpoints were
    trained with. (transformers 5.23's get_rope_index differs here: it advances the text after a video by
    max(h, w) / merge from the video's start, which can be below the video's last temporal index, so text reuses
    temporal positions the video already holds. Video tokens themselves get the same positions in both.)"""
    blocks = iter(_video_blocks(grid_thw.reshape(-1, 3), second_per_grid, config))
    is_video = (input_ids == config.video_token_id).cpu()
    cuts = (torch.nonzero(is_video[1:] != is_video[:-1]).flatten() + 1).tolist()
    pos = torch.zeros(3, len(input_ids), dtype=torch.long)  # [3, L]
    start = 0
    for a, b in zip([0, *cuts], [*cuts, len(input_ids)]):
        if is_video[a]:
            block = next(blocks, None)
            if block is None or block.shape[1] != b - a:
                raise ValueError(f"video tokens {a}:{b} do not match the video grids {grid_thw.tolist()}")
            pos[:, a:b] = block + start
        else:
            pos[:, a:b] = torch.arange(b - a) + start
        start = int(pos[:, a:b].max()) + 1
    if next(blocks, None) is not None:
        raise ValueError(f"fewer runs of video tokens than the video grids {grid_thw.tolist()} need")
    return torch.cat([torch.arange(len(input_ids))[None], pos]).to(input_ids.device)


# ----------------------------------------------------------------------------------------------------------------
# packing and per-token log-probs

@dataclass
class Packed:
    """Groups [prompt, c_1 .. c_G] laid out on one row. T = all completion tokens, N = completions (group-major)."""
    input_ids: torch.Tensor  # [1, L]
    position_ids: torch.Tensor  # [4, 1, L] text; t; h; w
    pixel_values: torch.Tensor  # [N_patch, C*t*P*P] every group's video, in group order
    grid_thw: torch.Tensor  # [n_groups, 3]
    segments: torch.Tensor  # [S, 4] (start, length, prefix_start, prefix_length); a prompt has no prefix
    vision_mask: torch.Tensor  # [1, L] bool, the prompts' video tokens (where the vision features go)
    predictors: torch.Tensor  # [T] row index whose hidden state predicts each completion token
    targets: torch.Tensor  # [T] completion tokens
    mask: torch.Tensor  # [N, Tmax] bool, True on completion tokens

    def unflatten(self, flat):
        """[T] -> [N, Tmax], zeros past each completion's length (differentiable)."""
        out = flat.new_zeros(self.mask.shape)
        out[self.mask.to(flat.device)] = flat
        return out

    def to(self, device):
        return Packed(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in vars(self).items()})


def pack(groups, config):
    """groups: [(sample, [completion ids, EOS included if any])] -> one Packed row. config: the model's config
    (video token id, merge size, tokens_per_second). Each completion's token k sits at position
    max(prompt positions) + 1 + k on the rotary rows (prompt length + k on the text row), as if it were alone."""
    ids, pos, vision, segments, predictors, lengths = [], [], [], [], [], []
    start = 0
    for sample, completions in groups:
        prompt = sample.prompt_ids.long().cpu()  # [P]
        ppos = rope_positions(prompt, sample.grid_thw, sample.second_per_grid, config)  # [4, P]
        p0, P, nxt = start, len(prompt), int(ppos[1:].max()) + 1
        first = torch.tensor([P, nxt, nxt, nxt])[:, None]  # [4, 1] position of every completion's token 0
        ids.append(prompt), pos.append(ppos), vision.append(prompt == config.video_token_id)
        segments.append((p0, P, p0, 0))
        start += P
        for c in completions:
            n = len(c)
            ids.append(c.long().cpu()), pos.append(first + torch.arange(n)), vision.append(torch.zeros(n, dtype=bool))
            pred = torch.arange(start - 1, start + n - 1)
            pred[:1] = p0 + P - 1  # token 0 is predicted by the prompt's last token
            predictors.append(pred), lengths.append(n)
            if n:
                segments.append((start, n, p0, P))
            start += n
    tmax = max(lengths, default=0)
    return Packed(
        input_ids=torch.cat(ids)[None], position_ids=torch.cat(pos, 1)[:, None], vision_mask=torch.cat(vision)[None],
        pixel_values=torch.cat([s.pixel_values for s, _ in groups]),
        grid_thw=torch.cat([s.grid_thw.reshape(-1, 3) for s, _ in groups]).long(),
        segments=torch.tensor(segments), predictors=torch.cat(predictors),
        targets=torch.cat([c.long().cpu() for _, cs in groups for c in cs]),
        mask=torch.arange(tmax)[None] < torch.tensor(lengths)[:, None])


def _embed(model, ids, vision_mask, pixel_values, grid_thw):
    """Token embeddings [B, L, D] with the vision tower's features written at vision_mask (only there: a video pad
    id inside a completion keeps its plain embedding), plus Qwen3-VL's deepstack arguments for the same places."""
    inner = model.model
    emb = inner.get_input_embeddings()(ids)
    vision = inner.get_video_features(pixel_values, grid_thw)  # the vision tower, once per video
    feats = torch.cat(vision.pooler_output).to(emb.dtype)  # [n_video_tokens, D]
    if feats.shape[0] != int(vision_mask.sum()):
        raise ValueError(f"{int(vision_mask.sum())} video tokens in the prompts but {feats.shape[0]} video features")
    emb = emb.masked_scatter(vision_mask[..., None], feats)
    if getattr(vision, "deepstack_features", None) is None:
        return emb, {}
    return emb, {"visual_pos_masks": vision_mask,
                 "deepstack_visual_embeds": [torch.cat(f).to(emb.dtype) for f in vision.deepstack_features]}


def lm_head_logprobs(lm_head, hidden, targets, temperature=1.0):
    """log p(target) from hidden [T, D], the LM head run LOGIT_CHUNK rows at a time; with grad, each chunk is
    recomputed in backward (checkpoint), so no [T, vocab] float32 logits ever live at once."""
    def chunk(h, t):
        logits = lm_head(h).float() / temperature  # [c, V]
        return logits.gather(1, t[:, None])[:, 0] - logits.logsumexp(-1)
    run = (lambda h, t: checkpoint(chunk, h, t, use_reentrant=False)) if torch.is_grad_enabled() else chunk
    return torch.cat([run(h, t) for h, t in zip(hidden.split(LOGIT_CHUNK), targets.split(LOGIT_CHUNK))])


def completion_logprobs(model, packed, temperature=1.0):
    """[T] log-prob of every completion token (group-major, flat) under model, from one forward of the packed row:
    the vision tower and each prompt computed once per group. Equal to the plain forward of each [prompt, c] alone.
    temperature: the rollouts' sampling temperature, so that ratio and KL are taken on the sampled distribution."""
    def forward():
        p = packed.to(model.lm_head.weight.device)
        emb, kwargs = _embed(model, p.input_ids, p.vision_mask, p.pixel_values, p.grid_thw)  # [1, L, D]
        if attention.use_varlen(emb):
            kwargs["vrl_keys"] = attention.key_layout(p.segments)
        else:
            kwargs["attention_mask"] = attention.block_mask(p.segments, emb.shape[1])[None, None]  # [1, 1, L, L]
        hidden = model.model.language_model(inputs_embeds=emb, position_ids=p.position_ids, use_cache=False,
                                            **kwargs).last_hidden_state[0]  # [L, D]
        return lm_head_logprobs(model.lm_head, hidden[p.predictors], p.targets, temperature)
    return _root_call(model, forward)


# ----------------------------------------------------------------------------------------------------------------
# rollouts

@dataclass
class Rollout:
    """B prompts x G completions, prompt-major."""
    ids: torch.Tensor  # [B*G, Tmax] completion tokens, pad_token_id past length
    lengths: torch.Tensor  # [B*G] tokens up to and including EOS
    truncated: torch.Tensor  # [B*G] bool, hit max_new_tokens without EOS
    texts: list = None  # [B*G] the completions decoded with special tokens kept (set by rollout())

    def completions(self):
        return [row[:n] for row, n in zip(self.ids, self.lengths.tolist())]


def _left_pad(prompts, config, pad_token_id):
    """-> ids [B, P], attention mask [B, P], positions [4, B, P], video mask [B, P], next position [4, B]."""
    P = max(len(s.prompt_ids) for s in prompts)
    ids = torch.full((len(prompts), P), pad_token_id, dtype=torch.long)
    pos = torch.ones(4, len(prompts), P, dtype=torch.long)
    nxt = torch.zeros(4, len(prompts), dtype=torch.long)
    for b, s in enumerate(prompts):
        n = len(s.prompt_ids)
        ids[b, P - n:] = s.prompt_ids.cpu()
        own = rope_positions(s.prompt_ids.cpu(), s.grid_thw, s.second_per_grid, config)  # [4, n]
        pos[:, b, P - n:] = own
        nxt[:, b] = torch.tensor([n] + [int(own[1:].max()) + 1] * 3)  # as pack() places a completion's token 0
    mask = torch.arange(P)[None] >= P - torch.tensor([len(s.prompt_ids) for s in prompts])[:, None]
    return ids, mask.long(), pos, (ids == config.video_token_id) & mask, nxt


def _pick(logits, temperature, top_p, banned, generator):
    """Next token [N] from logits [N, V] (float32): argmax at temperature 0, else a draw from the
    temperature-scaled, top-p-filtered distribution."""
    logits = logits.index_fill(1, banned, float("-inf"))  # never emit a vision pad token
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_p < 1:  # keep the smallest head of the sorted distribution whose mass reaches top_p
        sorted_logits, order = logits.sort(-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p
        logits = logits.scatter(1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.log_softmax(-1).exp(), 1, generator=generator)[:, 0]


def _lm_logits(model, cache, **kwargs):
    """One cached language-model step -> last-position logits [B, V] in float32."""
    out = model.model.language_model(past_key_values=cache, use_cache=True, **kwargs)
    return model.lm_head(out.last_hidden_state[:, -1]).float()


class ForkedLayer(DynamicLayer):
    """One layer's KV cache after the prefill of B prompts, forked G ways into buffers allocated once for the
    whole rollout, [B*G, H_kv, P + max_new_tokens, D] (rows prompt-major). keys/values are views of the positions
    written so far, so a decode step writes its one position in place; a DynamicLayer copies the whole cache to
    grow it (torch.cat) at every token."""

    def __init__(self, prefilled, group_size, max_new_tokens):
        super().__init__()
        B, H, P, D = prefilled.keys.shape
        self.dtype, self.device, self.is_initialized = prefilled.keys.dtype, prefilled.keys.device, True
        self.buffers = []
        for x in (prefilled.keys, prefilled.values):
            buffer = x.new_empty(B * group_size, H, P + max_new_tokens, x.shape[-1])
            buffer.view(B, group_size, H, -1, x.shape[-1])[:, :, :, :P] = x[:, None]  # each prompt's rows G times
            self.buffers.append(buffer)
        self.keys, self.values = (b[:, :, :P] for b in self.buffers)

    def update(self, key_states, value_states, *args, **kwargs):
        start = self.keys.shape[-2]
        end = start + key_states.shape[-2]
        for buffer, new in zip(self.buffers, (key_states, value_states)):
            buffer[:, :, start:end] = new
        self.keys, self.values = (b[:, :, :end] for b in self.buffers)
        return self.keys, self.values


STOP_CHECK = 8  # decode steps between host checks of "every completion has ended" (a check waits for the device)


@torch.no_grad()
def sample(model, prompts, group_size, max_new_tokens, temperature=1.0, top_p=1.0, seed=0, eos_token_id=None,
           pad_token_id=None):
    """G completions for each of B prompts. Each prompt is prefilled once (vision tower once, left-padded batch),
    its KV cache forked G ways into a preallocated cache (ForkedLayer), then all B*G completions decode together,
    token k at position max(prompt positions) + 1 + k, each stopping at EOS. temperature 0 = greedy. Seeded:
    reproducible. Decoding never waits for the device except every STOP_CHECK tokens to see whether all ended
    (the steps after that are pads, cut off)."""
    config, device = model.config, model.lm_head.weight.device
    eos = config.text_config.eos_token_id if eos_token_id is None else eos_token_id
    # the released checkpoints list several EOS ids ([151645, 151643]): a completion ending in any has ended
    eos = torch.tensor(eos if isinstance(eos, (list, tuple)) else [eos], device=device)  # [n_eos]
    pad = config.text_config.pad_token_id if pad_token_id is None else pad_token_id
    generator = torch.Generator(device).manual_seed(seed)
    banned = torch.tensor([config.video_token_id, config.image_token_id], device=device)
    prompt_ids, mask, pos, vision, nxt = (x.to(device) for x in _left_pad(prompts, config, pad))
    pixel_values = torch.cat([s.pixel_values for s in prompts]).to(device)
    grid_thw = torch.cat([s.grid_thw.reshape(-1, 3) for s in prompts]).to(device)
    cache = DynamicCache(config=config.text_config)

    def prefill():
        emb, kwargs = _embed(model, prompt_ids, vision, pixel_values, grid_thw)
        return _lm_logits(model, cache, inputs_embeds=emb, attention_mask=mask, position_ids=pos, **kwargs)
    logits = _root_call(model, prefill).repeat_interleave(group_size, 0)  # [B*G, V]
    cache.layers = [ForkedLayer(layer, group_size, max_new_tokens) for layer in cache.layers]
    nxt, P = nxt.repeat_interleave(group_size, 1), mask.shape[1]
    # A decode step's query sees every key but the left padding; HF would rebuild this mask from the 2-D one each
    # step and wait for the device to test it for padding. Without padding no mask is needed at all.
    padded = not bool(mask.all())
    keys_seen = torch.cat([mask.bool(), mask.new_ones(len(mask), max_new_tokens, dtype=torch.bool)], 1)
    keys_seen = keys_seen.repeat_interleave(group_size, 0)[:, None, None]  # [B*G, 1, 1, P + max_new_tokens]

    N = len(logits)
    ids = torch.full((N, max_new_tokens), pad, dtype=torch.long, device=device)
    lengths = torch.zeros(N, dtype=torch.long, device=device)
    done = torch.zeros(N, dtype=torch.bool, device=device)
    for k in range(max_new_tokens):
        token = _pick(logits, temperature, top_p, banned, generator)
        lengths += ~done
        ids[:, k] = token.masked_fill(done, pad)
        done |= torch.isin(token, eos)
        if k == max_new_tokens - 1 or (k % STOP_CHECK == STOP_CHECK - 1 and done.all()):
            break
        step = dict(input_ids=ids[:, k:k + 1], attention_mask=keys_seen[..., :P + k + 1] if padded else None,
                    position_ids=(nxt + k)[:, :, None])
        logits = _root_call(model, lambda: _lm_logits(model, cache, **step))
    return Rollout(ids=ids[:, :int(lengths.max())], lengths=lengths, truncated=~done)


def eos_ids(model, tokenizer):
    """<|im_end|> plus every EOS id of the model's generation_config: stop where the checkpoint stops."""
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    gen = [] if gen is None else gen if isinstance(gen, (list, tuple)) else [gen]
    return sorted({tokenizer.convert_tokens_to_ids("<|im_end|>"), *gen})


def rollout(model, tokenizer, prompts, group_size, max_new_tokens, temperature=1.0, top_p=1.0, seed=0):
    """sample() with the tokenizer's EOS (<|im_end|>) and pad, and the completions decoded with their special
    tokens kept (Rollout.texts), as rewards.score reads them. train.py, select_data.py and eval.py all call this."""
    out = sample(model, prompts, group_size, max_new_tokens, temperature, top_p, seed,
                 eos_token_id=eos_ids(model, tokenizer), pad_token_id=tokenizer.pad_token_id)
    out.texts = tokenizer.batch_decode(out.completions(), skip_special_tokens=False)
    return out


if __name__ == "__main__":
    raise SystemExit("model.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
