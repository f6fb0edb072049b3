//! Structured logs: one JSON object per line on stderr (journald keeps them; `jq` reads them).
//!
//! Every line has `time` (RFC 3339, UTC), `level` and `event`; request-related lines add
//! `request` (the request id), `principal` (`issuer:email` or `issuer:sub` of the verified
//! caller) and `remote` (the peer address). Tokens never appear in logs.

use serde_json::{Map, Value};

use crate::common::timefmt::Utc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Builds one log line.
pub struct Line {
    fields: Map<String, Value>,
}

/// Starts a log line for `event`.
pub fn line(level: Level, event: &str) -> Line {
    let mut fields = Map::new();
    fields.insert("time".into(), Value::String(Utc::now().rfc3339()));
    fields.insert("level".into(), Value::String(level.as_str().into()));
    fields.insert("event".into(), Value::String(event.into()));
    Line { fields }
}

impl Line {
    /// Adds a field (skipped when `None`).
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Line {
        let v = value.into();
        if !v.is_null() {
            self.fields.insert(key.into(), v);
        }
        self
    }

    /// Writes the line to stderr (never panics, even when stderr is gone).
    pub fn emit(self) {
        let mut s = Value::Object(self.fields).to_string();
        s.push('\n');
        crate::common::out::err(&s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_the_fixed_fields() {
        let l = line(Level::Warn, "refused").field("request", "req_x").field("comment", Value::Null);
        let v = Value::Object(l.fields);
        assert_eq!(v["level"], "warn");
        assert_eq!(v["event"], "refused");
        assert_eq!(v["request"], "req_x");
        assert!(v.get("comment").is_none());
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
