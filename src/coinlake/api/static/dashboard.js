// coinlake dashboard: latest prices of every pair, a candlestick chart, pipeline health and
// recent alerts. Updates are pushed (Server-Sent Events on /v1/live); the chart's candles are
// re-read every 10 minutes and when a control changes. Same /v1 API as any client.
import { CandleChart, VALID_INTERVALS } from "./chart.js";
import { LiveStream, makeApi } from "./live.js";
import { Cards, renderAlerts, renderHealth, setShowFileAlerts, showFileAlerts } from "./panels.js";
import { formatTime, setTimeZone, timeZone } from "./timefmt.js";

const KEY_STORAGE = "coinlake.apiKey";
const CANDLES_MS = 10 * 60 * 1000;
const FALLBACK_MS = 60 * 1000; // polling when the live stream is not offered (API Gateway)

const el = (id) => document.getElementById(id);
const state = { key: null, lastAlerts: [], lastUpdate: null, candleTimer: null, fallbackTimer: null };
const api = makeApi(() => state.key);
const chart = new CandleChart(api);
const cards = new Cards(selectPair);
const live = new LiveStream(api, {
  open: () => {
    cards.markAllStale(false);
    setStatus("live");
  },
  prices: (body) => {
    state.lastUpdate = new Date();
    cards.render(body.data);
    for (const item of body.data) chart.tick(item);
    if (!chart.pair && body.data.length) selectPair(defaultPair(body.data));
    setStatus("live");
  },
  alerts: (body) => {
    state.lastAlerts = body.data;
    renderAlerts(body.data);
  },
  pipeline: renderHealth,
  down: (error, delay) => {
    cards.markAllStale(true);
    setStatus(`${error.message}; reconnecting in ${Math.round(delay / 1000)} s`, true);
  },
  unavailable: () => startPolling(),
  denied: (error) => askForKey(`${error.message}: enter an API key`),
});

function defaultPair(items) {
  const usd = items.find((x) => x.currency === "USD" && x.price);
  return `${(usd || items[0]).crypto}-${(usd || items[0]).currency}`;
}

function demoKey() {
  const meta = document.querySelector('meta[name="coinlake-demo-key"]');
  return meta ? meta.content : null;
}

function setStatus(text, problem = false) {
  const status = el("status");
  const when = state.lastUpdate ? ` · updated ${formatTime(state.lastUpdate, false)}` : "";
  status.textContent = problem ? text + when : text + when;
  status.classList.toggle("problem", problem);
}

function askForKey(reason) {
  state.key = null;
  live.stop();
  localStorage.removeItem(KEY_STORAGE);
  el("key-form").hidden = false;
  el("forget-key").hidden = true;
  setStatus(reason, true);
}

function selectPair(pair) {
  chart.pair = pair;
  el("pair").value = pair;
  for (const card of document.querySelectorAll(".card")) card.classList.toggle("selected", card.dataset.pair === pair);
  chart.refresh(true);
}

// Without the live stream (behind API Gateway): poll every pair once a minute.
async function startPolling() {
  clearInterval(state.fallbackTimer);
  const poll = async () => {
    try {
      const inventory = await api("/v1/cryptos");
      const currencies = [...new Set(inventory.data.flatMap((c) => c.currencies))];
      const items = [];
      for (const currency of currencies) items.push(...(await api(`/v1/prices/latest?currency=${currency}`)).data);
      state.lastUpdate = new Date();
      cards.render(items);
      if (!chart.pair && items.length) selectPair(defaultPair(items));
      setStatus("polling every minute");
    } catch (error) {
      setStatus(`${error.message}; retrying`, true);
    }
  };
  poll();
  state.fallbackTimer = setInterval(poll, FALLBACK_MS);
}

function start(key) {
  state.key = key;
  el("key-form").hidden = true;
  el("forget-key").hidden = Boolean(demoKey());
  live.connect();
  clearInterval(state.candleTimer);
  state.candleTimer = setInterval(() => chart.refresh(false), CANDLES_MS);
}

function applyTimeZone() {
  el("tz").value = timeZone();
  renderAlerts(state.lastAlerts);
  cards.tickAges();
  chart.refresh(false);
  setStatus(el("status").classList.contains("problem") ? el("status").textContent : "live");
}

document.addEventListener("DOMContentLoaded", () => {
  el("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = el("key-input").value.trim();
    localStorage.setItem(KEY_STORAGE, key);
    start(key);
  });
  el("forget-key").addEventListener("click", () => askForKey("key forgotten"));
  el("pair").addEventListener("change", (e) => selectPair(e.target.value));
  el("range").addEventListener("change", () => {
    chart.syncIntervals();
    chart.refresh(true);
  });
  el("interval").addEventListener("change", () => chart.refresh(true));
  el("tz").value = timeZone();
  el("tz").addEventListener("change", (e) => {
    setTimeZone(e.target.value);
    applyTimeZone();
  });
  el("show-files").checked = showFileAlerts();
  el("show-files").addEventListener("change", (e) => {
    setShowFileAlerts(e.target.checked);
    renderAlerts(state.lastAlerts);
  });
  if (!VALID_INTERVALS[el("range").value]) el("range").value = "3600";
  chart.syncIntervals();
  setInterval(() => cards.tickAges(), 1000);
  const key = demoKey() || localStorage.getItem(KEY_STORAGE);
  if (key) start(key);
  else askForKey("enter an API key (coinlake keys create --name me)");
});
