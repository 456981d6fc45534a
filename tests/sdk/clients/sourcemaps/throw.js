// Loads a minified bundle built by the test, calls into it so it throws, and reports the error
// through the real @sentry/node SDK. With a root directory, frames are rewritten
// to app:/// URLs (what release + URL matching needs, as in a browser); without, the SDK
// reports the bundle's debug id from `sentry-cli sourcemaps inject`.
//
// usage: node throw.js DSN BUNDLE [RELEASE] [ROOT]
const path = require('path');
const Sentry = require('@sentry/node');

const [dsn, bundle, release, root] = process.argv.slice(2);
const integrations = root ? [Sentry.rewriteFramesIntegration({ root })] : [];
Sentry.init({ dsn, release: release || undefined, integrations });

async function main() {
  require(path.resolve(bundle));
  try {
    globalThis.runCheckout({ items: [] });
  } catch (e) {
    Sentry.captureException(e);
  }
  await Sentry.flush(10000);
}

main();
