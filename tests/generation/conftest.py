"""Fixtures for the generation backends: a tiny model whose greedy answers differ from prompt to prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.tiny import build_tiny_model


def build_vivid_model(path: Path) -> Path:
    """The tiny random Llama with every weight scaled by 8: its logits are far apart, so greedy answers vary
    with the prompt (the plain tiny model answers every prompt with the same newlines, which would make an
    "identical answers" check pass for any backend)."""
    from transformers import AutoModelForCausalLM

    build_tiny_model(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def vivid_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_vivid_model(tmp_path_factory.mktemp("vivid") / "model")
