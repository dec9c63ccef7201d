"""model.py as worked examples: positions by hand, packing, the vision tower's varlen attention against its SDPA
path, and the packed log-probs against Hugging Face's own forward of each [prompt, completion] alone. The attention
functions alone are in test_attention.py, the rollout sampler and FSDP2 in test_rollout.py."""

import copy
import socket

import pytest
import torch

import attention
import data
import model as vlm
import video
from test_attention import sdpa_varlen

FAMS = ["qwen2_5_vl", "qwen3_vl"]


# ---------------------------------------------------------------------------------------------------------- helpers

def make_sample(tok, family, grid=(2, 4, 4), question="Where is the red circle?", spg=1.0, seed=0):
    """A data.Sample with random pixels: grid (t, h, w) in patches, the prompt in the family's own video format."""
    t, h, w = grid
    p = video.FAMILIES[family]["patch_size"]
    times = [spg * (i + 0.5) for i in range(t)]
    text = (f"<|im_start|>user\n{data.video_text(family, torch.tensor(grid), times)}{question}<|im_end|>\n"
            "<|im_start|>assistant\n")
    g = torch.Generator().manual_seed(seed)
    return data.Sample(id=f"s{seed}", row={}, prompt_ids=torch.tensor(tok(text, add_special_tokens=False)["input_ids"]),
                       pixel_values=torch.randn(t * h * w, 3 * 2 * p * p, generator=g), grid_thw=torch.tensor([grid]),
                       second_per_grid=spg)


def tiny(family, tok, seed=0):
    torch.manual_seed(seed)
    return vlm.load_model(vlm.tiny_config(family, tok))


def sdpa_copy(model):
    """The oracle: the same weights with Hugging Face's default SDPA attention on the language model."""
    oracle = copy.deepcopy(model)
    oracle.set_attn_implementation({"text_config": "sdpa"})
    return oracle


def plain_logprobs(oracle, sample, completion, temperature=1.0):
    """HF's full forward of [prompt, completion] alone (our explicit positions), log_softmax over all logits."""
    ids = torch.cat([sample.prompt_ids, completion])
    pos = vlm.rope_positions(ids, sample.grid_thw, sample.second_per_grid, oracle.config)[:, None]  # [4, 1, L]
    logits = oracle(input_ids=ids[None], pixel_values_videos=sample.pixel_values, video_grid_thw=sample.grid_thw,
                    position_ids=pos).logits[0]
    n = len(sample.prompt_ids)
    return (logits[n - 1:-1] / temperature).log_softmax(-1).gather(1, completion[:, None])[:, 0]


def random_groups(tok, family, lengths=((5, 1, 3), (2, 4))):
    """Two groups with different videos and prompts; completions of unequal lengths, some ending in EOS."""
    g = torch.Generator().manual_seed(1)
    grids, questions = [(2, 4, 4), (4, 4, 6)], ["Where is the red circle?", "When does it move?"]
    groups = []
    for i, ns in enumerate(lengths):
        s = make_sample(tok, family, grids[i], questions[i], spg=1.0 + 0.75 * i, seed=i)
        cs = [torch.randint(7, len(tok), (n,), generator=g) for n in ns]
        cs[0][-1] = tok.eos_token_id
        groups.append((s, cs))
    return groups


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------------------- models

@pytest.mark.parametrize("family", FAMS)
def test_tiny_config_is_the_real_class_with_the_tokenizers_ids(toy_tok, family):
    cfg = vlm.tiny_config(family, toy_tok)
    model = vlm.load_model(cfg)
    assert type(model) is vlm.CLASSES[family][1] and model.config.model_type == family
    assert cfg.text_config.vocab_size == len(toy_tok)
    tid = toy_tok.convert_tokens_to_ids
    assert (cfg.video_token_id, cfg.image_token_id) == (tid("<|video_pad|>"), tid("<|image_pad|>"))
    assert (cfg.vision_start_token_id, cfg.vision_end_token_id) == (tid("<|vision_start|>"), tid("<|vision_end|>"))
    assert cfg.text_config.eos_token_id == tid("<|im_end|>")
    head_dim = getattr(cfg.text_config, "head_dim", None) or cfg.text_config.hidden_size // 4
    assert sum(cfg.text_config.rope_parameters["mrope_section"]) == head_dim // 2
    assert all(i < cfg.vision_config.depth for i in getattr(cfg.vision_config, "deepstack_visual_indexes", []))
    # our attention functions on the language model and on the vision tower; the top config keeps SDPA
    assert model.model.language_model.config._attn_implementation == attention.ATTENTION
    assert model.model.visual.config._attn_implementation == attention.VISION_ATTENTION
    assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("family", FAMS)
def test_save_and_load_round_trip(toy_tok, family, tmp_path):
    model = tiny(family, toy_tok)
    model.save_pretrained(tmp_path)
    again = vlm.load_model(str(tmp_path))
    assert type(again) is type(model)
    assert again.model.language_model.config._attn_implementation == attention.ATTENTION
    for (n, a), (m, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert n == m and torch.equal(a, b), n
    packed = vlm.pack(random_groups(toy_tok, family), model.config)
    with torch.no_grad():
        assert torch.equal(vlm.completion_logprobs(model, packed), vlm.completion_logprobs(again, packed))


# -------------------------------------------------------------------------------------------------- rope positions

def test_rope_positions_qwen2_5_by_hand(toy_tok):
    """Qwen2.5-VL, 15 tokens: 3 text, <|vision_start|>, 8 video, <|vision_end|>, text, <|im_end|>.

    The video: grid (t, h, w) = (2, 4, 4) patches, merge 2 -> 2 temporal blocks of 2x2 = 8 tokens.
    second_per_grid 1.75 s (2 frames a block at 8/7 fps), tokens_per_second 2 -> t index floor(t * 3.5) = 0, 3.

        token    0  1  2  vs | v  v  v  v  v  v  v  v | ve  x  end
        index    0  1  2  3  | 4  5  6  7  8  9 10 11 | 12 13  14     (row 0: the token index)
        t        0  1  2  3  | 4  4  4  4  7  7  7  7 |  8  9  10     (block start 4, + 0 or 3)
        h        0  1  2  3  | 4  4  5  5  4  4  5  5 |  8  9  10
        w        0  1  2  3  | 4  5  4  5  4  5  4  5 |  8  9  10

    The text after the video starts at max(all previous) + 1 = 8. (transformers 5.23's get_rope_index would put it
    at 4 + max(h, w) / merge = 6, below the video's last temporal position 7; the released checkpoints were trained
    with max + 1.)
    """
    cfg = vlm.tiny_config("qwen2_5_vl", toy_tok)
    V, vs, ve = cfg.video_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id
    ids = torch.tensor([1, 100, 101, vs] + [V] * 8 + [ve, 102, toy_tok.eos_token_id])
    pos = vlm.rope_positions(ids, torch.tensor([[2, 4, 4]]), 1.75, cfg)
    assert pos.tolist() == [
        list(range(15)),
        [0, 1, 2, 3, 4, 4, 4, 4, 7, 7, 7, 7, 8, 9, 10],
        [0, 1, 2, 3, 4, 4, 5, 5, 4, 4, 5, 5, 8, 9, 10],
        [0, 1, 2, 3, 4, 5, 4, 5, 4, 5, 4, 5, 8, 9, 10],
    ]


def test_rope_positions_qwen2_5_float32_truncation(toy_tok):
    """944 frames at 24 fps, 16 sampled: sampled fps 16 * 24 / 944, second_per_grid = 2 / that = 4.91666.. s,
    8 temporal blocks; one merged token each (grid (8, 2, 2)), after 2 text tokens.

    The released rule, t index = (t * (second_per_grid * tokens_per_second)).long() in float32:
        float32(4.91666..) = 4.9166665077, * 2 = 9.8333330154 (exact)
        block 6: 6 * 9.8333330154 = 58.9999980927, exactly halfway between the float32 neighbours
                 58.9999961853 and 59.0: rounds to even, 59.0 -> 59
        t index 0, 9, 19, 29, 39, 49, 59, 68     (a float64 floor gives 58.99999999999999 -> 58 for block 6)
    Video tokens sit at 2 + t index; transformers' Qwen2_5_VLModel.get_rope_index gives them the same.
    """
    cfg = vlm.tiny_config("qwen2_5_vl", toy_tok)
    V, vs, ve = cfg.video_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id
    ids = torch.tensor([1, vs] + [V] * 8 + [ve])
    grid, spg = torch.tensor([[8, 2, 2]]), 2 / (16 * 24 / 944)
    assert spg == 4.916666666666666 and int(6 * spg * 2) == 58  # the float64 arithmetic
    pos = vlm.rope_positions(ids, grid, spg, cfg)
    assert pos[1, 2:10].tolist() == [2 + t for t in [0, 9, 19, 29, 39, 49, 59, 68]]
    hf, _ = tiny("qwen2_5_vl", toy_tok).model.get_rope_index(ids[None], (ids == V).int()[None] * 2, video_grid_thw=grid,
                                                              second_per_grid_ts=torch.tensor([spg]))
    assert torch.equal(hf[:, 0, 2:10], pos[1:, 2:10])


def test_rope_positions_qwen3_by_hand(toy_tok):
    """Qwen3-VL, grid (2, 4, 4): each temporal block is its own vision block, with a textual timestamp before it and
    t index 0 (time lives in the text). 18 tokens:

        token   im  <  t  vs | v  v  v  v | ve  <  t  vs | v  v  v  v | ve  x
        index    0  1  2  3  | 4  5  6  7 |  8  9 10 11 |12 13 14 15 | 16 17
        t        0  1  2  3  | 4  4  4  4 |  6  7  8  9 |10 10 10 10 | 12 13
        h        0  1  2  3  | 4  4  5  5 |  6  7  8  9 |10 10 11 11 | 12 13
        w        0  1  2  3  | 4  5  4  5 |  6  7  8  9 |10 11 10 11 | 12 13

    Same as transformers' Qwen3VLModel.get_rope_index (checked below).
    """
    cfg = vlm.tiny_config("qwen3_vl", toy_tok)
    V, vs, ve = cfg.video_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id
    ids = torch.tensor([1, 100, 101, vs] + [V] * 4 + [ve, 100, 102, vs] + [V] * 4 + [ve, 103])
    grid = torch.tensor([[2, 4, 4]])
    pos = vlm.rope_positions(ids, grid, 2.0, cfg)
    assert pos.tolist() == [
        list(range(18)),
        [0, 1, 2, 3, 4, 4, 4, 4, 6, 7, 8, 9, 10, 10, 10, 10, 12, 13],
        [0, 1, 2, 3, 4, 4, 5, 5, 6, 7, 8, 9, 10, 10, 11, 11, 12, 13],
        [0, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 10, 11, 10, 11, 12, 13],
    ]
    hf, _ = tiny("qwen3_vl", toy_tok).model.get_rope_index(ids[None], (ids == V).int()[None] * 2,
                                                            video_grid_thw=grid)
    assert torch.equal(hf[:, 0], pos[1:])


def test_rope_positions_refuse_video_tokens_that_do_not_match_the_grid(toy_tok):
    """A truncated video prompt fails loudly instead of silently shifting positions."""
    cfg = vlm.tiny_config("qwen2_5_vl", toy_tok)
    ids = torch.tensor([1] + [cfg.video_token_id] * 7 + [2])
    with pytest.raises(ValueError, match="do not match"):
        vlm.rope_positions(ids, torch.tensor([[2, 4, 4]]), 1.0, cfg)


# --------------------------------------------------------------------------------------------------------- packing

def test_pack_layout(toy_tok):
    """One group: prompt (P tokens, max rotary position m), completions of 3 and 2 tokens.

        row        [ prompt 0..P-1 | c1: P .. P+2 | c2: P+3, P+4 ]
        segments   (0, P, 0, 0)  (P, 3, 0, P)  (P+3, 2, 0, P)
        positions  c1 and c2 both start at m + 1 on the rotary rows and at P on the text row
        predictors c1: P-1, P, P+1     c2: P-1, P+3    (token 0 of every completion: the prompt's last token)
    """
    cfg = vlm.tiny_config("qwen2_5_vl", toy_tok)
    s = make_sample(toy_tok, "qwen2_5_vl", spg=1.75)
    c1, c2 = torch.tensor([10, 11, 2]), torch.tensor([12, 13])
    p = vlm.pack([(s, [c1, c2])], cfg)
    P = len(s.prompt_ids)
    m = int(vlm.rope_positions(s.prompt_ids, s.grid_thw, 1.75, cfg)[1:].max())
    assert p.input_ids[0].tolist() == s.prompt_ids.tolist() + [10, 11, 2, 12, 13]
    assert p.segments.tolist() == [[0, P, 0, 0], [P, 3, 0, P], [P + 3, 2, 0, P]]
    text_row, rotary_row = [P, P + 1, P + 2, P, P + 1], [m + 1, m + 2, m + 3, m + 1, m + 2]
    assert p.position_ids[:, 0, P:].tolist() == [text_row] + [rotary_row] * 3
    assert p.predictors.tolist() == [P - 1, P, P + 1, P - 1, P + 3]
    assert p.targets.tolist() == [10, 11, 2, 12, 13]
    assert int(p.vision_mask.sum()) == 8 and not p.vision_mask[0, P:].any()
    assert p.unflatten(torch.arange(1.0, 6.0)).tolist() == [[1, 2, 3], [4, 5, 0]]
    assert p.mask.tolist() == [[True, True, True], [True, True, False]]


# ---------------------------------------------------------------------------------------------------- vision tower

def two_videos(family):
    """Pixels and grids of two videos, (t, h, w) = (2, 12, 8) and (4, 4, 4) patches. Qwen2.5-VL's tiny tower
    attends in windows of 4 x 4 merged tokens (window_size 112 px / patch 14 / merge 2): the first video's 6 x 4
    merged tokens per frame pair make a 4 x 4 and a 2 x 4 window, so its windowed block sees 2 x 2 + 2 x 1 = 6
    windows of 64, 32 and 16 patches; its full-attention block, and Qwen3-VL's every block, one segment per frame
    pair (2 + 2 = 4)."""
    grid = torch.tensor([[2, 12, 8], [4, 4, 4]])
    patch = video.FAMILIES[family]["patch_size"]
    g = torch.Generator().manual_seed(3)
    return torch.randn(int(grid.prod(1).sum()), 3 * 2 * patch * patch, generator=g), grid


def vision_outputs(tower, pixels, grid):
    """The tower's merged features and Qwen3-VL's deepstack features, concatenated: [n_tokens, D_out] rows."""
    out = tower(pixels, grid_thw=grid)
    return torch.cat([out.pooler_output, *(getattr(out, "deepstack_features", None) or [])])


@pytest.mark.parametrize("family", FAMS)
def test_vision_varlen_equals_the_towers_sdpa_path_once_per_block(toy_tok, family, monkeypatch):
    """The vision tower with our attention, the varlen formulation forced on CPU (kernel: sdpa_varlen, non-causal),
    against the same weights with transformers' SDPA (one call per window): equal features and equal gradients of
    every vision weight, with one kernel call per block, not one per window. Off CUDA our attention is the SDPA
    loop itself: bit for bit the same features."""
    model = tiny(family, toy_tok)
    assert model.model.visual.config._attn_implementation == attention.VISION_ATTENTION
    oracle = copy.deepcopy(model)
    oracle.set_attn_implementation({"vision_config": "sdpa"})
    pixels, grid = two_videos(family)
    ref = vision_outputs(oracle.model.visual, pixels, grid)
    assert torch.equal(vision_outputs(model.model.visual, pixels, grid), ref)  # the fallback: the same SDPA calls

    calls = []
    monkeypatch.setattr(attention, "use_varlen", lambda x: True)
    monkeypatch.setattr(attention, "varlen_kernel", lambda *a, causal: calls.append(a[3].tolist()) or
                        sdpa_varlen(*a, causal=causal))
    ours = vision_outputs(model.model.visual, pixels, grid)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    per_frame_pair = [0, 96, 192, 208, 224, 240, 256]  # 96 patches per frame pair, then 16
    windows = [0, 64, 96, 160, 192, 208, 224, 240, 256]  # (64, 32) twice, then 16 four times
    assert calls == ([windows, per_frame_pair] if family == "qwen2_5_vl" else [per_frame_pair] * 2)
    w = torch.randn(ref.shape, generator=torch.Generator().manual_seed(4))
    (ours * w).sum().backward()
    (ref * w).sum().backward()
    g_ours, g_ref = grads(model.model.visual), grads(oracle.model.visual)
    assert g_ours.keys() == g_ref.keys() and len(g_ours) == len(list(model.model.visual.parameters()))
    for name in g_ref:
        torch.testing.assert_close(g_ours[name], g_ref[name], atol=1e-5, rtol=1e-4, msg=name)


# ------------------------------------------------------------------------------------------- packed log-probs oracle

@pytest.mark.parametrize("family", FAMS)
@pytest.mark.parametrize("path", ["mask", "varlen"])
def test_packed_logprobs_equal_the_plain_forward_of_each_completion(toy_tok, family, path, monkeypatch):
    """Two groups on one row, completions of unequal lengths: packed log-probs and their gradients equal HF's
    forward of each [prompt, c] alone (float32, 1e-5). path "varlen" runs the CUDA formulation on CPU (gathered
    keys, cu_seqlens, the kernel replaced by sdpa_varlen)."""
    if path == "varlen":
        monkeypatch.setattr(attention, "use_varlen", lambda x: True)
        monkeypatch.setattr(attention, "varlen_kernel", sdpa_varlen)
    model = tiny(family, toy_tok)
    oracle = sdpa_copy(model)
    groups = random_groups(toy_tok, family)
    packed = vlm.pack(groups, model.config)
    ours = vlm.completion_logprobs(model, packed)
    ref = torch.cat([plain_logprobs(oracle, s, c) for s, cs in groups for c in cs])
    assert ours.shape == (15,)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    ours.sum().backward()
    ref.sum().backward()
    g_ours, g_ref = grads(model), grads(oracle)
    assert g_ours.keys() == g_ref.keys() and len(g_ours) == len(list(model.parameters()))
    for name in g_ref:
        torch.testing.assert_close(g_ours[name], g_ref[name], atol=1e-5, rtol=1e-4, msg=name)


def test_logprobs_at_the_sampling_temperature_equal_the_plain_forward(toy_tok):
    """With temperature T (rollouts sample from softmax(logits / T)), the packed log-probs are those of the same
    tempered distribution under the plain forward."""
    model = tiny("qwen2_5_vl", toy_tok)
    groups = random_groups(toy_tok, "qwen2_5_vl")
    with torch.no_grad():
        ours = vlm.completion_logprobs(model, vlm.pack(groups, model.config), temperature=0.7)
        ref = torch.cat([plain_logprobs(sdpa_copy(model), s, c, temperature=0.7) for s, cs in groups for c in cs])
        plain = vlm.completion_logprobs(model, vlm.pack(groups, model.config))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours, plain, atol=1e-3)


@pytest.mark.parametrize("family", FAMS)
def test_vision_tower_and_prompt_run_once_per_group(toy_tok, family):
    """One vision-tower call for the whole packed row; the language model sees each prompt once (row length
    P1 + sum(c1) + P2 + sum(c2), not G copies); Qwen3-VL's deepstack features go to the prompts' video tokens only."""
    model = tiny(family, toy_tok)
    groups = random_groups(toy_tok, family)
    packed = vlm.pack(groups, model.config)
    calls, seen = [], {}
    model.model.visual.register_forward_hook(lambda *a: calls.append(1))
    model.model.language_model.register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
    with torch.no_grad():
        vlm.completion_logprobs(model, packed)
    assert len(calls) == 1
    assert seen["inputs_embeds"].shape[1] == sum(len(s.prompt_ids) + sum(map(len, cs)) for s, cs in groups)
    if family == "qwen3_vl":
        assert torch.equal(seen["visual_pos_masks"], packed.vision_mask)
        prompt_video = [i for s0, s1, _, pl in packed.segments.tolist() if pl == 0 for i in range(s0, s0 + s1)
                        if packed.input_ids[0, i] == model.config.video_token_id]
        assert packed.vision_mask[0].nonzero().flatten().tolist() == prompt_video
        assert len(seen["deepstack_visual_embeds"]) == 2


@pytest.mark.parametrize("family", FAMS)
def test_a_completion_holding_a_video_pad_token_is_just_a_token(toy_tok, family):
    """<|video_pad|> inside a completion gets no vision feature and breaks nothing: the log-probs up to it are the
    same as with any other token there."""
    model = tiny(family, toy_tok)
    s = make_sample(toy_tok, family)
    with_pad = torch.tensor([10, 11, model.config.video_token_id, 12])
    without = torch.tensor([10, 11, 13, 12])
    with torch.no_grad():
        a = vlm.completion_logprobs(model, vlm.pack([(s, [with_pad])], model.config))
        b = vlm.completion_logprobs(model, vlm.pack([(s, [without])], model.config))
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a[:2], b[:2])
    assert not torch.equal(a[3:], b[3:])


def test_lm_head_runs_in_chunks(toy_tok, monkeypatch):
    """With LOGIT_CHUNK = 4 the LM head never sees more than 4 rows, and nothing changes."""
    model = tiny("qwen2_5_vl", toy_tok)
    packed = vlm.pack(random_groups(toy_tok, "qwen2_5_vl"), model.config)
    whole = vlm.completion_logprobs(model, packed)
    whole.sum().backward()
    g_whole = grads(model)
    model.zero_grad()
    rows = []
    model.lm_head.register_forward_hook(lambda m, a, out: rows.append(a[0].shape[0]))
    monkeypatch.setattr(vlm, "LOGIT_CHUNK", 4)
    chunked = vlm.completion_logprobs(model, packed)
    chunked.sum().backward()
    assert max(rows) == 4 and sum(rows) == 2 * 15  # forward, then the checkpointed recompute in backward
    torch.testing.assert_close(chunked, whole)
    for name, g in grads(model).items():
        torch.testing.assert_close(g, g_whole[name], msg=name)
