"""One GRPO step of train.py as a worked example, in process: train.grpo_step on a tiny model must do exactly what
its docstring lists - sample, score, group-normalise, pack, take the loss of grpo.policy_loss over the whole batch
(its micro-batches adding up), and take one optimizer step with that loss's gradient."""

import copy
import dataclasses

import pytest
import torch

import config
import data
import distributed
import grpo
import model as vlm
import rewards
import schema
import train

G = 4  # completions per prompt


def fake_score(text, row, dual=True, style="vrl"):
    """A reward that varies within each group (so advantages are non-zero): the completion's length mod 3, / 2."""
    return rewards.Reward(total=(len(text) % 3) / 2, format=0.0, accuracy=0.0, iou=0.0, iop=0.0)


@pytest.fixture
def world_of_one():
    if torch.distributed.is_initialized():
        pytest.skip("a process group already exists")
    distributed.init(need_group=True)
    yield
    distributed.close()


def test_grpo_step_equals_the_loss_by_hand(toy_dir, toy_tok, world_of_one, monkeypatch):
    """One train.grpo_step on a tiny model (2 prompts, two micro-batches of one group) equals the step written out
    by hand on a copy with the same seed: rollout, rewards, group advantages, one packed row of the whole batch,
    reference log-probs, policy_loss, backward, clip, SGD step. The loss and every updated weight agree, so the
    micro-batch weights add up to the loss of the whole batch."""
    monkeypatch.setattr(rewards, "score", fake_score)
    torch.manual_seed(0)
    policy = vlm.load_model(vlm.tiny_config("qwen2_5_vl", toy_tok))
    reference = copy.deepcopy(policy).requires_grad_(False)
    with torch.no_grad():  # a reference a little away from the policy, so the KL term is not 0
        for p in reference.parameters():
            p.add_(0.01 * torch.randn_like(p))
    expected_policy = copy.deepcopy(policy)
    rows = schema.load_jsonl(str(toy_dir / "train.jsonl"))[:2]
    prompts = [data.prepare_sample(r, toy_tok, "qwen2_5_vl", data.VideoConfig(max_frames=4)) for r in rows]
    cfg = dataclasses.replace(config.Config(), group_size=G, batch_size=2, pack_prompts=1, max_new_tokens=6,
                              lr=1e-2, beta=0.04)  # two micro-batches of one group each
    # plain SGD: the weights then move by lr * gradient, so equal weights mean equal gradients (Adam's per-weight
    # normalisation would blow up the rounding of near-zero gradients into differences of size lr)
    new_optimizer = lambda m: torch.optim.SGD(m.parameters(), lr=cfg.lr)

    # by hand, on a copy: the same rollout (same seed), scores, advantages, one packed row, one loss, one step
    rollout = vlm.rollout(expected_policy, toy_tok, prompts, G, cfg.max_new_tokens, cfg.temperature, seed=7)
    reward = torch.tensor([fake_score(t, None).total for t in rollout.texts])  # [B*G]
    advantages, _ = grpo.group_advantages(reward, G)
    completions = rollout.completions()
    packed = vlm.pack([(s, completions[i * G:(i + 1) * G]) for i, s in enumerate(prompts)], expected_policy.config)
    with torch.no_grad():
        ref_logp = packed.unflatten(vlm.completion_logprobs(reference, packed))
    logp = packed.unflatten(vlm.completion_logprobs(expected_policy, packed))  # [B*G, T]
    loss, _ = grpo.policy_loss(logp, logp.detach(), ref_logp, advantages, packed.mask, beta=cfg.beta)
    optimizer = new_optimizer(expected_policy)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(expected_policy.parameters(), cfg.grad_clip)
    optimizer.step()

    stats, logged = train.grpo_step(cfg, policy, reference, new_optimizer(policy), toy_tok, prompts, 7,
                                    torch.device("cpu"))
    assert stats["reward"] == pytest.approx(float(reward.mean()))
    assert stats["zero_variance_groups"] == 0 and 0 < stats["kl"]
    assert stats["loss"] == pytest.approx(loss.item(), abs=1e-6)  # two micro-batches add up to the batch's loss
    for (name, got), want in zip(policy.named_parameters(), expected_policy.parameters()):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5, msg=name)
    assert any(not torch.equal(p, q) for p, q in zip(policy.parameters(), reference.parameters()))
    assert [text for _, text, _ in logged] == rollout.texts[:cfg.log_samples]


def test_two_updates_per_batch_reuse_the_old_log_probs(toy_dir, toy_tok, world_of_one, monkeypatch):
    """--updates-per-batch 2: the rollout's log-probs are frozen as the old policy; the first update has ratio 1,
    the second takes its ratio against them with the weights the first one moved (PPO's several epochs)."""
    monkeypatch.setattr(rewards, "score", fake_score)
    torch.manual_seed(0)
    policy = vlm.load_model(vlm.tiny_config("qwen2_5_vl", toy_tok))
    expected_policy = copy.deepcopy(policy)
    rows = schema.load_jsonl(str(toy_dir / "train.jsonl"))[:2]
    prompts = [data.prepare_sample(r, toy_tok, "qwen2_5_vl", data.VideoConfig(max_frames=4)) for r in rows]
    cfg = dataclasses.replace(config.Config(), group_size=G, batch_size=2, pack_prompts=2, max_new_tokens=6,
                              lr=1e-2, beta=0.0, updates_per_batch=2)

    rollout = vlm.rollout(expected_policy, toy_tok, prompts, G, cfg.max_new_tokens, cfg.temperature, seed=7)
    advantages, _ = grpo.group_advantages(torch.tensor([fake_score(t, None).total for t in rollout.texts]), G)
    completions = rollout.completions()
    packed = vlm.pack([(s, completions[i * G:(i + 1) * G]) for i, s in enumerate(prompts)], expected_policy.config)
    with torch.no_grad():
        old = packed.unflatten(vlm.completion_logprobs(expected_policy, packed))  # [B*G, T], before any update
    optimizer = torch.optim.SGD(expected_policy.parameters(), lr=cfg.lr)
    for _ in range(2):
        logp = packed.unflatten(vlm.completion_logprobs(expected_policy, packed))
        loss, _ = grpo.policy_loss(logp, old, None, advantages, packed.mask, beta=0.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(expected_policy.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad()

    stats, _ = train.grpo_step(cfg, policy, None, torch.optim.SGD(policy.parameters(), lr=cfg.lr), toy_tok, prompts,
                               7, torch.device("cpu"))
    assert stats["loss"] == pytest.approx(loss.item(), abs=1e-6)  # the second update's loss
    for (name, got), want in zip(policy.named_parameters(), expected_policy.parameters()):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5, msg=name)


def test_online_selection_drops_the_groups_whose_rewards_do_not_vary(toy_dir, toy_tok, world_of_one, monkeypatch):
    """--min-group-std 0.1: the first prompt's four completions all score 0.5 (std 0), the second's vary; the step
    is then exactly a GRPO step on the second group alone (its tokens alone make the token mean), and the first
    group is counted as dropped. A step where every group is dropped leaves the weights as they were."""
    scores = iter([0.5, 0.5, 0.5, 0.5, 0.0, 1.0, 0.0, 1.0] * 2)
    monkeypatch.setattr(rewards, "score", lambda text, row, dual=True, style="vrl": rewards.Reward(
        total=next(scores), format=0.0, accuracy=0.0, iou=0.0, iop=0.0))
    torch.manual_seed(0)
    policy = vlm.load_model(vlm.tiny_config("qwen2_5_vl", toy_tok))
    expected_policy = copy.deepcopy(policy)
    rows = schema.load_jsonl(str(toy_dir / "train.jsonl"))[:2]
    prompts = [data.prepare_sample(r, toy_tok, "qwen2_5_vl", data.VideoConfig(max_frames=4)) for r in rows]
    cfg = dataclasses.replace(config.Config(), group_size=G, batch_size=2, pack_prompts=1, max_new_tokens=6,
                              lr=1e-2, beta=0.0, min_group_std=0.1)

    rollout = vlm.rollout(expected_policy, toy_tok, prompts, G, cfg.max_new_tokens, cfg.temperature, seed=7)
    advantages, _ = grpo.group_advantages(torch.tensor([0.0, 1.0, 0.0, 1.0]), G)  # the second group alone
    packed = vlm.pack([(prompts[1], rollout.completions()[G:])], expected_policy.config)
    logp = packed.unflatten(vlm.completion_logprobs(expected_policy, packed))
    loss, _ = grpo.policy_loss(logp, logp.detach(), None, advantages, packed.mask, beta=0.0)
    optimizer = torch.optim.SGD(expected_policy.parameters(), lr=cfg.lr)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(expected_policy.parameters(), cfg.grad_clip)
    optimizer.step()

    stats, _ = train.grpo_step(cfg, policy, None, torch.optim.SGD(policy.parameters(), lr=cfg.lr), toy_tok, prompts,
                               7, torch.device("cpu"))
    assert stats["dropped_groups"] == 1 and stats["zero_variance_groups"] == 1
    assert stats["loss"] == pytest.approx(loss.item(), abs=1e-6)
    for (name, got), want in zip(policy.named_parameters(), expected_policy.parameters()):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5, msg=name)

    before = copy.deepcopy(policy)
    stats, _ = train.grpo_step(dataclasses.replace(cfg, min_group_std=2.0), policy, None,
                               torch.optim.AdamW(policy.parameters(), lr=cfg.lr), toy_tok, prompts, 7,
                               torch.device("cpu"))
    assert stats["dropped_groups"] == 2 and stats["update_skipped"] == 1.0 and stats["loss"] == 0.0
    assert all(torch.equal(p, q) for p, q in zip(policy.parameters(), before.parameters()))
