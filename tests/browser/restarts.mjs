// The dashboard through a stop and restart of the exchange and then of the service, step by
// step with the end-to-end harness (which owns both processes): it prints `step: ...` lines
// and waits for `go` on stdin before each next step.
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { launch, load } from './pages.mjs';

const base = process.env.EDGETICK_URL;
const lines = createInterface({ input: process.stdin });
const next = () => new Promise((resolve) => lines.once('line', resolve));
const step = (s) => console.log(`step: ${s}`);

const browser = await launch();
try {
  const page = await browser.newPage();
  let polls = 0;
  page.on('request', (r) => {
    if (r.url().includes('/api/prices?symbols=')) polls += 1;
  });
  await load(page, `${base}/?symbols=BTCUSDT,ETHUSDT&stale=2000`);
  const waitStatus = (s, timeout = 20_000) =>
    page.waitForFunction((w) => document.querySelector('#status').textContent === w, s, { timeout });
  await waitStatus('connected');
  await page.waitForFunction(() => Number(document.querySelector('#updates').textContent) > 0, null, { timeout: 10_000 });
  step('connected; stop the exchange');
  await next();
  await waitStatus('degraded');
  await page.waitForFunction(() => document.querySelectorAll('#rows tr.stale').length === 2, null, { timeout: 10_000 });
  step('degraded, rows stale; start the exchange');
  await next();
  // 90 s: a breaker opened by an unlucky run of quick retries half-opens after 60 s.
  await waitStatus('connected', 90_000);
  await page.waitForFunction(() => document.querySelectorAll('#rows tr.stale').length === 0, null, { timeout: 10_000 });
  step('connected and fresh again; stop the service');
  await next();
  await waitStatus('disconnected');
  const before = polls;
  const deadline = Date.now() + 15_000;
  while (polls === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.ok(polls > before, 'REST polling is attempted while the service is down');
  step(`disconnected, ${polls - before} REST polls attempted; start the service`);
  await next();
  await waitStatus('connected', 60_000);
  const n = Number(await page.locator('#updates').textContent());
  await page.waitForFunction((k) => Number(document.querySelector('#updates').textContent) > k + 2, n, { timeout: 15_000 });
  const rows = await page.locator('#rows tr[data-symbol]:not(.stale)').count();
  assert.equal(rows, 2, 'both symbols fresh again, without a reload');
  step(`reconnected via ${await page.locator('#via').textContent()}; prices resumed`);
} finally {
  await browser.close();
}
process.exit(0);
