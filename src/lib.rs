//! lpexec: least-privilege command execution for Linux.
//!
//! Three binaries share this library. `lpexec` is the unprivileged front end (all user-facing
//! verbs), `lpexec-helper` is the small setuid-root part that verifies, decides, runs and
//! records, and `lpexec-approvald` is the approval service. Everything that touches libc or
//! needs `unsafe` lives in [`system`]; every other module is safe Rust.

#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod approval;
pub mod approvald;
pub mod common;
pub mod exec;
pub mod front;
pub mod helper;
pub mod identity;
pub mod policy;
pub mod record;
#[allow(unsafe_code)]
pub mod system;
