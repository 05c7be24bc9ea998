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
export function fetchCandles({ symbol, interval, limit, url, signal }: CandlesRequest): Promise<Candle[]>;
/** One candle per open time, history and live merged, oldest first. */
export class CandleBars {
    /**
     * The service's history: each candle kept unless the channel already gave that open time.
     * @param {Candle[]} candles
     */
    setHistory(candles: Candle[]): void;
    /**
     * A candle from the channel (the open one moving, or one closing). Returns true when it is
     * the newest (a chart can update its last bar) and false when it went in before it.
     * @param {Candle} candle
     */
    apply(candle: Candle): boolean;
    /** The newest candle, if any. */
    newest(): import("./model.js").Candle;
    /** Every candle, oldest first. */
    list(): import("./model.js").Candle[];
    /** How many. */
    get size(): number;
    /** Forgets everything (another symbol or interval). */
    clear(): void;
    #private;
}
export type Candle = import("./model.js").Candle;
/**
 * The options of {@link fetchCandles}.
 */
export type CandlesRequest = {
    /**
     * Any accepted spelling of a symbol served from Binance.
     */
    symbol: string;
    /**
     * `1m` (default), `5m`, `15m`, `1h`, `4h`, `1d`.
     */
    interval?: string;
    /**
     * How many (the service's `CANDLE_HISTORY` at most; default: all kept).
     */
    limit?: number;
    /**
     * The service's base URL (default: this page's origin).
     */
    url?: string;
    signal?: AbortSignal;
};
