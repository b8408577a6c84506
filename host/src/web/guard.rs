//! Which requests the host's HTTP server answers: a `Host` naming this server
//! (a DNS-rebound name is refused), no request a browser sends on behalf of
//! another site, and, on the dashboard, the per-run token on every call that
//! changes something. A page elsewhere can reach a loopback port; these
//! checks keep it from reading or driving what is served there.

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

/// The header that carries the token (the page sends it; scripts add it).
pub const TOKEN_HEADER: &str = "x-host-token";
/// Random bytes in a token: 128 bits, beyond guessing over HTTP.
const TOKEN_BYTES: usize = 16;

/// The dashboard's per-run secret: the page gets it embedded, scripts read it
/// from the terminal or the `--token-file`.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// A fresh token from the kernel's random source.
    pub fn new() -> Result<Self> {
        let mut bytes = [0u8; TOKEN_BYTES];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .context("cannot read /dev/urandom for the dashboard's token")?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into()))
    }

    /// The token's text (hex).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in constant time, so response timing does not reveal a prefix.
    fn matches(&self, given: &[u8]) -> bool {
        let ours = self.0.as_bytes();
        ours.len() == given.len() && ours.iter().zip(given).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// Writes the token to `path`, readable by the owner only (0600); an
    /// older file there is replaced, never followed if it is a link.
    pub fn write_to(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot replace the token file {}", path.display()));
            }
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create the token file {}", path.display()))?;
        writeln!(file, "{}", self.as_str()).with_context(|| format!("cannot write the token file {}", path.display()))
    }
}

/// The checks of one server.
#[derive(Clone)]
pub struct Guard {
    /// The address the server listens on.
    bound: SocketAddr,
    /// Any `Host` name is accepted: a metrics-only server on a non-loopback
    /// address is reachable directly, so a rebound name gains nothing.
    any_host: bool,
    /// Required on every call that is not GET/HEAD; `None`: the server changes nothing.
    token: Option<Token>,
    /// Paths that take POSTs with a token of their own instead (a webhook a
    /// plugin calls: the plugin holds that token, never the dashboard's).
    webhooks: Vec<(&'static str, Token)>,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// The `Host` names another server (HTTP 421).
    Host(String),
    /// A browser sent it for another site (HTTP 403).
    CrossSite(String),
    /// A change without the right token (HTTP 403).
    Token,
}

impl Guard {
    /// The dashboard's server: strict `Host` and the token.
    pub fn dashboard(bound: SocketAddr, token: Token) -> Self {
        Guard { bound, any_host: false, token: Some(token), webhooks: Vec::new() }
    }

    /// POSTs to `path` need `token` (in the same header) instead of the
    /// dashboard's: whoever holds it can call that path and nothing else.
    pub fn webhook(mut self, path: &'static str, token: Token) -> Self {
        self.webhooks.push((path, token));
        self
    }

    /// `host run --metrics`: read-only, for Prometheus; `Host` checked when
    /// bound to loopback (where only a rebound name could reach it from a page).
    pub fn metrics(bound: SocketAddr) -> Self {
        Guard { bound, any_host: !bound.ip().is_loopback(), token: None, webhooks: Vec::new() }
    }

    /// `app` behind these checks.
    pub fn protect(self, app: Router) -> Router {
        app.layer(axum::middleware::from_fn_with_state(self, check))
    }

    /// Whether a request with `method` for `path` and `headers` may be served.
    fn admit(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Refusal> {
        let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let host = text(header::HOST.as_str()).unwrap_or("");
        if !self.host_allowed(host) {
            return Err(Refusal::Host(host.to_string()));
        }
        // Sent by browsers only: `none` is a typed URL or bookmark. A page of
        // another site may still open the dashboard (a top-level navigation),
        // but not frame it, fetch from it or post to it.
        if let Some(site) = text("sec-fetch-site")
            && site != "same-origin"
            && site != "none"
        {
            let navigation = *method == Method::GET
                && text("sec-fetch-mode") == Some("navigate")
                && text("sec-fetch-dest") == Some("document");
            if !navigation {
                return Err(Refusal::CrossSite(format!("Sec-Fetch-Site: {site}")));
            }
        }
        if let Some(origin) = text(header::ORIGIN.as_str())
            && !origin.eq_ignore_ascii_case(&format!("http://{host}"))
        {
            return Err(Refusal::CrossSite(format!("Origin: {origin}")));
        }
        let webhook = self.webhooks.iter().find(|(p, _)| *p == path).map(|(_, t)| t);
        if let Some(token) = webhook.or(self.token.as_ref())
            && *method != Method::GET
            && *method != Method::HEAD
            && !headers.get(TOKEN_HEADER).is_some_and(|given| token.matches(given.as_bytes()))
        {
            return Err(Refusal::Token);
        }
        Ok(())
    }

    /// `localhost`, a loopback address, the bound address, or, bound to all
    /// addresses, any address: a DNS-rebinding page can only send a name.
    fn host_allowed(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map_or("", |(ip, _)| ip),
            None => host
                .rsplit_once(':')
                .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                .map_or(host, |(n, _)| n),
        };
        if name.is_empty() {
            return false;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback() || ip == self.bound.ip() || self.bound.ip().is_unspecified(),
            Err(_) => name.eq_ignore_ascii_case("localhost") || self.any_host,
        }
    }
}

async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard.admit(request.method(), request.uri().path(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::warn!(method = %request.method(), path = %request.uri().path(), "refused an HTTP request: {refusal:?}");
            refusal.respond(guard.bound)
        }
    }
}

impl Refusal {
    fn respond(self, bound: SocketAddr) -> Response {
        let (status, error) = match self {
            Refusal::Host(host) => (
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "refused: Host {host:?} does not name this server (a page on another name may have rebound \
                    it to this address); use http://{bound}/ or http://localhost:{}/",
                    bound.port()
                ),
            ),
            Refusal::CrossSite(why) => {
                (StatusCode::FORBIDDEN, format!("refused: a cross-site request ({why}); use the dashboard's own page"))
            }
            Refusal::Token => (
                StatusCode::FORBIDDEN,
                format!(
                    "refused: missing or wrong {TOKEN_HEADER} header; the demo prints the token at start \
                    (and writes it to --token-file)"
                ),
            ),
        };
        (status, Json(serde_json::json!({ "error": error }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn dashboard() -> Guard {
        Guard::dashboard("127.0.0.1:8788".parse().unwrap(), Token("t0k".into()))
    }

    #[test]
    fn hosts() {
        let guard = dashboard();
        for ok in ["127.0.0.1:8788", "localhost:8788", "LOCALHOST", "[::1]:8788", "127.0.0.2"] {
            assert!(guard.host_allowed(ok), "{ok}");
        }
        for bad in ["attacker.example:8788", "attacker.example", "", "10.0.0.1:8788", "localhost.evil:80", "[::1"] {
            assert!(!guard.host_allowed(bad), "{bad}");
        }
        let all = Guard::dashboard("0.0.0.0:8788".parse().unwrap(), Token("t".into()));
        assert!(all.host_allowed("10.0.0.1:8788") && !all.host_allowed("box.lan:8788"));
        let metrics = Guard::metrics("127.0.0.1:9464".parse().unwrap());
        assert!(!metrics.host_allowed("attacker.example:9464"));
        assert!(Guard::metrics("0.0.0.0:9464".parse().unwrap()).host_allowed("prometheus-target:9464"));
    }

    #[test]
    fn requests() {
        let guard = dashboard();
        let host = ("host", "127.0.0.1:8788");
        let token = (TOKEN_HEADER, "t0k");
        assert_eq!(guard.admit(&Method::GET, "/api/x", &headers(&[host])), Ok(()));
        assert_eq!(guard.admit(&Method::POST, "/api/x", &headers(&[host, token])), Ok(()));
        assert_eq!(guard.admit(&Method::POST, "/api/x", &headers(&[host])), Err(Refusal::Token));
        assert_eq!(
            guard.admit(&Method::DELETE, "/api/x", &headers(&[host, (TOKEN_HEADER, "t0K")])),
            Err(Refusal::Token)
        );
        let evil = ("origin", "https://evil.example");
        assert!(matches!(
            guard.admit(&Method::POST, "/api/x", &headers(&[host, token, evil])),
            Err(Refusal::CrossSite(_))
        ));
        let same = ("origin", "http://127.0.0.1:8788");
        assert_eq!(guard.admit(&Method::POST, "/api/x", &headers(&[host, token, same])), Ok(()));
        let cross = ("sec-fetch-site", "cross-site");
        assert!(matches!(guard.admit(&Method::GET, "/api/x", &headers(&[host, cross])), Err(Refusal::CrossSite(_))));
        assert!(matches!(
            guard.admit(&Method::GET, "/api/x", &headers(&[host, ("sec-fetch-site", "same-site")])),
            Err(Refusal::CrossSite(_))
        ));
        let navigate = [host, cross, ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")];
        assert_eq!(guard.admit(&Method::GET, "/api/x", &headers(&navigate)), Ok(()));
        let framed = [host, cross, ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe")];
        assert!(matches!(guard.admit(&Method::GET, "/api/x", &headers(&framed)), Err(Refusal::CrossSite(_))));
        assert!(matches!(
            guard.admit(&Method::GET, "/api/x", &headers(&[("host", "attacker.example:8788")])),
            Err(Refusal::Host(_))
        ));
        assert!(matches!(guard.admit(&Method::GET, "/api/x", &headers(&[])), Err(Refusal::Host(_))));
        let metrics = Guard::metrics("127.0.0.1:9464".parse().unwrap());
        assert_eq!(metrics.admit(&Method::POST, "/", &headers(&[("host", "127.0.0.1:9464")])), Ok(()));
    }

    /// A webhook path takes its own token and only it; its token opens nothing else.
    #[test]
    fn webhooks_take_their_own_token() {
        let guard = dashboard().webhook("/api/sink", Token("s1nk".into()));
        let host = ("host", "127.0.0.1:8788");
        let (admin, sink) = ((TOKEN_HEADER, "t0k"), (TOKEN_HEADER, "s1nk"));
        assert_eq!(guard.admit(&Method::POST, "/api/sink", &headers(&[host, sink])), Ok(()));
        assert_eq!(guard.admit(&Method::POST, "/api/sink", &headers(&[host, admin])), Err(Refusal::Token));
        assert_eq!(guard.admit(&Method::POST, "/api/sink", &headers(&[host])), Err(Refusal::Token));
        assert_eq!(guard.admit(&Method::POST, "/api/reset", &headers(&[host, sink])), Err(Refusal::Token));
        assert_eq!(guard.admit(&Method::POST, "/api/sink/switches", &headers(&[host, sink])), Err(Refusal::Token));
        assert_eq!(guard.admit(&Method::POST, "/api/reset", &headers(&[host, admin])), Ok(()));
        let evil = ("origin", "https://evil.example");
        assert!(matches!(
            guard.admit(&Method::POST, "/api/sink", &headers(&[host, sink, evil])),
            Err(Refusal::CrossSite(_))
        ));
    }

    #[test]
    fn tokens() {
        let (a, b) = (Token::new().unwrap(), Token::new().unwrap());
        assert_eq!(a.as_str().len(), 2 * TOKEN_BYTES);
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.matches(a.as_str().as_bytes()) && !a.matches(b.as_str().as_bytes()) && !a.matches(b""));
        let path = std::env::temp_dir().join(format!("host-token-test-{}", std::process::id()));
        a.write_to(&path).unwrap();
        b.write_to(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), b.as_str());
        std::fs::remove_file(&path).unwrap();
    }
}
