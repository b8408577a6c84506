// Benchmark plugin in JavaScript: acks every entry of a batch without looking
// at it, one call per batch (world `batch-consumer`). See js-noop.

export function handleBatch(batch) {
  return batch.entries.map(() => ({ tag: "ok" }));
}
