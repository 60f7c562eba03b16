// The live stream: ticket first, then the WebSocket; reconnect with backoff and jitter, resuming
// after the last cursor; replay_overflow means wait retry_after_ms and reload from REST.
import { post } from "./api.js";

const STALE_AFTER_MS = 30_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;

export class LiveStream {
  constructor({ onChange, onReload, onState }) {
    this.onChange = onChange;     // (message) for each change
    this.onReload = onReload;     // () => Promise: reload everything from REST
    this.onState = onState;       // ({connected, lastMessageAt, stale})
    this.cursor = null;
    this.ws = null;
    this.attempt = 0;
    this.stopped = true;
    this.connected = false;
    this.lastMessageAt = Date.now();
    this.timer = null;
    this.staleTimer = null;
  }

  start(cursor) {
    this.stopped = false;
    if (cursor !== undefined && cursor !== null) this.cursor = cursor;
    this.staleTimer = setInterval(() => this.report(), 1000);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.staleTimer);
    if (this.ws) { try { this.ws.close(1000); } catch { /* closed */ } }
    this.ws = null;
  }

  report() {
    const stale = Date.now() - this.lastMessageAt > STALE_AFTER_MS;
    this.onState({ connected: this.connected, lastMessageAt: this.lastMessageAt, stale });
  }

  retryLater(ms) {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const delay = ms ?? Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  async connect() {
    if (this.stopped) return;
    let ticket;
    try {
      ticket = (await post("/api/v1/auth/ws-ticket")).ticket;
    } catch (e) {
      this.retryLater();
      return;
    }
    if (this.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${proto}//${location.host}/api/v1/ws?ticket=${encodeURIComponent(ticket)}`;
    if (this.cursor !== null) url += `&cursor=${this.cursor}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    let overflow = null;
    ws.onopen = () => {
      this.connected = true;
      this.attempt = 0;
      this.lastMessageAt = Date.now();
      this.report();
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this.lastMessageAt = Date.now();
      if (msg.type === "change") {
        this.cursor = msg.cursor;
        try { this.onChange(msg); } catch (e) { console.error(e); }
      } else if (msg.type === "heartbeat") {
        if (this.cursor === null) {
          // A stream opened at the head: REST state read from now on misses nothing.
          this.cursor = msg.cursor;
          Promise.resolve(this.onReload()).catch((e) => console.error(e));
        }
      } else if (msg.type === "replay_overflow") {
        overflow = msg.retry_after_ms ?? 1000;
      }
      this.report();
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.connected = false;
      this.report();
      if (this.stopped) return;
      if (overflow !== null) {
        const wait = overflow;
        this.cursor = null;   // start at the head, after a full reload from REST
        clearTimeout(this.timer);
        // Reconnect at the head after the wait; its first heartbeat triggers the REST reload.
        this.timer = setTimeout(() => this.connect(), wait);
      } else {
        this.retryLater();
      }
    };
    ws.onerror = () => { /* onclose follows */ };
  }
}
