//! Syslog lines, sudo style: `alice : ROLE=web ; TTY=pts/3 ; PWD=/srv ; USER=root ; COMMAND=... ; KEY=value`.
//!
//! Every value is escaped so that nothing the caller controls (arguments, `--reason`, the
//! working directory) can forge a line or a field: control characters and `\` become `\xNN`
//! and `\\`, and `;` becomes `\x3b` (CVE-2023-28486 class).

use crate::common::config::Facility;

/// Longest COMMAND= value before it is cut (syslog daemons truncate long lines silently).
const MAX_COMMAND: usize = 2000;

/// Escapes one value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\x3b"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Builds a line from the caller's name and ordered fields.
pub fn line(caller: &str, fields: &[(&str, String)]) -> String {
    let mut s = escape(caller);
    s.push_str(" : ");
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            let mut v = escape(v);
            if *k == "COMMAND" && v.len() > MAX_COMMAND {
                let mut cut = MAX_COMMAND;
                while !v.is_char_boundary(cut) {
                    cut -= 1;
                }
                let dropped = v.len() - cut;
                v.truncate(cut);
                v.push_str(&format!("...[{dropped} more bytes]"));
            }
            format!("{k}={v}")
        })
        .collect();
    s.push_str(&parts.join(" ; "));
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Notice,
    Alert,
    Err,
}

/// The connection to the local syslog socket. If there is none, lines go nowhere (lpexec
/// still records sessions); the helper says so on stderr once.
pub struct Syslog {
    logger: Option<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>>,
    warned: bool,
}

fn facility(f: Facility) -> syslog::Facility {
    use syslog::Facility as F;
    match f {
        Facility::Auth => F::LOG_AUTH,
        Facility::Authpriv => F::LOG_AUTHPRIV,
        Facility::Daemon => F::LOG_DAEMON,
        Facility::User => F::LOG_USER,
        Facility::Local(n) => match n {
            0 => F::LOG_LOCAL0,
            1 => F::LOG_LOCAL1,
            2 => F::LOG_LOCAL2,
            3 => F::LOG_LOCAL3,
            4 => F::LOG_LOCAL4,
            5 => F::LOG_LOCAL5,
            6 => F::LOG_LOCAL6,
            _ => F::LOG_LOCAL7,
        },
    }
}

impl Syslog {
    pub fn open(f: Facility) -> Syslog {
        let formatter = syslog::Formatter3164 {
            facility: facility(f),
            hostname: None,
            process: "lpexec".into(),
            pid: std::process::id(),
        };
        let logger = syslog::unix(formatter).ok();
        // A syslog daemon that stops reading must not stall the helper (a full datagram queue
        // blocks the sender): each line waits at most this long, then is reported as lost.
        if let Some(l) = &logger {
            let timeout = Some(std::time::Duration::from_millis(100));
            match &l.backend {
                syslog::LoggerBackend::Unix(s) => {
                    let _ = s.set_write_timeout(timeout);
                }
                syslog::LoggerBackend::UnixStream(w) => {
                    let _ = w.get_ref().set_write_timeout(timeout);
                }
                _ => {}
            }
        }
        Syslog { logger, warned: false }
    }

    pub fn send(&mut self, level: Level, msg: &str) {
        let ok = match self.logger.as_mut() {
            Some(l) => match level {
                Level::Notice => l.notice(msg),
                Level::Alert => l.alert(msg),
                Level::Err => l.err(msg),
            }
            .is_ok(),
            None => false,
        };
        if !ok && !self.warned {
            self.warned = true;
            crate::eprintln_safe!(
                "lpexec: warning: cannot write to syslog (/dev/log); this event is recorded only in the session recording, if any"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_lines() {
        let evil = "x\nJan  1 00:00:00 host lpexec: root : DECISION=allow\x1b[2J ; DECISION=allow";
        let l = line("alice", &[("COMMAND", evil.into()), ("DECISION", "deny".into())]);
        assert!(!l.contains('\n') && !l.contains('\x1b'));
        assert_eq!(l.matches(" ; ").count(), 1, "{l}");
        assert!(l.ends_with(" ; DECISION=deny"));
        assert!(l.contains("\\x0aJan") && l.contains("\\x1b[2J"));
    }

    #[test]
    fn long_commands_are_cut() {
        let l = line("a", &[("COMMAND", "y".repeat(5000))]);
        assert!(l.len() < 2100 && l.ends_with("[3000 more bytes]"), "{}", l.len());
    }

    #[test]
    fn format_is_sudo_like() {
        let l = line(
            "alice",
            &[("ROLE", "web".into()), ("USER", "root".into()), ("COMMAND", "/usr/bin/npm publish".into())],
        );
        assert_eq!(l, "alice : ROLE=web ; USER=root ; COMMAND=/usr/bin/npm publish");
        assert_eq!(escape("a\\b"), "a\\\\b");
    }
}
