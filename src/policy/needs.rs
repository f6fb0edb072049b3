//! Which OIDC identity a denied request lacks, so that the front end can start `lpexec login`
//! for exactly that issuer (SPEC §6: "a run that needs an identity the caller has not got
//! starts the device flow itself when interactive, else fails naming `lpexec login`").
//!
//! Pure, like the decision: a request "needs" issuer X when it was denied for want of a role
//! or a rule (not by a deny rule), and some role (only `--role`'s, if given) has a member
//! entry naming X that the caller would satisfy but for the missing identity (its Unix
//! conditions hold and the caller presented no token of X), may run as the target, and has
//! an allow or approve rule — and no deny rule — matching the command. Whether the identity
//! would carry the right groups or claims cannot be known before logging in; the real
//! decision is made again afterwards.

use super::{Decision, DenyReason, Memo, Request, World, rule_matches};
use crate::common::identity::Identity;
use crate::common::policy::{Action, Member, Policy};

/// The issuer (configured name) whose identity would let this denied request through.
pub fn identity_required<'p>(
    policy: &'p Policy,
    id: &Identity,
    req: &Request<'_>,
    decision: &Decision<'_>,
    world: &dyn World,
) -> Option<&'p str> {
    match &decision.reason {
        Some(
            DenyReason::NoRole
            | DenyReason::NotInRole(_)
            | DenyReason::NoMatchingRule
            | DenyReason::TargetNotAllowed(_),
        ) => {}
        _ => return None,
    }
    let mut memo = Memo {
        world,
        commands: vec![None; policy.commands.len()],
        cwds: std::collections::HashMap::new(),
        digest: None,
        joined: None,
    };
    for role in &policy.roles {
        if req.role.is_some_and(|r| r != role.name) {
            continue;
        }
        let Some(issuer) = role.members.iter().find_map(|m| lacks(m, id)) else {
            continue;
        };
        let target = match req.target {
            Some(t) => t.clone(),
            None => match world.lookup_user(role.default_target()) {
                Some(t) => t,
                None => continue,
            },
        };
        if !role.allows_target(&target.name, target.uid) {
            continue;
        }
        let mut helps = false;
        for rule in &role.rules {
            match (rule.action, rule_matches(rule, req, &mut memo)) {
                (_, Err(_)) | (Action::Deny, Ok(true)) => {
                    helps = false;
                    break;
                }
                (Action::Allow | Action::Approve, Ok(true)) => helps = true,
                _ => {}
            }
        }
        if helps {
            return Some(issuer);
        }
    }
    None
}

/// The issuer of `m` if the caller lacks only that identity to match it.
fn lacks<'m>(m: &'m Member, id: &Identity) -> Option<&'m str> {
    let issuer = m.issuer.as_deref()?;
    if id.oidc_for(issuer).is_some() {
        return None;
    }
    if m.unix_user.as_ref().is_some_and(|u| !id.caller.is_user(u)) {
        return None;
    }
    if m.unix_group.as_ref().is_some_and(|g| !id.caller.in_group(g)) {
        return None;
    }
    Some(issuer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::identity::{Caller, GroupRef, OidcIdentity};
    use crate::policy::{Target, decide};
    use std::path::{Path, PathBuf};

    struct W;
    impl World for W {
        fn resolve_name(&self, name: &str) -> Option<PathBuf> {
            ["id", "ls", "rm"].contains(&name).then(|| PathBuf::from(format!("/usr/bin/{name}")))
        }
        fn canonicalize(&self, p: &Path) -> Option<PathBuf> {
            Some(p.to_path_buf())
        }
        fn sha256(&self, _: &Path) -> Option<[u8; 32]> {
            None
        }
        fn lookup_user(&self, spec: &str) -> Option<Target> {
            (spec == "root").then(|| Target { uid: 0, name: "root".into() })
        }
    }

    const POLICY: &str = r#"
[[role]]
name = "sre"
members = [{ issuer = "corp", groups = ["sre"] }]
run_as = ["root"]
  [[role.rule]]
  action = "allow"
  command = "id"
  [[role.rule]]
  action = "deny"
  command = "rm"
  [[role.rule]]
  action = "allow"
  command = "*"
  args = ["-rf", "/"]

[[role]]
name = "ci"
members = [{ issuer = "github", claims = { repository = "acme/web" }, unix_user = "runner" }]
run_as = ["root"]
  [[role.rule]]
  action = "allow"
  command = "ls"
"#;

    fn policy() -> Policy {
        Policy::parse(&[(PathBuf::from("/etc/lpexec/policy.toml"), POLICY.to_string())], &["corp", "github"])
            .unwrap()
    }

    fn user(name: &str) -> Identity {
        Identity::unix_only(Caller {
            uid: 1000,
            name: name.into(),
            groups: vec![GroupRef { gid: 1000, name: None }],
        })
    }

    fn need<'p>(
        p: &'p Policy,
        id: &Identity,
        cmd: &str,
        args: &[&str],
        role: Option<&str>,
    ) -> Option<&'p str> {
        let command = PathBuf::from(format!("/usr/bin/{cmd}"));
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let req = Request { command: &command, args: &args, cwd: Path::new("/"), target: None, role };
        let d = decide(p, id, &req, &W);
        identity_required(p, id, &req, &d, &W)
    }

    #[test]
    fn a_command_only_an_oidc_member_may_run_needs_that_issuer() {
        let p = policy();
        assert_eq!(need(&p, &user("alice"), "id", &[], None), Some("corp"));
        assert_eq!(need(&p, &user("alice"), "id", &[], Some("sre")), Some("corp"));
        assert_eq!(need(&p, &user("alice"), "id", &[], Some("ci")), None);
    }

    #[test]
    fn nothing_is_needed_when_no_rule_would_allow_it() {
        let p = policy();
        assert_eq!(need(&p, &user("alice"), "ls", &[], None), None, "ls is for runner only");
        // A deny rule of that role matches: logging in would not help.
        assert_eq!(need(&p, &user("alice"), "rm", &["-rf", "/"], None), None);
    }

    #[test]
    fn unix_conditions_of_the_member_must_hold() {
        let p = policy();
        assert_eq!(need(&p, &user("runner"), "ls", &[], None), Some("github"));
    }

    #[test]
    fn a_caller_who_has_the_identity_is_simply_denied() {
        let p = policy();
        let mut id = user("alice");
        id.oidc.push(OidcIdentity {
            issuer: "corp".into(),
            iss: "https://id".into(),
            sub: "a".into(),
            email: None,
            groups: vec!["dev".into()],
            claims: Default::default(),
        });
        assert_eq!(need(&p, &id, "id", &[], None), None);
    }
}
