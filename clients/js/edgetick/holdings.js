// What a feed holds, whatever carries it: the symbols and channels it follows, the latest
// price of each symbol (newer `seq` only), and where it stands in each event channel (each
// event once). The feed asks it what to send when it connects and what a frame changes.

import { canonicalSymbol, SeqFilter, staleSymbols } from './model.js';

/** @typedef {import('./model.js').Price} Price */
/** @typedef {import('./model.js').ChannelEvent} ChannelEvent */
/** @typedef {import('./model.js').Position} Position */

export class Holdings {
  /** @type {Set<string>} canonical symbols followed */
  symbols = new Set();
  /** @type {Set<string>} channels followed */
  channels = new Set();
  /** @type {Map<string, Price>} */
  prices = new Map();
  /** @type {Map<string, number>} when each price arrived (this browser's clock) */
  receivedAt = new Map();
  /** @type {Map<string, Position>} */
  positions = new Map();
  filter = new SeqFilter();
  /** The last SSE event id: a new stream resumes from it. */
  lastSseId = '';

  /**
   * Follows `symbols` (any accepted spelling); returns the canonical ones that are new.
   * @param {Iterable<string>} symbols
   * @returns {string[]}
   */
  addSymbols(symbols) {
    const added = [];
    for (const s of symbols) {
      const c = canonicalSymbol(s);
      if (c && !this.symbols.has(c)) {
        this.symbols.add(c);
        added.push(c);
      }
    }
    return added;
  }

  /**
   * Stops following `symbols` and forgets their prices; returns those that were followed.
   * @param {Iterable<string>} symbols
   * @returns {string[]}
   */
  removeSymbols(symbols) {
    const removed = [];
    for (const s of symbols) {
      const c = canonicalSymbol(s);
      if (c && this.symbols.delete(c)) {
        removed.push(c);
        this.prices.delete(c);
        this.receivedAt.delete(c);
      }
    }
    return removed;
  }

  /**
   * @param {Iterable<string>} channels
   * @returns {string[]} the new ones
   */
  addChannels(channels) {
    const added = [...channels].filter((c) => !this.channels.has(c));
    for (const c of added) this.channels.add(c);
    return added;
  }

  /**
   * @param {Iterable<string>} channels
   * @returns {string[]} those that were followed (their positions are forgotten)
   */
  removeChannels(channels) {
    const removed = [...channels].filter((c) => this.channels.delete(c));
    for (const c of removed) this.positions.delete(c);
    return removed;
  }

  /**
   * Takes the prices that are newer than the ones held, for followed symbols.
   * @param {Price[] | undefined} list
   * @param {number} now
   * @returns {Price[]} those taken, to be told
   */
  apply(list, now) {
    const taken = [];
    for (const p of list ?? []) {
      // Held by key: `EUR/USD` comes back as it is spelled, and is followed as `EURUSD`.
      const key = canonicalSymbol(p.symbol);
      if (!key || !this.symbols.has(key) || !this.filter.accept(p)) continue;
      this.prices.set(key, p);
      this.receivedAt.set(key, now);
      taken.push(p);
    }
    return taken;
  }

  /**
   * An event of a followed channel, past the channel's position (a repeat is dropped).
   * @param {ChannelEvent} e
   * @returns {boolean} whether it is new
   */
  event(e) {
    if (!this.channels.has(e.channel)) return false;
    const at = this.positions.get(e.channel);
    if (at && at.epoch === e.epoch && e.offset <= at.offset) return false;
    this.positions.set(e.channel, { offset: e.offset, epoch: e.epoch });
    return true;
  }

  /**
   * The service could not replay what these channels missed: their positions are dropped
   * (the next events start them again).
   * @param {string[]} channels
   */
  lose(channels) {
    for (const c of channels) this.positions.delete(c);
  }

  /** True when a followed symbol has had no price for `staleMs` (counted from `since`). */
  stale(/** @type {number} */ now, /** @type {number} */ staleMs, /** @type {number} */ since) {
    if (this.symbols.size === 0) return false;
    return staleSymbols(this.prices, this.receivedAt, now, staleMs, this.symbols, since).length > 0;
  }

  /**
   * The `subscribe`s a new WebSocket sends: the symbols, then the channels with where each
   * stands. Apart, so a channel the service does not serve (refused whole) costs no symbol.
   * @returns {Record<string, unknown>[]}
   */
  greeting() {
    const out = [];
    if (this.symbols.size > 0) out.push({ action: 'subscribe', symbols: [...this.symbols] });
    if (this.channels.size > 0) {
      /** @type {Record<string, unknown>} */
      const cmd = { action: 'subscribe', channels: [...this.channels] };
      const since = Object.fromEntries([...this.positions].filter(([c]) => this.channels.has(c)));
      if (Object.keys(since).length > 0) cmd.since = since;
      out.push(cmd);
    }
    return out;
  }

  /**
   * A new SSE stream's query: its symbols, channels, and where it resumes.
   * @returns {Record<string, string>}
   */
  streamQuery() {
    /** @type {Record<string, string>} */
    const q = {};
    if (this.symbols.size > 0) q.symbols = [...this.symbols].join(',');
    if (this.channels.size > 0) q.channels = [...this.channels].join(',');
    if (this.channels.size > 0 && this.lastSseId) q.lastEventId = this.lastSseId;
    else if (this.filter.max > 0) q.lastEventId = String(this.filter.max);
    return q;
  }
}
