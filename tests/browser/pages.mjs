// What the browser tests share: headless Chromium (Debian's, driven by playwright-core) and a
// page load that survives a stuck static file of the local dev server.
import { chromium } from 'playwright-core';

/** Debian's Chromium, headless, with nothing of its own on the network. */
export function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
  });
}

/**
 * Navigates `page` to `url` and waits for its load. wrangler dev's local asset server has been
 * seen to leave one static file unanswered (`GET /vendor/lightweight-charts.js` for 30 s, while
 * every other request of the page took milliseconds), so a load that has not finished in 15 s
 * is made once more, and said on stderr. What a test checks starts after the page loaded.
 */
export async function load(page, url) {
  try {
    await page.goto(url, { timeout: 15_000 });
  } catch (e) {
    if (e?.name !== 'TimeoutError') throw e;
    console.error(`the load of ${url} did not finish in 15 s: loading it again`);
    await page.goto(url, { timeout: 30_000 });
  }
}
