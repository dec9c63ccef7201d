"""model.py's rollout sampler as worked examples: greedy against `generate`, the preallocated cache against the
growing one, seeded draws, lengths and truncation, never a vision pad, top-p; the sampler and packed log-probs under
FSDP2, and distributed.py's set-up (a world of one and torchrun, CPU)."""

import copy
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor
from transformers import DynamicCache

import distributed
import eval as evaluation
import model as vlm
import select_data
import train
from test_model import FAMS, free_port, make_sample, random_groups, sdpa_copy, tiny


# --------------------------------------------------------------------------------------------------------- rollouts

def greedy_equals_generate(toy_tok, family, device):
    """Two prompts of different lengths (left-padded prefill, cache forked G = 2 ways) decode exactly what HF's
    generate(do_sample=False) decodes for each prompt alone, given the same explicit positions (generate continues
    them at last + 1 = max + 1) and the vision pads suppressed. float32 on device."""
    model = tiny(family, toy_tok).to(device)
    oracle = sdpa_copy(model)
    prompts = [make_sample(toy_tok, family, question="Where is the red circle?", seed=0, spg=1.75),
               make_sample(toy_tok, family, (4, 4, 4), question="Is it blue?", seed=1)]
    eos, pad = toy_tok.eos_token_id, toy_tok.pad_token_id
    out = vlm.sample(model, prompts, group_size=2, max_new_tokens=10, temperature=0, eos_token_id=eos,
                     pad_token_id=pad)
    for b, s in enumerate(prompts):
        pos = vlm.rope_positions(s.prompt_ids, s.grid_thw, s.second_per_grid, model.config)[:, None]
        want = oracle.generate(input_ids=s.prompt_ids[None].to(device), pixel_values_videos=s.pixel_values.to(device),
                               video_grid_thw=s.grid_thw.to(device), position_ids=pos.to(device), max_new_tokens=10,
                               do_sample=False, eos_token_id=eos, pad_token_id=pad,
                               suppress_tokens=[model.config.video_token_id, model.config.image_token_id])
        want = want[0, len(s.prompt_ids):].cpu()
        for c in out.completions()[2 * b: 2 * b + 2]:
            c = c.cpu()
            assert c.tolist() == want[:len(c)].tolist() and (len(c) == len(want) or want[len(c) - 1] == eos)


@pytest.mark.parametrize("family", FAMS)
def test_greedy_sampling_equals_generate(toy_tok, family):
    """Greedy (temperature 0) prompt-once sampling gives the tokens of Hugging Face's generate(do_sample=False) for
    each prompt, up to and including EOS, for both families."""
    greedy_equals_generate(toy_tok, family, "cpu")


@torch.no_grad()
def sample_with_a_growing_cache(model, prompts, G, max_new_tokens, temperature, top_p, seed, eos, pad):
    """The oracle: the sampler as it was with transformers' DynamicCache. The prefilled cache forked by
    batch_repeat_interleave and grown by torch.cat every token, the 2-D padding mask grown every token (HF builds the
    4-D mask from it), a host check for "all ended" every token. -> (ids [N, Tmax], lengths [N], truncated [N])."""
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    banned = torch.tensor([config.video_token_id, config.image_token_id])
    ids, mask, pos, vision, nxt = vlm._left_pad(prompts, config, pad)
    cache = DynamicCache(config=config.text_config)
    emb, kwargs = vlm._embed(model, ids, vision, torch.cat([s.pixel_values for s in prompts]),
                             torch.cat([s.grid_thw.reshape(-1, 3) for s in prompts]))
    logits = vlm._lm_logits(model, cache, inputs_embeds=emb, attention_mask=mask, position_ids=pos, **kwargs)
    logits = logits.repeat_interleave(G, 0)
    cache.batch_repeat_interleave(G)
    mask, nxt = mask.repeat_interleave(G, 0), nxt.repeat_interleave(G, 1)
    tokens, alive, done = [], [], torch.zeros(len(logits), dtype=torch.bool)
    for k in range(max_new_tokens):
        token = vlm._pick(logits, temperature, top_p, banned, generator)
        alive.append(~done)
        tokens.append(token.masked_fill(done, pad))
        done = done | (token == eos)
        if done.all() or k == max_new_tokens - 1:
            break
        mask = F.pad(mask, (0, 1), value=1)
        logits = vlm._lm_logits(model, cache, input_ids=tokens[-1][:, None], attention_mask=mask,
                                position_ids=(nxt + k)[:, :, None])
    return torch.stack(tokens, 1), torch.stack(alive, 1).sum(1), ~done


@pytest.mark.parametrize("family", FAMS)
@pytest.mark.parametrize("temperature, top_p, eos_bias", [(1.0, 1.0, 3.0), (0.8, 0.9, 3.0), (1.0, 1.0, 5.0),
                                                          (0, 1.0, 0.0)])
def test_the_preallocated_cache_decodes_what_the_growing_cache_did(toy_tok, family, temperature, top_p, eos_bias,
                                                                   monkeypatch):
    """Two prompts of different lengths (left padding), G = 3, 12 new tokens at most: sample() with its preallocated
    cache, its own decode masks and a check for the end every STOP_CHECK tokens gives the same tokens, lengths and
    truncation flags as the growing cache, seeded draws and greedy alike; also with the check every token. An EOS
    bias of 3 mixes early ends with truncated completions; 5 ends every completion within 4 tokens, before the first
    check. Every step's keys are views of one buffer per layer allocated at the fork: nothing grows."""
    model = tiny(family, toy_tok)
    eos, pad = toy_tok.eos_token_id, toy_tok.pad_token_id
    with torch.no_grad():
        model.lm_head.bias = torch.nn.Parameter(torch.zeros(len(toy_tok)).index_fill(0, torch.tensor([eos]), eos_bias))
    prompts = [make_sample(toy_tok, family, question="Where is the red circle?", seed=0, spg=1.75),
               make_sample(toy_tok, family, (4, 4, 4), question="Is it blue?", seed=1)]
    ids, lengths, truncated = sample_with_a_growing_cache(model, prompts, 3, 12, temperature, top_p, 7, eos, pad)
    update, storages = vlm.ForkedLayer.update, []
    monkeypatch.setattr(vlm.ForkedLayer, "update", lambda self, k, v: storages.append(
        update(self, k, v)[0].untyped_storage().data_ptr()) or (self.keys, self.values))
    for every in (vlm.STOP_CHECK, 1):
        monkeypatch.setattr(vlm, "STOP_CHECK", every)
        storages.clear()
        out = vlm.sample(model, prompts, 3, 12, temperature, top_p, seed=7, eos_token_id=eos, pad_token_id=pad)
        assert torch.equal(out.ids, ids) and torch.equal(out.lengths, lengths)
        assert torch.equal(out.truncated, truncated)
        layers = model.config.text_config.num_hidden_layers
        assert len(set(storages)) == layers and len(storages) >= layers  # one key buffer per layer, every step
    if eos_bias == 5.0:
        assert not truncated.any() and ids.shape[1] < 12
    elif eos_bias == 3.0:
        assert truncated.any() and (~truncated).any()


def test_seeded_sampling_is_reproducible(toy_tok):
    """The same seed gives the same completions and lengths (with and without top-p), another seed others."""
    model = tiny("qwen3_vl", toy_tok)
    prompts = [make_sample(toy_tok, "qwen3_vl", seed=0), make_sample(toy_tok, "qwen3_vl", seed=1)]
    run = lambda seed, top_p: vlm.sample(model, prompts, 3, 8, temperature=1.0, top_p=top_p, seed=seed)
    a, b, c = run(0, 1.0), run(0, 1.0), run(1, 1.0)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.lengths, b.lengths)
    assert not torch.equal(a.ids, c.ids)
    assert torch.equal(run(5, 0.5).ids, run(5, 0.5).ids)


def test_rollout_lengths_truncation_and_padding(toy_tok):
    """Length counts up to and including EOS; past it the ids are pad; a completion without EOS has the full length
    and is flagged truncated."""
    model = tiny("qwen2_5_vl", toy_tok)
    eos, pad = toy_tok.eos_token_id, toy_tok.pad_token_id
    bias = torch.zeros(len(toy_tok))
    bias[eos] = 5.0  # p(EOS) about 1/4 a step, so both kinds occur
    model.lm_head.bias = torch.nn.Parameter(bias)
    r = vlm.sample(model, [make_sample(toy_tok, "qwen2_5_vl")], 8, 6, temperature=1.0, seed=3)
    assert r.ids.shape == (8, 6)
    assert r.truncated.any() and (~r.truncated).any()
    for row, n, cut in zip(r.ids, r.lengths.tolist(), r.truncated.tolist()):
        if cut:
            assert n == 6 and eos not in row.tolist()
        else:
            assert row[n - 1] == eos and eos not in row[:n - 1].tolist()
        assert (row[n:] == pad).all()


def test_sampling_never_emits_a_vision_pad(toy_tok):
    """The LM head rigged so a vision pad always has the top logit (+-v on the two pad rows, 0 elsewhere)."""
    model = tiny("qwen2_5_vl", toy_tok)
    with torch.no_grad():
        v = torch.randn(model.lm_head.weight.shape[1])
        model.lm_head.weight.zero_()
        model.lm_head.weight[model.config.video_token_id] = v
        model.lm_head.weight[model.config.image_token_id] = -v
    prompts = [make_sample(toy_tok, "qwen2_5_vl")]
    for temperature in (0, 1.0):
        r = vlm.sample(model, prompts, 4, 6, temperature=temperature, seed=0)
        pads = {model.config.video_token_id, model.config.image_token_id}
        assert not pads & set(r.ids.flatten().tolist())


def test_the_sampler_draws_from_the_top_p_head():
    """Probabilities 0.5, 0.3, 0.15, 0.05 (token 4, a vision pad, would be the best): top_p 0.7 keeps the head
    0.5 + 0.3 and renormalises it, so token 0 is drawn with probability 0.5 / 0.8 = 0.625; greedy takes token 0."""
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05, 100.0]]).log().repeat(2000, 1)
    banned = torch.tensor([4])
    token = vlm._pick(logits, 1.0, 0.7, banned, torch.Generator().manual_seed(0))
    assert set(token.tolist()) == {0, 1} and 0.58 < (token == 0).float().mean() < 0.67
    assert vlm._pick(logits[:1], 0, 1.0, banned, None).tolist() == [0]


# ------------------------------------------------------------------------------------------------------------ FSDP2

def test_fsdp2_sharded_model_gives_the_same_rollouts_logprobs_and_gradients(toy_tok):
    """train.py's sharding (each vision block, each decoder layer, then the root) in a world of one on CPU. The root's
    own weights (embeddings, LM head, vision merger) are gathered only around a root forward, which sample and
    completion_logprobs run inside; a rollout comes first, as in training."""
    dist = pytest.importorskip("torch.distributed")
    from torch.distributed.fsdp import fully_shard
    if dist.is_initialized():
        pytest.skip("a process group already exists")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        model = tiny("qwen3_vl", toy_tok)
        plain = copy.deepcopy(model)
        mesh = init_device_mesh("cpu", (1,))
        for block in model.model.visual.blocks:
            fully_shard(block, mesh=mesh)
        for layer in model.model.language_model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        groups = random_groups(toy_tok, "qwen3_vl")
        prompts = [s for s, _ in groups]
        assert torch.equal(vlm.sample(model, prompts, 2, 5, seed=0).ids, vlm.sample(plain, prompts, 2, 5, seed=0).ids)
        packed = vlm.pack(groups, plain.config)
        ours, ref = vlm.completion_logprobs(model, packed), vlm.completion_logprobs(plain, packed)
        torch.testing.assert_close(ours, ref)
        ours.sum().backward()
        ref.sum().backward()
        for (name, p), q in zip(model.named_parameters(), plain.parameters()):
            torch.testing.assert_close(p.grad.full_tensor(), q.grad, msg=name)
    finally:
        dist.destroy_process_group()


# -------------------------------------------------------------------------------------------------------- processes

@pytest.fixture
def world_of_one():
    """distributed.init's one-process group (plain python, gloo), with a 7-minute collective timeout."""
    if torch.distributed.is_initialized():
        pytest.skip("a process group already exists")
    yield distributed.init(need_group=True, timeout_minutes=7)
    distributed.close()


def group_timeout():
    """The default group's collective timeout, as its backend holds it."""
    group = torch.distributed.distributed_c10d._get_default_group()
    return group._get_backend(torch.device("cpu")).options._timeout


def test_the_timeout_reaches_the_process_group(world_of_one):
    assert str(group_timeout()) == "0:07:00"


def test_the_timeout_reaches_a_torchrun_group(tmp_path):
    """Two processes under torchrun, as on 8 GPUs: each rank's group waits 7 minutes for the others."""
    script = tmp_path / "timeout.py"
    script.write_text("import sys, torch, distributed, test_rollout\n"  # each rank writes its own file
                      "rank, world, device = distributed.init(timeout_minutes=7)\n"
                      "open(f'{sys.argv[1]}/rank{rank}.txt', 'w').write(str(test_rollout.group_timeout()))\n"
                      "distributed.close()\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.path.join(root, "tests")]), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script), str(tmp_path)], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["0:07:00", "0:07:00"]


def test_every_entry_point_passes_its_timeout_flag_to_the_process_group(monkeypatch):
    """--dist-timeout-minutes (or --dist_timeout_minutes) is what distributed.init gets, in train.py, select_data.py
    and eval.py; 60 minutes unless given."""
    class Reached(Exception):
        pass

    def init(need_group=False, timeout_minutes=None):
        raise Reached(timeout_minutes)
    monkeypatch.setattr(distributed, "init", init)
    entry_points = [lambda *flags: train.train(train.parse_config(["--model", "m", *flags])),
                    lambda *flags: select_data.main(["--model", "m", "--data", "d", "--out", "o", *flags]),
                    lambda *flags: evaluation.main(["--model", "m", "--data", "d", *flags])]
    for run in entry_points:
        for flags, minutes in (((), 60), (("--dist-timeout-minutes", "7"), 7),
                               (("--dist_timeout_minutes", "2.5"), 2.5)):
            with pytest.raises(Reached) as reached:
                run(*flags)
            assert reached.value.args == (minutes,)


@pytest.mark.parametrize("family", FAMS)
def test_sharded_vision_blocks_take_float32_rotary_tables_in_bf16(toy_tok, family, world_of_one):
    """train.py's sharding computing in bf16: the vision blocks' attention gets its hidden states in bf16 and the
    tower's rotary tables (cos, sin) in float32, as without FSDP (FSDP2 would cast every input of a unit to bf16);
    the decoder layers get bf16 hidden states."""
    model = tiny(family, toy_tok)
    distributed.shard(model, init_device_mesh("cpu", (1,)), torch.bfloat16)
    seen = {}
    model.model.visual.blocks[0].attn.register_forward_pre_hook(
        lambda m, args, kw: seen.update(vision=(args[0].dtype, *(t.dtype for t in kw["position_embeddings"]))),
        with_kwargs=True)
    model.model.language_model.layers[0].register_forward_pre_hook(lambda m, args: seen.update(text=args[0].dtype))
    with torch.no_grad():
        vlm.completion_logprobs(model, vlm.pack(random_groups(toy_tok, family), model.config))
    assert seen == {"vision": (torch.bfloat16, torch.float32, torch.float32), "text": torch.bfloat16}


def test_a_sharded_root_stays_gathered_after_a_no_grad_forward_until_resharded(toy_tok, world_of_one):
    """Why train.py reshards the reference after its log-probs: FSDP2 leaves the root's own weights (embeddings,
    LM head: 2.3 GB at 7B in bf16) gathered after forward, expecting a backward, which a reference never runs."""
    model = tiny("qwen2_5_vl", toy_tok).requires_grad_(False)
    distributed.shard(model, init_device_mesh("cpu", (1,)), torch.float32)
    is_sharded = lambda: isinstance(model.lm_head.weight, DTensor)
    assert is_sharded()
    with torch.no_grad():
        vlm.completion_logprobs(model, vlm.pack(random_groups(toy_tok, "qwen2_5_vl"), model.config))
    assert not is_sharded()
    model.reshard()
    assert is_sharded()


def test_rollout_stops_on_every_eos_id_of_the_generation_config(toy_tok):
    """The released generation_config lists two EOS ids ([<|im_end|>, <|endoftext|>]): a completion ending in the
    second has ended too, not run on to max_new_tokens."""
    model = tiny("qwen2_5_vl", toy_tok)
    im_end = toy_tok.convert_tokens_to_ids("<|im_end|>")
    other = next(i for i in range(len(toy_tok)) if i not in (im_end, toy_tok.pad_token_id,
                                                           model.config.video_token_id, model.config.image_token_id))
    bias = torch.zeros(len(toy_tok))
    bias[other] = 50.0  # greedy picks the second EOS id first
    model.lm_head.bias = torch.nn.Parameter(bias)
    model.generation_config.eos_token_id = [im_end, other]
    assert sorted(vlm.eos_ids(model, toy_tok)) == sorted({im_end, other})
    r = vlm.rollout(model, toy_tok, [make_sample(toy_tok, "qwen2_5_vl")], 2, 6, temperature=0)
    assert r.lengths.tolist() == [1, 1] and not r.truncated.any()
