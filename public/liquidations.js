// The dashboard's liquidation heat map of the charted symbol (its `heatmap:` channel): one row
// per price level, longs that would be liquidated there to the left, shorts to the right, the
// level of the current price marked, and the positions created and consumed in the window.

/** @typedef {import('/edgetick.js').MarketFrame} MarketFrame */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** The panel `#liq` with its title `#liq-title` and totals `#liq-totals`. */
export class LiquidationMap {
  symbol = '';
  /** The last frame shown, for the tests. @type {any} */
  last = null;

  /**
   * Follows `symbol`'s heat map instead of the one before.
   * @param {import('/edgetick.js').PriceFeed} feed @param {string} symbol
   */
  show(feed, symbol) {
    if (symbol === this.symbol) return;
    if (this.symbol) feed.unsubscribeChannels([`heatmap:${this.symbol}`]);
    this.symbol = symbol;
    this.last = null;
    $('liq-title').textContent = `Liquidation heat map · ${symbol}`;
    $('liq').replaceChildren();
    $('liq-totals').textContent = 'waiting for the first map…';
    feed.subscribeChannels([`heatmap:${symbol}`]);
  }

  /** A frame from the feed: drawn when it is this symbol's map. @param {any} f */
  frame(f) {
    if (f.type !== 'heatmap' || f.channel !== `heatmap:${this.symbol}`) return;
    this.last = f;
    const current = Number(f.data.current_price);
    const levels = [...f.data.levels].reverse();
    // The level nearest the current price is marked.
    let nearest = 0;
    levels.forEach((l, i) => {
      if (Math.abs(Number(l.price) - current) < Math.abs(Number(levels[nearest].price) - current)) nearest = i;
    });
    $('liq').replaceChildren(...levels.map((l, i) => row(l, i === nearest)));
    $('liq-totals').textContent =
      `created ${f.data.positions_created} · consumed ${f.data.positions_consumed} contracts (15 min) · ${f.timestamp.slice(11, 19)} UTC`;
  }
}

/** @param {{price: string, long_density: number, short_density: number}} l @param {boolean} here */
function row(l, here) {
  const div = document.createElement('div');
  div.className = here ? 'liq-row here' : 'liq-row';
  const bar = (/** @type {string} */ cls, /** @type {number} */ d) => {
    const span = document.createElement('span');
    span.className = cls;
    span.style.setProperty('--d', String(d));
    return span;
  };
  const price = document.createElement('b');
  price.textContent = l.price;
  div.append(bar('liq-long', l.long_density), price, bar('liq-short', l.short_density));
  div.title = `${l.price}: longs ${l.long_density}, shorts ${l.short_density}`;
  return div;
}
