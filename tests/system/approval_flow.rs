//! Approvals end to end (SPEC §7): the real front end as alice, the real `lpexec-approvald`,
//! the real OIDC provider, the installed setuid helper. Alice's command waits in the
//! background; bob (corp group ops) finds it with `lpexec requests` and approves or denies it
//! with `lpexec approve` / `lpexec deny`.

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::approval::{approval_config, approval_policy};
use crate::approvald::{Approvald, id_token};
use crate::harness::*;
use crate::idp::*;

struct Flow {
    idp: Idp,
    svc: Approvald,
    sb: Sandbox,
    alice: String,
    bob: String,
}

impl Flow {
    fn new(name: &str, wait_timeout: &str) -> Flow {
        let idp = Idp::start(&[]);
        let svc = Approvald::start(&idp);
        let sb = Sandbox::new(name);
        let cfg = approval_config(&idp, &svc.url(), &[svc.public_key().to_string()])
            .replace("wait_timeout = \"20s\"", &format!("wait_timeout = \"{wait_timeout}\""));
        sb.config(&cfg);
        sb.policy(&approval_policy());
        let alice = id_token(&idp, "alice", &["sre", "dev"]);
        let bob = id_token(&idp, "bob", &["ops"]);
        Flow { idp, svc, sb, alice, bob }
    }

    /// `lpexec ARGS` as a Unix user holding `token`.
    fn lp(&self, user: &str, token: &str, args: &[&str]) -> Out {
        self.sb.lp_env(user, &[("LPEXEC_ID_TOKEN", token)], args)
    }

    /// Alice runs `lpexec ARGS` in the background.
    fn start_alice(&self, args: &[&str]) -> Waiter {
        let lp = self.sb.lpexec();
        let mut argv = vec![lp.as_str()];
        argv.extend_from_slice(args);
        let mut child = self
            .sb
            .command(ALICE, &[("LPEXEC_ID_TOKEN", &self.alice)], &argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = drain(child.stdout.take().unwrap());
        let err = drain(child.stderr.take().unwrap());
        Waiter { child, out, err }
    }

    /// The id of the one pending request bob may approve (waits for it to appear).
    fn pending_id(&self) -> String {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let o = self.lp(BOB, &self.bob, &["requests"]);
            if let Some(id) = o.stdout.split_whitespace().find(|w| w.starts_with("req_")) {
                return id.to_string();
            }
            assert!(Instant::now() < until, "no request appeared: {}\n{}", o.stderr, self.svc.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn drain(mut r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 4096];
        while let Ok(n) = r.read(&mut b) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&b[..n]));
        }
    });
    buf
}

struct Waiter {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Waiter {
    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    fn wait_for_stderr(&self, needle: &str) {
        let until = Instant::now() + Duration::from_secs(30);
        while !self.stderr().contains(needle) {
            assert!(Instant::now() < until, "never saw {needle:?} in:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the exit (at most `secs`), returning (code, stdout, stderr).
    fn finish(mut self, secs: u64) -> (Option<i32>, String, String) {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the drains finish
                let out = self.out.lock().unwrap().clone();
                return (st.code(), out, self.stderr());
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("lpexec did not finish in {secs}s:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn alice_waits_bob_approves_and_the_command_runs() {
    let f = Flow::new("flow-approve", "60s");
    let w = f.start_alice(&["--reason", "ship 1.2", "id", "-u"]);
    let id = f.pending_id();
    w.wait_for_stderr(&format!("request {id} sent to"));
    assert!(w.stderr().contains("approvers: corp groups ops (1 approval)"), "{}", w.stderr());

    // Bob sees everything he is approving.
    let o = f.lp(BOB, &f.bob, &["requests"]);
    o.assert_code(0);
    assert!(o.stdout.contains("/usr/bin/id -u") && o.stdout.contains("ship 1.2"), "{}", o.stdout);
    // Approving without a terminal needs -y.
    let o = f.lp(BOB, &f.bob, &["approve", &id]);
    o.assert_code(125);
    assert!(o.stderr.contains("pass -y"), "{}", o.stderr);
    assert!(o.stdout.contains("command    /usr/bin/id -u"), "{}", o.stdout);
    assert!(o.stdout.contains("as user    root"), "{}", o.stdout);

    // Alice cannot approve her own request.
    let o = f.lp(ALICE, &f.alice, &["approve", "-y", &id]);
    o.assert_code(125);

    let o = f.lp(BOB, &f.bob, &["approve", "-y", "--comment", "lgtm", &id]);
    o.assert_code(0);
    assert!(o.stderr.contains("it has every approval it needs"), "{}", o.stderr);

    let (code, out, err) = w.finish(30);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "0");
    assert!(err.contains("approved by bob@example.com"), "{err}");
    let l = f.sb.expect_syslog(&["EVENT=start", &format!("APPROVAL={id}")]);
    assert!(l.contains("APPROVERS=corp:bob@example.com"), "{l}");
    let rec = f.sb.recordings();
    let header: Value = serde_json::from_str(read(&rec[0]).lines().next().unwrap()).unwrap();
    assert_eq!(header["lpexec"]["approvers"], serde_json::json!(["corp:bob@example.com"]));

    // The request is no longer pending for anyone.
    let o = f.lp(BOB, &f.bob, &["requests"]);
    assert!(!o.stdout.contains(&id), "{}", o.stdout);
    let _ = &f.idp;
}

#[test]
fn a_denial_ends_the_wait_with_125_and_says_who() {
    let f = Flow::new("flow-deny", "60s");
    let w = f.start_alice(&["id", "-u"]);
    let id = f.pending_id();
    f.lp(BOB, &f.bob, &["deny", "--comment", "not during the freeze", &id]).assert_code(0);
    let (code, out, err) = w.finish(30);
    assert_eq!(code, Some(125), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains(&format!("request {id} was denied by bob@example.com: not during the freeze")),
        "{err}"
    );
    // Acting on it again: nothing to do.
    let o = f.lp(BOB, &f.bob, &["approve", "-y", &id]);
    o.assert_code(125);
    assert!(o.stderr.contains("is denied; there is nothing to approve"), "{}", o.stderr);
}

#[test]
fn two_approvals_need_two_people() {
    let f = Flow::new("flow-two", "60s");
    let dave = id_token(&f.idp, "dave", &["ops"]);
    let w = f.start_alice(&["uname"]);
    let id = f.pending_id();
    f.lp(BOB, &f.bob, &["approve", "-y", &id]).assert_code(0);
    // The same approver twice is not two.
    let o = f.lp(BOB, &f.bob, &["approve", "-y", &id]);
    o.assert_code(125);
    // The waiting requester hears of the first approval while the request stays pending.
    w.wait_for_stderr("approved by bob@example.com");
    let o = f.lp(MALLORY, &dave, &["approve", "-y", &id]);
    o.assert_code(0);
    let (code, out, err) = w.finish(30);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "Linux");
    f.sb.expect_syslog(&["EVENT=end", "APPROVERS=corp:bob@example.com,corp:dave@example.com"]);
}

#[test]
fn ctrl_c_withdraws_and_a_timeout_gives_up() {
    let f = Flow::new("flow-cancel", "3s");
    // Timeout: nobody approves within wait_timeout.
    let w = f.start_alice(&["id", "-u"]);
    let (code, _, err) = w.finish(30);
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("was not approved within 3s") && err.contains("withdrawn"), "{err}");

    // Ctrl-C: SIGINT to the waiting front end withdraws the request.
    let f = Flow::new("flow-sigint", "60s");
    let w = f.start_alice(&["id", "-u"]);
    let id = f.pending_id();
    w.wait_for_stderr(&format!("request {id} sent to"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(w.child.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    let (code, _, err) = w.finish(30);
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains(&format!("request {id} withdrawn")), "{err}");
    let o = f.lp(BOB, &f.bob, &["approve", "-y", &id]);
    o.assert_code(125);
    assert!(o.stderr.contains("withdrawn"), "{}", o.stderr);
}

#[test]
fn the_service_going_down_fails_closed() {
    // Down before the request: a clear refusal, nothing run.
    let mut f = Flow::new("flow-down", "60s");
    f.svc.kill9();
    let o = f.lp(ALICE, &f.alice, &["id", "-u"]);
    o.assert_code(125);
    assert!(o.stderr.contains("cannot reach the approval service"), "{}", o.stderr);
    assert!(o.stdout.is_empty());

    // Down mid-wait: lpexec retries a few times, then gives up with 125 and the request id.
    f.svc.restart();
    let w = f.start_alice(&["id", "-u"]);
    let id = f.pending_id();
    w.wait_for_stderr(&format!("request {id} sent to"));
    f.svc.kill9();
    let (code, out, err) = w.finish(60);
    assert_eq!(code, Some(125), "{err}");
    assert!(out.is_empty());
    assert!(err.contains(&format!("request {id} may still be pending; nothing was run")), "{err}");

    // Without an OIDC identity, no request can be made.
    f.svc.restart();
    let o = f.sb.lp(ALICE, &["hostname"]);
    o.assert_code(125);
    assert!(
        o.stderr.contains("an approval request must come from an OIDC identity; you have none"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("lpexec login corp"), "{}", o.stderr);
}
