//! The helper's approval step (SPEC §7), for a run the policy says needs approval.
//!
//! Without a token: answer the front end with the canonical request to submit (and log it).
//! With a token: verify it offline, in this order, refusing at the first failure —
//! 1. signature by a `trusted_keys` key (strict Ed25519), `typ`, `exp`, `iat`;
//! 2. every bound field equal to the run being asked for (host, caller, role, target user,
//!    canonical command, full argv, cwd), and the requester one of the caller's verified
//!    OIDC identities;
//! 3. the approvals: none by the requester (any of the caller's identities), distinct
//!    people, and enough of them matching *this helper's* policy — every matching approve
//!    rule's `approvers` and `min_approvals`, whatever the service believed;
//! 4. single use: the token's id recorded in the state directory, exclusively (two runs
//!    racing with one token: one wins), under a name derived from the id by SHA-256 (never a
//!    name from input), kept until the token expires.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use sha2::Digest;

use crate::approval::{ApprovalNeeded, ApprovalRequest, Approver, Requirement, Subject, token};
use crate::common::config::Config;
use crate::common::identity::{Identity, OidcIdentity};
use crate::common::paths;
use crate::identity::{HelperResponse, now_unix};
use crate::policy::{Decision, RuleRef};
use crate::system::fs::TrustedDir;

/// Used approval tokens live here, one file per token id.
const USED_DIR: &str = "approvals-used";
/// Most used-token files looked at for pruning per run.
const PRUNE_SCAN: usize = 4096;

/// A verified, now used, approval.
pub struct Approved {
    pub id: String,
    /// `corp:bob@example.com` per approver.
    pub approvers: Vec<String>,
}

/// What is being run, as the token must bind it.
pub fn subject(identity: &Identity, d: &Decision<'_>, command: &Path, argv: &[String], cwd: &str) -> Subject {
    Subject {
        host: super::recording::host(),
        uid: identity.caller.uid,
        user: identity.caller.name.clone(),
        requester: None,
        role: d.role().map_or_else(String::new, |r| r.name.clone()),
        run_as: d.target.as_ref().map_or_else(String::new, |t| t.name.clone()),
        command: command.display().to_string(),
        argv: argv.to_vec(),
        cwd: cwd.to_string(),
    }
}

/// The requirement of one matching approve rule.
fn requirement(r: &RuleRef<'_>) -> Option<Requirement> {
    let a = r.rule.approval.as_ref()?;
    Some(Requirement {
        rule: r.rule.origin.to_string(),
        approvers: a.approvers.iter().filter_map(Approver::from_member).collect(),
        min_approvals: a.min_approvals,
    })
}

/// The request the front end submits: the subject, every matching rule's requirement, and the
/// shortest `ttl` among them.
pub fn request(subject: Subject, d: &Decision<'_>, reason: Option<&str>) -> ApprovalRequest {
    let ttl = d
        .approvals
        .iter()
        .filter_map(|r| r.rule.approval.as_ref())
        .map(|a| a.ttl.as_secs())
        .min()
        .unwrap_or(600)
        .max(1);
    ApprovalRequest {
        subject,
        requirements: d.approvals.iter().filter_map(requirement).collect(),
        ttl,
        reason: reason.map(str::to_string),
    }
}

/// Hands the front end what to submit. `false` when nobody was listening.
pub fn answer(cfg: &Config, request: ApprovalRequest, control: &OwnedFd) -> bool {
    let Some(a) = &cfg.approval else { return false };
    let resp = HelperResponse {
        identity_required: None,
        approval_required: Some(ApprovalNeeded {
            url: a.url.clone(),
            wait_timeout: a.wait_timeout.as_secs(),
            request,
        }),
    };
    serde_json::to_vec(&resp).ok().is_some_and(|b| crate::system::fd::write_all(control.as_fd(), &b).is_ok())
}

/// The configured issuer name whose URL is `iss`.
fn issuer_name<'c>(cfg: &'c Config, iss: &str) -> Option<&'c str> {
    cfg.issuers.iter().find(|i| i.url == iss).map(|i| i.name.as_str())
}

/// Checks `token` for the run described by `run` and decision `d`, then marks it used.
pub fn check(
    cfg: &Config,
    token: &str,
    identity: &Identity,
    run: &Subject,
    d: &Decision<'_>,
) -> Result<Approved, String> {
    let Some(acfg) = &cfg.approval else {
        return Err(
            "an approval token was presented but no approval service is configured ([approval])".into()
        );
    };
    let now = now_unix();
    let claims = token::verify(token, &acfg.trusted_keys, now).map_err(|e| e.to_string())?;
    let id = claims.jti.clone();
    let bound = &claims.subject;
    if let Some(field) = bound.first_difference(run) {
        return Err(format!(
            "approval {id} was given for a different request: its {field} does not match this run \
             (request approval for exactly what you run)"
        ));
    }
    let mine = |iss: &str, sub: &str| identity.oidc.iter().any(|o| o.iss == iss && o.sub == sub);
    if let Some(p) = &claims.subject.requester {
        if !mine(&p.iss, &p.sub) {
            return Err(format!(
                "approval {id} was requested by another identity than the one this run presents"
            ));
        }
    }

    // The approvers, as identities of this host's configured issuers.
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut approvers: Vec<OidcIdentity> = Vec::new();
    let mut shown = Vec::new();
    for a in &claims.approvals {
        let requester = claims.subject.requester.as_ref().is_some_and(|p| p.iss == a.iss && p.sub == a.sub);
        if requester || mine(&a.iss, &a.sub) {
            return Err(format!(
                "approval {id} includes an approval by the requester; nobody approves their own request"
            ));
        }
        if seen.contains(&(a.iss.as_str(), a.sub.as_str())) {
            continue; // the same person twice counts once
        }
        seen.push((&a.iss, &a.sub));
        if let Some(name) = issuer_name(cfg, &a.iss) {
            approvers.push(a.identity(name));
            shown.push(a.display(name));
        } else {
            shown.push(format!(
                "{}:{}",
                crate::identity::printable(&a.iss, 80),
                a.email.as_deref().unwrap_or(&a.sub)
            ));
        }
    }
    for r in &d.approvals {
        let Some(req) = requirement(r) else { continue };
        if !req.satisfied_by(approvers.iter()) {
            let got = approvers.iter().filter(|o| req.approvers.iter().any(|a| a.matches(o))).count();
            return Err(format!(
                "approval {id} does not satisfy the rule at {}: it needs {req}, and {got} of its approvers ({}) qualify",
                req.rule,
                if shown.is_empty() { "none".to_string() } else { shown.join(", ") }
            ));
        }
    }
    consume(&id, claims.exp, now)?;
    Ok(Approved { id, approvers: shown })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Records the token id as used; refuses if it already was. Then forgets ids whose tokens
/// have expired (they are refused on `exp` anyway).
fn consume(id: &str, exp: i64, now: i64) -> Result<(), String> {
    let dir = TrustedDir::open(&Path::new(paths::STATE_DIR).join(USED_DIR))?;
    let name = hex(&sha2::Sha256::digest(id.as_bytes()));
    if !dir.create_new(&name, format!("{exp}\n{id}\n").as_bytes(), 0o600)? {
        return Err(format!("approval {id} has already been used; an approval is good for one run"));
    }
    if let Ok(names) = dir.names(PRUNE_SCAN) {
        for n in names {
            let expired = dir
                .read(&n, 256)
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.lines().next().and_then(|l| l.parse::<i64>().ok()))
                .is_some_and(|e| e < now - token::LEEWAY);
            if expired {
                let _ = dir.remove(&n);
            }
        }
    }
    Ok(())
}
