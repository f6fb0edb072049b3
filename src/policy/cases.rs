//! Policy tests: `lpexec check --test FILE` (SPEC §5).
//!
//! Each `[[case]]` names a caller, an optional OIDC identity and a command, and the verdict
//! the policy must give. Cases run through the same [`decide`](super::decide) as the helper,
//! against this machine's accounts and binaries; a command that is not installed here is
//! assumed to live in the first `secure_path` directory (and the output says so), so tests of a
//! production policy can run on an administrator's laptop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{Request, SystemWorld, Target, Verdict, World, decide, resolve_command};
use crate::common::diag::{Diags, Source};
use crate::common::identity::{Caller, GroupRef, Identity, OidcIdentity};
use crate::common::policy::{Action, Policy};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCases {
    #[serde(default)]
    case: Vec<Spanned<Case>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    user: String,
    groups: Option<Vec<String>>,
    identity: Option<CaseIdentity>,
    command: Vec<String>,
    run_as: Option<String>,
    role: Option<String>,
    cwd: Option<String>,
    expect: Action,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseIdentity {
    issuer: String,
    sub: String,
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    claims: BTreeMap<String, serde_json::Value>,
}

/// A world that answers from the system but lets tests name binaries and accounts that are
/// not installed here.
struct CaseWorld {
    sys: SystemWorld,
    assumed: std::cell::RefCell<Vec<String>>,
}

impl World for CaseWorld {
    fn resolve_name(&self, name: &str) -> Option<PathBuf> {
        self.sys.resolve_name(name).or_else(|| {
            let dir = self.sys.secure_path.first()?;
            let p = dir.join(name);
            self.assumed.borrow_mut().push(format!("{name} is not installed here; assumed {}", p.display()));
            Some(p)
        })
    }
    fn canonicalize(&self, path: &Path) -> Option<PathBuf> {
        self.sys.canonicalize(path).or_else(|| Some(path.to_path_buf()))
    }
    fn sha256(&self, path: &Path) -> Option<[u8; 32]> {
        self.sys.sha256(path)
    }
    fn lookup_user(&self, spec: &str) -> Option<Target> {
        self.sys.lookup_user(spec).or_else(|| match crate::common::names::parse_numeric_id(spec) {
            Some(Ok(uid)) => Some(Target { uid, name: spec.to_string() }),
            Some(Err(_)) => None,
            None => Some(Target { uid: u32::MAX - 1, name: spec.to_string() }),
        })
    }
}

/// One case's outcome.
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// `ok  name` or `FAILED  name: expected ..., got ... (rule file:line)`.
    pub line: String,
}

fn caller_for(case: &Case) -> Result<Caller, String> {
    let account = crate::system::user::lookup_target(&case.user).ok();
    let uid = account.as_ref().map_or(u32::MAX - 1, |a| a.uid);
    let groups = match &case.groups {
        Some(g) => g
            .iter()
            .enumerate()
            .map(|(i, n)| GroupRef { gid: u32::MAX - 2 - i as u32, name: Some(n.clone()) })
            .collect(),
        None => match &account {
            Some(_) => crate::system::user::groups_of_name(&case.user).map_err(|e| e.to_string())?,
            None => {
                return Err(format!(
                    "user {:?} does not exist on this machine: give `groups = [...]` in the case",
                    case.user
                ));
            }
        },
    };
    Ok(Caller { uid, name: account.map_or_else(|| case.user.clone(), |a| a.name), groups })
}

fn run_case(policy: &Policy, case: &Case, world: &CaseWorld) -> Result<(Verdict, String), String> {
    let caller = caller_for(case)?;
    let mut id = Identity::unix_only(caller);
    if let Some(i) = &case.identity {
        let groups_claim: Vec<serde_json::Value> =
            i.groups.iter().cloned().map(serde_json::Value::String).collect();
        let mut claims = i.claims.clone();
        claims.entry("groups".into()).or_insert(serde_json::Value::Array(groups_claim));
        id.oidc.push(OidcIdentity {
            issuer: i.issuer.clone(),
            iss: i.issuer.clone(),
            sub: i.sub.clone(),
            email: i.email.clone(),
            groups: i.groups.clone(),
            claims,
        });
    }
    let (cmd, args) = case.command.split_first().ok_or("command must not be empty")?;
    let cwd = PathBuf::from(case.cwd.as_deref().unwrap_or("/"));
    let path =
        resolve_command(world, cmd, &cwd).ok_or_else(|| format!("command {cmd:?} cannot be resolved"))?;
    let target = match &case.run_as {
        Some(t) => Some(world.lookup_user(t).ok_or_else(|| format!("unknown target user {t:?}"))?),
        None => None,
    };
    let req =
        Request { command: &path, args, cwd: &cwd, target: target.as_ref(), role: case.role.as_deref() };
    let d = decide(policy, &id, &req, world);
    let why = match (&d.rule, &d.reason) {
        (Some(r), _) => format!("rule {} in role {}", r.rule.origin, r.role.name),
        (None, Some(reason)) => reason.to_string(),
        (None, None) => String::new(),
    };
    Ok((d.verdict, why))
}

/// Runs every case in `text` against `policy`.
pub fn run(
    policy: &Policy,
    secure_path: &[PathBuf],
    path: &Path,
    text: &str,
) -> Result<Vec<CaseResult>, Diags> {
    let src = Source::new(path, text);
    let raw: RawCases = toml::from_str(text).map_err(|e| Diags(vec![src.toml_error(&e)]))?;
    if raw.case.is_empty() {
        return Err(Diags(vec![src.whole("no [[case]] entries")]));
    }
    let world =
        CaseWorld { sys: SystemWorld { secure_path: secure_path.to_vec() }, assumed: Default::default() };
    let mut out = Vec::new();
    for spanned in raw.case {
        let (line, _) = src.line_col(spanned.span().start);
        let case = spanned.into_inner();
        world.assumed.borrow_mut().clear();
        let expect = match case.expect {
            Action::Allow => Verdict::Allow,
            Action::Deny => Verdict::Deny,
            Action::Approve => Verdict::Approve,
        };
        let (passed, mut msg) = match run_case(policy, &case, &world) {
            Ok((got, _)) if got == expect => (true, format!("ok      {}", case.name)),
            Ok((got, why_got)) => (
                false,
                format!(
                    "FAILED  {} ({}:{line}): expected {expect}, got {got} ({why_got})",
                    case.name,
                    path.display()
                ),
            ),
            Err(e) => (false, format!("FAILED  {} ({}:{line}): {e}", case.name, path.display())),
        };
        for note in world.assumed.borrow().iter() {
            msg.push_str(&format!("\n        note: {note}"));
        }
        out.push(CaseResult { name: case.name, passed, line: msg });
    }
    Ok(out)
}
