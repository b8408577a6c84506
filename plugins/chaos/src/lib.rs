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
//! | `wasi_sleep_ms=N`| sleep N ms in WASI (a blocking host call), then Ok   |
//! | `alloc_mb=N`     | allocate and touch N MiB, then Ok                    |
//! | `expect_hex=HEX` | reject unless field `data` hex-encodes to HEX        |
//! | `print=TEXT`     | write TEXT to stdout and to stderr, then Ok          |
//! | `log_line=TEXT`  | log TEXT through the `log` import, then Ok           |
//! | `log_first=TEXT` | on the first delivery only, log `first TEXT`         |
//! | `log_flood=N`    | log N lines through the `log` import, then Ok        |
//! | `retry_text=TEXT`| retry error with reason TEXT                         |
//! | `reject_text=TEXT`| reject error with reason TEXT                       |
//! | `recurse=N`      | recurse N frames deep (a stack overflow if large)   |
//! | `big_error_kb=N` | reject with an N KiB reason                          |
//! | `read_file=PATH` | reject with what reading PATH gave                   |
//! | `list_dir=PATH`  | reject with what listing PATH gave                   |
//! | `env=NAME`       | reject with what reading env var NAME gave           |
//! | `connect=ADDR`   | reject with what a TCP connect to ADDR gave          |
//! | `config=KEY`     | reject with the granted config value of KEY          |
//! | `incr=KEY`       | effect: `INCRBY KEY 1` with the ack (error: reject)  |
//! | `hincr=KEY`      | effect: `HINCRBY KEY <entry id> 1` (error: reject)   |
//! | `emit=STREAM`    | effect: append `source=<entry id>` to STREAM         |
//! | `set=KEY`        | effect: `SET KEY <entry id>`                         |
//! | `effects=N`      | record N `incr` effects on key `<stream>:flood`      |
//! | `foreign=ID`     | record an effect for entry ID; reject with the error |
//! | `fail_first=N`   | retry error on deliveries before the Nth             |
//! | `trap_first=N`   | trap on deliveries before the Nth                    |
//! | `spin_first=N`   | endless loop on deliveries before the Nth            |
//! | `get=KEY`        | reject with what `state.get(KEY)` gave               |
//! | `seen=KEY`       | reject with what `state.seen(KEY, 60000)` gave       |
//! | `seq=N`          | reject unless N follows `<stream>:seq` (state), else set it to N with the ack |
//! | `finish`         | say the stream is done (`assignment.finish`), then Ok |
//! | `log_info`       | log `info of <stream>: <assignment info>`            |
//! | `work_ms=N`      | work N ms (busy and sleeping in turn), calling `progress.extend` every 100 ms, then Ok |
//! | `progress_forever` | work and call `progress.extend` for ever (the host's longest call time must cut it) |
//! | `burst=URL`      | start 20 GETs to URL without waiting, then wait for all; reject with how many got an answer and how many the host refused |
//! | anything else    | Ok                                                   |
//!
//! Effects are recorded in field order, so `incr=k` then `fail` records an
//! effect and then retries (the host must drop it).
//!
//! The probes always reject, so the outcome lands in the dead-letter record's
//! `dlq:error`, where tests read it.
//!
//! Every entry that ends Ok logs `handled <id> by <consumer>`.

wit_bindgen::generate!({ path: "../../wit", world: "consumer" });

use redis_streams::plugin::effects::{emit, incr, set};
use redis_streams::plugin::log::{log, Level};
use redis_streams::plugin::types::{Field, Retry};
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
                "retry_text" => return Err(Error::Retry(Retry { reason: value.into_owned(), delay_ms: None })),
                "reject_text" => return Err(Error::Reject(value.into_owned())),
                "log_line" => log(Level::Info, &value),
                "log_first" if entry.delivery_count == 1 => log(Level::Info, &format!("first {value}")),
                "log_flood" => {
                    for i in 0..number(&value) {
                        log(Level::Info, &format!("flood line {i}"));
                    }
                }
                "trap" => panic!("chaos: trap requested for {}", entry.id),
                "spin" => spin(),
                "work_ms" => work(Some(Duration::from_millis(number(&value)))),
                "progress_forever" => work(None),
                "sleep_ms" => busy_wait(Duration::from_millis(number(&value))),
                // wasi:clocks subscribe-duration, then a wait on the pollable.
                "wasi_sleep_ms" => {
                    log(Level::Info, &format!("sleeping {value} ms in WASI"));
                    std::thread::sleep(Duration::from_millis(number(&value)));
                }
                "alloc_mb" => allocate(number(&value) as usize),
                "expect_hex" => {
                    let data = entry.fields.iter().find(|f| f.name == "data");
                    let actual = data.map(|f| hex(&f.value)).unwrap_or_default();
                    if actual != value {
                        return Err(Error::Reject(format!("chaos: data hex {actual} != expected {value}")));
                    }
                }
                "recurse" => {
                    std::hint::black_box(recurse(number(&value)));
                }
                "big_error_kb" => return Err(Error::Reject("x".repeat(number(&value) as usize * 1024))),
                "read_file" => return Err(probe(std::fs::read_to_string(&*value).map_err(|e| e.to_string()))),
                "list_dir" => {
                    let listing = std::fs::read_dir(&*value).map(|d| {
                        d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                            .collect::<Vec<_>>()
                            .join(",")
                    });
                    return Err(probe(listing.map_err(|e| e.to_string())));
                }
                "env" => return Err(probe(std::env::var(&*value).map_err(|e| e.to_string()))),
                "connect" => return Err(probe(connect(&value))),
                "burst" => return Err(Error::Reject(burst(&value))),
                "config" => {
                    let granted = redis_streams::plugin::config::get(&value).ok_or_else(|| "not granted".to_string());
                    return Err(probe(granted));
                }
                "fail_first" if entry.delivery_count < number(&value) as u32 => {
                    return Err(Error::Retry(Retry {
                        reason: format!("chaos: delivery {}", entry.delivery_count),
                        delay_ms: None,
                    }))
                }
                "trap_first" if entry.delivery_count < number(&value) as u32 => {
                    panic!("chaos: trap on delivery {}", entry.delivery_count)
                }
                "spin_first" if entry.delivery_count < number(&value) as u32 => spin(),
                "incr" => effect(incr(&entry.id, &value, None, 1))?,
                "hincr" => effect(incr(&entry.id, &value, Some(&entry.id), 1))?,
                "emit" => {
                    let source = Field { name: "source".into(), value: entry.id.as_bytes().to_vec() };
                    effect(emit(&entry.id, &value, &[source], None))?
                }
                "set" => effect(set(&entry.id, &value, None, entry.id.as_bytes(), None))?,
                "effects" => {
                    for _ in 0..number(&value) {
                        effect(incr(&entry.id, &format!("{}:flood", entry.stream), None, 1))?;
                    }
                }
                "foreign" => return Err(probe(incr(&value, "chaos:foreign", None, 1).map(|()| "recorded".into()))),
                "get" => {
                    let got = redis_streams::plugin::state::get(&value);
                    return Err(probe(got.map(|v| v.map_or("none".into(), |v| String::from_utf8_lossy(&v).into()))));
                }
                "seen" => {
                    return Err(probe(redis_streams::plugin::state::seen(&value, 60_000).map(|s| format!("seen={s}"))))
                }
                "print" => {
                    println!("stdout: {value}");
                    eprintln!("stderr: {value}");
                }
                "seq" => sequence(&entry, number(&value))?,
                "finish" => redis_streams::plugin::assignment::finish(),
                "log_info" => {
                    let info = redis_streams::plugin::assignment::info().unwrap_or_else(|| "none".into());
                    log(Level::Info, &format!("info of {}: {info}", entry.stream));
                }
                _ => {}
            }
        }
        log(Level::Info, &format!("handled {} by {}", entry.id, entry.consumer));
        Ok(())
    }
}

/// Checks that `n` follows the last sequence number handled Ok on this
/// stream (kept in `<stream>:seq`, written with the ack), then records it:
/// a gap or a step back is rejected, so it shows as a dead letter. A
/// redelivery of an entry whose ack never landed sees the number before it.
fn sequence(entry: &Entry, n: u64) -> Result<(), Error> {
    let key = format!("{}:seq", entry.stream);
    let last = redis_streams::plugin::state::get(&key)
        .map_err(|e| Error::Retry(Retry { reason: format!("chaos: cannot read {key}: {e}"), delay_ms: None }))?
        .and_then(|v| String::from_utf8_lossy(&v).parse::<u64>().ok())
        .unwrap_or(0);
    if n != last + 1 {
        let what = if n <= last { "step back" } else { "gap" };
        return Err(Error::Reject(format!("chaos: {what}: seq {n} after {last} on {}", entry.stream)));
    }
    log(Level::Info, &format!("seq {} {n} delivery {}", entry.stream, entry.delivery_count));
    effect(set(&entry.id, &key, None, n.to_string().as_bytes(), None))
}

/// An effect the host refused (not granted, bad entry id): reject, with the
/// host's error as the dead-letter record's `dlq:error`.
fn effect(recorded: Result<(), String>) -> Result<(), Error> {
    recorded.map_err(|e| Error::Reject(format!("effect refused: {e}")))
}

/// Opens a TCP connection to `IPV4:PORT` through wasi:sockets directly
/// (Debian's wasi-libc predates sockets, so `std::net` cannot link).
fn connect(addr: &str) -> Result<String, String> {
    use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    let (ip, port) = addr.split_once(':').ok_or("expected IPV4:PORT")?;
    let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    let [a, b, c, d] = octets[..] else { return Err("expected IPV4:PORT".into()) };
    let port: u16 = port.parse().map_err(|_| "bad port")?;
    let network = wasi::sockets::instance_network::instance_network();
    let socket =
        wasi::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4).map_err(|e| format!("{e:?}"))?;
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (a, b, c, d) });
    socket.start_connect(&network, remote).map_err(|e| format!("{e:?}"))?;
    socket.subscribe().block();
    socket.finish_connect().map(|_| "connected".to_string()).map_err(|e| format!("{e:?}"))
}

/// Starts 20 GETs to `url` (`http://HOST:PORT/PATH`) before waiting for
/// any, then waits for each: `answered=N limited=M other=K`.
fn burst(url: &str) -> String {
    use wasip2::http::outgoing_handler::handle;
    use wasip2::http::types::{ErrorCode, Fields, OutgoingRequest, Scheme};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let futures: Vec<_> = (0..20)
        .map(|_| {
            let request = OutgoingRequest::new(Fields::new());
            let _ = request.set_scheme(Some(&Scheme::Http));
            let _ = request.set_authority(Some(authority));
            let _ = request.set_path_with_query(Some(&path));
            handle(request, None)
        })
        .collect();
    let (mut answered, mut limited, mut other) = (0, 0, 0);
    for future in futures {
        let outcome = future.map_err(Some).and_then(|f| loop {
            match f.get() {
                Some(Ok(result)) => break result.map(|_| ()).map_err(Some),
                Some(Err(())) => break Err(None),
                None => f.subscribe().block(),
            }
        });
        match outcome {
            Ok(()) => answered += 1,
            Err(Some(ErrorCode::ConnectionLimitReached)) => limited += 1,
            Err(_) => other += 1,
        }
    }
    format!("answered={answered} limited={limited} other={other}")
}

/// A probe's outcome as a reject reason: `ok: VALUE` or `denied: ERROR`.
fn probe(result: Result<String, String>) -> Error {
    Error::Reject(match result {
        Ok(value) => format!("ok: {value}"),
        Err(error) => format!("denied: {error}"),
    })
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

/// Works for `how_long` (for ever when none) in steps of 100 ms, half
/// computing (the host's epoch deadline applies) and half sleeping in WASI (a
/// blocking host call, bounded by the same deadline), saying after each step
/// that it is still working. Logs what the first extension left.
fn work(how_long: Option<Duration>) {
    let start = Instant::now();
    let mut first = true;
    while how_long.is_none_or(|d| start.elapsed() < d) {
        busy_wait(Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(50));
        let left = redis_streams::plugin::progress::extend();
        if first {
            log(Level::Info, &format!("progress: {left} ms left"));
            first = false;
        }
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
