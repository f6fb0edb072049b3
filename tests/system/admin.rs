//! The administrator's verbs: check, check --test, explain, list.

use crate::harness::*;

const POLICY: &str = r#"
[[role]]
name = "web-deploy"
description = "Build and ship the web app"
members = [{ unix_group = "lpxt-dev" }]
run_as = ["root", "lpxt-web"]

  [[role.rule]]
  action = "allow"
  command = "ls"

  [[role.rule]]
  action = "allow"
  command = "sh"
  args_regex = '^-c (true|false)$'

  [[role.rule]]
  action = "deny"
  command = "sh"
  args = ["-c", "rm -rf /"]
  message = "no"
"#;

#[test]
fn check_accepts_a_good_installation() {
    let sb = Sandbox::new("check-ok");
    sb.policy(POLICY);
    let o = sb.lp(MALLORY, &["check"]);
    o.assert_code(0);
    assert!(o.stdout.contains("/etc/lpexec/lpexec.toml: ok"), "{}", o.stdout);
    assert!(o.stdout.contains("policy: ok (1 role(s), 3 rule(s) in 1 file(s))"), "{}", o.stdout);
}

#[test]
fn check_reports_every_problem_with_file_line_and_column() {
    let sb = Sandbox::new("check-bad");
    sb.policy(POLICY);
    sb.etc_file("policy.d/20-bad.toml", "[[role]]\nname = \"web-deploy\"\nmembers = [{ unix_user = \"x\" }]\n\n[[role]]\nname = \"r2\"\nmembers = [{ issuer = \"corp\" }]\nenv_keep = [\"BASH_ENV\"]\n[[role.rule]]\ncommand = \"ls\"\n");
    let o = sb.lp(MALLORY, &["check"]);
    o.assert_code(1);
    let e = &o.stderr;
    assert!(e.contains("lpexec: /etc/lpexec/policy.d/20-bad.toml:1:1: role \"web-deploy\" is already defined at /etc/lpexec/policy.toml:2"), "{e}");
    assert!(e.contains("20-bad.toml:7:12: unknown issuer \"corp\""), "{e}");
    assert!(e.contains("20-bad.toml:8:13: env_keep entry \"BASH_ENV\" is dangerous"), "{e}");
    assert!(e.contains("20-bad.toml:9:1: this rule has no action"), "{e}");
    assert!(e.contains("the policy has 4 problems"), "{e}");
}

#[test]
fn check_runs_policy_tests() {
    let sb = Sandbox::new("check-test");
    sb.policy(POLICY);
    let tests = sb.etc_file(
        "tests.toml",
        r#"
[[case]]
name = "developers may list"
user = "lpxt-alice"
command = ["ls", "/srv"]
expect = "allow"

[[case]]
name = "strangers may not"
user = "lpxt-mallory"
command = ["ls"]
expect = "deny"

[[case]]
name = "a made-up user given groups"
user = "ghost"
groups = ["lpxt-dev"]
command = ["sh", "-c", "true"]
run_as = "lpxt-web"
expect = "allow"

[[case]]
name = "this expectation is wrong"
user = "lpxt-alice"
command = ["sh", "-c", "rm -rf /"]
expect = "allow"
"#,
    );
    let o = sb.lp(
        MALLORY,
        &[
            "check",
            "--test",
            &tests.display().to_string().replace(&sb.etc.display().to_string(), "/etc/lpexec"),
        ],
    );
    o.assert_code(1);
    let out = &o.stdout;
    assert!(out.contains("ok      developers may list"), "{out}");
    assert!(out.contains("ok      strangers may not"), "{out}");
    assert!(out.contains("ok      a made-up user given groups"), "{out}");
    assert!(out.contains("FAILED  this expectation is wrong (/etc/lpexec/tests.toml:22): expected allow, got deny (rule /etc/lpexec/policy.toml:17 in role web-deploy)"), "{out}");
    assert!(out.contains("4 case(s): 3 passed, 1 failed"), "{out}");
}

#[test]
fn check_of_draft_files_given_on_the_command_line() {
    let sb = Sandbox::new("check-draft");
    let draft = sb.dir.join("draft.toml");
    std::fs::write(&draft, "[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"a\" }]\n[[role.rule]]\naction = \"allow\"\ncommand = \"ls\"\nargs_regex = '('\n").unwrap();
    let o = sb.lp(MALLORY, &["check", "--policy", &draft.display().to_string()]);
    o.assert_code(1);
    assert!(
        o.stderr.contains(&format!("lpexec: {}:7:14: args_regex is not a valid regex", draft.display())),
        "{}",
        o.stderr
    );
}

#[test]
fn explain_prints_the_decision_and_the_rule() {
    let sb = Sandbox::new("explain");
    sb.policy(POLICY);
    let o = sb.lp(ALICE, &["explain", "--", "sh", "-c", "rm -rf /"]);
    o.assert_code(1);
    assert!(
        o.stdout.contains(
            "decision:  deny\nrule:      /etc/lpexec/policy.toml:17 (role web-deploy): deny sh -c 'rm -rf /'"
        ),
        "{}",
        o.stdout
    );
    let sh = std::fs::canonicalize("/usr/bin/sh").unwrap();
    assert!(o.stdout.contains(&format!("command:   {} -c 'rm -rf /'", sh.display())), "{}", o.stdout);
    assert!(o.stdout.contains("message:   no"), "{}", o.stdout);
    let o = sb.lp(ALICE, &["explain", "-u", WEB, "ls", "-l"]);
    o.assert_code(0);
    assert!(
        o.stdout
            .contains("decision:  allow\nrule:      /etc/lpexec/policy.toml:8 (role web-deploy): allow ls"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("command:   /usr/bin/ls -l"), "{}", o.stdout);
    assert!(o.stdout.contains(&format!("run as:    {WEB}")), "{}", o.stdout);
    // nothing ran and nothing was logged as a session
    let lines = sb.syslog(std::time::Duration::from_millis(300));
    assert!(!lines.iter().any(|l| l.contains("EVENT=start")), "{lines:?}");
}

#[test]
fn list_shows_your_roles_and_rules() {
    let sb = Sandbox::new("list");
    sb.policy(POLICY);
    for args in [&["list"][..], &["-l"][..]] {
        let o = sb.lp(ALICE, args);
        o.assert_code(0);
        assert!(o.stdout.contains("role web-deploy - Build and ship the web app"), "{}", o.stdout);
        assert!(o.stdout.contains("  run as:   root, lpxt-web"), "{}", o.stdout);
        assert!(
            o.stdout.contains("  deny     sh -c 'rm -rf /'  (/etc/lpexec/policy.toml:17)"),
            "{}",
            o.stdout
        );
    }
    let o = sb.lp(MALLORY, &["list"]);
    o.assert_code(1);
    assert!(o.stderr.contains("is not a member of any role"), "{}", o.stderr);
}
