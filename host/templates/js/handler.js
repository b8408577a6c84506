// {{name}}: a redis-wasm-host consumer plugin. `handle` is called once per
// stream entry: returning acks it; throwing { tag: "retry", val: { reason,
// delayMs } } leaves it pending, { tag: "reject", val: reason } dead-letters it.

import { log } from "redis-streams:plugin/log@0.1.3";

export function handle(entry) {
  if (entry.fields.every((f) => f.value.length === 0)) {
    throw { tag: "reject", val: "every field is empty" };
  }
  log("info", `{{name}} handled ${entry.id} (${entry.fields.length} fields)`);
}
