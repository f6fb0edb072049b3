//! The terminal: TIOCLINUX (TIOCSTI is in the system tests), and CVE-2023-28487 (escape
//! sequences in replayed output).

use crate::harness::*;
use std::time::Duration;

#[test]
fn tioclinux_from_the_command_cannot_reach_the_callers_console() {
    let sb = Sandbox::new("reg-tioclinux");
    sb.policy(&dev_policy(&allow("perl")));
    let mut t = sb.pty(
        ALICE,
        &[],
        &[&sb.lpexec(), "perl", "-e", "my $a = pack('C', 3); my $r = ioctl(STDIN, 0x541C, $a); print defined $r ? \"PASTED\\n\" : \"refused:$!\\n\""],
    );
    let st = t.wait(Duration::from_secs(10));
    assert!(st.success(), "{st:?}: {}", t.text());
    assert!(t.text().contains("refused:"), "{}", t.text());
}

#[test]
fn cve_2023_28487_replay_drops_sequences_that_make_the_terminal_act() {
    let sb = Sandbox::new("reg-replay-esc");
    sb.policy(&dev_policy(&allow("printf")));
    sb.lp(
        ALICE,
        &[
            "printf",
            "visible\\033]52;c;cm0gLXJmIH4K\\007 text\\033[6n \\033]0;fake title\\007\\033[1mbold\\033[0m\\n",
        ],
    )
    .assert_code(0);
    let id = sb.recordings()[0].file_stem().unwrap().to_str().unwrap().to_string();
    // On a terminal: clipboard, title and status-report requests are gone; colours stay.
    let mut t = sb.pty("root", &[], &[&sb.lpexec(), "replay", "--print", &id]);
    assert!(t.wait(Duration::from_secs(10)).success());
    let shown = t.text();
    assert!(shown.contains("visible text") && shown.contains("\x1b[1mbold"), "{shown:?}");
    assert!(
        !shown.contains("\x1b]52") && !shown.contains("\x1b[6n") && !shown.contains("fake title"),
        "{shown:?}"
    );
    // To a pipe the output is exactly what was recorded.
    let o = sb.lp("root", &["replay", "--print", &id]);
    assert!(o.stdout.contains("\x1b]52;c;cm0gLXJmIH4K\x07"));
    // And `sessions` escapes control characters in command lines.
    let o = sb.lp("root", &["sessions"]);
    assert!(!o.stdout.contains('\x1b'), "{:?}", o.stdout);
}
