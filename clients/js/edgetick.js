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
// and pings every 30 s, treating a missing pong as a dead connection. Event channels
// (`events:<name>`) arrive in order, each event once: the module keeps each channel's position
// and asks for what it missed when it reconnects.
//
//   const feed = new PriceFeed({ channels: ['events:signals'] });
//   feed.on('event', (e) => console.log(e.channel, e.offset, e.event, e.data));
//   feed.on('lost', ({ channels }) => refetch(channels)); // missed more than the history keeps

/**
 * One symbol's latest state. Prices and quantities are decimal strings, never floats.
 * @typedef {object} Price
 * @property {string} symbol
 * @property {string} [price]
 * @property {string} [open]
 * @property {string} [high]
 * @property {string} [low]
 * @property {string} [volume]
 * @property {string} [quote_volume]
 * @property {string} [change_pct]
 * @property {string} [bid]
 * @property {string} [ask]
 * @property {number} [event_time]
 * @property {number} received_at
 * @property {number} seq
 */

/**
 * One event of an event channel, as published. Each arrives once, in offset order.
 * @typedef {object} ChannelEvent
 * @property {'event'} type
 * @property {string} channel
 * @property {number} offset
 * @property {string} epoch
 * @property {string} event
 * @property {unknown} data
 * @property {number} ts
 */

/**
 * A frame of a market channel the feed follows (`trades:`, `candles:`, `book:`), as sent.
 * @typedef {object} MarketFrame
 * @property {'trades' | 'candle' | 'book'} type
 * @property {string} channel
 * @property {{id: number, price: string, qty: string, side: 'buy' | 'sell', time: number}[]} [trades]
 * @property {{t: number, o: string, h: string, l: string, c: string, v: string, closed: boolean}} [candle]
 * @property {[string, string][]} [bids]
 * @property {[string, string][]} [asks]
 * @property {number} [u]
 */

/**
 * Where the feed stands in an event channel.
 * @typedef {object} Position
 * @property {number} offset
 * @property {string} epoch
 */

/** @typedef {'connecting' | 'connected' | 'slow' | 'degraded' | 'disconnected'} FeedStatus */
/** @typedef {'auto' | 'websocket' | 'sse'} Transport */

/**
 * An error or warning frame from the service, or one of the module's own
 * (`BAD_FRAME`, `TERMINAL_CLOSE`).
 * @typedef {object} FeedError
 * @property {string} code
 * @property {string} message
 * @property {number | string} [id]
 */

/**
 * @typedef {object} PriceFeedOptions
 * @property {string} [url] Base URL of the service, e.g. `https://prices.example` (default: this page's origin).
 * @property {string[]} [symbols] Symbols to follow from the start.
 * @property {string[]} [channels] Event channels (`events:<name>`) to follow from the start.
 * @property {Transport} [transport] `auto` (WebSocket, then SSE), `websocket` or `sse`.
 * @property {string | (() => string | Promise<string>)} [token] Sent as `?token=` when the service requires `AUTH_TOKEN` or a JWT (`JWT_SECRET`). A function is a token provider: it is called before every connection, so a reconnect (also after close 4401, an expired token) presents a fresh token.
 * @property {number} [staleAfterMs] A symbol without an update for this long is stale (default 30 000 ms).
 * @property {number} [pingIntervalMs] Application ping interval; a pong missing for two intervals means a dead connection (default 30 000 ms).
 * @property {number} [pollIntervalMs] REST polling interval while no transport is up (default 5 000 ms).
 * @property {number} [ackIntervalMs] How often applied frames are acknowledged at most (server flow control; default 10 000 ms); sooner after every 256 KiB received. Each message a client sends is billed, so acknowledging rarely is what keeps a large audience cheap.
 * @property {number} [connectionTimeoutMs] A connection that has not opened within this long (a hung handshake) is abandoned and retried (default 10 000 ms).
 */

/**
 * Backoff base, cap and floor (ms).
 * @type {Readonly<{baseMs: number, capMs: number, floorMs: number}>}
 */
export const BACKOFF = { baseMs: 500, capMs: 30_000, floorMs: 100 };

/**
 * Delay before reconnect attempt `attempt` (0 for the first retry): full jitter over a
 * ceiling that doubles from `baseMs` up to `capMs`, never below `floorMs`.
 * @param {number} attempt
 * @param {() => number} [random]
 * @param {typeof BACKOFF} [opts]
 * @returns {number}
 */
export function backoffDelay(attempt, random = Math.random, opts = BACKOFF) {
  const ceiling = Math.min(opts.capMs, opts.baseMs * 2 ** Math.max(0, Math.min(attempt, 20)));
  return Math.max(opts.floorMs, Math.floor(random() * ceiling));
}

/**
 * What a WebSocket close code means for reconnecting (see docs/protocol.md).
 * @param {number} code
 * @returns {'retry' | 'terminal'}
 */
export function closeKind(code) {
  if (code >= 4500 && code <= 4999) return 'terminal';
  if (code === 1008) return 'terminal'; // policy: origin refused, retrying cannot help
  return 'retry';
}

/**
 * Canonical symbol: `btc/usdt`, `BTC-USDT` → `BTCUSDT` (null when it cannot be one).
 * @param {unknown} s
 * @returns {string | null}
 */
export function canonicalSymbol(s) {
  const out = String(s).trim().replace(/[/_-]/g, '').toUpperCase();
  return /^[A-Z0-9]{2,20}$/.test(out) ? out : null;
}

/** Accepts a price only when its `seq` is newer than the last one applied for its symbol. */
export class SeqFilter {
  /** @type {Map<string, number>} */
  #last = new Map();
  #max = 0;

  /** The highest `seq` accepted so far (what the feed acknowledges and resumes from). */
  get max() {
    return this.#max;
  }

  /**
   * @param {Pick<Price, 'symbol' | 'seq'>} price
   * @returns {boolean} whether the price is newer than the last one of its symbol
   */
  accept(price) {
    const prev = this.#last.get(price.symbol);
    if (prev !== undefined && price.seq <= prev) return false;
    this.#last.set(price.symbol, price.seq);
    if (price.seq > this.#max) this.#max = price.seq;
    return true;
  }
}

/**
 * Symbols not updated for `staleMs` at `now` (ms). A symbol that never had a price counts
 * from `since` (when the feed opened), so a fresh connection is not stale before its
 * snapshot arrives.
 * @param {ReadonlyMap<string, Price>} prices
 * @param {ReadonlyMap<string, number>} receivedAt
 * @param {number} now
 * @param {number} staleMs
 * @param {Iterable<string>} symbols
 * @param {number} [since]
 * @returns {string[]}
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
 * @param {{open: boolean, everOpened: boolean, upstream: string, stale: boolean, slow: boolean}} s
 * @returns {FeedStatus}
 */
export function feedStatus({ open, everOpened, upstream, stale, slow }) {
  if (!open) return everOpened ? 'disconnected' : 'connecting';
  if (slow) return 'slow';
  if (upstream !== 'connected' || stale) return 'degraded';
  return 'connected';
}

const TRANSPORTS = ['auto', 'websocket', 'sse'];
/** Received bytes after which the feed acknowledges without waiting for `ackIntervalMs`. */
const ACK_AFTER_BYTES = 256 * 1024;

/**
 * One connection attempt of the feed (internal): its transport, its socket, its timers.
 * @typedef {object} Conn
 * @property {'websocket' | 'sse'} kind
 * @property {WebSocket | EventSource} socket
 * @property {boolean} opened
 * @property {ReturnType<typeof setTimeout>} [deadline]
 * @property {ReturnType<typeof setInterval>} [ping]
 * @property {ReturnType<typeof setInterval>} [ack]
 * @property {number} [acked]
 * @property {number} [unacked] bytes received since the last acknowledgement
 */

/**
 * A live price feed. Events: `price` ({@link Price}), `status` ({@link FeedStatus}),
 * `error` ({@link FeedError}). Its state is read through read-only accessors.
 */
export class PriceFeed {
  #base;
  #transport;
  /** @type {string | (() => string | Promise<string>) | undefined} */
  #tokenSource;
  /** @type {string | undefined} */
  #token;
  #opts;
  /** @type {Set<string>} */
  #symbols = new Set();
  /** @type {Map<string, Price>} */
  #prices = new Map();
  /** @type {Map<string, number>} */
  #receivedAt = new Map();
  #filter = new SeqFilter();
  /** @type {Set<string>} */
  #channels = new Set();
  /** @type {Map<string, Position>} */
  #positions = new Map();
  #lastSseId = '';
  /** @type {{price: Set<Function>, status: Set<Function>, error: Set<Function>, event: Set<Function>, lost: Set<Function>, market: Set<Function>}} */
  #handlers = { price: new Set(), status: new Set(), error: new Set(), event: new Set(), lost: new Set(), market: new Set() };
  #upstream = 'connected';
  #attempt = 0;
  #wsFailures = 0;
  #everOpened = false;
  #open = false;
  /** @type {number | null} */
  #openedAt = null;
  #slowUntil = 0;
  #pongAt = 0;
  #closed = false;
  /** @type {Conn | null} */
  #current = null;
  /** @type {FeedStatus | null} */
  #lastStatus = null;
  /** @type {Set<ReturnType<typeof setTimeout>>} */
  #timers = new Set();
  /** @type {ReturnType<typeof setInterval> | null} */
  #pollTimer = null;
  /** @type {ReturnType<typeof setInterval>} */
  #tick;

  /** @param {PriceFeedOptions} [options] */
  constructor({
    url = globalThis.location ? globalThis.location.origin : '',
    symbols = [],
    channels = [],
    transport = 'auto',
    token,
    staleAfterMs = 30_000,
    pingIntervalMs = 30_000,
    pollIntervalMs = 5_000,
    ackIntervalMs = 10_000,
    connectionTimeoutMs = 10_000,
  } = {}) {
    if (!TRANSPORTS.includes(transport)) throw new Error(`transport must be one of ${TRANSPORTS.join(', ')}`);
    this.#base = url.replace(/\/$/, '');
    this.#transport = transport;
    this.#tokenSource = token;
    if (typeof token === 'string') this.#token = token;
    this.#opts = { staleAfterMs, pingIntervalMs, pollIntervalMs, ackIntervalMs, connectionTimeoutMs };
    for (const s of symbols) {
      const c = canonicalSymbol(s);
      if (c) this.#symbols.add(c);
    }
    for (const c of channels) this.#channels.add(c);
    this.#tick = setInterval(() => this.#evaluate(), 1_000);
    this.#connect();
  }

  /**
   * @overload
   * @param {'price'} event
   * @param {(p: Price) => void} fn
   * @returns {this}
   */
  /**
   * @overload
   * @param {'status'} event
   * @param {(s: FeedStatus) => void} fn
   * @returns {this}
   */
  /**
   * @overload
   * @param {'error'} event
   * @param {(e: FeedError) => void} fn
   * @returns {this}
   */
  /**
   * @overload
   * @param {'event'} event
   * @param {(e: ChannelEvent) => void} fn
   * @returns {this}
   */
  /**
   * @overload
   * @param {'market'} event
   * @param {(f: MarketFrame) => void} fn
   * @returns {this}
   */
  /**
   * @overload
   * @param {'lost'} event
   * @param {(l: {channels: string[]}) => void} fn
   * @returns {this}
   */
  /**
   * @param {'price' | 'status' | 'error' | 'event' | 'lost' | 'market'} event
   * @param {Function} fn
   * @returns {this}
   */
  on(event, fn) {
    this.#handlers[event]?.add(fn);
    return this;
  }

  /**
   * @param {'price' | 'status' | 'error' | 'event' | 'lost' | 'market'} event
   * @param {Function} fn
   * @returns {this}
   */
  off(event, fn) {
    this.#handlers[event]?.delete(fn);
    return this;
  }

  /**
   * Current status (see {@link feedStatus}).
   * @returns {FeedStatus}
   */
  get status() {
    return this.#lastStatus ?? 'connecting';
  }

  /**
   * The transport carrying the feed now.
   * @returns {'websocket' | 'sse' | 'poll' | null}
   */
  get via() {
    return this.#current?.kind ?? (this.#pollTimer ? 'poll' : null);
  }

  /**
   * The latest price of each followed symbol.
   * @returns {ReadonlyMap<string, Price>}
   */
  get prices() {
    return this.#prices;
  }

  /**
   * When each symbol's latest price arrived here (ms since the epoch, this browser's clock).
   * @returns {ReadonlyMap<string, number>}
   */
  get receivedAt() {
    return this.#receivedAt;
  }

  /**
   * The service's upstream state as last reported: `connected`, `reconnecting` or `down`.
   * @returns {string}
   */
  get upstream() {
    return this.#upstream;
  }

  /**
   * The symbols followed, canonical.
   * @returns {string[]}
   */
  get symbols() {
    return [...this.#symbols];
  }

  /** @param {string[]} symbols */
  subscribe(symbols) {
    const added = [];
    for (const s of symbols) {
      const c = canonicalSymbol(s);
      if (c && !this.#symbols.has(c)) {
        this.#symbols.add(c);
        added.push(c);
      }
    }
    if (added.length > 0) this.#changed('subscribe', added);
  }

  /** @param {string[]} symbols */
  unsubscribe(symbols) {
    const removed = [];
    for (const s of symbols) {
      const c = canonicalSymbol(s);
      if (c && this.#symbols.delete(c)) {
        removed.push(c);
        this.#prices.delete(c);
        this.#receivedAt.delete(c);
      }
    }
    if (removed.length > 0) this.#changed('unsubscribe', removed);
  }

  /** The event channels followed. */
  get channels() {
    return [...this.#channels];
  }

  /** Each event channel's position (a copy): what a reconnect resumes from. */
  get positions() {
    return Object.fromEntries([...this.#positions].map(([c, p]) => [c, { ...p }]));
  }

  /** @param {string[]} channels Event channels, e.g. `events:signals`. */
  subscribeChannels(channels) {
    const added = channels.filter((c) => !this.#channels.has(c));
    for (const c of added) this.#channels.add(c);
    if (added.length > 0) this.#changed('subscribe', [], added);
  }

  /** @param {string[]} channels */
  unsubscribeChannels(channels) {
    const removed = channels.filter((c) => this.#channels.delete(c));
    for (const c of removed) this.#positions.delete(c);
    if (removed.length > 0) this.#changed('unsubscribe', [], removed);
  }

  /** Stops the feed for good: closes the connection and every timer. */
  close() {
    this.#closed = true;
    clearInterval(this.#tick);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#stopPolling();
    this.#teardown();
    this.#setStatus('disconnected');
  }

  // ----- internals ---------------------------------------------------------------------

  /**
   * Tells the server about changed symbols: a command on a WebSocket, a new stream for SSE.
   * @param {'subscribe' | 'unsubscribe'} action
   * @param {string[]} symbols
   * @param {string[]} [channels]
   */
  #changed(action, symbols, channels = []) {
    const c = this.#current;
    if (c?.kind === 'websocket' && this.#open) {
      /** @type {Record<string, unknown>} */
      const cmd = { action };
      if (symbols.length > 0) cmd.symbols = symbols;
      if (channels.length > 0) cmd.channels = channels;
      /** @type {WebSocket} */ (c.socket).send(JSON.stringify(cmd));
    } else if (c?.kind === 'sse') {
      this.#reopen();
    }
  }

  /**
   * @param {'price' | 'status' | 'error' | 'event' | 'lost' | 'market'} event
   * @param {unknown} value
   */
  #emit(event, value) {
    for (const fn of this.#handlers[event]) {
      try {
        fn(value);
      } catch (e) {
        console.error('edgetick handler failed', e);
      }
    }
  }

  /**
   * @param {() => void} fn
   * @param {number} ms
   */
  #later(fn, ms) {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  /** @param {FeedStatus} status */
  #setStatus(status) {
    if (status !== this.#lastStatus) {
      this.#lastStatus = status;
      this.#emit('status', status);
    }
  }

  #evaluate() {
    const now = Date.now();
    const since = this.#openedAt ?? now;
    const staleMs = this.#opts.staleAfterMs;
    const stale = staleSymbols(this.#prices, this.#receivedAt, now, staleMs, this.#symbols, since).length > 0;
    this.#setStatus(
      feedStatus({
        open: this.#open,
        everOpened: this.#everOpened,
        upstream: this.#upstream,
        stale: this.#symbols.size > 0 && stale,
        slow: now < this.#slowUntil,
      }),
    );
  }

  /** @param {Price[] | undefined} list */
  #apply(list) {
    const now = Date.now();
    for (const p of list ?? []) {
      if (!this.#symbols.has(p.symbol) || !this.#filter.accept(p)) continue;
      this.#prices.set(p.symbol, p);
      this.#receivedAt.set(p.symbol, now);
      this.#emit('price', p);
    }
  }

  /** @param {any} f one parsed frame */
  #frame(f) {
    switch (f.type) {
      case 'snapshot':
      case 'prices':
        this.#apply(f.prices);
        break;
      case 'status':
        this.#upstream = f.upstream;
        break;
      case 'warning':
        if (f.code === 'SLOW_CONSUMER') this.#slowUntil = Date.now() + 10_000;
        this.#emit('error', f);
        break;
      case 'pong':
        this.#pongAt = Date.now();
        break;
      case 'event':
        this.#event(f);
        break;
      case 'subscribed':
        if (f.recovered === false) this.#lost(f.channels ?? []);
        break;
      case 'trades':
      case 'candle':
      case 'book':
        if (this.#channels.has(f.channel)) this.#emit('market', f);
        break;
      case 'error':
        this.#emit('error', f);
        break;
      default:
        break;
    }
    this.#evaluate();
  }

  /**
   * An event: applied once (a repeat at or below the channel's position is dropped).
   * @param {ChannelEvent} e
   */
  #event(e) {
    if (!this.#channels.has(e.channel)) return;
    const at = this.#positions.get(e.channel);
    if (at && at.epoch === e.epoch && e.offset <= at.offset) return;
    this.#positions.set(e.channel, { offset: e.offset, epoch: e.epoch });
    this.#emit('event', e);
  }

  /**
   * The service could not replay everything these channels missed: their positions are
   * dropped (the next events start them again) and the page is told to refetch.
   * @param {string[]} channels
   */
  #lost(channels) {
    for (const c of channels) this.#positions.delete(c);
    this.#emit('lost', { channels });
  }

  /**
   * The `subscribe`s a new WebSocket sends: the symbols, then the channels with where each
   * stands. Apart, so a channel the service does not serve (refused whole) costs no symbol.
   * @returns {Record<string, unknown>[]}
   */
  #subscribeAll() {
    const out = [];
    if (this.#symbols.size > 0) out.push({ action: 'subscribe', symbols: [...this.#symbols] });
    if (this.#channels.size > 0) {
      /** @type {Record<string, unknown>} */
      const cmd = { action: 'subscribe', channels: [...this.#channels] };
      const since = Object.fromEntries([...this.#positions].filter(([c]) => this.#channels.has(c)));
      if (Object.keys(since).length > 0) cmd.since = since;
      out.push(cmd);
    }
    return out;
  }

  /**
   * One JSON frame from either transport.
   * @param {string} text
   */
  #receive(text) {
    try {
      this.#frame(JSON.parse(text));
    } catch (e) {
      this.#emit('error', { code: 'BAD_FRAME', message: String(e) });
    }
  }

  /** @param {Record<string, string>} [extra] */
  #query(extra = {}) {
    const q = new URLSearchParams({ ...extra });
    if (this.#token) q.set('token', this.#token);
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  #connect() {
    if (this.#closed) return;
    const useSse = this.#transport === 'sse' || (this.#transport === 'auto' && this.#wsFailures >= 2);
    if (useSse && this.#symbols.size === 0 && this.#channels.size === 0) {
      // SSE needs symbols or channels; wait for a subscribe.
      this.#later(() => this.#connect(), 1_000);
      return;
    }
    const open = () => {
      if (this.#closed) return;
      if (useSse) this.#openSse();
      else this.#openWebSocket();
    };
    const source = this.#tokenSource;
    if (typeof source !== 'function') {
      open();
      return;
    }
    // A token provider: a fresh token for every connection.
    Promise.resolve()
      .then(() => source())
      .then((t) => {
        this.#token = t;
        open();
      })
      .catch((e) => {
        this.#emit('error', { code: 'TOKEN_PROVIDER', message: String(e) });
        this.#failed(useSse ? 'sse' : 'websocket', false, 1006);
      });
  }

  /**
   * Abandons `conn` if it has not opened within `connectionTimeoutMs`: a handshake that
   * hangs (a proxy that never answers) would otherwise leave the feed connecting forever.
   * @param {Conn} conn
   */
  #deadline(conn) {
    conn.deadline = setTimeout(() => {
      if (conn.opened || this.#current !== conn) return;
      this.#teardown();
      this.#failed(conn.kind, false, 1006);
    }, this.#opts.connectionTimeoutMs);
  }

  #openWebSocket() {
    const url = this.#base.replace(/^http/, 'ws') + '/ws' + this.#query();
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      this.#failed('websocket', false, 1006);
      return;
    }
    /** @type {Conn} */
    const conn = { kind: 'websocket', socket, opened: false };
    this.#current = conn;
    this.#deadline(conn);
    socket.onopen = () => {
      conn.opened = true;
      this.#opened();
      this.#wsFailures = 0;
      for (const cmd of this.#subscribeAll()) socket.send(JSON.stringify(cmd));
      this.#pongAt = Date.now();
      conn.ping = setInterval(() => this.#ping(socket), this.#opts.pingIntervalMs);
      conn.ack = setInterval(() => this.#ack(conn), this.#opts.ackIntervalMs);
    };
    socket.onmessage = (ev) => {
      if (typeof ev.data !== 'string' || ev.data === 'pong') return;
      this.#receive(ev.data);
      conn.unacked = (conn.unacked ?? 0) + ev.data.length;
      if (conn.unacked >= ACK_AFTER_BYTES) this.#ack(conn, true);
    };
    socket.onclose = (ev) => {
      clearTimers(conn);
      if (this.#current !== conn) return;
      this.#failed('websocket', conn.opened, ev.code);
    };
    socket.onerror = () => {
      // onclose follows and decides.
    };
  }

  /**
   * Acknowledges what was applied, if anything new: the server's flow control counts what
   * is not acknowledged (1 MiB), and every message a client sends is billed. After 256 KiB
   * it acknowledges even without a newer `seq` (events carry none).
   * @param {Conn} conn
   * @param {boolean} [force]
   */
  #ack(conn, force = false) {
    conn.unacked = 0;
    if (force || this.#filter.max > (conn.acked ?? 0)) {
      conn.acked = this.#filter.max;
      /** @type {WebSocket} */ (conn.socket).send(JSON.stringify({ action: 'ack', seq: this.#filter.max }));
    }
  }

  /** @param {WebSocket} socket */
  #ping(socket) {
    if (Date.now() - this.#pongAt > 2 * this.#opts.pingIntervalMs) {
      // A missing pong: the connection is dead even if the socket says otherwise.
      this.#slowUntil = Date.now() + 10_000;
      socket.close(4000, 'pong missing');
      return;
    }
    socket.send(JSON.stringify({ action: 'ping' }));
  }

  #openSse() {
    /** @type {Record<string, string>} */
    const extra = {};
    if (this.#symbols.size > 0) extra.symbols = [...this.#symbols].join(',');
    if (this.#channels.size > 0) extra.channels = [...this.#channels].join(',');
    if (this.#channels.size > 0 && this.#lastSseId) extra.lastEventId = this.#lastSseId;
    else if (this.#filter.max > 0) extra.lastEventId = String(this.#filter.max);
    const es = new EventSource(this.#base + '/api/stream' + this.#query(extra));
    /** @type {Conn} */
    const conn = { kind: 'sse', socket: es, opened: false };
    this.#current = conn;
    this.#deadline(conn);
    es.onopen = () => {
      conn.opened = true;
      this.#opened();
    };
    for (const type of ['snapshot', 'prices', 'status', 'warning', 'event', 'subscribed']) {
      es.addEventListener(type, (ev) => {
        const m = /** @type {MessageEvent} */ (ev);
        if (m.lastEventId) this.#lastSseId = m.lastEventId;
        this.#receive(m.data);
      });
    }
    es.onerror = () => {
      // EventSource retries by itself; a stream that never opened, or is closed, is ours to
      // replace.
      if (this.#current !== conn) return;
      if (!conn.opened || es.readyState === 2) {
        this.#teardown();
        this.#failed('sse', conn.opened, 1006);
      } else {
        this.#open = false;
        this.#evaluate();
      }
    };
  }

  #opened() {
    this.#openedAt ??= Date.now();
    this.#open = true;
    this.#everOpened = true;
    this.#attempt = 0;
    this.#upstream = 'connected';
    this.#stopPolling();
    this.#evaluate();
  }

  #teardown() {
    const c = this.#current;
    this.#current = null;
    if (!c) return;
    clearTimers(c);
    try {
      c.socket.close();
    } catch (e) {
      /* already closed */
    }
  }

  #reopen() {
    this.#teardown();
    this.#open = false;
    this.#connect();
  }

  /**
   * @param {'websocket' | 'sse'} kind
   * @param {boolean} wasOpen
   * @param {number} code
   */
  #failed(kind, wasOpen, code) {
    this.#current = null;
    this.#open = false;
    if (kind === 'websocket' && !wasOpen) this.#wsFailures += 1;
    // SSE failing too means the service is down, not WebSockets: try WebSocket first again.
    if (kind === 'sse' && !wasOpen && this.#transport === 'auto') this.#wsFailures = 0;
    this.#evaluate();
    if (closeKind(code) === 'terminal') {
      this.#emit('error', { code: 'TERMINAL_CLOSE', message: `closed with ${code}; not reconnecting` });
      this.#setStatus('disconnected');
      return;
    }
    this.#startPolling();
    const delay = backoffDelay(this.#attempt++);
    this.#later(() => this.#connect(), delay);
  }

  #startPolling() {
    if (this.#pollTimer || this.#closed) return;
    const poll = async () => {
      if (this.#open || this.#closed || this.#symbols.size === 0) return;
      try {
        const q = new URLSearchParams({ symbols: [...this.#symbols].join(',') });
        const res = await fetch(`${this.#base}/api/prices?${q}`);
        if (res.ok) {
          const body = await res.json();
          this.#upstream = body.upstream;
          this.#apply(body.prices);
        }
      } catch (e) {
        /* the service is down too; keep trying */
      }
    };
    this.#pollTimer = setInterval(poll, this.#opts.pollIntervalMs);
    poll();
  }

  #stopPolling() {
    clearInterval(this.#pollTimer ?? undefined);
    this.#pollTimer = null;
  }
}

/** @param {Conn} c */
function clearTimers(c) {
  clearTimeout(c.deadline);
  clearInterval(c.ping);
  clearInterval(c.ack);
}
