//! Man pages and shell completions come from the one CLI definition
//! (`lpexec::front::cli::command()`). This test regenerates them and fails when the committed
//! files are stale (run with `UPDATE_DOCS=1` to rewrite them), checks that every flag of every
//! verb is documented, and renders every page with groff, failing on any warning.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check_or_update(rel: &str, generated: &[u8]) {
    let path = root().join(rel);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let committed = std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{rel} is missing; run UPDATE_DOCS=1 cargo test --test docs"));
    assert!(
        committed == generated,
        "{rel} is out of date with the CLI definition; run UPDATE_DOCS=1 cargo test --test docs"
    );
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Vec<u8> {
    let mut v = Vec::new();
    f(&mut v).unwrap();
    v
}

/// A page from a CLI definition: the generated parts (title, name, synopsis, description,
/// options, every subcommand with its own options) followed by the hand-written ones in
/// `tail` (exit status, environment, files, examples...).
fn generated_page(mut cmd: clap::Command, section: &str, tail: &str) -> Vec<u8> {
    cmd.build();
    let prog = cmd.get_name().to_string();
    let version = env!("CARGO_PKG_VERSION");
    let man = clap_mangen::Man::new(cmd.clone())
        .section(section)
        .date("2026-12-03")
        .source(format!("lpexec {version}"))
        .manual("lpexec manual");
    let mut out = Vec::new();
    for part in [
        render(|w| man.render_title(w)),
        render(|w| man.render_name_section(w)),
        render(|w| man.render_synopsis_section(w)),
        render(|w| man.render_description_section(w)),
        render(|w| man.render_options_section(w)),
    ] {
        out.extend(part);
    }
    out.extend_from_slice(if prog == "lpexec" { b".SH VERBS\n" } else { b".SH COMMANDS\n" });
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name();
        let sman = clap_mangen::Man::new(sub.clone());
        out.extend_from_slice(format!(".SS \"{prog} {name}\"\n").as_bytes());
        let synopsis = String::from_utf8(render(|w| sman.render_synopsis_section(w))).unwrap();
        let synopsis = synopsis.replace(".SH SYNOPSIS\n", "").replace(
            &format!("\\fB{}\\fR", sub.get_bin_name().unwrap_or(name)),
            &format!("\\fB{prog} {name}\\fR"),
        );
        out.extend_from_slice(synopsis.as_bytes());
        out.extend_from_slice(b".PP\n");
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            out.extend_from_slice(format!("{about}\n").as_bytes());
        }
        let opts = String::from_utf8(render(|w| sman.render_options_section(w))).unwrap();
        if sub.get_arguments().any(|a| !a.is_global_set()) {
            out.extend_from_slice(opts.replace(".SH OPTIONS\n", ".PP\n").as_bytes());
        }
    }
    out.extend(std::fs::read(root().join(tail)).unwrap_or_else(|_| panic!("{tail} is missing")));
    out
}

fn lpexec_cli() -> clap::Command {
    lpexec::front::cli::command()
}

fn approvald_cli() -> clap::Command {
    <lpexec::approvald::Cli as clap::CommandFactory>::command()
}

#[test]
fn man_pages_are_current() {
    check_or_update("man/lpexec.1", &generated_page(lpexec_cli(), "1", "man/lpexec.1.in"));
    check_or_update(
        "man/lpexec-approvald.8",
        &generated_page(approvald_cli(), "8", "man/lpexec-approvald.8.in"),
    );
}

#[test]
fn completions_are_current() {
    use clap_complete::{Shell, generate};
    for (shell, file) in [
        (Shell::Bash, "completions/lpexec.bash"),
        (Shell::Zsh, "completions/_lpexec"),
        (Shell::Fish, "completions/lpexec.fish"),
    ] {
        let mut cmd = lpexec::front::cli::command();
        let mut buf = Vec::new();
        generate(shell, &mut cmd, "lpexec", &mut buf);
        check_or_update(file, &buf);
    }
}

/// Every long flag of the definition, and every subcommand, appears in the page.
fn undocumented(cmd: &clap::Command, page: &str) -> Vec<String> {
    let prog = cmd.get_name().to_string();
    let page = std::fs::read_to_string(root().join(page)).unwrap();
    let mut missing = Vec::new();
    let mut check = |c: &clap::Command, verb: &str| {
        for a in c.get_arguments() {
            if let Some(l) = a.get_long() {
                if !page.contains(&format!("\\-\\-{}", l.replace('-', "\\-"))) {
                    missing.push(format!("{verb} --{l}"));
                }
            }
        }
        if !verb.is_empty() && !page.contains(&format!("{prog} {verb}")) {
            missing.push(format!("verb {verb}"));
        }
    };
    check(cmd, "");
    for s in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        check(s, s.get_name());
    }
    missing
}

#[test]
fn every_flag_of_every_verb_is_in_the_man_page() {
    let missing = undocumented(&lpexec_cli(), "man/lpexec.1");
    assert!(missing.is_empty(), "not documented in man/lpexec.1: {missing:?}");
    let missing = undocumented(&approvald_cli(), "man/lpexec-approvald.8");
    assert!(missing.is_empty(), "not documented in man/lpexec-approvald.8: {missing:?}");
}

fn man_pages() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("man"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.len() == 1 && e.to_str().unwrap().chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_man_page_renders_without_warnings() {
    let pages = man_pages();
    let names: Vec<String> =
        pages.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in [
        "lpexec.1",
        "lpexec-helper.8",
        "lpexec-approvald.8",
        "lpexec.toml.5",
        "lpexec-policy.5",
        "lpexec-approvald.toml.5",
    ] {
        assert!(names.iter().any(|n| n == want), "man/{want} is missing ({names:?})");
    }
    for p in &pages {
        let o = Command::new("groff").args(["-ww", "-z", "-man", "-Tutf8"]).arg(p).output();
        let o = match o {
            Ok(o) => o,
            Err(e) => panic!("groff is needed to check the man pages (apt install groff): {e}"),
        };
        let warnings = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() && warnings.trim().is_empty(),
            "{}: groff warnings:\n{warnings}",
            p.display()
        );
        let o =
            Command::new("man").args(["-l", "-P", "cat"]).arg(p).env("MANWIDTH", "80").output().expect("man");
        assert!(
            o.status.success() && o.stdout.len() > 200,
            "man -l {} failed: {}",
            p.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn man_pages_name_each_other_correctly() {
    // Every page in SEE ALSO exists.
    let names: Vec<String> =
        man_pages().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for p in man_pages() {
        let text = std::fs::read_to_string(&p).unwrap();
        for name in [
            "lpexec",
            "lpexec-helper",
            "lpexec-approvald",
            "lpexec.toml",
            "lpexec-policy",
            "lpexec-approvald.toml",
        ] {
            for sec in ["1", "5", "8"] {
                let cite = format!("\\fB{}\\fR({sec})", name.replace('-', "\\-"));
                if text.contains(&cite) {
                    assert!(
                        names.contains(&format!("{name}.{sec}")),
                        "{} cites {name}({sec}), which does not exist",
                        p.display()
                    );
                }
            }
        }
    }
    let _ = Path::new("");
}

/// Runs the built `lpexec check` with arguments.
fn check(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_lpexec"))
        .arg("check")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        o.status.success(),
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    )
}

#[test]
fn every_shipped_example_passes_lpexec_check() {
    // The installed defaults.
    let (ok, out) = check(&["--config", "etc/lpexec.toml", "--policy", "packaging/default-policy.toml"]);
    assert!(ok, "{out}");
    // The teaching examples, with their policy tests.
    let (ok, out) = check(&[
        "--config",
        "etc/examples/lpexec.toml",
        "--policy",
        "etc/examples/policy.toml",
        "--test",
        "etc/examples/tests.toml",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains(" 0 failed"), "{out}");
    // The approval service's shipped configuration (its key need not exist yet).
    let o = Command::new(env!("CARGO_BIN_EXE_lpexec-approvald"))
        .args(["--config", "etc/approvald.toml", "check"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("etc/approvald.toml: ok"));
}
