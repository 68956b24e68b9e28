"""Run one benchmark variant in a fresh process (so its peak RSS and warm-up are its own); its last stdout line is
its JSON result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def run_child(script: str, variant: str, *args: str) -> dict[str, Any]:
    """``python script --child variant *args``, offline; its result, or exit with the tail of its stderr."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, script, "--child", variant, *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
