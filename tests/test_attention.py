"""attention.py as worked examples: the block mask and the varlen key layout by hand, the varlen kernel against
each torch release's signature, the slow CUDA path named once, and the gathered-keys formulation against the mask
(values and gradients). Both attention functions inside the real models are tested in test_model.py."""

import types
import warnings

import pytest
import torch
import torch.nn.functional as F

import attention


def test_block_mask_by_hand():
    """Prompt of 2, completions of 2 and 1: each completion sees the prompt and itself causally, never a sibling."""
    segments = torch.tensor([[0, 2, 0, 0], [2, 2, 0, 2], [4, 1, 0, 2]])
    assert attention.block_mask(segments, 5).int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 0, 0, 1],
    ]
    key_index, cu_q, cu_k, max_q, max_k = attention.key_layout(segments)
    assert key_index.tolist() == [0, 1, 0, 1, 2, 3, 0, 1, 4]  # [prompt], [prompt, c1], [prompt, c2]
    assert cu_q.tolist() == [0, 2, 4, 5] and cu_k.tolist() == [0, 2, 6, 9] and (max_q, max_k) == (2, 4)


def sdpa_varlen(q, k, v, cu_q, cu_k, max_q, max_k, scale, causal=True):
    """flash_attn_varlen_func's contract (causal bottom-right or not, native GQA) written with SDPA, per segment,
    on CPU."""
    out = []
    for i in range(len(cu_q) - 1):
        qi, ki, vi = (x[a:b].transpose(0, 1) for x, a, b in ((q, cu_q[i], cu_q[i + 1]), (k, cu_k[i], cu_k[i + 1]),
                                                            (v, cu_k[i], cu_k[i + 1])))
        nq, nk = qi.shape[1], ki.shape[1]
        ki, vi = (x.repeat_interleave(qi.shape[0] // x.shape[0], 0) for x in (ki, vi))
        allowed = torch.ones(nq, nk, dtype=torch.bool)
        if causal:
            allowed = allowed.tril(nk - nq)  # query j sees keys 0 .. nk - nq + j
        out.append(F.scaled_dot_product_attention(qi, ki, vi, attn_mask=allowed, scale=scale).transpose(0, 1))
    return torch.cat(out)


def varlen_stub(params):
    """A torch varlen_attn with the keyword arguments of one torch release, honouring only what that release can:
    no enable_gqa -> equal head counts required; no scale -> the default 1/sqrt(D); causal from window_size
    (-1, 0) or is_causal, full attention from (-1, -1) or is_causal=False."""
    def varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, **kw):
        assert set(kw) <= params and (kw.get("window_size") in ((-1, 0), (-1, -1)) or "is_causal" in kw)
        assert kw.get("enable_gqa") or k.shape[1] == q.shape[1]
        causal = kw.get("window_size") == (-1, 0) or kw.get("is_causal") is True
        return sdpa_varlen(q, k, v, cu_q, cu_k, max_q, max_k, kw.get("scale", q.shape[-1] ** -0.5), causal)
    return varlen_attn


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("params", [{"window_size", "scale", "enable_gqa"}, {"is_causal", "scale"}, {"is_causal"}])
def test_varlen_kernel_adapts_to_each_torch_signature(params, causal, monkeypatch):
    """Without flash-attn, torch's varlen_attn is called with what the installed release accepts (GQA repeated and
    the scale folded into q where it must be), and gives the same attention in all three, causal or not."""
    segments = torch.tensor([[0, 4, 0, 0], [4, 3, 0, 4], [7, 2, 0, 4]])
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(9, h, 8, generator=g) for h in (4, 2, 2))
    key_index, cu_q, cu_k, max_q, max_k = attention.key_layout(segments)
    expected = sdpa_varlen(q, k[key_index], v[key_index], cu_q, cu_k, max_q, max_k, 0.3, causal)
    monkeypatch.setattr(attention, "flash_attn_varlen_func", None)
    monkeypatch.setattr(attention, "varlen_attn", varlen_stub(params))
    monkeypatch.setattr(attention, "VARLEN_PARAMS", params)
    out = attention.varlen_kernel(q, k[key_index], v[key_index], cu_q, cu_k, max_q, max_k, 0.3, causal)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)


def test_the_slow_cuda_path_is_named_once(monkeypatch):
    """CUDA in half precision with neither flash-attn nor torch's varlen_attn: the SDPA paths run, and a warning
    says so once, whatever the number of calls. CPU or float32 takes SDPA silently; with a kernel, varlen."""
    cuda_bf16 = types.SimpleNamespace(is_cuda=True, dtype=torch.bfloat16)  # what use_varlen reads of a tensor
    monkeypatch.setattr(attention, "flash_attn_varlen_func", None)
    monkeypatch.setattr(attention, "varlen_attn", None)
    attention._warn_slow_path.cache_clear()
    with pytest.warns(UserWarning, match="dense") as caught:
        assert [attention.use_varlen(cuda_bf16) for _ in range(3)] == [False] * 3
    assert len(caught) == 1
    attention._warn_slow_path.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not attention.use_varlen(torch.zeros(1, dtype=torch.bfloat16))  # CPU
        assert not attention.use_varlen(types.SimpleNamespace(is_cuda=True, dtype=torch.float32))
        monkeypatch.setattr(attention, "varlen_attn", varlen_stub(set()))
        assert attention.use_varlen(cuda_bf16)


def test_attention_gathered_keys_equal_the_block_mask_and_feed_the_prompt_gradients(monkeypatch):
    """The CUDA formulation (keys gathered as [prompt, own], varlen kernel) against the CPU mask path, same layer
    inputs: equal outputs, equal gradients; the prompt's keys get gradient from every completion."""
    segments = torch.tensor([[0, 4, 0, 0], [4, 3, 0, 4], [7, 2, 0, 4], [9, 3, 9, 0], [12, 2, 9, 3]])
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, h, 14, 8, generator=g, requires_grad=True) for h in (4, 2, 2))
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal, module.training = 2, True, False
    mask = attention.block_mask(segments, 14)[None, None]
    ref, _ = attention.shared_prefix_attention(module, q, k, v, mask, scaling=0.3)
    monkeypatch.setattr(attention, "varlen_kernel", sdpa_varlen)
    out, _ = attention.shared_prefix_attention(module, q, k, v, None, scaling=0.3,
                                               vrl_keys=attention.key_layout(segments))
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    w = torch.randn(out.shape, generator=g)
    # the second completion's output alone: its gradient reaches the prompt's keys and its own, not its sibling's
    (gk,) = torch.autograd.grad((out[:, 7:9] * w[:, 7:9]).sum(), k, retain_graph=True)
    assert gk[0, :, :4].abs().sum() > 0 and gk[0, :, 7:9].abs().sum() > 0 and gk[0, :, 4:7].abs().sum() == 0
    (gq, gk, gv), (rq, rk, rv) = (torch.autograd.grad((o * w).sum(), (q, k, v)) for o in (out, ref))
    for a, b in ((gq, rq), (gk, rk), (gv, rv)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
