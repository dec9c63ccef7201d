"""GRPO worked examples: advantages, ratios, clipping, k3 KL and its cap, the three aggregations, micro-batch
weighting, and the gradient."""

import math

import pytest
import torch

from config import AGGREGATES
from grpo import group_advantages, kl_k3, micro_batch_weight, policy_loss, varied_groups

S3 = math.sqrt(3)
LN2 = math.log(2)
NAN, INF = float("nan"), float("inf")


def worked_example():
    """Two groups of G = 3, T = 2 tokens, old_logp = -1 everywhere; pads hold garbage (nan, inf).

    Advantages (eps = 0): group 1 r = [1, 0, 0.5], mean 0.5, sample std sqrt((.25 + .25 + 0) / 2) = 0.5
    -> A = [1, -1, 0]; group 2 r = [0, 0, 1], mean 1/3, std sqrt((1/9 + 1/9 + 4/9) / 2) = 1/sqrt(3)
    -> A = [-1/sqrt(3), -1/sqrt(3), 2/sqrt(3)] = [-0.577350, -0.577350, 1.154701].

    row  A        ratios      -min(rho A, clip(rho, 0.8, 1.2) A) per token     ref - logp   k3
    0    1        1.5, 1.0    -min(1.5, 1.2) = -1.2 (clipped high), -1.0        ln 2, 0      1 - ln 2, 0
    1    -1       0.5, pad    -min(-0.5, -0.8) = 0.8 (clipped low)              0            0
    2    0        1.1, 0.9    0, 0                                              0, 0         0, 0
    3    -0.5774  1.1, 0.9    1.1/sqrt3 = 0.635085, 0.9/sqrt3 = 0.519615        0, 0         0, 0
    4    -0.5774  1.3, pad    -min(1.3 A, 1.2 A) = 1.3/sqrt3 = 0.750555 (A < 0 above the band: not clipped)
    5    1.1547   0.7, 1.0    -min(0.7 A, 0.8 A) = -1.4/sqrt3 = -0.808290 (A > 0 below the band: not clipped),
                              -2/sqrt3 = -1.154701                              0, -ln 2     0, ln 2 - 0.5

    k3(d) = e^d - d - 1: k3(ln 2) = 2 - ln 2 - 1 = 0.306853, k3(-ln 2) = 0.5 + ln 2 - 1 = 0.193147; sum 0.5.
    10 completion tokens; sum of surrogate terms = -1.2 - 1 + 0.8 + (1.1 + 0.9 + 1.3 - 1.4 - 2) / sqrt3
    = -1.4 - 0.1/sqrt3 = -1.457735; beta = 0.01 adds 0.01 * 0.5 = 0.005.
    token loss    = (-1.457735 + 0.005) / 10 = -0.145273503
    dr_grpo loss  = (-1.457735 + 0.005) / (6 completions * max_len 4) = -0.060530626 (max_len, the generation
                    limit, is a constant: 4 here although no completion is longer than 2)
    sequence loss = mean of row means [(-2.2 + 0.003069) / 2, 0.8, 0, 1/sqrt3, 1.3/sqrt3,
                    (-3.4/sqrt3 + 0.001931) / 2] = mean[-1.098466, 0.8, 0, 0.577350, 0.750555, -0.980530]
                  = 0.048910 / 6 = 0.008151694
    stats: kl = 0.5 / 10 = 0.05, clip_high_frac = clip_low_frac = 1/10, ratio_min 0.5, ratio_max 1.5.
    """
    adv, n_zero = group_advantages(torch.tensor([1.0, 0.0, 0.5, 0.0, 0.0, 1.0], dtype=torch.float64), 3, eps=0.0)
    ratios = torch.tensor([[1.5, 1.0], [0.5, 1.0], [1.1, 0.9], [1.1, 0.9], [1.3, 1.0], [0.7, 1.0]],
                          dtype=torch.float64)
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [1, 1], [1, 0], [1, 1]], dtype=torch.bool)
    old_logp = torch.full((6, 2), -1.0, dtype=torch.float64)
    logp = old_logp + ratios.log()
    ref_logp = logp.clone()
    ref_logp[0, 0] += LN2
    ref_logp[5, 1] -= LN2
    logp[1, 1], logp[4, 1] = NAN, INF  # garbage under the mask
    old_logp[1, 1], ref_logp[4, 1] = -INF, NAN
    return adv, n_zero, logp, old_logp, ref_logp, mask


def test_worked_example_advantages():
    """The two groups of the worked example above: r = [1, 0, 0.5] gives A = [1, -1, 0] and r = [0, 0, 1] gives
    A = [-1, -1, 2] / sqrt(3) (mean over the group, sample std with N - 1)."""
    adv, n_zero, *_ = worked_example()
    expected = [1.0, -1.0, 0.0, -1 / S3, -1 / S3, 2 / S3]
    assert torch.allclose(adv, torch.tensor(expected, dtype=torch.float64), atol=1e-6, rtol=0)
    assert n_zero == 0


def test_worked_example_token_loss_and_stats():
    """aggregate="token" (the default) on the worked example: the sum of token terms over the 10 completion tokens,
    -0.145273503, and the logged statistics; garbage under the mask gets no gradient."""
    adv, _, logp, old_logp, ref_logp, mask = worked_example()
    logp.requires_grad_(True)
    loss, stats = policy_loss(logp, old_logp, ref_logp, adv, mask, beta=0.01)
    assert loss.item() == pytest.approx(-0.145273503, abs=1e-6)
    assert loss.item() == pytest.approx((-1.4 - 0.1 / S3 + 0.01 * 0.5) / 10, abs=1e-12)
    assert stats == pytest.approx({"kl": 0.05, "clip_low_frac": 0.1, "clip_high_frac": 0.1,
                                   "ratio_min": 0.5, "ratio_max": 1.5}, abs=1e-6)
    assert all(type(v) is float for v in stats.values())
    loss.backward()
    assert torch.isfinite(logp.grad).all()
    assert logp.grad[1, 1] == 0 and logp.grad[4, 1] == 0  # masked garbage gets no gradient


def test_worked_example_sequence_loss():
    """aggregate="sequence" (the original GRPO): the mean over completions of each completion's mean token term,
    0.008151694 as worked out above; a 1-token completion weighs as much as a 2-token one."""
    adv, _, logp, old_logp, ref_logp, mask = worked_example()
    loss, _ = policy_loss(logp, old_logp, ref_logp, adv, mask, beta=0.01, aggregate="sequence")
    assert loss.item() == pytest.approx(0.008151694, abs=1e-6)


def test_worked_example_dr_grpo_loss():
    """aggregate="dr_grpo": the same sum of token terms as "token" divided by the constant N * max_len (6 * 4), not
    by the 10 tokens present; the logged kl stays a per-token mean; without max_len it refuses."""
    adv, _, logp, old_logp, ref_logp, mask = worked_example()
    loss, stats = policy_loss(logp, old_logp, ref_logp, adv, mask, beta=0.01, aggregate="dr_grpo", max_len=4)
    assert loss.item() == pytest.approx(-0.060530626, abs=1e-9)
    assert loss.item() == pytest.approx((-1.4 - 0.1 / S3 + 0.01 * 0.5) / (6 * 4), abs=1e-12)
    assert stats["kl"] == pytest.approx(0.05, abs=1e-9)  # the statistics stay per-token means
    with pytest.raises(ValueError, match="max_len"):
        policy_loss(logp, old_logp, ref_logp, adv, mask, aggregate="dr_grpo")


def test_varied_groups_keeps_the_groups_that_can_teach():
    """The online selection's question, asked of each group's G rewards: does the sample std reach min_std?
    Equal rewards (std 0) never do; IoUs a hair apart (std 0.006) do not at 0.1; a right/wrong mix (std 0.58) does;
    min_std 0 keeps every group."""
    rewards = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.50, 0.51, 0.50, 0.51, 0.0, 1.0, 0.0, 1.0])  # B = 3 groups of 4
    assert varied_groups(rewards, 4, 0.1).tolist() == [False, False, True]
    assert varied_groups(rewards, 4, 0.005).tolist() == [False, True, True]
    assert varied_groups(rewards, 4, 0.0).tolist() == [True, True, True]


def test_zero_variance_group_is_exactly_zero():
    """[0.1, 0.1, 0.1]: its float mean is 0.10000000000000002, so only an explicit zero gives exactly 0."""
    adv, n_zero = group_advantages(torch.tensor([0.1, 0.1, 0.1, 1.0, 0.0, 0.0], dtype=torch.float64), 3)
    assert adv[:3].tolist() == [0.0, 0.0, 0.0]
    assert torch.isfinite(adv).all() and n_zero == 1
    # integer rewards; groups [1, 1], [0, 0] flat; [1, 0]: mean 0.5, sample std sqrt(0.5), A = +-0.5 / sqrt(0.5)
    adv, n_zero = group_advantages(torch.tensor([1, 1, 0, 0, 1, 0]), 2)
    assert adv.tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.5 / (2 ** -0.5 + 1e-6), -0.5 / (2 ** -0.5 + 1e-6)])
    assert adv.dtype == torch.float32 and type(n_zero) is int and n_zero == 2


def test_advantages_eps_sample_std_and_dr_grpo():
    """r = [1, 0, 0.5]: sample std (N - 1) 0.5, population std 0.408; A_0 = 0.5 / (0.5 + 1e-6)."""
    r = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)
    adv, _ = group_advantages(r, 3)
    assert adv.tolist() == pytest.approx([0.5 / (0.5 + 1e-6), -0.5 / (0.5 + 1e-6), 0.0], abs=1e-12)
    adv, _ = group_advantages(r, 3, scale=False)  # Dr. GRPO: r - mean
    assert adv.tolist() == pytest.approx([0.5, -0.5, 0.0], abs=1e-12)
    for bad_group_size in (2, 1):  # 3 rewards are not groups of 2; G = 1 has no variance to speak of
        with pytest.raises(ValueError):
            group_advantages(r, bad_group_size)


def one_token(ratio, advantage, beta=0.0):
    """Loss and d loss / d logp for a single completion of a single token."""
    logp = torch.tensor([[math.log(ratio)]], dtype=torch.float64, requires_grad=True)
    loss, stats = policy_loss(logp, torch.zeros(1, 1, dtype=torch.float64), None, torch.tensor([advantage]),
                              torch.ones(1, 1, dtype=torch.bool), beta=beta)
    loss.backward()
    return loss.item(), logp.grad.item(), stats


def test_clip_branches():
    """A > 0, rho = 1.5 above the band: -1.2 A, no gradient. A < 0, rho = 0.5 below it: -0.8 A, no gradient.
    The other sides are not clipped: A > 0, rho = 0.5 -> -0.5 A with gradient -rho A = -1 (A = 2);
    A < 0, rho = 1.5 -> -1.5 A with gradient -rho A = 3 (A = -2)."""
    loss, grad, stats = one_token(1.5, 2.0)
    assert (loss, grad, stats["clip_high_frac"], stats["clip_low_frac"]) == pytest.approx((-2.4, 0.0, 1.0, 0.0))
    loss, grad, stats = one_token(0.5, -2.0)
    assert (loss, grad, stats["clip_high_frac"], stats["clip_low_frac"]) == pytest.approx((1.6, 0.0, 0.0, 1.0))
    loss, grad, stats = one_token(0.5, 2.0)
    assert (loss, grad, stats["clip_high_frac"], stats["clip_low_frac"]) == pytest.approx((-1.0, -1.0, 0.0, 0.0))
    loss, grad, stats = one_token(1.5, -2.0)
    assert (loss, grad, stats["clip_high_frac"], stats["clip_low_frac"]) == pytest.approx((3.0, 3.0, 0.0, 0.0))


def test_asymmetric_clip():
    """clip_high = 0.28 (DAPO's clip-higher): rho = 1.25 with A = 1 is inside the band, loss -1.25."""
    logp = torch.tensor([[math.log(1.25)]], dtype=torch.float64)
    loss, _ = policy_loss(logp, torch.zeros(1, 1, dtype=torch.float64), None, torch.tensor([1.0]),
                          torch.ones(1, 1), clip_high=0.28, beta=0.0)
    assert loss.item() == pytest.approx(-1.25)


def test_kl_k3():
    """k3 = e^d - d - 1 with d = ref - logp: 0 at equal log-probs, 2 - ln 2 - 1 at d = ln 2, never negative."""
    x = torch.randn(1000, dtype=torch.float64)
    assert kl_k3(x, x).abs().max().item() == 0.0
    assert kl_k3(torch.tensor(0.0), torch.tensor(LN2)).item() == pytest.approx(1 - LN2, abs=1e-7)
    assert kl_k3(torch.tensor(0.0), torch.tensor(-LN2)).item() == pytest.approx(LN2 - 0.5, abs=1e-7)
    y = x + torch.randn(1000, dtype=torch.float64) * torch.logspace(-10, 1, 1000, dtype=torch.float64)
    assert (kl_k3(x, y) >= 0).all() and (kl_k3(x.float(), y.float()) >= 0).all()


def test_beta_zero_needs_no_reference():
    """beta = 0 drops the KL term: the loss is the surrogate alone ((-1.4 - 0.1/sqrt3) / 10 on the worked example),
    no reference log-probs are needed and kl logs 0; beta != 0 without a reference is an error."""
    adv, _, logp, old_logp, _, mask = worked_example()
    loss, stats = policy_loss(logp, old_logp, None, adv, mask, beta=0.0)
    assert loss.item() == pytest.approx((-1.4 - 0.1 / S3) / 10, abs=1e-9)
    assert stats["kl"] == 0.0
    with pytest.raises(ValueError):
        policy_loss(logp, old_logp, None, adv, mask, beta=0.01)


def test_token_vs_sequence_aggregation():
    """Completion 0: 1 token, A = +2; completion 1: 3 tokens, A = -1; rho = 1, so per-token terms -2 and +1, +1, +1.
    token: (-2 + 3) / 4 = 0.25 (long completions weigh more); sequence: (-2 + 3/3) / 2 = -0.5.
    A third, empty completion (all masked) changes neither (it would make the sequence mean -1/3)."""
    logp = torch.zeros(3, 3, dtype=torch.float64)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.float64)  # float masks work too
    adv = torch.tensor([2.0, -1.0, 5.0], dtype=torch.float64)
    token, _ = policy_loss(logp, logp, None, adv, mask, beta=0.0, aggregate="token")
    sequence, _ = policy_loss(logp, logp, None, adv, mask, beta=0.0, aggregate="sequence")
    assert token.item() == pytest.approx(0.25) and sequence.item() == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        policy_loss(logp, logp, None, adv, mask, beta=0.0, aggregate="mean")


def test_dr_grpo_weighs_every_token_the_same():
    """The data of the test above, aggregate="dr_grpo" with max_len 4: (-2 + 3) / (3 completions * 4) = 1/12, the
    empty completion counted (as TRL counts rows). d loss / d logp_it = -A_i / (N * max_len) for every token, so
    each token of completion 0 gets -2/12 and each of completion 1 gets +1/12 whatever the length of its completion
    ("sequence" gives -2/2 and +1/(2 * 3): a long completion's tokens weigh less)."""
    logp = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)
    adv = torch.tensor([2.0, -1.0, 5.0], dtype=torch.float64)
    loss, _ = policy_loss(logp, logp.detach(), None, adv, mask, beta=0.0, aggregate="dr_grpo", max_len=4)
    loss.backward()
    assert loss.item() == pytest.approx(1 / 12)
    expected = torch.tensor([[-2.0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.float64) / 12
    assert torch.allclose(logp.grad, expected, atol=1e-15, rtol=0)


def kl_token(d, kl_clamp, dtype=torch.float64):
    """One token with ref - logp = d, A = 0 and rho = 1, beta = 1: the loss is that token's k3 alone.
    Returns (loss, d loss / d logp, stats)."""
    logp = torch.zeros(1, 1, dtype=dtype, requires_grad=True)
    loss, stats = policy_loss(logp, logp.detach(), torch.full((1, 1), d, dtype=dtype), torch.zeros(1),
                              torch.ones(1, 1), beta=1.0, kl_clamp=kl_clamp)
    loss.backward()
    return loss.item(), logp.grad.item(), stats


def test_kl_cap_of_ten():
    """ref - logp = 6: k3 = e^6 - 6 - 1 = 396.428793 uncapped, with gradient d k3 / d logp = -(e^6 - 1) = -402.428793;
    capped at 10 (the default, verl's low_var_kl bound): loss 10, no gradient, logged kl 10. Below the cap nothing
    changes: d = ln 2 gives 2 - ln 2 - 1 = 0.306853 and gradient -(2 - 1) either way. d = 100 in float32: e^100
    overflows, the capped token still gives 10 and a zero gradient (not nan)."""
    loss, grad, stats = kl_token(6.0, None)
    assert (loss, grad) == pytest.approx((396.428793, -402.428793), abs=1e-6)
    loss, grad, stats = kl_token(6.0, 10.0)
    assert (loss, grad, stats["kl"]) == (10.0, 0.0, 10.0)
    assert kl_token(LN2, 10.0)[:2] == kl_token(LN2, None)[:2] == pytest.approx((1 - LN2, -(2 - 1)), abs=1e-12)
    assert kl_token(100.0, 10.0, torch.float32)[:2] == (10.0, 0.0)
    assert kl_token(6.0, 0)[0] == pytest.approx(396.428793)  # 0 switches the cap off, as None does
    assert kl_k3(torch.tensor(0.0), torch.tensor(-30.0), clamp=10.0).item() == 10.0  # k3(-30) = 29 + e^-30


def test_kl_cap_leaves_the_worked_example_alone():
    """Its k3 values (0.31, 0.19, 0) are far below 10: the default loss equals the uncapped one."""
    adv, _, logp, old_logp, ref_logp, mask = worked_example()
    capped, _ = policy_loss(logp, old_logp, ref_logp, adv, mask)
    uncapped, _ = policy_loss(logp, old_logp, ref_logp, adv, mask, kl_clamp=None)
    assert capped.item() == uncapped.item()


@pytest.mark.parametrize("aggregate", AGGREGATES)
@pytest.mark.parametrize("world", [1, 3])
def test_micro_batches_add_up_to_the_batch_loss(aggregate, world):
    """train.py multiplies each micro-batch's loss by micro_batch_weight, sums them on each rank and lets
    data-parallel training average the ranks' gradients. The worked example's 6 completions as 3 micro-batches of 2
    (3, 4 and 3 tokens), on one rank or one each on three ranks: the result is the loss of the whole batch."""
    adv, _, logp, old_logp, ref_logp, mask = worked_example()
    kw = dict(beta=0.01, aggregate=aggregate, max_len=4)
    whole, _ = policy_loss(logp, old_logp, ref_logp, adv, mask, **kw)
    micro = [slice(0, 2), slice(2, 4), slice(4, 6)]
    ranks = [micro] if world == 1 else [[m] for m in micro]
    token_share = world / int(mask.sum())
    total = 0.0
    for packs in ranks:
        for m in packs:
            loss, _ = policy_loss(logp[m], old_logp[m], ref_logp[m], adv[m], mask[m], **kw)
            total += loss.item() * float(micro_batch_weight(aggregate, int(mask[m].sum()), token_share, len(packs)))
    assert total / world == pytest.approx(whole.item(), abs=1e-12)


@pytest.mark.parametrize("aggregate", AGGREGATES)
def test_gradient_matches_finite_differences(aggregate):
    """d loss / d logp against central differences (float64), ratios kept off the clip kinks at 0.8 and 1.2."""
    g = torch.Generator().manual_seed(0)
    n, t = 4, 5
    old_logp = -torch.rand(n, t, generator=g, dtype=torch.float64) * 3
    ratios = torch.tensor([0.5, 0.7, 0.9, 1.0, 1.1, 1.3, 1.6], dtype=torch.float64)
    logp = old_logp + ratios[torch.randint(0, 7, (n, t), generator=g)].log()
    ref_logp = logp + torch.randn(n, t, generator=g, dtype=torch.float64) * 0.5
    mask = torch.arange(t)[None, :] < torch.tensor([5, 2, 4, 1])[:, None]  # [N, T]
    adv = torch.tensor([1.0, -0.5, 0.3, -2.0], dtype=torch.float64)

    def f(x):
        return policy_loss(x, old_logp, ref_logp, adv, mask, beta=0.04, aggregate=aggregate, max_len=t)[0]

    x = logp.clone().requires_grad_(True)
    f(x).backward()
    h, numeric = 1e-6, torch.zeros_like(logp)
    for i in range(n):
        for j in range(t):
            e = torch.zeros_like(logp)
            e[i, j] = h
            numeric[i, j] = (f(logp + e) - f(logp - e)) / (2 * h)
    assert torch.allclose(x.grad, numeric, atol=1e-8, rtol=1e-6)
    assert (x.grad[~mask] == 0).all()
