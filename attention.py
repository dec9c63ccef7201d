"""Attention functions for the two halves of a Qwen-VL model, registered with transformers' AttentionInterface.

Language model (ATTENTION): the shared-prefix attention of a packed row. The segment table has a row per segment,
(start, length, prefix_start, prefix_length): a prompt is a segment with no prefix, a completion's prefix is its
prompt. On CPU (and in float32) the table becomes a boolean [L, L] mask for SDPA; on CUDA in half precision each
segment's keys are gathered as [prefix, own] and one varlen kernel call (flash-attn, else torch's varlen_attn) does
causal attention aligned bottom-right: query j of a segment with n queries and m keys sees keys 0 .. m - n + j.

Vision tower (VISION_ATTENTION): the tower attends within windows of patches (Qwen2.5-VL; its few full-attention
blocks within each frame pair) or within each frame pair (Qwen3-VL), all laid back to back with their boundaries in
cu_seqlens. With SDPA, transformers runs one SDPA call per window, a Python loop of thousands of calls per video at
7B. Here one non-causal varlen kernel call covers every window of a block on CUDA in half precision; elsewhere the
same per-window SDPA as transformers' own path.

Without flash-attn and without torch's varlen_attn (torch < 2.9), CUDA takes the SDPA paths above: a dense [L, L]
mask per packed row (several times the attention work) and the per-window loop. use_varlen says so once.
"""

import functools
import inspect
import warnings

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

try:
    from flash_attn import flash_attn_varlen_func
except ImportError:
    flash_attn_varlen_func = None
try:
    from torch.nn.attention.varlen import varlen_attn
except ImportError:
    varlen_attn = None
VARLEN_PARAMS = set(inspect.signature(varlen_attn).parameters) if varlen_attn is not None else set()  # per version

ATTENTION = "vrl_shared_prefix"  # the language model's attention, our name in AttentionInterface
# The vision tower's. transformers' towers hand the attention function cu_seqlens (one call per block) only when the
# implementation's name contains "flash" (transformers.utils.generic.is_flash_attention_requested); under any other
# name they call it once per window. Set on the vision sub-model only, the name loads no flash kernel of its own.
VISION_ATTENTION = "vrl_vision_flash_varlen"


# ----------------------------------------------------------------------------------------------------------------
# kernels

def varlen_kernel(q, k, v, cu_q, cu_k, max_q, max_k, scale, causal=True):
    """Varlen attention, q [T_q, H, D], k/v [T_k, H_kv, D], segments cut by cu_q / cu_k [S+1] (int32)
    -> [T_q, H, D]; causal aligns bottom-right. flash-attn when installed, else torch's varlen_attn."""
    if flash_attn_varlen_func is not None:
        return flash_attn_varlen_func(q, k, v, cu_q, cu_k, max_q, max_k, softmax_scale=scale, causal=causal)
    kw = {"window_size": (-1, 0) if causal else (-1, -1)} if "window_size" in VARLEN_PARAMS else {"is_causal": causal}
    if "enable_gqa" in VARLEN_PARAMS:
        kw["enable_gqa"] = True
    else:  # older torch: no GQA, repeat the KV heads
        k, v = (x.repeat_interleave(q.shape[1] // x.shape[1], dim=1) for x in (k, v))
    if "scale" in VARLEN_PARAMS:
        kw["scale"] = scale
    elif scale is not None:  # older torch: the kernel always scales by 1/sqrt(D); fold the rest into q
        q = q * (scale * q.shape[-1] ** 0.5)
    return varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, **kw)


@functools.cache
def _warn_slow_path():
    warnings.warn("CUDA without flash-attn or torch's varlen_attn (torch >= 2.9): the packed forward attends through "
                  "a dense [L, L] mask per row (several times the attention work and memory) and the vision tower "
                  "runs one SDPA call per window. Install flash-attn (`pip install flash-attn --no-build-isolation`) "
                  "or torch >= 2.9 for the varlen kernels.", stacklevel=3)


def use_varlen(x):
    """The varlen kernels need CUDA and half precision; everything else takes the SDPA paths. On CUDA in half
    precision with neither kernel installed, warns once that the slow path runs."""
    if not (x.is_cuda and x.dtype in (torch.float16, torch.bfloat16)):
        return False
    if flash_attn_varlen_func is None and varlen_attn is None:
        _warn_slow_path()
        return False
    return True


# ----------------------------------------------------------------------------------------------------------------
# the language model: shared-prefix attention over a packed row

def block_mask(segments, length):
    """[L, L] bool, query i may see key j: its own segment causally, and all of its segment's prefix."""
    n, pstart, plen = segments[:, 1], segments[:, 2], segments[:, 3]
    seg = torch.repeat_interleave(torch.arange(len(segments), device=segments.device), n)  # [L] segment of each token
    i = torch.arange(length, device=segments.device)
    own = (seg[:, None] == seg[None, :]) & (i[None, :] <= i[:, None])
    lo, hi = pstart[seg][:, None], (pstart + plen)[seg][:, None]
    return own | ((i[None, :] >= lo) & (i[None, :] < hi))


def key_layout(segments):
    """For varlen kernels: keys gathered per segment as [prefix, own] -> (key_index [T_k], cu_seqlens_q [S+1],
    cu_seqlens_k [S+1], max_q, max_k). Queries stay in row order; causal alignment is bottom-right."""
    rows = segments.tolist()
    key_index = torch.cat([torch.cat([torch.arange(ps, ps + pl), torch.arange(s, s + n)]) for s, n, ps, pl in rows])
    n, nk = segments[:, 1], segments[:, 1] + segments[:, 3]
    cu = lambda x: F.pad(x.cumsum(0), (1, 0)).to(torch.int32)
    return key_index.to(segments.device), cu(n), cu(nk), int(n.max()), int(nk.max())


def shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, vrl_keys=None,
                            **kwargs):
    """The language model's attention. query [1, H, L, D], key/value [1, H_kv, L, D] -> ([1, L, H, D], None).
    vrl_keys (from key_layout) selects the varlen kernel; otherwise SDPA with the mask HF prepared: our 4-D block
    mask for a packed forward, the usual causal/padding mask in rollouts."""
    if vrl_keys is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    key_index, cu_q, cu_k, max_q, max_k = vrl_keys
    q = query[0].transpose(0, 1).contiguous()  # [L, H, D]
    k, v = (x[0].transpose(0, 1)[key_index] for x in (key, value))  # [T_k, H_kv, D]; backward sums over copies
    return varlen_kernel(q, k, v, cu_q, cu_k, max_q, max_k, scaling)[None], None


def _shared_prefix_mask(attention_mask=None, **kwargs):
    """HF's mask hook for our attention: SDPA's mask when there is a padding mask (rollouts), none otherwise (the
    varlen path needs none; the packed SDPA path passes its 4-D mask, which HF hands through untouched)."""
    return None if attention_mask is None else sdpa_mask(attention_mask=attention_mask, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# the vision tower: every window in one call

def vision_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, cu_seq_lens_q=None,
                     max_length_q=None, cu_seq_lens_k=None, max_length_k=None, is_causal=False, **kwargs):
    """A vision block's attention within windows. query/key/value [1, H, N, D] hold every window back to back,
    cu_seq_lens_q [W+1] their boundaries -> ([1, N, H, D], None). One non-causal varlen call on CUDA in half
    precision; otherwise SDPA window by window, exactly transformers' own SDPA path for the tower."""
    if use_varlen(query):
        q, k, v = (x[0].transpose(0, 1).contiguous() for x in (query, key, value))  # [N, H, D]
        out = varlen_kernel(q, k, v, cu_seq_lens_q, cu_seq_lens_q, max_length_q, max_length_q, scaling, causal=False)
        return out[None], None
    lengths = (cu_seq_lens_q[1:] - cu_seq_lens_q[:-1]).tolist()
    windows = zip(*(x.split(lengths, dim=2) for x in (query, key, value)))
    return torch.cat([sdpa_attention_forward(module, q, k, v, None, scaling=scaling, dropout=dropout, is_causal=False,
                                             **kwargs)[0] for q, k, v in windows], dim=1), None


AttentionInterface.register(ATTENTION, shared_prefix_attention)
AttentionMaskInterface.register(ATTENTION, _shared_prefix_mask)
AttentionInterface.register(VISION_ATTENTION, vision_attention)


if __name__ == "__main__":
    raise SystemExit("attention.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
