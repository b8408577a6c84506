//! With feature `embed-demo-plugins` (`make install`), `host demo`'s plugins
//! are built into the binary: they must have been built first.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_EMBED_DEMO_PLUGINS").is_none() {
        return;
    }
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
    for name in ["notifier.wasm", "python-analytics.wasm"] {
        let file = dist.join(name);
        println!("cargo::rerun-if-changed={}", file.display());
        if !file.exists() {
            panic!(
                "feature embed-demo-plugins builds {} into host, and it is missing: \
                 build the demo's plugins first with `make demo-plugins` (`make install` does both)",
                file.display()
            );
        }
    }
}
