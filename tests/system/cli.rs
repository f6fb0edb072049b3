//! Snapshot tests of the command line's help and error output. A change to what users see
//! shows up as a diff here; regenerate with `UPDATE_SNAPSHOTS=1 cargo test --test system cli`.

use std::path::PathBuf;
use std::process::Command;

fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {}; run with UPDATE_SNAPSHOTS=1", path.display()));
    assert_eq!(actual, expected, "output of `{name}` changed; if intended, run with UPDATE_SNAPSHOTS=1");
}

fn lpexec(args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_lpexec"))
        .args(args)
        .env_clear()
        .env("COLUMNS", "100")
        .env("LPEXEC_HELPER", "/nonexistent/lpexec-helper")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help() {
    let (code, out, _) = lpexec(&["--help"]);
    assert_eq!(code, Some(0));
    snapshot("help", &out);
}

#[test]
fn help_of_check() {
    let (code, out, _) = lpexec(&["check", "--help"]);
    assert_eq!(code, Some(0));
    snapshot("help-check", &out);
}

#[test]
fn no_command() {
    let (code, _, err) = lpexec(&[]);
    assert_eq!(code, Some(125));
    snapshot("error-no-command", &err);
}

#[test]
fn unknown_option() {
    let (code, _, err) = lpexec(&["--frobnicate", "ls"]);
    assert_eq!(code, Some(125));
    snapshot("error-unknown-option", &err);
}

#[test]
fn explain_without_a_command() {
    let (code, _, err) = lpexec(&["explain"]);
    assert_eq!(code, Some(125));
    snapshot("error-explain-no-command", &err);
}

#[test]
fn helper_missing() {
    let (code, _, err) = lpexec(&["true"]);
    assert_eq!(code, Some(125));
    snapshot("error-helper-missing", &err);
}

#[test]
fn helper_run_directly() {
    // Not setuid here, so it says that first.
    let o = Command::new(env!("CARGO_BIN_EXE_lpexec-helper")).env_clear().output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr).replace(env!("CARGO_BIN_EXE_lpexec-helper"), "HELPER");
    if nix::unistd::geteuid().is_root() {
        snapshot("error-helper-direct-root", &err);
    } else {
        assert!(err.contains("must be installed setuid root"), "{err}");
    }
}
