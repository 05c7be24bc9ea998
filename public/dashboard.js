// The dashboard at /: everything it shows comes through edgetick.js.
// URL parameters: symbols=BTCUSDT,ETHUSDT (default: every symbol the service has),
// transport=auto|websocket|sse, stale=<ms> (default 30000), token=<AUTH_TOKEN>.
import { PriceFeed } from '/edgetick.js';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const staleAfterMs = Number(params.get('stale') ?? 30_000);
let updates = 0;
let lagSum = 0;
let lagCount = 0;

function log(text) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('log').prepend(li);
  while ($('log').children.length > 100) $('log').lastElementChild.remove();
}

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  if (cls) td.className = cls;
  return td;
}

function trend(p) {
  const c = Number(p.change_pct);
  return Number.isFinite(c) ? (c > 0 ? 'up' : c < 0 ? 'down' : '') : '';
}

/** The symbols the table shows (the checkboxes). */
const shown = new Set();

/** @param {import('/edgetick.js').PriceFeed} feed */
function render(feed) {
  const now = Date.now();
  const rows = [];
  for (const symbol of [...shown].sort()) {
    const p = feed.prices.get(symbol);
    const tr = document.createElement('tr');
    tr.dataset.symbol = symbol;
    const age = p ? Math.max(0, now - (feed.receivedAt.get(symbol) ?? now)) : null;
    if (!p || age >= staleAfterMs) tr.classList.add('stale');
    tr.append(
      cell(symbol),
      cell(p?.price),
      cell(p?.change_pct !== undefined ? `${p.change_pct}%` : '', p ? trend(p) : ''),
      cell(p?.bid),
      cell(p?.ask),
      cell(age === null ? '–' : `${(age / 1000).toFixed(1)} s`),
    );
    rows.push(tr);
  }
  $('rows').replaceChildren(...rows);
  const tiles = [...feed.prices.values()]
    .sort((a, b) => a.symbol.localeCompare(b.symbol))
    .map((p) => {
      const d = document.createElement('div');
      const c = Math.max(-5, Math.min(5, Number(p.change_pct) || 0));
      d.style.background = c >= 0 ? `rgba(10,125,50,${0.35 + c / 8})` : `rgba(179,38,30,${0.35 - c / 8})`;
      d.textContent = `${p.symbol.replace(/USDT$/, '')} ${p.change_pct ?? '–'}%`;
      return d;
    });
  $('heat').replaceChildren(...tiles);
  $('updates').textContent = String(updates);
  $('lag').textContent = lagCount ? `${Math.round(lagSum / lagCount)} ms` : '–';
  $('via').textContent = feed.via ?? '–';
  $('upstream').textContent = feed.upstream;
}

async function start() {
  let symbols = params.get('symbols')?.split(',').filter(Boolean);
  let all = symbols ?? [];
  try {
    const body = await (await fetch('/api/prices')).json();
    all = body.prices.map((p) => p.symbol);
  } catch (e) {
    log('could not list symbols; using the URL');
  }
  symbols ??= all;
  const feed = new PriceFeed({
    symbols,
    transport: /** @type {import('/edgetick.js').Transport} */ (params.get('transport') ?? 'auto'),
    token: params.get('token') ?? undefined,
    staleAfterMs,
  });
  symbols.forEach((s) => shown.add(s));
  // For the browser tests and for poking at the feed from the console.
  /** @type {any} */ (window).edgetickFeed = feed;
  feed.on('price', (p) => {
    updates += 1;
    if (p.event_time) {
      lagSum += Math.max(0, Date.now() - p.event_time);
      lagCount += 1;
    }
  });
  feed.on('status', (s) => {
    $('status').textContent = s;
    $('status').dataset.status = s;
    log(`feed ${s}${feed.via ? ` (${feed.via})` : ''}`);
  });
  feed.on('error', (e) => log(`${e.code}: ${e.message}`));
  for (const s of [...new Set([...all, ...symbols])].sort()) {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = symbols.includes(s);
    box.dataset.symbol = s;
    box.addEventListener('change', () => {
      if (box.checked) {
        shown.add(s);
        feed.subscribe([s]);
        log(`subscribed ${s}`);
      } else {
        shown.delete(s);
        feed.unsubscribe([s]);
        log(`unsubscribed ${s}`);
      }
      render(feed);
    });
    label.append(box, ` ${s}`);
    $('picker').append(label);
  }
  render(feed);
  setInterval(() => render(feed), 500);
}

start();
