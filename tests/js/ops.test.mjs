// The operations files: the Grafana dashboard queries only metrics the service exports, and
// the Prometheus scrape example is a valid configuration (promtool, installed by make tools).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const root = new URL('../../', import.meta.url);
const read = (p) => readFileSync(new URL(p, root), 'utf8');

test('every Grafana panel queries metrics the service exports', () => {
  const dash = JSON.parse(read('ops/grafana-dashboard.json'));
  const exported = new Set([...read('src/core/metrics.rs').matchAll(/"(edgetick_[a-z_]+)"/g)].map((m) => m[1]));
  const ids = new Set();
  assert.ok(dash.panels.length >= 8);
  for (const p of dash.panels) {
    assert.ok(!ids.has(p.id), `panel id ${p.id} repeated`);
    ids.add(p.id);
    assert.ok(p.targets.length > 0, p.title);
    for (const t of p.targets) {
      for (const [name] of t.expr.matchAll(/edgetick_[a-z_]+/g)) {
        const base = name.replace(/_(bucket|sum|count)$/, '');
        assert.ok(exported.has(name) || exported.has(base), `${p.title}: ${name} is not exported`);
      }
    }
  }
});

test('the Prometheus scrape example is a valid configuration', () => {
  const r = spawnSync('promtool', ['check', 'config', new URL('ops/prometheus.yml', root).pathname], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});
