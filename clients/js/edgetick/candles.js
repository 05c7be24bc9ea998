// edgetick/candles.js — a chart's candles: the closed ones the service keeps (GET /api/candles)
// and the live ones of a `candles:<SYMBOL>:<interval>` channel, merged one per open time.
//
//   const bars = new CandleBars();
//   feed.on('market', (f) => { if (f.type === 'candle' && f.channel === key) bars.apply(f.candle); });
//   feed.subscribeChannels([key]);                               // first, so nothing is missed
//   bars.setHistory(await fetchCandles({ symbol: 'BTCUSDT', interval: '1m' }));
//   chart.setData(bars.list());
//
// The history and the channel overlap: a candle from the channel (newer, or the open one) is
// never replaced by the history's copy, whichever arrived first.

/** @typedef {import('./model.js').Candle} Candle */

/**
 * The options of {@link fetchCandles}.
 * @typedef {object} CandlesRequest
 * @property {string} symbol Any accepted spelling of a symbol served from Binance.
 * @property {string} [interval] `1m` (default), `5m`, `15m`, `1h`, `4h`, `1d`.
 * @property {number} [limit] How many (the service's `CANDLE_HISTORY` at most; default: all kept).
 * @property {string} [url] The service's base URL (default: this page's origin).
 * @property {AbortSignal} [signal]
 */

/**
 * The closed candles the service keeps, oldest first. Rejects with the service's error
 * message when it refuses (an unknown symbol or interval).
 * @param {CandlesRequest} req
 * @returns {Promise<Candle[]>}
 */
export async function fetchCandles({ symbol, interval = '1m', limit, url, signal }) {
  const base = (url ?? globalThis.location?.origin ?? '').replace(/\/$/, '');
  const q = new URLSearchParams({ symbol, interval });
  if (limit !== undefined) q.set('limit', String(limit));
  const resp = await fetch(`${base}/api/candles?${q}`, { signal });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.message ?? `GET /api/candles answered ${resp.status}`);
  return Array.isArray(body.candles) ? body.candles : [];
}

/** One candle per open time, history and live merged, oldest first. */
export class CandleBars {
  /** @type {Map<number, Candle>} */
  #bars = new Map();
  /** Open times that came from the channel: the history never replaces them. */
  #live = new Set();

  /**
   * The service's history: each candle kept unless the channel already gave that open time.
   * @param {Candle[]} candles
   */
  setHistory(candles) {
    for (const c of candles) {
      if (!this.#live.has(c.t)) this.#bars.set(c.t, c);
    }
    this.#bars = new Map([...this.#bars].sort((a, b) => a[0] - b[0]));
  }

  /**
   * A candle from the channel (the open one moving, or one closing). Returns true when it is
   * the newest (a chart can update its last bar) and false when it went in before it.
   * @param {Candle} candle
   */
  apply(candle) {
    const newest = this.newest();
    this.#live.add(candle.t);
    this.#bars.set(candle.t, candle);
    if (newest === undefined || candle.t >= newest.t) return true;
    this.#bars = new Map([...this.#bars].sort((a, b) => a[0] - b[0]));
    return false;
  }

  /** The newest candle, if any. */
  newest() {
    let last;
    for (const c of this.#bars.values()) last = c;
    return last;
  }

  /** Every candle, oldest first. */
  list() {
    return [...this.#bars.values()];
  }

  /** How many. */
  get size() {
    return this.#bars.size;
  }

  /** Forgets everything (another symbol or interval). */
  clear() {
    this.#bars.clear();
    this.#live.clear();
  }
}
