//! What the front end asks the helper, sent over descriptor 3 as one JSON document (never in
//! argv, so tokens never show up in `ps`, and so the size can be bounded before parsing).
//!
//! The helper trusts nothing in it: the caller's uid, groups and working directory come from
//! the kernel; every field here is checked against policy.

use serde::{Deserialize, Serialize};

/// Largest request the helper reads; anything bigger is refused before parsing.
pub const MAX_REQUEST: usize = 1024 * 1024;
/// Largest number of arguments.
pub const MAX_ARGS: usize = 8192;
/// Longest `--reason`.
pub const MAX_REASON: usize = 1024;

/// The descriptor the request arrives on.
pub const CONTROL_FD: i32 = 3;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Decide and run.
    Run,
    /// Decide and print why, run nothing.
    Explain,
    /// List what the caller may run.
    List,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub version: u32,
    pub mode: Mode,
    /// The command and its arguments (empty for `list`).
    #[serde(default)]
    pub argv: Vec<String>,
    /// `-u USER` (name or `#uid`).
    #[serde(default)]
    pub user: Option<String>,
    /// `-r ROLE`.
    #[serde(default)]
    pub role: Option<String>,
    /// `--reason TEXT`.
    #[serde(default)]
    pub reason: Option<String>,
    /// ID tokens the caller presents (from `lpexec login` or a CI job); verified by the helper.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_tokens: Vec<crate::identity::Presented>,
    /// An approval token from `lpexec-approvald` for this exact run; verified by the helper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_token: Option<String>,
}

impl Request {
    /// Parses and bounds a request.
    pub fn decode(bytes: &[u8]) -> Result<Request, String> {
        if bytes.len() > MAX_REQUEST {
            return Err(format!("request is larger than {} bytes", MAX_REQUEST));
        }
        let r: Request = serde_json::from_slice(bytes).map_err(|e| format!("malformed request: {e}"))?;
        if r.version != VERSION {
            return Err(format!(
                "request version {} is not supported (helper speaks {VERSION}); lpexec and lpexec-helper come from different builds",
                r.version
            ));
        }
        if r.argv.len() > MAX_ARGS {
            return Err(format!("too many arguments ({}; at most {MAX_ARGS})", r.argv.len()));
        }
        if r.mode != Mode::List && r.argv.first().is_none_or(|c| c.is_empty()) {
            return Err("no command given".into());
        }
        if r.argv.iter().any(|a| a.contains('\0')) {
            return Err("an argument contains a NUL byte".into());
        }
        if let Some(reason) = &r.reason {
            if reason.len() > MAX_REASON {
                return Err(format!("--reason is longer than {MAX_REASON} bytes"));
            }
        }
        if r.approval_token.as_ref().is_some_and(|t| t.len() > crate::approval::MAX_TOKEN) {
            return Err(format!("the approval token is larger than {} bytes", crate::approval::MAX_TOKEN));
        }
        for (what, v) in [("user", &r.user), ("role", &r.role)] {
            if v.as_ref().is_some_and(|v| v.is_empty() || v.len() > 64) {
                return Err(format!("invalid {what}"));
            }
        }
        Ok(r)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(argv: &[&str]) -> Request {
        Request {
            version: VERSION,
            mode: Mode::Run,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            user: None,
            role: None,
            reason: None,
            id_tokens: Vec::new(),
            approval_token: None,
        }
    }

    #[test]
    fn round_trip() {
        let r = req(&["npm", "publish"]);
        assert_eq!(Request::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn refuses_bad_requests() {
        assert!(Request::decode(b"").is_err());
        assert!(Request::decode(b"{").is_err());
        assert!(Request::decode(b"\xff\xfe").is_err());
        assert!(Request::decode(br#"{"version":1,"mode":"run","argv":["ls"],"extra":1}"#).is_err());
        assert!(Request::decode(br#"{"version":2,"mode":"run","argv":["ls"]}"#).is_err());
        assert!(Request::decode(&req(&[]).encode()).is_err());
        assert!(Request::decode(&req(&["ls", "a\0b"]).encode()).is_err());
        let huge = "x".repeat(MAX_REQUEST);
        assert!(Request::decode(&req(&["ls", &huge]).encode()).unwrap_err().contains("larger than"));
        let many: Vec<&str> = std::iter::repeat_n("a", MAX_ARGS + 1).collect();
        assert!(Request::decode(&req(&many).encode()).is_err());
    }
}
