//! Benchmark plugin: acks every entry without looking at it. `host bench`
//! runs it against the built-in native handler to measure what a Wasm call
//! costs (see docs/performance.md).

wit_bindgen::generate!({ path: "../../wit", world: "consumer" });

struct Noop;

impl Guest for Noop {
    fn handle(_entry: Entry) -> Result<(), Error> {
        Ok(())
    }
}

export!(Noop);
