//! `lpexec explain` and `lpexec list`: the helper's own decision, printed instead of acted on.
//! They go through the helper so that what they show is exactly what a run would do, with the
//! identity the kernel and the verified tokens give, not what the front end believes.

use std::path::Path;

use super::{Exit, say};
use crate::common::config::Config;
use crate::common::identity::Identity;
use crate::common::policy::Policy;
use crate::common::quote;
use crate::policy::{self, Decision, Verdict};

/// Exit status of `explain`: 0 allowed, 1 denied, 2 approval needed.
pub fn explain(d: &Decision<'_>, command: &Path, args: &[String], cfg: &Config) -> Exit {
    let _ = cfg;
    let cmdline = if args.is_empty() {
        command.display().to_string()
    } else {
        format!("{} {}", command.display(), quote::join(args))
    };
    say(&format!("decision:  {}", d.verdict));
    if let Some(r) = d.rule {
        say(&format!("rule:      {} (role {}): {}", r.rule.origin, r.role.name, r.rule.describe()));
    }
    if let Some(reason) = &d.reason {
        say(&format!("reason:    {reason}"));
    }
    if let Some(m) = d.rule.and_then(|r| r.rule.message.as_deref()) {
        say(&format!("message:   {m}"));
    }
    if d.verdict == Verdict::Approve {
        say(&format!("approvers: {}", policy::describe_approvers(&d.approvals)));
        for a in d.approvals.iter().skip(1) {
            say(&format!("also:      {} (role {})", a.rule.origin, a.role.name));
        }
    }
    say(&format!("command:   {cmdline}"));
    if let Some(t) = &d.target {
        say(&format!("run as:    {} (uid {})", t.name, t.uid));
    }
    if let Some(role) = d.role() {
        say(&format!("recorded:  {}", if role.record { "yes" } else { "no" }));
    }
    Exit::Code(match d.verdict {
        Verdict::Allow if d.is_allowed() => 0,
        Verdict::Approve => 2,
        _ => 1,
    })
}

/// Lists the roles the caller is a member of and their rules.
pub fn list(pol: &Policy, id: &Identity, only: Option<&str>) -> Exit {
    let roles: Vec<_> =
        pol.roles.iter().filter(|r| policy::is_member(r, id) && only.is_none_or(|o| o == r.name)).collect();
    if roles.is_empty() {
        match only {
            Some(r) => {
                crate::eprintln_safe!("lpexec: {} is not a member of role {r:?}", id.caller.name)
            }
            None => crate::eprintln_safe!(
                "lpexec: {} is not a member of any role, so may not run anything through lpexec",
                id.caller.name
            ),
        }
        return Exit::Code(1);
    }
    let ident = if id.oidc.is_empty() { String::new() } else { format!(", {}", id.display_oidc()) };
    say(&format!("{} (uid {}{ident}) may use these roles:", id.caller.name, id.caller.uid));
    for r in roles {
        say("");
        match &r.description {
            Some(d) => say(&format!("role {} - {d}", r.name)),
            None => say(&format!("role {}", r.name)),
        }
        say(&format!("  run as:   {}", r.run_as.join(", ")));
        if !r.env_keep.is_empty() || !r.env_set.is_empty() {
            let set: Vec<&str> = r.env_set.iter().map(|(k, _)| k.as_str()).collect();
            say(&format!("  env:      keeps [{}], sets [{}]", r.env_keep.join(", "), set.join(", ")));
        }
        say(&format!("  recorded: {}", if r.record { "yes" } else { "no" }));
        if r.rules.is_empty() {
            say("  (no rules)");
        }
        for rule in &r.rules {
            let mut line = format!(
                "  {:<8} {}",
                rule.action.to_string(),
                rule.describe().split_once(' ').map_or("", |x| x.1)
            );
            if let Some(a) = &rule.approval {
                let who: Vec<String> = a.approvers.iter().map(ToString::to_string).collect();
                line.push_str(&format!("  [{} approval(s) from {}]", a.min_approvals, who.join(" or ")));
            }
            line.push_str(&format!("  ({})", rule.origin));
            say(&line);
        }
    }
    Exit::Code(0)
}
