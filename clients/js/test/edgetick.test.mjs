// Unit tests of edgetick.js under Node's test runner: its pure parts, and the feed with a
// stand-in WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BACKOFF,
  backoffDelay,
  canonicalSymbol,
  closeKind,
  feedStatus,
  FRAME_TYPES,
  PriceFeed,
  SeqFilter,
  staleSymbols,
} from '../edgetick.js';

test('backoff ceiling doubles from the base up to the cap', () => {
  assert.equal(backoffDelay(0, () => 0.999999), Math.floor(BACKOFF.baseMs * 0.999999));
  assert.equal(backoffDelay(1, () => 0.5), BACKOFF.baseMs);
  assert.equal(backoffDelay(3, () => 0.5), BACKOFF.baseMs * 4);
  assert.equal(backoffDelay(30, () => 0.999999), Math.floor(BACKOFF.capMs * 0.999999));
});

test('full jitter stays within floor and ceiling', () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = Math.min(BACKOFF.capMs, BACKOFF.baseMs * 2 ** attempt);
    for (const r of [0, 0.1, 0.5, 0.9, 0.999]) {
      const d = backoffDelay(attempt, () => r);
      assert.ok(d >= BACKOFF.floorMs && d <= ceiling, `${attempt} ${r} ${d}`);
    }
  }
  assert.equal(backoffDelay(5, () => 0), BACKOFF.floorMs, 'a zero draw still waits');
});

test('close codes: 4000-4499 retry, 4500-4999 and policy do not', () => {
  for (const c of [1000, 1006, 1009, 1011, 4008, 4009, 4290, 4499]) assert.equal(closeKind(c), 'retry', String(c));
  for (const c of [1008, 4500, 4999]) assert.equal(closeKind(c), 'terminal', String(c));
});

test('symbols are canonicalised like the server does', () => {
  for (const s of ['BTCUSDT', 'btcusdt', 'BTC/USDT', 'BTC-USDT', ' btc_usdt ']) assert.equal(canonicalSymbol(s), 'BTCUSDT');
  for (const s of ['', 'B', 'BTC USDT', '<x>', '/EUR']) assert.equal(canonicalSymbol(s), null);
  // Twelve Data's spellings share the key the service resolves them by.
  for (const s of ['EUR/USD', 'eur-usd', 'EURUSD']) assert.equal(canonicalSymbol(s), 'EURUSD');
  assert.equal(canonicalSymbol('BRK.B'), 'BRKB');
});

test('the seq filter drops frames that are not newer, per symbol', () => {
  const f = new SeqFilter();
  assert.ok(f.accept({ symbol: 'A', seq: 5 }));
  assert.ok(!f.accept({ symbol: 'A', seq: 5 }), 'duplicate');
  assert.ok(!f.accept({ symbol: 'A', seq: 4 }), 'older');
  assert.ok(f.accept({ symbol: 'B', seq: 3 }), 'other symbols have their own order');
  assert.ok(f.accept({ symbol: 'A', seq: 9 }));
  assert.equal(f.max, 9);
});

test('staleness by age of receipt', () => {
  const prices = new Map([['A', { symbol: 'A', seq: 1 }], ['B', { symbol: 'B', seq: 2 }]]);
  const at = new Map([['A', 1_000], ['B', 20_000]]);
  assert.deepEqual(staleSymbols(prices, at, 31_000, 30_000, ['A', 'B', 'C'], 0), ['A', 'C']);
  assert.deepEqual(staleSymbols(prices, at, 30_999, 30_000, ['A', 'B']), []);
  // A symbol without a price counts from when the feed opened.
  assert.deepEqual(staleSymbols(prices, at, 31_000, 30_000, ['C'], 10_000), []);
  assert.deepEqual(staleSymbols(prices, at, 40_000, 30_000, ['C'], 10_000), ['C']);
});

test('status from what the feed knows', () => {
  const base = { open: true, everOpened: true, upstream: 'connected', stale: false, slow: false };
  assert.equal(feedStatus(base), 'connected');
  assert.equal(feedStatus({ ...base, upstream: 'reconnecting' }), 'degraded');
  assert.equal(feedStatus({ ...base, stale: true }), 'degraded');
  assert.equal(feedStatus({ ...base, slow: true }), 'slow');
  assert.equal(feedStatus({ ...base, open: false }), 'disconnected');
  assert.equal(feedStatus({ ...base, open: false, everOpened: false }), 'connecting');
});

/** Resolves when `cond()` holds, polling every 10 ms; rejects after `ms`. */
function waitFor(cond, ms = 5_000) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const check = () => {
      if (cond()) return resolve();
      if (Date.now() - start > ms) return reject(new Error('timed out waiting'));
      setTimeout(check, 10);
    };
    check();
  });
}

/** A WebSocket whose handshake never completes. */
class HungSocket {
  static made = [];
  constructor(url) {
    this.url = url;
    this.closed = false;
    HungSocket.made.push(this);
  }
  send() {}
  close() {
    this.closed = true;
  }
}

test('a handshake that hangs is abandoned after connectionTimeoutMs and retried', async () => {
  const saved = { WebSocket: globalThis.WebSocket, fetch: globalThis.fetch };
  globalThis.WebSocket = HungSocket;
  globalThis.fetch = async () => ({ ok: false });
  HungSocket.made = [];
  const feed = new PriceFeed({
    url: 'http://127.0.0.1:9',
    symbols: ['btc-usdt'],
    transport: 'websocket',
    connectionTimeoutMs: 50,
  });
  try {
    await waitFor(() => HungSocket.made.length >= 2);
    assert.ok(HungSocket.made[0].closed, 'the hung socket was closed');
    assert.equal(HungSocket.made[0].url, 'ws://127.0.0.1:9/ws');
    assert.equal(feed.status, 'connecting', 'never opened, still trying');
    assert.equal(feed.via, 'websocket');
  } finally {
    feed.close();
    Object.assign(globalThis, saved);
  }
  assert.equal(feed.status, 'disconnected');
});

test('the feed state is read-only from outside', () => {
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = HungSocket;
  const feed = new PriceFeed({ url: 'http://127.0.0.1:9', symbols: ['ETH/USDT'], transport: 'websocket' });
  try {
    assert.deepEqual(feed.symbols, ['ETHUSDT']);
    assert.throws(() => {
      feed.prices = new Map();
    }, TypeError);
    assert.throws(() => {
      feed.upstream = 'down';
    }, TypeError);
    const copy = feed.symbols;
    copy.push('XRPUSDT');
    assert.deepEqual(feed.symbols, ['ETHUSDT'], 'symbols is a copy');
    assert.equal(Object.keys(feed).length, 0, 'no public fields');
  } finally {
    feed.close();
    globalThis.WebSocket = saved;
  }
});

/** A WebSocket the test opens and feeds by hand. */
class OpenSocket {
  static made = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    OpenSocket.made.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {}
}

test('acknowledges after 256 KiB received, without waiting for the interval', () => {
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = OpenSocket;
  const feed = new PriceFeed({
    url: 'http://127.0.0.1:9',
    symbols: ['BTCUSDT'],
    transport: 'websocket',
    ackIntervalMs: 3_600_000,
  });
  try {
    const s = OpenSocket.made.at(-1);
    s.onopen();
    assert.deepEqual(s.sent[0], { action: 'subscribe', symbols: ['BTCUSDT'] });
    const pad = 'x'.repeat(1_000);
    const acks = () => s.sent.filter((m) => m.action === 'ack');
    let seq = 0;
    let bytes = 0;
    let last = 0;
    while (acks().length === 0 && seq < 1_000) {
      seq += 1;
      const prices = [{ symbol: 'BTCUSDT', price: '1.0', seq, received_at: 0, pad }];
      const data = JSON.stringify({ type: 'prices', prices });
      bytes += data.length;
      last = data.length;
      s.onmessage({ data });
    }
    assert.equal(acks().length, 1);
    assert.equal(acks()[0].seq, seq, 'the highest seq applied');
    assert.ok(bytes >= 256 * 1024 && bytes - last < 256 * 1024, `acked after ${bytes} bytes`);
  } finally {
    feed.close();
    globalThis.WebSocket = saved;
  }
});

test('event channels: each event once, positions resumed on reconnect, a lost gap told', async () => {
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = OpenSocket;
  OpenSocket.made = [];
  const feed = new PriceFeed({ url: 'http://127.0.0.1:9', channels: ['events:a'], transport: 'websocket' });
  const got = [];
  const lost = [];
  feed.on('event', (e) => got.push(e.offset));
  feed.on('lost', (l) => lost.push(l.channels));
  try {
    const s = OpenSocket.made.at(-1);
    s.onopen();
    assert.deepEqual(s.sent[0], { action: 'subscribe', channels: ['events:a'] });
    const ev = (offset, channel = 'events:a') =>
      s.onmessage({ data: JSON.stringify({ type: 'event', channel, offset, epoch: 'e1', event: 'x', data: {} }) });
    ev(1);
    ev(2);
    ev(2);
    ev(1);
    ev(9, 'events:other');
    assert.deepEqual(got, [1, 2], 'once each, only followed channels');
    assert.deepEqual(feed.positions, { 'events:a': { offset: 2, epoch: 'e1' } });
    s.onclose({ code: 1006 });
    await waitFor(() => OpenSocket.made.length >= 2);
    const again = OpenSocket.made.at(-1);
    again.onopen();
    assert.deepEqual(again.sent[0], {
      action: 'subscribe',
      channels: ['events:a'],
      since: { 'events:a': { offset: 2, epoch: 'e1' } },
    });
    again.onmessage({ data: JSON.stringify({ type: 'subscribed', channels: ['events:a'], recovered: false }) });
    assert.deepEqual(lost, [['events:a']]);
    assert.deepEqual(feed.positions, {}, 'a lost position is dropped');
  } finally {
    feed.close();
    globalThis.WebSocket = saved;
  }
});

test('a token provider is asked before every connection (a reconnect after 4401 gets a fresh token)', async () => {
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = OpenSocket;
  OpenSocket.made = [];
  let n = 0;
  const feed = new PriceFeed({
    url: 'http://127.0.0.1:9',
    symbols: ['BTCUSDT'],
    transport: 'websocket',
    token: async () => `t${++n}`,
  });
  try {
    await waitFor(() => OpenSocket.made.length >= 1);
    assert.equal(OpenSocket.made[0].url, 'ws://127.0.0.1:9/ws?token=t1');
    OpenSocket.made[0].onopen();
    OpenSocket.made[0].onclose({ code: 4401 });
    await waitFor(() => OpenSocket.made.length >= 2);
    assert.equal(OpenSocket.made[1].url, 'ws://127.0.0.1:9/ws?token=t2', 'a fresh token');
  } finally {
    feed.close();
    globalThis.WebSocket = saved;
  }
});

/** An EventSource the test opens and feeds by hand, event by event. */
class FakeEventSource {
  static made = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    /** @type {Map<string, Function[]>} */
    this.listeners = new Map();
    FakeEventSource.made.push(this);
  }
  addEventListener(type, fn) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }
  emit(type, data, lastEventId = '') {
    for (const fn of this.listeners.get(type) ?? []) fn({ data: JSON.stringify(data), lastEventId });
  }
  close() {
    this.readyState = 2;
  }
}

/** A WebSocket that fails before it opens. */
class RefusedSocket {
  static made = 0;
  constructor() {
    RefusedSocket.made += 1;
    setTimeout(() => this.onclose?.({ code: 1006 }), 0);
  }
  send() {}
  close() {}
}

const MARKET = [
  ['trades', { type: 'trades', channel: 'trades:BTCUSDT', trades: [{ id: 1, price: '1.5', qty: '2', side: 'buy', time: 1 }] }],
  ['candle', { type: 'candle', channel: 'candles:BTCUSDT:1m', candle: { t: 0, o: '1', h: '2', l: '1', c: '1.5', v: '3', closed: false } }],
  ['book', { type: 'book', channel: 'book:BTCUSDT', bids: [['1.4', '1']], asks: [['1.6', '1']] }],
];
const CHANNELS = MARKET.map(([, f]) => f.channel);

/** Feeds every market frame through `es` and returns what the feed's listeners got. */
function marketThrough(feed, es) {
  const got = [];
  feed.on('market', (f) => got.push(f.type));
  es.onopen();
  for (const [type, frame] of MARKET) es.emit(type, frame, '7');
  es.emit('trades', { ...MARKET[0][1], channel: 'trades:ETHUSDT' });
  return got;
}

test('over SSE every frame type has a listener, and market frames reach the page', () => {
  const saved = globalThis.EventSource;
  globalThis.EventSource = FakeEventSource;
  FakeEventSource.made = [];
  const feed = new PriceFeed({ url: 'http://127.0.0.1:9', symbols: ['BTCUSDT'], channels: CHANNELS, transport: 'sse' });
  try {
    const es = FakeEventSource.made.at(-1);
    assert.match(es.url, /\/api\/stream\?symbols=BTCUSDT&channels=trades%3ABTCUSDT%2C/);
    assert.deepEqual([...es.listeners.keys()].sort(), [...FRAME_TYPES].sort(), 'one listener per frame type');
    assert.deepEqual(marketThrough(feed, es), ['trades', 'candle', 'book'], 'only followed channels');
    const prices = [];
    feed.on('price', (p) => prices.push(p.price));
    es.emit('prices', { type: 'prices', prices: [{ symbol: 'BTCUSDT', price: '2.5', seq: 9, received_at: 0 }] }, '9');
    assert.deepEqual(prices, ['2.5']);
    assert.equal(feed.via, 'sse');
  } finally {
    feed.close();
    globalThis.EventSource = saved;
  }
});

test('after the fallback from a WebSocket that cannot connect, market frames arrive over SSE', async () => {
  const saved = { WebSocket: globalThis.WebSocket, EventSource: globalThis.EventSource, fetch: globalThis.fetch };
  Object.assign(globalThis, { WebSocket: RefusedSocket, EventSource: FakeEventSource, fetch: async () => ({ ok: false }) });
  FakeEventSource.made = [];
  RefusedSocket.made = 0;
  const feed = new PriceFeed({ url: 'http://127.0.0.1:9', symbols: ['BTCUSDT'], channels: CHANNELS });
  try {
    await waitFor(() => FakeEventSource.made.length >= 1, 10_000);
    assert.equal(RefusedSocket.made, 2, 'two WebSocket failures, then SSE');
    const es = FakeEventSource.made.at(-1);
    assert.deepEqual(marketThrough(feed, es), ['trades', 'candle', 'book']);
    assert.equal(feed.status, 'connected');
  } finally {
    feed.close();
    Object.assign(globalThis, saved);
  }
});
