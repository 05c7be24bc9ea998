// The dashboard's number formatting, on known values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPrice, formatChange, sparkPoints } from '../../public/format.js';

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

test('changes are signed percentages; sparklines span their box', () => {
  assert.equal(formatChange('1.2345'), '+1.23%');
  assert.equal(formatChange('-0.5'), '-0.50%');
  assert.equal(formatChange(undefined), '–');
  assert.equal(sparkPoints([1]), '');
  assert.equal(sparkPoints([1, 3, 2], 10, 10), '0.0,10.0 5.0,0.0 10.0,5.0');
});
