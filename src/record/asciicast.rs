//! The asciicast v2 format: a JSON header line, then one JSON array per event
//! (`[seconds, "o", "text"]`), each on its own line.
//!
//! Lines are built here as complete byte strings so the recorder can write each with a single
//! `write(2)`: whatever happens to the writer, every line in the file is whole.

use serde::{Deserialize, Serialize};

/// Which bytes need escaping in a JSON string: `"`, `\\`, and the control characters.
const ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t
};

/// Appends `s` as a JSON string literal (quotes included). Control characters are escaped;
/// everything else, including non-ASCII text, is copied as is (in runs, not byte by byte).
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !ESCAPE[b as usize] {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// One event line: `[12.345678, "o", "text"]\n`.
pub fn event_line(out: &mut Vec<u8>, secs: f64, code: &str, data: &str) {
    out.extend_from_slice(format!("[{secs:.6}, \"{code}\", ").as_bytes());
    push_json_str(out, data);
    out.extend_from_slice(b"]\n");
}

/// lpexec's own metadata in the header (`"lpexec": {...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub session: String,
    pub host: String,
    pub user: String,
    pub uid: u32,
    /// Verified OIDC identities, as `issuer:email-or-sub`.
    #[serde(default)]
    pub identity: Vec<String>,
    pub role: String,
    pub target: String,
    pub target_uid: u32,
    pub cwd: String,
    pub command_path: String,
    pub argv: Vec<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub approval: Option<String>,
    #[serde(default)]
    pub approvers: Vec<String>,
    /// `pty` (one terminal stream) or `pipes` (stdout and stderr, both recorded as "o").
    pub streams: String,
    pub record_input: bool,
}

/// The header line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub width: u16,
    pub height: u16,
    pub timestamp: u64,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub lpexec: Option<Meta>,
}

/// A parsed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: f64,
    pub code: String,
    pub data: String,
}

/// Reads a recording: the header, the events, and whether the last line was cut short.
#[derive(Debug)]
pub struct Parsed {
    pub header: Header,
    pub events: Vec<Event>,
    /// Lines that did not parse (line number, 1-based).
    pub bad_lines: Vec<usize>,
}

/// Largest recording `parse` reads into memory for replay/verify (1 GiB).
pub const MAX_PARSE: u64 = 1 << 30;

pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut lines = text.split_terminator('\n');
    let first = lines.next().ok_or("the recording is empty")?;
    let header: Header =
        serde_json::from_str(first).map_err(|e| format!("line 1 is not an asciicast header: {e}"))?;
    if header.version != 2 {
        return Err(format!(
            "asciicast version {} is not supported (lpexec reads version 2)",
            header.version
        ));
    }
    let mut events = Vec::new();
    let mut bad_lines = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<(f64, String, String)>(line) {
            Ok((time, code, data)) if time.is_finite() && time >= 0.0 => {
                events.push(Event { time, code, data })
            }
            _ => bad_lines.push(i + 2),
        }
    }
    Ok(Parsed { header, events, bad_lines })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lines_are_valid_json() {
        let mut v = Vec::new();
        event_line(&mut v, 1.5, "o", "a\"b\\c\r\n\x1b[1m\u{7f}é€");
        let line = std::str::from_utf8(&v).unwrap();
        assert!(line.ends_with("]\n") && !line[..line.len() - 1].contains('\n'));
        let (t, c, d): (f64, String, String) = serde_json::from_str(line).unwrap();
        assert_eq!((t, c.as_str(), d.as_str()), (1.5, "o", "a\"b\\c\r\n\x1b[1m\u{7f}é€"));
    }

    proptest! {
        #[test]
        fn every_string_round_trips(s in ".*") {
            let mut v = Vec::new();
            push_json_str(&mut v, &s);
            let back: String = serde_json::from_slice(&v).unwrap();
            prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn parse_tolerates_a_cut_last_line() {
        let text = "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1}\n[0.1, \"o\", \"hi\"]\n[0.2, \"o\", \"th";
        let p = parse(text).unwrap();
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.bad_lines, vec![3]);
        assert!(parse("").is_err());
        assert!(parse("{\"version\":1}").is_err());
    }
}
