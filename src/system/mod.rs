//! The operating-system layer: the only module that calls libc/nix directly and the only one
//! allowed `unsafe`. Every `unsafe` block carries a `// SAFETY:` comment (enforced by
//! `clippy::undocumented_unsafe_blocks`).
//!
//! The rest of lpexec sees small, typed operations: look up accounts, open configuration
//! securely, fork and exec with dropped privileges, drive a terminal, receive signals.

pub mod fd;
pub mod fs;
pub mod interrupt;
pub mod private;
pub mod process;
pub mod signal;
pub mod term;
pub mod user;

use std::fmt;

pub use nix::errno::Errno;

/// A failed system call, with what lpexec was trying to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    pub what: String,
    pub errno: Errno,
}

impl SysError {
    pub fn new(what: impl Into<String>, errno: Errno) -> SysError {
        SysError { what: what.into(), errno }
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.errno.desc())
    }
}

impl std::error::Error for SysError {}

/// Attaches context to a nix result.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, SysError>;
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, SysError> {
        self.map_err(|e| SysError::new(what(), e))
    }
}
