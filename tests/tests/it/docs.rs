//! The documentation cannot go stale: every command in a `sh` block of the
//! README, `docs/` or `plugins/README.md` is run by one of the `examples/`
//! scripts (which the tests below run), every relative link points at a file
//! that exists, and the README's tour works end to end (`examples/tour.sh`).
//! Synopses with placeholders (`host run --plugin FILE …`) are `text` blocks.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The documents whose commands and links are checked.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("plugins/README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The commands of `text`'s `sh` blocks: continuation lines joined,
/// comments and blank lines dropped, whitespace collapsed.
fn sh_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in text.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            in_sh = !in_sh && ["sh", "bash", "shell", "console"].contains(&info.trim());
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = match line.find("  #") {
            Some(at) => &line[..at],
            None => line,
        };
        if code.trim_start().starts_with('#') {
            continue;
        }
        let code = code.trim_start().strip_prefix("$ ").unwrap_or(code);
        pending.push_str(code.trim_end().trim_end_matches('\\'));
        pending.push(' ');
        if code.trim_end().ends_with('\\') {
            continue;
        }
        let command = collapse(&pending);
        if !command.is_empty() {
            commands.push(command);
        }
        pending.clear();
    }
    commands
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Commands that no script can run, and who runs them instead.
const RUN_ELSEWHERE: [(&str, &str); 1] = [("make test", ".ci/run runs it: it is the test suite itself")];

/// The scripts that run the documented commands, and what runs each script.
const SCRIPTS: [(&str, &str); 5] = [
    ("tour.sh", "the_readme_tour_works"),
    ("cli-tour.sh", "the_cli_tour_works"),
    ("cluster-tour.sh", "the_cluster_tour_works"),
    ("ownership-tour.sh", "the_ownership_tour_works"),
    ("install.sh", "make test (after the tests)"),
];

/// The commands a script runs, one per line, as [`sh_commands`] writes them:
/// comment lines, comments and the script's own messages (`step`, `echo`,
/// `printf`) dropped, and `make -s -C "$root"` written `make` (the scripts
/// run the checkout's targets from a folder of their own).
fn script_commands(script: &str) -> Vec<String> {
    let mut commands = Vec::new();
    for line in script.lines() {
        let code = match line.find("  #") {
            Some(at) => &line[..at],
            None => line,
        };
        let words: Vec<&str> = code.split_whitespace().collect();
        if words.first().is_none_or(|w| w.starts_with('#') || ["step", "echo", "printf", "fail"].contains(w)) {
            continue;
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < words.len() {
            out.push(words[i]);
            if words[i] == "make" {
                loop {
                    match (words.get(i + 1), words.get(i + 2)) {
                        (Some(&"-s"), _) => i += 1,
                        (Some(&"-C"), Some(&"\"$root\"")) => i += 2,
                        _ => break,
                    }
                }
            }
            i += 1;
        }
        commands.push(out.join(" "));
    }
    commands
}

#[test]
fn every_documented_command_is_run_by_an_example_script() {
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    assert!(makefile.contains("\texamples/install.sh\n"), "`make test` no longer runs examples/install.sh");
    let mut scripts = Vec::new();
    for (name, _) in SCRIPTS {
        scripts.extend(script_commands(&std::fs::read_to_string(root().join("examples").join(name)).unwrap()));
    }
    let mut missing = Vec::new();
    let mut seen = 0;
    for doc in documents() {
        for command in sh_commands(&std::fs::read_to_string(&doc).unwrap()) {
            seen += 1;
            if RUN_ELSEWHERE.iter().any(|(c, _)| *c == command) {
                continue;
            }
            if !scripts.iter().any(|line| line.contains(&command)) {
                missing.push(format!("{}: {command}", doc.strip_prefix(root()).unwrap().display()));
            }
        }
    }
    assert!(seen >= 8, "only {seen} documented commands found: is the parser broken?");
    assert!(
        missing.is_empty(),
        "documented commands that no script of {SCRIPTS:?} runs (add them to one, or make the block \
         `text` if it is a synopsis):\n{}",
        missing.join("\n")
    );
}

#[test]
fn script_lines_are_read_as_commands() {
    let script = "# make demo\nstep \"1. make demo\"\nsetsid make -s -C \"$root\" demo X=1 &  # note\necho make test\n\
                  make -C my-plugin\n";
    assert_eq!(script_commands(script), ["setsid make demo X=1 &", "make -C my-plugin"]);
}

#[test]
fn the_command_parser_finds_what_it_should() {
    let text = "```sh\nmake demo   # note\n# comment\nhost run --plugin a \\\n    --stream s\n```\n\
                ```text\nhost x\n```\n  ```console\n  $ host y\n  ```\n";
    assert_eq!(sh_commands(text), ["make demo", "host run --plugin a --stream s", "host y"]);
}

#[test]
fn every_relative_link_points_at_a_file() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let dir = doc.parent().unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].split('#').next().unwrap();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !dir.join(target).exists() {
                broken.push(format!("{}: {target}", doc.strip_prefix(root()).unwrap().display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to missing files:\n{}", broken.join("\n"));
}

/// Runs `examples/NAME` against a Redis of its own (the scripts use the
/// demo's stream key, as the docs do); panics with its output on failure.
fn run_example(name: &str, env: &[(&str, &Path)]) {
    let redis = PrivateRedis::start();
    let mut command = Command::new(root().join("examples").join(name));
    command.env("REDIS_URL", &redis.url).stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("run the example script");
    assert!(
        out.status.success(),
        "examples/{name} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_readme_tour_works() {
    plugin("notifier"); // `make plugins` first: the tour's `make demo` then builds nothing
    plugin("python-analytics");
    let work = plugin_dir("tour");
    // The plugin's Rust build shares one Wasm std with the scaffold test.
    let guest_target =
        std::env::var_os("GUEST_TARGET_DIR").map_or_else(|| root().join("plugins/target"), PathBuf::from);
    run_example("tour.sh", &[("TOUR_DIR", &work), ("TARGET", &guest_target.join("scaffold"))]);
}

#[test]
fn the_cli_tour_works() {
    plugin("orders");
    run_example("cli-tour.sh", &[("DEMO_SECONDS", Path::new("5"))]);
}

#[test]
fn the_cluster_tour_works() {
    plugin("orders");
    plugin("notifier");
    plugin("python-analytics");
    run_example("cluster-tour.sh", &[("DEMO_SECONDS", Path::new("15"))]);
}

#[test]
fn the_ownership_tour_works() {
    plugin("chaos");
    run_example("ownership-tour.sh", &[]);
}
