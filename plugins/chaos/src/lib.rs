//! Test fixture: behaviour chosen by the entry's fields, so tests and
//! benchmarks can provoke every outcome the host must survive.
//!
//! | field            | behaviour                                            |
//! |------------------|------------------------------------------------------|
//! | `fail[=MS]`      | retry error (with a delay hint of MS ms when given)  |
//! | `reject`         | reject error                                         |
//! | `trap`           | panic (a Wasm trap)                                  |
//! | `spin`           | endless loop (the host's deadline must cut it)       |
//! | `sleep_ms=N`     | busy-wait N ms, then Ok                              |
//! | `alloc_mb=N`     | allocate and touch N MiB, then Ok                    |
//! | `expect_hex=HEX` | reject unless field `data` hex-encodes to HEX        |
//! | `print=TEXT`     | write TEXT to stdout and to stderr, then Ok          |
//! | `recurse=N`      | recurse N frames deep (a stack overflow if large)   |
//! | `big_error_kb=N` | reject with an N KiB reason                          |
//! | anything else    | Ok                                                   |
//!
//! Every entry that ends Ok logs `handled <id> by <consumer>`.

wit_bindgen::generate!({ path: "../../wit", world: "consumer" });

use redis_streams::plugin::log::{log, Level};
use redis_streams::plugin::types::Retry;
use std::time::{Duration, Instant};

struct Chaos;

impl Guest for Chaos {
    fn handle(entry: Entry) -> Result<(), Error> {
        for field in &entry.fields {
            let value = String::from_utf8_lossy(&field.value);
            match field.name.as_str() {
                "fail" => {
                    return Err(Error::Retry(Retry {
                        reason: format!("chaos: fail requested for {}", entry.id),
                        delay_ms: value.parse().ok(),
                    }))
                }
                "reject" => return Err(Error::Reject(format!("chaos: reject requested for {}", entry.id))),
                "trap" => panic!("chaos: trap requested for {}", entry.id),
                "spin" => spin(),
                "sleep_ms" => busy_wait(Duration::from_millis(number(&value))),
                "alloc_mb" => allocate(number(&value) as usize),
                "expect_hex" => {
                    let data = entry.fields.iter().find(|f| f.name == "data");
                    let actual = data.map(|f| hex(&f.value)).unwrap_or_default();
                    if actual != value {
                        return Err(Error::Reject(format!(
                            "chaos: data hex {actual} != expected {value}"
                        )));
                    }
                }
                "recurse" => {
                    std::hint::black_box(recurse(number(&value)));
                }
                "big_error_kb" => return Err(Error::Reject("x".repeat(number(&value) as usize * 1024))),
                "print" => {
                    println!("stdout: {value}");
                    eprintln!("stderr: {value}");
                }
                _ => {}
            }
        }
        log(Level::Info, &format!("handled {} by {}", entry.id, entry.consumer));
        Ok(())
    }
}

fn number(value: &str) -> u64 {
    value.trim().parse().unwrap_or(0)
}

#[allow(clippy::empty_loop)]
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn busy_wait(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::black_box(());
    }
}

fn allocate(mib: usize) {
    let mut block = vec![0u8; mib << 20];
    // Touch every page so the memory is really committed.
    for i in (0..block.len()).step_by(4096) {
        block[i] = 1;
    }
    std::hint::black_box(&block);
}

/// Not a tail call: every level keeps a frame (and a buffer) alive.
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 16]);
    if depth == 0 {
        return 0;
    }
    recurse(depth - 1).wrapping_add(frame[(depth % 16) as usize])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

export!(Chaos);
