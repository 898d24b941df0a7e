"""Issue 13: `coinlake run`'s Ctrl-C still exits in under 2 s with a dashboard open (its live
stream ends at once instead of holding uvicorn's graceful shutdown). A module of its own, so
that no other pipeline runs meanwhile on the 2 shared cores."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from clirun import start_run
from support import free_port, wait_for_port

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
RUN_ARGS = ("--source", "simulated", "--interval", "1", "--buffer-interval", "1", "--etl-interval", "2")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield b
        b.close()


def test_ctrl_c_exits_in_under_2_s_with_a_dashboard_open(browser, tmp_path):
    port = free_port()
    proc = start_run(tmp_path / "data", *RUN_ARGS, "--port", str(port), "--duration", "120", quiet=True)
    try:
        wait_for_port(port, timeout=30)
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.locator('.card[data-pair="BTC-USD"] .price').wait_for(timeout=20_000)
        page.wait_for_function("document.getElementById('status').textContent.startsWith('live')", timeout=10_000)
        time.sleep(1)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        took = time.monotonic() - started
        context.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    print(f"Ctrl-C to exit with a dashboard open: {took:.2f} s")
    assert proc.returncode == 0
    assert took < 2.0, f"Ctrl-C took {took:.2f} s with a dashboard open"
