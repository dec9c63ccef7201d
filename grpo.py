"""GRPO, written out by hand (torch only): group advantages, the clipped surrogate, the k3 KL, token averaging.

For each prompt, G completions o_1..o_G are sampled from the old policy and scored r_1..r_G. Per token t of
completion i (only completion tokens: up to and including EOS, padding and prompt masked out):

    A_i     = (r_i - mean(r_1..r_G)) / (std(r_1..r_G) + eps)      group-normalised advantage, std with N - 1
              (scale=False: A_i = r_i - mean(r_1..r_G), Dr. GRPO's advantage)
    rho_it  = exp(logp_it - old_logp_it)                           importance ratio to the sampling policy
    pg_it   = -min(rho_it * A_i, clip(rho_it, 1 - clip_low, 1 + clip_high) * A_i)   clipped surrogate
    d_it    = ref_it - logp_it
    kl_it   = min(exp(d_it) - d_it - 1, kl_clamp)                  k3 estimate of KL(policy || reference), >= 0,
                                                                   capped per token (kl_clamp = 10 by default)
    l_it    = pg_it + beta * kl_it

    loss    = sum_it l_it / sum_i |o_i|                            aggregate="token" (default): TRL's "dapo"
            = mean_i (sum_t l_it / |o_i|)                          aggregate="sequence": original GRPO, TRL's "grpo"
            = sum_it l_it / (N * L_max)                            aggregate="dr_grpo": Dr. GRPO, TRL's "dr_grpo"

In "dr_grpo", N counts every completion and L_max is a constant, the generation limit (max_new_tokens), as in TRL
(whose max_completion_length is that limit) and in the Dr. GRPO paper (Liu et al. 2025, "Understanding R1-Zero-Like
Training"): each token weighs the same whatever its completion's length, and unlike "token" the normaliser does
not depend on how long the batch's completions are. Dr. GRPO as the paper defines it is both changes together:
scale=False and "dr_grpo".

A group whose G rewards are all equal carries no signal: its advantages are exactly 0 and it is counted.

Defaults follow the Temporal-R1 release (G = 8, beta = 0.01, k3 capped at 10, clip 0.2, one update per batch);
how this loss departs from it: see docs/release_differences.md.
"""

import torch


def group_advantages(rewards, group_size, eps=1e-6, scale=True):
    """Advantages of G = group_size consecutive rewards per group, and the number of zero-variance groups.

    rewards [N] with N = B * G, group-major. A_i = (r_i - mean_g) / (std_g + eps), std_g the sample standard
    deviation (N - 1, as torch.std, TRL and verl); scale=False gives Dr. GRPO's r_i - mean_g. A group of equal
    rewards gets exactly 0, never NaN. G must be >= 2. Returns (advantages [N] float, n_zero_variance int).
    """
    rewards = torch.as_tensor(rewards)
    rewards = rewards if rewards.is_floating_point() else rewards.float()  # [N]
    if group_size < 2 or rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards {tuple(rewards.shape)} are not groups of {group_size}")
    r = rewards.view(-1, group_size)  # [B, G]
    centered = r - r.mean(dim=1, keepdim=True)  # [B, G]
    adv = centered / (r.std(dim=1, keepdim=True) + eps) if scale else centered  # [B, G]
    zero_var = (r == r[:, :1]).all(dim=1)  # [B]
    adv = torch.where(zero_var[:, None], torch.zeros_like(adv), adv)  # [B, G]
    return adv.view(-1), int(zero_var.sum())


def varied_groups(rewards, group_size, min_std):
    """Online selection, the in-training form of select_data.py: which groups' rewards vary enough to teach.

    rewards [B*G], group-major -> keep [B] bool: the group's sample std (N - 1, as in group_advantages) is at least
    min_std. A group of equal rewards has advantage 0 and teaches nothing but still dilutes the token mean; a group
    whose continuous rewards differ by a hair (IoUs 0.50, 0.51, ...) gets advantages of +-1 after scaling and
    teaches noise. min_std = 0 keeps every group: the plain GRPO step."""
    r = torch.as_tensor(rewards, dtype=torch.float32).view(-1, group_size)  # [B, G]
    return r.std(dim=1) >= min_std if min_std > 0 else torch.ones(len(r), dtype=torch.bool)


def kl_k3(logp, ref_logp, clamp=None):
    """k3 = exp(d) - d - 1 with d = ref - logp, elementwise, >= 0 (an unbiased estimate of KL(pi || ref) under
    samples of pi). Computed as expm1(d) - d, the same number without the cancellation of exp(d) - 1 near 0.

    clamp: cap k3 at this value (None or 0: no cap). verl's "low_var_kl" clamps k3 to [-10, 10]; k3 >= 0, so only
    the upper end can bind. A capped token adds a constant and gets no gradient. With a cap, d is first bounded
    above by 20 (current verl bounds it to [-20, 20], the Temporal-R1 release not at all) so that exp stays finite
    and a capped token's zero gradient is not 0 * inf = nan; k3(20) = 4.9e8, so the bound changes no value below
    any sensible cap."""
    d = ref_logp - logp
    if not clamp:
        return torch.expm1(d) - d
    d = d.clamp(max=20.0)
    return (torch.expm1(d) - d).clamp(max=clamp)


def policy_loss(logp, old_logp, ref_logp, advantages, mask, clip_low=0.2, clip_high=0.2, beta=0.01,
                aggregate="token", max_len=None, kl_clamp=10.0):
    """The GRPO loss of the module docstring, and statistics (python floats) for logging.

    logp, old_logp, ref_logp, mask: [N, T]; advantages: [N]. mask (bool or 0/1) marks completion tokens;
    masked-out positions may hold anything (even inf/nan) in the log-prob inputs: torch.where replaces them
    before any arithmetic, so they reach neither the loss nor its gradient. ref_logp may be None when beta = 0.
    aggregate: "token" (sum over all completion tokens / their number), "sequence" (mean over each
    completion, then over completions that have at least one token) or "dr_grpo" (sum over all completion tokens
    / (N * max_len), N the rows, empty ones included as in TRL). max_len: Dr. GRPO's constant, the generation limit
    (max_new_tokens); needed by "dr_grpo" only. kl_clamp: the cap on each token's k3 (kl_k3's clamp; None or 0:
    uncapped).

    stats: kl (mean k3 per token, capped as in the loss; 0 without ref_logp), clip_low_frac (tokens with A < 0 and
    rho < 1 - clip_low: the clipped branch, no gradient), clip_high_frac (A > 0 and rho > 1 + clip_high),
    ratio_min, ratio_max.
    """
    if aggregate == "dr_grpo" and not max_len:
        raise ValueError("aggregate='dr_grpo' needs max_len, the generation limit")
    if beta != 0 and ref_logp is None:
        raise ValueError("beta != 0 needs ref_logp")
    m = mask.bool()  # [N, T]
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    logp = torch.where(m, logp, zero)  # [N, T]
    old_logp = torch.where(m, old_logp, zero)  # [N, T]
    a = advantages[:, None].to(logp.dtype)  # [N, 1]

    ratio = torch.exp(logp - old_logp)  # [N, T]
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high)  # [N, T]
    pg = -torch.min(ratio * a, clipped * a)  # [N, T]
    kl = torch.zeros_like(pg)  # [N, T], stays 0 without a reference
    if ref_logp is not None:
        kl = kl_k3(logp, torch.where(m, ref_logp, zero), kl_clamp)  # [N, T]
    per_token = torch.where(m, pg + beta * kl if beta else pg, zero)  # [N, T]

    lengths = m.sum(dim=1)  # [N]
    n_tokens = lengths.sum().clamp(min=1)
    if aggregate == "token":
        loss = per_token.sum() / n_tokens
    elif aggregate == "dr_grpo":
        loss = per_token.sum() / (len(lengths) * max_len)
    elif aggregate == "sequence":
        per_seq = per_token.sum(dim=1) / lengths.clamp(min=1)  # [N]
        loss = per_seq.sum() / (lengths > 0).sum().clamp(min=1)
    else:
        raise ValueError(f"aggregate must be token, sequence or dr_grpo, got {aggregate!r}")

    with torch.no_grad():
        r = ratio[m]  # [n_tokens]
        stats = {
            "kl": float(torch.where(m, kl, zero).sum() / n_tokens),
            "clip_low_frac": float(((ratio < 1 - clip_low) & (a < 0) & m).sum() / n_tokens),
            "clip_high_frac": float(((ratio > 1 + clip_high) & (a > 0) & m).sum() / n_tokens),
            "ratio_min": float(r.min()) if r.numel() else 1.0,
            "ratio_max": float(r.max()) if r.numel() else 1.0,
        }
    return loss, stats


def micro_batch_weight(aggregate, n_tokens, token_share, n_micro):
    """What one micro-batch's loss is multiplied by so that the micro-batches of every rank add up to the loss of
    the whole batch (gradients are summed over micro-batches, then averaged over the W ranks):

        token              n_tokens * token_share, token_share = W / (completion tokens of all ranks)
        sequence, dr_grpo  1 / n_micro: both divide by the number of completions, and every micro-batch holds the
                           same number n of them, so mean over ranks of sum_j S_j / (n * n_micro) = sum S / N
    """
    return n_tokens * token_share if aggregate == "token" else 1 / n_micro


if __name__ == "__main__":
    raise SystemExit("grpo.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
