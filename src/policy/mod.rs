//! The decision: identity + request → verdict + the rule that made it (SPEC §4).
//!
//! Everything here is a pure function of its inputs. The only view of the system is the
//! [`World`] trait (canonical paths, digests, account lookups), so unit tests and
//! `lpexec check --test` drive exactly the code the helper runs.
//!
//! Semantics, over the rules of every role the caller is a member of (only `--role`'s, if
//! given) whose `run_as` allows the target: any matching `deny` → denied; else any matching
//! `approve` → approval needed (every such rule's requirement must be met); else any matching
//! `allow` → allowed; else denied. A rule that cannot be evaluated (a pattern that fails to
//! compile) denies: an evaluation error must never turn into "no deny rule matched".

pub mod cases;
pub mod needs;
pub mod world;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::common::identity::{Identity, OidcIdentity};
use crate::common::policy::{Action, ArgsSpec, CommandSpec, Member, Policy, Role, Rule};
use crate::common::quote;

pub use needs::identity_required;
pub use world::{SystemWorld, World};

/// A resolved target account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub uid: u32,
    pub name: String,
}

/// What to decide about.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Canonical path of the requested command (see [`resolve_command`]).
    pub command: &'a Path,
    pub args: &'a [String],
    /// Canonical working directory.
    pub cwd: &'a Path,
    /// `-u USER`, already resolved; `None` means each role's default.
    pub target: Option<&'a Target>,
    /// `--role NAME`.
    pub role: Option<&'a str>,
}

/// The verdict. The discriminants are far apart in Hamming distance and nothing treats "not
/// deny" as allow: callers compare against [`Verdict::Allow`] explicitly (CVE-2023-42465, where a
/// flipped bit turned a failure into success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Verdict {
    Allow = 0x5AC3_96E1,
    Approve = 0x5AC3_691E,
    Deny = 0xA53C_691E,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
        })
    }
}

/// A rule together with the role it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct RuleRef<'p> {
    pub role: &'p Role,
    pub rule: &'p Rule,
}

/// Why a request was denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// The caller is a member of no role.
    NoRole,
    /// `--role` names a role the caller is not a member of (or that does not exist).
    NotInRole(String),
    /// The target user does not exist.
    UnknownTarget(String),
    /// None of the caller's roles may run commands as this target.
    TargetNotAllowed(String),
    /// No rule matched.
    NoMatchingRule,
    /// A deny rule matched.
    DenyRule,
    /// A rule could not be evaluated.
    RuleError(String),
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::NoRole => f.write_str("you are not a member of any role"),
            DenyReason::NotInRole(r) => write!(f, "you are not a member of role {r:?}"),
            DenyReason::UnknownTarget(t) => write!(f, "unknown target user {t:?}"),
            DenyReason::TargetNotAllowed(t) => {
                write!(f, "none of your roles may run commands as {t:?}")
            }
            DenyReason::NoMatchingRule => f.write_str("no rule allows this command"),
            DenyReason::DenyRule => f.write_str("a deny rule matches this command"),
            DenyReason::RuleError(e) => write!(f, "a rule could not be evaluated: {e}"),
        }
    }
}

/// The outcome, with the rule that made it.
#[derive(Debug, Clone)]
pub struct Decision<'p> {
    pub verdict: Verdict,
    pub reason: Option<DenyReason>,
    /// The target user the decision is about (`None` only if it could not be resolved).
    pub target: Option<Target>,
    /// The rule that made the decision (the first matching rule of the deciding action).
    pub rule: Option<RuleRef<'p>>,
    /// For [`Verdict::Approve`]: every matching approve rule; all must be satisfied.
    pub approvals: Vec<RuleRef<'p>>,
}

impl<'p> Decision<'p> {
    fn deny(reason: DenyReason, target: Option<Target>, rule: Option<RuleRef<'p>>) -> Decision<'p> {
        Decision { verdict: Verdict::Deny, reason: Some(reason), target, rule, approvals: Vec::new() }
    }

    /// The role whose settings (environment, masking, recording) apply.
    pub fn role(&self) -> Option<&'p Role> {
        self.rule.map(|r| r.role)
    }

    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow && self.reason.is_none() && self.rule.is_some()
    }
}

/// Whether a member entry matches the identity: every condition it names must hold.
pub fn member_matches(m: &Member, id: &Identity) -> bool {
    let mut conditions = 0;
    if let Some(u) = &m.unix_user {
        conditions += 1;
        if !id.caller.is_user(u) {
            return false;
        }
    }
    if let Some(g) = &m.unix_group {
        conditions += 1;
        if !id.caller.in_group(g) {
            return false;
        }
    }
    if let Some(issuer) = &m.issuer {
        conditions += 1;
        match id.oidc_for(issuer) {
            Some(o) if oidc_matches(m, o) => {}
            _ => return false,
        }
    }
    conditions > 0
}

/// Whether a verified OIDC identity satisfies the OIDC part of an entry (issuer, sub, email,
/// groups — all of them — and claims, compared exactly as strings). Used for approvers too.
pub fn oidc_matches(m: &Member, o: &OidcIdentity) -> bool {
    m.issuer.as_deref() == Some(o.issuer.as_str())
        && m.sub.as_ref().is_none_or(|s| *s == o.sub)
        && m.email.as_ref().is_none_or(|e| o.email.as_ref() == Some(e))
        && m.groups.iter().all(|g| o.groups.contains(g))
        && m.claims
            .iter()
            .all(|(k, v)| matches!(o.claims.get(k), Some(serde_json::Value::String(s)) if s == v))
}

pub fn is_member(role: &Role, id: &Identity) -> bool {
    role.members.iter().any(|m| member_matches(m, id))
}

/// Resolves the requested command to a canonical path: names without `/` through
/// `secure_path` (never the caller's `PATH`, never the current directory), others relative to
/// `cwd`. `None` means not found.
pub fn resolve_command(world: &dyn World, cmd: &str, cwd: &Path) -> Option<PathBuf> {
    if cmd.is_empty() {
        return None;
    }
    let found = if cmd.contains('/') { cwd.join(cmd) } else { world.resolve_name(cmd)? };
    world.canonicalize(&found)
}

/// Per-decision memo: whether each of the policy's distinct commands resolves to the
/// requested one (computed at most once each), the binary's digest, the joined arguments.
struct Memo<'w> {
    world: &'w dyn World,
    commands: Vec<Option<bool>>,
    cwds: HashMap<PathBuf, Option<PathBuf>>,
    digest: Option<Option<[u8; 32]>>,
    joined: Option<String>,
}

impl Memo<'_> {
    fn command_matches(&mut self, rule: &Rule, requested: &Path) -> bool {
        if let Some(Some(known)) = self.commands.get(rule.command_id) {
            return *known;
        }
        let m = match &rule.command {
            CommandSpec::Any => true,
            CommandSpec::Path(p) => {
                p.as_path() == requested || self.world.canonicalize(p).as_deref() == Some(requested)
            }
            CommandSpec::Name(n) => {
                self.world.resolve_name(n).and_then(|p| self.world.canonicalize(&p)).as_deref()
                    == Some(requested)
            }
        };
        if let Some(slot) = self.commands.get_mut(rule.command_id) {
            *slot = Some(m);
        }
        m
    }

    fn canonical_cwd(&mut self, p: &Path) -> Option<PathBuf> {
        if let Some(v) = self.cwds.get(p) {
            return v.clone();
        }
        let v = self.world.canonicalize(p);
        self.cwds.insert(p.to_path_buf(), v.clone());
        v
    }
}

/// Whether `rule` matches the request. `Err` when the rule cannot be evaluated.
fn rule_matches(rule: &Rule, req: &Request<'_>, memo: &mut Memo<'_>) -> Result<bool, String> {
    if let ArgsSpec::Exact(a) = &rule.args {
        if a.as_slice() != req.args {
            return Ok(false);
        }
    }
    let command_ok = memo.command_matches(rule, req.command);
    if !command_ok {
        return Ok(false);
    }
    if let ArgsSpec::Regex(r) = &rule.args {
        let joined = memo.joined.get_or_insert_with(|| quote::join(req.args));
        if !r.may_match(joined) {
            return Ok(false);
        }
        let re = r.regex().map_err(|e| format!("{}: args_regex {:?}: {e}", rule.origin, r.source))?;
        if !re.is_match(joined) {
            return Ok(false);
        }
    }
    // Checked after the cheap conditions: resolving a directory costs a system call.
    if let Some(cwd) = &rule.cwd {
        if cwd.as_path() != req.cwd && memo.canonical_cwd(cwd).as_deref() != Some(req.cwd) {
            return Ok(false);
        }
    }
    if let Some(pin) = &rule.sha256 {
        let world = memo.world;
        let digest = *memo.digest.get_or_insert_with(|| world.sha256(req.command));
        if digest.as_ref() != Some(pin) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Decides a request (SPEC §4).
pub fn decide<'p>(policy: &'p Policy, id: &Identity, req: &Request<'_>, world: &dyn World) -> Decision<'p> {
    let mut memo = Memo {
        world,
        commands: vec![None; policy.commands.len()],
        cwds: HashMap::new(),
        digest: None,
        joined: None,
    };

    let mut roles: Vec<&Role> = policy.roles.iter().filter(|r| is_member(r, id)).collect();
    if let Some(name) = req.role {
        roles.retain(|r| r.name == name);
        if roles.is_empty() {
            return Decision::deny(DenyReason::NotInRole(name.to_string()), req.target.cloned(), None);
        }
    }
    if roles.is_empty() {
        return Decision::deny(DenyReason::NoRole, req.target.cloned(), None);
    }

    // The target: -u, else the default of the first of the caller's roles with a rule for this
    // command (so `lpexec cmd` does what the role written for `cmd` says), else of the first role.
    let target = match req.target {
        Some(t) => t.clone(),
        None => {
            let mut chosen = None;
            'roles: for role in &roles {
                for rule in &role.rules {
                    if matches!(rule_matches(rule, req, &mut memo), Ok(true) | Err(_)) {
                        chosen = Some(role.default_target());
                        break 'roles;
                    }
                }
            }
            let name = chosen.or_else(|| roles.first().map(|r| r.default_target())).unwrap_or("root");
            match world.lookup_user(name) {
                Some(t) => t,
                None => {
                    return Decision::deny(DenyReason::UnknownTarget(name.to_string()), None, None);
                }
            }
        }
    };

    roles.retain(|r| r.allows_target(&target.name, target.uid));
    if roles.is_empty() {
        let name = target.name.clone();
        return Decision::deny(DenyReason::TargetNotAllowed(name), Some(target), None);
    }

    let mut first_allow: Option<RuleRef<'p>> = None;
    let mut approvals: Vec<RuleRef<'p>> = Vec::new();
    for role in roles {
        for rule in &role.rules {
            let here = RuleRef { role, rule };
            match rule_matches(rule, req, &mut memo) {
                Err(e) => {
                    return Decision::deny(DenyReason::RuleError(e), Some(target), Some(here));
                }
                Ok(false) => {}
                Ok(true) => match rule.action {
                    Action::Deny => {
                        return Decision::deny(DenyReason::DenyRule, Some(target), Some(here));
                    }
                    Action::Approve => approvals.push(here),
                    Action::Allow => {
                        first_allow.get_or_insert(here);
                    }
                },
            }
        }
    }
    if let Some(first) = approvals.first().copied() {
        return Decision {
            verdict: Verdict::Approve,
            reason: None,
            target: Some(target),
            rule: Some(first),
            approvals,
        };
    }
    match first_allow {
        Some(rule) => Decision {
            verdict: Verdict::Allow,
            reason: None,
            target: Some(target),
            rule: Some(rule),
            approvals,
        },
        None => Decision::deny(DenyReason::NoMatchingRule, Some(target), None),
    }
}

/// Who could approve: a readable list for messages ("corp groups release-managers (1 approval)").
pub fn describe_approvers(approvals: &[RuleRef<'_>]) -> String {
    approvals
        .iter()
        .filter_map(|r| r.rule.approval.as_ref())
        .map(|a| {
            let who: Vec<String> = a.approvers.iter().map(ToString::to_string).collect();
            let n = a.min_approvals;
            format!("{} ({n} approval{})", who.join(" or "), if n == 1 { "" } else { "s" })
        })
        .collect::<Vec<_>>()
        .join("; and ")
}

#[cfg(test)]
mod tests;
