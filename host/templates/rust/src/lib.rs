//! {{name}}: a redis-wasm-host consumer plugin. `handle` is called once per
//! stream entry: `Ok(())` acks it, `Error::Retry` leaves it pending for a
//! later delivery, `Error::Reject` sends it to the dead-letter stream.

wit_bindgen::generate!({ path: "wit", world: "consumer" });

use redis_streams::plugin::log::{Level, log};

struct Plugin;

impl Guest for Plugin {
    fn handle(entry: Entry) -> Result<(), Error> {
        if entry.fields.iter().all(|f| f.value.is_empty()) {
            return Err(Error::Reject("every field is empty".into()));
        }
        log(Level::Info, &format!("{{name}} handled {} ({} fields)", entry.id, entry.fields.len()));
        Ok(())
    }
}

export!(Plugin);
