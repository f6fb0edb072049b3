//! The helper's side of approvals (SPEC §7), against the installed setuid helper: what it
//! hands out when a run needs approval, and its offline checks of approval tokens — signed
//! here with a key the sandbox trusts (or one it does not), for exactly the run or for
//! something else. The requester's identity is a real ID token from a real provider.
//!
//! Tokens reach the helper the way the front end sends them: in the request on descriptor 3
//! (here a file with the request JSON, so each test controls every byte).

use std::time::Duration;

use ed25519_dalek::SigningKey;
use lpexec::approval::token::{self, Claims};
use lpexec::approval::{Approval, Principal, Subject};
use serde_json::{Value, json};

use crate::harness::*;
use crate::idp::*;

pub const TRUSTED_SEED: [u8; 32] = [41u8; 32];

pub fn trusted_key_text(seed: &[u8; 32]) -> String {
    token::public_key_text(&SigningKey::from_bytes(seed).verifying_key())
}

/// Alice (corp group sre) may run `id` only with one approval from corp group `ops`
/// (bob is in it), and `uname` only with two; as a Unix member alone she may ask to run
/// `hostname` (but an approval request needs an OIDC identity).
pub fn approval_policy() -> String {
    format!(
        r#"[[role]]
name = "rel"
members = [{{ issuer = "corp", groups = ["sre"] }}]
run_as = ["root", "{WEB}"]

  [[role.rule]]
  action = "approve"
  command = "id"
  approvers = [{{ issuer = "corp", groups = ["ops"] }}]
  ttl = "10m"

  [[role.rule]]
  action = "approve"
  command = "uname"
  approvers = [{{ issuer = "corp", groups = ["ops"] }}]
  min_approvals = 2

[[role]]
name = "local"
members = [{{ unix_user = "{ALICE}" }}]
run_as = ["root"]

  [[role.rule]]
  action = "approve"
  command = "hostname"
  approvers = [{{ issuer = "corp", groups = ["ops"] }}]
"#
    )
}

pub fn approval_config(idp: &Idp, url: &str, keys: &[String]) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    format!(
        "{}[approval]\nurl = \"{url}\"\ntrusted_keys = [{}]\nwait_timeout = \"20s\"\n",
        issuer_toml("corp", &idp.issuer, ""),
        keys.join(", ")
    )
}

fn host() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

struct World {
    idp: Idp,
    sb: Sandbox,
    alice: String,
    seq: std::cell::Cell<u32>,
}

impl World {
    fn new(name: &str) -> World {
        let idp = Idp::start(&[]);
        let sb = Sandbox::new(name);
        sb.config(&approval_config(&idp, "http://127.0.0.1:9", &[trusted_key_text(&TRUSTED_SEED)]));
        sb.policy(&approval_policy());
        let alice = idp.mint(json!({ "alg": "EdDSA" }));
        World { idp, sb, alice, seq: 0.into() }
    }

    fn person(&self, sub: &str, groups: &[&str]) -> Approval {
        Approval {
            iss: self.idp.issuer.clone(),
            sub: sub.into(),
            email: Some(format!("{sub}@example.com")),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            time: now(),
            comment: None,
        }
    }

    /// The subject of alice running `argv` as root in `/`.
    fn subject(&self, argv: &[&str]) -> Subject {
        Subject {
            host: host(),
            uid: uid_of(ALICE),
            user: ALICE.into(),
            requester: Some(Principal { iss: self.idp.issuer.clone(), sub: "alice".into() }),
            role: "rel".into(),
            run_as: "root".into(),
            command: format!("/usr/bin/{}", argv[0]),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: "/".into(),
        }
    }

    fn token(&self, seed: &[u8; 32], s: &Subject, approvals: Vec<Approval>, exp_in: i64) -> String {
        let n = self.seq.get();
        self.seq.set(n + 1);
        let id = format!("req_test{n:08}{}", std::process::id());
        let c = Claims::new("https://approvals.test", &id, now(), now() + exp_in, s, approvals);
        token::sign(&SigningKey::from_bytes(seed), &c)
    }

    /// Runs the helper as alice with `argv`, her ID token and `approval_token`.
    fn run(&self, argv: &[&str], user: Option<&str>, approval_token: Option<&str>) -> Out {
        let mut req = json!({
            "version": 1, "mode": "run", "argv": argv,
            "id_tokens": [{ "issuer": "corp", "token": self.alice, "from": "env" }],
        });
        if let Some(t) = approval_token {
            req["approval_token"] = Value::String(t.into());
        }
        if let Some(u) = user {
            req["user"] = Value::String(u.into());
        }
        let n = self.seq.get();
        self.seq.set(n + 1);
        let file = self.sb.dir.join(format!("request-{n}.json"));
        std::fs::write(&file, req.to_string()).unwrap();
        let helper = self.sb.bin.join("lpexec-helper");
        self.sb.sh(ALICE, &format!("exec '{}' 3< '{}'", helper.display(), file.display()))
    }
}

#[test]
fn a_valid_token_runs_the_command_once_and_names_the_approval() {
    let w = World::new("appr-valid");
    // Without a token: refused, and the helper says what to submit (here nobody reads the
    // answer, so it says it on stderr) and logs the decision.
    let o = w.run(&["id", "-u"], None, None);
    o.assert_code(125);
    assert!(o.stderr.contains("needs approval from corp groups ops (1 approval)"), "{}", o.stderr);
    w.sb.expect_syslog(&["DECISION=approve", "EVENT=approval-required", "COMMAND=/usr/bin/id -u"]);

    let t = w.token(&TRUSTED_SEED, &w.subject(&["id", "-u"]), vec![w.person("bob", &["ops"])], 600);
    let o = w.run(&["id", "-u"], None, Some(&t));
    o.assert_code(0);
    assert_eq!(o.stdout.trim(), "0");
    let id = token::peek(&t).unwrap().jti;
    let l = w.sb.expect_syslog(&["EVENT=start", &format!("APPROVAL={id}")]);
    assert!(l.contains("APPROVERS=corp:bob@example.com"), "{l}");
    // The recording header names the approval and the approver.
    let rec = w.sb.recordings();
    let header: Value = serde_json::from_str(read(&rec[0]).lines().next().unwrap()).unwrap();
    assert_eq!(header["lpexec"]["approval"], json!(id));
    assert_eq!(header["lpexec"]["approvers"], json!(["corp:bob@example.com"]));

    // Single use: the same token again is refused, and nothing runs.
    let o = w.run(&["id", "-u"], None, Some(&t));
    o.assert_code(125);
    assert!(o.stderr.contains("has already been used"), "{}", o.stderr);
    assert!(o.stdout.is_empty());
    w.sb.expect_syslog(&["EVENT=approval-refused", "WHY=approval", "already been used"]);
    // The used-token record is root's, keyed by a digest of the id, not the id itself.
    let used = w.sb.state.join("approvals-used");
    assert_eq!(mode_owner(&used), (0o700, 0, 0));
    let names: Vec<String> =
        std::fs::read_dir(&used).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].len() == 64 && names[0].bytes().all(|b| b.is_ascii_hexdigit()), "{names:?}");
}

#[test]
fn a_token_for_anything_else_is_refused() {
    let w = World::new("appr-bound");
    let bob = || vec![w.person("bob", &["ops"])];
    let base = w.subject(&["id", "-u"]);
    let mut cases: Vec<(&str, Subject)> = Vec::new();
    let mut s = base.clone();
    s.argv = vec!["id".into(), "-g".into()];
    cases.push(("argv", s));
    let mut s = base.clone();
    s.cwd = "/tmp".into();
    cases.push(("cwd", s));
    let mut s = base.clone();
    s.run_as = WEB.into();
    cases.push(("run_as", s));
    let mut s = base.clone();
    s.host = "another-host".into();
    cases.push(("host", s));
    let mut s = base.clone();
    s.role = "other".into();
    cases.push(("role", s));
    let mut s = base.clone();
    s.uid += 1;
    cases.push(("uid", s));
    let mut s = base.clone();
    s.command = "/usr/local/bin/id".into();
    cases.push(("command", s));
    for (field, s) in cases {
        let t = w.token(&TRUSTED_SEED, &s, bob(), 600);
        let o = w.run(&["id", "-u"], None, Some(&t));
        o.assert_code(125);
        assert!(o.stderr.contains(&format!("its {field} does not match this run")), "{field}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "{field}");
    }
    // The right token for another target user does not run as root either.
    let mut s = base.clone();
    s.run_as = WEB.into();
    let t = w.token(&TRUSTED_SEED, &s, bob(), 600);
    w.run(&["id", "-u"], Some(WEB), Some(&t)).assert_code(0);
    // Requested by someone else (another subject of the same provider).
    let mut s = base.clone();
    s.requester = Some(Principal { iss: w.idp.issuer.clone(), sub: "mallory".into() });
    let t = w.token(&TRUSTED_SEED, &s, bob(), 600);
    let o = w.run(&["id", "-u"], None, Some(&t));
    o.assert_code(125);
    assert!(o.stderr.contains("requested by another identity"), "{}", o.stderr);
    w.sb.expect_syslog(&["EVENT=approval-refused", "WHY=approval"]);
}

#[test]
fn expired_untrusted_and_forged_tokens_are_refused() {
    let w = World::new("appr-keys");
    let s = w.subject(&["id", "-u"]);
    let bob = || vec![w.person("bob", &["ops"])];
    let expired = w.token(&TRUSTED_SEED, &s, bob(), -5);
    let o = w.run(&["id", "-u"], None, Some(&expired));
    o.assert_code(125);
    assert!(o.stderr.contains("the approval token expired"), "{}", o.stderr);

    let untrusted = w.token(&[7u8; 32], &s, bob(), 600);
    let o = w.run(&["id", "-u"], None, Some(&untrusted));
    o.assert_code(125);
    assert!(o.stderr.contains("which is not in [approval] trusted_keys"), "{}", o.stderr);

    // A trusted token with its claims edited (another command) fails the signature.
    let good = w.token(&TRUSTED_SEED, &s, bob(), 600);
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = token::peek(&good).unwrap();
    c.subject.argv = vec!["id".into(), "-g".into()];
    use base64::Engine;
    let edited = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
    let o = w.run(&["id", "-g"], None, Some(&format!("{}.{edited}.{}", parts[0], parts[2])));
    o.assert_code(125);
    assert!(o.stderr.contains("signature is invalid"), "{}", o.stderr);

    // Garbage and an oversized token: refused with a reason, nothing run.
    let o = w.run(&["id", "-u"], None, Some("not.a.token"));
    o.assert_code(125);
    assert!(o.stderr.contains("approval token is malformed"), "{}", o.stderr);
    let o = w.run(&["id", "-u"], None, Some(&"a".repeat(70 * 1024)));
    o.assert_code(125);
    assert!(o.stderr.contains("larger than"), "{}", o.stderr);

    // Key rotation: two trusted keys, a token by either is good.
    w.sb.config(&approval_config(
        &w.idp,
        "http://127.0.0.1:9",
        &[trusted_key_text(&[7u8; 32]), trusted_key_text(&TRUSTED_SEED)],
    ));
    w.run(&["id", "-u"], None, Some(&untrusted)).assert_code(0);
    w.run(&["id", "-u"], None, Some(&good)).assert_code(0);
}

#[test]
fn approvers_must_satisfy_this_hosts_policy() {
    let w = World::new("appr-who");
    // Alice approving her own request (even alongside a real approver).
    let s = w.subject(&["id", "-u"]);
    let t = w.token(&TRUSTED_SEED, &s, vec![w.person("alice", &["ops"]), w.person("bob", &["ops"])], 600);
    let o = w.run(&["id", "-u"], None, Some(&t));
    o.assert_code(125);
    assert!(o.stderr.contains("nobody approves their own request"), "{}", o.stderr);

    // An approver the service accepted but this policy does not (not in group ops).
    let t = w.token(&TRUSTED_SEED, &s, vec![w.person("carol", &["dev"])], 600);
    let o = w.run(&["id", "-u"], None, Some(&t));
    o.assert_code(125);
    assert!(
        o.stderr.contains("it needs corp groups ops (1 approval), and 0 of its approvers"),
        "{}",
        o.stderr
    );
    w.sb.expect_syslog(&["EVENT=approval-refused", "corp:carol@example.com"]);

    // An approver from an issuer this host does not know counts for nothing.
    let mut stranger = w.person("bob", &["ops"]);
    stranger.iss = "https://elsewhere.example".into();
    let t = w.token(&TRUSTED_SEED, &s, vec![stranger], 600);
    w.run(&["id", "-u"], None, Some(&t)).assert_code(125);

    // min_approvals = 2: one approval is not enough, the same approver twice is not two,
    // two distinct approvers are.
    let u = w.subject(&["uname"]);
    let t = w.token(&TRUSTED_SEED, &u, vec![w.person("bob", &["ops"])], 600);
    let o = w.run(&["uname"], None, Some(&t));
    o.assert_code(125);
    assert!(o.stderr.contains("(2 approvals), and 1 of its approvers"), "{}", o.stderr);
    let t = w.token(&TRUSTED_SEED, &u, vec![w.person("bob", &["ops"]), w.person("bob", &["ops"])], 600);
    let o = w.run(&["uname"], None, Some(&t));
    o.assert_code(125);
    assert!(o.stderr.contains("(2 approvals), and 1 of its approvers"), "{}", o.stderr);
    let t = w.token(&TRUSTED_SEED, &u, vec![w.person("bob", &["ops"]), w.person("dave", &["ops"])], 600);
    let o = w.run(&["uname"], None, Some(&t));
    o.assert_code(0);
    assert_eq!(o.stdout.trim(), "Linux");
    let l = w.sb.expect_syslog(&["EVENT=end", "APPROVERS=corp:bob@example.com,corp:dave@example.com"]);
    assert!(l.contains("EXIT=0"), "{l}");
    let _ = Duration::ZERO;
}
