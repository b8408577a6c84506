//! A blocking HTTP POST over `wasi:http/outgoing-handler`: what the host
//! lets through (granted origins, its timeout and size cap) is all there is.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

/// Bytes of the response body kept for an error message.
const EXCERPT: usize = 200;

/// What the webhook answered.
pub struct Answer {
    pub status: u16,
    /// The `Location` header, for redirects.
    pub location: Option<String>,
    /// The start of the body, as text.
    pub excerpt: String,
}

/// POSTs `body` (JSON) to `url`; the whole response body is read (so the
/// host's size cap applies), its start kept.
/// `extra` headers are `Name: value` lines.
pub fn post(url: &str, body: &[u8], idempotency_key: &str, extra: &str) -> Result<Answer, String> {
    let (scheme, authority, path) = split(url)?;
    let mut list = vec![
        ("content-type".to_string(), b"application/json".to_vec()),
        ("content-length".to_string(), body.len().to_string().into_bytes()),
        ("idempotency-key".to_string(), idempotency_key.as_bytes().to_vec()),
    ];
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        let (name, value) =
            line.split_once(':').ok_or_else(|| format!("config.headers: {line:?} is not `Name: value`"))?;
        list.push((name.trim().to_ascii_lowercase(), value.trim().as_bytes().to_vec()));
    }
    let headers = Fields::from_list(&list).map_err(|e| format!("bad header: {e:?}"))?;
    let request = OutgoingRequest::new(headers);
    let set = |ok: Result<(), ()>, what: &str| ok.map_err(|()| format!("cannot set the request's {what}"));
    set(request.set_method(&Method::Post), "method")?;
    set(request.set_scheme(Some(&scheme)), "scheme")?;
    set(request.set_authority(Some(authority)), "authority")?;
    set(request.set_path_with_query(Some(path)), "path")?;
    let outgoing = request.body().map_err(|()| "cannot take the request body".to_string())?;
    let future = outgoing_handler::handle(request, None).map_err(|e| describe(&e))?;
    let response = |future: &FutureIncomingResponse| loop {
        match future.get() {
            Some(result) => break result.map_err(|()| "response taken twice".to_string())?.map_err(|e| describe(&e)),
            None => future.subscribe().block(),
        }
    };
    let written = write(outgoing, body);
    // A request that failed (denied, refused) closes its body: its own error says why.
    let response = match (written, response(&future)) {
        (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
        (Ok(()), Ok(response)) => response,
    };
    let status = response.status();
    let location = response.headers().get("location").first().map(|v| String::from_utf8_lossy(v).into_owned());
    let incoming = response.consume().map_err(|()| "cannot read the response body".to_string())?;
    let excerpt = read(&incoming)?;
    IncomingBody::finish(incoming);
    Ok(Answer { status, location, excerpt })
}

/// Writes the whole request body and ends it.
fn write(outgoing: OutgoingBody, body: &[u8]) -> Result<(), String> {
    {
        let stream = outgoing.write().map_err(|()| "cannot write the request body".to_string())?;
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| stream_error(&e))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| describe(&e))
}

/// Reads the body to its end, keeping its start.
fn read(body: &IncomingBody) -> Result<String, String> {
    let stream = body.stream().map_err(|()| "cannot read the response body".to_string())?;
    let mut kept = Vec::new();
    loop {
        match stream.blocking_read(16 * 1024) {
            Ok(bytes) => kept.extend_from_slice(&bytes[..bytes.len().min(EXCERPT - kept.len().min(EXCERPT))]),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the response: {}", stream_error(&e))),
        }
    }
    Ok(String::from_utf8_lossy(&kept).into_owned())
}

/// `url` as scheme, authority and path-with-query.
fn split(url: &str) -> Result<(Scheme, &str, &str), String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("{url:?} is not an absolute URL"))?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(format!("{url:?}: scheme {other} is not http or https")),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    Ok((scheme, authority, path))
}

/// `location` (absolute, scheme-relative `//host/path`, or a path on
/// `base`'s origin) as an absolute URL.
pub fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let scheme = base.split_once("://").map_or("http", |(s, _)| s);
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    format!("{}/{}", origin(base), location.trim_start_matches('/'))
}

/// `scheme://authority` of an absolute URL.
pub fn origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |at| at + 3);
    url[start..].find('/').map_or(url, |at| &url[..start + at])
}

fn stream_error(error: &StreamError) -> String {
    match error {
        StreamError::Closed => "connection closed".to_string(),
        StreamError::LastOperationFailed(e) => match wasip2::http::types::http_error_code(e) {
            Some(code) => describe(&code),
            None => e.to_debug_string(),
        },
    }
}

/// An error code as a sentence.
fn describe(code: &ErrorCode) -> String {
    match code {
        ErrorCode::HttpRequestDenied => "denied by the host (origin not granted)".to_string(),
        ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            "timed out".to_string()
        }
        ErrorCode::ConnectionRefused => "connection refused".to_string(),
        ErrorCode::HttpResponseBodySize(size) => {
            format!("response body too large ({} bytes, over the host's cap)", size.unwrap_or(0))
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{origin, resolve};

    #[test]
    fn redirects_resolve_against_the_webhook() {
        let base = "http://127.0.0.1:9000/hook?x=1";
        assert_eq!(origin(base), "http://127.0.0.1:9000");
        assert_eq!(resolve(base, "/other"), "http://127.0.0.1:9000/other");
        assert_eq!(resolve(base, "//evil.example/x"), "http://evil.example/x");
        assert_eq!(resolve(base, "https://a.example/y"), "https://a.example/y");
        assert_eq!(origin("https://a.example"), "https://a.example");
    }
}
