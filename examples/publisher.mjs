// A small event publisher for edgetick (Node 18+, no dependencies).
//
//   PUBLISH_TOKEN=... node examples/publisher.mjs http://127.0.0.1:8787 [events:signals]
//
// Publishes one `signal_generated` event a second and prints each answer (channel, offset,
// epoch); a refusal prints its status and JSON error, and 429 waits for its Retry-After.

const base = process.argv[2] ?? 'http://127.0.0.1:8787';
const channel = process.argv[3] ?? 'events:signals';
const token = process.env.PUBLISH_TOKEN;
if (!token) {
  console.error('set PUBLISH_TOKEN to the service secret');
  process.exit(2);
}

async function publish(n) {
  const body = {
    channel,
    event: 'signal_generated',
    data: { n, symbol: 'BTCUSDT', side: n % 2 ? 'buy' : 'sell', strength: '0.75' },
  };
  const res = await fetch(`${base}/api/publish`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await res.json();
  if (res.status === 429) {
    const wait = Number(res.headers.get('Retry-After') ?? '1') * 1000;
    console.warn('rate limited; waiting', wait, 'ms');
    await new Promise((r) => setTimeout(r, wait));
  } else if (!res.ok) {
    console.error(res.status, answer);
  } else {
    console.log(answer);
  }
}

for (let n = 1; ; n += 1) {
  await publish(n);
  await new Promise((r) => setTimeout(r, 1000));
}
