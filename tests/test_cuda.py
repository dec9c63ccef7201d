"""The CUDA paths on a real GPU: `python -m pytest -m cuda` (the default run hides the GPU; without one these skip).

On CPU the varlen formulation is tested through the kernels' contract (tests/test_model.py: sdpa_varlen stands in
for flash_attn_varlen_func); here the real kernels run, flash-attn when installed, else torch's varlen_attn. In bf16
two correct paths differ by rounding, so each is measured against the same weights in float32: the varlen kernel's
error may be at most twice the SDPA path's, plus a little.
"""

import copy
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import attention
import model as vlm
from test_model import FAMS, grads, random_groups, tiny, two_videos, vision_outputs
from test_rollout import greedy_equals_generate

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def needs_a_varlen_kernel():
    if attention.flash_attn_varlen_func is None and attention.varlen_attn is None:
        pytest.skip("neither flash-attn nor torch's varlen_attn is installed")


def counting_kernel(monkeypatch):
    """Wraps attention.varlen_kernel; -> the list its calls append to."""
    calls, kernel = [], attention.varlen_kernel
    monkeypatch.setattr(attention, "varlen_kernel", lambda *a, **kw: calls.append(1) or kernel(*a, **kw))
    return calls


def error(x, ref):
    """Relative error ||x - ref|| / ||ref|| over a tensor or a dict of tensors (all gradients at once)."""
    if isinstance(ref, dict):
        x, ref = (torch.cat([d[k].flatten().float() for k in sorted(ref)]) for d in (x, ref))
    return float((x.float() - ref.float()).norm() / ref.float().norm())


def assert_no_worse(varlen, sdpa, ref, what):
    e_varlen, e_sdpa = error(varlen, ref), error(sdpa, ref)
    assert e_varlen <= 2 * e_sdpa + 1e-3, f"{what}: varlen error {e_varlen:.2e}, SDPA error {e_sdpa:.2e}"


@pytest.mark.parametrize("family", FAMS)
def test_packed_varlen_kernel_equals_the_block_mask_path(toy_tok, family, monkeypatch):
    """The packed log-probs and every gradient, bf16: through the varlen kernel (keys gathered per segment) and
    through SDPA with the dense block mask, both against float32."""
    needs_a_varlen_kernel()
    model = tiny(family, toy_tok).cuda()
    packed = vlm.pack(random_groups(toy_tok, family), model.config)

    def run(dtype, use_varlen):
        m = copy.deepcopy(model).to(dtype)
        with monkeypatch.context() as patch:
            if not use_varlen:
                patch.setattr(attention, "use_varlen", lambda x: False)
            logp = vlm.completion_logprobs(m, packed)
            logp.sum().backward()
        return logp.detach(), grads(m)
    calls = counting_kernel(monkeypatch)
    (ours, g_ours), (sdpa, g_sdpa), (ref, g_ref) = run(torch.bfloat16, True), run(torch.bfloat16, False), \
        run(torch.float32, False)
    assert len(calls) == model.config.text_config.num_hidden_layers + model.config.vision_config.depth  # bf16 run
    assert_no_worse(ours, sdpa, ref, "log-probs")
    assert_no_worse(g_ours, g_sdpa, g_ref, "gradients")


@pytest.mark.parametrize("family", FAMS)
def test_vision_varlen_kernel_equals_the_towers_sdpa_path(toy_tok, family, monkeypatch):
    """The vision tower's features and gradients, bf16: one non-causal varlen call per block against transformers'
    SDPA per window, both against float32."""
    needs_a_varlen_kernel()
    model = tiny(family, toy_tok).cuda()
    pixels, grid = (x.cuda() for x in two_videos(family))

    def run(dtype, implementation):
        tower = copy.deepcopy(model).to(dtype)
        tower.set_attn_implementation({"vision_config": implementation})
        out = vision_outputs(tower.model.visual, pixels.to(dtype), grid)
        out.float().square().mean().backward()
        return out.detach(), grads(tower.model.visual)
    calls = counting_kernel(monkeypatch)
    (ours, g_ours), (sdpa, g_sdpa) = run(torch.bfloat16, attention.VISION_ATTENTION), run(torch.bfloat16, "sdpa")
    assert len(calls) == model.config.vision_config.depth  # one call per block, every window in it
    ref, g_ref = run(torch.float32, "sdpa")
    assert_no_worse(ours, sdpa, ref, "features")
    assert_no_worse(g_ours, g_sdpa, g_ref, "gradients")


@pytest.mark.parametrize("family", FAMS)
def test_greedy_sampling_equals_generate_on_cuda(toy_tok, family):
    greedy_equals_generate(toy_tok, family, "cuda")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_gpus_train_grpo_steps(toy_dir, toy_tok, tmp_path):
    """torchrun on 2 GPUs (NCCL, FSDP2, bf16, activation checkpointing), a tiny Qwen2.5-VL: 2 GRPO steps with finite
    loss and gradient norm, a step-1 KL of about 0 (the policy is the reference), and a checkpoint that loads."""
    init, out = tmp_path / "init", tmp_path / "run"
    torch.manual_seed(0)
    vlm.load_model(vlm.tiny_config("qwen2_5_vl", toy_tok)).save_pretrained(init)
    toy_tok.save_pretrained(init)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "train.py",
           "--model", str(init), "--data", str(toy_dir / "train.jsonl"), "--out", str(out), "--steps", "2",
           "--batch-size", "1", "--group-size", "4", "--max-new-tokens", "16", "--max-frames", "4",
           "--dtype", "bfloat16", "--grad-checkpointing", "true", "--save-every", "2"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in rows)
    assert abs(rows[0]["kl"]) < 1e-3
    assert type(vlm.load_model(str(out / "checkpoint-2"))) is vlm.CLASSES["qwen2_5_vl"][1]
