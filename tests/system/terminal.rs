//! With a terminal: the command's own pty, window size, job control, signals, terminal state,
//! and isolation of the caller's terminal.

use crate::harness::*;
use std::time::Duration;

fn sandbox(name: &str, rules: &[&str]) -> Sandbox {
    let sb = Sandbox::new(name);
    let rules: String = rules.iter().map(|c| allow(c)).collect();
    sb.policy(&dev_policy(&rules));
    sb
}

/// An interactive bash for ALICE on a terminal, with a recognisable prompt.
fn shell(sb: &Sandbox) -> Pty {
    let lp = sb.lpexec();
    let mut t =
        sb.pty(ALICE, &[("PS1", "PROMPT$ "), ("LP", &lp)], &["/bin/bash", "--norc", "--noprofile", "-i"]);
    t.expect("PROMPT$ ");
    t
}

#[test]
fn the_command_gets_its_own_terminal() {
    let sb = sandbox("owntty", &["sh", "tty"]);
    let mut t = shell(&sb);
    t.send("tty; $LP tty; $LP sh -c 'test -t 0 && test -t 1 && echo IS\"\"ATTY'\n");
    t.expect("ISATTY");
    let text = t.text();
    let ttys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.find("/dev/pts/").map(|i| l[i..].trim()))
        .filter(|l| !l.contains(' '))
        .collect();
    assert_eq!(ttys.len(), 2, "{text}");
    assert_ne!(ttys[0], ttys[1], "the command must run on a new pty");
}

#[test]
fn window_size_follows_the_caller() {
    let sb = sandbox("winsize", &["sh"]);
    let mut t = sb.pty(ALICE, &[], &[&sb.lpexec(), "sh", "-c", "stty size; read x; stty size"]);
    t.expect("30 100");
    t.resize(41, 132);
    std::thread::sleep(Duration::from_millis(200));
    t.send("\n");
    t.expect("41 132");
    assert!(t.wait(Duration::from_secs(10)).success());
}

#[test]
fn ctrl_c_reaches_the_command_and_the_shell_sees_130() {
    let sb = sandbox("ctrlc", &["sh"]);
    let mut t = shell(&sb);
    // (bash abandons the rest of a list whose job died of SIGINT, so ask for $? afterwards.)
    t.send("$LP sh -c 'echo RE\"\"ADY; exec sleep 60'\n");
    t.expect("READY");
    std::thread::sleep(Duration::from_millis(100));
    t.send("\x03");
    t.expect_n("PROMPT$ ", 2, Duration::from_secs(10));
    t.send("echo rc=$?\n");
    t.expect("rc=130");
}

#[test]
fn job_control_ctrl_z_bg_and_fg() {
    let sb = sandbox("jobs", &["sh"]);
    let mut t = shell(&sb);
    // The command says when it is reading (a sleep could lose the race on a busy machine).
    t.send("$LP sh -c 'echo RE\"\"ADY; read line; echo got:$line'\n");
    t.expect("READY");
    std::thread::sleep(Duration::from_millis(100));
    t.send("\x1a");
    t.expect("Stopped");
    t.expect_n("PROMPT$ ", 2, Duration::from_secs(10));
    // The shell has the terminal back, in its own mode.
    t.send("jobs; echo still-\"\"here\n");
    t.expect("still-here");
    assert!(t.text().contains("Stopped"), "{}", t.text());
    t.send("fg\n");
    // bash names the job it continues; then the command owns the terminal again.
    t.expect_n("read line; echo got", 3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(100));
    t.send("hello\n");
    t.expect("got:hello");
    t.expect_n("PROMPT$ ", 4, Duration::from_secs(10));
}

#[test]
fn terminal_mode_is_restored_after_the_command() {
    let sb = sandbox("termios", &["sh", "sleep"]);
    let mut t = shell(&sb);
    t.send("a=$(stty -g); $LP sh -c 'stty raw -echo; exit 3'; b=$(stty -g); [ \"$a\" = \"$b\" ] && echo SA\"\"ME1\n");
    t.expect("SAME1");
    t.send("a=$(stty -g); $LP sh -c 'echo RE\"\"ADY; exec sleep 60'\n");
    t.expect("READY");
    std::thread::sleep(Duration::from_millis(100));
    t.send("\x03");
    t.expect_n("PROMPT$ ", 3, Duration::from_secs(10));
    t.send("b=$(stty -g); [ \"$a\" = \"$b\" ] && echo SA\"\"ME2\n");
    t.expect("SAME2");
}

#[test]
fn every_byte_of_output_is_drained_after_exit() {
    let sb = sandbox("drain", &["seq"]);
    let mut t = sb.pty(ALICE, &[], &[&sb.lpexec(), "seq", "1", "100000"]);
    assert!(t.wait(Duration::from_secs(60)).success());
    let text = t.text();
    let nums: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(nums.len(), 100000, "lines lost; last: {:?}", nums.last());
    assert_eq!(nums.last(), Some(&"100000"));
}

#[test]
fn redirected_stdout_stays_byte_exact_under_a_terminal() {
    let sb = sandbox("bytes", &["printf"]);
    let mut t = shell(&sb);
    let f = format!("/tmp/lpxt-bytes-{}", std::process::id());
    t.send(&format!("$LP printf 'a\\nb\\r\\n' > {f}; od -An -c {f}; rm -f {f}\n"));
    t.expect("a  \\n   b  \\r  \\n");
}

#[test]
fn tiocsti_from_the_command_cannot_reach_the_callers_shell() {
    let sb = sandbox("tiocsti", &["perl"]);
    let marker = format!("/tmp/lpxt-tiocsti-{}", std::process::id());
    let _ = std::fs::remove_file(&marker);
    let inject = format!("perl -e 'ioctl(STDIN, 0x5412, $_) for split //, \"touch {marker}\\n\"'");
    let mut t = shell(&sb);
    // Control: without lpexec, the injection works on this kernel (so the test can fail).
    t.send(&format!("{inject}; echo CONTROL-\"\"DONE\n"));
    t.expect("CONTROL-DONE");
    std::thread::sleep(Duration::from_millis(500));
    t.send("echo SY\"\"NC1\n");
    t.expect("SYNC1");
    assert!(
        std::path::Path::new(&marker).exists(),
        "TIOCSTI injection does not work on this kernel, so isolation cannot be shown:\n{}",
        t.text()
    );
    std::fs::remove_file(&marker).unwrap();
    // Through lpexec, the characters land in the command's own pty and die with it.
    t.send(&format!("$LP {inject}; echo LPEXEC-\"\"DONE\n"));
    t.expect("LPEXEC-DONE");
    std::thread::sleep(Duration::from_millis(500));
    t.send("echo SY\"\"NC2\n");
    t.expect("SYNC2");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the command injected input into the caller's shell:\n{}",
        t.text()
    );
}

#[test]
fn background_job_does_not_steal_the_terminal() {
    let sb = sandbox("bg", &["sh"]);
    let mut t = shell(&sb);
    t.send("$LP sh -c 'sleep 1; echo BG-\"\"DONE' &\n");
    t.send("echo FG-\"\"OK\n");
    t.expect("FG-OK");
    t.expect("BG-DONE");
    t.send("wait; echo rc=$?\n");
    t.expect("rc=0");
}
