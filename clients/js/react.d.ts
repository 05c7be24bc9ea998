/**
 * Sets the options of the page's feed (its `url`, `token`, `transport`...): call it before the
 * first hook mounts. Symbols and channels come from the hooks.
 * @param {PriceFeedOptions} opts
 */
export function configureFeed(opts: PriceFeedOptions): void;
/**
 * Live prices of `symbols` (any spelling): a `Map` from the service's symbol (`BTCUSDT`,
 * `EUR/USD`: each source's own spelling) to its latest `Price`, updated on every change.
 * Changing `symbols` resubscribes; unmounting unsubscribes.
 * @param {string[]} symbols
 * @returns {Map<string, Price>}
 */
export function usePrices(symbols: string[]): Map<string, Price>;
/**
 * Events of one event channel (`events:<name>` or a private `user:<id>:<name>`), oldest first,
 * at most `keep` of them. The feed keeps the channel's position and recovers what a reconnect
 * missed; `lost` turns true when it could not (refetch what the events stand for).
 * @param {string} channel
 * @param {{keep?: number}} [opts]
 * @returns {{events: ChannelEvent[], lost: boolean}}
 */
export function useChannel(channel: string, { keep }?: {
    keep?: number;
}): {
    events: ChannelEvent[];
    lost: boolean;
};
/**
 * The candles of `symbol` and `interval` for a chart: the closed ones the service keeps
 * (`GET /api/candles`, up to `limit`) followed by the live ones of the `candles:` channel, one
 * per open time, oldest first. The channel is subscribed before the history is asked for, so no
 * close falls between the two. `error` is the service's refusal (an unknown symbol or interval).
 * @param {string} symbol
 * @param {string} [interval]
 * @param {{limit?: number}} [opts]
 * @returns {{candles: Candle[], loading: boolean, error: string | null}}
 */
export function useCandles(symbol: string, interval?: string, { limit }?: {
    limit?: number;
}): {
    candles: Candle[];
    loading: boolean;
    error: string | null;
};
export type Price = import("./edgetick.js").Price;
export type ChannelEvent = import("./edgetick.js").ChannelEvent;
export type PriceFeedOptions = import("./edgetick.js").PriceFeedOptions;
export type Candle = import("./edgetick.js").Candle;
export type MarketFrame = import("./edgetick.js").MarketFrame;
