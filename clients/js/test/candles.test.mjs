// A chart's candles: the service's history and the channel's live candles merged one per open
// time (whichever arrives first), and the history's request and refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CandleBars, fetchCandles } from '../edgetick.js';

const MIN = 60_000;
const candle = (m, c, closed = true) => ({ t: m * MIN, o: '1', h: '2', l: '0.5', c, v: '3', closed });

test('history and live candles merge one per open time, the live one kept', () => {
  const bars = new CandleBars();
  // The channel spoke first: the open candle of minute 10, then the close of minute 9.
  assert.equal(bars.apply(candle(10, 'live', false)), true);
  assert.equal(bars.apply(candle(9, 'live-close')), false, 'went in before the newest');
  bars.setHistory([7, 8, 9].map((m) => candle(m, 'history')));
  assert.deepEqual(bars.list().map((c) => [c.t / MIN, c.c]), [
    [7, 'history'], [8, 'history'], [9, 'live-close'], [10, 'live'],
  ]);
  assert.equal(bars.apply(candle(10, 'moved', false)), true, 'the open candle moves');
  assert.equal(bars.apply(candle(11, 'next', false)), true);
  assert.equal(bars.size, 5);
  assert.equal(bars.newest()?.c, 'next');
  bars.clear();
  assert.equal(bars.size, 0);
});

test('the history is asked for by symbol, interval and limit; a refusal rejects with its message', async () => {
  const saved = globalThis.fetch;
  const asked = [];
  globalThis.fetch = async (url) => {
    asked.push(String(url));
    if (String(url).includes('NOPE')) {
      return new Response(JSON.stringify({ error: 'UNKNOWN_SYMBOL', message: '"NOPE" is not served' }), { status: 404 });
    }
    return new Response(JSON.stringify({ symbol: 'BTCUSDT', interval: '5m', candles: [candle(5, '1.5')] }));
  };
  try {
    const got = await fetchCandles({ symbol: 'btc-usdt', interval: '5m', limit: 200, url: 'http://svc.test/' });
    assert.deepEqual(asked, ['http://svc.test/api/candles?symbol=btc-usdt&interval=5m&limit=200']);
    assert.deepEqual(got, [candle(5, '1.5')]);
    await assert.rejects(fetchCandles({ symbol: 'NOPE', url: 'http://svc.test' }), /"NOPE" is not served/);
  } finally {
    globalThis.fetch = saved;
  }
});
