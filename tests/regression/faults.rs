//! Fault injection: the syslog socket missing or stalled, the state directory unwritable.

use crate::harness::*;
use std::time::{Duration, Instant};

fn sandbox(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.policy(&dev_policy(&allow("sh")));
    sb
}

#[test]
fn syslog_socket_missing_warns_and_the_recording_still_holds_the_session() {
    let sb = sandbox("fault-syslog-missing");
    sb.set_syslog(SyslogMode::Missing);
    let o = sb.lp(ALICE, &["sh", "-c", "echo hi"]);
    o.assert_code(0);
    assert!(o.stderr.contains("cannot write to syslog"), "{}", o.stderr);
    let id = sb.recordings()[0].file_stem().unwrap().to_str().unwrap().to_string();
    sb.set_syslog(SyslogMode::Capture);
    sb.lp("root", &["verify", &id]).assert_code(0);
}

#[test]
fn a_stalled_syslog_daemon_does_not_hang_the_helper() {
    let sb = sandbox("fault-syslog-stalled");
    sb.set_syslog(SyslogMode::Stalled);
    let t0 = Instant::now();
    let o = sb.lp(ALICE, &["sh", "-c", "echo hi"]);
    o.assert_code(0);
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    assert!(o.stderr.contains("cannot write to syslog"), "{}", o.stderr);
}

#[test]
fn unwritable_state_directory_fails_closed() {
    let sb = sandbox("fault-state-ro");
    sb.state_readonly();
    let o = sb.lp(ALICE, &["sh", "-c", "echo should-not-run"]);
    o.assert_code(125);
    assert!(!o.stdout.contains("should-not-run"));
    assert!(
        o.stderr.contains("cannot be recorded") && o.stderr.contains("Read-only file system"),
        "{}",
        o.stderr
    );
    // with on_error = continue it runs, loudly
    sb.config("[recording]\non_error = \"continue\"\n");
    let o = sb.lp(ALICE, &["sh", "-c", "echo ran"]);
    o.assert_code(0);
    assert!(o.stdout.contains("ran") && o.stderr.contains("NOT recorded"), "{o:?}");
}
