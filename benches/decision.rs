//! `cargo bench --bench decision`: how long the decision takes with a 10,000-rule policy.
//!
//! The policy has 200 roles of 50 rules over 40 real commands (exact argument lists,
//! `args_regex` patterns, bare names and absolute paths). Two callers: a member of 20 roles
//! (1,000 candidate rules) and a member of all 200 (every rule is a candidate). "cold" is the
//! helper's real case, one decision right after loading (nothing compiled yet); "warm" repeats
//! decisions on the same loaded policy. Parsing the 10,000-rule file is reported separately.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lpexec::common::identity::{Caller, GroupRef, Identity};
use lpexec::common::policy::Policy;
use lpexec::policy::{Request, SystemWorld, Target, Verdict, decide, resolve_command};

const ROLES: usize = 200;
const RULES_PER_ROLE: usize = 50;

fn commands() -> Vec<&'static str> {
    let all = [
        "ls", "cat", "id", "sh", "true", "false", "echo", "env", "date", "uname", "head", "tail", "wc",
        "sort", "uniq", "cut", "tr", "sed", "grep", "find", "xargs", "chmod", "chown", "cp", "mv", "rm",
        "mkdir", "rmdir", "touch", "ln", "stat", "du", "df", "ps", "kill", "sleep", "tee", "basename",
        "dirname", "readlink",
    ];
    let world = SystemWorld { secure_path: secure_path() };
    let found: Vec<&str> =
        all.into_iter().filter(|c| lpexec::policy::World::resolve_name(&world, c).is_some()).collect();
    assert!(found.len() >= 30, "too few commands found on this machine");
    found
}

fn secure_path() -> Vec<PathBuf> {
    lpexec::common::paths::DEFAULT_SECURE_PATH.split(':').map(PathBuf::from).collect()
}

fn policy_text(cmds: &[&str]) -> String {
    let mut s = String::new();
    for r in 0..ROLES {
        s.push_str(&format!("[[role]]\nname = \"role{r}\"\nmembers = [{{ unix_group = \"bench{r}\" }}]\n"));
        for k in 0..RULES_PER_ROLE {
            let n = r * RULES_PER_ROLE + k;
            let cmd = cmds[n % cmds.len()];
            let action = match n % 10 {
                0 => "deny",
                1 => "approve",
                _ => "allow",
            };
            s.push_str(&format!("[[role.rule]]\naction = \"{action}\"\n"));
            match n % 4 {
                0 => s.push_str(&format!("command = \"{cmd}\"\nargs = [\"exact{n}\", \"--flag\"]\n")),
                1 => s.push_str(&format!(
                    "command = \"{cmd}\"\nargs_regex = '^sub{n}( --[a-z]+)*( [a-z0-9/._-]+)?$'\n"
                )),
                2 => s.push_str(&format!(
                    "command = \"/usr/bin/{cmd}\"\nargs_regex = '^(start|stop|status) unit{n}$'\n"
                )),
                _ => {
                    s.push_str(&format!("command = \"{cmd}\"\nargs = [\"only{n}\"]\ncwd = \"/srv/app{n}\"\n"))
                }
            }
            if action == "approve" {
                s.push_str("approvers = [{ issuer = \"corp\", groups = [\"leads\"] }]\n");
            }
        }
    }
    s
}

fn identity(member_of: usize) -> Identity {
    Identity::unix_only(Caller {
        uid: 1000,
        name: "bench".into(),
        groups: (0..member_of)
            .map(|r| GroupRef { gid: 5000 + r as u32, name: Some(format!("bench{r}")) })
            .collect(),
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let cmds = commands();
    let text = policy_text(&cmds);
    let files = vec![(PathBuf::from("/etc/lpexec/policy.toml"), text.clone())];

    let mut parse_times = Vec::new();
    let mut policy = None;
    for _ in 0..5 {
        let t = Instant::now();
        policy = Some(Policy::parse(&files, &["corp"]).expect("bench policy parses"));
        parse_times.push(t.elapsed());
    }
    let policy = policy.unwrap();
    assert_eq!(policy.rule_count(), ROLES * RULES_PER_ROLE);
    println!(
        "policy: {} roles, {} rules, {} KiB of TOML",
        policy.roles.len(),
        policy.rule_count(),
        text.len() / 1024
    );
    println!("parse + check: median {:.1} ms", median(parse_times).as_secs_f64() * 1e3);

    let world = SystemWorld { secure_path: secure_path() };
    let root = Target { uid: 0, name: "root".into() };
    // A request that the last of the caller's roles allows (rule n = 19*50 + 49 = 999 for the
    // 20-role caller uses regex form n%4==3 ... so pick an explicitly matching one below).
    let cases: Vec<(&str, usize, Vec<String>, &str)> = {
        // Rule 997: n%4 == 1 → args_regex '^sub997...' on cmds[997 % len].
        let n = 997;
        let cmd = cmds[n % cmds.len()];
        vec![
            (
                "member of 20 roles, allowed by rule 997",
                20,
                vec![format!("sub{n}"), "--force".into(), "x/y".into()],
                cmd,
            ),
            (
                "member of 200 roles, allowed by rule 997",
                200,
                vec![format!("sub{n}"), "--force".into(), "x/y".into()],
                cmd,
            ),
            ("member of 200 roles, nothing matches", 200, vec!["nothing".into(), "matches".into()], cmd),
        ]
    };
    for (label, member_of, args, cmd) in cases {
        let id = identity(member_of);
        let path = resolve_command(&world, cmd, Path::new("/")).expect("command resolves");
        let req =
            Request { command: &path, args: &args, cwd: Path::new("/"), target: Some(&root), role: None };
        let mut cold = Vec::new();
        let mut verdict = None;
        for _ in 0..100 {
            let fresh = policy.clone(); // nothing compiled, as in a new helper process
            let t = Instant::now();
            let d = decide(&fresh, &id, &req, &world);
            cold.push(t.elapsed());
            verdict = Some(d.verdict);
        }
        let mut warm = Vec::new();
        for _ in 0..1000 {
            let t = Instant::now();
            let d = decide(&policy, &id, &req, &world);
            warm.push(t.elapsed());
            std::hint::black_box(d);
        }
        let verdict = verdict.unwrap();
        assert!(verdict == Verdict::Allow || label.contains("nothing"), "{label}: {verdict}");
        println!(
            "decide ({label}): {verdict}; cold median {:.1} µs, warm median {:.1} µs",
            median(cold).as_secs_f64() * 1e6,
            median(warm).as_secs_f64() * 1e6
        );
    }
}
