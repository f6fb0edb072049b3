//! `lpexec-helper`, the setuid-root part. It reads like the pipeline it is:
//!
//! self-check → scrub → read request → load config → who is asking → decide → log →
//! run under the relay → log → exit with the command's status.
//!
//! Single-threaded, no async runtime, fails closed: any error before the command starts
//! refuses with status 125 and a syslog line.

mod approval;
mod env;
mod explain;
mod identity;
pub mod load;
pub mod log;
mod recording;
pub mod request;

use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::approval::token;
use crate::common::config::{Config, OnError};
use crate::common::identity::Identity;
use crate::common::{duration, quote, session};
use crate::exec::{self, Outcome};
use crate::policy::{self, Decision, SystemWorld, Target, Verdict};
use crate::system::process::{self, Creds, SavedLimits};
use crate::system::user::{self, Account};
use crate::system::{fd, term};
use crate::{eprintln_safe, println_safe};
use log::{Level, Syslog};
use request::{Mode, Request};

/// How the helper ends.
pub enum Exit {
    Code(i32),
    Signal(Signal),
}

const REFUSED: Exit = Exit::Code(125);

/// Entry point of `lpexec-helper`.
pub fn main() -> ! {
    // Before anything else: take the environment away from libc, make sure 0-2 are open,
    // claim the request channel and close every other inherited descriptor.
    let caller_env = process::take_environment(env::MAX_ENV_BYTES, env::MAX_ENV_VARS);
    if fd::ensure_stdio().is_err() {
        process::exit_now(125);
    }
    let control = fd::take_inherited(request::CONTROL_FD);
    fd::close_from(3, if control.is_some() { &[request::CONTROL_FD] } else { &[] });
    process::reset_signals();
    std::panic::set_hook(Box::new(|_| {
        term::emergency_restore();
        crate::common::out::err("lpexec: internal error in lpexec-helper; refusing\n");
    }));
    let exit = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(caller_env, control)))
        .unwrap_or(REFUSED);
    match exit {
        Exit::Code(c) => process::exit_now(c),
        Exit::Signal(s) => process::die_by_signal(s),
    }
}

/// Refuses to run if the helper cannot be what it must be.
fn self_check() -> Result<(), String> {
    if process::no_new_privs() {
        return Err("the no_new_privs flag is set (a container or seccomp sandbox?), so the kernel ignores lpexec-helper's setuid bit\n\
                    lpexec cannot work inside this sandbox; run it from a normal login session".into());
    }
    if !process::euid_is_root() {
        return Err(format!(
            "lpexec-helper is not running as root: it must be installed setuid root\n\
             fix with: chown root:root {p} && chmod 4755 {p} (and make sure its file system is not mounted nosuid)",
            p = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "lpexec-helper".into())
        ));
    }
    Ok(())
}

/// What is known about the request, for messages and logs.
struct Ctx {
    caller: String,
    tty: String,
    pwd: String,
    command: String,
    reason: Option<String>,
    /// The approval this run goes ahead on: id and approvers.
    approval: Option<(String, String)>,
    log: Syslog,
}

impl Ctx {
    fn fields(&self, role: &str, id: &str, user: &str) -> Vec<(&'static str, String)> {
        let mut f = vec![("ROLE", role.to_string())];
        if id != "-" {
            f.push(("ID", id.to_string()));
        }
        f.extend([
            ("TTY", self.tty.clone()),
            ("PWD", self.pwd.clone()),
            ("USER", user.to_string()),
            ("COMMAND", self.command.clone()),
        ]);
        if let Some(r) = &self.reason {
            f.push(("REASON", r.clone()));
        }
        if let Some((id, who)) = &self.approval {
            f.push(("APPROVAL", id.clone()));
            f.push(("APPROVERS", who.clone()));
        }
        f
    }

    /// Logs and reports a refusal that happened before a decision.
    fn refuse(&mut self, what: &str, hint: Option<&str>) -> Exit {
        let mut f = self.fields("-", "-", "-");
        f.extend([("DECISION", "error".to_string()), ("WHY", what.to_string())]);
        self.log.send(Level::Alert, &log::line(&self.caller, &f));
        eprintln_safe!("lpexec: {what}");
        if let Some(h) = hint {
            eprintln_safe!("{h}");
        }
        REFUSED
    }
}

fn run(caller_env: Vec<(String, String)>, control: Option<std::os::fd::OwnedFd>) -> Exit {
    // 1. Self-check.
    if let Err(e) = self_check() {
        eprintln_safe!("lpexec: {e}");
        return REFUSED;
    }
    let limits = SavedLimits::raise_for_helper();
    let _ = process::set_not_dumpable();
    let caller_umask = process::umask(0o077);

    // 2. The request.
    let Some(control) = control else {
        eprintln_safe!(
            "lpexec-helper: this is lpexec's privileged helper and is not run directly\nrun commands with: lpexec COMMAND [ARG]..."
        );
        return REFUSED;
    };
    let mut ctx = Ctx {
        caller: format!("uid={}", process::real_uid()),
        tty: (0..=2).find_map(|n| term::tty_name(fd::stdio(n))).unwrap_or_else(|| "unknown".into()),
        pwd: String::new(),
        command: String::new(),
        reason: None,
        approval: None,
        log: Syslog::open(crate::common::config::Facility::Authpriv),
    };
    let bytes = match fd::read_to_end_limited(std::os::fd::AsFd::as_fd(&control), request::MAX_REQUEST) {
        Ok(b) => b,
        Err(nix::errno::Errno::EFBIG) => {
            return ctx.refuse(
                &format!(
                    "the request is too large (more than {} bytes of command line and ID tokens)",
                    request::MAX_REQUEST
                ),
                None,
            );
        }
        Err(e) => return ctx.refuse(&format!("cannot read the request: {}", e.desc()), None),
    };
    let req = match Request::decode(&bytes) {
        Ok(r) => r,
        Err(e) => return ctx.refuse(&e, None),
    };
    ctx.command = quote::join(&req.argv);
    ctx.reason = req.reason.clone();

    // 3. Who is asking: the kernel says, not the request.
    let (caller, _caller_account) = match user::caller() {
        Ok(c) => c,
        Err(e) => return ctx.refuse(&e, None),
    };
    ctx.caller = caller.name.clone();
    let cwd = match process::getcwd() {
        Ok(c) => c,
        Err(e) => {
            return ctx.refuse(
                &format!("cannot determine the current directory: {e}"),
                Some("change to an existing directory and try again"),
            );
        }
    };
    ctx.pwd = cwd.display().to_string();

    // 4. Configuration and policy (fail closed on any problem).
    let (cfg, pol) = match load::installed() {
        Ok(v) => v,
        Err(e) => {
            return ctx.refuse(
                &format!("the lpexec configuration is invalid, so every request is refused:\n{e}"),
                Some("an administrator can check it with: lpexec check"),
            );
        }
    };
    if cfg.facility != crate::common::config::Facility::Authpriv {
        ctx.log = Syslog::open(cfg.facility);
    }
    let identity = match identity::verify(&mut ctx, &cfg, caller, &req.id_tokens) {
        Ok(id) => id,
        Err(exit) => return exit,
    };

    // 5. What exactly is asked.
    let world = SystemWorld { secure_path: cfg.secure_path.clone() };
    let target = match req.user.as_deref().map(user::lookup_target).transpose() {
        Ok(t) => t,
        Err(e) => return ctx.refuse(&e, None),
    };
    if req.mode == Mode::List {
        return explain::list(&pol, &identity, req.role.as_deref());
    }
    let Some(argv0) = req.argv.first() else {
        return ctx.refuse("no command given", None);
    };
    let Some(command) = policy::resolve_command(&world, argv0, &cwd) else {
        let hint = if argv0.contains('/') {
            None
        } else {
            Some(format!(
                "lpexec looks commands up in secure_path ({}), not in your PATH; give the full path if it lives elsewhere",
                join_path(&cfg.secure_path)
            ))
        };
        let what = format!("{argv0}: command not found");
        let _ = ctx.refuse(&what, hint.as_deref());
        return Exit::Code(127);
    };
    ctx.command = format!("{}{}", command.display(), args_suffix(&req.argv[1..]));
    let args = &req.argv[1..];
    let preq = policy::Request {
        command: &command,
        args,
        cwd: &cwd,
        target: target.as_ref(),
        role: req.role.as_deref(),
    };

    // 6. Decide.
    let decision = policy::decide(&pol, &identity, &preq, &world);
    if req.mode == Mode::Explain {
        return explain::explain(&decision, &command, args, &cfg);
    }
    if let Some(issuer) = policy::identity_required(&pol, &identity, &preq, &decision, &world) {
        let target = decision.target.as_ref().map_or("-", |t| t.name.as_str());
        return identity::required(&mut ctx, &cfg, issuer, &identity, target, &control);
    }
    decide_and_run(
        &mut ctx,
        Run {
            cfg: &cfg,
            identity: &identity,
            decision,
            command: &command,
            req: &req,
            caller_env: &caller_env,
            caller_umask,
            limits,
            control: Some(control),
        },
    )
}

struct Run<'a> {
    cfg: &'a Config,
    identity: &'a Identity,
    decision: Decision<'a>,
    command: &'a Path,
    req: &'a Request,
    caller_env: &'a [(String, String)],
    caller_umask: u32,
    limits: SavedLimits,
    /// The request channel, for an approval request; closed before the command runs.
    control: Option<std::os::fd::OwnedFd>,
}

fn decide_and_run(ctx: &mut Ctx, mut r: Run<'_>) -> Exit {
    let control = r.control.take();
    let d = &r.decision;
    let role_name = d.role().map_or("-".to_string(), |ro| ro.name.clone());
    let target_name = d.target.as_ref().map_or("-".to_string(), |t| t.name.clone());
    let id_display = r.identity.display_oidc();
    let rule_at = d.rule.map(|x| x.rule.origin.to_string());
    let mut fields = ctx.fields(&role_name, &id_display, &target_name);

    let approved = if d.verdict == Verdict::Approve {
        match approval_step(ctx, &r, &mut fields, control.as_ref(), rule_at.as_deref()) {
            Ok(a) => Some(a),
            Err(exit) => return exit,
        }
    } else {
        None
    };
    drop(control);
    if approved.is_none() && !d.is_allowed() {
        let why = d.reason.as_ref().map_or("denied".to_string(), ToString::to_string);
        fields.push(("DECISION", "deny".into()));
        fields.push(("WHY", why.clone()));
        if let Some(at) = &rule_at {
            fields.push(("RULE", at.clone()));
        }
        ctx.log.send(Level::Alert, &log::line(&ctx.caller, &fields));
        let msg = d.rule.and_then(|x| x.rule.message.clone());
        match (rule_at, msg) {
            (Some(at), Some(m)) => {
                eprintln_safe!("lpexec: {} is denied by policy ({at}): {m}", ctx.command)
            }
            (Some(at), None) => {
                eprintln_safe!("lpexec: {} is denied by policy ({at})", ctx.command)
            }
            _ if d.target.is_none()
                || matches!(
                    d.reason,
                    Some(policy::DenyReason::NoRole | policy::DenyReason::NotInRole(_))
                ) =>
            {
                eprintln_safe!("lpexec: {} may not run {}: {why}", ctx.caller, ctx.command)
            }
            _ => eprintln_safe!("lpexec: {} may not run {} as {target_name}: {why}", ctx.caller, ctx.command),
        }
        eprintln_safe!("see what you may run with: lpexec list");
        return REFUSED;
    }

    // Allowed. Everything from here on runs the command.
    let (Some(rule), Some(target)) = (d.rule, d.target.as_ref()) else {
        return REFUSED;
    };
    let role = rule.role;
    // The role's secrets are masked wherever lpexec writes the session down: the recording
    // (header and output) and the syslog COMMAND.
    let masks = match role.mask.is_empty() {
        true => None,
        false => match crate::record::mask::MaskSet::new(&role.mask) {
            Ok(m) => Some(m),
            Err(e) => return ctx.refuse(&format!("role {}: {e}", role.name), None),
        },
    };
    if let Some(m) = &masks {
        ctx.command = m.mask_text(&ctx.command);
        fields = ctx.fields(&role_name, &id_display, &target_name);
    }
    let started = std::time::SystemTime::now();
    let sid = session::new_id(started);
    if approved.is_some() {
        fields = ctx.fields(&role_name, &id_display, &target_name);
    }
    fields.push(("DECISION", "allow".into()));
    fields.push(("RULE", rule.rule.origin.to_string()));
    fields.push(("SESSION", sid.clone()));
    ctx.log.send(Level::Notice, &log::line(&ctx.caller, &fields));

    let account = match target_account(target) {
        Ok(a) => a,
        Err(e) => return ctx.refuse(&e, None),
    };
    let cmd = match build_command(&r, &account, role, &sid) {
        Ok(c) => c,
        Err(e) => return ctx.refuse(&e, None),
    };
    let base = ctx.fields(&role_name, &id_display, &target_name);

    // The recording (SPEC §8): masked before it reaches disk, sealed at the end.
    let info = exec::probe();
    let cwd = ctx.pwd.clone();
    let command_line = ctx.command.clone();
    let command_path = r.command.display().to_string();
    let about = recording::About {
        session: &sid,
        identity: r.identity,
        role,
        target: &account,
        cwd: &cwd,
        command: &command_line,
        command_path: &command_path,
        argv: &r.req.argv,
        reason: r.req.reason.as_deref(),
        approval: approved.as_ref(),
        caller_env: r.caller_env,
        info: &info,
        started,
    };
    let mut active = None;
    let mut record_error = None;
    if role.record {
        match recording::start(&about, r.cfg, masks.as_ref()) {
            Ok(a) => active = Some(a),
            Err(e) if r.cfg.recording.on_error == OnError::Deny => {
                return ctx.refuse(
                    &format!("this session cannot be recorded, so it is not run (on_error = \"deny\"): {e}"),
                    Some("an administrator must fix the recordings directory; nothing was run"),
                );
            }
            Err(e) => {
                eprintln_safe!(
                    "lpexec: warning: this session is NOT recorded (on_error = \"continue\"): {e}"
                );
                let mut f = base.clone();
                f.extend([
                    ("SESSION", sid.clone()),
                    ("EVENT", "recording-failed".into()),
                    ("WHY", e.clone()),
                ]);
                ctx.log.send(Level::Alert, &log::line(&ctx.caller, &f));
                record_error = Some(e);
            }
        }
    }

    let mut start = base.clone();
    start.extend([("SESSION", sid.clone()), ("EVENT", "start".into())]);
    if let Some(a) = &active {
        start.push(("RECORDING", a.recorder.path().display().to_string()));
    }
    ctx.log.send(Level::Notice, &log::line(&ctx.caller, &start));

    let t0 = Instant::now();
    let interpose = active.is_some() || (role.mask_live && masks.is_some());
    let outcome = match (&mut active, &masks) {
        (Some(a), _) => exec::run(&cmd, interpose, &mut a.recorder),
        (None, Some(m)) if role.mask_live => {
            exec::run(&cmd, interpose, &mut crate::record::recorder::LiveMask::new(m))
        }
        _ => exec::run(&cmd, interpose, &mut exec::PassThrough),
    };
    let elapsed = t0.elapsed();

    let mut end = base;
    end.extend([("SESSION", sid), ("EVENT", "end".into())]);
    let (exit_code, signal) = match &outcome {
        Ok(Outcome::Signaled(s)) => (None, Some(s.as_str().to_string())),
        Ok(o) => (Some(o.exit_code()), None),
        Err(_) => (Some(125), None),
    };
    let exit = match outcome {
        Ok(Outcome::Exited(c)) => {
            end.push(("EXIT", c.to_string()));
            Exit::Code(c)
        }
        Ok(Outcome::Signaled(s)) => {
            end.push(("EXIT", format!("{}", 128 + s as i32)));
            end.push(("SIGNAL", s.as_str().to_string()));
            Exit::Signal(s)
        }
        Ok(o @ (Outcome::ExecFailed(e) | Outcome::SetupFailed(e))) => {
            end.push(("EXIT", o.exit_code().to_string()));
            end.push(("WHY", format!("cannot execute: {}", e.desc())));
            eprintln_safe!("lpexec: {}: cannot execute: {}", r.command.display(), e.desc());
            Exit::Code(o.exit_code())
        }
        Err(e) => {
            end.push(("EXIT", "125".into()));
            end.push(("WHY", e.to_string()));
            eprintln_safe!("lpexec: running the command failed: {e}");
            REFUSED
        }
    };
    end.push(("DURATION", duration::human(elapsed)));
    let mut level = Level::Notice;
    match active {
        Some(a) => {
            let failed = a.recorder.error().map(str::to_string);
            let path = a.recorder.path();
            match a.recorder.seal(&a.key, exit_code, signal) {
                Ok((path, sha)) => {
                    end.push(("RECORDING", path.display().to_string()));
                    end.push(("SHA256", sha));
                }
                Err(e) => {
                    level = Level::Alert;
                    end.push(("RECORDING", path.display().to_string()));
                    end.push(("RECORDING_ERROR", failed.unwrap_or(e)));
                }
            }
        }
        None if role.record => {
            level = Level::Alert;
            end.push(("RECORDING_ERROR", record_error.unwrap_or_default()));
        }
        None => end.push(("RECORDING", "off".into())),
    }
    ctx.log.send(level, &log::line(&ctx.caller, &end));
    exit
}

/// A run that needs approval: without a token, hand the front end the request to submit;
/// with one, verify it (see [`approval`]). Every outcome is logged.
fn approval_step(
    ctx: &mut Ctx,
    r: &Run<'_>,
    fields: &mut Vec<(&'static str, String)>,
    control: Option<&std::os::fd::OwnedFd>,
    rule_at: Option<&str>,
) -> Result<approval::Approved, Exit> {
    let d = &r.decision;
    fields.push(("DECISION", "approve".into()));
    if let Some(at) = rule_at {
        fields.push(("RULE", at.to_string()));
    }
    let who = policy::describe_approvers(&d.approvals);
    if r.cfg.approval.is_none() {
        fields.push(("WHY", "approval required but no approval service is configured".into()));
        ctx.log.send(Level::Alert, &log::line(&ctx.caller, fields));
        eprintln_safe!(
            "lpexec: approval required: {} needs approval from {who} ({})",
            ctx.command,
            rule_at.unwrap_or_default()
        );
        eprintln_safe!(
            "no approval service is configured on this host ([approval] in {}), so it cannot be requested; ask an administrator",
            r.cfg.path.display()
        );
        return Err(REFUSED);
    }
    let subject = approval::subject(r.identity, d, r.command, &r.req.argv, &ctx.pwd);
    let Some(token) = &r.req.approval_token else {
        fields.push(("EVENT", "approval-required".into()));
        ctx.log.send(Level::Notice, &log::line(&ctx.caller, fields));
        let request = approval::request(subject, d, r.req.reason.as_deref());
        if !control.is_some_and(|c| approval::answer(r.cfg, request, c)) {
            eprintln_safe!(
                "lpexec: approval required: {} needs approval from {who} ({})\nrequest it with the lpexec front end",
                ctx.command,
                rule_at.unwrap_or_default()
            );
        }
        return Err(REFUSED);
    };
    match approval::check(r.cfg, token, r.identity, &subject, d) {
        Ok(a) => {
            ctx.approval = Some((a.id.clone(), a.approvers.join(",")));
            let mut f = ctx.fields(
                &d.role().map_or("-".to_string(), |ro| ro.name.clone()),
                &r.identity.display_oidc(),
                &subject.run_as,
            );
            f.extend([("EVENT", "approval-accepted".to_string())]);
            if let Some(at) = rule_at {
                f.push(("RULE", at.to_string()));
            }
            ctx.log.send(Level::Notice, &log::line(&ctx.caller, &f));
            Ok(a)
        }
        Err(e) => {
            fields.push(("EVENT", "approval-refused".into()));
            if let Some(id) = token::peek(token).map(|c| c.jti) {
                fields.push(("APPROVAL", crate::identity::printable(&id, 64)));
            }
            fields.push(("WHY", e.clone()));
            ctx.log.send(Level::Alert, &log::line(&ctx.caller, fields));
            eprintln_safe!("lpexec: {}: the approval is refused: {e}", ctx.command);
            Err(REFUSED)
        }
    }
}

fn target_account(t: &Target) -> Result<Account, String> {
    let a = user::by_uid(t.uid)?;
    if a.name != t.name && !t.name.starts_with('#') {
        // The name resolved to another account than the uid (a duplicate uid in passwd):
        // run as the uid, whose name is what the logs show.
        return user::lookup(&t.name);
    }
    Ok(a)
}

fn build_command(
    r: &Run<'_>,
    account: &Account,
    role: &crate::common::policy::Role,
    sid: &str,
) -> Result<exec::Command, String> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let groups = user::group_ids(account)?;
    let envv = env::build(&env::EnvInput {
        caller_env: r.caller_env,
        caller: &r.identity.caller,
        target: account,
        role: Some(role),
        secure_path: &r.cfg.secure_path,
        session: sid,
    });
    let path = CString::new(r.command.as_os_str().as_bytes()).map_err(|_| "command path contains NUL")?;
    let argv: Vec<CString> = r
        .req
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| "argument contains NUL")?;
    Ok(exec::Command {
        path,
        argv,
        envp: env::to_cstrings(&envv),
        creds: Creds { uid: account.uid, gid: account.gid, groups },
        umask: r.caller_umask | 0o022,
        limits: r.limits.clone(),
    })
}

fn args_suffix(args: &[String]) -> String {
    if args.is_empty() { String::new() } else { format!(" {}", quote::join(args)) }
}

fn join_path(p: &[PathBuf]) -> String {
    p.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")
}

/// Prints to stdout (for explain/list).
fn say(s: &str) {
    println_safe!("{s}");
}
