//! The caller against the helper process: ptrace, signals at every stage, resource limits,
//! hostile program names (CVE-2017-1000367), format strings (CVE-2012-0809).

use crate::harness::*;
use std::time::Duration;

fn sandbox(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.policy(&dev_policy(&format!("{}{}{}", allow("true"), allow("sh"), allow("sleep"))));
    sb
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ptrace_and_proc_access_to_the_helper_are_refused() {
    let sb = sandbox("reg-ptrace");
    let t = sb.pty(ALICE, &[], &[&sb.lpexec(), "sleep", "30"]);
    let front = t.pid();
    wait_for("the helper", || !children_of(front).is_empty() && descendants_of(front).len() >= 3);
    let helper = children_of(front)[0];
    let all = descendants_of(front);
    for pid in all {
        // PTRACE_ATTACH (16) via syscall 101, as the caller; and the helper's memory and environment.
        let o = sb.run(
            ALICE,
            &[],
            &["perl", "-e", &format!("my $r = syscall(101, 16, {pid}, 0, 0); print $r == -1 ? \"denied:$!\\n\" : \"ATTACHED\\n\"")],
        );
        assert!(o.stdout.starts_with("denied:"), "pid {pid}: {o:?}");
    }
    for file in ["environ", "mem", "maps"] {
        let o = sb.run(ALICE, &[], &["cat", &format!("/proc/{helper}/{file}")]);
        assert_ne!(o.code(), Some(0), "/proc/{helper}/{file} readable by the caller: {o:?}");
    }
}

#[test]
fn sigterm_to_the_front_end_reaches_the_command_and_the_session_is_sealed() {
    let sb = sandbox("reg-sigterm");
    let mut child = sb.command(ALICE, &[], &[&sb.lpexec(), "sleep", "30"]).spawn().unwrap();
    wait_for("the command", || descendants_of(child.id()).len() >= 2);
    signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    let st = wait_within(&mut child, COMMAND_LIMIT);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(libc::SIGTERM));
    let id = sb.recordings()[0].file_stem().unwrap().to_str().unwrap().to_string();
    sb.lp("root", &["verify", &id]).assert_code(0);
}

#[test]
fn sigkill_of_the_front_end_leaves_the_session_recorded_to_the_end() {
    let sb = sandbox("reg-kill-front");
    let mut child =
        sb.command(ALICE, &[], &[&sb.lpexec(), "sh", "-c", "sleep 1; echo finished"]).spawn().unwrap();
    wait_for("the command", || descendants_of(child.id()).len() >= 2);
    child.kill().unwrap();
    wait_within(&mut child, COMMAND_LIMIT);
    wait_for("the seal", || sb.recordings().first().is_some_and(|c| c.with_extension("json").exists()));
    let cast = sb.recordings()[0].clone();
    assert!(read(&cast).contains("finished"));
    let id = cast.file_stem().unwrap().to_str().unwrap().to_string();
    sb.lp("root", &["verify", &id]).assert_code(0);
}

/// An interactive bash on a terminal that saved its terminal mode and started `$LP ARGS`:
/// the terminal and the helper's pid, once the session is up.
fn interactive_session(sb: &Sandbox, args: &str) -> (Pty, u32) {
    let lp = sb.lpexec();
    let mut t =
        sb.pty(ALICE, &[("PS1", "PROMPT$ "), ("LP", &lp)], &["/bin/bash", "--norc", "--noprofile", "-i"]);
    t.expect("PROMPT$ ");
    t.send(&format!("a=$(stty -g); $LP {args}\n"));
    let shell = t.pid();
    wait_for("the session", || descendants_of(shell).len() >= 4);
    let front = children_of(shell).into_iter().find(|p| !children_of(*p).is_empty()).unwrap();
    let helper = children_of(front)[0];
    (t, helper)
}

/// The shell got its prompt back and its terminal mode is what it was before the session.
fn assert_terminal_restored(t: &mut Pty) {
    t.expect_n("PROMPT$ ", 2, Duration::from_secs(10));
    t.send("b=$(stty -g); [ \"$a\" = \"$b\" ] && echo SA\"\"ME\n");
    t.expect("SAME");
}

#[test]
fn sigkill_of_the_helper_leaves_no_raw_terminal_and_no_command() {
    let sb = sandbox("reg-kill-helper-tty");
    let (mut t, helper) = interactive_session(&sb, "sleep 60");
    let session = descendants_of(helper);
    signal(helper, nix::sys::signal::Signal::SIGKILL);
    assert_terminal_restored(&mut t);
    assert_all_gone(&session, "after the helper was killed");
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

#[test]
fn sigstop_of_the_helper_loses_no_output_and_leaves_no_raw_terminal() {
    // The caller may stop the helper (its real uid is the caller's): the command's output
    // waits in the session's pty meanwhile, and after SIGCONT everything reaches both the
    // caller and the recording, and the terminal is restored at the end.
    let sb = sandbox("reg-sigstop-helper");
    let (mut t, helper) = interactive_session(&sb, "sh -c 'sleep 1; echo after-the-stop'");
    signal(helper, nix::sys::signal::Signal::SIGSTOP);
    // Meanwhile the command writes its line and exits.
    std::thread::sleep(Duration::from_secs(2));
    signal(helper, nix::sys::signal::Signal::SIGCONT);
    t.expect("after-the-stop");
    assert_terminal_restored(&mut t);
    let cast = sb.recordings()[0].clone();
    assert!(read(&cast).contains("after-the-stop"));
    let id = cast.file_stem().unwrap().to_str().unwrap().to_string();
    sb.lp("root", &["verify", &id]).assert_code(0);
}

#[test]
fn sigstop_of_the_front_end_leaves_the_command_recorded_and_the_status_intact() {
    let sb = sandbox("reg-sigstop-front");
    let mut child = sb
        .command(ALICE, &[], &[&sb.lpexec(), "sh", "-c", "sleep 1; echo finished; exit 3"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the command", || descendants_of(child.id()).len() >= 2);
    signal(child.id(), nix::sys::signal::Signal::SIGSTOP);
    wait_for("the seal", || sb.recordings().first().is_some_and(|c| c.with_extension("json").exists()));
    signal(child.id(), nix::sys::signal::Signal::SIGCONT);
    // One short line: it fits the pipe, so waiting before reading cannot block the command.
    assert_eq!(wait_within(&mut child, COMMAND_LIMIT).code(), Some(3));
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(stdout, "finished\n");
    let id = sb.recordings()[0].file_stem().unwrap().to_str().unwrap().to_string();
    sb.lp("root", &["verify", &id]).assert_code(0);
}

#[test]
fn resource_limits_set_by_the_caller_fail_closed_or_record() {
    let sb = sandbox("reg-rlimits");
    for limit in ["ulimit -n 4", "ulimit -f 0", "ulimit -v 200000", "ulimit -Hn 5"] {
        let before = sb.recordings().len();
        let o = sb.sh(ALICE, &format!("{limit}; $LP sh -c 'echo ran'; echo rc=$?"));
        let ran = o.stdout.contains("ran\n");
        if ran {
            // It ran: then it was recorded and sealed.
            let recs = sb.recordings();
            assert_eq!(recs.len(), before + 1, "{limit}: ran but not recorded: {o:?}");
            assert!(recs.last().unwrap().with_extension("json").exists(), "{limit}: not sealed");
        } else {
            assert!(o.stdout.contains("rc=125") || o.stdout.contains("rc=1"), "{limit}: {o:?}");
        }
    }
}

#[test]
fn cve_2012_0809_format_strings_in_program_names_are_inert() {
    let sb = sandbox("reg-format");
    let link = sb.dir.join("%s%s%n%n%x");
    std::os::unix::fs::symlink(sb.bin.join("lpexec"), &link).unwrap();
    let o = sb.run(ALICE, &[], &[&link.display().to_string(), "sh", "-c", "echo \"$0\"", "%n%n%s%s"]);
    o.assert_code(0);
    assert_eq!(o.stdout, "%n%n%s%s\n");
    let o = sb.run(ALICE, &[], &[&link.display().to_string(), "--frobnicate"]);
    o.assert_code(125);
}

#[test]
fn cve_2017_1000367_hostile_program_names_do_not_change_the_tty() {
    let sb = sandbox("reg-ttyname");
    let link = sb.dir.join("x ) 4 5 6 7 8 9 10 34817 ");
    std::os::unix::fs::symlink(sb.bin.join("lpexec"), &link).unwrap();
    let mut t = sb.pty(ALICE, &[], &[&link.display().to_string(), "true"]);
    assert!(t.wait(Duration::from_secs(10)).success());
    let l = sb.expect_syslog(&["DECISION=allow"]);
    let tty = l.split("TTY=").nth(1).unwrap().split(' ').next().unwrap().to_string();
    assert!(tty.starts_with("pts/") && tty[4..].chars().all(|c| c.is_ascii_digit()), "{l}");
}
