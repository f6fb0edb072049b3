//! Session recordings: asciicast v2 read by the real asciinema, masking, permissions, seals,
//! failure policy, and the auditor's verbs.

use crate::harness::*;
use std::path::Path;
use std::time::Duration;

fn sandbox(name: &str, extra_role: &str, rules: &[&str]) -> Sandbox {
    let sb = Sandbox::new(name);
    let rules: String = rules.iter().map(|c| allow(c)).collect();
    sb.policy(&format!("{}{extra_role}{rules}", dev_policy("")));
    sb
}

fn events(cast: &Path) -> (serde_json::Value, Vec<(f64, String, String)>) {
    let text = read(cast);
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let ev = lines
        .map(|l| {
            serde_json::from_str::<(f64, String, String)>(l).unwrap_or_else(|e| panic!("line {l:?}: {e}"))
        })
        .collect();
    (header, ev)
}

fn output_of(cast: &Path) -> String {
    events(cast).1.into_iter().filter(|e| e.1 == "o").map(|e| e.2).collect()
}

#[test]
fn terminal_session_is_recorded_and_plays_in_asciinema() {
    let sb = sandbox("rec-pty", "", &["sh"]);
    let mut t = sb.pty(
        ALICE,
        &[],
        &[&sb.lpexec(), "sh", "-c", "printf 'hello from a terminal\\n'; printf 'caf\\303\\251\\n'; exit 4"],
    );
    assert_eq!(t.wait(Duration::from_secs(20)).code(), Some(4));
    let recs = sb.recordings();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let (h, ev) = events(&recs[0]);
    assert_eq!(h["version"], 2);
    assert_eq!((h["width"].as_u64(), h["height"].as_u64()), (Some(100), Some(30)));
    assert!(h["timestamp"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(h["env"]["TERM"], "xterm");
    assert!(h["title"].as_str().unwrap().contains(ALICE));
    let m = &h["lpexec"];
    assert_eq!(m["user"], ALICE);
    assert_eq!(m["role"], "dev");
    assert_eq!(m["target"], "root");
    assert_eq!(m["streams"], "pty");
    assert_eq!(m["argv"][0], "sh");
    assert!(ev.iter().all(|e| e.1 == "o" || e.1 == "r"));
    let out = output_of(&recs[0]);
    assert!(out.contains("hello from a terminal\r\n") && out.contains("café\r\n"), "{out:?}");
    let (ok, shown) = on_a_terminal(&format!("asciinema cat {}", recs[0].display()));
    assert!(ok, "asciinema cat failed: {shown}");
    assert!(shown.contains("hello from a terminal") && shown.contains("café"), "{shown}");
}

#[test]
fn pipe_session_records_stdout_and_stderr_and_plays_in_asciinema() {
    let sb = sandbox("rec-pipes", "", &["sh"]);
    let o = sb.lp(ALICE, &["sh", "-c", "echo to-stdout; echo to-stderr >&2"]);
    o.assert_code(0);
    assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("to-stdout\n", "to-stderr\n"));
    let recs = sb.recordings();
    let out = output_of(&recs[0]);
    assert!(out.contains("to-stdout\n") && out.contains("to-stderr\n"), "{out:?}");
    assert_eq!(events(&recs[0]).0["lpexec"]["streams"], "pipes");
    let (ok, shown) = on_a_terminal(&format!("asciinema cat {}", recs[0].display()));
    assert!(ok && shown.contains("to-stdout") && shown.contains("to-stderr"), "{shown}");
}

#[test]
fn files_and_directories_are_root_only_by_default() {
    let sb = sandbox("rec-perms", "", &["true"]);
    sb.lp(ALICE, &["true"]).assert_code(0);
    let cast = &sb.recordings()[0];
    assert_eq!(mode_owner(cast), (0o600, 0, 0));
    assert_eq!(mode_owner(&cast.with_extension("json")), (0o600, 0, 0));
    let mut d = cast.parent().unwrap().to_path_buf();
    for _ in 0..3 {
        assert_eq!(mode_owner(&d), (0o700, 0, 0), "{}", d.display());
        d.pop();
    }
    assert_eq!(mode_owner(&sb.state.join("host-key")), (0o600, 0, 0));
    // and an ordinary user cannot list them
    let o = sb.lp(ALICE, &["sessions"]);
    o.assert_code(125);
    assert!(o.stderr.contains("readable by root only"), "{}", o.stderr);
}

#[test]
fn audit_group_can_read_and_verify() {
    let sb = sandbox("rec-group", "", &["true"]);
    sb.config(&format!("[recording]\ngroup = \"{OPS}\"\n"));
    sb.lp(ALICE, &["true"]).assert_code(0);
    let cast = &sb.recordings()[0];
    let gid = nix::unistd::Group::from_name(OPS).unwrap().unwrap().gid.as_raw();
    assert_eq!(mode_owner(cast), (0o640, 0, gid));
    assert_eq!(mode_owner(cast.parent().unwrap()), (0o750, 0, gid));
    let o = sb.lp(BOB, &["sessions"]);
    o.assert_code(0);
    assert!(o.stdout.contains(ALICE) && o.stdout.contains("/usr/bin/true"), "{}", o.stdout);
    let id = cast.file_stem().unwrap().to_str().unwrap();
    let o = sb.lp(BOB, &["verify", id]);
    o.assert_code(0);
    assert!(o.stdout.starts_with("sealed and valid:"), "{}", o.stdout);
    let o = sb.lp(MALLORY, &["sessions"]);
    o.assert_code(125);
    assert!(o.stderr.contains(&format!("members of the group {OPS}")), "{}", o.stderr);
}

#[test]
fn a_symlink_planted_in_the_date_path_is_refused() {
    let sb = sandbox("rec-symlink", "", &["true"]);
    let sessions = sb.log.join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let elsewhere = sb.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let year = format!("{}", time::OffsetDateTime::now_utc().year());
    std::os::unix::fs::symlink(&elsewhere, sessions.join(&year)).unwrap();
    let o = sb.lp(ALICE, &["true"]);
    o.assert_code(125);
    assert!(o.stderr.contains("cannot be recorded") && o.stderr.contains("symbolic link"), "{}", o.stderr);
    assert!(sb.files_under(&elsewhere).is_empty());
    // on_error = continue: it runs, loudly
    sb.config("[recording]\non_error = \"continue\"\n");
    let o = sb.lp(ALICE, &["true"]);
    o.assert_code(0);
    assert!(o.stderr.contains("NOT recorded"), "{}", o.stderr);
    sb.expect_syslog(&["EVENT=recording-failed", "symbolic link"]);
    sb.expect_syslog(&["EVENT=end", "RECORDING_ERROR="]);
    assert!(sb.files_under(&elsewhere).is_empty());
}

#[test]
fn two_sessions_in_the_same_second_get_distinct_files() {
    let sb = sandbox("rec-same-second", "", &["true"]);
    let o = sb.sh(ALICE, "$LP true & $LP true & $LP true & wait");
    assert_eq!(o.code(), Some(0), "{o:?}");
    let recs = sb.recordings();
    assert_eq!(recs.len(), 3, "{recs:?}");
}

#[test]
fn secrets_are_masked_before_they_reach_disk() {
    let token = "npm_abcdefghijklmnopqrstuvwxyz0123456789";
    let sb = sandbox("rec-mask", "mask = ['npm_[A-Za-z0-9]{36}']\n", &["sh"]);
    // The secret comes from a file, printed in two pieces with a pause in between.
    let secret = sb.dir.join("secret");
    std::fs::write(&secret, token).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let f = secret.display();
    let o = sb.lp(
        ALICE,
        &["sh", "-c", &format!("printf 'token='; head -c 15 {f}; sleep 0.05; tail -c +16 {f}; echo ' done'")],
    );
    o.assert_code(0);
    assert!(o.stdout.contains(token), "mask_live is off: the caller sees the output");
    let text = read(&sb.recordings()[0]);
    assert!(
        !text.contains(token) && !text.contains(&token[15..]) && !text.contains(&token[..15]),
        "secret on disk: {text}"
    );
    assert!(output_of(&sb.recordings()[0]).contains("token=**** done"), "{text}");

    // A secret in the command line itself is masked in the header and in syslog.
    let o = sb.lp(ALICE, &["sh", "-c", &format!("true {token}")]);
    o.assert_code(0);
    let text = read(&sb.recordings()[1]);
    assert!(!text.contains(token) && text.contains("true ****"), "{text}");
    let l = sb.expect_syslog(&["EVENT=end", "true ****"]);
    assert!(!l.contains(token), "{l}");

    // mask_live: the caller does not see it either, on a terminal
    let sb = sandbox("rec-mask-live", "mask = ['npm_[A-Za-z0-9]{36}']\nmask_live = true\n", &["sh"]);
    let mut t = sb.pty(ALICE, &[], &[&sb.lpexec(), "sh", "-c", &format!("echo {token} end")]);
    assert!(t.wait(Duration::from_secs(10)).success());
    assert!(t.text().contains("**** end") && !t.text().contains(token), "{}", t.text());
}

#[test]
fn verify_tells_valid_tampered_truncated_unsealed_and_wrong_key_apart() {
    let sb = sandbox("rec-verify", "", &["sh"]);
    sb.lp(ALICE, &["sh", "-c", "echo one; echo two"]).assert_code(0);
    let cast = sb.recordings()[0].clone();
    let id = cast.file_stem().unwrap().to_str().unwrap().to_string();
    let verify = || sb.lp("root", &["verify", &id]);
    let o = verify();
    o.assert_code(0);
    assert!(o.stdout.contains("this host's key"), "{}", o.stdout);
    // by path too
    sb.lp(
        "root",
        &[
            "verify",
            &format!(
                "/var/log/lpexec/sessions/{}",
                cast.strip_prefix(sb.log.join("sessions")).unwrap().display()
            ),
        ],
    )
    .assert_code(0);

    let original = std::fs::read(&cast).unwrap();
    let mut changed = original.clone();
    let at = changed.len() - 8;
    changed[at] ^= 0x01;
    std::fs::write(&cast, &changed).unwrap();
    let o = verify();
    o.assert_code(1);
    assert!(o.stdout.starts_with("TAMPERED") && o.stdout.contains("SHA-256"), "{}", o.stdout);

    std::fs::write(&cast, &original[..original.len() - 10]).unwrap();
    let o = verify();
    o.assert_code(1);
    assert!(o.stdout.contains("truncated"), "{}", o.stdout);

    std::fs::write(&cast, &original).unwrap();
    verify().assert_code(0);
    let pubkey = sb.log.join("sessions/host-key.pub");
    let real = std::fs::read(&pubkey).unwrap();
    std::fs::write(&pubkey, "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n").unwrap();
    let o = verify();
    o.assert_code(1);
    assert!(o.stdout.contains("not this host's key"), "{}", o.stdout);
    std::fs::write(&pubkey, real).unwrap();

    std::fs::remove_file(cast.with_extension("json")).unwrap();
    let o = verify();
    o.assert_code(2);
    assert!(o.stdout.starts_with("UNSEALED") && o.stdout.contains("every line parses"), "{}", o.stdout);
}

#[test]
fn sigkill_of_the_helper_leaves_a_parsable_recording_and_no_command_running() {
    let sb = sandbox("rec-sigkill", "", &["sh"]);
    let mut t = sb.pty(
        ALICE,
        &[],
        &[&sb.lpexec(), "sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.01; done"],
    );
    t.expect("line 30");
    let front = t.pid();
    let helper = *children_of(front).first().expect("helper process");
    let before = descendants_of(helper);
    assert!(before.len() >= 2, "monitor and command expected: {before:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(helper as i32), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let _ = t.wait(Duration::from_secs(10));
    assert_all_gone(&before, "after the helper was killed");
    let cast = sb.recordings()[0].clone();
    let (_, ev) = events(&cast); // every line parses, or this panics
    assert!(ev.len() >= 10, "{}", ev.len());
    let id = cast.file_stem().unwrap().to_str().unwrap().to_string();
    let o = sb.lp("root", &["verify", &id]);
    o.assert_code(2);
    assert!(o.stdout.contains("every line parses"), "{}", o.stdout);
}

fn fill_policy(sb: &Sandbox, on_error: &str) {
    sb.config(&format!("[recording]\non_error = \"{on_error}\"\n"));
    sb.log_on_tmpfs("1m");
}

#[test]
fn disk_full_with_on_error_deny_stops_the_command() {
    let sb = sandbox("rec-full-deny", "", &["sh"]);
    fill_policy(&sb, "deny");
    let o = sb.lp(ALICE, &["sh", "-c", "i=0; while [ $i -lt 400 ]; do head -c 6000 /dev/zero | tr '\\0' x; echo; i=$((i+1)); sleep 0.001; done; echo FINISHED"]);
    assert_ne!(o.code(), Some(0), "{}", o.stderr);
    assert!(!o.stdout.contains("FINISHED"), "the command ran to the end");
    assert!(
        o.stderr.contains("No space left on device") && o.stderr.contains("stopping the command"),
        "{}",
        o.stderr
    );
    let (_, ev) = events(&sb.recordings()[0]); // every line already written still parses
    assert!(!ev.is_empty());
    sb.expect_syslog(&["EVENT=end", "RECORDING_ERROR="]);
}

#[test]
fn disk_full_with_on_error_continue_runs_on_loudly() {
    let sb = sandbox("rec-full-continue", "", &["sh"]);
    fill_policy(&sb, "continue");
    let o = sb.lp(ALICE, &["sh", "-c", "i=0; while [ $i -lt 400 ]; do head -c 6000 /dev/zero | tr '\\0' x; echo; i=$((i+1)); done; echo FINISHED"]);
    o.assert_code(0);
    assert!(o.stdout.contains("FINISHED"));
    assert!(o.stderr.contains("UNRECORDED"), "{}", o.stderr);
    let (_, ev) = events(&sb.recordings()[0]);
    assert!(!ev.is_empty());
    let end = sb.expect_syslog(&["EVENT=end"]);
    assert!(end.contains("RECORDING_ERROR=") && end.contains("No space left on device"), "{end}");
}

#[test]
fn sessions_filters_and_json() {
    let sb = sandbox("rec-sessions", "", &["true", "sh"]);
    sb.lp(ALICE, &["true"]).assert_code(0);
    sb.lp(ALICE, &["sh", "-c", "exit 5"]).assert_code(5);
    let o = sb.lp("root", &["sessions"]);
    o.assert_code(0);
    assert_eq!(o.stdout.lines().count(), 3, "{}", o.stdout);
    assert!(o.stdout.lines().next().unwrap().contains("START (UTC)"));
    let o = sb.lp("root", &["sessions", "--command", "exit 5", "--json"]);
    o.assert_code(0);
    let rows: Vec<serde_json::Value> = o.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["exit"], 5);
    assert_eq!(rows[0]["user"], ALICE);
    assert_eq!(rows[0]["sealed"], true);
    assert_eq!(sb.lp("root", &["sessions", "--user", BOB]).stdout.lines().count(), 1);
    assert_eq!(sb.lp("root", &["sessions", "--since", "1h"]).stdout.lines().count(), 3);
    assert_eq!(sb.lp("root", &["sessions", "--until", "2000-01-01"]).stdout.lines().count(), 1);
    sb.lp("root", &["sessions", "--since", "yesterday"]).assert_code(125);
    sb.lp("root", &["sessions", "--command", "("]).assert_code(125);
}

#[test]
fn replay_print_equals_what_the_command_printed() {
    let sb = sandbox("rec-replay", "", &["sh"]);
    let script = "for i in 1 2 3; do echo \"line $i: caf\u{e9} \\$\\\\\"; done; printf 'no newline'";
    let o = sb.lp(ALICE, &["sh", "-c", script]);
    o.assert_code(0);
    let id = sb.recordings()[0].file_stem().unwrap().to_str().unwrap().to_string();
    let r = sb.lp("root", &["replay", "--print", &id]);
    r.assert_code(0);
    assert_eq!(r.stdout, o.stdout);
    // real-time replay with a speed-up, not on a terminal, gives the same bytes
    let r = sb.lp("root", &["replay", "--speed", "100", &id]);
    r.assert_code(0);
    assert_eq!(r.stdout, o.stdout);
    sb.lp("root", &["replay", "--speed", "0", &id]).assert_code(125);
    sb.lp("root", &["replay", "../../etc/shadow"]).assert_code(125);
}

#[test]
fn two_hundred_mib_through_the_recorder_loses_no_byte() {
    let sb = sandbox("rec-200mib", "", &["cat"]);
    let data = sb.dir.join("data.txt");
    // 200 MiB of base64 text (lines of 76) from a fixed seed.
    must_sh(&format!(
        "openssl enc -aes-128-ctr -pass pass:lpexec -nosalt -pbkdf2 </dev/zero 2>/dev/null | head -c 157286400 | base64 -w 76 | head -c 209715200 > '{}'; chmod 644 '{}'",
        data.display(),
        data.display()
    ));
    let want = std::fs::read(&data).unwrap();
    assert_eq!(want.len(), 200 << 20);
    let o = sb.lp_raw(ALICE, &["cat", &data.display().to_string()]);
    assert_eq!(o.0.code(), Some(0));
    assert_eq!(o.1.len(), want.len(), "bytes lost on the way to the caller");
    assert!(o.1 == want, "the caller got different bytes");
    let rec = sb.recordings()[0].clone();
    let text = output_of(&rec);
    assert_eq!(text.len(), want.len(), "bytes lost in the recording");
    assert!(text.as_bytes() == want.as_slice(), "the recording holds different bytes");
    let size = std::fs::metadata(&rec).unwrap().len() as f64;
    assert!(
        size / want.len() as f64 <= 1.1,
        "recording is {:.3} bytes per output byte",
        size / want.len() as f64
    );
}

#[test]
fn replay_on_a_terminal_can_be_stopped_and_restores_the_terminal() {
    let sb = sandbox("rec-replay-tty", "", &["sh"]);
    sb.lp(ALICE, &["sh", "-c", "echo first; sleep 3; echo second"]).assert_code(0);
    let id = sb.recordings()[0].file_stem().unwrap().to_str().unwrap().to_string();
    let lp = sb.lpexec();
    let mut t =
        sb.pty("root", &[("PS1", "PROMPT$ "), ("LP", &lp)], &["/bin/bash", "--norc", "--noprofile", "-i"]);
    t.expect("PROMPT$ ");
    t.send(&format!("a=$(stty -g); $LP replay {id}; echo rc=$?\n"));
    t.expect("first");
    t.send("q");
    t.expect("rc=130");
    assert!(!t.text().contains("second"), "replay did not stop: {}", t.text());
    t.send("b=$(stty -g); [ \"$a\" = \"$b\" ] && echo SA\"\"ME\n");
    t.expect("SAME");
}
