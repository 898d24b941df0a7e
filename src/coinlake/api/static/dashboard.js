// coinlake dashboard: latest prices, a live candlestick chart and recent alerts.
// Talks to the same /v1 API as any client, with the key in the x-api-key header.
"use strict";

const KEY_STORAGE = "coinlake.apiKey";
const REFRESH_MS = 2000;
const ALERTS_MS = 5000;

const state = {
  key: null, crypto: null, chart: null, series: null, lastCandle: null,
  lastPrices: {}, alertsAvailable: true, timer: null,
};
const INTERVAL_SECONDS = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400 };

function demoKey() {
  const meta = document.querySelector('meta[name="coinlake-demo-key"]');
  return meta ? meta.content : null;
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

function askForKey(reason) {
  state.key = null;
  localStorage.removeItem(KEY_STORAGE);
  document.getElementById("key-form").hidden = false;
  document.getElementById("forget-key").hidden = true;
  setStatus(reason);
}

class HttpError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path) {
  const response = await fetch(path, { headers: { "x-api-key": state.key, accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new HttpError(response.status, body);
  return body;
}

function formatPrice(text) {
  const [whole, fraction = ""] = String(text).split(".");
  const trimmed = fraction.replace(/0+$/, "");
  const digits = Math.max(2, Math.min(trimmed.length, 8));
  return Number(whole).toLocaleString("en-US") + "." + fraction.padEnd(digits, "0").slice(0, digits);
}

function renderCards(items) {
  const cards = document.getElementById("cards");
  const select = document.getElementById("crypto");
  for (const item of items) {
    let card = cards.querySelector(`[data-crypto="${item.crypto}"]`);
    if (!card) {
      card = document.createElement("div");
      card.className = "card";
      card.dataset.crypto = item.crypto;
      card.innerHTML = '<div class="crypto"></div><div class="price"></div><div class="age muted"></div>';
      card.addEventListener("click", () => selectCrypto(item.crypto));
      cards.appendChild(card);
      const option = document.createElement("option");
      option.value = option.textContent = item.crypto;
      select.appendChild(option);
    }
    const previous = state.lastPrices[item.crypto];
    const priceEl = card.querySelector(".price");
    priceEl.textContent = formatPrice(item.price);
    priceEl.dataset.price = item.price;
    priceEl.dataset.timestamp = item.timestamp;
    if (previous !== undefined && Number(item.price) !== Number(previous)) {
      priceEl.classList.toggle("up", Number(item.price) > Number(previous));
      priceEl.classList.toggle("down", Number(item.price) < Number(previous));
    }
    state.lastPrices[item.crypto] = item.price;
    if (item.crypto === state.crypto) tickCandle(item);
    card.querySelector(".crypto").textContent = `${item.crypto}-${item.currency}`;
    card.querySelector(".age").textContent = `${item.age_seconds.toFixed(1)} s ago · ${item.source}`;
  }
  if (!state.crypto && items.length) selectCrypto(items[0].crypto);
}

// The lake lags the stream by the ETL's interval: move the newest candle with the latest
// price so the chart is live, until the next candles answer replaces it with lake data.
function tickCandle(item) {
  if (!state.series || !state.lastCandle) return;
  const width = INTERVAL_SECONDS[document.getElementById("interval").value];
  const time = Math.floor(Date.parse(item.timestamp) / 1000 / width) * width;
  const price = Number(item.price);
  const last = state.lastCandle;
  if (time < last.time) return;
  const bar = time === last.time
    ? { ...last, high: Math.max(last.high, price), low: Math.min(last.low, price), close: price }
    : { time, open: last.close, high: Math.max(last.close, price), low: Math.min(last.close, price), close: price };
  state.series.update(bar);
  state.lastCandle = bar;
}

function selectCrypto(crypto) {
  state.crypto = crypto;
  document.getElementById("crypto").value = crypto;
  for (const card of document.querySelectorAll(".card")) card.classList.toggle("selected", card.dataset.crypto === crypto);
  refreshChart(true);
}

function ensureChart() {
  if (state.chart) return;
  const el = document.getElementById("chart");
  state.chart = LightweightCharts.createChart(el, {
    autoSize: true,
    layout: { background: { color: "#171d24" }, textColor: "#c9d1d9" },
    grid: { vertLines: { color: "#222a33" }, horzLines: { color: "#222a33" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  state.series = state.chart.addCandlestickSeries();
}

async function refreshChart(fit) {
  if (!state.crypto || !state.key) return;
  ensureChart();
  const range = Number(document.getElementById("range").value);
  const interval = document.getElementById("interval").value;
  const start = new Date(Date.now() - range * 1000).toISOString();
  const params = new URLSearchParams({ crypto: state.crypto, interval, start });
  try {
    const body = await api(`/v1/candles?${params}`);
    const candles = body.data.map((c) => ({
      time: Math.floor(Date.parse(c.start) / 1000),
      open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close),
    }));
    state.series.setData(candles);
    state.lastCandle = candles.length ? candles[candles.length - 1] : null;
    document.getElementById("chart").dataset.candles = String(candles.length);
    document.getElementById("candle-count").textContent = `${candles.length} candles`;
    if (fit) state.chart.timeScale().fitContent();
  } catch (error) {
    document.getElementById("candle-count").textContent = error.message;
  }
}

async function refreshAlerts() {
  if (!state.alertsAvailable || !state.key) return;
  try {
    const body = await api("/v1/alerts?limit=10");
    const list = document.getElementById("alerts");
    list.replaceChildren();
    for (const alert of body.data) {
      const li = document.createElement("li");
      li.textContent = `${alert.created_at} — ${alert.subject}`;
      list.appendChild(li);
    }
    if (!body.data.length) list.innerHTML = '<li class="muted">none yet</li>';
  } catch (error) {
    if (error.status === 404) {
      state.alertsAvailable = false;
      document.getElementById("alerts-panel").hidden = true;
    }
  }
}

async function refresh() {
  if (!state.key) return;
  try {
    const body = await api("/v1/prices/latest");
    await refreshChart(false);
    renderCards(body.data);
    setStatus(`updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (error.status === 401 || error.status === 403) askForKey(`${error.message}: enter an API key`);
    else setStatus(`${error.message}; retrying…`);
  }
}

function start(key) {
  state.key = key;
  document.getElementById("key-form").hidden = true;
  document.getElementById("forget-key").hidden = Boolean(demoKey());
  clearInterval(state.timer);
  clearInterval(state.alertsTimer);
  refresh();
  refreshAlerts();
  state.timer = setInterval(refresh, REFRESH_MS);
  state.alertsTimer = setInterval(refreshAlerts, ALERTS_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = document.getElementById("key-input").value.trim();
    localStorage.setItem(KEY_STORAGE, key);
    start(key);
  });
  document.getElementById("forget-key").addEventListener("click", () => askForKey("key forgotten"));
  document.getElementById("crypto").addEventListener("change", (e) => selectCrypto(e.target.value));
  document.getElementById("range").addEventListener("change", () => refreshChart(true));
  document.getElementById("interval").addEventListener("change", () => refreshChart(true));
  const key = demoKey() || localStorage.getItem(KEY_STORAGE);
  if (key) start(key);
  else askForKey("enter an API key (coinlake keys create --name me)");
});
