// edgetick.js — live prices from edgetick in any page. An ES module with no dependencies.
//
//   import { PriceFeed } from '/edgetick.js';
//   const feed = new PriceFeed({ url: 'https://prices.example', symbols: ['BTCUSDT'] });
//   feed.on('price', (p) => console.log(p.symbol, p.price));
//
// It connects over WebSocket, falls back to Server-Sent Events, and polls the REST API while
// both are down; reconnects with capped exponential backoff and full jitter (4000–4499 close
// codes retry, 4500–4999 do not); resubscribes after every reconnect; ignores frames whose
// `seq` is not newer; marks symbols stale; acknowledges what it applied (server flow control);
// and pings every 30 s, treating a missing pong as a dead connection.

/** Backoff base and cap (ms). */
export const BACKOFF = { baseMs: 500, capMs: 30_000, floorMs: 100 };

/**
 * Delay before reconnect attempt `attempt` (0 for the first retry): full jitter over a
 * ceiling that doubles from `baseMs` up to `capMs`, never below `floorMs`.
 */
export function backoffDelay(attempt, random = Math.random, opts = BACKOFF) {
  const ceiling = Math.min(opts.capMs, opts.baseMs * 2 ** Math.max(0, Math.min(attempt, 20)));
  return Math.max(opts.floorMs, Math.floor(random() * ceiling));
}

/** What a WebSocket close code means for reconnecting (see docs/protocol.md). */
export function closeKind(code) {
  if (code >= 4500 && code <= 4999) return 'terminal';
  if (code === 1008) return 'terminal'; // policy: origin refused, retrying cannot help
  return 'retry';
}

/** Canonical symbol: `btc/usdt`, `BTC-USDT` → `BTCUSDT` (null when it cannot be one). */
export function canonicalSymbol(s) {
  const out = String(s).trim().replace(/[/_-]/g, '').toUpperCase();
  return /^[A-Z0-9]{2,20}$/.test(out) ? out : null;
}

/** Accepts a price only when its `seq` is newer than the last one applied for its symbol. */
export class SeqFilter {
  constructor() {
    this.last = new Map();
    this.max = 0;
  }
  accept(price) {
    const prev = this.last.get(price.symbol);
    if (prev !== undefined && price.seq <= prev) return false;
    this.last.set(price.symbol, price.seq);
    if (price.seq > this.max) this.max = price.seq;
    return true;
  }
}

/**
 * Symbols not updated for `staleMs` at `now` (ms). A symbol that never had a price counts
 * from `since` (when the feed opened), so a fresh connection is not stale before its
 * snapshot arrives.
 */
export function staleSymbols(prices, receivedAt, now, staleMs, symbols, since = now) {
  const out = [];
  for (const s of symbols) {
    const at = prices.has(s) ? receivedAt.get(s) : undefined;
    if (now - (at ?? since) >= staleMs) out.push(s);
  }
  return out;
}

/**
 * The feed's status from what it knows: `disconnected` (no transport), `connecting`,
 * `slow` (the server warned, or a ping went unanswered), `degraded` (upstream not connected,
 * or data stale), `connected`.
 */
export function feedStatus({ open, everOpened, upstream, stale, slow }) {
  if (!open) return everOpened ? 'disconnected' : 'connecting';
  if (slow) return 'slow';
  if (upstream !== 'connected' || stale) return 'degraded';
  return 'connected';
}

const TRANSPORTS = ['auto', 'websocket', 'sse'];

/** A live price feed. Events: `price` (Price), `status` (string), `error` (object). */
export class PriceFeed {
  constructor({
    url = globalThis.location ? globalThis.location.origin : '',
    symbols = [],
    transport = 'auto',
    token,
    staleAfterMs = 30_000,
    pingIntervalMs = 30_000,
    pollIntervalMs = 5_000,
    ackIntervalMs = 1_000,
  } = {}) {
    if (!TRANSPORTS.includes(transport)) throw new Error(`transport must be one of ${TRANSPORTS.join(', ')}`);
    this.base = url.replace(/\/$/, '');
    this.transport = transport;
    this.token = token;
    this.opts = { staleAfterMs, pingIntervalMs, pollIntervalMs, ackIntervalMs };
    this.symbols = new Set();
    for (const s of symbols) {
      const c = canonicalSymbol(s);
      if (c) this.symbols.add(c);
    }
    /** @type {Map<string, object>} latest Price per symbol */
    this.prices = new Map();
    this.receivedAt = new Map();
    this.filter = new SeqFilter();
    this.handlers = { price: new Set(), status: new Set(), error: new Set() };
    this.upstream = 'connected';
    this.attempt = 0;
    this.wsFailures = 0;
    this.everOpened = false;
    this.open = false;
    this.slowUntil = 0;
    this.closed = false;
    this.current = null; // { kind: 'websocket'|'sse', socket }
    this.lastStatus = null;
    this.timers = new Set();
    this.tick = setInterval(() => this.#evaluate(), 1_000);
    this.#connect();
  }

  on(event, fn) {
    this.handlers[event]?.add(fn);
    return this;
  }

  off(event, fn) {
    this.handlers[event]?.delete(fn);
    return this;
  }

  /** Current status (see {@link feedStatus}). */
  get status() {
    return this.lastStatus ?? 'connecting';
  }

  /** Which transport carries the feed now: `websocket`, `sse`, `poll` or null. */
  get via() {
    return this.current?.kind ?? (this.pollTimer ? 'poll' : null);
  }

  subscribe(symbols) {
    const added = [];
    for (const s of symbols) {
      const c = canonicalSymbol(s);
      if (c && !this.symbols.has(c)) {
        this.symbols.add(c);
        added.push(c);
      }
    }
    if (added.length === 0) return;
    if (this.current?.kind === 'websocket' && this.open) {
      this.current.socket.send(JSON.stringify({ action: 'subscribe', symbols: added }));
    } else if (this.current?.kind === 'sse') {
      this.#reopen();
    }
  }

  unsubscribe(symbols) {
    const removed = [];
    for (const s of symbols) {
      const c = canonicalSymbol(s);
      if (c && this.symbols.delete(c)) {
        removed.push(c);
        this.prices.delete(c);
        this.receivedAt.delete(c);
      }
    }
    if (removed.length === 0) return;
    if (this.current?.kind === 'websocket' && this.open) {
      this.current.socket.send(JSON.stringify({ action: 'unsubscribe', symbols: removed }));
    } else if (this.current?.kind === 'sse') {
      this.#reopen();
    }
  }

  close() {
    this.closed = true;
    clearInterval(this.tick);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.#stopPolling();
    this.#teardown();
    this.#setStatus('disconnected');
  }

  // ----- internals ---------------------------------------------------------------------

  #emit(event, value) {
    for (const fn of this.handlers[event]) {
      try {
        fn(value);
      } catch (e) {
        console.error('edgetick handler failed', e);
      }
    }
  }

  #later(fn, ms) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  #setStatus(status) {
    if (status !== this.lastStatus) {
      this.lastStatus = status;
      this.#emit('status', status);
    }
  }

  #evaluate() {
    const now = Date.now();
    const since = this.openedAt ?? now;
    const stale =
      staleSymbols(this.prices, this.receivedAt, now, this.opts.staleAfterMs, this.symbols, since).length > 0;
    this.#setStatus(
      feedStatus({
        open: this.open,
        everOpened: this.everOpened,
        upstream: this.upstream,
        stale: this.symbols.size > 0 && stale,
        slow: now < this.slowUntil,
      }),
    );
  }

  #apply(list) {
    const now = Date.now();
    for (const p of list ?? []) {
      if (!this.symbols.has(p.symbol) || !this.filter.accept(p)) continue;
      this.prices.set(p.symbol, p);
      this.receivedAt.set(p.symbol, now);
      this.#emit('price', p);
    }
  }

  #frame(f) {
    switch (f.type) {
      case 'snapshot':
      case 'prices':
        this.#apply(f.prices);
        break;
      case 'status':
        this.upstream = f.upstream;
        break;
      case 'warning':
        if (f.code === 'SLOW_CONSUMER') this.slowUntil = Date.now() + 10_000;
        this.#emit('error', f);
        break;
      case 'pong':
        this.pongAt = Date.now();
        break;
      case 'error':
        this.#emit('error', f);
        break;
      default:
        break;
    }
    this.#evaluate();
  }

  /** One JSON frame from either transport. */
  #receive(text) {
    try {
      this.#frame(JSON.parse(text));
    } catch (e) {
      this.#emit('error', { code: 'BAD_FRAME', message: String(e) });
    }
  }

  #query(extra = {}) {
    const q = new URLSearchParams({ ...extra });
    if (this.token) q.set('token', this.token);
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  #connect() {
    if (this.closed) return;
    const useSse = this.transport === 'sse' || (this.transport === 'auto' && this.wsFailures >= 2);
    if (useSse && this.symbols.size === 0) {
      // SSE needs symbols; wait for a subscribe.
      this.#later(() => this.#connect(), 1_000);
      return;
    }
    if (useSse) this.#openSse();
    else this.#openWebSocket();
  }

  #openWebSocket() {
    const url = this.base.replace(/^http/, 'ws') + '/ws' + this.#query();
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      this.#failed('websocket', false, 1006);
      return;
    }
    const conn = { kind: 'websocket', socket, opened: false };
    this.current = conn;
    socket.onopen = () => {
      conn.opened = true;
      this.#opened();
      this.wsFailures = 0;
      if (this.symbols.size > 0) socket.send(JSON.stringify({ action: 'subscribe', symbols: [...this.symbols] }));
      this.pongAt = Date.now();
      conn.ping = setInterval(() => {
        if (Date.now() - this.pongAt > 2 * this.opts.pingIntervalMs) {
          // A missing pong: the connection is dead even if the socket says otherwise.
          this.slowUntil = Date.now() + 10_000;
          socket.close(4000, 'pong missing');
          return;
        }
        socket.send(JSON.stringify({ action: 'ping' }));
      }, this.opts.pingIntervalMs);
      conn.ack = setInterval(() => {
        if (this.filter.max > (conn.acked ?? 0)) {
          conn.acked = this.filter.max;
          socket.send(JSON.stringify({ action: 'ack', seq: this.filter.max }));
        }
      }, this.opts.ackIntervalMs);
    };
    socket.onmessage = (ev) => {
      if (typeof ev.data === 'string' && ev.data !== 'pong') this.#receive(ev.data);
    };
    socket.onclose = (ev) => {
      clearInterval(conn.ping);
      clearInterval(conn.ack);
      if (this.current !== conn) return;
      this.#failed('websocket', conn.opened, ev.code);
    };
    socket.onerror = () => {
      // onclose follows and decides.
    };
  }

  #openSse() {
    const symbols = [...this.symbols].join(',');
    const extra = { symbols };
    if (this.filter.max > 0) extra.lastEventId = String(this.filter.max);
    const es = new EventSource(this.base + '/api/stream' + this.#query(extra));
    const conn = { kind: 'sse', socket: es, opened: false };
    this.current = conn;
    es.onopen = () => {
      conn.opened = true;
      this.#opened();
    };
    for (const type of ['snapshot', 'prices', 'status', 'warning']) {
      es.addEventListener(type, (ev) => this.#receive(ev.data));
    }
    es.onerror = () => {
      // EventSource retries by itself; a stream that never opened, or is closed, is ours to
      // replace.
      if (this.current !== conn) return;
      if (!conn.opened || es.readyState === 2) {
        es.close();
        this.#failed('sse', conn.opened, 1006);
      } else {
        this.open = false;
        this.#evaluate();
      }
    };
  }

  #opened() {
    this.openedAt ??= Date.now();
    this.open = true;
    this.everOpened = true;
    this.attempt = 0;
    this.upstream = 'connected';
    this.#stopPolling();
    this.#evaluate();
  }

  #teardown() {
    const c = this.current;
    this.current = null;
    if (!c) return;
    clearInterval(c.ping);
    clearInterval(c.ack);
    try {
      c.socket.close();
    } catch (e) {
      /* already closed */
    }
  }

  #reopen() {
    this.#teardown();
    this.open = false;
    this.#connect();
  }

  #failed(kind, wasOpen, code) {
    this.current = null;
    this.open = false;
    if (kind === 'websocket' && !wasOpen) this.wsFailures += 1;
    // SSE failing too means the service is down, not WebSockets: try WebSocket first again.
    if (kind === 'sse' && !wasOpen && this.transport === 'auto') this.wsFailures = 0;
    this.#evaluate();
    if (closeKind(code) === 'terminal') {
      this.#emit('error', { code: 'TERMINAL_CLOSE', message: `closed with ${code}; not reconnecting` });
      this.#setStatus('disconnected');
      return;
    }
    this.#startPolling();
    const delay = backoffDelay(this.attempt++);
    this.#later(() => this.#connect(), delay);
  }

  #startPolling() {
    if (this.pollTimer || this.closed) return;
    const poll = async () => {
      if (this.open || this.closed || this.symbols.size === 0) return;
      try {
        const q = new URLSearchParams({ symbols: [...this.symbols].join(',') });
        const res = await fetch(`${this.base}/api/prices?${q}`);
        if (res.ok) {
          const body = await res.json();
          this.upstream = body.upstream;
          this.#apply(body.prices);
        }
      } catch (e) {
        /* the service is down too; keep trying */
      }
    };
    this.pollTimer = setInterval(poll, this.opts.pollIntervalMs);
    poll();
  }

  #stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}
