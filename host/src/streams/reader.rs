//! The consumers' hot read, `XREADGROUP … >`, on a connection of its own
//! whose replies are parsed straight into entries.
//!
//! Why not redis-rs here: its reply parser (combine-based, one boxed `Value`
//! per item) was the largest single cost per entry in the profile (~12.7 k
//! instructions per 3-field entry by callgrind), more than the Wasm call.
//! Here the reply is parsed where it lies in the read buffer, entry by entry
//! as it arrives ([`Resp`]: only array and bulk-string headers, the
//! few shapes this reply has), and each id, field and value is copied once
//! into the entry: ~2.0 k instructions per entry, copies included. (redis-protocol's range
//! decoder, tried first, took ~4.5 k: docs/performance.md.)
//!
//! One command at a time, RESP2, plain TCP or a Unix socket (the URL forms the
//! rest of the host accepts); AUTH and SELECT from the URL. A reader whose
//! command fails, times out or is abandoned is dropped, never reused.

use super::reply::Batch;
use super::resp::{Resp, RespError, entry_resp};
use super::{CONNECT_TIMEOUT, REPLY_SLACK};
use anyhow::{Context, Result, anyhow, bail};
use redis::{Cmd, ConnectionAddr, ConnectionInfo};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes read per call at least (a full COUNT 500 batch of small entries is ~50 KB).
const READ_CHUNK: usize = 64 * 1024;

/// Entries reserved ahead at most, whatever count a reply header announces.
const MAX_RESERVE: usize = 1 << 16;

/// Either transport the host supports.
enum Io {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// A connection that only reads new entries for one consumer.
pub struct Reader {
    io: Io,
    /// Bytes received and not yet consumed (a reply is consumed whole).
    buf: Vec<u8>,
    /// The command being sent (kept to reuse its allocation).
    out: Vec<u8>,
    /// On a cluster: where a `MOVED` or `ASK` reply is noted for the next reader.
    cluster: Option<std::sync::Arc<super::cluster::Cluster>>,
    /// Each command goes after an `ASKING` (an `ASK` sent this reader to a
    /// node importing its slot; harmless once the slot is the node's).
    asking: bool,
}

impl Reader {
    /// Connects to the address of `info` and authenticates / selects the
    /// database it names. `shown_url` (password masked) is for messages.
    pub(super) async fn open(info: &ConnectionInfo, shown_url: &str) -> Result<Reader> {
        let unreachable = |e: &dyn std::fmt::Display| {
            anyhow!("cannot reach Redis at {shown_url}: {e} (is redis-server running? set --redis or REDIS_URL)")
        };
        let connect = async {
            match info.addr() {
                ConnectionAddr::Tcp(host, port) => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(true)?;
                    Ok(Io::Tcp(stream))
                }
                ConnectionAddr::Unix(path) => Ok(Io::Unix(tokio::net::UnixStream::connect(path).await?)),
                other => Err(std::io::Error::other(format!("unsupported address {other} (TLS is not built in)"))),
            }
        };
        let io = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(io)) => io,
            Ok(Err(error)) => return Err(unreachable(&error)),
            Err(_) => return Err(unreachable(&format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()))),
        };
        let mut reader =
            Reader { io, buf: Vec::with_capacity(READ_CHUNK), out: Vec::new(), cluster: None, asking: false };
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password);
            reader.call_ok(&auth, "AUTH").await?;
        }
        if settings.db() != 0 {
            reader.call_ok(redis::cmd("SELECT").arg(settings.db()), "SELECT").await?;
        }
        Ok(reader)
    }

    /// On a cluster: a `MOVED` or `ASK` reply is noted in `cluster` for the
    /// next reader; with `asking`, each command goes after an `ASKING`.
    pub(super) fn on_cluster(mut self, cluster: std::sync::Arc<super::cluster::Cluster>, asking: bool) -> Self {
        self.cluster = Some(cluster);
        self.asking = asking;
        self
    }

    /// `XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS stream >`: new entries
    /// for `consumer`, in stream order (delivery count 1); empty when `block`
    /// passed without any. With `acks`, an `XACK` of them goes first in the
    /// same write (one round trip for both); an error from either fails the
    /// whole, and then whether the acks took effect is unknown (XACK again:
    /// acking twice is harmless).
    pub async fn read_new(
        &mut self,
        acks: &[String],
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Batch> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(group).arg(consumer).arg("COUNT").arg(count);
        cmd.arg("BLOCK").arg(block.as_millis() as u64).arg("STREAMS").arg(stream).arg(">");
        let ack = (!acks.is_empty()).then(|| {
            let mut ack = redis::cmd("XACK");
            ack.arg(stream).arg(group).arg(acks);
            ack
        });
        let timeout = block + REPLY_SLACK;
        let read = tokio::time::timeout(timeout, self.read_group(ack.as_ref(), &cmd))
            .await
            .map_err(|_| anyhow!("no reply within {} ms", timeout.as_millis()))
            .flatten();
        if let (Err(error), Some(cluster)) = (&read, &self.cluster) {
            cluster.note_redirect(error);
        }
        read.with_context(|| format!("XREADGROUP > on stream {stream:?} group {group:?} failed"))
    }

    /// Sends an XREADGROUP of one stream (after `ack`, if any) and parses
    /// its reply, entry by entry as they arrive: `*1 *2 $key *N` then N
    /// `[id, [field, value, …]]`, or a null array when the block timed out.
    async fn read_group(&mut self, ack: Option<&Cmd>, cmd: &Cmd) -> Result<Batch> {
        let asking = redis::cmd("ASKING");
        let mut cmds = Vec::with_capacity(4);
        for command in ack.into_iter().chain([cmd]) {
            if self.asking {
                cmds.push(&asking);
            }
            cmds.push(command);
        }
        self.send(&cmds).await?;
        let mut at = 0;
        if ack.is_some() {
            self.asked(&mut at).await?;
            self.next(&mut at, |resp| resp.header(b':')).await.context("XACK failed")?;
        }
        self.asked(&mut at).await?;
        let mut batch = Batch::default();
        match self.array_len(&mut at).await? {
            None => {}
            Some(1) => {
                if self.array_len(&mut at).await? != Some(2) {
                    bail!("unexpected XREADGROUP reply: a stream is not a [key, entries] pair");
                }
                self.next(&mut at, |resp| Ok(resp.bulk()?.map(|_key| ()))).await?;
                let entries = self.array_len(&mut at).await?.unwrap_or(0);
                batch.entries.reserve(entries.min(MAX_RESERVE));
                for _ in 0..entries {
                    loop {
                        let mut resp = Resp::new(&self.buf);
                        resp.at = at;
                        if entry_resp(&mut resp, 1, &mut batch).context("unexpected XREADGROUP reply")? {
                            at = resp.at;
                            break;
                        }
                        self.fill().await?;
                    }
                }
            }
            Some(n) => bail!("unexpected XREADGROUP reply: {n} streams for one asked"),
        }
        self.consume(at);
        Ok(batch)
    }

    /// The `+OK` of an `ASKING`, when this reader sends them.
    async fn asked(&mut self, at: &mut usize) -> Result<()> {
        if self.asking {
            let ok = self.next(at, |resp| Ok(resp.line()?.map(|text| text == b"OK"))).await.context("ASKING failed")?;
            if !ok {
                bail!("unexpected reply to ASKING");
            }
        }
        Ok(())
    }

    /// Sends `cmd` and expects `+OK`.
    async fn call_ok(&mut self, cmd: &Cmd, what: &str) -> Result<()> {
        let exchange = async {
            self.send(&[cmd]).await?;
            let mut at = 0;
            let ok = self.next(&mut at, |resp| Ok(resp.line()?.map(|text| text == b"OK"))).await?;
            self.consume(at);
            if !ok {
                bail!("unexpected reply");
            }
            Ok(())
        };
        tokio::time::timeout(CONNECT_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("no reply within {} ms", CONNECT_TIMEOUT.as_millis()))
            .flatten()
            .with_context(|| format!("{what} failed"))
    }

    /// Sends `cmds` in one write.
    async fn send(&mut self, cmds: &[&Cmd]) -> Result<()> {
        self.out.clear();
        for cmd in cmds {
            cmd.write_packed_command(&mut self.out);
        }
        match &mut self.io {
            Io::Tcp(io) => io.write_all(&self.out).await,
            Io::Unix(io) => io.write_all(&self.out).await,
        }
        .context("cannot send the command")
    }

    /// Reads more of the reply into `buf`: at least a chunk, and as much again
    /// as is buffered, so a large reply takes few reads.
    async fn fill(&mut self) -> Result<()> {
        self.buf.reserve(READ_CHUNK.max(self.buf.len()));
        let read = match &mut self.io {
            Io::Tcp(io) => io.read_buf(&mut self.buf).await,
            Io::Unix(io) => io.read_buf(&mut self.buf).await,
        };
        if read.context("cannot read the reply")? == 0 {
            bail!("connection closed by Redis");
        }
        Ok(())
    }

    /// Runs `parse` on the reply from `at`, reading more of it until the item
    /// is whole; moves `at` past it. An error reply becomes redis-rs's own
    /// error type, so callers tell errors apart as elsewhere (`NOGROUP`:
    /// [`super::is_missing_group`]).
    async fn next<T>(
        &mut self,
        at: &mut usize,
        parse: impl Fn(&mut Resp<'_>) -> Result<Option<T>, RespError>,
    ) -> Result<T> {
        loop {
            let mut resp = Resp::new(&self.buf);
            resp.at = *at;
            match parse(&mut resp) {
                Ok(Some(value)) => {
                    *at = resp.at;
                    return Ok(value);
                }
                Ok(None) => {}
                Err(RespError::Server(text)) => return Err(server_error(&text)),
                Err(RespError::Malformed(what)) => bail!("malformed reply: {what}"),
            }
            self.fill().await?;
        }
    }

    /// The length of the array whose header (`*N` CRLF) is at `at`, `None`
    /// for a null array; moves `at` past the header only. (The arrays
    /// themselves are not parsed whole: a reply of many entries is taken
    /// entry by entry as it arrives, never re-scanned from its start.)
    async fn array_len(&mut self, at: &mut usize) -> Result<Option<usize>> {
        let len = self.next(at, |resp| resp.header(b'*')).await?;
        Ok(usize::try_from(len).ok())
    }

    /// Drops the first `used` bytes (a reply already turned into values).
    fn consume(&mut self, used: usize) {
        if used >= self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..used);
        }
    }
}

/// A Redis error reply (its text without `-` and CRLF) as redis-rs's error.
fn server_error(text: &[u8]) -> anyhow::Error {
    let mut line = Vec::with_capacity(text.len() + 3);
    line.push(b'-');
    line.extend_from_slice(text);
    line.extend_from_slice(b"\r\n");
    match redis::parse_redis_value(&line) {
        Ok(redis::Value::ServerError(error)) => redis::RedisError::from(error).into(),
        _ => anyhow!("{}", String::from_utf8_lossy(text)),
    }
}
