// The dashboard with two sources in real headless Chromium: rows grouped by source and asset
// class, a currency pair and a stock written to their own precision, the feed holding Twelve
// Data's symbols under their keys. Run by the end-to-end suite with a service following
// Binance and Twelve Data (EDGETICK_URL).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { launch, load } from './pages.mjs';

const base = process.env.EDGETICK_URL;
const artifacts = new URL('../../test-artifacts/', import.meta.url).pathname;
let browser;

before(async () => {
  assert.ok(base, 'EDGETICK_URL must be set (run through make test)');
  mkdirSync(artifacts, { recursive: true });
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('rows are grouped by source and asset class, each written to its precision', async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await load(page, `${base}/?events=none`);
  const priced = (s) => `tr[data-symbol="${s}"] td:nth-child(2)`;
  for (const s of ['BTCUSDT', 'EUR/USD', 'AAPL']) {
    await page.waitForFunction((sel) => (document.querySelector(sel)?.dataset.raw ?? '') !== '', priced(s), { timeout: 15_000 });
  }
  const groups = await page.locator('#rows tr.group').allTextContents();
  assert.deepEqual(groups.map((g) => g.toLowerCase()), ['binance · crypto', 'twelve data · forex', 'twelve data · stocks']);
  const pair = await page.locator(priced('EUR/USD')).textContent();
  assert.match(pair, /^\d+\.\d{4,}$/, `a currency pair to at least 4 decimals: ${pair}`);
  const stock = await page.locator(priced('AAPL')).textContent();
  assert.match(stock, /^[\d,]+\.\d{2}$/, `a stock to cents: ${stock}`);
  const keys = await page.evaluate(() => [...window.edgetickFeed.prices.keys()].sort());
  assert.ok(keys.includes('EURUSD') && keys.includes('AAPL'), `held by key: ${keys}`);
  await page.screenshot({ path: `${artifacts}dashboard-sources.png`, fullPage: true });
  await page.close();
});
