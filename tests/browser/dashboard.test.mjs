// The dashboard, edgetick.js and the stock socket.io-client bundle in real headless Chromium
// (Debian's chromium, driven by playwright-core; no browser is downloaded). Run by the
// end-to-end suite, which starts the fake exchange and the service and passes EDGETICK_URL
// and EXCHANGE_URL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { launch, load } from './pages.mjs';

const base = process.env.EDGETICK_URL;
const exchange = process.env.EXCHANGE_URL;
const artifacts = new URL('../../test-artifacts/', import.meta.url).pathname;
let browser;

before(async () => {
  assert.ok(base && exchange, 'EDGETICK_URL and EXCHANGE_URL must be set (run through make test)');
  mkdirSync(artifacts, { recursive: true });
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

async function control(action) {
  const res = await fetch(`${exchange}/control/${action}`, { method: 'POST' });
  assert.equal(res.status, 200, action);
}

async function latest(symbol) {
  const s = await (await fetch(`${exchange}/control/state`)).json();
  return s.prices[symbol]?.price;
}

async function openPage(query, init) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const external = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(base)) external.push(r.url());
  });
  if (init) await page.addInitScript(init);
  await load(page, `${base}/${query}`);
  return { page, external };
}

const status = (page) => page.locator('#status').textContent();
const updates = async (page) => Number(await page.locator('#updates').textContent());

test('the dashboard shows the exchange prices and the counter grows', async () => {
  await control('pause?on=0');
  const { page, external } = await openPage('?symbols=BTCUSDT,ETHUSDT,SOLUSDT');
  await page.waitForFunction(() => document.querySelector('#status').textContent === 'connected', null, { timeout: 10_000 });
  const first = await (async () => {
    await page.waitForFunction(() => Number(document.querySelector('#updates').textContent) > 0, null, { timeout: 10_000 });
    return updates(page);
  })();
  await page.waitForFunction((n) => Number(document.querySelector('#updates').textContent) > n + 5, first, { timeout: 10_000 });
  // With the exchange paused, the grid converges on its latest BTCUSDT price.
  await control('pause?on=1');
  await control('tick?symbol=BTCUSDT');
  const want = await latest('BTCUSDT');
  await page.waitForFunction(
    (w) => document.querySelector('tr[data-symbol="BTCUSDT"] td:nth-child(2)')?.dataset.raw === w,
    want,
    { timeout: 10_000 },
  );
  // Shown as people read it: separators, trailing zeros trimmed (never through a float).
  const shownText = await page.locator('tr[data-symbol="BTCUSDT"] td:nth-child(2)').textContent();
  const [whole, frac = ''] = want.split('.');
  const digits = frac.replace(/0+$/, '').padEnd(2, '0');
  assert.equal(shownText, `${Number(whole).toLocaleString('en-US')}.${digits}`);
  assert.ok((await page.locator('#rows td.spark svg').count()) >= 1, 'a sparkline per row');
  assert.equal(await page.locator('#via').textContent(), 'websocket');
  assert.ok((await page.locator('#heat div').count()) >= 1, 'heat map tiles');
  assert.match(await page.locator('#lag').textContent(), /^\d+ ms$/);
  await control('pause?on=0');
  await page.screenshot({ path: `${artifacts}dashboard.png`, fullPage: true });
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await load(phone, `${base}/?symbols=BTCUSDT,ETHUSDT`);
  await phone.waitForFunction(() => document.querySelectorAll('#rows tr[data-symbol]').length === 2, null, { timeout: 10_000 });
  await phone.waitForFunction(() => document.querySelector('#status').textContent === 'connected', null, { timeout: 10_000 });
  await phone.waitForFunction(() => Number(document.querySelector('#updates').textContent) > 2, null, { timeout: 10_000 });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling at phone width (${overflow}px)`);
  await phone.screenshot({ path: `${artifacts}dashboard-phone.png`, fullPage: true });
  assert.deepEqual(external, [], 'no external network requests');
  await phone.close();
  await page.close();
});

test('the exchange going away turns the feed degraded and rows stale; its return restores them', async () => {
  await control('pause?on=0');
  const { page } = await openPage('?symbols=BTCUSDT,ETHUSDT&stale=2000');
  await page.waitForFunction(() => document.querySelector('#status').textContent === 'connected', null, { timeout: 10_000 });
  // The exchange goes silent, drops its connections and refuses the next two attempts
  // (three failures: under the breaker's five, so it comes back within seconds).
  await control('pause?on=1');
  await control('refuse?status=503&count=2');
  await control('drop');
  await page.waitForFunction(() => document.querySelector('#status').textContent === 'degraded', null, { timeout: 10_000 });
  await page.waitForFunction(() => document.querySelectorAll('#rows tr.stale').length === 2, null, { timeout: 10_000 });
  await control('pause?on=0');
  await page.waitForFunction(() => document.querySelector('#status').textContent === 'connected', null, { timeout: 30_000 });
  await page.waitForFunction(() => document.querySelectorAll('#rows tr.stale').length === 0, null, { timeout: 10_000 });
  const log = await page.locator('#log').textContent();
  assert.match(log, /feed degraded/);
  await page.close();
});

test('transport sse works on its own', async () => {
  await control('pause?on=0');
  const { page } = await openPage('?symbols=ETHUSDT&transport=sse');
  await page.waitForFunction(() => document.querySelector('#status').textContent === 'connected', null, { timeout: 10_000 });
  assert.equal(await page.locator('#via').textContent(), 'sse');
  // The chart starts full over SSE too: the history, then the channel's open candle after it.
  await chartIsFull(page);
  const n = await (async () => {
    await page.waitForFunction(() => Number(document.querySelector('#updates').textContent) > 0, null, { timeout: 10_000 });
    return updates(page);
  })();
  await page.waitForFunction((k) => Number(document.querySelector('#updates').textContent) > k, n, { timeout: 10_000 });
  await page.close();
});

test('a WebSocket that cannot connect falls back to SSE', async () => {
  await control('pause?on=0');
  // Every WebSocket this page opens fails at once.
  const breakWebSocket = () => {
    window.WebSocket = class {
      constructor() {
        throw new Error('WebSocket blocked by the test');
      }
    };
  };
  const { page } = await openPage('?symbols=BTCUSDT', breakWebSocket);
  await page.waitForFunction(() => document.querySelector('#via').textContent === 'sse', null, { timeout: 15_000 });
  await page.waitForFunction(() => document.querySelector('#status').textContent === 'connected', null, { timeout: 10_000 });
  await page.waitForFunction(() => Number(document.querySelector('#updates').textContent) > 0, null, { timeout: 10_000 });
  await page.waitForFunction(() => window.edgetickChart.bars.size >= 1, null, { timeout: 15_000 });
  await page.close();
});

/**
 * Waits for the chart to hold the service's history (500 closed candles, one a minute, no gap)
 * and the channel's open candle after it; returns how long after the page started it drew it.
 */
async function chartIsFull(page) {
  await page.waitForFunction(
    () => window.edgetickChart.filledAtMs !== null && window.edgetickChart.bars.size > 500,
    null,
    { timeout: 15_000 },
  );
  const times = await page.evaluate(() => [...window.edgetickChart.bars.keys()]);
  const history = times.slice(0, 500);
  const steps = new Set(history.slice(1).map((t, i) => t - history[i]));
  assert.deepEqual([...steps], [60], 'the history: one bar a minute, oldest first, no gap');
  assert.ok(times.at(-1) > history.at(-1), 'the live candle after it');
  return page.evaluate(() => window.edgetickChart.filledAtMs);
}

test('the chart starts full from the history and moves with live prices', async (t) => {
  await control('pause?on=0');
  const { page, external } = await openPage('?symbols=BTCUSDT,ETHUSDT');
  await page.waitForFunction(() => document.querySelector('#status').textContent === 'connected', null, { timeout: 10_000 });
  assert.match(await page.locator('#chart-title').textContent(), /^BTCUSDT · 1m candles$/);
  const filled = await chartIsFull(page);
  t.diagnostic(`500 candles drawn ${Math.round(filled)} ms after the page started`);
  const before = await page.evaluate(() => window.edgetickChart.bars.size);
  await control('candle-close?symbol=BTCUSDT');
  await page.waitForFunction((n) => window.edgetickChart.bars.size === n + 1, before, { timeout: 15_000 });
  assert.ok((await page.locator('#chart canvas').count()) >= 1, 'lightweight-charts drew on a canvas');
  // With the exchange paused, one more tick: the open candle's close is the exchange's price.
  await control('pause?on=1');
  await control('tick?symbol=BTCUSDT');
  const want = Number(await latest('BTCUSDT'));
  await page.waitForFunction(
    (w) => [...window.edgetickChart.bars.values()].pop()?.close === w,
    want,
    { timeout: 10_000 },
  );
  await control('pause?on=0');
  // The liquidation heat map of the charted symbol: a map at once, then, with open interest
  // rising, positions placed on it.
  await control('open-interest?symbol=BTCUSDT&value=10000');
  const liq = () => window.edgetickLiquidations.last;
  await page.waitForFunction(() => document.querySelectorAll('#liq .liq-row').length === 41, null, { timeout: 15_000 });
  assert.match(await page.locator('#liq-title').textContent(), /^Liquidation heat map · BTCUSDT$/);
  await control('open-interest?symbol=BTCUSDT&value=10500');
  await page.waitForFunction(
    () => window.edgetickLiquidations.last?.data.positions_created !== '0',
    null,
    { timeout: 20_000 },
  );
  const map = await page.evaluate(liq);
  assert.ok(map.data.levels.some((l) => l.long_density > 0 || l.short_density > 0), 'densities drawn');
  assert.equal(await page.locator('#liq .liq-row.here').count(), 1, 'the current price marked');
  await control('open-interest?symbol=BTCUSDT');
  // Screenshots once the grid has prices too (a symbol quiet for a while has none cached).
  const priced = () => Number(document.querySelector('#updates').textContent) > 0;
  await page.waitForFunction(priced, null, { timeout: 10_000 });
  await page.screenshot({ path: `${artifacts}dashboard-chart.png`, fullPage: true });
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await load(phone, `${base}/?symbols=BTCUSDT`);
  await phone.waitForFunction(() => window.edgetickChart?.bars.size >= 1, null, { timeout: 15_000 });
  await phone.waitForFunction(priced, null, { timeout: 10_000 });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling at phone width with the chart (${overflow}px)`);
  await phone.screenshot({ path: `${artifacts}dashboard-chart-phone.png`, fullPage: true });
  assert.deepEqual(external, [], 'no external network requests');
  await phone.close();
  await page.close();
});

// The seeds' front ends load socket.io-client's own browser bundle with its default options:
// long-polling first (XHR), then the upgrade to a WebSocket.
test('the stock socket.io-client browser bundle joins /prices and gets its room', async () => {
  await control('pause?on=1');
  await control('tick?symbol=ETHUSDT');
  const want = await latest('ETHUSDT');
  const page = await browser.newPage();
  await page.goto(`${base}/health`);
  const bundle = new URL('../../node_modules/socket.io-client/dist/socket.io.min.js', import.meta.url);
  await page.addScriptTag({ path: bundle.pathname });
  const got = await page.evaluate((origin) => new Promise((resolve, reject) => {
    const seen = [];
    const socket = window.io(`${origin}/prices`);
    const transports = [];
    socket.io.on('open', () => {
      transports.push(socket.io.engine.transport.name);
      socket.io.engine.on('upgrade', (t) => transports.push(t.name));
    });
    socket.on('connect', () => socket.emit('subscribe', { symbol: 'ETHUSDT' }, (ack) => seen.push({ ack })));
    socket.on('priceUpdate', (update) => {
      seen.push({ update });
      // The upgrade follows the first poll; the price may come before it or after.
      const done = () => { socket.close(); resolve({ seen, transports }); };
      if (transports.includes('websocket')) done();
      else socket.io.engine.on('upgrade', done);
    });
    socket.on('connect_error', (e) => reject(new Error(`connect_error: ${e.message}`)));
    setTimeout(() => reject(new Error(`no priceUpdate in 10 s: ${JSON.stringify(seen)}`)), 10_000);
  }), base);
  assert.deepEqual(got.transports, ['polling', 'websocket'], 'polling first, then upgraded');
  const update = got.seen.find((s) => s.update)?.update;
  assert.equal(update.symbol, 'ETHUSDT');
  assert.equal(update.price, want, 'the current price at once, as the exact decimal text');
  assert.ok(update.ts > 0);
  await control('pause?on=0');
  await page.close();
});
