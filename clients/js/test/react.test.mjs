// The React hooks with real React (react-test-renderer): one connection shared by every hook
// on the page, prices and events reaching components, resubscription when what a component asks
// for changes, and no socket left open after the last unmount.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createElement as h } from 'react';
import TestRenderer from 'react-test-renderer';
import { usePrices, useChannel, useCandles, configureFeed } from '../react.js';

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const { act } = TestRenderer;

/** A WebSocket the test drives by hand. */
class FakeSocket {
  static made = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    FakeSocket.made.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.closed = true;
  }
  /** Delivers a server frame. */
  frame(f) {
    this.onmessage({ data: JSON.stringify(f) });
  }
}

function Prices({ symbols }) {
  const prices = usePrices(symbols);
  return h('p', null, [...prices].map(([s, p]) => `${s}=${p.price}`).join(' ') || '-');
}

function Events({ channel }) {
  const { events, lost } = useChannel(channel);
  return h('p', null, `${events.map((e) => e.offset).join(',')}${lost ? ' lost' : ''}`);
}

const text = (r) => r.toJSON().children.join('');
const price = (symbol, p, seq) => ({ symbol, price: p, seq, received_at: 0 });

test('hooks share one connection and follow what mounted components ask for', async () => {
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = FakeSocket;
  FakeSocket.made = [];
  configureFeed({ url: 'http://127.0.0.1:9', transport: 'websocket' });
  let a;
  let b;
  try {
    await act(async () => {
      a = TestRenderer.create(h(Prices, { symbols: ['btc-usdt'] }));
      b = TestRenderer.create(h(Events, { channel: 'events:signals' }));
    });
    assert.equal(FakeSocket.made.length, 1, 'one connection for the page');
    const s = FakeSocket.made[0];
    await act(async () => s.onopen());
    const subs = s.sent.filter((m) => m.action === 'subscribe');
    assert.deepEqual(subs, [
      { action: 'subscribe', symbols: ['BTCUSDT'] },
      { action: 'subscribe', channels: ['events:signals'] },
    ]);
    await act(async () => {
      s.frame({ type: 'prices', prices: [price('BTCUSDT', '101.50', 7)] });
      s.frame({ type: 'event', channel: 'events:signals', offset: 1, epoch: 'e', event: 'x', data: {} });
      s.frame({ type: 'event', channel: 'events:signals', offset: 2, epoch: 'e', event: 'x', data: {} });
    });
    assert.equal(text(a), 'BTCUSDT=101.50');
    assert.equal(text(b), '1,2');
    await act(async () => a.update(h(Prices, { symbols: ['ETHUSDT'] })));
    const after = s.sent.slice(-2);
    assert.deepEqual(after, [
      { action: 'unsubscribe', symbols: ['BTCUSDT'] },
      { action: 'subscribe', symbols: ['ETHUSDT'] },
    ], 'React cleans the old effect up first');
    await act(async () => s.frame({ type: 'prices', prices: [price('ETHUSDT', '2000.10', 8)] }));
    assert.equal(text(a), 'ETHUSDT=2000.10');
    // A Twelve Data symbol, in its own spelling: followed by its key, shown as it comes.
    await act(async () => a.update(h(Prices, { symbols: ['EUR/USD'] })));
    assert.deepEqual(s.sent.slice(-1), [{ action: 'subscribe', symbols: ['EURUSD'] }]);
    await act(async () => s.frame({ type: 'prices', prices: [price('EUR/USD', '1.08520', 9)] }));
    assert.equal(text(a), 'EUR/USD=1.08520');
    await act(async () => s.frame({ type: 'subscribed', channels: ['events:signals'], recovered: false }));
    assert.equal(text(b), '1,2 lost');
    await act(async () => a.unmount());
    assert.equal(s.closed, false, 'another hook still uses it');
    await act(async () => b.unmount());
    assert.equal(s.closed, true, 'no socket left open after the last unmount');
    assert.equal(FakeSocket.made.filter((x) => !x.closed).length, 0);
  } finally {
    // A failed assertion must not leave the feed's timers running.
    await act(async () => {
      for (const r of [a, b]) {
        try {
          r?.unmount();
        } catch {
          // already unmounted
        }
      }
    });
    globalThis.WebSocket = saved;
  }
});

function Candles({ symbol }) {
  const { candles, loading, error } = useCandles(symbol, '1m');
  return h('p', null, error ?? `${loading ? 'loading ' : ''}${candles.map((c) => `${c.t / 60_000}:${c.c}`).join(',')}`);
}

test('useCandles shows the history, then the live candles after it', async () => {
  const saved = { ws: globalThis.WebSocket, fetch: globalThis.fetch };
  globalThis.WebSocket = FakeSocket;
  FakeSocket.made = [];
  /** @type {(v: Response) => void} */
  let answer = () => {};
  const asked = [];
  globalThis.fetch = (url) => {
    asked.push(String(url));
    return new Promise((resolve) => { answer = resolve; });
  };
  configureFeed({ url: 'http://127.0.0.1:9', transport: 'websocket' });
  const candle = (m, c, closed = true) => ({ t: m * 60_000, o: '1', h: '2', l: '0.5', c, v: '3', closed });
  let r;
  try {
    await act(async () => { r = TestRenderer.create(h(Candles, { symbol: 'btc-usdt' })); });
    const s = FakeSocket.made[0];
    await act(async () => s.onopen());
    assert.deepEqual(s.sent.filter((m) => m.action === 'subscribe'), [
      { action: 'subscribe', channels: ['candles:BTCUSDT:1m'] },
    ], 'the channel first');
    assert.deepEqual(asked, ['http://127.0.0.1:9/api/candles?symbol=btc-usdt&interval=1m']);
    await act(async () => s.frame({ type: 'candle', channel: 'candles:BTCUSDT:1m', candle: candle(10, 'open', false) }));
    assert.equal(text(r), 'loading 10:open');
    const history = { symbol: 'BTCUSDT', interval: '1m', candles: [candle(8, 'a'), candle(9, 'b')] };
    await act(async () => answer(new Response(JSON.stringify(history))));
    assert.equal(text(r), '8:a,9:b,10:open');
    await act(async () => s.frame({ type: 'candle', channel: 'candles:BTCUSDT:1m', candle: candle(10, 'closed') }));
    assert.equal(text(r), '8:a,9:b,10:closed');
    await act(async () => r.unmount());
    assert.equal(s.closed, true);
  } finally {
    globalThis.WebSocket = saved.ws;
    globalThis.fetch = saved.fetch;
  }
});
