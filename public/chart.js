// The dashboard's candle chart: the selected symbol's history (GET /api/candles, through
// edgetick.js's fetchCandles) followed by its live candles (the `candles:` channel) and the
// live price moving the open bar. Drawn with lightweight-charts (public/vendor).
import { CandleBars, fetchCandles } from '/edgetick.js';

/** @typedef {import('/edgetick.js').Candle} Candle */
/** @typedef {{time: number, open: number, high: number, low: number, close: number}} Bar */

/** @param {Candle} c @returns {Bar} */
const toBar = (c) => ({ time: Math.floor(c.t / 1000), open: +c.o, high: +c.h, low: +c.l, close: +c.c });

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** A chart in the element `#chart`, titled in `#chart-title`. */
export class CandleChart {
  symbol = '';
  /** @type {any} */ series = null;
  candles = new CandleBars();
  /** Bars by open time (seconds), oldest first, as drawn. @type {Map<number, Bar>} */
  bars = new Map();
  /** When the history was first drawn (ms since the page started), for the tests. @type {number | null} */
  filledAtMs = null;

  /** @param {{interval: string, log: (text: string) => void}} opts */
  constructor({ interval, log }) {
    this.interval = interval;
    this.log = log;
  }

  init() {
    const lib = /** @type {any} */ (window).LightweightCharts;
    if (!lib) return;
    const css = getComputedStyle(document.documentElement);
    const color = (/** @type {string} */ v) => css.getPropertyValue(v).trim();
    const c = lib.createChart($('chart'), {
      autoSize: true,
      layout: { background: { color: color('--panel') }, textColor: color('--text') },
      grid: { vertLines: { color: color('--line') }, horzLines: { color: color('--line') } },
      timeScale: { timeVisible: true },
    });
    this.series = c.addSeries(lib.CandlestickSeries, {
      upColor: color('--up'), downColor: color('--down'), borderVisible: false,
      wickUpColor: color('--up'), wickDownColor: color('--down'),
    });
  }

  /**
   * Shows `symbol`: its channel first (no close falls between the two), then its history.
   * @param {import('/edgetick.js').PriceFeed} feed @param {string} symbol
   */
  show(feed, symbol) {
    if (symbol === this.symbol) return;
    const channel = (/** @type {string} */ s) => `candles:${s}:${this.interval}`;
    if (this.symbol) feed.unsubscribeChannels([channel(this.symbol)]);
    this.symbol = symbol;
    this.candles.clear();
    this.redraw();
    $('chart-title').textContent = `${symbol} · ${this.interval} candles`;
    feed.subscribeChannels([channel(symbol)]);
    fetchCandles({ symbol, interval: this.interval })
      .then((history) => {
        if (this.symbol !== symbol) return;
        this.candles.setHistory(history);
        this.redraw();
        this.filledAtMs ??= performance.now();
      })
      .catch((/** @type {Error} */ e) => this.log(`no candle history for ${symbol}: ${e.message}`));
  }

  /** Draws every bar again (a history arrived, or a candle went in before the newest). */
  redraw() {
    this.bars = new Map(this.candles.list().map((c) => { const b = toBar(c); return [b.time, b]; }));
    this.series?.setData([...this.bars.values()]);
  }

  /** A candle from the channel: the open bar updated, or a new one. @param {any} f */
  candle(f) {
    if (f.channel !== `candles:${this.symbol}:${this.interval}` || !f.candle) return;
    if (!this.candles.apply(f.candle)) return this.redraw();
    const bar = toBar(f.candle);
    this.bars.set(bar.time, bar);
    this.series?.update(bar);
  }

  /** A live price moves the open bar's close (and its high or low). @param {any} p */
  price(p) {
    if (p.symbol !== this.symbol || !p.price) return;
    const last = [...this.bars.values()].pop();
    if (!last) return;
    const close = Number(p.price);
    const bar = { ...last, close, high: Math.max(last.high, close), low: Math.min(last.low, close) };
    this.bars.set(bar.time, bar);
    this.series?.update(bar);
  }
}
