//! The `host` binary: parse flags, then hand a validated command to the library.

use std::process::ExitCode;

/// How long the exit waits for blocking threads still running (a plugin
/// call is already past its deadline by then, or the process was told twice).
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let (command, log_format) = host::cli::parse();
    host::logging::init(log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = host::shutdown::on_signals()?;
        host::execute(command, shutdown).await
    });
    // A blocking thread stuck in a host call no deadline reaches (a read of a
    // FIFO in a granted folder) must not hold the exit for ever.
    runtime.shutdown_timeout(EXIT_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Masked once more: an error may quote what it was given (a URL in a flag or file).
            eprintln!("error: {}", host::mask_urls(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process (and what it starts).
/// mimalloc asks for them (`MADV_HUGEPAGE`) on its arenas, and the first
/// touch of each 2 MiB page then zeroes it, or compacts memory first, inside
/// whichever call allocated: in `host bench --rate 100000` that put p99
/// produce-to-ack at 17–54 ms against 7 ms without, and peak RSS at ~38 MB
/// against ~17 (docs/performance.md). Redis's own advice is the same.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
