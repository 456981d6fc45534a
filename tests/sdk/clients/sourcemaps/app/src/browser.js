// The browser entry of the app (tests/browser/test_sourcemaps_browser.py): the real
// @sentry/browser SDK, set up from what the test page puts in window.LOOKOUT, then the app's
// checkout of an empty cart throws, uncaught, for the SDK's global handlers to report.
import * as Sentry from "@sentry/browser";
import { checkout } from "./index.js";

const cfg = window.LOOKOUT;
Sentry.init({ dsn: cfg.dsn, release: cfg.release || undefined });
window.lookoutSentry = Sentry;

setTimeout(() => {
  checkout({ items: [] });
});
