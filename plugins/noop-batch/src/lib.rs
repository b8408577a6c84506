//! Benchmark plugin of world `batch-consumer`: acks every entry of each batch
//! without looking at it. `host bench` runs it beside `noop` (one call per
//! entry) to measure what one call per batch saves (see docs/performance.md).

wit_bindgen::generate!({ path: "../../wit", world: "batch-consumer" });

struct NoopBatch;

impl Guest for NoopBatch {
    fn handle_batch(batch: Batch) -> Vec<Result<(), Error>> {
        vec![Ok(()); batch.entries.len()]
    }
}

export!(NoopBatch);
