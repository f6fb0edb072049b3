//! The auditor's verbs: `lpexec sessions`, `lpexec replay`, `lpexec verify`. They run with the
//! caller's own permissions and read what the caller may read (root and members of
//! `recording.group` read everything).

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::cli::SessionsArgs;
use crate::common::config::Config;
use crate::common::{paths, timefmt};
use crate::helper::load::{self, Access};
use crate::record::asciicast;
use crate::record::index::{self, Entry};
use crate::record::recorder::locate;
use crate::record::sanitize::Sanitizer;
use crate::record::seal::{self, Verdict};
use crate::system::{fd, term};
use crate::{eprintln_safe, println_safe};

fn config() -> Result<Config, String> {
    load::config(&paths::config_file(), Access::Plain)
}

fn access_hint(cfg: &Config) -> String {
    match &cfg.recording.group {
        Some(g) => format!("recordings are readable by root and members of the group {g} (recording.group)"),
        None => "recordings are readable by root only (set recording.group to give auditors access)".into(),
    }
}

/// Escapes control characters for one-line display (a recorded command line may hold
/// escape sequences meant for the auditor's terminal).
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn started(e: &Entry) -> SystemTime {
    let secs = e.header.as_ref().map_or(0, |h| h.timestamp);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn json_row(e: &Entry) -> serde_json::Value {
    let h = e.header.as_ref();
    let m = h.and_then(|h| h.lpexec.as_ref());
    serde_json::json!({
        "session": e.id,
        "path": e.path.display().to_string(),
        "start": timefmt::Utc::from_system(started(e)).rfc3339(),
        "user": m.map(|m| m.user.clone()),
        "uid": m.map(|m| m.uid),
        "identity": m.map(|m| m.identity.clone()),
        "role": m.map(|m| m.role.clone()),
        "target": m.map(|m| m.target.clone()),
        "host": m.map(|m| m.host.clone()),
        "cwd": m.map(|m| m.cwd.clone()),
        "command": h.and_then(|h| h.command.clone()),
        "argv": m.map(|m| m.argv.clone()),
        "reason": m.and_then(|m| m.reason.clone()),
        "approval": m.and_then(|m| m.approval.clone()),
        "approvers": m.map(|m| m.approvers.clone()),
        "exit": e.seal.as_ref().and_then(|s| s.exit),
        "signal": e.seal.as_ref().and_then(|s| s.signal.clone()),
        "duration": e.seal.as_ref().map(|s| s.duration),
        "sealed": e.seal.is_some(),
    })
}

pub fn sessions(a: &SessionsArgs) -> i32 {
    let cfg = match config() {
        Ok(c) => c,
        Err(e) => return super::fail(&e),
    };
    let re = match a.command.as_deref().map(regex::Regex::new).transpose() {
        Ok(r) => r,
        Err(e) => return super::fail(&format!("--command is not a valid regex: {e}")),
    };
    let now = SystemTime::now();
    let since = match a.since.as_deref().map(|s| timefmt::parse_when(s, now)).transpose() {
        Ok(v) => v,
        Err(e) => return super::fail(&format!("--since: {e}")),
    };
    let until = match a.until.as_deref().map(|s| timefmt::parse_when(s, now)).transpose() {
        Ok(v) => v,
        Err(e) => return super::fail(&format!("--until: {e}")),
    };
    let scan = match index::scan(&cfg.recording.dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln_safe!("lpexec: {e}");
            eprintln_safe!("{}", access_hint(&cfg));
            return 125;
        }
    };
    let rows: Vec<&Entry> = scan
        .entries
        .iter()
        .filter(|e| {
            let m = e.header.as_ref().and_then(|h| h.lpexec.as_ref());
            let cmd = e.header.as_ref().and_then(|h| h.command.as_deref()).unwrap_or("");
            a.user.as_ref().is_none_or(|u| m.is_some_and(|m| &m.user == u))
                && re.as_ref().is_none_or(|r| r.is_match(cmd))
                && since.is_none_or(|s| started(e) >= s)
                && until.is_none_or(|u| started(e) < u)
        })
        .collect();
    if a.json {
        for e in &rows {
            println_safe!("{}", json_row(e));
        }
    } else {
        println_safe!(
            "{:<20}  {:<12} {:<22} {:<12} {:<8} {:>4} {:>8}  {:<8} COMMAND",
            "START (UTC)",
            "USER",
            "IDENTITY",
            "ROLE",
            "TARGET",
            "EXIT",
            "DURATION",
            "SEALED"
        );
        for e in &rows {
            let m = e.header.as_ref().and_then(|h| h.lpexec.as_ref());
            let s = e.seal.as_ref();
            let exit = match s {
                Some(s) => {
                    s.exit.map_or_else(|| s.signal.clone().unwrap_or_else(|| "?".into()), |c| c.to_string())
                }
                None => "-".into(),
            };
            let dur = s.map_or("-".into(), |s| {
                crate::common::duration::human(Duration::from_secs_f64(s.duration.max(0.0)))
            });
            let cmd = e.header.as_ref().and_then(|h| h.command.clone()).unwrap_or_default();
            let mut cmd = printable(&cmd);
            if cmd.chars().count() > 60 {
                cmd = cmd.chars().take(59).collect::<String>() + "…";
            }
            println_safe!(
                "{:<20}  {:<12} {:<22} {:<12} {:<8} {:>4} {:>8}  {:<8} {}",
                timefmt::Utc::from_system(started(e)).short(),
                printable(&m.map_or("?".into(), |m| m.user.clone())),
                printable(
                    &m.map_or(String::new(), |m| m.identity.join(",")).chars().take(22).collect::<String>()
                ),
                printable(&m.map_or("?".into(), |m| m.role.clone())),
                printable(&m.map_or("?".into(), |m| m.target.clone())),
                exit,
                dur,
                if s.is_some() { "sealed" } else { "UNSEALED" },
                cmd
            );
        }
    }
    if scan.unreadable > 0 {
        eprintln_safe!(
            "lpexec: {} recording(s) or director(ies) were not readable by you; {}",
            scan.unreadable,
            access_hint(&cfg)
        );
    }
    0
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut v = Vec::new();
    f.take(limit + 1).read_to_end(&mut v).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if v.len() as u64 > limit {
        return Err(format!("{} is larger than {limit} bytes", path.display()));
    }
    Ok(v)
}

fn resolve(session: &str) -> Result<(PathBuf, Config), String> {
    let cfg = config()?;
    let path = locate(&cfg.recording.dir, session)?;
    if !path.exists() {
        return Err(format!(
            "no recording {} (or you may not see it: {})",
            path.display(),
            access_hint(&cfg)
        ));
    }
    Ok((path, cfg))
}

/// Exit status of `verify`: 0 sealed and valid, 1 tampered, 2 unsealed, 125 could not check.
pub fn verify(session: &str) -> i32 {
    let (path, cfg) = match resolve(session) {
        Ok(v) => v,
        Err(e) => return super::fail(&e),
    };
    let cast = match read_limited(&path, asciicast::MAX_PARSE) {
        Ok(c) => c,
        Err(e) => return super::fail(&e),
    };
    let sidecar = read_limited(&path.with_extension("json"), 1 << 20).ok();
    let host_key = std::fs::read_to_string(cfg.recording.dir.join(seal::PUB_FILE)).ok();
    let lines = std::str::from_utf8(&cast).ok().and_then(|t| asciicast::parse(t).ok());
    let shown = path.display();
    match seal::verify(&cast, sidecar.as_deref(), host_key.as_deref()) {
        Verdict::Valid { key } => {
            println_safe!("sealed and valid: {shown}");
            println_safe!(
                "  signed by {key}{}",
                if host_key.is_some() {
                    " (this host's key)"
                } else {
                    " (this host's published key could not be read to compare)"
                }
            );
            0
        }
        Verdict::Tampered(why) => {
            println_safe!("TAMPERED: {shown}");
            println_safe!("  {why}");
            1
        }
        Verdict::Unsealed(why) => {
            println_safe!("UNSEALED: {shown}");
            println_safe!("  {why}");
            match lines {
                Some(p) if p.bad_lines.is_empty() => {
                    println_safe!("  {} complete events; every line parses", p.events.len())
                }
                Some(p) => println_safe!(
                    "  {} complete events; lines that do not parse: {:?}",
                    p.events.len(),
                    p.bad_lines
                ),
                None => println_safe!("  the header does not parse"),
            }
            2
        }
    }
}

/// The caller's terminal in raw mode (no echo), restored on drop.
struct RawInput {
    saved: nix::sys::termios::Termios,
}

impl RawInput {
    fn new() -> Option<RawInput> {
        let stdin = fd::stdio(0);
        let saved = term::get_attrs(stdin).ok()?;
        term::set_attrs(stdin, &term::raw(&saved)).ok()?;
        term::remember_for_restore(stdin, &saved);
        Some(RawInput { saved })
    }
}

impl Drop for RawInput {
    fn drop(&mut self) {
        let _ = term::set_attrs(fd::stdio(0), &self.saved);
        term::forget_restore();
    }
}

fn write_out(s: &str) -> bool {
    fd::write_all(fd::stdio(1), s.as_bytes()).is_ok()
}

pub fn replay(session: &str, speed: f64, idle_limit: Option<f64>, print: bool) -> i32 {
    if !(speed.is_finite() && speed > 0.0) {
        return super::fail("--speed must be a positive number");
    }
    if idle_limit.is_some_and(|l| !(l.is_finite() && l > 0.0)) {
        return super::fail("--idle-limit must be a positive number of seconds");
    }
    let (path, _) = match resolve(session) {
        Ok(v) => v,
        Err(e) => return super::fail(&e),
    };
    let text = match read_limited(&path, asciicast::MAX_PARSE)
        .and_then(|b| String::from_utf8(b).map_err(|_| format!("{} is not UTF-8 text", path.display())))
    {
        Ok(t) => t,
        Err(e) => return super::fail(&e),
    };
    let parsed = match asciicast::parse(&text) {
        Ok(p) => p,
        Err(e) => return super::fail(&format!("{}: {e}", path.display())),
    };
    let to_tty = term::is_tty(fd::stdio(1));
    let mut sanitizer = Sanitizer::default();
    let mut emit = |data: &str| -> bool {
        if to_tty {
            let mut clean = String::with_capacity(data.len());
            sanitizer.filter(data, &mut clean);
            write_out(&clean)
        } else {
            write_out(data)
        }
    };
    if print {
        for e in parsed.events.iter().filter(|e| e.code == "o") {
            if !emit(&e.data) {
                break;
            }
        }
        return 0;
    }

    // Real time: space pauses, q or Ctrl-C stops; the terminal is always put back.
    let interactive = term::is_tty(fd::stdio(0));
    let raw = if interactive { RawInput::new() } else { None };
    let Ok(mut sigq) = crate::system::signal::SignalQueue::new(&[
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ]) else {
        return super::fail("cannot set up signal handling");
    };
    let mut clock = 0.0f64; // recording time we have shown up to
    let mut paused = false;
    let mut interrupted = false;
    'events: for e in parsed.events.iter().filter(|e| e.code == "o") {
        let mut gap = (e.time - clock).max(0.0);
        if let Some(l) = idle_limit {
            gap = gap.min(l);
        }
        let mut remaining = Duration::from_secs_f64(gap / speed);
        loop {
            let t0 = Instant::now();
            let ms = if paused { 60_000u16 } else { remaining.as_millis().min(60_000) as u16 };
            let mut fds = vec![nix::poll::PollFd::new(sigq.as_fd(), nix::poll::PollFlags::POLLIN)];
            if raw.is_some() {
                fds.push(nix::poll::PollFd::new(fd::stdio(0), nix::poll::PollFlags::POLLIN));
            }
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
            let sig_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
            let key_ready = fds.get(1).and_then(|p| p.revents()).is_some_and(|r| !r.is_empty());
            drop(fds);
            if sig_ready && sigq.pop().is_some() {
                interrupted = true;
                break 'events;
            }
            if key_ready {
                let mut b = [0u8; 16];
                if let Ok(n) = fd::read(fd::stdio(0), &mut b) {
                    for &k in &b[..n] {
                        match k {
                            b'q' | 0x03 | 0x04 => {
                                interrupted = true;
                                break 'events;
                            }
                            b' ' => paused = !paused,
                            _ => {}
                        }
                    }
                }
            }
            if !paused {
                remaining = remaining.saturating_sub(t0.elapsed());
                if remaining.is_zero() {
                    break;
                }
            }
        }
        clock = e.time;
        if !emit(&e.data) {
            break;
        }
    }
    drop(raw);
    if to_tty {
        // Leave the terminal usable whatever the recording did to it: attributes off, cursor
        // shown, main screen.
        write_out("\x1b[0m\x1b[?25h\x1b[?1049l");
    }
    if interrupted {
        write_out("\r\n");
        eprintln_safe!("lpexec: replay stopped");
        return 130;
    }
    0
}
