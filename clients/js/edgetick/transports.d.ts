/**
 * A WebSocket to `url`: sends the greeting when it opens, then keeps it up (see `upkeep`).
 * @param {string} url
 * @param {TransportEvents} on
 * @param {WebSocketOptions} opts
 * @returns {Link}
 */
export function openWebSocket(url: string, on: TransportEvents, opts: WebSocketOptions): Link;
/**
 * A Server-Sent Events stream from `url`. Every frame type has its listener (one list,
 * {@link FRAME_TYPES}, for both transports); the browser's own reconnects are reported as
 * interruptions, a stream that never opened or was closed for good as a failure.
 * @param {string} url
 * @param {TransportEvents} on
 * @param {{connectionTimeoutMs: number}} opts
 * @returns {Link}
 */
export function openSse(url: string, on: TransportEvents, opts: {
    connectionTimeoutMs: number;
}): Link;
/**
 * Polls `GET /api/prices` for `symbols()` every `intervalMs` while it runs (the feed starts
 * it when its transport fails and stops it when one is up again): each answer arrives as a
 * `status` frame and a `prices` frame, like a live transport's.
 * @param {() => string | null} url The URL to read now, or null to skip this round.
 * @param {Pick<TransportEvents, 'frame'>} on
 * @param {number} intervalMs
 * @returns {Link}
 */
export function startPolling(url: () => string | null, on: Pick<TransportEvents, "frame">, intervalMs: number): Link;
/** @typedef {import('./model.js').Frame} Frame */
/** Received bytes after which the feed acknowledges without waiting for `ackIntervalMs`. */
export const ACK_AFTER_BYTES: number;
/**
 * What a transport tells the feed.
 */
export type TransportEvents = {
    /**
     * It is up (for SSE: the stream opened).
     */
    opened: () => void;
    /**
     * One frame, with the SSE event id if any.
     */
    frame: (frame: Frame, id?: string) => void;
    /**
     * A frame that is not JSON.
     */
    unreadable: (text: string, error: unknown) => void;
    /**
     * It ended, or never opened.
     */
    failed: (wasOpen: boolean, code: number) => void;
    /**
     * An SSE stream the browser is reconnecting by itself.
     */
    interrupted?: () => void;
};
/**
 * One connection of the feed, whichever transport carries it.
 */
export type Link = {
    kind: "websocket" | "sse" | "poll";
    opened: boolean;
    /**
     * A command to the service; false when this transport carries none (SSE, polling).
     */
    send: (command: Record<string, unknown>) => boolean;
    /**
     * The service answered a ping.
     */
    pong: () => void;
    /**
     * Ends it without telling the feed.
     */
    close: () => void;
};
export type WebSocketOptions = {
    /**
     * Application pings; a pong missing for two intervals means a dead connection.
     */
    pingIntervalMs: number;
    /**
     * Acknowledgements at most this often (sooner after 256 KiB).
     */
    ackIntervalMs: number;
    connectionTimeoutMs: number;
    /**
     * The highest `seq` applied (what is acknowledged).
     */
    ackSeq: () => number;
    /**
     * The commands a new connection sends first.
     */
    greeting: () => Record<string, unknown>[];
    /**
     * A ping went unanswered.
     */
    slow: () => void;
};
export type Frame = import("./model.js").Frame;
