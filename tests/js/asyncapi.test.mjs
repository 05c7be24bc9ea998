// The AsyncAPI 3 document of the WebSocket and SSE protocol (public/asyncapi.json): valid by
// the official parser, and naming exactly the error codes the service sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const text = readFileSync(new URL('../../public/asyncapi.json', import.meta.url), 'utf8');

async function problems(source) {
  const { diagnostics } = await new Parser().parse(source);
  return diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join('.')}: ${d.message}`);
}

test('the AsyncAPI document is valid AsyncAPI 3', async () => {
  assert.deepEqual(await problems(text), []);
  const doc = JSON.parse(text);
  assert.equal(doc.asyncapi, '3.0.0');
  assert.deepEqual(Object.keys(doc.channels).sort(), ['stream', 'ws']);
});

test('a broken document is caught (the check is not vacuous)', async () => {
  const doc = JSON.parse(text);
  doc.operations.sendCommand.channel = { $ref: '#/channels/nowhere' };
  assert.notDeepEqual(await problems(JSON.stringify(doc)), []);
});

test('error codes are exactly the ones the service sends', () => {
  const doc = JSON.parse(text);
  const documented = doc.components.messages.error.payload.properties.code.enum.slice().sort();
  const rust = readFileSync(new URL('../../src/core/error.rs', import.meta.url), 'utf8');
  const block = rust.slice(rust.indexOf('impl ErrorCode'), rust.indexOf('pub struct ClientError'));
  const sent = [...block.matchAll(/=> "([A-Z_]+)"/g)].map((m) => m[1]).sort();
  assert.deepEqual(documented, sent);
});
