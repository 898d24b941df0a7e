// One time zone for the whole page, labelled, switchable (UTC / local), remembered.
const TZ_STORAGE = "coinlake.timeZone";

export function timeZone() {
  return localStorage.getItem(TZ_STORAGE) === "local" ? "local" : "utc";
}

export function setTimeZone(zone) {
  localStorage.setItem(TZ_STORAGE, zone === "local" ? "local" : "utc");
}

// "UTC", or the browser's short name for its zone ("CET", "GMT+1").
export function zoneLabel() {
  if (timeZone() === "utc") return "UTC";
  const part = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
    .formatToParts(new Date()).find((p) => p.type === "timeZoneName");
  return part ? part.value : "local";
}

function options(withDate) {
  const o = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
  if (withDate) Object.assign(o, { year: "numeric", month: "2-digit", day: "2-digit" });
  if (timeZone() === "utc") o.timeZone = "UTC";
  return o;
}

// "2026-11-29 10:01:51 UTC" (or "10:01:51 UTC" without the date).
export function formatTime(value, withDate = true) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return "—";
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", options(withDate))
    .formatToParts(date).map((p) => [p.type, p.value]));
  const time = `${parts.hour}:${parts.minute}:${parts.second}`;
  const text = withDate ? `${parts.year}-${parts.month}-${parts.day} ${time}` : time;
  return `${text} ${zoneLabel()}`;
}

// Seconds to add to a UTC epoch so that the chart (which draws UTC) shows the chosen zone.
export function chartOffset(epochSeconds) {
  if (timeZone() === "utc") return 0;
  return -new Date(epochSeconds * 1000).getTimezoneOffset() * 60;
}

// "just now", "12 s ago", "3 min ago", "5 h ago", "8 days ago".
export function ago(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "no price yet";
  const s = Math.max(0, seconds);
  if (s < 1) return "just now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} days ago`;
}
