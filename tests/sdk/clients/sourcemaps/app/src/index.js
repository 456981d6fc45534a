import { total } from "./cart.js";

export function checkout(cart) {
  const sum = total(cart);
  return { sum };
}

globalThis.runCheckout = checkout;
