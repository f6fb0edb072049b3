//! Decision semantics, driven through a table-backed world.

use super::*;
use crate::common::identity::{Caller, GroupRef};
use std::collections::BTreeMap;

/// A world of a few binaries and accounts.
struct Fake {
    files: BTreeMap<&'static str, &'static str>, // path -> canonical path
    secure_path: Vec<&'static str>,
    digests: BTreeMap<&'static str, [u8; 32]>,
}

impl Fake {
    fn new() -> Fake {
        let mut files = BTreeMap::new();
        for p in [
            "/usr/bin/npm-real",
            "/usr/bin/ls",
            "/usr/bin/id",
            "/usr/bin/systemctl",
            "/usr/local/bin/ls",
            "/home/alice/bin/ls",
            "/usr/bin/sh",
        ] {
            files.insert(p, p);
        }
        files.insert("/usr/bin/npm", "/usr/bin/npm-real"); // a symlink
        files.insert("/bin/ls", "/usr/bin/ls"); // usrmerge symlink
        files.insert("/tmp/ls", "/tmp/ls");
        Fake {
            files,
            secure_path: vec!["/usr/bin", "/bin"],
            digests: BTreeMap::from([("/usr/bin/ls", [7u8; 32])]),
        }
    }
}

impl World for Fake {
    fn resolve_name(&self, name: &str) -> Option<PathBuf> {
        self.secure_path
            .iter()
            .map(|d| format!("{d}/{name}"))
            .find(|p| self.files.contains_key(p.as_str()))
            .map(PathBuf::from)
    }
    fn canonicalize(&self, path: &Path) -> Option<PathBuf> {
        let lexical: PathBuf = path.components().filter(|c| *c != std::path::Component::CurDir).collect();
        self.files.get(lexical.to_str()?).map(PathBuf::from)
    }
    fn sha256(&self, path: &Path) -> Option<[u8; 32]> {
        self.digests.get(path.to_str()?).copied()
    }
    fn lookup_user(&self, spec: &str) -> Option<Target> {
        match spec {
            "root" | "#0" => Some(Target { uid: 0, name: "root".into() }),
            "web" | "#33" => Some(Target { uid: 33, name: "web".into() }),
            "postgres" => Some(Target { uid: 110, name: "postgres".into() }),
            _ => None,
        }
    }
}

fn policy(text: &str) -> Policy {
    Policy::parse(&[(PathBuf::from("/etc/lpexec/policy.toml"), text.to_string())], &["corp", "github"])
        .unwrap()
}

fn alice() -> Identity {
    Identity::unix_only(Caller {
        uid: 1000,
        name: "alice".into(),
        groups: vec![
            GroupRef { gid: 1000, name: Some("alice".into()) },
            GroupRef { gid: 2000, name: Some("deployers".into()) },
        ],
    })
}

fn mallory() -> Identity {
    Identity::unix_only(Caller {
        uid: 1666,
        name: "mallory".into(),
        groups: vec![GroupRef { gid: 1666, name: None }],
    })
}

fn with_oidc(
    mut id: Identity,
    issuer: &str,
    email: &str,
    groups: &[&str],
    claims: &[(&str, &str)],
) -> Identity {
    id.oidc.push(OidcIdentity {
        issuer: issuer.into(),
        iss: format!("https://{issuer}.example.com"),
        sub: format!("sub-{email}"),
        email: Some(email.into()),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        claims: claims
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect(),
    });
    id
}

struct Ask<'a> {
    cmd: &'a str,
    args: &'a [&'a str],
    cwd: &'a str,
    user: Option<&'a str>,
    role: Option<&'a str>,
}

fn ask<'a>(cmd: &'a str, args: &'a [&'a str]) -> Ask<'a> {
    Ask { cmd, args, cwd: "/home/alice", user: None, role: None }
}

fn run<'p>(p: &'p Policy, id: &Identity, a: &Ask<'_>) -> Decision<'p> {
    let w = Fake::new();
    let command = resolve_command(&w, a.cmd, Path::new(a.cwd)).expect("command resolves");
    let args: Vec<String> = a.args.iter().map(|s| s.to_string()).collect();
    let target = a.user.map(|u| w.lookup_user(u).expect("known user"));
    let req = Request {
        command: &command,
        args: &args,
        cwd: Path::new(a.cwd),
        target: target.as_ref(),
        role: a.role,
    };
    decide(p, id, &req, &w)
}

fn verdict(p: &Policy, id: &Identity, a: &Ask<'_>) -> Verdict {
    run(p, id, a).verdict
}

const BASE: &str = r#"
[[role]]
name = "dev"
members = [{ unix_group = "deployers" }]
  [[role.rule]]
  action = "allow"
  command = "ls"
  [[role.rule]]
  action = "allow"
  command = "/usr/bin/npm"
  args = ["ci"]
  [[role.rule]]
  action = "allow"
  command = "npm"
  args_regex = '^(test|run build)( .*)?$'
  [[role.rule]]
  action = "approve"
  command = "npm"
  args_regex = '^publish( .*)?$'
  approvers = [{ issuer = "corp", groups = ["release-managers"] }]
  [[role.rule]]
  action = "deny"
  command = "npm"
  args_regex = '^(adduser|login|token)( .*)?$'
  message = "npm credentials are managed by the release pipeline"
"#;

#[test]
fn allow_by_bare_name_resolved_through_secure_path() {
    let p = policy(BASE);
    let d = run(&p, &alice(), &ask("ls", &["-l"]));
    assert_eq!(d.verdict, Verdict::Allow);
    assert!(d.is_allowed());
    assert_eq!(d.rule.unwrap().rule.origin.line, 5);
    assert_eq!(d.target.unwrap().name, "root");
}

#[test]
fn canonical_paths_are_compared_both_ways() {
    let p = policy(BASE);
    // /bin/ls is a symlink to /usr/bin/ls, which is what "ls" resolves to.
    assert_eq!(verdict(&p, &alice(), &ask("/bin/ls", &[])), Verdict::Allow);
    // /usr/bin/npm (a symlink) in the rule equals "npm" in the request.
    assert_eq!(verdict(&p, &alice(), &ask("npm", &["ci"])), Verdict::Allow);
}

#[test]
fn cve_2010_0426_relative_and_path_hijack_names_do_not_match() {
    let p = policy(BASE);
    // ./ls in a directory the caller controls is not /usr/bin/ls.
    let d = run(&p, &alice(), &Ask { cwd: "/tmp", ..ask("./ls", &[]) });
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, Some(DenyReason::NoMatchingRule));
    // A bare name is resolved through secure_path only: /usr/local/bin and ~/bin are not on it.
    let w = Fake::new();
    assert_eq!(resolve_command(&w, "ls", Path::new("/home/alice/bin")), Some(PathBuf::from("/usr/bin/ls")));
}

#[test]
fn exact_args() {
    let p = policy(BASE);
    assert_eq!(verdict(&p, &alice(), &ask("npm", &["ci"])), Verdict::Allow);
    assert_eq!(verdict(&p, &alice(), &ask("npm", &["ci", "--force"])), Verdict::Deny);
    assert_eq!(verdict(&p, &alice(), &ask("npm", &[])), Verdict::Deny);
}

#[test]
fn args_regex_sees_the_quoted_join() {
    let p = policy(BASE);
    assert_eq!(verdict(&p, &alice(), &ask("npm", &["test"])), Verdict::Allow);
    assert_eq!(verdict(&p, &alice(), &ask("npm", &["run", "build", "--prod"])), Verdict::Allow);
    // One argument "run build" is quoted: 'run build' does not match.
    assert_eq!(verdict(&p, &alice(), &ask("npm", &["run build"])), Verdict::Deny);
    assert_eq!(verdict(&p, &alice(), &ask("npm", &["testx"])), Verdict::Deny);
}

#[test]
fn deny_beats_approve_beats_allow() {
    let p = policy(&format!("{BASE}\n  [[role.rule]]\n  action = \"allow\"\n  command = \"npm\"\n"));
    // allow-all for npm, but deny rules still win
    let d = run(&p, &alice(), &ask("npm", &["login"]));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, Some(DenyReason::DenyRule));
    assert_eq!(
        d.rule.unwrap().rule.message.as_deref(),
        Some("npm credentials are managed by the release pipeline")
    );
    // and approve wins over allow
    let d = run(&p, &alice(), &ask("npm", &["publish"]));
    assert_eq!(d.verdict, Verdict::Approve);
    assert_eq!(d.approvals.len(), 1);
    assert!(describe_approvers(&d.approvals).contains("corp groups release-managers (1 approval)"));
    // and plain allow applies otherwise
    assert_eq!(verdict(&p, &alice(), &ask("npm", &["view"])), Verdict::Allow);
}

#[test]
fn deny_in_another_role_wins() {
    let p = policy(&format!(
        "{BASE}\n[[role]]\nname = \"guard\"\nmembers = [{{ unix_user = \"alice\" }}]\n  [[role.rule]]\n  action = \"deny\"\n  command = \"ls\"\n  args = [\"/root\"]\n"
    ));
    assert_eq!(verdict(&p, &alice(), &ask("ls", &["/root"])), Verdict::Deny);
    assert_eq!(verdict(&p, &alice(), &ask("ls", &["/tmp"])), Verdict::Allow);
}

#[test]
fn every_matching_approve_rule_is_returned() {
    let p = policy(&format!(
        "{BASE}\n[[role]]\nname = \"rel\"\nmembers = [{{ unix_user = \"alice\" }}]\n  [[role.rule]]\n  action = \"approve\"\n  command = \"npm\"\n  approvers = [{{ issuer = \"corp\", email = \"cto@example.com\" }}]\n  min_approvals = 2\n"
    ));
    let d = run(&p, &alice(), &ask("npm", &["publish"]));
    assert_eq!(d.verdict, Verdict::Approve);
    assert_eq!(d.approvals.len(), 2);
}

#[test]
fn default_deny() {
    let p = policy(BASE);
    let d = run(&p, &alice(), &ask("id", &[]));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, Some(DenyReason::NoMatchingRule));
    let d = run(&p, &mallory(), &ask("ls", &[]));
    assert_eq!(d.reason, Some(DenyReason::NoRole));
}

#[test]
fn run_as_limits_targets_and_the_first_is_the_default() {
    let p = policy(
        "[[role]]\nname = \"db\"\nmembers = [{ unix_user = \"alice\" }]\nrun_as = [\"postgres\", \"#33\"]\n  [[role.rule]]\n  action = \"allow\"\n  command = \"*\"\n",
    );
    let d = run(&p, &alice(), &ask("id", &[]));
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(d.target.unwrap().name, "postgres");
    assert_eq!(verdict(&p, &alice(), &Ask { user: Some("web"), ..ask("id", &[]) }), Verdict::Allow);
    let d = run(&p, &alice(), &Ask { user: Some("root"), ..ask("id", &[]) });
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, Some(DenyReason::TargetNotAllowed("root".into())));
}

#[test]
fn default_target_comes_from_the_role_written_for_the_command() {
    let p = policy(
        "[[role]]\nname = \"db\"\nmembers = [{ unix_user = \"alice\" }]\nrun_as = [\"postgres\"]\n  [[role.rule]]\n  action = \"allow\"\n  command = \"id\"\n\
         [[role]]\nname = \"ops\"\nmembers = [{ unix_user = \"alice\" }]\n  [[role.rule]]\n  action = \"allow\"\n  command = \"ls\"\n",
    );
    assert_eq!(run(&p, &alice(), &ask("id", &[])).target.unwrap().name, "postgres");
    assert_eq!(run(&p, &alice(), &ask("ls", &[])).target.unwrap().name, "root");
}

#[test]
fn role_narrowing() {
    let p = policy(&format!(
        "{BASE}\n[[role]]\nname = \"audit\"\nmembers = [{{ unix_user = \"alice\" }}]\n  [[role.rule]]\n  action = \"allow\"\n  command = \"id\"\n"
    ));
    assert_eq!(verdict(&p, &alice(), &Ask { role: Some("audit"), ..ask("id", &[]) }), Verdict::Allow);
    let d = run(&p, &alice(), &Ask { role: Some("dev"), ..ask("id", &[]) });
    assert_eq!(d.reason, Some(DenyReason::NoMatchingRule));
    let d = run(&p, &mallory(), &Ask { role: Some("audit"), ..ask("id", &[]) });
    assert_eq!(d.reason, Some(DenyReason::NotInRole("audit".into())));
    let d = run(&p, &alice(), &Ask { role: Some("nope"), ..ask("id", &[]) });
    assert_eq!(d.reason, Some(DenyReason::NotInRole("nope".into())));
}

#[test]
fn cwd_restricts() {
    let p = policy(
        "[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"alice\" }]\n  [[role.rule]]\n  action = \"allow\"\n  command = \"ls\"\n  cwd = \"/srv/web\"\n",
    );
    assert_eq!(verdict(&p, &alice(), &Ask { cwd: "/srv/web", ..ask("ls", &[]) }), Verdict::Allow);
    assert_eq!(verdict(&p, &alice(), &Ask { cwd: "/srv", ..ask("ls", &[]) }), Verdict::Deny);
}

#[test]
fn sha256_pins_the_binary() {
    let good = "07".repeat(32);
    let bad = "08".repeat(32);
    for (pin, want) in [(good, Verdict::Allow), (bad, Verdict::Deny)] {
        let p = policy(&format!(
            "[[role]]\nname = \"r\"\nmembers = [{{ unix_user = \"alice\" }}]\n  [[role.rule]]\n  action = \"allow\"\n  command = \"ls\"\n  sha256 = \"{pin}\"\n"
        ));
        assert_eq!(verdict(&p, &alice(), &ask("ls", &[])), want);
    }
}

#[test]
fn oidc_members_match_issuer_groups_email_and_claims() {
    let p = policy(
        "[[role]]\nname = \"sre\"\nmembers = [{ issuer = \"corp\", groups = [\"sre\", \"oncall\"] }, { issuer = \"corp\", email = \"bob@example.com\" }, \
         { issuer = \"github\", claims = { repository = \"acme/web\", ref = \"refs/heads/main\" }, unix_user = \"alice\" }]\n  \
         [[role.rule]]\n  action = \"allow\"\n  command = \"id\"\n",
    );
    let cmd = ask("id", &[]);
    // Unix identity alone never matches an OIDC member.
    assert_eq!(verdict(&p, &alice(), &cmd), Verdict::Deny);
    assert_eq!(
        verdict(&p, &with_oidc(alice(), "corp", "a@example.com", &["sre", "oncall"], &[]), &cmd),
        Verdict::Allow
    );
    // groups inside one entry are ANDed
    assert_eq!(verdict(&p, &with_oidc(alice(), "corp", "a@example.com", &["sre"], &[]), &cmd), Verdict::Deny);
    assert_eq!(verdict(&p, &with_oidc(mallory(), "corp", "bob@example.com", &[], &[]), &cmd), Verdict::Allow);
    // same email from another issuer does not count
    assert_eq!(
        verdict(&p, &with_oidc(mallory(), "github", "bob@example.com", &[], &[]), &cmd),
        Verdict::Deny
    );
    let ci = [("repository", "acme/web"), ("ref", "refs/heads/main")];
    assert_eq!(verdict(&p, &with_oidc(alice(), "github", "x", &[], &ci), &cmd), Verdict::Allow);
    // unix_user in the same entry is ANDed with the claims
    assert_eq!(verdict(&p, &with_oidc(mallory(), "github", "x", &[], &ci), &cmd), Verdict::Deny);
    let other = [("repository", "acme/other"), ("ref", "refs/heads/main")];
    assert_eq!(verdict(&p, &with_oidc(alice(), "github", "x", &[], &other), &cmd), Verdict::Deny);
}

#[test]
fn non_string_claims_never_match() {
    let p = policy(
        "[[role]]\nname = \"ci\"\nmembers = [{ issuer = \"github\", claims = { ref_protected = \"true\" } }]\n  [[role.rule]]\n  action = \"allow\"\n  command = \"id\"\n",
    );
    let mut id = with_oidc(alice(), "github", "x", &[], &[]);
    id.oidc[0].claims.insert("ref_protected".into(), serde_json::Value::Bool(true));
    assert_eq!(verdict(&p, &id, &ask("id", &[])), Verdict::Deny);
    id.oidc[0].claims.insert("ref_protected".into(), serde_json::Value::String("true".into()));
    assert_eq!(verdict(&p, &id, &ask("id", &[])), Verdict::Allow);
}

#[test]
fn unix_group_by_name_and_number() {
    let p = policy(
        "[[role]]\nname = \"r\"\nmembers = [{ unix_group = \"#2000\" }]\n  [[role.rule]]\n  action = \"allow\"\n  command = \"id\"\n",
    );
    assert_eq!(verdict(&p, &alice(), &ask("id", &[])), Verdict::Allow);
    assert_eq!(verdict(&p, &mallory(), &ask("id", &[])), Verdict::Deny);
}

#[test]
fn a_rule_that_cannot_be_evaluated_denies() {
    // Parses, but compiles beyond the regex size limit.
    let p = policy(
        "[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"alice\" }]\n  [[role.rule]]\n  action = \"allow\"\n  command = \"ls\"\n  args_regex = '(\\w{1000}){1000}'\n",
    );
    let d = run(&p, &alice(), &ask("ls", &["x"]));
    assert_eq!(d.verdict, Verdict::Deny);
    assert!(matches!(d.reason, Some(DenyReason::RuleError(_))), "{:?}", d.reason);
}

#[test]
fn cve_2023_42465_verdicts_are_far_apart() {
    let v = [Verdict::Allow as u32, Verdict::Approve as u32, Verdict::Deny as u32];
    for a in 0..v.len() {
        for b in 0..a {
            assert!((v[a] ^ v[b]).count_ones() >= 16, "{:x} vs {:x}", v[a], v[b]);
        }
    }
}

#[test]
fn unknown_default_target_denies() {
    let p = policy(
        "[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"alice\" }]\nrun_as = [\"ghost\"]\n  [[role.rule]]\n  action = \"allow\"\n  command = \"id\"\n",
    );
    assert_eq!(run(&p, &alice(), &ask("id", &[])).reason, Some(DenyReason::UnknownTarget("ghost".into())));
}
