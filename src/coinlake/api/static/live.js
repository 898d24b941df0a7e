// Talking to the API: plain requests with the key in x-api-key, and the live stream
// (POST /v1/live/token, then an EventSource on /v1/live?token=...). One token and one
// connection cost one request of the key's quota, however many events arrive.

export class HttpError extends Error {
  constructor(status, body, headers) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
    this.retryAfter = Number((headers && headers.get("retry-after")) || 0);
  }
}

export function makeApi(getKey) {
  return async function api(path, init = {}) {
    const headers = { "x-api-key": getKey(), accept: "application/json" };
    const response = await fetch(path, { ...init, headers });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new HttpError(response.status, body, response.headers);
    return body;
  };
}

// Keeps one stream open: reconnects with a new token after an error, backing off from
// 3 s to 60 s. `handlers`: { prices, alerts, pipeline, open, down(error), unavailable(), denied(error) }.
export class LiveStream {
  constructor(api, handlers) {
    this.api = api;
    this.handlers = handlers;
    this.source = null;
    this.backoff = 3000;
    this.timer = null;
    this.stopped = false;
  }

  async connect() {
    this.close();
    this.stopped = false;
    let token;
    try {
      token = await this.api("/v1/live/token", { method: "POST" });
    } catch (error) {
      if (error.status === 404) return this.handlers.unavailable();
      if (error.status === 401 || error.status === 403) return this.handlers.denied(error);
      return this.retry(error, error.retryAfter * 1000);
    }
    const source = new EventSource(token.url);
    this.source = source;
    source.addEventListener("open", () => {
      this.backoff = 3000;
      this.handlers.open();
    });
    for (const name of ["prices", "alerts", "pipeline"]) {
      source.addEventListener(name, (event) => this.handlers[name](JSON.parse(event.data)));
    }
    source.addEventListener("bye", () => this.retry(new Error("the server is restarting")));
    // The token is single use: the browser's own reconnection would be refused, so every
    // error closes this source and asks for a new token.
    source.addEventListener("error", () => this.retry(new Error("live updates interrupted")));
  }

  retry(error, wait = 0) {
    this.close();
    if (this.stopped) return;
    const delay = Math.max(wait, this.backoff);
    this.backoff = Math.min(this.backoff * 2, 60000);
    this.handlers.down(error, delay);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  close() {
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }

  stop() {
    this.stopped = true;
    this.close();
  }
}
