//! Build helper for plugins written in C or Zig, doing what `wit-bindgen c`
//! and `wasm-tools component new --adapt` do, from the same libraries, so
//! `make plugins` needs no `cargo install` of either tool:
//!
//!     plugin-build c-bindings WIT_DIR WORLD OUT_DIR   # WORLD.c, WORLD.h, WORLD_component_type.o
//!     plugin-build component CORE.wasm OUT.wasm       # core module (reactor) → component
//!
//! `component` wraps a wasm32-wasi (preview1) reactor module into a component,
//! adapting its WASI preview1 imports to WASI 0.2 with the adapter that ships
//! with wasmtime, and validates the result.

use anyhow::{Context, Result, bail};
use std::path::Path;
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["c-bindings", wit, world, out] => c_bindings(Path::new(wit), world, Path::new(out)),
        ["component", core, out] => component(Path::new(core), Path::new(out)),
        _ => {
            eprintln!(
                "usage: plugin-build c-bindings WIT_DIR WORLD OUT_DIR\n       plugin-build component CORE.wasm OUT.wasm"
            );
            std::process::exit(2);
        }
    };
    if let Err(error) = result {
        eprintln!("plugin-build: error: {error:#}");
        std::process::exit(1);
    }
}

/// Generates the C bindings of `world` in the WIT package at `wit` into `out`.
fn c_bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) =
        resolve.push_path(wit).with_context(|| format!("cannot read the WIT package {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some(world)).with_context(|| format!("no world {world}"))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default().build().generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, bytes) in files.iter() {
        write_if_changed(&out.join(name), bytes)?;
    }
    Ok(())
}

/// Writes only when the content differs, so make and the C compiler see
/// unchanged bindings as unchanged.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Turns the core module at `core` (with its component-type custom section,
/// from the bindings' object file) into a component at `out`.
fn component(core: &Path, out: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("cannot read {}", core.display()))?;
    if module.get(..8) != Some(b"\0asm\x01\0\0\0") {
        bail!("{} is not a core WebAssembly module", core.display());
    }
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .with_context(|| {
            format!("{} has no usable component type (link the bindings' _component_type.o)", core.display())
        })?
        .adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)?
        .validate(true)
        .encode()
        .with_context(|| format!("cannot make a component of {}", core.display()))?;
    std::fs::write(out, component).with_context(|| format!("cannot write {}", out.display()))
}
