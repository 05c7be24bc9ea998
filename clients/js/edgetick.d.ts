/**
 * A live price feed. Events: `price` ({@link Price}), `status` ({@link FeedStatus}),
 * `error` ({@link FeedError}). Its state is read through read-only accessors.
 */
export class PriceFeed {
    /** @param {PriceFeedOptions} [options] */
    constructor({ url, symbols, channels, transport, token, staleAfterMs, pingIntervalMs, pollIntervalMs, ackIntervalMs, connectionTimeoutMs, }?: PriceFeedOptions);
    /**
     * Listens for `event`: `price` ({@link Price}), `status` ({@link FeedStatus}), `error`
     * ({@link FeedError}), `event` ({@link ChannelEvent}), `market` ({@link MarketFrame}),
     * `lost` (channels whose missed events could not be replayed).
     * @template {keyof FeedEvents} K
     * @param {K} event
     * @param {(value: FeedEvents[K]) => void} fn
     * @returns {this}
     */
    on<K extends keyof FeedEvents>(event: K, fn: (value: FeedEvents[K]) => void): this;
    /**
     * Stops listening.
     * @template {keyof FeedEvents} K
     * @param {K} event
     * @param {(value: FeedEvents[K]) => void} fn
     * @returns {this}
     */
    off<K extends keyof FeedEvents>(event: K, fn: (value: FeedEvents[K]) => void): this;
    /**
     * Current status (see {@link feedStatus}).
     * @returns {FeedStatus}
     */
    get status(): FeedStatus;
    /**
     * The transport carrying the feed now.
     * @returns {'websocket' | 'sse' | 'poll' | null}
     */
    get via(): "websocket" | "sse" | "poll" | null;
    /**
     * The latest price of each followed symbol.
     * @returns {ReadonlyMap<string, Price>}
     */
    get prices(): ReadonlyMap<string, Price>;
    /**
     * When each symbol's latest price arrived here (ms since the epoch, this browser's clock).
     * @returns {ReadonlyMap<string, number>}
     */
    get receivedAt(): ReadonlyMap<string, number>;
    /**
     * The service's upstream state as last reported: `connected`, `reconnecting` or `down`.
     * @returns {string}
     */
    get upstream(): string;
    /**
     * The symbols followed, canonical.
     * @returns {string[]}
     */
    get symbols(): string[];
    /** @param {string[]} symbols */
    subscribe(symbols: string[]): void;
    /** @param {string[]} symbols */
    unsubscribe(symbols: string[]): void;
    /** The event channels followed. */
    get channels(): string[];
    /** Each event channel's position (a copy): what a reconnect resumes from. */
    get positions(): {
        [k: string]: {
            offset: number;
            epoch: string;
        };
    };
    /** @param {string[]} channels Event channels, e.g. `events:signals`. */
    subscribeChannels(channels: string[]): void;
    /** @param {string[]} channels */
    unsubscribeChannels(channels: string[]): void;
    /** Stops the feed for good: closes the connection and every timer. */
    close(): void;
    #private;
}
export type Price = import("./edgetick/model.js").Price;
export type ChannelEvent = import("./edgetick/model.js").ChannelEvent;
export type MarketFrame = import("./edgetick/model.js").MarketFrame;
export type Candle = import("./edgetick/model.js").Candle;
export type Position = import("./edgetick/model.js").Position;
export type FeedStatus = import("./edgetick/model.js").FeedStatus;
export type Transport = import("./edgetick/model.js").Transport;
export type FeedError = import("./edgetick/model.js").FeedError;
export type Frame = import("./edgetick/model.js").Frame;
export type FrameType = import("./edgetick/model.js").FrameType;
export type PriceFeedOptions = import("./edgetick/model.js").PriceFeedOptions;
export type FeedEvents = import("./edgetick/model.js").FeedEvents;
export type Link = import("./edgetick/transports.js").Link;
export type TransportEvents = import("./edgetick/transports.js").TransportEvents;
export { BACKOFF, backoffDelay, canonicalSymbol, closeKind, feedStatus, FRAME_TYPES, SeqFilter, staleSymbols } from "./edgetick/model.js";
export { CandleBars, fetchCandles } from "./edgetick/candles.js";
