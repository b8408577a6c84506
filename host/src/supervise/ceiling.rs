//! `host.toml`'s `[grant_ceiling]`: the most a sidecar may grant its
//! plugin. Whoever can write the plugin folder can write a sidecar; the
//! ceiling, in the host's own file, bounds what that reaches.

use crate::settings::{Grants, Origin};
use serde::Deserialize;
use std::path::PathBuf;

/// `host.toml`'s `[grant_ceiling]`: what a plugin's grants may name at most.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantCeiling {
    /// Directories that granted directories must be, or lie inside.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// Environment variables that may be passed through.
    #[serde(default)]
    pub env: Vec<String>,
    /// Key patterns that granted keys must fall within (`*` matches anything).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Stream patterns that granted streams must fall within.
    #[serde(default)]
    pub streams: Vec<String>,
    /// Origins that granted HTTP origins must be among.
    #[serde(default)]
    pub http: Vec<String>,
}

impl GrantCeiling {
    /// What in `grants` goes beyond this ceiling, if anything. Directories
    /// are compared as real paths, so a symbolic link does not lead out.
    pub fn exceeded_by(&self, grants: &Grants) -> Option<String> {
        let allowed: Vec<PathBuf> = self.dirs.iter().filter_map(|d| std::fs::canonicalize(d).ok()).collect();
        for dir in &grants.dirs {
            let inside = std::fs::canonicalize(dir).is_ok_and(|real| allowed.iter().any(|a| real.starts_with(a)));
            if !inside {
                return Some(format!("directory {} (the ceiling allows {})", dir.display(), list(&self.dirs)));
            }
        }
        if let Some((name, _)) = grants.env.iter().find(|(name, _)| !self.env.contains(name)) {
            return Some(format!("environment variable {name} (the ceiling allows {})", list(&self.env)));
        }
        // A granted pattern, read as plain text, must match a ceiling pattern:
        // then every name it matches does too (its `*`s fall inside the ceiling's).
        let within = |ceiling: &[String], granted: &String| ceiling.iter().any(|c| crate::effects::glob(c, granted));
        if let Some(key) = grants.keys.iter().find(|k| !within(&self.keys, k)) {
            return Some(format!("key {key:?} (the ceiling allows {})", list(&self.keys)));
        }
        if let Some(s) = grants.streams.iter().find(|s| !within(&self.streams, s)) {
            return Some(format!("stream {s:?} (the ceiling allows {})", list(&self.streams)));
        }
        // Origins compare parsed: `https://x` and `https://x:443` are one.
        let origin = |text: &String| Origin::parse(text).ok();
        let allowed: Vec<Origin> = self.http.iter().filter_map(origin).collect();
        let beyond = grants.http.iter().find(|granted| origin(granted).is_none_or(|o| !allowed.contains(&o)));
        beyond.map(|o| format!("HTTP origin {o:?} (the ceiling allows {})", list(&self.http)))
    }
}

fn list<T: std::fmt::Debug>(items: &[T]) -> String {
    if items.is_empty() { "none".into() } else { items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_may_only_narrow_the_ceiling() {
        let dir = std::env::temp_dir().join(format!("host-ceiling-unit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("allowed/sub")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("allowed/escape")).unwrap();
        let ceiling = GrantCeiling {
            dirs: vec![dir.join("allowed")],
            env: vec!["TZ".into()],
            keys: vec!["orders:*".into()],
            streams: vec!["orders:paid".into()],
            http: vec!["https://hooks.example.com".into()],
        };
        let grants = |dirs: &[&str], env: &[&str]| Grants {
            dirs: dirs.iter().map(|d| dir.join(d)).collect(),
            env: env.iter().map(|n| (n.to_string(), String::new())).collect(),
            ..Default::default()
        };
        assert_eq!(ceiling.exceeded_by(&grants(&["allowed", "allowed/sub"], &["TZ"])), None);
        assert!(ceiling.exceeded_by(&grants(&["."], &[])).unwrap().starts_with("directory"));
        assert!(ceiling.exceeded_by(&grants(&["allowed/escape"], &[])).is_some(), "a link leads out");
        assert!(ceiling.exceeded_by(&grants(&[], &["HOME"])).unwrap().contains("HOME"));
        let keys = |keys: &[&str], streams: &[&str]| Grants {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            streams: streams.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(ceiling.exceeded_by(&keys(&["orders:totals", "orders:x*"], &["orders:paid"])), None);
        assert!(ceiling.exceeded_by(&keys(&["ord*"], &[])).unwrap().starts_with("key \"ord*\""));
        assert!(ceiling.exceeded_by(&keys(&["*"], &[])).is_some());
        assert!(ceiling.exceeded_by(&keys(&[], &["orders:*"])).unwrap().starts_with("stream"));
        let http =
            |origins: &[&str]| Grants { http: origins.iter().map(|o| o.to_string()).collect(), ..Default::default() };
        assert_eq!(ceiling.exceeded_by(&http(&["https://HOOKS.example.com:443/"])), None, "origins compare parsed");
        for beyond in ["http://hooks.example.com", "https://hooks.example.com:8443", "https://evil.example.com"] {
            let error = ceiling.exceeded_by(&http(&[beyond])).unwrap();
            assert!(error.starts_with("HTTP origin") && error.contains("the ceiling allows"), "{error}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
