//! The RESP2 cursor of the consumers' hot read (`reader.rs`): replies
//! parsed where they lie in the read buffer, entry by entry as they arrive,
//! without redis-rs's `Value`s. Only the shapes an `XREADGROUP` reply has.

use super::reply::Batch;
use crate::entry::Entry;
use anyhow::{Context, Result, anyhow, bail};

/// A cursor over RESP2 bytes as they arrive: each step returns `Ok(None)`
/// while its item is incomplete (read more and start over), an error when
/// the bytes are not what the reply must hold. Only what the hot read needs:
/// array and bulk-string headers, bulk strings, and status or error lines.
pub struct Resp<'a> {
    buf: &'a [u8],
    /// Bytes consumed so far.
    pub at: usize,
}

impl<'a> Resp<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Resp { buf, at: 0 }
    }

    /// The number of a header `<kind><integer>` CRLF (`*` array, `$` bulk
    /// string, `:` an integer reply itself); -1 is a null. An error line (`-…`) where a header was
    /// expected is a [`RespError::Server`].
    pub fn header(&mut self, kind: u8) -> Result<Option<i64>, RespError> {
        let rest = &self.buf[self.at..];
        let Some(&first) = rest.first() else { return Ok(None) };
        if first == b'-' {
            return self.error_line();
        }
        if first != kind {
            let expected = match kind {
                b'*' => "an array",
                b'$' => "a bulk string",
                _ => "an integer",
            };
            return Err(RespError::Malformed(format!("{:?} where {expected} was expected", first as char)));
        }
        let (mut n, mut i, negative) = (0i64, 1, rest.get(1) == Some(&b'-'));
        if negative {
            i += 1;
        }
        let digits = i;
        while let Some(&b) = rest.get(i) {
            match b {
                b'0'..=b'9' if i - digits < 18 => n = n * 10 + i64::from(b - b'0'),
                b'\r' if i > digits => {
                    return match rest.get(i + 1) {
                        None => Ok(None),
                        Some(b'\n') => {
                            self.at += i + 2;
                            Ok(Some(if negative { -n } else { n }))
                        }
                        Some(_) => Err(RespError::Malformed("a header without CRLF".into())),
                    };
                }
                _ => return Err(RespError::Malformed(format!("a bad {} header", kind as char))),
            }
            i += 1;
        }
        Ok(None)
    }

    /// A bulk string (not null), borrowed from the buffer.
    pub fn bulk(&mut self) -> Result<Option<&'a [u8]>, RespError> {
        let start = self.at;
        let Some(len) = self.header(b'$')? else { return Ok(None) };
        let Ok(len) = usize::try_from(len) else {
            return Err(RespError::Malformed("a null where a bulk string was expected".into()));
        };
        let Some(body) = self.buf.get(self.at..).and_then(|rest| rest.get(..len + 2)) else {
            self.at = start;
            return Ok(None);
        };
        if &body[len..] != b"\r\n" {
            return Err(RespError::Malformed("a bulk string longer than its header says".into()));
        }
        self.at += len + 2;
        Ok(Some(&body[..len]))
    }

    /// A status line's text (`+…`, without `+` and CRLF); an error line
    /// (`-…`) is a [`RespError::Server`].
    pub fn line(&mut self) -> Result<Option<&'a [u8]>, RespError> {
        match self.buf[self.at..].first() {
            None => Ok(None),
            Some(b'+') => Ok(self.raw_line()),
            Some(b'-') => self.error_line(),
            Some(&other) => Err(RespError::Malformed(format!("{:?} where a status line was expected", other as char))),
        }
    }

    fn error_line<T>(&mut self) -> Result<Option<T>, RespError> {
        match self.raw_line() {
            Some(text) => Err(RespError::Server(text.to_vec())),
            None => Ok(None),
        }
    }

    /// The line at the cursor without its type byte and CRLF.
    fn raw_line(&mut self) -> Option<&'a [u8]> {
        let rest = &self.buf[self.at..];
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        self.at += end + 2;
        Some(&rest[1..end])
    }
}

/// Why RESP bytes could not be taken as the reply expected.
#[derive(Debug, PartialEq, Eq)]
pub enum RespError {
    /// Redis answered with an error (its text, without `-` and CRLF).
    Server(Vec<u8>),
    /// Not the shape of reply the command has.
    Malformed(String),
}

/// Adds the entry at the cursor, an `[id, [field, value, …]]` array of a
/// read reply, to `batch`: one copy of each id, field and value, nothing
/// else. A nil field list (history read of a trimmed entry) becomes a
/// trimmed id. `Ok(false)` while the entry is incomplete (nothing added).
pub fn entry_resp(resp: &mut Resp<'_>, delivery_count: u32, batch: &mut Batch) -> Result<bool> {
    let bad = |e: RespError| match e {
        RespError::Server(text) => anyhow!("error inside an entry: {}", String::from_utf8_lossy(&text)),
        RespError::Malformed(what) => anyhow!("malformed entry: {what}"),
    };
    let start = resp.at;
    let incomplete = |resp: &mut Resp<'_>| {
        resp.at = start;
        Ok(false)
    };
    let Some(parts) = resp.header(b'*').map_err(bad)? else { return incomplete(resp) };
    if parts != 2 {
        bail!("entry is not an [id, fields] pair ({parts} items)");
    }
    let Some(id) = resp.bulk().map_err(bad)? else { return incomplete(resp) };
    let id = std::str::from_utf8(id).map_err(|_| anyhow!("entry id is not UTF-8"))?;
    let Some(items) = resp.header(b'*').map_err(bad)? else { return incomplete(resp) };
    let Ok(items) = usize::try_from(items) else {
        batch.trimmed.push(id.to_owned());
        return Ok(true);
    };
    if items % 2 != 0 {
        bail!("entry {id} has an odd number of field items ({items})");
    }
    // Each item takes at least 4 bytes: never reserve more than could arrive.
    let mut fields = Vec::with_capacity((items / 2).min(resp.buf.len() / 8));
    for _ in 0..items / 2 {
        let Some(name) = resp.bulk().map_err(bad).with_context(|| format!("entry {id}"))? else {
            return incomplete(resp);
        };
        let Some(value) = resp.bulk().map_err(bad).with_context(|| format!("entry {id}"))? else {
            return incomplete(resp);
        };
        fields.push((name.to_vec(), value.to_vec()));
    }
    batch.entries.push(Entry { id: id.to_owned(), fields, delivery_count });
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::reply::read_reply;

    const WIRE: &[u8] = b"*2\r\n$3\r\n1-0\r\n*4\r\n$1\r\nb\r\n$2\r\n\xff\x00\r\n$1\r\na\r\n$0\r\n\r\n\
                          *2\r\n$3\r\n2-0\r\n*-1\r\n";

    fn parse_all(wire: &[u8]) -> Result<Batch> {
        let (mut batch, mut resp) = (Batch::default(), Resp::new(wire));
        while resp.at < wire.len() {
            if !entry_resp(&mut resp, 1, &mut batch)? {
                bail!("incomplete at {}", resp.at);
            }
        }
        Ok(batch)
    }

    /// The hot read's parser (streams/reader.rs) agrees with redis-rs's.
    #[test]
    fn entries_parse_as_the_value_parser_does() {
        let batch = parse_all(WIRE).unwrap();
        let mut header = b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n".to_vec();
        header.extend_from_slice(WIRE);
        let expected = read_reply(redis::parse_redis_value(&header).unwrap(), 1).unwrap();
        assert_eq!(batch, expected);
        assert_eq!(batch.entries[0].fields, vec![(b"b".to_vec(), vec![0xff, 0x00]), (b"a".to_vec(), Vec::new())]);
        assert_eq!(batch.trimmed, vec!["2-0".to_string()]);
    }

    /// Cut anywhere (a reply arriving in pieces), an entry is incomplete:
    /// nothing added, the cursor back at its start; whole, it parses.
    #[test]
    fn a_cut_entry_is_incomplete_not_wrong() {
        let first = WIRE.len() - b"*2\r\n$3\r\n2-0\r\n*-1\r\n".len();
        for cut in 0..first {
            let (mut batch, mut resp) = (Batch::default(), Resp::new(&WIRE[..cut]));
            assert!(!entry_resp(&mut resp, 1, &mut batch).unwrap(), "cut at {cut}");
            assert_eq!((resp.at, batch), (0, Batch::default()), "cut at {cut}");
        }
        let mut resp = Resp::new(&WIRE[..first]);
        assert!(entry_resp(&mut resp, 1, &mut Batch::default()).unwrap());
        assert_eq!(resp.at, first);
    }

    #[test]
    fn malformed_entries_are_errors_not_panics() {
        for wire in [
            &b"*1\r\n$3\r\n1-0\r\n"[..],
            b"*2\r\n$3\r\n1-0\r\n*1\r\n$1\r\nb\r\n",
            b"*2\r\n:1\r\n*0\r\n",
            b"*2\r\n$-1\r\n*0\r\n",
            b"*2\r\n$3\r\n1-00\r\n*0\r\n",
            b"*2\r\n$2\r\n\xff\xfe\r\n*0\r\n",
            b"*x\r\n",
            b"*2\n",
            b"*99999999999999999999\r\n",
            b"*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nb\r\n-ERR oops\r\n",
            b"$1\r\nx\r\n",
        ] {
            assert!(parse_all(wire).is_err(), "{:?}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn headers_nulls_and_error_lines() {
        let mut resp = Resp::new(b":12\r\n*-1\r\n*3\r\n-NOGROUP no such group\r\n+OK\r\n");
        assert_eq!(resp.header(b':'), Ok(Some(12)));
        assert_eq!(resp.header(b'*'), Ok(Some(-1)));
        assert_eq!(resp.header(b'*'), Ok(Some(3)));
        assert_eq!(resp.header(b'*'), Err(RespError::Server(b"NOGROUP no such group".to_vec())));
        assert_eq!(resp.line(), Ok(Some(&b"OK"[..])));
        assert_eq!(resp.header(b'*'), Ok(None));
        assert_eq!(Resp::new(b"-WRONGPASS nope\r\n").line(), Err(RespError::Server(b"WRONGPASS nope".to_vec())));
        assert_eq!(Resp::new(b"+OK\r").line(), Ok(None));
    }
}
