//! An origin as outbound HTTP grants name it (`scheme://host[:port]`): what
//! a sidecar's `[grant] http`, `--grant-http` and `[grant_ceiling] http`
//! hold, and what the Wasm layer compares each request against. A shared
//! type, like the settings that hold it.

/// Where an outbound HTTP request goes, as grants name it: `https://hooks.example.com`
/// (port 443 implied), `http://127.0.0.1:9000`. Nothing else may be in a
/// grant (no path, user, query), so what is granted is exactly an origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name (lower case) or IP address (IPv6 in brackets).
    pub host: String,
    /// The port, the scheme's default if not given.
    pub port: u16,
}

impl Origin {
    /// Parses a granted origin, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let url =
            url::Url::parse(text).map_err(|e| format!("{text:?} is not an origin ({e}): use scheme://host[:port]"))?;
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(format!("{text:?} is not an http or https origin"));
        }
        if url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(format!("{text:?} is not an origin: give scheme://host[:port] only, no user, path or query"));
        }
        let host = url.host_str().ok_or_else(|| format!("{text:?} names no host"))?;
        let port = url.port_or_known_default().ok_or_else(|| format!("{text:?} names no port"))?;
        Ok(Origin { scheme: scheme.to_string(), host: host.to_ascii_lowercase(), port })
    }
}

impl std::fmt::Display for Origin {
    /// `scheme://host:port`, the port always written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        let origin = |text| Origin::parse(text).map(|o| o.to_string());
        assert_eq!(origin("https://Hooks.Example.com"), Ok("https://hooks.example.com:443".into()));
        assert_eq!(origin("http://127.0.0.1:9000/"), Ok("http://127.0.0.1:9000".into()));
        assert_eq!(origin("http://[::1]:80"), Ok("http://[::1]:80".into()));
        for bad in
            ["127.0.0.1:9000", "ftp://x", "http://x/path", "http://u:p@x", "http://x?q", "http://x/#f", "http://"]
        {
            assert!(Origin::parse(bad).is_err(), "{bad} was taken");
        }
        assert!(Origin::parse("http://x/path").unwrap_err().contains("scheme://host[:port] only"));
    }
}
