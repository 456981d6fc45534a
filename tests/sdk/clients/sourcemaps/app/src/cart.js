// A small app for the source-map tests: esbuild minifies it, sentry-cli uploads the map, and
// the test asserts the stored issue points at these exact lines.
export function total(cart) {
  if (cart.items.length === 0) {
    throw new Error("cart is empty");
  }
  return cart.items.reduce((s, i) => s + i.price, 0);
}
