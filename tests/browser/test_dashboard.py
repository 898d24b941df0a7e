"""The dashboard in a real browser (Debian's headless Chromium driven by Playwright) against a
real `coinlake run --source simulated`: prices appear, update, and the chart draws candles."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from clirun import start_run
from support import REPO, free_port, wait_for_port

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
OUTPUT = REPO / "test-output" / "browser"


@pytest.fixture
def running_pipeline(tmp_path: Path):
    port = free_port()
    proc = start_run(
        tmp_path / "data", "--source", "simulated", "--interval", "1", "--buffer-interval", "1",
        "--etl-interval", "2", "--port", str(port), "--duration", "120",
    )  # fmt: skip
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_prices_appear_and_update_and_the_chart_draws(running_pipeline):
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(running_pipeline + "/")
            # The demo key from the page is used: no key form.
            assert page.locator("#key-form").is_hidden()
            btc = page.locator('.card[data-crypto="BTC"] .price')
            btc.wait_for(timeout=15_000)
            for crypto in ("BTC", "ETH", "XRP"):
                page.locator(f'.card[data-crypto="{crypto}"]').wait_for(timeout=10_000)
            first = btc.get_attribute("data-timestamp")
            assert re.fullmatch(r"\d[\d,]*\.\d{2,8}", btc.inner_text()), btc.inner_text()
            # Prices update live: a newer observation replaces the first one.
            deadline = time.monotonic() + 15
            while btc.get_attribute("data-timestamp") == first and time.monotonic() < deadline:
                time.sleep(0.25)
            assert btc.get_attribute("data-timestamp") != first, "the price did not update"
            # The chart draws candles once the ETL has run.
            page.wait_for_function("Number(document.getElementById('chart').dataset.candles || 0) > 0", timeout=20_000)
            assert page.locator("#chart canvas").count() > 0
            page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    assert (OUTPUT / "dashboard.png").stat().st_size > 10_000


def test_chromium_is_the_debian_one():
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed")
    out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert "Chromium" in out
