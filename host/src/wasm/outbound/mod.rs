//! Outbound HTTP (`wasi:http/outgoing-handler`): the plugin's requests go
//! only to the origins its grants name (scheme, host and port all equal),
//! within a timeout and a response-size cap, and never past the call's
//! deadline. A request to any other origin fails with `HTTP-request-denied`
//! before a socket is opened; the host logs it (within the plugin's log
//! budget) and counts it. Redirects are never followed here: a plugin that
//! follows one sends a new request, checked like any other.
//!
//! The requests are sent by the host's own client ([`client`]), not
//! wasmtime-wasi-http's default one: that one trusts a compiled-in root list
//! and has no size cap. HTTPS here trusts the system's roots (or the ones
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` name).

mod client;
mod stand_in;

use crate::handler::{HttpAnswers, PluginTag};
use crate::settings::{Limits, Origin};
use crate::wasm::log_budget::{LogBudget, one_line};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Margin kept before the call's deadline: a request still running then fails
/// with a timeout the plugin sees, rather than the call being cut as a fault.
/// The epoch trap may fire up to one tick (10 ms) before the deadline, and
/// the guest needs a moment to turn the error into its verdict.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);
/// Requests of one instance in flight at once (until their connection ends),
/// at most: a plugin that fires requests without waiting for them gets
/// `connection-limit-reached` past this, instead of taking the host's
/// sockets and cores.
pub const MAX_IN_FLIGHT: usize = 8;

/// The answer `send_request` gives wasmtime-wasi-http.
type Sent = Box<
    dyn Future<Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>>
        + Send,
>;

/// One plugin instance's outbound HTTP: what it may reach and how long and
/// large a request may be.
pub(crate) struct OutboundHttp {
    tag: Arc<PluginTag>,
    allowed: Arc<[Origin]>,
    timeout: Duration,
    max_response_bytes: usize,
    log: Arc<LogBudget>,
    /// Permits for requests in flight ([`MAX_IN_FLIGHT`]).
    in_flight: Arc<tokio::sync::Semaphore>,
    /// When the call in progress must be over (kept by [`crate::wasm::host_state::HostState`]).
    pub(crate) call_deadline: Instant,
    /// `host test`: every request is answered by these, none sent.
    answers: Option<Arc<dyn HttpAnswers>>,
}

impl OutboundHttp {
    /// The policy of `limits` for plugin `tag`, logging into `log`.
    pub(crate) fn new(
        tag: Arc<PluginTag>,
        limits: &Limits,
        log: Arc<LogBudget>,
        call_deadline: Instant,
        answers: Option<Arc<dyn HttpAnswers>>,
    ) -> Self {
        // Validated with the settings: an origin that does not parse is never granted.
        let allowed = limits.grants.http.iter().filter_map(|o| Origin::parse(o).ok()).collect();
        OutboundHttp {
            tag,
            allowed,
            timeout: limits.http_timeout,
            max_response_bytes: limits.http_max_response_bytes,
            log,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            call_deadline,
            answers,
        }
    }

    /// Logs `message` as the plugin's, within its log budget.
    fn warn(&self, message: &str) {
        let line = one_line(message);
        if self.log.admit(line.len(), message.len()) {
            tracing::warn!(plugin = %self.tag.name, version = %self.tag.version, "outbound HTTP: {line}");
        }
    }

    /// The origin of `uri` if the grants allow it; else why not.
    fn check(&self, uri: &http::Uri) -> Result<Origin, String> {
        // User info would travel in the Host header; a port that is not a
        // number must not quietly become the scheme's default.
        let authority = uri.authority().map_or("", |a| a.as_str());
        if authority.contains('@') {
            return Err(format!(
                "request to {} denied: user info in the URL is not allowed",
                uri.host().unwrap_or("?")
            ));
        }
        if uri.port().is_some() && uri.port_u16().is_none() {
            return Err(format!("request to {authority} denied: its port is not a number"));
        }
        let scheme = uri.scheme_str().unwrap_or("");
        let host = uri.host().unwrap_or("");
        let default = match scheme {
            "http" => 80,
            "https" => 443,
            // The origin only: a path or query may carry secrets, and this is logged.
            _ => return Err(format!("request to {scheme}://{host} denied: only http and https are supported")),
        };
        let origin = Origin {
            scheme: scheme.to_string(),
            host: host.to_ascii_lowercase(),
            port: uri.port_u16().unwrap_or(default),
        };
        if self.allowed.contains(&origin) {
            return Ok(origin);
        }
        let granted = if self.allowed.is_empty() {
            "nothing is granted: add it to [grant] http in the plugin's sidecar, or --grant-http".to_string()
        } else {
            let list: Vec<String> = self.allowed.iter().map(Origin::to_string).collect();
            format!("granted: {}", list.join(", "))
        };
        Err(format!("request to {origin} denied: not a granted origin ({granted})"))
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        if let Some(answers) = &self.answers {
            return stand_in::answer(answers.clone(), request);
        }
        let metrics = crate::metrics::global();
        let origin = match self.check(request.uri()) {
            Ok(origin) => origin,
            Err(denied) => {
                metrics.http_denied(&self.tag, "origin");
                self.warn(&denied);
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            metrics.http_denied(&self.tag, "in_flight");
            self.warn(&format!(
                "request to {origin} refused: {MAX_IN_FLIGHT} requests of this plugin instance are already in flight"
            ));
            return Box::new(async { Err(Error::ConnectionLimitReached) });
        };
        let now = Instant::now();
        let mut until = (now + self.timeout).min(self.call_deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(now));
        if let Some(first_byte) = options.and_then(|o| o.first_byte_timeout.max(o.connect_timeout)) {
            until = until.min(now + first_byte);
        }
        let to = client::Request { origin, until, max_response_bytes: self.max_response_bytes, permit };
        let (tag, log) = (self.tag.clone(), self.log.clone());
        Box::new(async move {
            let origin = to.origin.to_string();
            let sent = client::send(to, request).await;
            let status = match &sent {
                Ok((response, _)) => response.status().as_str().to_string(),
                Err(error) => client::error_kind(error).to_string(),
            };
            metrics.http_request(&tag, &origin, &status, now.elapsed());
            if let Err(error) = &sent {
                let message = format!("request to {origin} failed: {error}");
                let line = one_line(&message);
                if log.admit(line.len(), message.len()) {
                    tracing::warn!(plugin = %tag.name, version = %tag.version, "outbound HTTP: {line}");
                }
            }
            sent
        })
    }

    // The defaults log every failure at warn, outside the plugin's log
    // budget; failures are logged by `send_request` instead.
    fn p2_error_from_hyper(&mut self, _: &hyper::Error) -> ErrorCode {
        ErrorCode::HttpProtocolError
    }

    fn p2_error_from_connect(&mut self, error: &std::io::Error) -> ErrorCode {
        match error.kind() {
            std::io::ErrorKind::ConnectionRefused => ErrorCode::ConnectionRefused,
            std::io::ErrorKind::TimedOut => ErrorCode::ConnectionTimeout,
            std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                ErrorCode::DestinationUnavailable
            }
            std::io::ErrorKind::NotFound => ErrorCode::DestinationNotFound,
            _ => ErrorCode::ConnectionTerminated,
        }
    }

    fn p2_error_from_tls(&mut self, error: &std::io::Error) -> ErrorCode {
        let rustls = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
        match rustls {
            Some(rustls::Error::InvalidCertificate(_)) => ErrorCode::TlsCertificateError,
            Some(rustls::Error::AlertReceived(alert)) => {
                ErrorCode::TlsAlertReceived(wasmtime_wasi_http::p2::bindings::http::types::TlsAlertReceivedPayload {
                    alert_id: Some(u8::from(*alert)),
                    alert_message: Some(format!("{alert:?}")),
                })
            }
            _ => ErrorCode::TlsProtocolError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> OutboundHttp {
        let http = origins.iter().map(|o| o.to_string()).collect();
        let limits =
            Limits { grants: Arc::new(crate::settings::Grants { http, ..Default::default() }), ..Default::default() };
        let tag = Arc::new(PluginTag { name: "p".into(), version: "v".into() });
        OutboundHttp::new(tag, &limits, Arc::default(), Instant::now(), None)
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        let p = policy(&["http://127.0.0.1:9000", "https://Hooks.Example.com"]);
        let check = |uri: &str| p.check(&uri.parse().unwrap()).map(|o| o.to_string());
        assert_eq!(check("http://127.0.0.1:9000/x?y"), Ok("http://127.0.0.1:9000".into()));
        assert_eq!(check("https://hooks.example.COM/a"), Ok("https://hooks.example.com:443".into()));
        assert_eq!(check("https://hooks.example.com:443/a"), Ok("https://hooks.example.com:443".into()));
        for denied in [
            "http://127.0.0.1:9001/",
            "https://127.0.0.1:9000/",
            "http://127.0.0.2:9000/",
            "http://hooks.example.com/",
            "https://hooks.example.com:8443/",
            "https://evil.example.com/",
        ] {
            let error = check(denied).unwrap_err();
            assert!(error.contains("denied: not a granted origin (granted: http://127.0.0.1:9000"), "{error}");
        }
        for odd in ["http://user:pw@127.0.0.1:9000/", "http://x@127.0.0.1:9000/"] {
            assert!(check(odd).unwrap_err().contains("user info"), "{odd}");
        }
        let none = policy(&[]);
        let error = none.check(&"http://127.0.0.1:9000/".parse().unwrap()).unwrap_err();
        assert!(error.contains("nothing is granted"), "{error}");
    }
}
