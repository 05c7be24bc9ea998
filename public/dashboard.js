// The dashboard at /: everything it shows comes through edgetick.js.
// URL parameters: symbols=BTCUSDT,ETHUSDT (default: every symbol the service has),
// transport=auto|websocket|sse, stale=<ms> (default 30000), token=<AUTH_TOKEN or a JWT>,
// events=<event channel> (default events:signals; none to hide), interval=1m|5m|... (chart).
import { PriceFeed, canonicalSymbol } from '/edgetick.js';
import { formatPrice, formatChange, sparkPoints, digitsOf, groupOf } from '/format.js';
import { CandleChart } from '/chart.js';
import { LiquidationMap } from '/liquidations.js';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const staleAfterMs = Number(params.get('stale') ?? 30_000);
const eventChannel = params.get('events') ?? 'events:signals';
const interval = params.get('interval') ?? '1m';
let updates = 0;
let lagSum = 0;
let lagCount = 0;
/** Recent prices per symbol (for the sparklines) and the last one each row showed. */
const history = new Map();
const shownPrice = new Map();

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

function sparkline(symbol) {
  const td = document.createElement('td');
  td.className = 'spark';
  const points = sparkPoints(history.get(symbol) ?? []);
  if (points) td.innerHTML = `<svg width="64" height="18" viewBox="0 0 64 18" aria-hidden="true"><polyline points="${points}"/></svg>`;
  return td;
}

/** The symbols the table shows (the checkboxes). */
const shown = new Set();
/** What each symbol is (its source and asset type), from the first price seen of it. */
const meta = new Map();

/** The feed holds prices by each symbol's key (`EUR/USD` under `EURUSD`). */
const keyOf = (symbol) => canonicalSymbol(symbol) ?? symbol;
const held = (feed, symbol) => feed.prices.get(keyOf(symbol));

/** The price cell: formatted, the exact decimal string kept, a flash when it moved. */
function priceCell(symbol, p) {
  const td = cell(formatPrice(p?.price, digitsOf(meta.get(symbol))));
  td.dataset.raw = p?.price ?? '';
  const before = shownPrice.get(symbol);
  if (p?.price && before && before !== p.price) td.classList.add(Number(p.price) > Number(before) ? 'flash-up' : 'flash-down');
  if (p?.price) shownPrice.set(symbol, p.price);
  return td;
}

/** @param {import('/edgetick.js').PriceFeed} feed */
function render(feed) {
  const now = Date.now();
  const rows = [];
  // Grouped by source and asset class (Binance first), each group sorted.
  const order = (s) => `${groupOf(meta.get(s)) === 'Binance · crypto' ? 0 : 1}${groupOf(meta.get(s))}\u0000${s}`;
  let group = '';
  for (const symbol of [...shown].sort((a, b) => order(a).localeCompare(order(b)))) {
    const p = held(feed, symbol);
    if (groupOf(meta.get(symbol)) !== group) {
      group = groupOf(meta.get(symbol));
      const head = document.createElement('tr');
      head.className = 'group';
      const th = document.createElement('th');
      th.colSpan = 7;
      th.textContent = group;
      head.append(th);
      rows.push(head);
    }
    const tr = document.createElement('tr');
    tr.dataset.symbol = symbol;
    if (symbol === chart.symbol) tr.classList.add('selected');
    const age = p ? Math.max(0, now - (feed.receivedAt.get(keyOf(symbol)) ?? now)) : null;
    if (!p || age >= staleAfterMs) tr.classList.add('stale');
    tr.append(
      cell(symbol),
      priceCell(symbol, p),
      cell(p ? formatChange(p.change_pct) : '', p ? trend(p) : ''),
      sparkline(symbol),
      cell(p?.bid && formatPrice(p.bid, digitsOf(p))),
      cell(p?.ask && formatPrice(p.ask, digitsOf(p))),
      cell(age === null ? '–' : `${(age / 1000).toFixed(1)} s`),
    );
    tr.addEventListener('click', () => chartSymbol(feed, symbol));
    rows.push(tr);
  }
  $('rows').replaceChildren(...rows);
  const tiles = [...feed.prices.values()]
    .sort((a, b) => a.symbol.localeCompare(b.symbol))
    .map((p) => {
      const d = document.createElement('div');
      const c = Math.max(-5, Math.min(5, Number(p.change_pct) || 0));
      d.style.background = c >= 0 ? `rgba(10,125,50,${0.35 + c / 8})` : `rgba(179,38,30,${0.35 - c / 8})`;
      d.textContent = `${p.symbol.replace(/USDT$/, '')} ${p.change_pct === undefined ? '' : formatChange(p.change_pct)}`;
      return d;
    });
  $('heat').replaceChildren(...tiles);
  $('updates').textContent = String(updates);
  $('lag').textContent = lagCount ? `${Math.round(lagSum / lagCount)} ms` : '–';
  $('via').textContent = feed.via ?? '–';
  $('upstream').textContent = feed.upstream;
}

/** The chart of the selected symbol: its history, its live candles and the live price. */
const chart = new CandleChart({ interval, log });
/** The liquidation heat map of the charted symbol. */
const liquidations = new LiquidationMap();

/** Charts `symbol` unless its source has no candles (Twelve Data streams prices only). */
function chartSymbol(feed, symbol) {
  if (meta.get(symbol)?.source === 'twelvedata') {
    log(`no candle chart for ${symbol}: Twelve Data streams prices only`);
    return;
  }
  chart.show(feed, symbol);
  liquidations.show(feed, symbol);
}

function showEvent(e) {
  const li = document.createElement('li');
  li.dataset.offset = String(e.offset);
  li.textContent = `#${e.offset} ${e.event} ${JSON.stringify(e.data)}`;
  $('events').prepend(li);
  while ($('events').children.length > 50) $('events').lastElementChild.remove();
}

/**
 * The symbol picker: a checkbox per symbol, checked for the ones followed.
 * @param {import('/edgetick.js').PriceFeed} feed
 * @param {string[]} all
 * @param {string[]} followed
 */
function picker(feed, all, followed) {
  for (const s of all) {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = followed.includes(s);
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
}

async function start() {
  let symbols = params.get('symbols')?.split(',').filter(Boolean);
  let all = symbols ?? [];
  try {
    const body = await (await fetch('/api/prices')).json();
    all = body.prices.map((p) => p.symbol);
    for (const p of body.prices) meta.set(p.symbol, { source: p.source, asset_type: p.asset_type });
  } catch (e) {
    log('could not list symbols; using the URL');
  }
  symbols ??= all;
  const feed = new PriceFeed({
    symbols,
    channels: eventChannel === 'none' ? [] : [eventChannel],
    transport: /** @type {import('/edgetick.js').Transport} */ (params.get('transport') ?? 'auto'),
    token: params.get('token') ?? undefined,
    staleAfterMs,
  });
  $('events-title').textContent = eventChannel === 'none' ? 'Events (none)' : `Events · ${eventChannel}`;
  symbols.forEach((s) => shown.add(s));
  // For the browser tests and for poking at the feed from the console.
  /** @type {any} */ (window).edgetickFeed = feed;
  /** @type {any} */ (window).edgetickChart = chart;
  /** @type {any} */ (window).edgetickLiquidations = liquidations;
  chart.init();
  feed.on('price', (p) => {
    updates += 1;
    if (!meta.has(p.symbol)) meta.set(p.symbol, { source: p.source, asset_type: p.asset_type });
    const h = history.get(p.symbol) ?? [];
    if (p.price) h.push(Number(p.price));
    history.set(p.symbol, h.slice(-60));
    chart.price(p);
    if (p.event_time) {
      lagSum += Math.max(0, Date.now() - p.event_time);
      lagCount += 1;
    }
  });
  feed.on('market', (f) => {
    chart.candle(f);
    liquidations.frame(f);
  });
  feed.on('event', showEvent);
  feed.on('lost', ({ channels }) => log(`missed events on ${channels.join(', ')} (history no longer has them)`));
  feed.on('status', (s) => {
    $('status').textContent = s;
    $('status').dataset.status = s;
    log(`feed ${s}${feed.via ? ` (${feed.via})` : ''}`);
  });
  feed.on('error', (e) => log(`${e.code}: ${e.message}`));
  picker(feed, [...new Set([...all, ...symbols])].sort(), symbols);
  const charted = [...symbols].sort().find((s) => meta.get(s)?.source !== 'twelvedata');
  if (charted) chartSymbol(feed, charted);
  render(feed);
  setInterval(() => render(feed), 500);
}

start();
