// How the dashboard writes numbers: Binance's decimal strings as people read them, never
// through a float (a float would turn 0.1 + 0.2 into 0.30000000000000004 and round quotes).

/**
 * A price as written: thousands separators, trailing zeros trimmed but at least `min`
 * decimals (`"89902.98000000"` → `"89,902.98"`, `"0.00001230"` → `"0.0000123"`,
 * `"1.50000000"` → `"1.50"`; a currency pair with `min` 4: `"1.085"` → `"1.0850"`); with
 * `max`, rounded half up to at most that many, on the digits (a stock: `"83.97626"` →
 * `"83.98"`). Anything that is not a decimal string comes back as it was.
 * @param {string | undefined} s
 * @param {{min?: number, max?: number}} [digits]
 * @returns {string}
 */
export function formatPrice(s, { min = 2, max = Infinity } = {}) {
  if (s === undefined) return '–';
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s);
  if (!m) return s;
  let [, sign, whole, frac = ''] = m;
  if (frac.length > max) [whole, frac] = roundHalfUp(whole, frac, max);
  let decimals = frac.replace(/0+$/, '');
  if (decimals.length < min) decimals = decimals.padEnd(min, '0');
  const grouped = whole.replace(/^0+(?=\d)/, '').replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${sign}${grouped}.${decimals}`;
}

/**
 * `whole.frac` rounded half up to `keep` decimals, digit by digit (never through a float).
 * @param {string} whole
 * @param {string} frac
 * @param {number} keep
 * @returns {[string, string]}
 */
function roundHalfUp(whole, frac, keep) {
  const digits = (whole + frac.slice(0, keep)).split('').map(Number);
  let carry = Number(frac[keep]) >= 5 ? 1 : 0;
  for (let i = digits.length - 1; i >= 0 && carry; i -= 1) {
    const d = digits[i] + carry;
    digits[i] = d % 10;
    carry = d >= 10 ? 1 : 0;
  }
  const text = (carry ? '1' : '') + digits.join('');
  const cut = text.length - keep;
  return [text.slice(0, cut), text.slice(cut)];
}

/**
 * How a price of an asset class is written: a currency pair to at least 4 decimals (its
 * pips), a stock or fund to 2 (cents), anything else (crypto) as the exchange sent it.
 * @param {{source?: string, asset_type?: string} | undefined} p
 * @returns {{min?: number, max?: number}}
 */
export function digitsOf(p) {
  if (p?.source !== 'twelvedata') return {};
  if (p.asset_type === 'Physical Currency') return { min: 4 };
  if (p.asset_type === 'Digital Currency') return {};
  return { min: 2, max: 2 };
}

/**
 * The group a symbol's row is shown in: its source and asset class.
 * @param {{source?: string, asset_type?: string} | undefined} p
 * @returns {string}
 */
export function groupOf(p) {
  if (p?.source !== 'twelvedata') return 'Binance · crypto';
  if (p.asset_type === 'Physical Currency') return 'Twelve Data · forex';
  if (p.asset_type === 'Digital Currency') return 'Twelve Data · crypto';
  return 'Twelve Data · stocks';
}

/**
 * A 24 h change in percent, signed, two decimals: `"1.2345"` → `"+1.23%"`.
 * @param {string | undefined} s
 * @returns {string}
 */
export function formatChange(s) {
  const n = Number(s);
  if (s === undefined || !Number.isFinite(n)) return '–';
  return `${n > 0 ? '+' : ''}${n.toFixed(2)}%`;
}

/**
 * An SVG sparkline of `values` (oldest first), `w` × `h` pixels.
 * @param {number[]} values
 * @param {number} [w]
 * @param {number} [h]
 * @returns {string} the `points` of a polyline
 */
export function sparkPoints(values, w = 64, h = 18) {
  if (values.length < 2) return '';
  const lo = Math.min(...values);
  const span = Math.max(...values) - lo || 1;
  const step = w / (values.length - 1);
  return values.map((v, i) => `${(i * step).toFixed(1)},${(h - ((v - lo) / span) * h).toFixed(1)}`).join(' ');
}
