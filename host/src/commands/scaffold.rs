//! `host new --lang LANG NAME`: a plugin project that builds with one command
//! (`make`, installing its toolchain when missing) into `NAME.wasm`, which
//! passes `host check` and runs under `host run`. The templates live in
//! `host/templates/LANG/`; every project gets a copy of the contract (`wit/`),
//! and C and Zig projects the sources of the `plugin-build` tool.

use crate::config::{Lang, NewConfig};
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::PathBuf;

const WIT: &str = include_str!("../../../wit/plugin.wit");

/// The plugin-build tool's sources, in the order the Makefile hashes them.
const PLUGIN_BUILD: [(&str, &str); 3] = [
    ("tools/plugin-build/Cargo.toml", include_str!("../../../tools/plugin-build/Cargo.toml")),
    ("tools/plugin-build/Cargo.lock", include_str!("../../../tools/plugin-build/Cargo.lock")),
    ("tools/plugin-build/src/main.rs", include_str!("../../../tools/plugin-build/src/main.rs")),
];

/// The language's own files: (path in the project, template).
fn templates(lang: Lang) -> &'static [(&'static str, &'static str)] {
    match lang {
        Lang::Rust => &[
            ("Cargo.toml", include_str!("../../templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("../../templates/rust/src/lib.rs")),
            ("Makefile", include_str!("../../templates/rust/Makefile")),
        ],
        Lang::Python => &[
            ("app.py", include_str!("../../templates/python/app.py")),
            ("Makefile", include_str!("../../templates/python/Makefile")),
        ],
        Lang::Js => &[
            ("handler.js", include_str!("../../templates/js/handler.js")),
            ("Makefile", include_str!("../../templates/js/Makefile")),
        ],
        Lang::C => &[
            ("plugin.c", include_str!("../../templates/c/plugin.c")),
            ("Makefile", include_str!("../../templates/c/Makefile")),
        ],
        Lang::Zig => &[
            ("plugin.zig", include_str!("../../templates/zig/plugin.zig")),
            ("Makefile", include_str!("../../templates/zig/Makefile")),
        ],
    }
}

/// Writes the project; returns what to tell the user.
pub fn create(config: &NewConfig) -> Result<String> {
    let name = &config.name;
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("plugin name {name:?} must start with a lowercase letter and use only a-z, 0-9 and '-'");
    }
    let dir = config.parent.join(name);
    if dir.exists() {
        bail!("{} already exists; pick another name or --dir", dir.display());
    }
    let tool: String = PLUGIN_BUILD.iter().map(|(_, text)| *text).collect();
    let tool_hash = crate::wasm::plugin::version_of(tool.as_bytes());
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{ident}}", &name.replace('-', "_"))
            .replace("{{tool_hash}}", &tool_hash)
    };
    let mut files: Vec<(PathBuf, String)> = vec![
        ("wit/plugin.wit".into(), WIT.to_string()),
        ("README.md".into(), readme(config)),
        (".gitignore".into(), format!("/{name}.wasm\n/build/\n/target/\n__pycache__/\n")),
    ];
    files.extend(templates(config.lang).iter().map(|(path, template)| (PathBuf::from(path), fill(template))));
    if matches!(config.lang, Lang::C | Lang::Zig) {
        files.extend(PLUGIN_BUILD.iter().map(|(path, text)| (PathBuf::from(path), text.to_string())));
    }
    for (path, text) in &files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("files live in the project folder"))
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = format!("created {} plugin {name} in {}:\n", config.lang.as_str(), dir.display());
    for (path, _) in &files {
        writeln!(out, "  {}", path.display())?;
    }
    writeln!(out, "next:\n  make -C {}                 # builds {name}.wasm", dir.display())?;
    writeln!(out, "  host check {}", dir.join(format!("{name}.wasm")).display())?;
    writeln!(out, "  host run --plugin {} --stream STREAM --group GROUP", dir.join(format!("{name}.wasm")).display())?;
    Ok(out)
}

fn readme(config: &NewConfig) -> String {
    let (name, lang) = (&config.name, config.lang.as_str());
    format!(
        "# {name}\n\nA {lang} consumer plugin for redis-wasm-host, made by `host new --lang {lang} {name}`.\n\n\
         ```sh\nmake                                   # builds {name}.wasm (installs the toolchain when missing)\n\
         host check {name}.wasm                 # would it run?\n\
         host run --plugin {name}.wasm --stream orders --group {name}\n```\n\n\
         The contract is `wit/plugin.wit`: `handle(entry)` is called once per stream entry; `ok` acks it,\n\
         `error::retry` leaves it pending for a later delivery, `error::reject` dead-letters it.\n"
    )
}
