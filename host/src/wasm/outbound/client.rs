//! The host's HTTP/1.1 client for plugins' requests: one connection per
//! request (webhook traffic, not a crawler), TLS by rustls with the system's
//! roots, every step bounded by the request's deadline, and the response
//! body cut at its cap (a declared `Content-Length` over the cap fails at
//! once; a body streamed past it fails when it gets there).

use crate::settings::Origin;
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, WasiBody};

/// One granted request: where it goes, when it must be over, how much may come back.
pub(super) struct Request {
    pub(super) origin: Origin,
    pub(super) until: Instant,
    pub(super) max_response_bytes: usize,
    /// Held until the connection ends: one of the instance's requests in flight.
    pub(super) permit: tokio::sync::OwnedSemaphorePermit,
}

type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// Sends `request` (its URI absolute, as wasmtime-wasi-http builds it).
pub(super) async fn send(
    to: Request,
    mut request: http::Request<WasiBody>,
) -> Result<(http::Response<WasiBody>, Io), Error> {
    let until = tokio::time::Instant::from_std(to.until);
    let head = request.method() == http::Method::HEAD;
    let timed = |what| move |_| what;
    let host = to.origin.host.trim_start_matches('[').trim_end_matches(']').to_string();
    let tcp = tokio::time::timeout_at(until, TcpStream::connect((host.as_str(), to.origin.port)))
        .await
        .map_err(timed(Error::ConnectionTimeout))?
        .map_err(Error::Connect)?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = if to.origin.scheme == "https" {
        let name = rustls::pki_types::ServerName::try_from(host)
            .map_err(|_| Error::DnsError { rcode: Some("invalid DNS name".into()), info_code: None })?;
        let tls = tokio::time::timeout_at(until, tls_connector()?.connect(name, tcp))
            .await
            .map_err(timed(Error::ConnectionTimeout))?
            .map_err(Error::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) =
        tokio::time::timeout_at(until, hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)))
            .await
            .map_err(timed(Error::ConnectionTimeout))??;
    // The request line carries the path only (not a proxy request).
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::builder().path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;
    // The connection is driven by its own task, which ends with it, or a
    // little after the deadline (which the waits below report first, as a timeout).
    let permit = to.permit;
    let connection = wasmtime_wasi::runtime::spawn(async move {
        let _ = tokio::time::timeout_at(until + std::time::Duration::from_secs(1), conn).await;
        drop(permit);
    });
    let response = tokio::time::timeout_at(until, sender.send_request(request))
        .await
        .map_err(timed(Error::ConnectionReadTimeout))?
        .map_err(|e| if e.is_timeout() { Error::HttpResponseTimeout } else { Error::Hyper(e) })?;
    let (parts, incoming) = response.into_parts();
    let declared = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // A HEAD, 204 or 304 answer declares a length it has no body for.
    let bodiless =
        head || parts.status == http::StatusCode::NO_CONTENT || parts.status == http::StatusCode::NOT_MODIFIED;
    if let Some(length) = declared.filter(|&n| n > to.max_response_bytes as u64 && !bodiless) {
        return Err(Error::HttpResponseBodySize(Some(length)));
    }
    let until = Box::pin(tokio::time::sleep_until(until));
    let body = Capped { inner: incoming, read: 0, cap: to.max_response_bytes, until };
    let response = http::Response::from_parts(parts, BodyExt::boxed_unsync(body));
    let io: Io = Box::new(async move {
        connection.await;
        Ok(())
    });
    Ok((response, io))
}

/// What a connection may be: plain TCP or TLS over it.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The TLS client of every plugin request: the system's roots, read once
/// (rustls-native-certs: `SSL_CERT_FILE` / `SSL_CERT_DIR` when set, else the
/// platform's store, /etc/ssl/certs on Debian).
fn tls_connector() -> Result<tokio_rustls::TlsConnector, Error> {
    // Kept once read; a failure is not kept, so installing roots needs no restart.
    static CONFIG: std::sync::Mutex<Option<Arc<rustls::ClientConfig>>> = std::sync::Mutex::new(None);
    let mut config = CONFIG.lock().expect("TLS config lock");
    if config.is_none() {
        *config = Some(client_config().map_err(|e| Error::InternalError(Some(format!("HTTPS unavailable: {e}"))))?);
    }
    Ok(tokio_rustls::TlsConnector::from(config.clone().expect("set above")))
}

fn client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    for error in &found.errors {
        tracing::warn!("outbound HTTPS: a system root certificate could not be read: {error}");
    }
    if added == 0 {
        return Err("no root certificates found (install ca-certificates, or set SSL_CERT_FILE)".to_string());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A short name for how a request failed, for the metrics' `status` label.
pub(super) fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::HttpRequestDenied => "denied",
        Error::ConnectionTimeout | Error::ConnectionReadTimeout | Error::HttpResponseTimeout => "timeout",
        Error::HttpResponseBodySize(_) => "too_large",
        Error::Connect(_) | Error::ConnectionRefused => "connect_error",
        Error::Tls(_) => "tls_error",
        _ => "error",
    }
}

/// A response body that fails past `cap` bytes or past the request's deadline.
struct Capped {
    inner: hyper::body::Incoming,
    read: usize,
    cap: usize,
    until: Pin<Box<tokio::time::Sleep>>,
}

impl Body for Capped {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read = this.read.saturating_add(data.len());
                    if this.read > this.cap {
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(this.read as u64)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::Hyper(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.until.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}
