// Price cards, the alerts list and the pipeline health panel.
import { ago, formatTime } from "./timefmt.js";

const el = (id) => document.getElementById(id);
const STALE_SECONDS = 120;
const FILES_STORAGE = "coinlake.showFileAlerts";

// Exact decimal text -> "91,234.56" (2 to 8 decimals), without going through a float.
export function formatPrice(text) {
  if (text === null || text === undefined) return "—";
  const [whole, fraction = ""] = String(text).split(".");
  const negative = whole.startsWith("-");
  const digits = whole.replace("-", "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const trimmed = fraction.replace(/0+$/, "");
  const places = Math.max(2, Math.min(trimmed.length, 8));
  return `${negative ? "-" : ""}${digits}.${fraction.padEnd(places, "0").slice(0, places)}`;
}

function formatChange(pct) {
  if (pct === null || pct === undefined) return { text: "24 h: —", cls: "" };
  const n = Number(pct);
  const sign = n > 0 ? "+" : "";
  return { text: `24 h: ${sign}${n.toFixed(2)} %`, cls: n > 0 ? "up" : n < 0 ? "down" : "" };
}

export class Cards {
  constructor(onSelect) {
    this.onSelect = onSelect;
    this.items = {};
  }

  render(items) {
    const cards = el("cards");
    const select = el("pair");
    for (const item of items) {
      const pair = `${item.crypto}-${item.currency}`;
      let card = cards.querySelector(`[data-pair="${pair}"]`);
      if (!card) {
        card = document.createElement("button");
        card.type = "button";
        card.className = "card";
        card.dataset.pair = pair;
        card.dataset.crypto = item.crypto;
        card.innerHTML = '<div class="pair"></div><div class="price"></div>'
          + '<div class="change"></div><div class="age muted"></div>';
        card.addEventListener("click", () => this.onSelect(pair));
        cards.appendChild(card);
        const option = document.createElement("option");
        option.value = option.textContent = pair;
        select.appendChild(option);
      }
      const previous = this.items[pair];
      const priceEl = card.querySelector(".price");
      priceEl.textContent = formatPrice(item.price);
      priceEl.dataset.price = item.price || "";
      priceEl.dataset.timestamp = item.timestamp || "";
      if (previous && previous.price !== item.price && item.price) {
        priceEl.classList.toggle("up", Number(item.price) > Number(previous.price));
        priceEl.classList.toggle("down", Number(item.price) < Number(previous.price));
      }
      const change = formatChange(item.change_24h_pct);
      const changeEl = card.querySelector(".change");
      changeEl.textContent = change.text;
      changeEl.className = `change ${change.cls}`;
      card.querySelector(".pair").textContent = pair;
      this.items[pair] = { ...item, seenAt: Date.now() };
    }
    this.tickAges();
  }

  // Ages move every second on their own: no request needed.
  tickAges() {
    for (const [pair, item] of Object.entries(this.items)) {
      const card = el("cards").querySelector(`[data-pair="${pair}"]`);
      if (!card) continue;
      const age = item.timestamp ? (Date.now() - Date.parse(item.timestamp)) / 1000 : null;
      const source = item.source === "stream" ? "live" : item.source === "lake" ? "from the lake" : "";
      const ageEl = card.querySelector(".age");
      ageEl.textContent = source ? `${ago(age)} · ${source}` : ago(age);
      ageEl.title = item.timestamp ? formatTime(item.timestamp) : "";
      card.classList.toggle("stale", age === null || age > STALE_SECONDS);
    }
  }

  markAllStale(stale) {
    el("cards").classList.toggle("disconnected", stale);
  }
}

export function showFileAlerts() {
  return localStorage.getItem(FILES_STORAGE) !== "hide";
}

export function setShowFileAlerts(show) {
  localStorage.setItem(FILES_STORAGE, show ? "show" : "hide");
}

// Threshold alerts first, then file notifications (which can be hidden); newest first in each.
export function renderAlerts(alerts) {
  const list = el("alerts");
  const isFile = (a) => a.kind === "file_landed";
  const showFiles = showFileAlerts();
  const ordered = [...alerts.filter((a) => !isFile(a)), ...(showFiles ? alerts.filter(isFile) : [])];
  list.replaceChildren();
  for (const alert of ordered) {
    const li = document.createElement("li");
    li.className = `alert ${isFile(alert) ? "file" : "threshold"}`;
    li.dataset.kind = alert.kind;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = isFile(alert) ? "file" : "alert";
    const time = document.createElement("time");
    time.dateTime = alert.created_at;
    time.textContent = formatTime(alert.created_at);
    const subject = document.createElement("span");
    subject.className = "subject";
    subject.textContent = alert.subject;
    li.append(badge, time, subject);
    list.appendChild(li);
  }
  const hidden = showFiles ? 0 : alerts.filter(isFile).length;
  if (!ordered.length) {
    list.innerHTML = `<li class="muted">${hidden ? `no threshold alerts (${hidden} file notifications hidden)` : "none yet"}</li>`;
  }
}

const STAGE_NAMES = {
  source: "Source", stream: "Stream", delivery: "Delivery", etl: "ETL", lake: "Lake", dead_letter: "Dead letters",
};

function row(label, value) {
  const tr = document.createElement("tr");
  const th = document.createElement("th");
  const td = document.createElement("td");
  th.textContent = label;
  td.textContent = value;
  tr.append(th, td);
  return tr;
}

export function renderHealth(h) {
  const panel = el("health-panel");
  panel.hidden = false;
  panel.dataset.status = h.status;
  const overall = el("health-status");
  overall.className = `dot ${h.status}`;
  overall.textContent = { ok: "data is flowing", warn: "needs attention", error: "data is not flowing" }[h.status];
  const stages = el("health-stages");
  stages.replaceChildren(...h.stages.map((s) => {
    const li = document.createElement("li");
    li.className = `stage ${s.status}`;
    li.dataset.stage = s.stage;
    li.dataset.status = s.status;
    const name = document.createElement("strong");
    name.textContent = STAGE_NAMES[s.stage] || s.stage;
    const reason = document.createElement("span");
    reason.className = "reason";
    reason.textContent = s.reason;
    li.append(name, reason);
    return li;
  }));
  const details = el("health-details");
  const lag = h.consumers.map((c) => `${c.consumer} ${c.lag_records} rec / ${ago(c.lag_seconds).replace(" ago", "")}`);
  const lake = h.lake.map((x) => `${x.crypto} ${ago(x.age_seconds)}`);
  const dead = Object.entries(h.dead_letters).map(([k, v]) => `${k}: ${v}`);
  const etl = h.last_etl
    ? `${formatTime(h.last_etl.finished_at)}, ${h.last_etl.written} rows, ${h.last_etl.rejected} rejected`
    : "none yet";
  details.replaceChildren(
    row("Polls / min", h.polls_per_minute === null ? "measuring…" : String(h.polls_per_minute)),
    row("Failed polls", `${h.poll_failures_recent} last minute, ${h.poll_failures_total} in all`),
    row("Stream lag", lag.join(", ") || "no consumer"),
    row("Awaiting ETL", `${h.landing_awaiting_etl} landing files`),
    row("Last ETL pass", etl),
    row("Lake freshness", lake.join(", ") || (h.lake_error || "empty")),
    row("Dead letters", dead.join(", ") || "none"),
  );
  el("health-checked").textContent = `checked ${formatTime(h.generated_at, false)}`;
}
