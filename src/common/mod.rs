//! Types shared by all three binaries: configuration and policy as checked types, the
//! diagnostics that point at a file, line and column, identities, and small helpers (quoting,
//! durations, stdio writes that cannot panic).
//!
//! Nothing here performs privileged work; parsing is pure so that `lpexec check` (unprivileged)
//! and the helper (setuid) accept and refuse exactly the same files.

pub mod config;
pub mod diag;
pub mod duration;
pub mod identity;
pub mod names;
pub mod out;
pub mod paths;
pub mod policy;
pub mod quote;
pub mod session;
pub mod timefmt;
