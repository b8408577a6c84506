// Benchmark plugin in JavaScript: acks every entry without looking at it, one
// call per entry (world `consumer`). `make bench` runs it beside js-noop-batch
// to measure what one call per batch saves where a call is dear.

export function handle(_entry) {}
