//! Test fixture of world `batch-consumer`: each entry's verdict chosen by its
//! fields, so tests can check that a batch's verdicts land on the right
//! entries and that a trap faults only the entry that causes it.
//!
//! | field     | verdict for the entry                                     |
//! |-----------|-----------------------------------------------------------|
//! | `fail`    | retry error                                               |
//! | `reject`  | reject error                                              |
//! | `trap`    | panic (a Wasm trap: the whole call fails)                 |
//! | `short`   | return one verdict too few for the batch (a host fault)   |
//! | `incr=KEY`| first records the effect `HINCRBY KEY <entry id> 1`       |
//! | `big_reject` | reject with a 100 KiB reason (over a small limit: a fault) |
//! | anything else | Ok                                                    |
//!
//! Every call logs `batch of N for <consumer>`, and every entry that ends Ok
//! `handled <id> by <consumer>`.

wit_bindgen::generate!({ path: "../../wit", world: "batch-consumer" });

use redis_streams::plugin::log::{log, Level};
use redis_streams::plugin::types::Retry;

struct ChaosBatch;

impl Guest for ChaosBatch {
    fn handle_batch(batch: Batch) -> Vec<Result<(), Error>> {
        log(Level::Info, &format!("batch of {} for {}", batch.entries.len(), batch.consumer));
        let mut verdicts = Vec::with_capacity(batch.entries.len());
        let mut short = false;
        for entry in &batch.entries {
            let has = |name: &str| entry.fields.iter().any(|f| f.name == name);
            if let Some(key) = entry.fields.iter().find(|f| f.name == "incr") {
                let key = String::from_utf8_lossy(&key.value);
                if let Err(e) = redis_streams::plugin::effects::incr(&entry.id, &key, Some(&entry.id), 1) {
                    verdicts.push(Err(Error::Reject(format!("effect refused: {e}"))));
                    continue;
                }
            }
            let verdict = if has("trap") {
                panic!("chaos-batch: trap requested for {}", entry.id)
            } else if has("fail") {
                Err(Error::Retry(Retry {
                    reason: format!("chaos-batch: fail requested for {}", entry.id),
                    delay_ms: None,
                }))
            } else if has("big_reject") {
                Err(Error::Reject("x".repeat(100 * 1024)))
            } else if has("reject") {
                Err(Error::Reject(format!("chaos-batch: reject requested for {}", entry.id)))
            } else if has("short") {
                short = true;
                Ok(())
            } else {
                log(Level::Info, &format!("handled {} by {}", entry.id, batch.consumer));
                Ok(())
            };
            verdicts.push(verdict);
        }
        if short {
            verdicts.pop();
        }
        verdicts
    }
}

export!(ChaosBatch);
