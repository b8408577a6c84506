// Example plugin in JavaScript: validates the order events of the redis.io
// streaming guide (`type`, `order_id`, `customer`, `amount`) and logs one line
// per order. A missing or malformed field is permanent: the entry is rejected.
// An order whose `payment` field is `pending` is retried (in 1 s, at the earliest).
//
// Same behaviour, verdicts and log lines as the Rust `orders` plugin. Built by
// `make plugins` with componentize-js.

import { log } from "redis-streams:plugin/log@0.1.3";

// The order event types the redis.io guide produces.
const ORDER_TYPES = ["order.placed", "order.paid", "order.shipped", "order.cancelled"];

class Invalid extends Error {}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function handle(entry) {
  let order;
  try {
    order = parse(entry);
  } catch (why) {
    if (!(why instanceof Invalid)) throw why;
    log("warn", `rejecting ${entry.id}: ${why.message}`);
    // The WIT `error` variant: { tag: "retry", val: { reason, delayMs } } or { tag: "reject", val: text }.
    throw { tag: "reject", val: why.message };
  }
  const pending = new TextEncoder().encode("pending");
  if (entry.fields.some((f) => f.name === "payment" && sameBytes(f.value, pending))) {
    const reason = `payment of ${order.orderId} still pending`;
    log("warn", `retrying ${entry.id}: ${reason}`);
    throw { tag: "retry", val: { reason, delayMs: 1000n } };
  }
  const cents = order.cents;
  const fraction = String(cents % 100n).padStart(2, "0");
  log("info", `order ${order.orderId} ${order.kind.replace(/^order\./, "")} for ${order.customer}: amount ${cents / 100n}.${fraction}`);
}

function sameBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function parse(entry) {
  const kind = text(entry, "type");
  if (!ORDER_TYPES.includes(kind)) throw new Invalid(`unknown order type ${quote(kind)}`);
  const orderId = text(entry, "order_id");
  const customer = text(entry, "customer");
  const amount = text(entry, "amount");
  const cents = parseCents(amount);
  if (cents === null) throw new Invalid(`malformed amount ${quote(amount)}`);
  return { kind, orderId, customer, cents };
}

// The first field called `name`, as non-empty UTF-8 text.
function text(entry, name) {
  const field = entry.fields.find((f) => f.name === name);
  if (field === undefined) throw new Invalid(`missing field ${quote(name)}`);
  let value;
  try {
    value = utf8.decode(field.value);
  } catch {
    throw new Invalid(`field ${quote(name)} is not UTF-8`);
  }
  if (value === "") throw new Invalid(`field ${quote(name)} is empty`);
  return value;
}

// A non-negative decimal amount with at most two decimals ("12", "12.5",
// "12.50") in cents (a BigInt); null when malformed or above u64.
function parseCents(amount) {
  const dot = amount.indexOf(".");
  const units = dot < 0 ? amount : amount.slice(0, dot);
  const fraction = dot < 0 ? "" : amount.slice(dot + 1);
  const digits = (s) => /^[0-9]+$/.test(s);
  if (!digits(units) || (dot >= 0 && !digits(fraction)) || fraction.length > 2) return null;
  const cents = BigInt(units) * 100n + (fraction ? BigInt(fraction.padEnd(2, "0")) : 0n);
  return cents < 2n ** 64n ? cents : null;
}

// Quotes like Rust's `{:?}` does for plain text, so log lines match the Rust plugin.
function quote(s) {
  let out = '"';
  for (const c of s) {
    const code = c.codePointAt(0);
    if (c === '"' || c === "\\") out += "\\" + c;
    else if (c === "\n") out += "\\n";
    else if (c === "\r") out += "\\r";
    else if (c === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\u{${code.toString(16)}}`;
    else out += c;
  }
  return out + '"';
}
