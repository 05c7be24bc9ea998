// edgetick.js — live prices from edgetick in any page. An ES module with no dependencies.
//
//   import { PriceFeed } from '/edgetick.js';
//   const feed = new PriceFeed({ url: 'https://prices.example', symbols: ['BTCUSDT'] });
//   feed.on('price', (p) => console.log(p.symbol, p.price));
//
// It connects over WebSocket, falls back to Server-Sent Events, and polls the REST API while
// both are down (the three behind one interface: edgetick/transports.js); reconnects with
// capped exponential backoff and full jitter (4000–4499 close codes retry, 4500–4999 do not);
// resubscribes after every reconnect; ignores frames whose `seq` is not newer; marks symbols
// stale; acknowledges what it applied (server flow control); and pings every 30 s, treating a
// missing pong as a dead connection. Event channels (`events:<name>`) arrive in order, each
// event once: the module keeps each channel's position and asks for what it missed when it
// reconnects. What it holds is in edgetick/holdings.js, the frames and rules in model.js.
//
//   const feed = new PriceFeed({ channels: ['events:signals'] });
//   feed.on('event', (e) => console.log(e.channel, e.offset, e.event, e.data));
//   feed.on('lost', ({ channels }) => refetch(channels)); // missed more than the history keeps

import { backoffDelay, closeKind, feedStatus } from './edgetick/model.js';
import { Holdings } from './edgetick/holdings.js';
import { openSse, openWebSocket, startPolling } from './edgetick/transports.js';

export { BACKOFF, backoffDelay, canonicalSymbol, closeKind, feedStatus, FRAME_TYPES } from './edgetick/model.js';
export { SeqFilter, staleSymbols } from './edgetick/model.js';
export { CandleBars, fetchCandles } from './edgetick/candles.js';

/** @typedef {import('./edgetick/model.js').Price} Price */
/** @typedef {import('./edgetick/model.js').ChannelEvent} ChannelEvent */
/** @typedef {import('./edgetick/model.js').MarketFrame} MarketFrame */
/** @typedef {import('./edgetick/model.js').Candle} Candle */
/** @typedef {import('./edgetick/model.js').Position} Position */
/** @typedef {import('./edgetick/model.js').FeedStatus} FeedStatus */
/** @typedef {import('./edgetick/model.js').Transport} Transport */
/** @typedef {import('./edgetick/model.js').FeedError} FeedError */
/** @typedef {import('./edgetick/model.js').Frame} Frame */
/** @typedef {import('./edgetick/model.js').FrameType} FrameType */
/** @typedef {import('./edgetick/model.js').PriceFeedOptions} PriceFeedOptions */
/** @typedef {import('./edgetick/model.js').FeedEvents} FeedEvents */
/** @typedef {import('./edgetick/transports.js').Link} Link */
/** @typedef {import('./edgetick/transports.js').TransportEvents} TransportEvents */

const TRANSPORTS = ['auto', 'websocket', 'sse'];

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
  #h = new Holdings();
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
  #closed = false;
  /** @type {Link | null} The connection (WebSocket or SSE) up or being tried. */
  #link = null;
  /** @type {FeedStatus | null} */
  #lastStatus = null;
  /** @type {Set<ReturnType<typeof setTimeout>>} */
  #timers = new Set();
  /** @type {Link | null} REST polling, while no connection is up. */
  #poller = null;
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
    this.#h.addSymbols(symbols);
    this.#h.addChannels(channels);
    this.#tick = setInterval(() => this.#evaluate(), 1_000);
    this.#connect();
  }

  /**
   * Listens for `event`: `price` ({@link Price}), `status` ({@link FeedStatus}), `error`
   * ({@link FeedError}), `event` ({@link ChannelEvent}), `market` ({@link MarketFrame}),
   * `lost` (channels whose missed events could not be replayed).
   * @template {keyof FeedEvents} K
   * @param {K} event
   * @param {(value: FeedEvents[K]) => void} fn
   * @returns {this}
   */
  on(event, fn) {
    this.#handlers[event]?.add(fn);
    return this;
  }

  /**
   * Stops listening.
   * @template {keyof FeedEvents} K
   * @param {K} event
   * @param {(value: FeedEvents[K]) => void} fn
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
    return this.#link?.kind ?? this.#poller?.kind ?? null;
  }

  /**
   * The latest price of each followed symbol.
   * @returns {ReadonlyMap<string, Price>}
   */
  get prices() {
    return this.#h.prices;
  }

  /**
   * When each symbol's latest price arrived here (ms since the epoch, this browser's clock).
   * @returns {ReadonlyMap<string, number>}
   */
  get receivedAt() {
    return this.#h.receivedAt;
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
    return [...this.#h.symbols];
  }

  /** @param {string[]} symbols */
  subscribe(symbols) {
    const added = this.#h.addSymbols(symbols);
    if (added.length > 0) this.#changed('subscribe', added);
  }

  /** @param {string[]} symbols */
  unsubscribe(symbols) {
    const removed = this.#h.removeSymbols(symbols);
    if (removed.length > 0) this.#changed('unsubscribe', removed);
  }

  /** The event channels followed. */
  get channels() {
    return [...this.#h.channels];
  }

  /** Each event channel's position (a copy): what a reconnect resumes from. */
  get positions() {
    return Object.fromEntries([...this.#h.positions].map(([c, p]) => [c, { ...p }]));
  }

  /** @param {string[]} channels Event channels, e.g. `events:signals`. */
  subscribeChannels(channels) {
    const added = this.#h.addChannels(channels);
    if (added.length > 0) this.#changed('subscribe', [], added);
  }

  /** @param {string[]} channels */
  unsubscribeChannels(channels) {
    const removed = this.#h.removeChannels(channels);
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
   * Tells the server about changed subscriptions: a command on a WebSocket (before it opens,
   * its greeting carries everything), a new stream for SSE (its URL is its subscriptions).
   * @param {'subscribe' | 'unsubscribe'} action
   * @param {string[]} symbols
   * @param {string[]} [channels]
   */
  #changed(action, symbols, channels = []) {
    const link = this.#link;
    if (link?.kind === 'sse') {
      this.#reopen();
      return;
    }
    /** @type {Record<string, unknown>} */
    const cmd = { action };
    if (symbols.length > 0) cmd.symbols = symbols;
    if (channels.length > 0) cmd.channels = channels;
    link?.send(cmd);
  }

  /**
   * @template {keyof FeedEvents} K
   * @param {K} event
   * @param {FeedEvents[K]} value
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
    const stale = this.#h.stale(now, this.#opts.staleAfterMs, since);
    this.#setStatus(
      feedStatus({
        open: this.#open,
        everOpened: this.#everOpened,
        upstream: this.#upstream,
        stale,
        slow: now < this.#slowUntil,
      }),
    );
  }

  /** @param {Price[] | undefined} list */
  #apply(list) {
    for (const p of this.#h.apply(list, Date.now())) this.#emit('price', p);
  }

  /**
   * What each frame type does, whichever transport brought it (one entry per
   * {@link FRAME_TYPES} entry: the type checker holds the two together).
   * @type {{[K in FrameType]: (f: Extract<Frame, {type: K}>) => void}}
   */
  #on = {
    snapshot: (f) => this.#apply(f.prices),
    prices: (f) => this.#apply(f.prices),
    status: (f) => {
      this.#upstream = f.upstream;
    },
    warning: (f) => {
      if (f.code === 'SLOW_CONSUMER') this.#slowUntil = Date.now() + 10_000;
      this.#emit('error', f);
    },
    error: (f) => this.#emit('error', f),
    pong: () => this.#link?.pong(),
    subscribed: (f) => {
      // The service could not replay everything these channels missed: the page refetches.
      if (f.recovered !== false) return;
      this.#h.lose(f.channels ?? []);
      this.#emit('lost', { channels: f.channels ?? [] });
    },
    unsubscribed: () => {},
    subscriptions: () => {},
    event: (f) => {
      if (this.#h.event(f)) this.#emit('event', f);
    },
    trades: (f) => this.#market(f),
    candle: (f) => this.#market(f),
    book: (f) => this.#market(f),
    heatmap: (f) => this.#market(f),
  };

  /**
   * One frame from any transport.
   * @param {Frame} f
   */
  #frame(f) {
    const handle = /** @type {((f: Frame) => void) | undefined} */ (this.#on[f.type]);
    handle?.(f);
    this.#evaluate();
  }

  /** @param {MarketFrame} f */
  #market(f) {
    if (this.#h.channels.has(f.channel)) this.#emit('market', f);
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
    if (useSse && this.#h.symbols.size === 0 && this.#h.channels.size === 0) {
      // SSE needs symbols or channels; wait for a subscribe.
      this.#later(() => this.#connect(), 1_000);
      return;
    }
    const open = () => {
      if (this.#closed) return;
      this.#attach(useSse ? (on) => this.#openSse(on) : (on) => this.#openWebSocket(on));
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
   * Makes the link `open` returns the current one; what it reports counts only while it is.
   * @param {(on: TransportEvents) => Link} open
   */
  #attach(open) {
    /** @type {Link | null} */
    let link = null;
    const mine = () => link !== null && this.#link === link;
    link = open({
      opened: () => mine() && this.#opened(),
      frame: (f, id) => {
        if (!mine()) return;
        if (id) this.#h.lastSseId = id;
        this.#frame(f);
      },
      unreadable: (_, e) => this.#emit('error', { code: 'BAD_FRAME', message: String(e) }),
      failed: (wasOpen, code) => {
        if (mine() && link) this.#failed(link.kind === 'sse' ? 'sse' : 'websocket', wasOpen, code);
      },
      interrupted: () => {
        if (!mine()) return;
        this.#open = false;
        this.#evaluate();
      },
    });
    this.#link = link;
  }

  /** @param {TransportEvents} on */
  #openWebSocket(on) {
    const url = this.#base.replace(/^http/, 'ws') + '/ws' + this.#query();
    return openWebSocket(url, on, {
      pingIntervalMs: this.#opts.pingIntervalMs,
      ackIntervalMs: this.#opts.ackIntervalMs,
      connectionTimeoutMs: this.#opts.connectionTimeoutMs,
      ackSeq: () => this.#h.filter.max,
      greeting: () => {
        this.#wsFailures = 0;
        return this.#h.greeting();
      },
      slow: () => {
        this.#slowUntil = Date.now() + 10_000;
      },
    });
  }

  /** @param {TransportEvents} on */
  #openSse(on) {
    const url = this.#base + '/api/stream' + this.#query(this.#h.streamQuery());
    return openSse(url, on, { connectionTimeoutMs: this.#opts.connectionTimeoutMs });
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
    const link = this.#link;
    this.#link = null;
    link?.close();
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
    this.#teardown();
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
    if (this.#poller || this.#closed) return;
    const url = () => {
      if (this.#open || this.#closed || this.#h.symbols.size === 0) return null;
      const q = new URLSearchParams({ symbols: [...this.#h.symbols].join(',') });
      return `${this.#base}/api/prices?${q}`;
    };
    this.#poller = startPolling(url, { frame: (f) => this.#frame(f) }, this.#opts.pollIntervalMs);
  }

  #stopPolling() {
    this.#poller?.close();
    this.#poller = null;
  }
}
