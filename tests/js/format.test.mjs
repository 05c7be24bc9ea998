// The dashboard's number formatting, on known values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPrice, formatChange, sparkPoints, digitsOf, groupOf } from '../../public/format.js';

test('prices keep their digits, lose trailing zeros, gain separators', () => {
  assert.equal(formatPrice('89902.98000000'), '89,902.98');
  assert.equal(formatPrice('1234567.10000000'), '1,234,567.10');
  assert.equal(formatPrice('0.00001230'), '0.0000123');
  assert.equal(formatPrice('1.50000000'), '1.50');
  assert.equal(formatPrice('100'), '100.00');
  assert.equal(formatPrice('0.12345678'), '0.12345678', 'no rounding');
  assert.equal(formatPrice(undefined), '–');
  assert.equal(formatPrice('NaN'), 'NaN');
});

test('forex and stocks are written to their own precision, rounded on the digits', () => {
  const pair = { source: 'twelvedata', asset_type: 'Physical Currency' };
  const stock = { source: 'twelvedata', asset_type: 'Common Stock' };
  assert.equal(formatPrice('1.085', digitsOf(pair)), '1.0850');
  assert.equal(formatPrice('1.08523', digitsOf(pair)), '1.08523');
  assert.equal(formatPrice('83.97626', digitsOf(stock)), '83.98');
  assert.equal(formatPrice('189.9800', digitsOf(stock)), '189.98');
  assert.equal(formatPrice('9.995', digitsOf(stock)), '10.00');
  assert.equal(formatPrice('999.999', digitsOf(stock)), '1,000.00');
  assert.equal(formatPrice('0.00001230', digitsOf({ source: 'binance' })), '0.0000123');
  assert.equal(groupOf(pair), 'Twelve Data · forex');
  assert.equal(groupOf(stock), 'Twelve Data · stocks');
  assert.equal(groupOf({ source: 'binance' }), 'Binance · crypto');
});

test('changes are signed percentages; sparklines span their box', () => {
  assert.equal(formatChange('1.2345'), '+1.23%');
  assert.equal(formatChange('-0.5'), '-0.50%');
  assert.equal(formatChange(undefined), '–');
  assert.equal(sparkPoints([1]), '');
  assert.equal(sparkPoints([1, 3, 2], 10, 10), '0.0,10.0 5.0,0.0 10.0,5.0');
});
