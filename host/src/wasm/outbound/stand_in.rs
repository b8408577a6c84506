//! `host test`'s outbound HTTP: a request is answered by the fixture's
//! [`HttpAnswers`] (which also records it), never sent. Its body is read to
//! the end first, as a server would (at most [`MAX_BODY`]; a longer one, or
//! one the plugin fails to finish, fails the request, which is recorded with
//! what went wrong); a request with no answer fails as refused, as one to a
//! server that is down.

use super::Sent;
use crate::handler::{HttpAnswers, HttpRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;
use wasmtime_wasi_http::{Error, WasiBody};

/// The largest request body a fixture answers: 1 MiB.
const MAX_BODY: usize = 1 << 20;

/// Answers `request` from `answers`.
pub(super) fn answer(answers: Arc<dyn HttpAnswers>, request: http::Request<WasiBody>) -> Sent {
    Box::new(async move {
        let (parts, body) = request.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let mut seen =
            HttpRequest { method: parts.method.to_string(), url: parts.uri.to_string(), headers, body: Vec::new() };
        match Limited::new(body, MAX_BODY).collect().await {
            Ok(body) => seen.body = body.to_bytes().to_vec(),
            Err(error) => {
                let (problem, code) = if error.is::<http_body_util::LengthLimitError>() {
                    (format!("the body is over {MAX_BODY} bytes"), Error::HttpRequestBodySize(None))
                } else {
                    (format!("the body failed: {error}"), Error::HttpProtocolError)
                };
                seen.body = format!("({problem}: not answered)").into_bytes();
                answers.answer(&seen);
                return Err(code);
            }
        }
        let Some(answer) = answers.answer(&seen) else { return Err(Error::ConnectionRefused) };
        let mut response = http::Response::builder().status(answer.status);
        for (name, value) in &answer.headers {
            response = response.header(name, value);
        }
        let body = Full::new(Bytes::from(answer.body)).map_err(|never| match never {}).boxed_unsync();
        let response =
            response.body(body).map_err(|e| Error::InternalError(Some(format!("bad fixture answer: {e}"))))?;
        let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
        Ok((response, io))
    })
}
