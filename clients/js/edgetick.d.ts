/**
 * Delay before reconnect attempt `attempt` (0 for the first retry): full jitter over a
 * ceiling that doubles from `baseMs` up to `capMs`, never below `floorMs`.
 * @param {number} attempt
 * @param {() => number} [random]
 * @param {typeof BACKOFF} [opts]
 * @returns {number}
 */
export function backoffDelay(attempt: number, random?: () => number, opts?: typeof BACKOFF): number;
/**
 * What a WebSocket close code means for reconnecting (see docs/protocol.md).
 * @param {number} code
 * @returns {'retry' | 'terminal'}
 */
export function closeKind(code: number): "retry" | "terminal";
/**
 * Canonical symbol: `btc/usdt`, `BTC-USDT` → `BTCUSDT` (null when it cannot be one).
 * @param {unknown} s
 * @returns {string | null}
 */
export function canonicalSymbol(s: unknown): string | null;
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
export function staleSymbols(prices: ReadonlyMap<string, Price>, receivedAt: ReadonlyMap<string, number>, now: number, staleMs: number, symbols: Iterable<string>, since?: number): string[];
/**
 * The feed's status from what it knows: `disconnected` (no transport), `connecting`,
 * `slow` (the server warned, or a ping went unanswered), `degraded` (upstream not connected,
 * or data stale), `connected`.
 * @param {{open: boolean, everOpened: boolean, upstream: string, stale: boolean, slow: boolean}} s
 * @returns {FeedStatus}
 */
export function feedStatus({ open, everOpened, upstream, stale, slow }: {
    open: boolean;
    everOpened: boolean;
    upstream: string;
    stale: boolean;
    slow: boolean;
}): FeedStatus;
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
export const BACKOFF: Readonly<{
    baseMs: number;
    capMs: number;
    floorMs: number;
}>;
/** Accepts a price only when its `seq` is newer than the last one applied for its symbol. */
export class SeqFilter {
    /** The highest `seq` accepted so far (what the feed acknowledges and resumes from). */
    get max(): number;
    /**
     * @param {Pick<Price, 'symbol' | 'seq'>} price
     * @returns {boolean} whether the price is newer than the last one of its symbol
     */
    accept(price: Pick<Price, "symbol" | "seq">): boolean;
    #private;
}
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
    /** @param {PriceFeedOptions} [options] */
    constructor({ url, symbols, channels, transport, token, staleAfterMs, pingIntervalMs, pollIntervalMs, ackIntervalMs, connectionTimeoutMs, }?: PriceFeedOptions);
    /**
     * @overload
     * @param {'price'} event
     * @param {(p: Price) => void} fn
     * @returns {this}
     */
    on(event: "price", fn: (p: Price) => void): this;
    /**
     * @overload
     * @param {'status'} event
     * @param {(s: FeedStatus) => void} fn
     * @returns {this}
     */
    on(event: "status", fn: (s: FeedStatus) => void): this;
    /**
     * @overload
     * @param {'error'} event
     * @param {(e: FeedError) => void} fn
     * @returns {this}
     */
    on(event: "error", fn: (e: FeedError) => void): this;
    /**
     * @overload
     * @param {'event'} event
     * @param {(e: ChannelEvent) => void} fn
     * @returns {this}
     */
    on(event: "event", fn: (e: ChannelEvent) => void): this;
    /**
     * @overload
     * @param {'market'} event
     * @param {(f: MarketFrame) => void} fn
     * @returns {this}
     */
    on(event: "market", fn: (f: MarketFrame) => void): this;
    /**
     * @overload
     * @param {'lost'} event
     * @param {(l: {channels: string[]}) => void} fn
     * @returns {this}
     */
    on(event: "lost", fn: (l: {
        channels: string[];
    }) => void): this;
    /**
     * @param {'price' | 'status' | 'error' | 'event' | 'lost' | 'market'} event
     * @param {Function} fn
     * @returns {this}
     */
    off(event: "price" | "status" | "error" | "event" | "lost" | "market", fn: Function): this;
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
/**
 * One symbol's latest state. Prices and quantities are decimal strings, never floats.
 */
export type Price = {
    symbol: string;
    price?: string;
    open?: string;
    high?: string;
    low?: string;
    volume?: string;
    quote_volume?: string;
    change_pct?: string;
    bid?: string;
    ask?: string;
    event_time?: number;
    received_at: number;
    seq: number;
};
/**
 * One event of an event channel, as published. Each arrives once, in offset order.
 */
export type ChannelEvent = {
    type: "event";
    channel: string;
    offset: number;
    epoch: string;
    event: string;
    data: unknown;
    ts: number;
};
/**
 * A frame of a market channel the feed follows (`trades:`, `candles:`, `book:`), as sent.
 */
export type MarketFrame = {
    type: "trades" | "candle" | "book";
    channel: string;
    trades?: {
        id: number;
        price: string;
        qty: string;
        side: "buy" | "sell";
        time: number;
    }[];
    candle?: {
        t: number;
        o: string;
        h: string;
        l: string;
        c: string;
        v: string;
        closed: boolean;
    };
    bids?: [string, string][];
    asks?: [string, string][];
    u?: number;
};
/**
 * Where the feed stands in an event channel.
 */
export type Position = {
    offset: number;
    epoch: string;
};
export type FeedStatus = "connecting" | "connected" | "slow" | "degraded" | "disconnected";
export type Transport = "auto" | "websocket" | "sse";
/**
 * An error or warning frame from the service, or one of the module's own
 * (`BAD_FRAME`, `TERMINAL_CLOSE`).
 */
export type FeedError = {
    code: string;
    message: string;
    id?: number | string;
};
export type PriceFeedOptions = {
    /**
     * Base URL of the service, e.g. `https://prices.example` (default: this page's origin).
     */
    url?: string;
    /**
     * Symbols to follow from the start.
     */
    symbols?: string[];
    /**
     * Event channels (`events:<name>`) to follow from the start.
     */
    channels?: string[];
    /**
     * `auto` (WebSocket, then SSE), `websocket` or `sse`.
     */
    transport?: Transport;
    /**
     * Sent as `?token=` when the service requires `AUTH_TOKEN` or a JWT (`JWT_SECRET`). A function is a token provider: it is called before every connection, so a reconnect (also after close 4401, an expired token) presents a fresh token.
     */
    token?: string | (() => string | Promise<string>);
    /**
     * A symbol without an update for this long is stale (default 30 000 ms).
     */
    staleAfterMs?: number;
    /**
     * Application ping interval; a pong missing for two intervals means a dead connection (default 30 000 ms).
     */
    pingIntervalMs?: number;
    /**
     * REST polling interval while no transport is up (default 5 000 ms).
     */
    pollIntervalMs?: number;
    /**
     * How often applied frames are acknowledged at most (server flow control; default 10 000 ms); sooner after every 256 KiB received. Each message a client sends is billed, so acknowledging rarely is what keeps a large audience cheap.
     */
    ackIntervalMs?: number;
    /**
     * A connection that has not opened within this long (a hung handshake) is abandoned and retried (default 10 000 ms).
     */
    connectionTimeoutMs?: number;
};
/**
 * One connection attempt of the feed (internal): its transport, its socket, its timers.
 */
export type Conn = {
    kind: "websocket" | "sse";
    socket: WebSocket | EventSource;
    opened: boolean;
    deadline?: ReturnType<typeof setTimeout>;
    ping?: ReturnType<typeof setInterval>;
    ack?: ReturnType<typeof setInterval>;
    acked?: number;
    /**
     * bytes received since the last acknowledgement
     */
    unacked?: number;
};
