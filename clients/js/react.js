// edgetick/react — React hooks over edgetick.js: one connection per page, shared by every
// component that asks, resubscribed when what they ask for changes, and closed when the last
// one unmounts.
//
//   import { usePrices, useChannel } from 'edgetick-client/react';
//   function Ticker({ symbols }) {
//     const prices = usePrices(symbols);                 // Map symbol → Price
//     return symbols.map((s) => <div key={s}>{s} {prices.get(s)?.price ?? '…'}</div>);
//   }
//   function Signals() {
//     const { events } = useChannel('events:signals');   // the last events, oldest first
//     return events.map((e) => <div key={e.offset}>{e.event}</div>);
//   }
//   function Chart() {
//     const { candles } = useCandles('BTCUSDT', '1m');   // history + the live candle
//     return <Candlesticks data={candles} />;
//   }

import { useEffect, useState } from 'react';
import { CandleBars, PriceFeed, canonicalSymbol, fetchCandles } from './edgetick.js';

/** @typedef {import('./edgetick.js').Price} Price */
/** @typedef {import('./edgetick.js').ChannelEvent} ChannelEvent */
/** @typedef {import('./edgetick.js').PriceFeedOptions} PriceFeedOptions */
/** @typedef {import('./edgetick.js').Candle} Candle */
/** @typedef {import('./edgetick.js').MarketFrame} MarketFrame */

/**
 * The page's one feed and who uses what: the feed follows the union of every mounted hook's
 * symbols and channels.
 * @type {{feed: PriceFeed, symbols: Map<string, number>, channels: Map<string, number>, users: number} | null}
 */
let shared = null;
/** @type {PriceFeedOptions} */
let options = {};

/**
 * Sets the options of the page's feed (its `url`, `token`, `transport`...): call it before the
 * first hook mounts. Symbols and channels come from the hooks.
 * @param {PriceFeedOptions} opts
 */
export function configureFeed(opts) {
  options = { ...opts, symbols: [], channels: [] };
}

/** The page's feed, created by the first hook that mounts. */
function acquire() {
  if (!shared) {
    shared = { feed: new PriceFeed({ ...options, symbols: [], channels: [] }), symbols: new Map(), channels: new Map(), users: 0 };
  }
  shared.users += 1;
  return shared;
}

/** A hook unmounted: the last one closes the feed (no socket is left open). */
function release() {
  if (!shared) return;
  shared.users -= 1;
  if (shared.users === 0) {
    shared.feed.close();
    shared = null;
  }
}

/**
 * Counts `keys` in or out of `counts`; returns those that became wanted or unwanted.
 * @param {Map<string, number>} counts
 * @param {string[]} keys
 * @param {1 | -1} delta
 */
function count(counts, keys, delta) {
  const changed = [];
  for (const k of keys) {
    const n = (counts.get(k) ?? 0) + delta;
    if (n <= 0) counts.delete(k);
    else counts.set(k, n);
    if ((delta === 1 && n === 1) || (delta === -1 && n <= 0)) changed.push(k);
  }
  return changed;
}

/**
 * Live prices of `symbols` (any spelling): a `Map` from the service's symbol (`BTCUSDT`,
 * `EUR/USD`: each source's own spelling) to its latest `Price`, updated on every change.
 * Changing `symbols` resubscribes; unmounting unsubscribes.
 * @param {string[]} symbols
 * @returns {Map<string, Price>}
 */
export function usePrices(symbols) {
  const key = symbols.map((s) => canonicalSymbol(s) ?? s).join(',');
  const [prices, setPrices] = useState(() => new Map());
  useEffect(() => {
    const wanted = key ? key.split(',') : [];
    const s = acquire();
    const added = count(s.symbols, wanted, 1);
    if (added.length > 0) s.feed.subscribe(added);
    /** @param {ReadonlyMap<string, Price>} all */
    const pick = (all) => {
      const held = wanted.map((w) => all.get(w)).filter((p) => p !== undefined);
      return new Map(held.map((p) => [p.symbol, /** @type {Price} */ (p)]));
    };
    setPrices(pick(s.feed.prices));
    /** @param {Price} p */
    const onPrice = (p) => {
      const k = canonicalSymbol(p.symbol);
      if (k && wanted.includes(k)) setPrices((old) => new Map(old).set(p.symbol, p));
    };
    s.feed.on('price', onPrice);
    return () => {
      s.feed.off('price', onPrice);
      const removed = count(s.symbols, wanted, -1);
      if (removed.length > 0 && shared === s) s.feed.unsubscribe(removed);
      release();
    };
  }, [key]);
  return prices;
}

/**
 * Events of one event channel (`events:<name>` or a private `user:<id>:<name>`), oldest first,
 * at most `keep` of them. The feed keeps the channel's position and recovers what a reconnect
 * missed; `lost` turns true when it could not (refetch what the events stand for).
 * @param {string} channel
 * @param {{keep?: number}} [opts]
 * @returns {{events: ChannelEvent[], lost: boolean}}
 */
export function useChannel(channel, { keep = 100 } = {}) {
  const [state, setState] = useState(() => ({ events: /** @type {ChannelEvent[]} */ ([]), lost: false }));
  useEffect(() => {
    const s = acquire();
    if (count(s.channels, [channel], 1).length > 0) s.feed.subscribeChannels([channel]);
    setState({ events: [], lost: false });
    /** @param {ChannelEvent} e */
    const onEvent = (e) => {
      if (e.channel === channel) setState((old) => ({ ...old, events: [...old.events, e].slice(-keep) }));
    };
    /** @param {{channels: string[]}} l */
    const onLost = (l) => {
      if (l.channels.includes(channel)) setState((old) => ({ ...old, lost: true }));
    };
    s.feed.on('event', onEvent);
    s.feed.on('lost', onLost);
    return () => {
      s.feed.off('event', onEvent);
      s.feed.off('lost', onLost);
      if (count(s.channels, [channel], -1).length > 0 && shared === s) s.feed.unsubscribeChannels([channel]);
      release();
    };
  }, [channel, keep]);
  return state;
}

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
export function useCandles(symbol, interval = '1m', { limit } = {}) {
  const [state, setState] = useState(() => ({ candles: /** @type {Candle[]} */ ([]), loading: true, error: /** @type {string | null} */ (null) }));
  useEffect(() => {
    const key = `candles:${canonicalSymbol(symbol) ?? symbol}:${interval}`;
    const s = acquire();
    const bars = new CandleBars();
    const ctl = new AbortController();
    let loading = true;
    /** @param {string | null} error */
    const show = (error) => setState({ candles: bars.list(), loading, error });
    if (count(s.channels, [key], 1).length > 0) s.feed.subscribeChannels([key]);
    /** @param {MarketFrame} f */
    const onMarket = (f) => {
      if (f.type === 'candle' && f.channel === key) {
        bars.apply(f.candle);
        show(null);
      }
    };
    s.feed.on('market', onMarket);
    setState({ candles: [], loading: true, error: null });
    fetchCandles({ symbol, interval, limit, url: options.url, signal: ctl.signal })
      .then((history) => bars.setHistory(history))
      .then(() => { loading = false; show(null); })
      .catch((/** @type {Error} */ e) => { if (!ctl.signal.aborted) { loading = false; show(e.message); } });
    return () => {
      ctl.abort();
      s.feed.off('market', onMarket);
      if (count(s.channels, [key], -1).length > 0 && shared === s) s.feed.unsubscribeChannels([key]);
      release();
    };
  }, [symbol, interval, limit]);
  return state;
}
