// Writes the generated app the source-map benches bundle (bench/sourcemaps.sh, bench/errors.sh):
// N handler functions, which esbuild turns into a minified file with a map of ~5 MB at 8,500.
// With a third argument, also writes an envelope of a JavaScript event whose 30 frames point
// into the minified file (the positions bench's sourcemap_speed example uses), release R.
//
// usage: node bench/sourcemap_app.js N DIR                 -> DIR/app.js
//        node bench/sourcemap_app.js N DIR RELEASE         -> also DIR/event.envelope (needs DIR/app.min.js)
const fs = require("fs");
const [n, dir, release] = [+process.argv[2], process.argv[3], process.argv[4]];
if (!release) {
  let src = "";
  for (let i = 0; i < n; i++) {
    src += `export function handler${i}(order, options) {\n  const total = order.items.reduce((sum, item) => sum + item.price * item.quantity, ${i});\n  if (total > options.limit) {\n    throw new Error("order " + order.id + " over limit in handler${i}");\n  }\n  return { total, tax: total * 0.2, shipping: options.shipping || ${i % 7} };\n}\n`;
  }
  fs.writeFileSync(dir + "/app.js", src);
} else {
  const lines = fs.readFileSync(dir + "/app.min.js", "utf8").split("\n");
  const frames = [];
  for (let i = 0; i < 30; i++) {
    const line = (i * 7919) % Math.max(lines.length, 1);
    const cols = Math.max((lines[line] || "").length, 1);
    frames.push({ abs_path: "https://cdn.example.com/static/app.min.js", filename: "app.min.js",
                  function: "e", lineno: line + 1, colno: (i * 104729) % cols + 1 });
  }
  const id = "0123456789abcdef0123456789abcdef";
  const event = { event_id: id, platform: "javascript", level: "error", release,
    exception: { values: [{ type: "Error", value: "order 7 over limit", stacktrace: { frames } }] } };
  const env = JSON.stringify({ event_id: id }) + "\n" + JSON.stringify({ type: "event" }) + "\n" +
    JSON.stringify(event) + "\n";
  fs.writeFileSync(dir + "/event.envelope", env);
}
