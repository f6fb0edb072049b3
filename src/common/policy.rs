//! Roles and rules (`/etc/lpexec/policy.toml` and `policy.d/*.toml`, SPEC §4) as checked types.
//!
//! Parsing checks everything that can be checked without looking at the system: syntax,
//! unknown keys, regexes, issuers named by members, dangerous `env_keep` entries, duplicate
//! role names, rules without an action. Any problem makes the whole policy invalid, and the
//! helper then refuses every request (fail closed).
//!
//! `args_regex` patterns are fully parsed here but compiled on first use: a policy of 10,000
//! rules loads quickly, and only the rules that could match the requested command pay for
//! compilation.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use crate::common::diag::{Diag, Diags, Source};
use crate::common::{duration, names};

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
    Approve,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Approve => "approve",
        })
    }
}

/// Where a role or rule was written, for `explain`, logs and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One entry of `members` or `approvers`: every field given must hold (AND); a list of entries
/// matches if any entry does (OR). `groups` lists groups that must *all* be present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub unix_user: Option<String>,
    pub unix_group: Option<String>,
    pub issuer: Option<String>,
    pub sub: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
}

impl Member {
    fn has_oidc_condition(&self) -> bool {
        self.sub.is_some() || self.email.is_some() || !self.groups.is_empty() || !self.claims.is_empty()
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(u) = &self.unix_user {
            parts.push(format!("user {u}"));
        }
        if let Some(g) = &self.unix_group {
            parts.push(format!("group {g}"));
        }
        if let Some(i) = &self.issuer {
            let mut s = i.to_string();
            if let Some(e) = &self.email {
                s.push_str(&format!(" {e}"));
            }
            if let Some(sub) = &self.sub {
                s.push_str(&format!(" sub={sub}"));
            }
            if !self.groups.is_empty() {
                s.push_str(&format!(" groups {}", self.groups.join("+")));
            }
            for (k, v) in &self.claims {
                s.push_str(&format!(" {k}={v}"));
            }
            if self.email.is_none() && self.sub.is_none() && self.groups.is_empty() && self.claims.is_empty()
            {
                s.push_str(" (any identity)");
            }
            parts.push(s);
        }
        f.write_str(&parts.join(" and "))
    }
}

/// The `command` of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CommandSpec {
    /// `"*"`: any command.
    Any,
    /// A bare name, resolved through `secure_path`.
    Name(String),
    /// An absolute path, compared canonically.
    Path(PathBuf),
}

impl fmt::Display for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandSpec::Any => f.write_str("*"),
            CommandSpec::Name(n) => f.write_str(n),
            CommandSpec::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// An `args_regex`, anchored to the whole joined argument string, compiled on first use.
///
/// At load time the pattern is parsed (so syntax errors are reported with the rest of the
/// policy) and the literal prefixes that every match must start with are extracted; a joined
/// argument string that starts with none of them cannot match, and the rule is skipped
/// without compiling the pattern. With thousands of rules this keeps a decision to the few
/// patterns that could apply.
#[derive(Debug)]
pub struct ArgsRegex {
    pub source: String,
    /// `None`: no usable prefix (e.g. `.*`), every string must be tried.
    prefixes: Option<Vec<Vec<u8>>>,
    compiled: OnceLock<Result<Regex, String>>,
}

impl ArgsRegex {
    pub fn new(source: String) -> Result<ArgsRegex, String> {
        use regex_syntax::hir::literal::{ExtractKind, Extractor};
        let hir = regex_syntax::Parser::new().parse(&source).map_err(|e| first_line(&e.to_string()))?;
        let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
        let prefixes = seq.literals().and_then(|lits| {
            let v: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
            (!v.is_empty() && v.iter().all(|l| !l.is_empty())).then_some(v)
        });
        Ok(ArgsRegex { source, prefixes, compiled: OnceLock::new() })
    }

    /// False only if no string starting like `joined` can match (a cheap necessary test).
    pub fn may_match(&self, joined: &str) -> bool {
        self.prefixes.as_ref().is_none_or(|ps| ps.iter().any(|p| joined.as_bytes().starts_with(p)))
    }

    /// The compiled, anchored pattern; an error (for instance a pattern that compiles too big)
    /// makes the rule fail closed.
    pub fn regex(&self) -> Result<&Regex, &str> {
        self.compiled
            .get_or_init(|| {
                Regex::new(&format!("^(?:{})$", self.source)).map_err(|e| first_line(&e.to_string()))
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

impl Clone for ArgsRegex {
    fn clone(&self) -> Self {
        ArgsRegex { source: self.source.clone(), prefixes: self.prefixes.clone(), compiled: OnceLock::new() }
    }
}

impl PartialEq for ArgsRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

fn first_line(s: &str) -> String {
    // regex errors quote the pattern over several lines; the last line says what is wrong.
    s.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(s).trim().to_string()
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArgsSpec {
    Any,
    Exact(Vec<String>),
    Regex(ArgsRegex),
}

/// What an `approve` rule requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalReq {
    pub approvers: Vec<Member>,
    pub min_approvals: u32,
    pub ttl: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub action: Action,
    pub command: CommandSpec,
    /// Index of `command` in [`Policy::commands`] (each distinct command is resolved once
    /// per decision, however many rules name it).
    pub command_id: usize,
    pub args: ArgsSpec,
    pub sha256: Option<[u8; 32]>,
    pub cwd: Option<PathBuf>,
    pub approval: Option<ApprovalReq>,
    pub message: Option<String>,
    pub origin: Origin,
}

impl Rule {
    /// One-line description: `allow /usr/bin/npm ci`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.action, self.command);
        match &self.args {
            ArgsSpec::Any => {}
            ArgsSpec::Exact(a) if a.is_empty() => s.push_str(" (no arguments)"),
            ArgsSpec::Exact(a) => {
                s.push(' ');
                s.push_str(&crate::common::quote::join(a));
            }
            ArgsSpec::Regex(r) => s.push_str(&format!(" (arguments matching {:?})", r.source)),
        }
        if let Some(cwd) = &self.cwd {
            s.push_str(&format!(" in {}", cwd.display()));
        }
        if self.sha256.is_some() {
            s.push_str(" [sha256 pinned]");
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    pub description: Option<String>,
    pub members: Vec<Member>,
    /// Target users (`name`, `#uid` or `*`); the first is the default.
    pub run_as: Vec<String>,
    pub env_keep: Vec<String>,
    pub env_set: Vec<(String, String)>,
    pub mask: Vec<String>,
    pub mask_live: bool,
    pub record: bool,
    pub rules: Vec<Rule>,
    pub origin: Origin,
}

impl Role {
    /// Whether this role may run commands as the named target (name and uid both given so
    /// `#uid` entries match).
    pub fn allows_target(&self, name: &str, uid: u32) -> bool {
        self.run_as
            .iter()
            .any(|r| r == "*" || r == name || matches!(names::parse_numeric_id(r), Some(Ok(u)) if u == uid))
    }

    /// The default target: the first `run_as` entry (`*` means root).
    pub fn default_target(&self) -> &str {
        match self.run_as.first().map(String::as_str) {
            Some("*") | None => "root",
            Some(t) => t,
        }
    }
}

/// The merged policy of all files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub roles: Vec<Role>,
    pub files: Vec<PathBuf>,
    /// Every distinct rule command, indexed by [`Rule::command_id`].
    pub commands: Vec<CommandSpec>,
}

impl Policy {
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    pub fn rule_count(&self) -> usize {
        self.roles.iter().map(|r| r.rules.len()).sum()
    }

    /// Parses policy files given in merge order (`policy.toml`, then `policy.d/*.toml` by
    /// name), checking issuer names against `issuers`. Returns every problem found.
    pub fn parse(files: &[(PathBuf, String)], issuers: &[&str]) -> Result<Policy, Diags> {
        let mut diags = Vec::new();
        let mut policy = Policy::default();
        let mut seen: BTreeMap<String, Origin> = BTreeMap::new();
        for (path, text) in files {
            policy.files.push(path.clone());
            let src = Source::new(path, text);
            let raw: RawPolicy = match toml::from_str(text) {
                Ok(r) => r,
                Err(e) => {
                    diags.push(src.toml_error(&e));
                    continue;
                }
            };
            for role in raw.role {
                let span = role.span();
                if let Some(r) = check_role(&src, role.into_inner(), span.clone(), issuers, &mut diags) {
                    if let Some(first) = seen.get(&r.name) {
                        diags.push(src.at(&span, format!("role {:?} is already defined at {first}", r.name)));
                        continue;
                    }
                    seen.insert(r.name.clone(), r.origin.clone());
                    policy.roles.push(r);
                }
            }
        }
        if !diags.is_empty() {
            return Err(Diags(diags));
        }
        let mut index: std::collections::HashMap<CommandSpec, usize> = std::collections::HashMap::new();
        let commands = &mut policy.commands;
        for rule in policy.roles.iter_mut().flat_map(|r| r.rules.iter_mut()) {
            rule.command_id = *index.entry(rule.command.clone()).or_insert_with(|| {
                commands.push(rule.command.clone());
                commands.len() - 1
            });
        }
        Ok(policy)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    role: Vec<Spanned<RawRole>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: Spanned<String>,
    description: Option<String>,
    #[serde(default)]
    members: Vec<Spanned<Member>>,
    run_as: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    env_keep: Vec<Spanned<String>>,
    #[serde(default)]
    env_set: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    mask: Vec<Spanned<String>>,
    #[serde(default)]
    mask_live: bool,
    record: Option<bool>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    // Optional here so that a rule without them is reported with the other problems of the
    // file instead of aborting the parse.
    action: Option<Spanned<Action>>,
    command: Option<Spanned<String>>,
    args: Option<Vec<String>>,
    args_regex: Option<Spanned<String>>,
    sha256: Option<Spanned<String>>,
    cwd: Option<Spanned<String>>,
    approvers: Option<Vec<Spanned<Member>>>,
    min_approvals: Option<Spanned<i64>>,
    ttl: Option<Spanned<String>>,
    message: Option<String>,
}

fn origin(src: &Source<'_>, span: &std::ops::Range<usize>) -> Origin {
    Origin { file: src.path.to_path_buf(), line: src.line_col(span.start).0 }
}

fn check_role(
    src: &Source<'_>,
    raw: RawRole,
    span: std::ops::Range<usize>,
    issuers: &[&str],
    diags: &mut Vec<Diag>,
) -> Option<Role> {
    let before = diags.len();
    let name = raw.name.get_ref().clone();
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        diags.push(
            src.at(&raw.name.span(), format!("role name {name:?} must be 1-64 characters of [A-Za-z0-9_.-]")),
        );
    }
    if raw.members.is_empty() {
        diags.push(src.at(
            &span,
            format!("role {name:?} has no members: add `members = [{{ unix_group = \"...\" }}]`"),
        ));
    }
    let members =
        raw.members.into_iter().filter_map(|m| check_member(src, m, issuers, false, diags)).collect();

    let mut run_as = Vec::new();
    for r in raw.run_as.unwrap_or_else(|| vec![Spanned::new(0..0, "root".to_string())]) {
        let v = r.get_ref();
        let ok =
            v == "*" || names::is_valid_account_name(v) || matches!(names::parse_numeric_id(v), Some(Ok(_)));
        if !ok {
            diags.push(src.at(&r.span(), format!("run_as entry {v:?} is not a user name, #uid or \"*\"")));
        }
        run_as.push(r.into_inner());
    }
    if run_as.is_empty() {
        diags.push(src.at(&span, format!("role {name:?}: run_as must name at least one target user")));
    }

    let mut env_keep = Vec::new();
    for e in raw.env_keep {
        let v = e.get_ref();
        if !names::is_valid_env_name(v) {
            diags.push(src.at(&e.span(), format!("env_keep entry {v:?} is not a variable name")));
        } else if let Some(pat) = names::dangerous_env(v) {
            diags.push(src.at(&e.span(), format!(
                "env_keep entry {v:?} is dangerous (matches {pat}): it would let the caller change what the command loads or runs")));
        }
        env_keep.push(e.into_inner());
    }
    let mut env_set = Vec::new();
    for (k, v) in raw.env_set {
        if !names::is_valid_env_name(&k) || k.starts_with("LPEXEC_") {
            diags.push(src.at(&v.span(), format!("env_set key {k:?} is not a variable name lpexec may set")));
        }
        if v.get_ref().contains('\0') {
            diags.push(src.at(&v.span(), format!("env_set value of {k} contains a NUL byte")));
        }
        env_set.push((k, v.into_inner()));
    }
    let mut mask = Vec::new();
    for m in raw.mask {
        match Regex::new(m.get_ref()) {
            Ok(_) if m.get_ref().is_empty() => {
                diags.push(src.at(&m.span(), "mask pattern must not be empty"))
            }
            Ok(re) if re.is_match("") => diags
                .push(src.at(&m.span(), format!("mask pattern {:?} matches the empty string", m.get_ref()))),
            Ok(_) => {}
            Err(e) => {
                diags.push(src.at(
                    &m.span(),
                    format!("mask pattern is not a valid regex: {}", first_line(&e.to_string())),
                ))
            }
        }
        mask.push(m.into_inner());
    }

    let mut rules = Vec::new();
    for r in raw.rule {
        let rspan = r.span();
        if let Some(rule) = check_rule(src, r.into_inner(), &rspan, issuers, diags) {
            rules.push(rule);
        }
    }

    (diags.len() == before).then(|| Role {
        origin: origin(src, &span),
        name,
        description: raw.description,
        members,
        run_as,
        env_keep,
        env_set,
        mask,
        mask_live: raw.mask_live,
        record: raw.record.unwrap_or(true),
        rules,
    })
}

fn check_member(
    src: &Source<'_>,
    m: Spanned<Member>,
    issuers: &[&str],
    approver: bool,
    diags: &mut Vec<Diag>,
) -> Option<Member> {
    let span = m.span();
    let m = m.into_inner();
    let before = diags.len();
    let what = if approver { "approver" } else { "member" };
    if m == Member::default() {
        diags.push(src.at(&span, format!("empty {what} entry: name a unix_user, unix_group or issuer")));
    }
    for (key, v) in [("unix_user", &m.unix_user), ("unix_group", &m.unix_group)] {
        if let Some(v) = v {
            if approver {
                diags.push(
                    src.at(
                        &span,
                        format!("approvers are matched by OIDC identity; {key} cannot be used here"),
                    ),
                );
            } else if !(names::is_valid_account_name(v) || matches!(names::parse_numeric_id(v), Some(Ok(_))))
            {
                diags.push(src.at(&span, format!("{key} {v:?} is not a valid name or #id")));
            }
        }
    }
    match &m.issuer {
        Some(i) if !issuers.contains(&i.as_str()) => {
            let known =
                if issuers.is_empty() { "none are configured".to_string() } else { issuers.join(", ") };
            diags.push(
                src.at(
                    &span,
                    format!("unknown issuer {i:?} (configured in lpexec.toml [[issuer]]: {known})"),
                ),
            );
        }
        None if m.has_oidc_condition() => {
            diags.push(
                src.at(&span, format!("{what} entry uses sub, email, groups or claims but names no issuer")),
            );
        }
        None if approver => diags.push(src.at(&span, "approver entries must name an issuer")),
        _ => {}
    }
    (diags.len() == before).then_some(m)
}

fn check_rule(
    src: &Source<'_>,
    raw: RawRule,
    span: &std::ops::Range<usize>,
    issuers: &[&str],
    diags: &mut Vec<Diag>,
) -> Option<Rule> {
    let before = diags.len();
    let Some(action) = raw.action.as_ref().map(|a| *a.get_ref()) else {
        diags.push(src.at(span, "this rule has no action: add action = \"allow\", \"deny\" or \"approve\""));
        return None;
    };
    let Some(command_s) = raw.command.as_ref() else {
        diags.push(
            src.at(span, "this rule has no command: add command = \"NAME\", \"/absolute/path\" or \"*\""),
        );
        return None;
    };
    let cmd = command_s.get_ref();
    let command = if cmd == "*" {
        CommandSpec::Any
    } else if cmd.starts_with('/') {
        if cmd.split('/').any(|c| c == "." || c == "..") {
            diags.push(
                src.at(&command_s.span(), format!("command {cmd:?} must not contain . or .. components")),
            );
        }
        CommandSpec::Path(PathBuf::from(cmd))
    } else if cmd.is_empty() || cmd.contains('/') || cmd.bytes().any(|b| b <= b' ') {
        diags.push(src.at(&command_s.span(), format!(
            "command {cmd:?} must be \"*\", a bare name (resolved through secure_path) or an absolute path")));
        CommandSpec::Any
    } else {
        CommandSpec::Name(cmd.clone())
    };

    let args = match (raw.args, raw.args_regex) {
        (Some(_), Some(re)) => {
            diags.push(src.at(&re.span(), "a rule takes args or args_regex, not both"));
            ArgsSpec::Any
        }
        (Some(a), None) => ArgsSpec::Exact(a),
        (None, Some(re)) => match ArgsRegex::new(re.get_ref().clone()) {
            Ok(r) => ArgsSpec::Regex(r),
            Err(e) => {
                diags.push(src.at(&re.span(), format!("args_regex is not a valid regex: {e}")));
                ArgsSpec::Any
            }
        },
        (None, None) => ArgsSpec::Any,
    };

    let sha256 = raw.sha256.and_then(|h| {
        let parsed = parse_hex32(h.get_ref());
        if parsed.is_none() {
            diags.push(src.at(&h.span(), "sha256 must be 64 hexadecimal digits"));
        }
        if matches!(command, CommandSpec::Any) {
            diags.push(src.at(&h.span(), "sha256 cannot pin command \"*\""));
        }
        parsed
    });
    let cwd = raw.cwd.map(|c| {
        if !c.get_ref().starts_with('/') {
            diags.push(src.at(&c.span(), "cwd must be an absolute path"));
        }
        PathBuf::from(c.into_inner())
    });

    let approval = if action == Action::Approve {
        let approvers: Vec<Member> = raw
            .approvers
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| check_member(src, m, issuers, true, diags))
            .collect();
        if approvers.is_empty() && diags.len() == before {
            diags.push(src.at(span, "an approve rule needs approvers, e.g. approvers = [{ issuer = \"corp\", groups = [\"release-managers\"] }]"));
        }
        let min = match raw.min_approvals {
            Some(n) if !(1..=50).contains(n.get_ref()) => {
                diags.push(src.at(&n.span(), "min_approvals must be between 1 and 50"));
                1
            }
            Some(n) => *n.get_ref() as u32,
            None => 1,
        };
        let ttl = match raw.ttl {
            Some(t) => match duration::parse(t.get_ref()) {
                Ok(d) if d <= Duration::from_secs(86400) => d,
                Ok(_) => {
                    diags.push(src.at(&t.span(), "ttl must be at most 1d"));
                    Duration::ZERO
                }
                Err(e) => {
                    diags.push(src.at(&t.span(), e));
                    Duration::ZERO
                }
            },
            None => Duration::from_secs(600),
        };
        Some(ApprovalReq { approvers, min_approvals: min, ttl })
    } else {
        if raw.approvers.is_some() || raw.min_approvals.is_some() || raw.ttl.is_some() {
            diags.push(src.at(
                span,
                format!("approvers, min_approvals and ttl only apply to approve rules, not {action}"),
            ));
        }
        None
    };
    if raw.message.is_some() && action == Action::Allow {
        diags.push(src.at(span, "message only applies to deny and approve rules"));
    }
    (diags.len() == before).then(|| Rule {
        action,
        command,
        command_id: 0,
        args,
        sha256,
        cwd,
        approval,
        message: raw.message,
        origin: origin(src, span),
    })
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

/// Lists the policy files to merge: `policy.toml` (if present) then `policy.d/*.toml` by name.
/// Hidden files and other extensions (editor backups) are skipped.
pub fn policy_d_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let Some(n) = name.to_str() else { continue };
        if !n.starts_with('.') && n.ends_with(".toml") {
            v.push(dir.join(n));
        }
    }
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests;
