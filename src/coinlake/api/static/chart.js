// The candlestick chart: only valid (range, candle size) pairs, a visible error overlay
// when a refresh fails (the old candles stay, marked stale), and live ticks between
// refreshes from the pushed prices.
import { chartOffset, zoneLabel } from "./timefmt.js";

export const INTERVAL_SECONDS = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400 };
const INTERVAL_LABELS = { "1m": "1 minute", "5m": "5 minutes", "15m": "15 minutes", "1h": "1 hour", "4h": "4 hours", "1d": "1 day" };
// Candle sizes offered per range (seconds): between ~15 and ~700 candles, within the API's limits.
export const VALID_INTERVALS = {
  900: ["1m"],
  3600: ["1m", "5m"],
  21600: ["1m", "5m", "15m"],
  86400: ["5m", "15m", "1h"],
  604800: ["15m", "1h", "4h"],
};
const EMPTY_RETRY_MS = 10000;
const DEFAULT_INTERVAL = { 900: "1m", 3600: "1m", 21600: "5m", 86400: "15m", 604800: "1h" };

const el = (id) => document.getElementById(id);

export class CandleChart {
  constructor(api) {
    this.api = api;
    this.chart = null;
    this.series = null;
    this.lastCandle = null;
    this.pair = null;
    this.request = 0;
  }

  // Offer only the candle sizes valid for the chosen range; keep the current one if it is.
  syncIntervals() {
    const range = el("range").value;
    const select = el("interval");
    const current = select.value;
    const valid = VALID_INTERVALS[range];
    select.replaceChildren(...valid.map((value) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = INTERVAL_LABELS[value];
      return option;
    }));
    select.value = valid.includes(current) ? current : DEFAULT_INTERVAL[range];
  }

  ensure() {
    if (this.chart) return;
    this.chart = LightweightCharts.createChart(el("chart"), {
      autoSize: true,
      layout: { background: { color: "#171d24" }, textColor: "#c9d1d9" },
      grid: { vertLines: { color: "#222a33" }, horzLines: { color: "#222a33" } },
      timeScale: { timeVisible: true, secondsVisible: false },
      localization: { priceFormatter: (p) => p.toLocaleString("en-US", { maximumFractionDigits: 8 }) },
    });
    this.series = this.chart.addCandlestickSeries();
  }

  toBar(c) {
    const t = Math.floor(Date.parse(c.start) / 1000);
    return { time: t + chartOffset(t), open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close) };
  }

  async refresh(fit) {
    if (!this.pair) return;
    this.ensure();
    const [crypto, currency] = this.pair.split("-");
    const range = Number(el("range").value);
    const interval = el("interval").value;
    const end = new Date();
    const start = new Date(end.getTime() - range * 1000);
    const params = new URLSearchParams({
      crypto, currency, interval, start: start.toISOString(), end: end.toISOString(),
    });
    const request = ++this.request;
    el("chart-zone").textContent = `times in ${zoneLabel()}`;
    try {
      const body = await this.api(`/v1/candles?${params}`);
      if (request !== this.request) return; // a newer refresh was asked for meanwhile
      const candles = body.data.map((c) => this.toBar(c));
      this.series.setData(candles);
      this.lastCandle = candles.length ? candles[candles.length - 1] : null;
      this.showError(null);
      el("chart").dataset.candles = String(candles.length);
      el("chart").dataset.interval = interval;
      el("candle-count").textContent = `${candles.length} candles`;
      if (fit) this.chart.timeScale().fitContent();
      // Nothing in the lake for this range yet (a new pipeline): look again soon, not in 10 min.
      clearTimeout(this.emptyRetry);
      if (!candles.length) this.emptyRetry = setTimeout(() => this.refresh(true), EMPTY_RETRY_MS);
    } catch (error) {
      if (request !== this.request) return;
      this.showError(`Could not refresh the chart: ${error.message}. Showing older data.`);
    }
  }

  showError(message) {
    const overlay = el("chart-error");
    overlay.hidden = !message;
    overlay.textContent = message || "";
    el("chart-wrap").classList.toggle("stale", Boolean(message));
    el("chart").dataset.stale = message ? "true" : "false";
  }

  // The lake lags the stream by the ETL's interval: move the newest candle with the latest
  // price, until the next refresh replaces it with lake data.
  tick(item) {
    if (!this.series || !this.lastCandle || `${item.crypto}-${item.currency}` !== this.pair || !item.price) return;
    const width = INTERVAL_SECONDS[el("interval").value];
    const utc = Math.floor(Date.parse(item.timestamp) / 1000 / width) * width;
    const time = utc + chartOffset(utc);
    const price = Number(item.price);
    const last = this.lastCandle;
    if (time < last.time) return;
    const bar = time === last.time
      ? { ...last, high: Math.max(last.high, price), low: Math.min(last.low, price), close: price }
      : { time, open: last.close, high: Math.max(last.close, price), low: Math.min(last.close, price), close: price };
    this.series.update(bar);
    this.lastCandle = bar;
  }
}
