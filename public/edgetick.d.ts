// Types of edgetick.js, the browser client of edgetick.

/** One symbol's latest state. Prices and quantities are decimal strings, never floats. */
export interface Price {
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
}

export type FeedStatus = 'connecting' | 'connected' | 'slow' | 'degraded' | 'disconnected';
export type Transport = 'auto' | 'websocket' | 'sse';

export interface FeedError {
  code: string;
  message: string;
  id?: number | string;
}

export interface PriceFeedOptions {
  /** Base URL of the service, e.g. `https://prices.example` (default: this page's origin). */
  url?: string;
  symbols?: string[];
  transport?: Transport;
  /** Sent as `?token=` when the service requires AUTH_TOKEN. */
  token?: string;
  /** A symbol without an update for this long is stale (default 30 000 ms). */
  staleAfterMs?: number;
  /** Application ping interval; a pong missing for two intervals means a dead connection. */
  pingIntervalMs?: number;
  /** REST polling interval while no transport is up (default 5 000 ms). */
  pollIntervalMs?: number;
  /** How often applied frames are acknowledged (server flow control; default 1 000 ms). */
  ackIntervalMs?: number;
}

export class PriceFeed {
  constructor(options?: PriceFeedOptions);
  readonly prices: Map<string, Price>;
  readonly status: FeedStatus;
  /** The transport carrying the feed now. */
  readonly via: 'websocket' | 'sse' | 'poll' | null;
  /** When each symbol's latest price arrived here (ms since the epoch, this browser's clock). */
  readonly receivedAt: Map<string, number>;
  /** The service's upstream state as last reported: `connected`, `reconnecting` or `down`. */
  readonly upstream: string;
  on(event: 'price', fn: (p: Price) => void): this;
  on(event: 'status', fn: (s: FeedStatus) => void): this;
  on(event: 'error', fn: (e: FeedError) => void): this;
  off(event: 'price' | 'status' | 'error', fn: (...args: any[]) => void): this;
  subscribe(symbols: string[]): void;
  unsubscribe(symbols: string[]): void;
  close(): void;
}

export const BACKOFF: { baseMs: number; capMs: number; floorMs: number };
export function backoffDelay(attempt: number, random?: () => number, opts?: typeof BACKOFF): number;
export function closeKind(code: number): 'retry' | 'terminal';
export function canonicalSymbol(s: string): string | null;
export class SeqFilter {
  max: number;
  accept(price: Pick<Price, 'symbol' | 'seq'>): boolean;
}
export function staleSymbols(
  prices: Map<string, Price>,
  receivedAt: Map<string, number>,
  now: number,
  staleMs: number,
  symbols: Iterable<string>,
  since?: number,
): string[];
export function feedStatus(s: {
  open: boolean;
  everOpened: boolean;
  upstream: string;
  stale: boolean;
  slow: boolean;
}): FeedStatus;
