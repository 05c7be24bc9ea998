// How the dashboard writes numbers: Binance's decimal strings as people read them, never
// through a float (a float would turn 0.1 + 0.2 into 0.30000000000000004 and round quotes).

/**
 * A price as written: thousands separators, trailing zeros trimmed but at least two decimals
 * (`"89902.98000000"` → `"89,902.98"`, `"0.00001230"` → `"0.0000123"`, `"1.50000000"` →
 * `"1.50"`). Anything that is not a decimal string comes back as it was.
 * @param {string | undefined} s
 * @returns {string}
 */
export function formatPrice(s) {
  if (s === undefined) return '–';
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s);
  if (!m) return s;
  const [, sign, whole, frac = ''] = m;
  let decimals = frac.replace(/0+$/, '');
  if (decimals.length < 2) decimals = decimals.padEnd(2, '0');
  const grouped = whole.replace(/^0+(?=\d)/, '').replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${sign}${grouped}.${decimals}`;
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
