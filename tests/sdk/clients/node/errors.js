// Sends a known mix of errors through the real @sentry/node SDK (query-string auth, chunked
// uploads without Content-Length or Content-Type, numeric timestamps, synthetic exceptions).
const Sentry = require('@sentry/node');

Sentry.init({ dsn: process.argv[2], release: 'web@3.0.0', environment: 'production' });

function parseOrder(raw) {
  return JSON.parse(raw);
}

async function main() {
  // Different inputs give different messages (the SDK's Dedupe integration drops an event
  // identical to the previous one) but the same stack: one issue, three events.
  for (const raw of ['{not json', '{"a": 1,,}', '[1,,2]']) {
    try {
      parseOrder(raw);
    } catch (e) {
      Sentry.captureException(e);
    }
  }
  for (const id of [5, 6]) {
    Sentry.captureMessage(`order ${id} stuck in queue`);
  }
  await Sentry.flush(10000);
}

main();
