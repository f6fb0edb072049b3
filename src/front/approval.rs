//! The front end's approval verbs (SPEC §7): asking for an approval and waiting for it when
//! the helper says a run needs one, and `lpexec requests`, `approve` and `deny`.
//!
//! The service authenticates everyone by their OIDC ID token (from `lpexec login`, or a CI
//! job's token); nothing here is trusted by the helper, which verifies the approval token
//! itself.

use std::time::{Duration, Instant};

use crate::approval::api::{self, Act, RequestList, RequestView, Status, Submit};
use crate::approval::{ApprovalNeeded, ApprovalRequest};
use crate::common::{duration, quote};
use crate::helper::request::{Mode, Request, VERSION};
use crate::identity::http::{Client, HttpError, Profile};
use crate::identity::{Presented, now_unix, printable};
use crate::system::{fd, interrupt, term};
use crate::{eprintln_safe, println_safe};

/// Longest answer read from the service.
const MAX_ANSWER: u64 = 4 * 1024 * 1024;
/// Seconds per long-poll: short enough that Ctrl-C is noticed promptly.
const POLL: u64 = 5;

/// The approval service as one caller sees it.
struct Service {
    client: Client,
    base: String,
    token: String,
}

fn error_text(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<api::ErrorBody>(body) {
        Ok(e) => format!("{} (HTTP {status})", printable(&e.error, 300)),
        Err(_) => format!("HTTP status {status}"),
    }
}

impl Service {
    fn new(url: &str, token: String) -> Result<Service, String> {
        let client = Client::new(Profile::Front, url.starts_with("https://"), None)?;
        Ok(Service { client, base: url.trim_end_matches('/').to_string(), token })
    }

    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        wait: Duration,
    ) -> Result<T, String> {
        let url = format!("{}{path}", self.base);
        let (status, bytes) = self
            .client
            .call(method, &url, Some(&self.token), body.as_deref(), wait, MAX_ANSWER)
            .map_err(|e| match e {
                HttpError::Transport(t) => format!("cannot reach the approval service: {t}"),
                other => other.to_string(),
            })?;
        if !(200..300).contains(&status) {
            let hint = match status {
                401 => "\nthe service did not accept your identity; log in again with `lpexec login`",
                403 => "",
                404 => "\nno such request (check the id with `lpexec requests`)",
                _ => "",
            };
            return Err(format!("the approval service refused: {}{hint}", error_text(status, &bytes)));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("the approval service answered something unexpected: {e}"))
    }

    fn get(&self, id: &str, wait: u64) -> Result<RequestView, String> {
        let path =
            if wait > 0 { format!("/v1/requests/{id}?wait={wait}") } else { format!("/v1/requests/{id}") };
        self.call("GET", &path, None, Duration::from_secs(wait))
    }
}

/// The caller's ID token for the service: the CI token, else a cached login (renewed if due).
fn service_token() -> Result<Option<Presented>, String> {
    let mut probe = Request {
        version: VERSION,
        mode: Mode::List,
        argv: Vec::new(),
        user: None,
        role: None,
        reason: None,
        id_tokens: Vec::new(),
        approval_token: None,
    };
    super::identity::attach_tokens(&mut probe)?;
    Ok(probe.id_tokens.into_iter().next())
}

fn checked_id(id: &str) -> Result<&str, String> {
    if crate::approval::token::valid_id(id) {
        Ok(id)
    } else {
        Err(format!(
            "{:?} is not a request id (ids look like req_… and come from `lpexec requests`)",
            printable(id, 80)
        ))
    }
}

fn ago(t: i64) -> String {
    duration::human(Duration::from_secs(u64::try_from(now_unix() - t).unwrap_or(0)))
}

fn command_line(r: &ApprovalRequest) -> String {
    let s = &r.subject;
    let args = s.argv.get(1..).unwrap_or_default();
    let mut line = printable(&s.command, 4096);
    if !args.is_empty() {
        line.push(' ');
        line.push_str(&printable(&quote::join(args), 8192));
    }
    line
}

fn who(iss_name: Option<&str>, email: Option<&str>, sub: &str) -> String {
    let id = printable(email.unwrap_or(sub), 120);
    match iss_name {
        Some(n) => format!("{n}:{id}"),
        None => id,
    }
}

/// Everything an approver must see before saying yes.
fn show(v: &RequestView) {
    let r = &v.request;
    let s = &r.subject;
    let now = now_unix();
    let state = match v.status {
        Status::Pending if v.expires > now => format!(
            "pending, expires in {}",
            duration::human(Duration::from_secs(u64::try_from(v.expires - now).unwrap_or(0)))
        ),
        other => other.as_str().to_string(),
    };
    println_safe!("request    {}", printable(&v.id, 64));
    println_safe!("status     {state}");
    println_safe!(
        "requester  {} (Unix user {} uid {}) on host {}, {} ago",
        who(None, v.requester_email.as_deref(), &v.requester.sub),
        printable(&s.user, 64),
        s.uid,
        printable(&s.host, 255),
        ago(v.created)
    );
    println_safe!("command    {}", command_line(r));
    if s.argv.first().is_some_and(|a0| !s.command.ends_with(&format!("/{a0}")) && *a0 != s.command) {
        println_safe!("argv[0]    {}", printable(&s.argv[0], 4096));
    }
    println_safe!("as user    {}", printable(&s.run_as, 64));
    println_safe!("role       {}", printable(&s.role, 128));
    println_safe!("in         {}", printable(&s.cwd, 4096));
    if let Some(reason) = &r.reason {
        println_safe!("reason     {}", printable(reason, 1024));
    }
    for q in &r.requirements {
        println_safe!("needs      {} [{}]", printable(&q.to_string(), 1024), printable(&q.rule, 256));
    }
    for a in &v.approvals {
        let c = a.comment.as_deref().map(|c| format!(": {}", printable(c, 1024))).unwrap_or_default();
        println_safe!("approved   by {}, {} ago{c}", who(None, a.email.as_deref(), &a.sub), ago(a.time));
    }
    for d in &v.denials {
        let c = d.comment.as_deref().map(|c| format!(": {}", printable(c, 1024))).unwrap_or_default();
        println_safe!("denied     by {}, {} ago{c}", who(None, d.email.as_deref(), &d.sub), ago(d.time));
    }
}

/// A live waiting line on a terminal: a spinner with the elapsed time.
struct Waiting(Option<indicatif::ProgressBar>);

impl Waiting {
    fn start(id: &str, interactive: bool) -> Waiting {
        if !interactive || !term::is_tty(fd::stdio(2)) {
            return Waiting(None);
        }
        let pb = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} waiting for approval of {msg} ({elapsed}; Ctrl-C withdraws)",
        ) {
            pb.set_style(style);
        }
        pb.set_message(id.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        Waiting(Some(pb))
    }

    fn note(&self, text: &str) {
        match &self.0 {
            Some(pb) => pb.println(format!("lpexec: {text}")),
            None => eprintln_safe!("lpexec: {text}"),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

/// The helper says this run needs approval: submit it, wait, and return the approval token
/// (or the exit status to end with).
pub fn obtain(need: &ApprovalNeeded, presented: &[Presented], non_interactive: bool) -> Result<String, i32> {
    let r = &need.request;
    let line = command_line(r);
    let Some(mine) = presented.first() else {
        let issuer = r.requirements.iter().flat_map(|q| q.approvers.iter()).next().map(|a| a.issuer.clone());
        eprintln_safe!(
            "lpexec: {line} needs approval, and an approval request must come from an OIDC identity; you have none\nlog in with: lpexec login{}",
            issuer.map(|i| format!(" {}", printable(&i, 64))).unwrap_or_default()
        );
        return Err(125);
    };
    let svc = Service::new(&need.url, mine.token.clone()).map_err(|e| super::fail(&e))?;
    let body = serde_json::to_vec(&Submit { request: r.clone() }).unwrap_or_default();
    let view: RequestView =
        svc.call("POST", "/v1/requests", Some(body), Duration::ZERO).map_err(|e| super::fail(&e))?;
    let id = view.id.clone();
    let who_can: Vec<String> = r.requirements.iter().map(ToString::to_string).collect();
    eprintln_safe!(
        "lpexec: approval required to run {line} as {} (role {}): request {id} sent to {}\napprovers: {}\nthey can approve it with: lpexec approve {id}",
        printable(&r.subject.run_as, 64),
        printable(&r.subject.role, 128),
        printable(&need.url, 200),
        printable(&who_can.join("; "), 2000),
    );
    let interactive = !non_interactive && term::is_tty(fd::stdio(0));
    let deadline = Instant::now() + Duration::from_secs(need.wait_timeout);
    interrupt::catch();
    let result = wait(&svc, &id, deadline, interactive, need.wait_timeout);
    interrupt::release();
    result
}

fn wait(svc: &Service, id: &str, deadline: Instant, interactive: bool, timeout: u64) -> Result<String, i32> {
    let spinner = Waiting::start(id, interactive);
    let mut errors = 0;
    let mut seen_approvals = 0;
    loop {
        if interrupt::interrupted() {
            drop(spinner);
            let _ = svc.call::<RequestView>("DELETE", &format!("/v1/requests/{id}"), None, Duration::ZERO);
            eprintln_safe!("lpexec: interrupted; request {id} withdrawn, nothing was run");
            return Err(130);
        }
        let left = deadline.saturating_duration_since(Instant::now()).as_secs();
        if left == 0 {
            drop(spinner);
            let _ = svc.call::<RequestView>("DELETE", &format!("/v1/requests/{id}"), None, Duration::ZERO);
            eprintln_safe!(
                "lpexec: request {id} was not approved within {} ([approval] wait_timeout); it is withdrawn and nothing was run\nask an approver to act sooner, or run again later",
                duration::human(Duration::from_secs(timeout))
            );
            return Err(125);
        }
        let v = match svc.get(id, POLL.min(left)) {
            Ok(v) => v,
            Err(e) if errors < 5 => {
                // The service may be restarting: keep waiting a little, say so once.
                errors += 1;
                if errors == 1 {
                    spinner.note(&format!("{e}; retrying"));
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            Err(e) => {
                drop(spinner);
                eprintln_safe!("lpexec: {e}\nrequest {id} may still be pending; nothing was run");
                return Err(125);
            }
        };
        errors = 0;
        if v.approvals.len() > seen_approvals {
            for a in &v.approvals[seen_approvals..] {
                spinner.note(&format!("approved by {}", who(None, a.email.as_deref(), &a.sub)));
            }
            seen_approvals = v.approvals.len();
        }
        match v.status {
            Status::Pending => continue,
            Status::Approved => match v.token {
                Some(t) => return Ok(t),
                None => {
                    drop(spinner);
                    eprintln_safe!("lpexec: request {id} is approved but the service gave no token");
                    return Err(125);
                }
            },
            Status::Denied => {
                drop(spinner);
                let by = v
                    .denials
                    .first()
                    .map(|d| {
                        let c = d
                            .comment
                            .as_deref()
                            .map(|c| format!(": {}", printable(c, 1024)))
                            .unwrap_or_default();
                        format!(" by {}{c}", who(None, d.email.as_deref(), &d.sub))
                    })
                    .unwrap_or_default();
                eprintln_safe!("lpexec: request {id} was denied{by}; nothing was run");
                return Err(125);
            }
            Status::Expired => {
                drop(spinner);
                eprintln_safe!("lpexec: request {id} expired before enough approvals; nothing was run");
                return Err(125);
            }
            Status::Withdrawn => {
                drop(spinner);
                eprintln_safe!("lpexec: request {id} was withdrawn; nothing was run");
                return Err(125);
            }
        }
    }
}

/// The service and the caller's token, for the approver verbs.
fn approver_service() -> Result<Service, String> {
    let cfg = super::identity::config()?;
    let Some(a) = &cfg.approval else {
        return Err(format!("no approval service is configured ([approval] url in {})", cfg.path.display()));
    };
    let Some(p) = service_token()? else {
        return Err("the approval service needs your OIDC identity; log in with: lpexec login".into());
    };
    Service::new(&a.url, p.token)
}

/// `lpexec requests`: pending requests the caller may approve.
pub fn requests() -> i32 {
    let svc = match approver_service() {
        Ok(s) => s,
        Err(e) => return super::fail(&e),
    };
    let list: RequestList = match svc.call("GET", "/v1/requests", None, Duration::ZERO) {
        Ok(l) => l,
        Err(e) => return super::fail(&e),
    };
    if list.requests.is_empty() {
        eprintln_safe!("lpexec: no pending requests you may approve");
        return 0;
    }
    println_safe!(
        "{:<26} {:>6}  {:<24} {:<12} {:<12} {:<8} {:<40} REASON",
        "ID",
        "AGE",
        "REQUESTER",
        "HOST",
        "ROLE",
        "TARGET",
        "COMMAND"
    );
    for v in &list.requests {
        let s = &v.request.subject;
        let clip = |t: String, n: usize| {
            if t.chars().count() > n { t.chars().take(n - 1).collect::<String>() + "…" } else { t }
        };
        println_safe!(
            "{:<26} {:>6}  {:<24} {:<12} {:<12} {:<8} {:<40} {}",
            printable(&v.id, 64),
            ago(v.created),
            clip(
                format!(
                    "{} ({})",
                    who(None, v.requester_email.as_deref(), &v.requester.sub),
                    printable(&s.user, 32)
                ),
                24
            ),
            clip(printable(&s.host, 64), 12),
            clip(printable(&s.role, 64), 12),
            clip(printable(&s.run_as, 32), 8),
            clip(command_line(&v.request), 40),
            v.request.reason.as_deref().map(|r| clip(printable(r, 200), 60)).unwrap_or_default()
        );
    }
    0
}

fn comment_ok(comment: Option<&String>) -> Result<(), String> {
    if comment.is_some_and(|c| c.len() > crate::approval::MAX_COMMENT) {
        return Err(format!("--comment is longer than {} bytes", crate::approval::MAX_COMMENT));
    }
    Ok(())
}

/// Asks "approve? [y/N]" on the terminal.
fn confirm(question: &str) -> bool {
    crate::common::out::err(&format!("{question} [y/N] "));
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

/// `lpexec approve ID [--comment TEXT] [-y]` and `lpexec deny ID [--comment TEXT]`.
pub fn act(id: &str, approve: bool, comment: Option<String>, yes: bool) -> i32 {
    let verb = if approve { "approve" } else { "deny" };
    let go = || -> Result<RequestView, String> {
        let id = checked_id(id)?;
        comment_ok(comment.as_ref())?;
        let svc = approver_service()?;
        let v = svc.get(id, 0)?;
        show(&v);
        if v.status != Status::Pending {
            return Err(format!("request {id} is {}; there is nothing to {verb}", v.status.as_str()));
        }
        if approve && !yes {
            if !term::is_tty(fd::stdio(0)) {
                return Err(
                    "approving needs a confirmation on a terminal; pass -y to approve without one".into()
                );
            }
            if !confirm(&format!("approve running this as {}?", printable(&v.request.subject.run_as, 64))) {
                return Err("not approved".into());
            }
        }
        let body = serde_json::to_vec(&Act { comment: comment.clone() }).unwrap_or_default();
        svc.call("POST", &format!("/v1/requests/{id}/{verb}"), Some(body), Duration::ZERO)
    };
    match go() {
        Ok(v) => {
            match (approve, v.status) {
                (true, Status::Approved) => eprintln_safe!(
                    "lpexec: approved {}: it has every approval it needs, and the requester's command can run now",
                    v.id
                ),
                (true, _) => eprintln_safe!(
                    "lpexec: approved {} ({} approval{} so far; more are needed)",
                    v.id,
                    v.approvals.len(),
                    if v.approvals.len() == 1 { "" } else { "s" }
                ),
                (false, _) => eprintln_safe!("lpexec: denied {}", v.id),
            }
            0
        }
        Err(e) => super::fail(&e),
    }
}
