//! Running commands: identity of the command, exit status, streams, environment, logs.

use crate::harness::*;
use std::time::Duration;

fn sandbox(name: &str, rules: &[&str]) -> Sandbox {
    let sb = Sandbox::new(name);
    let rules: String = rules.iter().map(|c| allow(c)).collect();
    sb.policy(&dev_policy(&rules));
    sb
}

#[test]
fn lpexec_id_runs_the_command_as_root() {
    let sb = sandbox("id", &["id"]);
    let o = sb.lp(ALICE, &["id"]);
    o.assert_code(0);
    assert!(o.stdout.starts_with("uid=0(root) gid=0(root) groups=0(root)"), "{}", o.stdout);
}

#[test]
fn target_user_gets_its_uid_gid_and_supplementary_groups() {
    let sb = sandbox("target", &["id"]);
    let o = sb.lp(ALICE, &["-u", WEB, "id"]);
    o.assert_code(0);
    let uid = uid_of(WEB);
    assert!(o.stdout.starts_with(&format!("uid={uid}({WEB}) gid=")), "{}", o.stdout);
    assert!(o.stdout.contains(&format!("({OPS})")), "supplementary group missing: {}", o.stdout);
    assert!(!o.stdout.contains(DEV), "the caller's groups leaked: {}", o.stdout);
    // by number too
    let o = sb.lp(ALICE, &["-u", &format!("#{uid}"), "id", "-u"]);
    o.assert_code(0);
    assert_eq!(o.stdout.trim(), uid.to_string());
}

#[test]
fn exit_status_passes_through() {
    let sb = sandbox("exit", &["sh"]);
    sb.lp(ALICE, &["sh", "-c", "exit 7"]).assert_code(7);
    sb.lp(ALICE, &["sh", "-c", "exit 0"]).assert_code(0);
}

#[test]
fn signal_death_is_seen_as_128_plus_n_by_the_parent_shell() {
    let sb = sandbox("signal", &["sh"]);
    let o = sb.sh(ALICE, "$LP sh -c 'kill -TERM $$'; echo rc=$?");
    assert!(o.stdout.contains("rc=143"), "{o:?}");
    let o = sb.sh(ALICE, "$LP sh -c 'kill -KILL $$'; echo rc=$?");
    assert!(o.stdout.contains("rc=137"), "{o:?}");
    // and lpexec itself dies by the signal, as the command did
    let o = sb.lp(ALICE, &["sh", "-c", "kill -USR1 $$"]);
    assert_eq!(o.signal(), Some(libc::SIGUSR1), "{o:?}");
}

#[test]
fn command_not_found_is_127_and_not_executable_is_126() {
    let sb = sandbox("notfound", &["*"]);
    let o = sb.lp(ALICE, &["no-such-command-lpxt"]);
    o.assert_code(127);
    assert!(o.stderr.contains("lpexec: no-such-command-lpxt: command not found"), "{}", o.stderr);
    assert!(o.stderr.contains("secure_path"), "{}", o.stderr);
    let plain = sb.dir.join("plain-file");
    std::fs::write(&plain, "not a program\n").unwrap();
    std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let o = sb.lp(ALICE, &[&plain.display().to_string()]);
    o.assert_code(126);
    assert!(
        o.stderr.contains(&format!("{}: cannot execute: Permission denied", plain.display())),
        "{}",
        o.stderr
    );
}

#[test]
fn stdout_and_stderr_stay_separate_without_a_terminal() {
    let sb = sandbox("streams", &["sh"]);
    let o = sb.lp(ALICE, &["sh", "-c", "echo to-out; echo to-err >&2"]);
    o.assert_code(0);
    assert_eq!(o.stdout, "to-out\n");
    assert_eq!(o.stderr, "to-err\n");
}

#[test]
fn stdin_passes_through() {
    let sb = sandbox("stdin", &["cat"]);
    let o = sb.sh(ALICE, "printf 'line one\\nline two\\n' | $LP cat");
    assert_eq!(o.stdout, "line one\nline two\n", "{o:?}");
}

#[test]
fn only_descriptors_0_to_2_reach_the_command() {
    let sb = sandbox("fds", &["sh"]);
    let o = sb.sh(ALICE, "exec 7</etc/hostname 8>/dev/null; $LP sh -c 'ls /proc/self/fd/ >/dev/null; for n in 3 4 5 6 7 8 9; do [ -e /proc/$$/fd/$n ] && echo open:$n; done; true'");
    assert_eq!(o.code(), Some(0), "{o:?}");
    assert!(!o.stdout.contains("open:"), "inherited descriptors: {}", o.stdout);
}

#[test]
fn command_starts_with_default_signal_dispositions() {
    let sb = sandbox("sigdfl", &["grep"]);
    let o = sb.sh(ALICE, "trap '' INT QUIT TERM; $LP grep -E '^Sig(Ign|Blk)' /proc/self/status");
    assert!(o.stdout.contains("SigBlk:\t0000000000000000"), "{o:?}");
    assert!(o.stdout.contains("SigIgn:\t0000000000000000"), "{o:?}");
}

#[test]
fn umask_is_the_callers_or_022() {
    let sb = sandbox("umask", &["sh"]);
    assert_eq!(sb.sh(ALICE, "umask 077; $LP sh -c umask").stdout.trim(), "0077");
    assert_eq!(sb.sh(ALICE, "umask 000; $LP sh -c umask").stdout.trim(), "0022");
}

#[test]
fn environment_is_reset_like_sudo() {
    let sb = Sandbox::new("env");
    sb.policy(&format!(
        "{}env_keep = [\"NODE_ENV\"]\nenv_set = {{ CI = \"true\" }}\n{}",
        dev_policy(""),
        allow("env")
    ));
    let o = sb.lp_env(
        ALICE,
        &[
            ("TERM", "xterm-256color"),
            ("NODE_ENV", "production"),
            ("LANG", "C.UTF-8"),
            ("SECRET", "x"),
            ("DISPLAY", ":0"),
        ],
        &["env"],
    );
    o.assert_code(0);
    let mut keys: Vec<&str> = o.stdout.lines().filter_map(|l| l.split_once('=').map(|x| x.0)).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "CI",
            "HOME",
            "LANG",
            "LOGNAME",
            "LPEXEC_ROLE",
            "LPEXEC_SESSION",
            "LPEXEC_UID",
            "LPEXEC_USER",
            "NODE_ENV",
            "PATH",
            "SHELL",
            "TERM",
            "USER"
        ],
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"));
    assert!(
        o.stdout.contains("HOME=/root\n")
            && o.stdout.contains("USER=root\n")
            && o.stdout.contains("LOGNAME=root\n")
    );
    assert!(o.stdout.contains(&format!("LPEXEC_USER={ALICE}\n")));
    assert!(o.stdout.contains(&format!("LPEXEC_UID={}\n", uid_of(ALICE))));
    assert!(o.stdout.contains("LPEXEC_ROLE=dev\n"));
}

#[test]
fn syslog_has_decision_start_and_end_lines() {
    let sb = sandbox("syslog", &["sh"]);
    let o = sb.lp(ALICE, &["--reason", "deploy #42", "sh", "-c", "exit 3"]);
    o.assert_code(3);
    let decision = sb.expect_syslog(&["DECISION=allow"]);
    assert!(decision.contains("lpexec["), "{decision}");
    let sh = std::fs::canonicalize("/usr/bin/sh").unwrap();
    let cmd = format!("COMMAND={} -c 'exit 3'", sh.display());
    assert!(decision.contains(&format!("{ALICE} : ROLE=dev ; TTY=unknown ; PWD=/ ; USER=root ; {cmd} ; REASON=deploy #42 ; DECISION=allow ; RULE=/etc/lpexec/policy.toml:")), "{decision}");
    let session = decision.split("SESSION=").nth(1).unwrap().trim().to_string();
    let start = sb.expect_syslog(&["EVENT=start", &session]);
    assert!(start.contains(&cmd));
    let end = sb.expect_syslog(&["EVENT=end", &session]);
    assert!(end.contains("EXIT=3 ; DURATION="), "{end}");
    assert!(
        end.contains("RECORDING=/var/log/lpexec/sessions/")
            && end.contains(&format!("{session}.cast ; SHA256=")),
        "{end}"
    );
    // authpriv.notice: <85>
    assert!(decision.starts_with("<85>"), "{decision}");
}

#[test]
fn denials_are_logged_with_the_reason() {
    let sb = sandbox("denylog", &["id"]);
    let o = sb.lp(ALICE, &["ls", "/root"]);
    o.assert_code(125);
    assert!(
        o.stderr.contains(&format!(
            "lpexec: {ALICE} may not run /usr/bin/ls /root as root: no rule allows this command"
        )),
        "{}",
        o.stderr
    );
    let l = sb.expect_syslog(&["DECISION=deny"]);
    assert!(l.contains("WHY=no rule allows this command"), "{l}");
    assert!(l.starts_with("<81>"), "denials are authpriv.alert: {l}");
    let o = sb.lp(MALLORY, &["id"]);
    o.assert_code(125);
    assert!(o.stderr.contains("not a member of any role"), "{}", o.stderr);
}

#[test]
fn configured_syslog_facility_is_used() {
    let sb = sandbox("facility", &["true"]);
    sb.config("[syslog]\nfacility = \"local3\"\n");
    sb.lp(ALICE, &["true"]).assert_code(0);
    let l = sb.expect_syslog(&["DECISION=allow"]);
    assert!(l.starts_with(&format!("<{}>", 19 * 8 + 5)), "{l}");
}

#[test]
fn real_rsyslog_writes_the_lines_to_auth_log() {
    // The sandbox normally captures /dev/log; this one goes to the machine's syslog daemon.
    let sb = sandbox("rsyslog", &["true"]);
    let marker = format!("rsyslog-marker-{}", std::process::id());
    let script = format!(
        "mount --bind '{}' /etc/lpexec || exit 99; exec setpriv --reuid={ALICE} --regid={ALICE} --init-groups -- env -i PATH=/usr/bin:/bin LPEXEC_HELPER='{}' '{}' --reason {marker} true",
        sb.etc.display(),
        sb.bin.join("lpexec-helper").display(),
        sb.lpexec()
    );
    let o = output_within(
        std::process::Command::new("unshare").args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &script,
        ]),
        COMMAND_LIMIT,
    );
    assert!(o.status.success(), "{o:?}");
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string("/var/log/auth.log").unwrap_or_default();
        if log.lines().any(|l| l.contains(&marker) && l.contains("DECISION=allow") && l.contains("lpexec[")) {
            break;
        }
        assert!(std::time::Instant::now() < until, "rsyslog did not write the line to /var/log/auth.log");
        std::thread::sleep(Duration::from_millis(100));
    }
}
