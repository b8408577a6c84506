//! `host new`: a project scaffolded for each language builds with one command
//! (`make`), passes `host check`, and runs under `host run`.

use crate::support::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const LANGS: [&str; 5] = ["rust", "python", "js", "c", "zig"];

#[tokio::test(flavor = "multi_thread")]
async fn scaffolded_plugins_build_check_and_run() {
    plugin("orders"); // `make plugins` first: it installs every toolchain the scaffolds use
    let parent = plugin_dir("scaffold");
    // Rust guests build std from source: share one target folder across runs.
    let guest_target =
        std::env::var_os("GUEST_TARGET_DIR").map_or_else(|| root().join("plugins/target"), PathBuf::from);
    let mut conn = redis().await;
    let folder = plugin_dir("scaffold-run");
    let mut streams = Vec::new();
    for lang in LANGS {
        let name = format!("demo-{lang}");
        let out = Host::new(["new", "--lang", lang, "--dir", parent.to_str().unwrap(), &name]).output();
        assert!(out.status.success(), "host new {lang}: {}", String::from_utf8_lossy(&out.stderr));
        let project = parent.join(&name);
        let status = Command::new("make")
            .arg("-C")
            .arg(&project)
            .arg(format!("TARGET={}", guest_target.join("scaffold").display()))
            .stdout(Stdio::null())
            .status()
            .expect("run make");
        assert!(status.success(), "`make` in the {lang} scaffold failed");
        let wasm = project.join(format!("{name}.wasm"));
        let check = Host::new(["check"]).arg(&wasm).output();
        assert!(check.status.success(), "host check {lang}: {}", String::from_utf8_lossy(&check.stderr));

        let stream = unique_stream(&format!("scaffold-{lang}"));
        install(&folder.join(format!("{name}.wasm")), &std::fs::read(&wasm).unwrap());
        std::fs::write(folder.join(format!("{name}.toml")), format!("stream = \"{stream}\"\ngroup = \"g\"\n")).unwrap();
        let ids = produce(&mut conn, &stream, &[vec![("n", b"1".to_vec())], vec![("empty", Vec::new())]]).await;
        streams.push((name, stream, ids));
    }

    let mut host = Host::new(["run", "--plugins", folder.to_str().unwrap(), "--redis", redis_url()]).logging().start();
    for (_, stream, _) in &streams {
        wait_drained(&mut conn, stream, "g", 0).await;
    }
    host.wait_log(Duration::from_secs(60), "every plugin's log line", |log| {
        streams.iter().all(|(name, _, ids)| {
            let line = format!("{name} handled {} (1 fields)", ids[0]);
            log.iter().any(|l| l.contains(&line))
        })
    });
    let (status, _) = host.terminate();
    assert!(status.success(), "{status}");
    for (name, stream, ids) in &streams {
        let dead = dead_letters(&mut conn, stream).await;
        assert_eq!(dead.len(), 1, "{name}");
        assert_eq!(dead[0].meta("dlq:id"), Some(ids[1].as_str()), "{name}");
        assert_eq!(dead[0].meta("dlq:error"), Some("every field is empty"), "{name}");
    }
}
