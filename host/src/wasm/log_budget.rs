//! What a plugin may put into the host log: each record one safe line (control
//! characters escaped, cut at [`MAX_LOG_MESSAGE`] bytes) and, per call, a
//! budget of records and bytes shared by its `log` import and its
//! stdout/stderr, the rest dropped and counted.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Longest text of one record (a `log` message, a stdout/stderr line), bytes.
/// A handler's message needs a few hundred; 4 KiB keeps a line readable in
/// any viewer and a flood of them cheap. The rest is dropped, and the line
/// says how many bytes.
pub const MAX_LOG_MESSAGE: usize = 4 * 1024;
/// Records per entry of a call: a handler explaining itself in more than 100
/// lines per entry is looping; an endless one used to write 121 MB per call.
pub const MAX_LOG_RECORDS_PER_ENTRY: u64 = 100;
/// Bytes per entry of a call: 16 records of the longest kind, so a call (and
/// each retry of it) adds at most 64 KiB per entry to the log.
pub const MAX_LOG_BYTES_PER_ENTRY: u64 = 64 * 1024;

/// `text` as one log line of at most [`MAX_LOG_MESSAGE`] bytes (plus a note of
/// how many were dropped). Control characters (newline, carriage return, ESC
/// and the rest) and Unicode line separators and bidi controls come out
/// escaped (`\n`, `\u{1b}`): a plugin can neither start a forged host line
/// nor send the terminal anything.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_LOG_MESSAGE && !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut line = String::with_capacity(text.len().min(MAX_LOG_MESSAGE) + 40);
    let mut kept = 0;
    for c in text.chars() {
        let at = line.len();
        if needs_escape(c) {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
        if line.len() > MAX_LOG_MESSAGE {
            line.truncate(at);
            break;
        }
        kept += c.len_utf8();
    }
    if kept < text.len() {
        let _ = write!(line, " … [{} more bytes dropped]", text.len() - kept);
    }
    Cow::Owned(line)
}

/// A tab stays: it cannot end a line or drive a terminal, and plugins use it
/// in their text (the conformance test's customer name has one).
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// What a plugin instance may still log in the call in progress, and what it
/// logged past that. Atomics because its stdout/stderr writers are `Sync`
/// objects of their own; only the store's thread uses them, so relaxed
/// loads and stores do.
#[derive(Debug, Default)]
pub struct LogBudget {
    /// Records left in this call.
    records: AtomicU64,
    /// Bytes left in this call.
    bytes: AtomicU64,
    /// Records dropped since the last [`LogBudget::take_dropped`].
    dropped_records: AtomicU64,
    /// What those records held, bytes.
    dropped_bytes: AtomicU64,
}

impl LogBudget {
    /// A full budget for a call of `entries` entries.
    pub fn refill(&self, entries: usize) {
        let entries = entries.max(1) as u64;
        self.records.store(MAX_LOG_RECORDS_PER_ENTRY.saturating_mul(entries), Relaxed);
        self.bytes.store(MAX_LOG_BYTES_PER_ENTRY.saturating_mul(entries), Relaxed);
    }

    /// Whether a record of `logged` bytes (cut from `written`) fits; if so it
    /// is charged, if not it is counted as dropped, and so is every later
    /// one of the call (a log with a hole in the middle would mislead).
    pub fn admit(&self, logged: usize, written: usize) -> bool {
        let (records, bytes) = (self.records.load(Relaxed), self.bytes.load(Relaxed));
        if records == 0 || bytes < logged as u64 {
            self.records.store(0, Relaxed);
            self.dropped_records.store(self.dropped_records.load(Relaxed) + 1, Relaxed);
            self.dropped_bytes.store(self.dropped_bytes.load(Relaxed).saturating_add(written as u64), Relaxed);
            return false;
        }
        self.records.store(records - 1, Relaxed);
        self.bytes.store(bytes - logged as u64, Relaxed);
        true
    }

    /// Records and bytes dropped since the last time asked, if any.
    pub fn take_dropped(&self) -> Option<(u64, u64)> {
        if self.dropped_records.load(Relaxed) == 0 {
            return None;
        }
        Some((self.dropped_records.swap(0, Relaxed), self.dropped_bytes.swap(0, Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_short_text_is_kept_as_is() {
        assert!(matches!(one_line("handled 1-0 by c1 ✓"), Cow::Borrowed("handled 1-0 by c1 ✓")));
    }

    #[test]
    fn control_characters_are_escaped_but_a_tab_stays() {
        let line = one_line("a\nb\r\x1b[2K\u{2028}\u{202e}\tc");
        assert_eq!(line, "a\\nb\\r\\u{1b}[2K\\u{2028}\\u{202e}\tc");
    }

    #[test]
    fn long_text_is_cut_at_a_char_boundary_with_a_note() {
        let text = "€".repeat(MAX_LOG_MESSAGE);
        let line = one_line(&text);
        let kept = MAX_LOG_MESSAGE / 3 * 3;
        assert!(line.starts_with(&text[..kept]), "{}", &line[..40]);
        assert!(line.ends_with(&format!(" … [{} more bytes dropped]", text.len() - kept)), "{}", &line[kept..]);
        let escapes = "\n".repeat(MAX_LOG_MESSAGE);
        assert!(one_line(&escapes).len() < MAX_LOG_MESSAGE + 40);
    }

    #[test]
    fn the_budget_drops_and_counts_past_its_limits() {
        let budget = LogBudget::default();
        budget.refill(1);
        let admitted = (0..150).filter(|_| budget.admit(10, 10)).count();
        assert_eq!(admitted, MAX_LOG_RECORDS_PER_ENTRY as usize);
        assert_eq!(budget.take_dropped(), Some((50, 500)));
        assert_eq!(budget.take_dropped(), None);

        budget.refill(2);
        let admitted = (0..100).filter(|_| budget.admit(MAX_LOG_MESSAGE, 1 << 20)).count();
        assert_eq!(admitted as u64, 2 * MAX_LOG_BYTES_PER_ENTRY / MAX_LOG_MESSAGE as u64);
        assert!(!budget.admit(1, 1), "nothing after the first record dropped");
        assert_eq!(budget.take_dropped(), Some((100 - admitted as u64 + 1, (100 - admitted as u64) * (1 << 20) + 1)));
    }
}
