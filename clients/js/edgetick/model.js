// The data model of edgetick.js: the frames the service sends, and the pure rules the feed
// follows (backoff, close codes, symbol spelling, seq order, staleness, status). No I/O.

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
 * @property {'binance' | 'twelvedata'} [source] the source it comes from
 * @property {string} [exchange] where it trades (Twelve Data)
 * @property {string} [currency] its currency (Twelve Data)
 * @property {string} [asset_type] `Common Stock`, `Physical Currency`, `Digital Currency`… (Twelve Data)
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

/** @typedef {{id: number, price: string, qty: string, side: 'buy' | 'sell', time: number}} Trade */
/** @typedef {{t: number, o: string, h: string, l: string, c: string, v: string, closed: boolean}} Candle */
/** @typedef {{type: 'trades', channel: string, trades: Trade[]}} TradesFrame */
/** @typedef {{type: 'candle', channel: string, candle: Candle}} CandleFrame */
/** @typedef {{type: 'book', channel: string, bids: [string, string][], asks: [string, string][], u?: number}} BookFrame */
/** @typedef {{price: string, long_density: number, short_density: number}} HeatLevel */
/** @typedef {{levels: HeatLevel[], current_price: string, positions_created: string, positions_consumed: string}} HeatData */
/** @typedef {{type: 'heatmap', channel: string, timestamp: string, data: HeatData}} HeatmapFrame */

/**
 * A frame of a market channel the feed follows (`trades:`, `candles:`, `book:`, `heatmap:`), as sent.
 * @typedef {TradesFrame | CandleFrame | BookFrame | HeatmapFrame} MarketFrame
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
 * What each event of a feed carries.
 * @typedef {{price: Price, status: FeedStatus, error: FeedError, event: ChannelEvent, market: MarketFrame, lost: {channels: string[]}}} FeedEvents
 */

/** @typedef {{type: 'snapshot', prices: Price[]}} SnapshotFrame */
/** @typedef {{type: 'prices', prices: Price[]}} PricesFrame */
/** @typedef {{type: 'status', upstream: string, ts?: number}} StatusFrame */
/** @typedef {{type: 'warning', code: string, message: string}} WarningFrame */
/** @typedef {{type: 'error', code: string, message: string, id?: number | string}} ErrorFrame */
/** @typedef {{type: 'pong', id?: number | string, ts?: number}} PongFrame */
/** @typedef {{symbols?: string[], channels?: string[], recovered?: boolean, id?: number | string}} Targets */
/** @typedef {Targets & {type: 'subscribed'}} SubscribedFrame */
/** @typedef {Targets & {type: 'unsubscribed'}} UnsubscribedFrame */
/** @typedef {Targets & {type: 'subscriptions'}} SubscriptionsFrame */

/**
 * Every frame the service sends, told apart by `type`.
 * @typedef {SnapshotFrame | PricesFrame | StatusFrame | WarningFrame | ErrorFrame | PongFrame | SubscribedFrame | UnsubscribedFrame | SubscriptionsFrame | ChannelEvent | TradesFrame | CandleFrame | BookFrame | HeatmapFrame} Frame
 */

/** @typedef {Frame['type']} FrameType */

/**
 * Every frame type, once: the WebSocket dispatch and the SSE stream's event listeners are
 * both driven by this list, so a new frame type cannot reach one transport and miss the
 * other.
 * @type {readonly FrameType[]}
 */
export const FRAME_TYPES = Object.freeze([
  'snapshot', 'prices', 'status', 'warning', 'error', 'pong', 'subscribed', 'unsubscribed',
  'subscriptions', 'event', 'trades', 'candle', 'book', 'heatmap',
]);

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
 * A symbol's key: its letters and digits, upper-cased (`btc/usdt`, `BTC-USDT` → `BTCUSDT`;
 * `EUR/USD` → `EURUSD`; null when it cannot be a symbol). Every spelling of one symbol has
 * the same key, whatever its source's own spelling (`EUR/USD` comes back as `EUR/USD`): the
 * service serves no two symbols with the same key.
 * @param {unknown} s
 * @returns {string | null}
 */
export function canonicalSymbol(s) {
  const typed = String(s).trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9/._:-]*$/.test(typed)) return null;
  const out = typed.replace(/[^A-Za-z0-9]/g, '').toUpperCase();
  return out.length >= 2 && out.length <= 32 ? out : null;
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

