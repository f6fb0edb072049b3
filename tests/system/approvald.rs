//! System tests of `lpexec-approvald`: the real binary, a real OIDC provider (`Idp`), real
//! HTTP over loopback, the real SQLite file.
//!
//! [`Approvald`] is the reusable fixture (the end-to-end approval tests of the front end and
//! the helper use it too): a private directory with a config naming the provider as
//! `[[issuer]] name = "corp"`, a signing key from `keygen`, the service on a free loopback
//! port. Killed (SIGKILL) and its directory removed on drop.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use lpexec::approval::api::{ErrorBody, Keys, RequestList, RequestView, Status};
use lpexec::approval::{ApprovalRequest, Approver, Principal, Requirement, Subject, token};
use serde_json::{Value, json};

use crate::harness::{COMMAND_LIMIT, http_agent, output_within};
use crate::idp::{Idp, issuer_toml};

/// A running `lpexec-approvald`. See the module docs.
pub struct Approvald {
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    child: Option<Child>,
    public_key: String,
}

static N: AtomicUsize = AtomicUsize::new(0);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lpexec-approvald")
}

/// Runs `lpexec-approvald --config CONFIG ARGS` to completion (bounded, output captured).
fn run_approvald(config: &Path, args: &[&str]) -> std::process::Output {
    output_within(Command::new(bin()).arg("--config").arg(config).args(args), COMMAND_LIMIT)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Approvald {
    /// The service trusting `idp` as issuer `corp`, with the default `request_ttl` (1h).
    pub fn start(idp: &Idp) -> Approvald {
        Approvald::start_with(idp, "")
    }

    /// Same, with `extra` top-level lines in approvald.toml (e.g. `request_ttl = "2s"`).
    pub fn start_with(idp: &Idp, extra: &str) -> Approvald {
        let dir = std::env::temp_dir().join(format!(
            "lpexec-approvald-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let port = free_port();
        let config = dir.join("approvald.toml");
        let text = format!(
            "listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             database = \"{d}/approvals.db\"\nsigning_key = \"{d}/signing.key\"\n{extra}\n{}",
            issuer_toml("corp", &idp.issuer, ""),
            d = dir.display()
        );
        std::fs::write(&config, text).unwrap();
        let o = run_approvald(&config, &["keygen"]);
        assert!(o.status.success(), "keygen failed: {}", String::from_utf8_lossy(&o.stderr));
        let public_key = String::from_utf8(o.stdout).unwrap().trim().to_string();
        assert!(public_key.starts_with("ed25519:"), "{public_key}");
        let mut a = Approvald { dir, config, port, child: None, public_key };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("log")).unwrap();
        let child = Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("lpexec-approvald exited ({st}) at start:\n{}", self.log());
            }
            if let Ok((200, body)) = try_call("GET", &format!("{}/healthz", self.url()), None, None) {
                assert_eq!(body, r#"{"status":"ok"}"#);
                return;
            }
            assert!(Instant::now() < until, "lpexec-approvald did not become healthy:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:PORT` (also its `public_url`, the `iss` of its tokens).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `ed25519:<base64url>`, as keygen printed it (for `trusted_keys`).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The raw public key, for `token::verify`.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        lpexec::common::config::parse_public_key(&self.public_key).unwrap()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("approvals.db")
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything the service logged (JSON lines), across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and waits for a clean exit (panics if it does not exit within 10 s).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < until, "lpexec-approvald did not stop on SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again (after `kill9` or `stop`, or kills it first), same port, same files.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for Approvald {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("lpexec-approvald log:\n{}", self.log());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One HTTP call: (status, body). `Err` only for transport errors.
pub fn try_call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let (status, _, body) = try_call_h(method, url, token, body)?;
    Ok((status, body))
}

/// [`try_call`] with the response headers.
pub fn try_call_h(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, ureq::http::HeaderMap, String), String> {
    let a = http_agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let r = match (method, body) {
        ("GET", _) => {
            let mut b = a.get(url);
            if let Some(h) = &auth {
                b = b.header("authorization", h);
            }
            b.call()
        }
        ("DELETE", _) => {
            let mut b = a.delete(url);
            if let Some(h) = &auth {
                b = b.header("authorization", h);
            }
            b.call()
        }
        ("POST", body) => {
            let mut b = a.post(url).header("content-type", "application/json");
            if let Some(h) = &auth {
                b = b.header("authorization", h);
            }
            b.send(body.unwrap_or(""))
        }
        _ => panic!("method {method}"),
    };
    let mut r = r.map_err(|e| e.to_string())?;
    let headers = r.headers().clone();
    let text = r.body_mut().with_config().limit(16 << 20).read_to_string().map_err(|e| e.to_string())?;
    Ok((r.status().as_u16(), headers, text))
}

#[track_caller]
pub fn call(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    try_call(method, url, token, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// An ID token for `login` (alice: groups sre, dev; bob: ops; others as given).
pub fn id_token(idp: &Idp, login: &str, groups: &[&str]) -> String {
    idp.mint(json!({"claims": {"sub": login, "email": format!("{login}@example.com"), "groups": groups}}))
}

/// A request that needs `min` approvals from group `group` of issuer `corp`.
pub fn request(group: &str, min: u32) -> ApprovalRequest {
    ApprovalRequest {
        subject: Subject {
            host: "web-1".into(),
            uid: 1000,
            user: "alice".into(),
            // A lie the service must replace with the verified requester.
            requester: Some(Principal { iss: "https://evil.example.com".into(), sub: "mallory".into() }),
            role: "release".into(),
            run_as: "root".into(),
            command: "/usr/bin/systemctl".into(),
            argv: vec!["systemctl".into(), "restart".into(), "web".into()],
            cwd: "/srv/web".into(),
        },
        requirements: vec![Requirement {
            rule: "/etc/lpexec/policy.toml:12".into(),
            approvers: vec![Approver {
                issuer: "corp".into(),
                sub: None,
                email: None,
                groups: vec![group.into()],
                claims: Default::default(),
            }],
            min_approvals: min,
        }],
        ttl: 900,
        reason: Some("deploy 1.2.3".into()),
    }
}

fn submit_body(r: &ApprovalRequest) -> String {
    json!({ "request": r }).to_string()
}

#[track_caller]
fn parse<T: serde::de::DeserializeOwned>(status: u16, want: u16, body: &str) -> T {
    assert_eq!(status, want, "{body}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Submits `r` as `token`; the created view.
#[track_caller]
pub fn submit(a: &Approvald, tok: &str, r: &ApprovalRequest) -> RequestView {
    let (s, b) = call("POST", &format!("{}/v1/requests", a.url()), Some(tok), Some(&submit_body(r)));
    parse(s, 201, &b)
}

#[track_caller]
fn act(a: &Approvald, tok: &str, id: &str, verb: &str, comment: Option<&str>) -> (u16, String) {
    let body = match comment {
        Some(c) => json!({ "comment": c }).to_string(),
        None => "{}".into(),
    };
    call("POST", &format!("{}/v1/requests/{id}/{verb}", a.url()), Some(tok), Some(&body))
}

#[track_caller]
fn show(a: &Approvald, tok: &str, id: &str) -> RequestView {
    let (s, b) = call("GET", &format!("{}/v1/requests/{id}", a.url()), Some(tok), None);
    parse(s, 200, &b)
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body).unwrap_or_else(|e| panic!("not an ErrorBody ({e}): {body}")).error
}

fn events(a: &Approvald, id: &str, what: &str) -> i64 {
    let c = rusqlite::Connection::open(a.db_path()).unwrap();
    c.query_row("SELECT count(*) FROM events WHERE request_id = ?1 AND event = ?2", (id, what), |r| r.get(0))
        .unwrap()
}

#[test]
fn approvald_round_trip_submit_list_approve_token() {
    let idp = Idp::start(&[]);
    let a = Approvald::start(&idp);
    let (alice, bob) = (id_token(&idp, "alice", &["sre", "dev"]), id_token(&idp, "bob", &["ops"]));
    let v = submit(&a, &alice, &request("ops", 1));
    assert!(token::valid_id(&v.id) && v.id.starts_with("req_"), "{}", v.id);
    assert_eq!(v.status, Status::Pending);
    let me = Principal { iss: idp.issuer.clone(), sub: "alice".into() };
    assert_eq!(v.requester, me);
    assert_eq!(v.request.subject.requester.as_ref(), Some(&me), "the body's requester is ignored");
    assert_eq!(v.requester_email.as_deref(), Some("alice@example.com"));
    assert!(v.expires - v.created == 3600 && v.token.is_none());

    let list = |tok: &str| -> Vec<String> {
        let (s, b) = call("GET", &format!("{}/v1/requests", a.url()), Some(tok), None);
        parse::<RequestList>(s, 200, &b).requests.into_iter().map(|r| r.id).collect()
    };
    assert_eq!(list(&bob), std::slice::from_ref(&v.id));
    assert!(list(&alice).is_empty(), "not one's own");
    assert!(list(&id_token(&idp, "mallory", &[])).is_empty(), "not someone else's approvals");

    let (s, b) = act(&a, &bob, &v.id, "approve", Some("looks right"));
    let approved: RequestView = parse(s, 200, &b);
    assert_eq!(approved.status, Status::Approved);
    assert!(approved.token.is_none(), "the token is for the requester only");
    assert!(list(&bob).is_empty());

    let mine = show(&a, &alice, &v.id);
    let tok = mine.token.clone().expect("the requester gets the token");
    let (s, b) = call("GET", &format!("{}/v1/keys", a.url()), None, None);
    let keys: Keys = parse(s, 200, &b);
    assert_eq!(keys.keys.len(), 1);
    assert_eq!(keys.keys[0].public_key, a.public_key());
    let pk = lpexec::common::config::parse_public_key(&keys.keys[0].public_key).unwrap();
    assert_eq!(keys.keys[0].kid, token::kid(&pk));
    let claims = token::verify(&tok, &[pk], lpexec::identity::now_unix()).expect("the token verifies");
    assert_eq!(claims.jti, v.id);
    assert_eq!(claims.iss, a.url());
    assert_eq!(claims.exp - claims.iat, 900, "the request's ttl");
    assert_eq!(claims.subject, mine.request.subject);
    assert_eq!(claims.approvals.len(), 1);
    assert_eq!(
        (claims.approvals[0].sub.as_str(), claims.approvals[0].comment.as_deref()),
        ("bob", Some("looks right"))
    );
    assert_eq!(claims.approvals[0].groups, ["ops"]);
    assert_eq!(show(&a, &alice, &v.id).token.as_deref(), Some(tok.as_str()), "fetched again: the same token");
    assert_eq!(events(&a, &v.id, "token issued"), 1);
    // The log: JSON lines with who did what.
    let log = a.log();
    let approved_line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["event"] == "approved")
        .unwrap_or_else(|| panic!("no approved line in\n{log}"));
    assert_eq!(approved_line["request"], v.id.as_str());
    assert_eq!(approved_line["principal"], "corp:bob@example.com");
    assert!(approved_line["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(!log.contains(&tok) && !log.contains(&alice), "tokens never reach the log");
}

#[test]
fn approvald_self_approval_refused() {
    let idp = Idp::start(&[]);
    let a = Approvald::start(&idp);
    // alice is in ops herself, so only "not the requester" stops her.
    let alice = id_token(&idp, "alice", &["ops"]);
    let v = submit(&a, &alice, &request("ops", 1));
    let (s, b) = act(&a, &alice, &v.id, "approve", None);
    assert_eq!(s, 403, "{b}");
    assert!(error_of(&b).contains("someone else"), "{b}");
    // Another account with her email at the same issuer is still her.
    let alt =
        idp.mint(json!({"claims": {"sub": "alice-admin", "email": "alice@example.com", "groups": ["ops"]}}));
    let (s, b) = act(&a, &alt, &v.id, "approve", None);
    assert_eq!(s, 403, "{b}");
    let (s, b) = act(&a, &alice, &v.id, "deny", None);
    assert_eq!(s, 403, "{b}");
    assert_eq!(show(&a, &alice, &v.id).status, Status::Pending);
    assert_eq!(events(&a, &v.id, "approved"), 0);
}

#[test]
fn approvald_same_approver_twice_counts_once() {
    let idp = Idp::start(&[]);
    let a = Approvald::start(&idp);
    let alice = id_token(&idp, "alice", &[]);
    let v = submit(&a, &alice, &request("ops", 2));
    let bob = id_token(&idp, "bob", &["ops"]);
    let (s, b) = act(&a, &bob, &v.id, "approve", None);
    assert_eq!(parse::<RequestView>(s, 200, &b).status, Status::Pending);
    // The same person with a fresh token: still one approval.
    let bob_again = idp.mint(json!({"claims": {"sub": "bob", "email": "bob@example.com", "groups": ["ops"], "iat": lpexec::identity::now_unix() - 1}}));
    let (s, b) = act(&a, &bob_again, &v.id, "approve", None);
    assert_eq!(s, 409, "{b}");
    assert!(error_of(&b).contains("already approved"), "{b}");
    let mine = show(&a, &alice, &v.id);
    assert_eq!((mine.status, mine.approvals.len(), mine.token.is_none()), (Status::Pending, 1, true));
    let (s, b) = act(&a, &id_token(&idp, "carol", &["ops"]), &v.id, "approve", None);
    assert_eq!(parse::<RequestView>(s, 200, &b).status, Status::Approved);
    let tok = show(&a, &alice, &v.id).token.unwrap();
    let claims = token::verify(&tok, &[a.public_key_bytes()], lpexec::identity::now_unix()).unwrap();
    let subs: Vec<&str> = claims.approvals.iter().map(|x| x.sub.as_str()).collect();
    assert_eq!(subs, ["bob", "carol"]);
}

#[test]
fn approvald_approver_not_matching_refused() {
    let idp = Idp::start(&[]);
    let a = Approvald::start(&idp);
    let alice = id_token(&idp, "alice", &[]);
    let v = submit(&a, &alice, &request("ops", 1));
    let mallory = id_token(&idp, "mallory", &["dev"]);
    let (s, b) = act(&a, &mallory, &v.id, "approve", None);
    assert_eq!(s, 403, "{b}");
    assert!(error_of(&b).contains("does not match any approver"), "{b}");
    let (s, _) = act(&a, &mallory, &v.id, "deny", Some("no"));
    assert_eq!(s, 403);
    // Not hers to see, either.
    let (s, _) = call("GET", &format!("{}/v1/requests/{}", a.url(), v.id), Some(&mallory), None);
    assert_eq!(s, 404);
    let (s, _) = call("DELETE", &format!("{}/v1/requests/{}", a.url(), v.id), Some(&mallory), None);
    assert_eq!(s, 404);
    assert_eq!(show(&a, &alice, &v.id).status, Status::Pending);
}

#[test]
fn approvald_deny_is_final_and_visible_to_the_requester() {
    let idp = Idp::start(&[]);
    let a = Approvald::start(&idp);
    let alice = id_token(&idp, "alice", &[]);
    let v = submit(&a, &alice, &request("ops", 2));
    let bob = id_token(&idp, "bob", &["ops"]);
    let carol = id_token(&idp, "carol", &["ops"]);
    let (s, b) = act(&a, &carol, &v.id, "approve", None);
    assert_eq!(s, 200, "{b}");
    let (s, b) = act(&a, &bob, &v.id, "deny", Some("not during the freeze"));
    assert_eq!(parse::<RequestView>(s, 200, &b).status, Status::Denied);
    let mine = show(&a, &alice, &v.id);
    assert_eq!(mine.status, Status::Denied);
    assert_eq!(mine.denials.len(), 1);
    assert_eq!(mine.denials[0].sub, "bob");
    assert_eq!(mine.denials[0].comment.as_deref(), Some("not during the freeze"));
    assert!(mine.token.is_none());
    let (s, b) = act(&a, &id_token(&idp, "dave", &["ops"]), &v.id, "approve", None);
    assert_eq!(s, 409, "{b}");
    assert!(error_of(&b).contains("denied"), "{b}");
    assert_eq!(events(&a, &v.id, "token issued"), 0);
    assert_eq!(events(&a, &v.id, "denied"), 1);
}

#[test]
fn approvald_withdraw() {
    let idp = Idp::start(&[]);
    let a = Approvald::start(&idp);
    let alice = id_token(&idp, "alice", &[]);
    let bob = id_token(&idp, "bob", &["ops"]);
    let v = submit(&a, &alice, &request("ops", 1));
    let url = format!("{}/v1/requests/{}", a.url(), v.id);
    let (s, b) = call("DELETE", &url, Some(&bob), None);
    assert_eq!(s, 403, "only the requester withdraws: {b}");
    let (s, b) = call("DELETE", &url, Some(&alice), None);
    assert_eq!(parse::<RequestView>(s, 200, &b).status, Status::Withdrawn);
    let (s, b) = act(&a, &bob, &v.id, "approve", None);
    assert_eq!(s, 409, "{b}");
    let (s, _) = call("DELETE", &url, Some(&alice), None);
    assert_eq!(s, 409);
    assert_eq!(show(&a, &alice, &v.id).status, Status::Withdrawn);
    assert_eq!(events(&a, &v.id, "withdrew"), 1);
}

#[test]
fn approvald_pending_requests_expire() {
    let idp = Idp::start(&[]);
    let a = Approvald::start_with(&idp, "request_ttl = \"2s\"");
    let alice = id_token(&idp, "alice", &[]);
    let bob = id_token(&idp, "bob", &["ops"]);
    let v = submit(&a, &alice, &request("ops", 1));
    let w = submit(&a, &alice, &request("ops", 1));
    assert_eq!(v.expires - v.created, 2);
    // A long-poll on a pending request answers when it expires, well before its wait.
    let t = Instant::now();
    let (s, b) = call("GET", &format!("{}/v1/requests/{}?wait=30", a.url(), w.id), Some(&alice), None);
    assert_eq!(parse::<RequestView>(s, 200, &b).status, Status::Expired);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(show(&a, &alice, &v.id).status, Status::Expired);
    let (s, b) = act(&a, &bob, &v.id, "approve", None);
    assert_eq!(s, 409, "{b}");
    assert!(error_of(&b).contains("expired"), "{b}");
    let (s, b) = call("GET", &format!("{}/v1/requests", a.url()), Some(&bob), None);
    assert!(parse::<RequestList>(s, 200, &b).requests.is_empty());
    assert_eq!(events(&a, &v.id, "expired"), 1);
    // The audit trail outlives the request's life, and `lpexec-approvald audit` reads it
    // beside the running service.
    assert_eq!(events(&a, &v.id, "asked"), 1);
    let (s, _) = act(&a, &bob, &w.id, "deny", Some("too late"));
    assert_eq!(s, 409);
    let audit = |args: &[&str]| {
        let o = run_approvald(a.config_path(), &[&["audit"], args].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let json = audit(&["--json", "--request", &v.id]);
    let kinds: Vec<String> = json
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["asked", "expired"], "{json}");
    assert!(json.contains("\"email\":\"alice@example.com\""), "{json}");
    let table = audit(&["--since", "1h"]);
    assert_eq!(table.lines().filter(|l| l.contains(" asked ")).count(), 2, "{table}");
    assert!(table.lines().all(|l| l.starts_with("20")), "{table}");
    assert!(audit(&["--since", "2100-01-01"]).is_empty());
    let o = run_approvald(a.config_path(), &["audit", "--request", "x; DROP"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("is not a request id"));
}

#[test]
fn approvald_long_poll_returns_promptly_on_approval() {
    let idp = Idp::start(&[]);
    let a = Approvald::start(&idp);
    let alice = id_token(&idp, "alice", &[]);
    let bob = id_token(&idp, "bob", &["ops"]);
    let v = submit(&a, &alice, &request("ops", 1));
    // wait=0 (or none) answers at once.
    let t = Instant::now();
    let (s, b) = call("GET", &format!("{}/v1/requests/{}?wait=0", a.url(), v.id), Some(&alice), None);
    assert_eq!(parse::<RequestView>(s, 200, &b).status, Status::Pending);
    assert!(t.elapsed() < Duration::from_secs(5));
    let (s, b) = call("GET", &format!("{}/v1/requests/{}?wait=61", a.url(), v.id), Some(&alice), None);
    assert_eq!(s, 400, "{b}");
    let url = format!("{}/v1/requests/{}?wait=60", a.url(), v.id);
    let tok = alice.clone();
    let waiter = std::thread::spawn(move || {
        let r = call("GET", &url, Some(&tok), None);
        (r, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiter.is_finished(), "the long-poll returned before anything happened");
    let (s, b) = act(&a, &bob, &v.id, "approve", None);
    let approved_at = Instant::now();
    assert_eq!(s, 200, "{b}");
    let ((s, b), returned_at) = waiter.join().unwrap();
    let view: RequestView = parse(s, 200, &b);
    assert_eq!(view.status, Status::Approved);
    assert!(view.token.is_some(), "the requester's long-poll carries the token");
    // Woken by the approval, not by the 60 s timeout.
    let lag = returned_at.saturating_duration_since(approved_at);
    assert!(lag < Duration::from_secs(5), "the long-poll returned {lag:?} after the approval");
    // since=approved waits for a change away from approved: none comes, so the wait ends.
    let t = Instant::now();
    let (s, b) =
        call("GET", &format!("{}/v1/requests/{}?wait=1&since=approved", a.url(), v.id), Some(&alice), None);
    assert_eq!(parse::<RequestView>(s, 200, &b).status, Status::Approved);
    assert!(t.elapsed() >= Duration::from_millis(900), "{:?}", t.elapsed());
}

#[test]
fn approvald_kill9_after_approval_keeps_the_same_token() {
    let idp = Idp::start(&[]);
    let mut a = Approvald::start(&idp);
    let alice = id_token(&idp, "alice", &[]);
    let bob = id_token(&idp, "bob", &["ops"]);
    let v = submit(&a, &alice, &request("ops", 1));
    let (s, b) = act(&a, &bob, &v.id, "approve", None);
    assert_eq!(s, 200, "{b}");
    // Killed before the requester fetched the token: it must be on disk already.
    a.kill9();
    let stored: String = rusqlite::Connection::open(a.db_path())
        .unwrap()
        .query_row("SELECT token FROM requests WHERE id = ?1", [&v.id], |r| r.get(0))
        .unwrap();
    a.restart();
    let mine = show(&a, &alice, &v.id);
    assert_eq!(mine.status, Status::Approved);
    assert_eq!(
        mine.token.as_deref(),
        Some(stored.as_str()),
        "byte-equal to the token issued before the kill"
    );
    a.restart();
    assert_eq!(show(&a, &alice, &v.id).token.as_deref(), Some(stored.as_str()));
    assert!(token::verify(&stored, &[a.public_key_bytes()], lpexec::identity::now_unix()).is_ok());
    assert_eq!(events(&a, &v.id, "token issued"), 1, "never a second token");
    // And a clean stop on SIGTERM.
    assert!(a.stop().success(), "{}", a.log());
    assert!(a.log().contains(r#""event":"stopped""#), "{}", a.log());
}

#[test]
fn approvald_racing_approvers_issue_one_token() {
    let idp = Idp::start(&[]);
    let a = Approvald::start(&idp);
    let alice = id_token(&idp, "alice", &[]);
    let racers: Vec<String> = ["bob", "carol", "dave"].iter().map(|n| id_token(&idp, n, &["ops"])).collect();
    let first = id_token(&idp, "erin", &["ops"]);
    for round in 0..25 {
        // Two approvals needed: one first, then three people race for the last one.
        let v = submit(&a, &alice, &request("ops", 2));
        let (s, b) = act(&a, &first, &v.id, "approve", None);
        assert_eq!(s, 200, "{b}");
        let barrier = Arc::new(Barrier::new(racers.len()));
        let handles: Vec<_> = racers
            .iter()
            .map(|t| {
                let (url, t, barrier) =
                    (format!("{}/v1/requests/{}/approve", a.url(), v.id), t.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    call("POST", &url, Some(&t), Some("{}"))
                })
            })
            .collect();
        let results: Vec<(u16, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let won = results.iter().filter(|(s, _)| *s == 200).count();
        let lost = results.iter().filter(|(s, _)| *s == 409).count();
        assert_eq!((won, lost), (1, racers.len() - 1), "round {round}: {results:?}");
        assert_eq!(events(&a, &v.id, "token issued"), 1, "round {round}");
        let tok = show(&a, &alice, &v.id).token.unwrap();
        let claims = token::verify(&tok, &[a.public_key_bytes()], lpexec::identity::now_unix()).unwrap();
        assert_eq!(claims.approvals.len(), 2, "round {round}");
    }
}

#[test]
fn approvald_hostile_http() {
    let idp = Idp::start(&[]);
    let a = Approvald::start(&idp);
    let alice = id_token(&idp, "alice", &[]);
    let bob = id_token(&idp, "bob", &["ops"]);
    let requests = format!("{}/v1/requests", a.url());
    let mut bodies: Vec<String> = Vec::new();
    let mut check = |(s, h, b): (u16, ureq::http::HeaderMap, String), want: u16, what: &str| {
        assert_eq!(s, want, "{what}: {b}");
        if s >= 400 {
            let e = error_of(&b);
            assert!(!e.is_empty(), "{what}");
        }
        if s == 401 {
            assert_eq!(h.get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"), "{what}");
        }
        bodies.push(b.clone());
        b
    };
    let post = |tok: Option<&str>, body: &str| try_call_h("POST", &requests, tok, Some(body)).unwrap();

    // Bodies.
    check(post(Some(&alice), "{\"request\": "), 400, "truncated JSON");
    check(post(Some(&alice), "not json at all"), 400, "not JSON");
    let mut extra: Value = serde_json::from_str(&submit_body(&request("ops", 1))).unwrap();
    extra["request"]["subject"]["shell"] = json!("/bin/sh");
    let b = check(post(Some(&alice), &extra.to_string()), 400, "unknown field");
    assert!(error_of(&b).contains("unknown field `shell`"), "{b}");
    let mut empty = request("ops", 1);
    empty.requirements.clear();
    check(post(Some(&alice), &submit_body(&empty)), 400, "no requirements");
    let huge = json!({"request": {"reason": "x".repeat(600 * 1024)}}).to_string();
    let b = check(post(Some(&alice), &huge), 413, "oversized body");
    assert!(error_of(&b).contains("larger than"), "{b}");

    // Tokens.
    let b = check(post(None, &submit_body(&request("ops", 1))), 401, "no token");
    assert!(error_of(&b).contains("Authorization: Bearer"), "{b}");
    check(post(Some("garbage"), "{}"), 401, "garbage token");
    let none = idp.mint(json!({"alg": "none"}));
    check(post(Some(&none), "{}"), 401, "alg none");
    let hs = idp.mint(json!({"alg": "HS256-pubkey"}));
    check(post(Some(&hs), "{}"), 401, "HMAC keyed with the public key");
    let now = lpexec::identity::now_unix();
    let expired = idp.mint(json!({"claims": {"iat": now - 1000, "exp": now - 500}}));
    let b = check(post(Some(&expired), "{}"), 401, "expired");
    assert!(error_of(&b).contains("expired"), "{b}");
    let other = Idp::start(&[]);
    let b = check(post(Some(&other.mint(json!({}))), "{}"), 401, "other issuer");
    assert!(error_of(&b).contains("does not trust"), "{b}");
    let wrong_aud = idp.mint(json!({"claims": {"aud": "someone-else"}}));
    check(post(Some(&wrong_aud), "{}"), 401, "other audience");
    let mut forged_sig = alice.clone();
    forged_sig.truncate(forged_sig.len() - 4);
    forged_sig.push_str("AAAA");
    check(post(Some(&forged_sig), "{}"), 401, "bad signature");
    check(try_call_h("GET", &requests, None, None).unwrap(), 401, "list without a token");

    // Ids and queries.
    for id in ["nope", "req_AAAAAAAAAAAAAAAAAAAAAA", "..%2F..%2Fetc%2Fpasswd", "req_'%20OR%201=1--"] {
        check(try_call_h("GET", &format!("{requests}/{id}"), Some(&alice), None).unwrap(), 404, id);
        check(
            try_call_h("POST", &format!("{requests}/{id}/approve"), Some(&bob), Some("{}")).unwrap(),
            404,
            id,
        );
    }
    check(try_call_h("GET", &format!("{}/v1/nothing", a.url()), None, None).unwrap(), 404, "unknown path");

    // SQL-ish strings are data.
    let evil = "'); DROP TABLE requests;--";
    let mut r = request("ops", 1);
    r.reason = Some(format!("Robert{evil}"));
    r.subject.argv.push(evil.into());
    r.subject.argv.push("\" OR 1=1; --".into());
    r.subject.cwd = "/srv/x'; DELETE FROM events; --".into();
    let v = submit(&a, &alice, &r);
    let (s, b) = act(&a, &bob, &v.id, "deny", Some(evil));
    assert_eq!(s, 200, "{b}");
    let mine = show(&a, &alice, &v.id);
    assert_eq!(mine.request.reason, r.reason);
    assert_eq!(mine.request.subject.argv, r.subject.argv);
    assert_eq!(mine.request.subject.cwd, r.subject.cwd);
    assert_eq!(mine.denials[0].comment.as_deref(), Some(evil));
    bodies.push(serde_json::to_string(&mine).unwrap());
    let c = rusqlite::Connection::open(a.db_path()).unwrap();
    let n: i64 = c.query_row("SELECT count(*) FROM requests", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1, "the table is still there");
    let comment: String =
        c.query_row("SELECT comment FROM events WHERE event = 'denied'", [], |r| r.get(0)).unwrap();
    assert_eq!(comment, evil);

    // Nothing internal leaks.
    let dir = a.dir().display().to_string();
    for b in &bodies {
        let lower = b.to_lowercase();
        assert!(!lower.contains("sqlite") && !lower.contains("sql error"), "{b}");
        assert!(!b.contains(&dir) && !b.contains("/var/") && !b.contains("/tmp/"), "{b}");
    }
    // The service is still fine.
    let (s, _) = call("GET", &format!("{}/healthz", a.url()), None, None);
    assert_eq!(s, 200);
}

#[test]
fn approvald_keygen_refuses_overwrite_and_service_refuses_a_readable_key() {
    let idp = Idp::start(&[]);
    let mut a = Approvald::start(&idp);
    let key = a.dir().join("signing.key");
    let o = run_approvald(a.config_path(), &["keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to overwrite"), "{o:?}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let o = run_approvald(a.config_path(), &["check"]);
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains(a.public_key()), "{o:?}");
    a.kill9();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run_approvald(a.config_path(), &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("has mode 0644") && e.contains("chmod 600"), "{e}");
    // A broken configuration names the line.
    let bad = a.dir().join("bad.toml");
    std::fs::write(&bad, std::fs::read_to_string(a.config_path()).unwrap() + "request_tll = \"1h\"\n")
        .unwrap();
    let o = run_approvald(&bad, &["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("bad.toml:") && e.contains("unknown field `request_tll`"), "{e}");
}

#[test]
fn approvald_serves_a_unix_socket() {
    let idp = Idp::start(&[]);
    let a = Approvald::start(&idp);
    let dir = a.dir();
    let sock = dir.join("approvald.sock");
    let cfg = std::fs::read_to_string(a.config_path())
        .unwrap()
        .replace(&format!("listen = \"127.0.0.1:{}\"", a.port), &format!("listen = \"{}\"", sock.display()))
        .replace("approvals.db", "unix.db");
    let path = dir.join("unix.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = Command::new(bin()).arg("--config").arg(&path).stderr(Stdio::null()).spawn().unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) {
            use std::io::{Read, Write};
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            break out;
        }
        assert!(Instant::now() < until, "no socket");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let _ = child.kill();
    let _ = child.wait();
}
