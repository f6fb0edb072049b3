//! Approvals (SPEC §7): the types the helper, the front end and `lpexec-approvald` share.
//!
//! The flow, and which side owns which type:
//! 1. The helper decides "approval needed" and answers the front end with an
//!    [`ApprovalRequest`]: the exact thing to be run ([`Subject`]), the approval requirements
//!    of every matching approve rule ([`Requirement`]) and the token lifetime.
//! 2. The front end submits it to the service ([`api::Submit`]) with the caller's ID token.
//!    The service fills in [`Subject::requester`] from the token it verified — never from the
//!    body — and stores the request.
//! 3. Approvers list and approve it; once every requirement has enough distinct approvers the
//!    service signs one approval token ([`token`]) binding the subject and the approvals.
//! 4. The helper verifies the token offline against `trusted_keys`, checks that every bound
//!    field equals the request being run, and re-checks the approvers against *its own*
//!    policy. The requirements the service saw are only a hint for listing and counting: a
//!    requester who edits them gains nothing.

pub mod api;
pub mod token;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::common::identity::OidcIdentity;
use crate::common::policy::Member;

/// Longest approval token the helper or the front end accepts.
pub const MAX_TOKEN: usize = 64 * 1024;
/// Longest `--comment` / `--reason`.
pub const MAX_COMMENT: usize = 1024;

/// An OIDC principal: the `iss` URL (not the configured issuer name) and the subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    pub iss: String,
    pub sub: String,
}

/// Exactly what will run: every field is bound into the approval token and compared by the
/// helper with the run that presents it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The host's name (the helper's `gethostname`).
    pub host: String,
    /// The Unix caller.
    pub uid: u32,
    pub user: String,
    /// The requester's OIDC identity, as the approval service verified it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Principal>,
    pub role: String,
    /// The target user, by name.
    pub run_as: String,
    /// The canonical path of the command.
    pub command: String,
    /// The full argv, `argv[0]` as typed.
    pub argv: Vec<String>,
    pub cwd: String,
}

impl Subject {
    /// The first bound field where `self` (from a token) and `run` (being run) differ, by its
    /// claim name. The requester is compared separately (the run may hold several identities).
    pub fn first_difference(&self, run: &Subject) -> Option<&'static str> {
        [
            ("host", self.host == run.host),
            ("uid", self.uid == run.uid),
            ("user", self.user == run.user),
            ("role", self.role == run.role),
            ("run_as", self.run_as == run.run_as),
            ("command", self.command == run.command),
            ("argv", self.argv == run.argv),
            ("cwd", self.cwd == run.cwd),
        ]
        .into_iter()
        .find_map(|(name, same)| (!same).then_some(name))
    }
}

/// Who may approve, in policy member syntax: the OIDC part of a `[[role.rule]] approvers`
/// entry. `issuer` is the configured issuer *name*; the service's `[[issuer]]` names must be
/// the same as the hosts' for listing to find the right approvers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

impl Approver {
    pub fn from_member(m: &Member) -> Option<Approver> {
        Some(Approver {
            issuer: m.issuer.clone()?,
            sub: m.sub.clone(),
            email: m.email.clone(),
            groups: m.groups.clone(),
            claims: m.claims.clone(),
        })
    }

    /// Same rule as a policy member: issuer, sub, email, every group and every claim.
    pub fn matches(&self, o: &OidcIdentity) -> bool {
        self.issuer == o.issuer
            && self.sub.as_ref().is_none_or(|s| *s == o.sub)
            && self.email.as_ref().is_none_or(|e| o.email.as_ref() == Some(e))
            && self.groups.iter().all(|g| o.groups.contains(g))
            && self
                .claims
                .iter()
                .all(|(k, v)| matches!(o.claims.get(k), Some(serde_json::Value::String(s)) if s == v))
    }
}

impl std::fmt::Display for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.issuer)?;
        if let Some(s) = &self.sub {
            write!(f, " sub {s}")?;
        }
        if let Some(e) = &self.email {
            write!(f, " {e}")?;
        }
        if !self.groups.is_empty() {
            write!(f, " groups {}", self.groups.join("+"))?;
        }
        for (k, v) in &self.claims {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// One matching approve rule's requirement: at least `min_approvals` distinct approvers, each
/// matching one of `approvers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// Where the rule is (`policy.toml:31`), for people.
    pub rule: String,
    pub approvers: Vec<Approver>,
    pub min_approvals: u32,
}

impl Requirement {
    /// Whether `approvals` (already distinct, none by the requester) satisfy this requirement;
    /// `identity` maps an approval to the identity the approver matching is done on.
    pub fn satisfied_by<'a>(&self, approvals: impl Iterator<Item = &'a OidcIdentity>) -> bool {
        let n = approvals.filter(|o| self.approvers.iter().any(|a| a.matches(o))).count();
        n >= self.min_approvals.max(1) as usize
    }
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who: Vec<String> = self.approvers.iter().map(ToString::to_string).collect();
        let n = self.min_approvals;
        write!(f, "{} ({n} approval{})", who.join(" or "), if n == 1 { "" } else { "s" })
    }
}

/// What the helper hands the front end when a run needs approval, and what the front end
/// submits to the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    pub subject: Subject,
    /// Every matching approve rule's requirement; all must be met.
    pub requirements: Vec<Requirement>,
    /// Lifetime of the approval token once issued, in seconds (the smallest rule `ttl`).
    pub ttl: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ApprovalRequest {
    /// Bounds and sanity checks, for the service's input and the front end's.
    pub fn check(&self) -> Result<(), String> {
        let s = &self.subject;
        let short = |what: &str, v: &str, max: usize| -> Result<(), String> {
            if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
                return Err(format!("{what} must be 1 to {max} printable characters"));
            }
            Ok(())
        };
        short("host", &s.host, 255)?;
        short("user", &s.user, 64)?;
        short("role", &s.role, 128)?;
        short("run_as", &s.run_as, 64)?;
        short("command", &s.command, 4096)?;
        short("cwd", &s.cwd, 4096)?;
        if s.argv.is_empty() || s.argv.len() > crate::helper::request::MAX_ARGS {
            return Err("argv must hold 1 to 8192 arguments".into());
        }
        if s.argv.iter().map(String::len).sum::<usize>() > 256 * 1024 {
            return Err("argv is longer than 256 KiB".into());
        }
        if s.argv.iter().any(|a| a.contains('\0')) {
            return Err("an argument contains a NUL byte".into());
        }
        if self.requirements.is_empty() || self.requirements.len() > 64 {
            return Err("requirements must hold 1 to 64 entries".into());
        }
        for r in &self.requirements {
            if r.approvers.is_empty()
                || r.approvers.len() > 64
                || r.min_approvals == 0
                || r.min_approvals > 64
            {
                return Err("each requirement needs 1 to 64 approvers and min_approvals from 1 to 64".into());
            }
        }
        if self.ttl == 0 || self.ttl > 366 * 86400 {
            return Err("ttl must be between 1 second and a year".into());
        }
        if self.reason.as_ref().is_some_and(|r| r.len() > MAX_COMMENT) {
            return Err(format!("reason is longer than {MAX_COMMENT} bytes"));
        }
        Ok(())
    }
}

/// The helper's answer on descriptor 3 when a run needs approval: what to submit, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalNeeded {
    /// `[approval] url` of the helper's configuration.
    pub url: String,
    /// `[approval] wait_timeout`, in seconds.
    pub wait_timeout: u64,
    pub request: ApprovalRequest,
}

/// One approval, as bound into the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub iss: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Seconds since the epoch.
    pub time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Approval {
    /// The approver as an identity of the configured issuer `issuer` (name), for matching.
    pub fn identity(&self, issuer: &str) -> OidcIdentity {
        OidcIdentity {
            issuer: issuer.to_string(),
            iss: self.iss.clone(),
            sub: self.sub.clone(),
            email: self.email.clone(),
            groups: self.groups.clone(),
            claims: BTreeMap::new(),
        }
    }

    /// `corp:bob@example.com` style, for logs and messages.
    pub fn display(&self, issuer: &str) -> String {
        format!("{issuer}:{}", self.email.as_deref().unwrap_or(&self.sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(email: &str, groups: &[&str]) -> OidcIdentity {
        OidcIdentity {
            issuer: "corp".into(),
            iss: "https://id".into(),
            sub: email.into(),
            email: Some(email.into()),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            claims: BTreeMap::new(),
        }
    }

    /// `min` approvals from members of `groups` at issuer corp.
    fn requirement(groups: &[&str], min: u32) -> Requirement {
        Requirement {
            rule: "p:1".into(),
            approvers: vec![Approver {
                issuer: "corp".into(),
                sub: None,
                email: None,
                groups: groups.iter().map(|g| g.to_string()).collect(),
                claims: BTreeMap::new(),
            }],
            min_approvals: min,
        }
    }

    #[test]
    fn requirement_counts_only_matching_approvers() {
        let r = requirement(&["rm"], 2);
        let a = [who("a", &["rm"]), who("b", &["dev"]), who("c", &["rm", "x"])];
        assert!(!r.satisfied_by(a[..2].iter()));
        assert!(r.satisfied_by(a.iter()));
        assert_eq!(r.to_string(), "corp groups rm (2 approvals)");
    }

    #[test]
    fn zero_min_approvals_still_needs_one() {
        let r = requirement(&[], 0);
        assert!(!r.satisfied_by(std::iter::empty()));
    }

    #[test]
    fn subject_names_the_first_difference() {
        let s = Subject {
            host: "h".into(),
            uid: 1000,
            user: "alice".into(),
            requester: None,
            role: "r".into(),
            run_as: "root".into(),
            command: "/usr/bin/npm".into(),
            argv: vec!["npm".into(), "publish".into()],
            cwd: "/srv".into(),
        };
        assert_eq!(s.first_difference(&s.clone()), None);
        let mut t = s.clone();
        t.argv.push("--force".into());
        assert_eq!(s.first_difference(&t), Some("argv"));
        let mut t = s.clone();
        t.cwd = "/tmp".into();
        assert_eq!(s.first_difference(&t), Some("cwd"));
    }
}
