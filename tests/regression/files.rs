//! CVE-2021-23239/23240 (sudoedit temp-dir race, symlinked chown): symlinks and races on the
//! files the helper creates — state and recordings.

use crate::harness::*;
use std::path::Path;
use std::time::Duration;

fn sandbox(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.policy(&dev_policy(&format!("{}{}", allow("true"), allow("sh"))));
    sb
}

#[test]
fn cve_2021_23240_symlinked_host_key_is_not_followed() {
    let sb = sandbox("reg-hostkey-symlink");
    let target = sb.dir.join("victim");
    std::fs::write(&target, "precious\n").unwrap();
    std::os::unix::fs::symlink(&target, sb.state.join("host-key")).unwrap();
    let o = sb.lp(ALICE, &["true"]);
    o.assert_code(125);
    assert!(o.stderr.contains("symbolic link"), "{}", o.stderr);
    assert_eq!(read(&target), "precious\n");
}

#[test]
fn cve_2021_23239_symlinked_recordings_directory_is_refused() {
    let sb = sandbox("reg-sessions-symlink");
    let elsewhere = sb.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, sb.log.join("sessions")).unwrap();
    let o = sb.lp(ALICE, &["true"]);
    o.assert_code(125);
    assert!(o.stderr.contains("/var/log/lpexec/sessions is a symbolic link"), "{}", o.stderr);
    assert!(sb.files_under(&elsewhere).is_empty());
}

#[test]
fn recordings_directory_swapped_mid_session_does_not_redirect_writes() {
    let sb = sandbox("reg-swap");
    let mut child = sb
        .command(ALICE, &[], &[&sb.lpexec(), "sh", "-c", "echo early; sleep 1.5; echo late"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the recording to exist, then swap its year directory for a symlink.
    let sessions = sb.log.join("sessions");
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while sb.recordings().is_empty() {
        assert!(std::time::Instant::now() < until, "no recording appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let year =
        std::fs::read_dir(&sessions).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
    let moved = year.with_extension("moved");
    std::fs::rename(&year, &moved).unwrap();
    let elsewhere = sb.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &year).unwrap();
    let st = wait_within(&mut child, COMMAND_LIMIT);
    assert!(st.success());
    assert!(sb.files_under(&elsewhere).is_empty(), "the helper wrote through the planted symlink");
    // The recording and its seal stayed where they were opened.
    let files = sb.files_under(&moved);
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "json")), "{files:?}");
    let cast = files.iter().find(|f| f.extension().is_some_and(|e| e == "cast")).unwrap();
    assert!(read(cast).contains("late"));
}

#[test]
fn world_writable_state_directory_is_refused() {
    let sb = sandbox("reg-state-perms");
    std::fs::set_permissions(&sb.state, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let o = sb.lp(ALICE, &["true"]);
    o.assert_code(125);
    assert!(o.stderr.contains("/var/lib/lpexec is writable by others"), "{}", o.stderr);
}

#[test]
fn sudo_rs_cve_2023_42456_state_is_never_keyed_by_user_name() {
    let sb = sandbox("reg-keyed");
    sb.lp(ALICE, &["true"]).assert_code(0);
    sb.lp(BOB, &["true"]).assert_code(125);
    for f in sb.files_under(&sb.state).iter().chain(sb.files_under(&sb.log).iter()) {
        let rel = f.strip_prefix(&sb.dir).unwrap().display().to_string();
        assert!(
            !rel.contains("alice") && !rel.contains("bob"),
            "a state or log path contains a user name: {rel}"
        );
    }
    let _ = Path::new("");
}
