//! The fixture's outbound HTTP for `host test`: the plugin's requests are
//! answered from the fixture's `[[http]]` answers (a case's own first), in
//! process, and recorded for the case's `requests` expectation. Nothing is
//! sent: an unanswered request fails as refused.

use super::fixture::Answer;
use crate::effects::glob;
use crate::handler::{HttpAnswer, HttpAnswers, HttpRequest};
use std::sync::Mutex;

/// A case's answers, and the requests made so far.
#[derive(Debug)]
pub struct FixtureHttp {
    answers: Vec<Answer>,
    made: Mutex<Vec<String>>,
}

impl FixtureHttp {
    /// Answers `answers`, tried in order.
    pub fn new(answers: Vec<Answer>) -> Self {
        FixtureHttp { answers, made: Mutex::default() }
    }

    /// The requests made since the last take, as [`describe`] writes them.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.made.lock().expect("requests lock"))
    }
}

impl HttpAnswers for FixtureHttp {
    fn answer(&self, request: &HttpRequest) -> Option<HttpAnswer> {
        let line = describe(request);
        let answer = self.answers.iter().find(|a| {
            a.method.as_ref().is_none_or(|m| m.eq_ignore_ascii_case(&request.method)) && glob(&a.url, &request.url)
        });
        let line = if answer.is_some() { line } else { format!("{line} (no answer in the fixture: refused)") };
        self.made.lock().expect("requests lock").push(line);
        let a = answer?;
        Some(HttpAnswer { status: a.status, headers: a.headers.clone(), body: a.body.clone() })
    }
}

/// A request as fixtures write it: `METHOD URL`, then ` BODY` when it has
/// one (as text, invalid UTF-8 replaced).
pub fn describe(request: &HttpRequest) -> String {
    let mut line = format!("{} {}", request.method, request.url);
    if !request.body.is_empty() {
        line.push(' ');
        line.push_str(&String::from_utf8_lossy(&request.body));
    }
    line
}

/// Whether the requests made match the expected ones: as many, in order,
/// each matching its pattern (`*` matches any run of characters).
pub fn matches(expected: &[String], made: &[String]) -> bool {
    expected.len() == made.len() && expected.iter().zip(made).all(|(want, got)| glob(want, got))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, url: &str, body: &str) -> HttpRequest {
        HttpRequest { method: method.into(), url: url.into(), headers: Vec::new(), body: body.as_bytes().to_vec() }
    }

    fn answer(method: Option<&str>, url: &str, status: u16) -> Answer {
        Answer { method: method.map(str::to_string), url: url.into(), status, headers: Vec::new(), body: Vec::new() }
    }

    #[test]
    fn the_first_matching_answer_is_given_and_every_request_recorded() {
        let http = FixtureHttp::new(vec![
            answer(Some("POST"), "http://hooks.test/a", 201),
            answer(None, "http://hooks.test/*", 500),
        ]);
        assert_eq!(http.answer(&request("POST", "http://hooks.test/a", "{}")).unwrap().status, 201);
        assert_eq!(http.answer(&request("GET", "http://hooks.test/a", "")).unwrap().status, 500);
        assert!(http.answer(&request("GET", "http://other.test/", "")).is_none());
        let made = http.take();
        assert_eq!(made[0], "POST http://hooks.test/a {}");
        assert_eq!(made[1], "GET http://hooks.test/a");
        assert_eq!(made[2], "GET http://other.test/ (no answer in the fixture: refused)");
        assert!(http.take().is_empty());
        assert!(matches(&["POST http://hooks.test/a *".into()], &["POST http://hooks.test/a {\"id\":1}".into()]));
        assert!(!matches(&["POST http://hooks.test/a".into()], &[]));
    }
}
