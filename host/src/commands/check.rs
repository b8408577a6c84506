//! `host check FILE.wasm`: loads a plugin exactly as `host run` would (a
//! component of one of our worlds, compiled and linked against the host's
//! imports, instantiated once) and describes it; anything that would not run
//! is a clear error.

use crate::settings::Limits;
use crate::wasm::engine::Engine;
use crate::wasm::instance::{Delivery, Instance};
use crate::wasm::plugin::Plugin;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// The report printed for a plugin that would run.
pub fn check(path: &Path) -> Result<String> {
    let engine = Engine::new()?;
    let plugin = Plugin::load(&engine, path)?;
    // One instance, as each consumer makes: runs the guest's start-up code.
    let delivery =
        Delivery { stream: "check".into(), group: "check".into(), consumer: "check".into(), state: None, http: None };
    Instance::new(&plugin, delivery, Duration::from_secs(30), Limits::default())?;
    let (imports, exports) = plugin.interface();
    let (wasi, contract): (Vec<_>, Vec<_>) = imports.into_iter().partition(|name| name.starts_with("wasi:"));
    let mut out = String::new();
    let list = |names: &[String]| if names.is_empty() { "none".to_string() } else { names.join("\n           ") };
    writeln!(out, "{}: ok, a component of world {}", path.display(), plugin.world())?;
    writeln!(out, "  name     {}", plugin.tag.name)?;
    writeln!(out, "  size     {} bytes", plugin.size)?;
    writeln!(out, "  version  {}", plugin.tag.version)?;
    let how = if plugin.from_cache { "loaded from the compile cache" } else { "compiled" };
    writeln!(out, "  load     {how} in {} ms", plugin.compile_time.as_millis())?;
    writeln!(out, "  exports  {}", list(&exports))?;
    writeln!(out, "  imports  {}", list(&contract))?;
    writeln!(out, "  wasi     {}", list(&wasi))?;
    if !wasi.is_empty() {
        writeln!(
            out,
            "           (linked, but sandboxed: no files, environment or network unless a sidecar [grant] gives them)"
        )?;
    }
    Ok(out)
}
