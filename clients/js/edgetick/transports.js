// The ways edgetick.js reaches the service, behind one interface: a WebSocket (commands,
// pings and acknowledgements), a Server-Sent Events stream (read-only: a change of
// subscriptions is a new stream) and REST polling (while neither is up). Each hands the feed
// parsed frames and tells it when it opened and when it failed; none decides what happens next.

import { FRAME_TYPES } from './model.js';

/** @typedef {import('./model.js').Frame} Frame */

/** Received bytes after which the feed acknowledges without waiting for `ackIntervalMs`. */
export const ACK_AFTER_BYTES = 256 * 1024;

/**
 * What a transport tells the feed.
 * @typedef {object} TransportEvents
 * @property {() => void} opened It is up (for SSE: the stream opened).
 * @property {(frame: Frame, id?: string) => void} frame One frame, with the SSE event id if any.
 * @property {(text: string, error: unknown) => void} unreadable A frame that is not JSON.
 * @property {(wasOpen: boolean, code: number) => void} failed It ended, or never opened.
 * @property {() => void} [interrupted] An SSE stream the browser is reconnecting by itself.
 */

/**
 * One connection of the feed, whichever transport carries it.
 * @typedef {object} Link
 * @property {'websocket' | 'sse' | 'poll'} kind
 * @property {boolean} opened
 * @property {(command: Record<string, unknown>) => boolean} send A command to the service; false when this transport carries none (SSE, polling).
 * @property {() => void} pong The service answered a ping.
 * @property {() => void} close Ends it without telling the feed.
 */

/**
 * Parses one frame's text and hands it on (or reports it unreadable).
 * @param {TransportEvents} on
 * @param {string} text
 * @param {string} [id]
 */
function deliver(on, text, id) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch (e) {
    on.unreadable(text, e);
    return;
  }
  on.frame(frame, id);
}

/**
 * Abandons `link` (closed, reported failed) if it has not opened within `ms`: a handshake
 * that hangs (a proxy that never answers) would otherwise leave the feed connecting forever.
 * @param {Link} link
 * @param {number} ms
 * @param {TransportEvents} on
 * @returns {ReturnType<typeof setTimeout>}
 */
function deadline(link, ms, on) {
  return setTimeout(() => {
    if (link.opened) return;
    link.close();
    on.failed(false, 1006);
  }, ms);
}

/**
 * @typedef {object} WebSocketOptions
 * @property {number} pingIntervalMs Application pings; a pong missing for two intervals means a dead connection.
 * @property {number} ackIntervalMs Acknowledgements at most this often (sooner after 256 KiB).
 * @property {number} connectionTimeoutMs
 * @property {() => number} ackSeq The highest `seq` applied (what is acknowledged).
 * @property {() => Record<string, unknown>[]} greeting The commands a new connection sends first.
 * @property {() => void} slow A ping went unanswered.
 */

/**
 * A WebSocket's upkeep once it is open: acknowledgements of what was applied (server flow
 * control counts what is not acknowledged, and every message a client sends is billed, so
 * rarely) and pings, closing the socket when a pong stays missing.
 * @param {WebSocket} socket
 * @param {WebSocketOptions} opts
 */
function upkeep(socket, opts) {
  let pongAt = Date.now();
  let acked = 0;
  let unacked = 0;
  /** @type {ReturnType<typeof setInterval> | undefined} */ let ping;
  /** @type {ReturnType<typeof setInterval> | undefined} */ let ack;
  const acknowledge = (force = false) => {
    unacked = 0;
    const seq = opts.ackSeq();
    if (force || seq > acked) {
      acked = seq;
      socket.send(JSON.stringify({ action: 'ack', seq }));
    }
  };
  return {
    start() {
      pongAt = Date.now();
      ping = setInterval(() => {
        if (Date.now() - pongAt > 2 * opts.pingIntervalMs) {
          // A missing pong: the connection is dead even if the socket says otherwise.
          opts.slow();
          socket.close(4000, 'pong missing');
          return;
        }
        socket.send(JSON.stringify({ action: 'ping' }));
      }, opts.pingIntervalMs);
      ack = setInterval(() => acknowledge(), opts.ackIntervalMs);
    },
    /** @param {number} bytes */
    received(bytes) {
      unacked += bytes;
      if (unacked >= ACK_AFTER_BYTES) acknowledge(true);
    },
    pong() {
      pongAt = Date.now();
    },
    stop() {
      clearInterval(ping);
      clearInterval(ack);
    },
  };
}

/**
 * A WebSocket to `url`: sends the greeting when it opens, then keeps it up (see `upkeep`).
 * @param {string} url
 * @param {TransportEvents} on
 * @param {WebSocketOptions} opts
 * @returns {Link}
 */
export function openWebSocket(url, on, opts) {
  let socket;
  try {
    socket = new WebSocket(url);
  } catch (e) {
    queueMicrotask(() => on.failed(false, 1006));
    return { kind: 'websocket', opened: false, send: () => false, pong() {}, close() {} };
  }
  const ws = socket;
  const keep = upkeep(ws, opts);
  /** @type {Link} */
  const link = {
    kind: 'websocket',
    opened: false,
    send: (command) => link.opened && (ws.send(JSON.stringify(command)), true),
    pong: () => keep.pong(),
    close: () => {
      clearTimeout(timeout);
      keep.stop();
      ws.onclose = null;
      try {
        ws.close();
      } catch (e) {
        /* already closed */
      }
    },
  };
  const timeout = deadline(link, opts.connectionTimeoutMs, on);
  ws.onopen = () => {
    link.opened = true;
    on.opened();
    for (const command of opts.greeting()) ws.send(JSON.stringify(command));
    keep.start();
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== 'string' || ev.data === 'pong') return;
    deliver(on, ev.data);
    keep.received(ev.data.length);
  };
  ws.onclose = (ev) => {
    clearTimeout(timeout);
    keep.stop();
    on.failed(link.opened, ev.code);
  };
  ws.onerror = () => {
    // onclose follows and decides.
  };
  return link;
}

/**
 * A Server-Sent Events stream from `url`. Every frame type has its listener (one list,
 * {@link FRAME_TYPES}, for both transports); the browser's own reconnects are reported as
 * interruptions, a stream that never opened or was closed for good as a failure.
 * @param {string} url
 * @param {TransportEvents} on
 * @param {{connectionTimeoutMs: number}} opts
 * @returns {Link}
 */
export function openSse(url, on, opts) {
  const es = new EventSource(url);
  /** @type {Link} */
  const link = {
    kind: 'sse',
    opened: false,
    send: () => false,
    pong() {},
    close: () => {
      clearTimeout(timeout);
      es.onerror = null;
      es.close();
    },
  };
  const timeout = deadline(link, opts.connectionTimeoutMs, on);
  es.onopen = () => {
    link.opened = true;
    on.opened();
  };
  for (const type of FRAME_TYPES) {
    es.addEventListener(type, (ev) => {
      const m = /** @type {MessageEvent} */ (ev);
      deliver(on, m.data, m.lastEventId || undefined);
    });
  }
  es.onerror = () => {
    if (!link.opened || es.readyState === 2) {
      link.close();
      on.failed(link.opened, 1006);
    } else {
      on.interrupted?.();
    }
  };
  return link;
}

/**
 * Polls `GET /api/prices` for `symbols()` every `intervalMs` while it runs (the feed starts
 * it when its transport fails and stops it when one is up again): each answer arrives as a
 * `status` frame and a `prices` frame, like a live transport's.
 * @param {() => string | null} url The URL to read now, or null to skip this round.
 * @param {Pick<TransportEvents, 'frame'>} on
 * @param {number} intervalMs
 * @returns {Link}
 */
export function startPolling(url, on, intervalMs) {
  const poll = async () => {
    const target = url();
    if (!target) return;
    try {
      const res = await fetch(target);
      if (!res.ok) return;
      const body = await res.json();
      on.frame({ type: 'status', upstream: body.upstream });
      on.frame({ type: 'prices', prices: body.prices });
    } catch (e) {
      /* the service is down too; keep trying */
    }
  };
  const timer = setInterval(poll, intervalMs);
  poll();
  return {
    kind: 'poll',
    opened: true,
    send: () => false,
    pong() {},
    close: () => clearInterval(timer),
  };
}
