//! Redis URLs as the host prints them: the password (the user info, which
//! ends at the last `@`, and `pass` / `password` query parameters) shown as
//! `***`, parsed as redis-rs parses them (the `url` crate).

use url::Url;

/// What a secret is shown as.
const MASK: &str = "***";

/// `url` with its secrets masked; a URL that does not parse is masked by
/// hand, more widely rather than less.
pub fn url(raw: &str) -> String {
    Url::parse(raw).ok().and_then(parsed).unwrap_or_else(|| by_hand(raw))
}

/// `text` with every URL in it (`scheme://…` up to a space or quote) masked:
/// for messages that quote what they were given, such as a settings file.
pub fn urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = rest[..at].rfind(|c: char| !(c.is_ascii_alphanumeric() || "+.-".contains(c))).map_or(0, |i| i + 1);
        let end = rest[at..].find(|c: char| c.is_whitespace() || "\"'`<>".contains(c)).map_or(rest.len(), |i| at + i);
        // Punctuation after a URL ends the sentence, not the URL ("… at redis://h:1: refused").
        let end = start + rest[start..end].trim_end_matches(|c: char| ".,;:)]".contains(c)).len().max(at + 3 - start);
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Whether a query parameter carries a password.
fn secret(key: &str) -> bool {
    key.eq_ignore_ascii_case("pass") || key.eq_ignore_ascii_case("password")
}

/// Masks a parsed URL; `None` when it cannot be masked in place, or when an
/// `@` in a path without a host says the user info was not taken as such
/// (`redis:/:secret@host`).
fn parsed(mut url: Url) -> Option<String> {
    if url.host().is_none() && url.path().contains('@') {
        return None;
    }
    if url.password().is_some() {
        url.set_password(Some(MASK)).ok()?;
    } else if !url.username().is_empty() {
        // A user name alone is often a password written without its colon.
        url.set_username(MASK).ok()?;
    }
    if url.query_pairs().any(|(key, _)| secret(&key)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if secret(&key) { MASK.to_string() } else { value.into_owned() };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Some(url.to_string())
}

/// For text that is not a URL: the values of secret parameters go, then
/// everything up to the last `@` after the scheme (a password may hold `@`,
/// `/` or `?`).
fn by_hand(raw: &str) -> String {
    let is_scheme = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b));
    let (scheme, rest) = match raw.split_once(':') {
        Some((scheme, rest)) if is_scheme(scheme) => (&raw[..=scheme.len()], rest),
        _ => ("", raw),
    };
    let after_slashes = rest.trim_start_matches('/');
    let slashes = &rest[..rest.len() - after_slashes.len()];
    let rest = match after_slashes.split_once('?') {
        Some((base, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if secret(key) => format!("{key}={MASK}"),
                    _ => param.to_string(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
        None => after_slashes.to_string(),
    };
    let rest = match rest.rfind('@') {
        Some(at) => {
            // The user name stays when it plainly is one (`user:…@`).
            let user = rest[..at].split_once(':').map(|(user, _)| user).filter(|u| !u.contains(['/', '?', '#', '@']));
            match user {
                Some(user) => format!("{user}:{MASK}@{}", &rest[at + 1..]),
                None => format!("{MASK}@{}", &rest[at + 1..]),
            }
        }
        None => rest,
    };
    format!("{scheme}{slashes}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_user_info_up_to_the_last_at() {
        for (raw, shown) in [
            ("redis://u:pw@h:1", "redis://u:***@h:1"),
            ("redis://h:1", "redis://h:1"),
            ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
            ("redis://admin:p4ss@w0rd@host:6379/0", "redis://admin:***@host:6379/0"),
            ("redis://:S3CRET@h", "redis://:***@h"),
            ("redis://:p%40ss%3Aw0rd@h", "redis://:***@h"),
            ("redis://S3CRET@h:1", "redis://***@h:1"),
            ("rediss://u:S3CRET@h:1", "rediss://u:***@h:1"),
            ("redis+cluster://u:S3CRET@a:1,b:2", "redis+cluster://u:***@a:1,b:2"),
            ("redis+cluster://:S3CRET@a:1,b:2/0", "redis+cluster://:***@a:1,b:2/0"),
        ] {
            assert_eq!(url(raw), shown, "{raw}");
        }
    }

    #[test]
    fn masks_password_parameters() {
        assert_eq!(url("redis+unix:///tmp/r.sock?db=1&pass=S3CRET"), "redis+unix:///tmp/r.sock?db=1&pass=***");
        assert_eq!(url("unix:///tmp/r.sock?PASSWORD=S3%43RET&user=u"), "unix:///tmp/r.sock?PASSWORD=***&user=u");
        assert_eq!(url("redis+unix:///tmp/r.sock?pass=a@S3CRET"), "redis+unix:///tmp/r.sock?pass=***");
        assert_eq!(url("redis+unix:///tmp/r.sock?db=0"), "redis+unix:///tmp/r.sock?db=0");
    }

    #[test]
    fn text_that_is_no_url_loses_more_not_less() {
        for raw in [
            "redis://:pa/ss@S3CRET@h:1",
            "redis://u:S3CRET@h:notaport",
            "redis:/:S3CRET@h",
            "S3CRET@h",
            "redis://u:S3CRET@[::1:6379",
            "redis://h:1?pass=S3CRET&x",
            "weird://u:S3CRET@@h?password=S3CRET",
        ] {
            let shown = url(raw);
            assert!(!shown.contains("S3CRET") && shown.contains(MASK), "{raw} → {shown}");
        }
        assert_eq!(url("redis://h:notaport"), "redis://h:notaport");
        assert_eq!(url("redis://admin:S3CRET@h:notaport"), "redis://admin:***@h:notaport");
    }

    #[test]
    fn masks_every_url_in_a_text() {
        let text = "invalid host.toml: line 1\n1 | redis_url = \"redis://:S3CRET@h:1\"\nand unix:///s?pass=S3CRET.";
        let shown = urls_in(text);
        assert!(!shown.contains("S3CRET"), "{shown}");
        assert!(
            shown.contains("redis_url = \"redis://:***@h:1\"") && shown.contains("and unix:///s?pass=***"),
            "{shown}"
        );
        assert_eq!(urls_in("no url here: a://b"), "no url here: a://b");
        let error = "cannot reach Redis at redis://admin:***@h:1: refused (see unix:///s?pass=***).";
        assert_eq!(urls_in(error), error, "masking twice changes nothing");
    }
}
