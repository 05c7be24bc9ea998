// The package: `npm pack` contains every file `exports` names, and both entry points load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const dir = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

test('npm pack contains what exports names', () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const files = new Set(JSON.parse(r.stdout)[0].files.map((f) => f.path));
  const named = Object.values(pkg.exports).flatMap((e) => Object.values(e));
  for (const f of [...named, pkg.main, pkg.types, 'README.md', 'package.json']) {
    assert.ok(files.has(f.replace(/^\.\//, '')), `${f} is in the package`);
  }
  assert.ok(![...files].some((f) => f.startsWith('test/')), 'tests stay out');
});

test('both entry points load', async () => {
  const core = await import('../edgetick.js');
  assert.equal(typeof core.PriceFeed, 'function');
  const react = await import('../react.js');
  assert.deepEqual(Object.keys(react).sort(), ['configureFeed', 'useCandles', 'useChannel', 'usePrices']);
});
