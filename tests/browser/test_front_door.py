"""Issue 13, the dashboard: every control combination draws, a failed refresh says so, every
(crypto, currency) pair, one labelled time zone, readable cards that fit a phone, threshold
alerts first, a live pipeline health panel, and pushed updates within a small request budget.

Headless Debian Chromium (Playwright) against a real `coinlake run --source simulated`;
screenshots at desktop (1280x800) and phone (390x844) sizes in test-output/browser/."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clirun import start_run
from support import REPO, free_port, wait_for_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed"),
]

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
OUTPUT = REPO / "test-output" / "browser"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
RUN_ARGS = (
    "--source", "simulated", "--interval", "1", "--buffer-interval", "1", "--etl-interval", "2",
    "--symbols", "BTC-USD,ETH-USD,ETH-EUR",
)  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = start_run(
        tmp_path_factory.mktemp("front") / "data", *RUN_ARGS, "--port", str(port), "--duration", "600", quiet=True
    )
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser, server):
    contexts = []

    def open_(viewport=DESKTOP, *, timezone_id: str = "UTC", route=None, wait_live: bool = True):
        context = browser.new_context(viewport=viewport, timezone_id=timezone_id)
        contexts.append(context)
        page = context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
        if route:
            route(page)
        page.goto(server + "/")
        if wait_live:
            page.locator('.card[data-pair="BTC-USD"] .price').wait_for(timeout=20_000)
        return page

    yield open_
    for c in contexts:
        c.close()


def shot(page, name: str) -> None:
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000


def no_horizontal_overflow(page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]")
    assert max(widths[:2]) <= widths[2], f"the page scrolls sideways: {widths}"
    overflowing = page.evaluate(
        """() => [...document.querySelectorAll('main *')].filter(e => {
               const r = e.getBoundingClientRect();
               return r.width > 0 && (r.right > window.innerWidth + 1 || r.left < -1);
           }).map(e => e.id || e.className || e.tagName).slice(0, 5)"""
    )
    assert not overflowing, f"elements past the right edge: {overflowing}"


def wait_candles(page, interval: str) -> None:
    page.wait_for_function(
        f"""() => {{ const c = document.getElementById('chart');
                    return c.dataset.interval === '{interval}' && c.dataset.stale === 'false'; }}""",
        timeout=25_000,
    )


# ---------------------------------------------------------------------- chart
def test_every_range_and_candle_combination_draws_and_7_days_works(open_page):
    page = open_page()
    # once the ETL has written the first rows, every combination must draw candles
    page.wait_for_function("Number(document.getElementById('chart').dataset.candles || 0) > 0", timeout=30_000)
    ranges = page.eval_on_selector_all("#range option", "os => os.map(o => o.value)")
    assert "604800" in ranges
    tried = []
    for value in ranges:
        page.select_option("#range", value)
        offered = page.eval_on_selector_all("#interval option", "os => os.map(o => o.value)")
        assert offered, f"no candle size for range {value}"
        for interval in offered:
            page.evaluate("document.getElementById('chart').dataset.interval = ''")  # wait for this refresh
            page.select_option("#interval", interval)
            wait_candles(page, interval)
            assert page.locator("#chart-error").is_hidden(), (
                value,
                interval,
                page.locator("#chart-error").inner_text(),
            )
            tried.append((value, interval))
    # The 7-day range picks a valid candle size by itself and never offers 1-minute candles.
    page.select_option("#range", "604800")
    assert page.locator("#interval").input_value() != "1m"
    assert "1m" not in page.eval_on_selector_all("#interval option", "os => os.map(o => o.value)")
    wait_candles(page, page.locator("#interval").input_value())
    assert page.locator("#chart-error").is_hidden()
    assert int(page.locator("#chart").get_attribute("data-candles")) > 0
    shot(page, "front-7-days-desktop")
    assert len(tried) >= 10
    assert not page.errors


def test_a_failed_refresh_shows_an_error_overlay_and_marks_the_chart_stale(open_page):
    page = open_page()
    wait_candles(page, page.locator("#interval").input_value())
    body = json.dumps({"error": {"code": "boom", "message": "the lake is unreachable"}})
    page.route("**/v1/candles?*", lambda route: route.fulfill(status=503, body=body, content_type="application/json"))
    page.select_option("#range", "21600")
    overlay = page.locator("#chart-error")
    overlay.wait_for(state="visible", timeout=10_000)
    assert "the lake is unreachable" in overlay.inner_text()
    assert page.locator("#chart").get_attribute("data-stale") == "true"
    box, chart = overlay.bounding_box(), page.locator("#chart").bounding_box()
    assert box and chart and box["width"] > chart["width"] / 2, "the overlay covers the chart"
    shot(page, "front-chart-error-desktop")
    page.unroute("**/v1/candles?*")
    page.select_option("#range", "3600")
    overlay.wait_for(state="hidden", timeout=10_000)
    assert page.locator("#chart").get_attribute("data-stale") == "false"


# ---------------------------------------------------------------------- pairs, zones
def test_pairs_not_quoted_in_usd_appear(open_page):
    page = open_page()
    page.locator('.card[data-pair="ETH-EUR"] .price').wait_for(timeout=15_000)
    assert re.fullmatch(r"\d[\d,]*\.\d{2,8}", page.locator('.card[data-pair="ETH-EUR"] .price').inner_text())
    pairs = page.eval_on_selector_all("#pair option", "os => os.map(o => o.value)")
    assert {"BTC-USD", "ETH-USD", "ETH-EUR"} <= set(pairs)
    page.select_option("#pair", "ETH-EUR")
    wait_candles(page, page.locator("#interval").input_value())
    assert page.locator('.card[data-pair="ETH-EUR"]').get_attribute("class").split().count("selected") == 1


def test_one_labelled_time_zone_switchable_and_remembered(open_page):
    page = open_page(timezone_id="Asia/Tokyo")
    page.locator("#alerts time").first.wait_for(timeout=20_000)
    assert page.locator("#tz").input_value() == "utc"
    for text in (page.locator("#status").inner_text(), page.locator("#chart-zone").inner_text()):
        assert "UTC" in text, text
    assert page.locator("#alerts time").first.inner_text().endswith(" UTC")
    shown = page.locator("#alerts time").first.inner_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", shown), f"not a readable, labelled time: {shown}"
    page.select_option("#tz", "local")
    page.wait_for_function("document.getElementById('chart-zone').textContent.includes('GMT+9')", timeout=10_000)
    assert page.locator("#alerts time").first.inner_text().endswith(" GMT+9")
    page.wait_for_function("document.getElementById('status').textContent.includes('GMT+9')", timeout=10_000)
    page.reload()
    page.locator("#alerts time").first.wait_for(timeout=20_000)
    assert page.locator("#tz").input_value() == "local", "the choice is remembered"
    assert page.locator("#alerts time").first.inner_text().endswith(" GMT+9")
    shot(page, "front-local-time-desktop")
    page.select_option("#tz", "utc")


# ---------------------------------------------------------------------- budget, push
def test_an_open_dashboard_uses_under_10_percent_of_a_default_quota_and_still_updates(open_page):
    requests: list[tuple[float, str]] = []

    def watch(page):
        page.on("request", lambda r: "/v1/" in r.url and requests.append((time.monotonic(), r.url)))

    page = open_page(route=watch)
    btc = page.locator('.card[data-pair="BTC-USD"] .price')
    page.wait_for_function("Number(document.getElementById('chart').dataset.candles || 0) >= 0", timeout=10_000)
    page.wait_for_timeout(3000)  # start-up done: token, stream, first candles (and events dispatched)
    startup = len(requests)
    window = 30.0
    t0 = time.monotonic()
    updates, last = 0, btc.get_attribute("data-timestamp")
    while time.monotonic() - t0 < window:
        page.wait_for_timeout(500)  # (a sync Playwright dispatches request events only inside its calls)
        now = btc.get_attribute("data-timestamp")
        if now != last:
            updates, last = updates + 1, now
    steady = len([t for t, _ in requests if t >= t0])
    # a day: the start-up once, the steady state for 86,400 s, plus the candles re-read every 10 min
    per_day = startup + steady * 86_400 / window + 144
    print(f"requests: {startup} at start-up, {steady} in {window:.0f} s -> {per_day:.0f} a day")
    assert per_day < 1_000, (per_day, requests[:20])
    assert updates >= window / 3, f"only {updates} price updates in {window:.0f} s"
    assert any("/v1/live?token=" in url for _, url in requests), "no live stream"


# ---------------------------------------------------------------------- cards, alerts
LONG = "123456789012345678.123456789012"


def fake_stream(page, *, prices=None, alerts=None) -> None:
    """Answer the live stream with fixed events (the connection ends; the page reconnects)."""
    now = time.time()
    prices = prices or [
        {"crypto": "BTC", "currency": "USD", "price": LONG, "timestamp": _iso(now - 739152.6),
         "age_seconds": 739152.6, "source": "lake", "change_24h_pct": "-1.234567"},
        {"crypto": "ETH", "currency": "EUR", "price": "2581.14", "timestamp": _iso(now - 190),
         "age_seconds": 190, "source": "stream", "change_24h_pct": "0.5"},
    ]  # fmt: skip
    alerts = alerts or [
        {"id": "f1", "kind": "file_landed", "created_at": _iso(now - 5), "subject": "coinlake: file landed x.json",
         "text": "", "data": {}, "deliveries": {}},
        {"id": "t1", "kind": "threshold_crossed", "created_at": _iso(now - 600),
         "subject": "BTC-USD above 90000", "text": "", "data": {}, "deliveries": {}},
        {"id": "f2", "kind": "file_landed", "created_at": _iso(now - 700), "subject": "coinlake: file landed y.json",
         "text": "", "data": {}, "deliveries": {}},
    ]  # fmt: skip
    body = (
        f"retry: 60000\n\nevent: prices\ndata: {json.dumps({'data': prices})}\n\n"
        f"event: alerts\ndata: {json.dumps({'data': alerts})}\n\n"
    )
    page.route("**/v1/live?*", lambda route: route.fulfill(status=200, body=body, content_type="text/event-stream"))


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + "Z"


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_cards_show_change_and_readable_ages_and_long_prices_fit(open_page, size):
    page = open_page(DESKTOP if size == "desktop" else PHONE, route=fake_stream)
    card = page.locator('.card[data-pair="BTC-USD"]')
    assert "123,456,789,012,345,678.12345678" in card.locator(".price").inner_text()
    assert card.locator(".change").inner_text() == "24 h: -1.23 %"
    assert "down" in card.locator(".change").get_attribute("class")
    age = card.locator(".age").inner_text()
    assert age.startswith("8 days ago"), age
    assert re.match(r"3 min ago", page.locator('.card[data-pair="ETH-EUR"] .age').inner_text())
    assert " s ago" not in age and "739152" not in age
    fits = page.evaluate(
        """() => [...document.querySelectorAll('.card')].map(c => {
               const p = c.querySelector('.price');
               return [p.scrollWidth <= p.clientWidth + 1, c.getBoundingClientRect().right <= window.innerWidth];
           })"""
    )
    assert fits and all(a and b for a, b in fits), fits
    no_horizontal_overflow(page)
    shot(page, f"front-cards-{size}")
    assert not page.errors


def test_threshold_alerts_come_first_and_file_notifications_can_be_hidden(open_page):
    page = open_page(route=fake_stream)
    items = page.locator("#alerts li")
    items.first.wait_for(timeout=10_000)
    kinds = page.eval_on_selector_all("#alerts li", "ls => ls.map(l => l.dataset.kind)")
    assert kinds == ["threshold_crossed", "file_landed", "file_landed"]
    first, file_item = items.nth(0), items.nth(1)
    assert "threshold" in first.get_attribute("class") and "file" in file_item.get_attribute("class")
    assert first.locator(".badge").inner_text() == "alert" and file_item.locator(".badge").inner_text() == "file"
    color = first.locator(".badge").evaluate("e => getComputedStyle(e).backgroundColor")
    other = file_item.locator(".badge").evaluate("e => getComputedStyle(e).backgroundColor")
    assert color != other, "threshold alerts look like file notifications"
    page.uncheck("#show-files")
    assert page.eval_on_selector_all("#alerts li", "ls => ls.map(l => l.dataset.kind)") == ["threshold_crossed"]
    page.reload()
    page.locator("#alerts li").first.wait_for(timeout=10_000)
    assert not page.locator("#show-files").is_checked(), "the choice is remembered"
    assert page.eval_on_selector_all("#alerts li", "ls => ls.map(l => l.dataset.kind)") == ["threshold_crossed"]
    shot(page, "front-alerts-desktop")
    page.check("#show-files")


# ---------------------------------------------------------------------- health
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_pipeline_health_panel_shows_every_stage_live(open_page, size):
    page = open_page(DESKTOP if size == "desktop" else PHONE)
    panel = page.locator("#health-panel")
    panel.wait_for(state="visible", timeout=20_000)
    page.wait_for_function(
        "document.querySelector('#health-panel').dataset.status === 'ok'", timeout=30_000
    )  # a running pipeline with its first ETL pass done: all green
    stages = page.eval_on_selector_all("#health-stages li", "ls => ls.map(l => [l.dataset.stage, l.dataset.status])")
    assert [s for s, _ in stages] == ["source", "stream", "delivery", "etl", "lake", "dead_letter"]
    assert all(status == "ok" for _, status in stages), stages
    dot = page.locator('#health-stages li[data-stage="source"]').evaluate("e => getComputedStyle(e, '::before').color")
    assert dot == "rgb(46, 160, 67)", dot  # green
    text = panel.inner_text()
    assert re.search(r"Polls / min\s+\d", text), text
    for label in ("Stream lag", "Awaiting ETL", "Last ETL pass", "Lake freshness", "Dead letters", "Failed polls"):
        assert label in text
    assert "delivery" in page.locator("#health-details").inner_text()
    assert "BTC" in page.locator("#health-details").inner_text()
    assert "last poll" in page.locator('#health-stages li[data-stage="source"]').inner_text()
    no_horizontal_overflow(page)
    shot(page, f"front-health-{size}")
