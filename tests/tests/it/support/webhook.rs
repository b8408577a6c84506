//! [`Webhook`]: a real HTTP/1.1 server on a loopback port, in threads of the
//! test, answering as its [`Mode`] says (switchable while it runs) and
//! recording every request and connection. With [`Webhook::start_tls`] it
//! speaks HTTPS with a certificate of a test CA ([`TestCa`], made by the
//! `openssl` command).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the webhook answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 `ok`.
    Ok,
    /// This status and body.
    Status(u16, String),
    /// 200 after this long (the request is recorded when it arrives).
    Slow(Duration),
    /// 307 to this location.
    Redirect(String),
    /// 200 with a body of this many bytes, its length declared (`true`) or chunked.
    Big(usize, bool),
    /// 200 at once, then its 100-byte body one byte per this long.
    Dribble(Duration),
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

/// A running webhook; stops accepting when dropped.
pub struct Webhook {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    scheme: &'static str,
}

impl Webhook {
    /// An HTTP webhook on a free port of 127.0.0.1.
    pub fn start(mode: Mode) -> Self {
        Self::start_on("127.0.0.1", mode, None)
    }

    /// An HTTPS webhook on a free port of 127.0.0.1, its certificate signed by `ca`.
    pub fn start_tls(mode: Mode, ca: &TestCa) -> Self {
        Self::start_on("127.0.0.1", mode, Some(ca.server_config()))
    }

    /// An HTTP webhook on a free port of `ip` (any loopback address).
    pub fn start_on(ip: &str, mode: Mode, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind((ip, 0)).expect("bind the webhook");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let hook = Webhook {
            addr,
            mode: Arc::new(Mutex::new(mode)),
            received: Arc::default(),
            connections: Arc::default(),
            stop: Arc::default(),
            scheme: if tls.is_some() { "https" } else { "http" },
        };
        let (mode, received, connections, stop) =
            (hook.mode.clone(), hook.received.clone(), hook.connections.clone(), hook.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        connections.fetch_add(1, Ordering::SeqCst);
                        let (mode, received, tls) = (mode.clone(), received.clone(), tls.clone());
                        std::thread::spawn(move || serve(stream, &mode, &received, tls));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        hook
    }

    /// `scheme://addr` (no slash).
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// `scheme://addr/hook`.
    pub fn url(&self) -> String {
        format!("{}/hook", self.origin())
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// TCP connections accepted (a refused request never opens one).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    stream: TcpStream,
    mode: &Mutex<Mode>,
    received: &Mutex<Vec<Received>>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match tls {
        Some(config) => {
            let Ok(conn) = rustls::ServerConnection::new(config) else { return };
            let mut tls = rustls::StreamOwned::new(conn, stream);
            answer(&mut tls, mode, received);
        }
        None => {
            let mut stream = stream;
            answer(&mut stream, mode, received);
        }
    }
}

/// Reads one request, records it, answers it (one request per connection).
fn answer<S: Read + Write>(stream: &mut S, mode: &Mutex<Mode>, received: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(&mut *stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let (mut length, mut key) = (0usize, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "idempotency-key" => key = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mode = mode.lock().unwrap().clone();
    let status = match &mode {
        Mode::Ok | Mode::Slow(_) | Mode::Big(..) | Mode::Dribble(_) => 200,
        Mode::Status(status, _) => *status,
        Mode::Redirect(_) => 307,
    };
    let body = String::from_utf8_lossy(&body).into_owned();
    received.lock().unwrap().push(Received { method, path, idempotency_key: key, body, status });
    let head = |extra: &str, length: usize| {
        format!("HTTP/1.1 {status} X\r\nConnection: close\r\n{extra}Content-Length: {length}\r\n\r\n")
    };
    let reply = match mode {
        Mode::Ok => format!("{}ok", head("", 2)).into_bytes(),
        Mode::Slow(delay) => {
            std::thread::sleep(delay);
            format!("{}ok", head("", 2)).into_bytes()
        }
        Mode::Status(_, text) => format!("{}{text}", head("", text.len())).into_bytes(),
        Mode::Redirect(location) => head(&format!("Location: {location}\r\n"), 0).into_bytes(),
        Mode::Dribble(pause) => {
            let _ = stream.write_all(head("", 100).as_bytes());
            for _ in 0..100 {
                let _ = stream.flush();
                std::thread::sleep(pause);
                if stream.write_all(b"x").is_err() {
                    return;
                }
            }
            Vec::new()
        }
        Mode::Big(size, true) => [head("", size).into_bytes(), vec![b'x'; size]].concat(),
        Mode::Big(size, false) => {
            let mut reply = b"HTTP/1.1 200 X\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for chunk in vec![b'x'; size].chunks(16 * 1024) {
                reply.extend(format!("{:x}\r\n", chunk.len()).bytes());
                reply.extend(chunk);
                reply.extend(b"\r\n");
            }
            reply.extend(b"0\r\n\r\n");
            reply
        }
    };
    let _ = stream.write_all(&reply);
    let _ = stream.flush();
}

/// A certificate authority of one test, and a server certificate it signed
/// for 127.0.0.1 and localhost: PEM files in a temporary folder.
pub struct TestCa {
    pub dir: PathBuf,
}

impl TestCa {
    /// Makes the CA and the server certificate with the `openssl` command.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("host-test-ca-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &dir,
            &[
                &["req", "-x509"],
                &ec[..],
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=host test CA"],
            ]
            .concat(),
        );
        openssl(
            &dir,
            &[&["req"], &ec[..], &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat(),
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        );
        TestCa { dir }
    }

    /// The CA certificate (what `SSL_CERT_FILE` names for the host to trust it).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(self.dir.join("server.pem")).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(self.dir.join("server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Arc::new(config)
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cannot run openssl: install Debian's openssl package");
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}
