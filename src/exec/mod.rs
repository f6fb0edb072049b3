//! Running the command (SPEC §9), like sudo with `use_pty`.
//!
//! With a controlling terminal the command runs in its own session on a new pseudo-terminal
//! ([`pty`]): a monitor process is the session leader, the command is its child in its own
//! process group (so Ctrl-Z works), and the helper relays bytes between the caller's terminal
//! and the pty. Without one ([`nopty`]) the command is the helper's child in the caller's
//! process group. In both modes stdout and stderr that are not terminals go through pipes, so
//! they stay separate for the caller and can be recorded.
//!
//! Every byte the command writes passes through an [`Observer`] (the recorder hooks in here)
//! before the caller sees it; after the command exits, everything still buffered is drained.

mod backchannel;
mod child;
mod nopty;
mod pty;
mod relay;

use std::ffi::CString;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::system::process::{Creds, SavedLimits};
use crate::system::{Errno, SysError};

/// Where output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The pseudo-terminal (everything the command writes to its terminal).
    Tty,
    Stdout,
    Stderr,
}

/// Watches a session's byte streams. The recorder implements this; the relay calls it with
/// every chunk of output before showing it, so an observer can also change what the caller
/// sees (live masking) by writing something other than `data` into `show`.
pub trait Observer {
    /// `data` was produced on `stream`; append what the caller should see to `show`.
    fn output(&mut self, stream: Stream, data: &[u8], show: &mut Vec<u8>) {
        let _ = stream;
        show.extend_from_slice(data);
    }
    /// The caller typed `data` (terminal mode only).
    fn input(&mut self, data: &[u8]) {
        let _ = data;
    }
    /// The terminal size changed (also called once at start).
    fn resize(&mut self, cols: u16, rows: u16) {
        let _ = (cols, rows);
    }
    /// When the observer next wants [`Observer::tick`] (e.g. to release held-back output).
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// Called at or after the deadline; `show` receives output released now.
    fn tick(&mut self, show: &mut dyn FnMut(Stream, &[u8])) {
        let _ = show;
    }
    /// Called once when the session ends; release everything held back.
    fn finish(&mut self, show: &mut dyn FnMut(Stream, &[u8])) {
        let _ = show;
    }
    /// A reason to stop the command now (e.g. the recording cannot be written and the
    /// policy says not to run unrecorded). Checked after every call.
    fn stop_reason(&mut self) -> Option<String> {
        None
    }
}

/// An observer that records nothing and shows everything.
pub struct PassThrough;
impl Observer for PassThrough {}

/// Everything needed to start the command.
pub struct Command {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub creds: Creds,
    pub umask: u32,
    pub limits: SavedLimits,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(Signal),
    /// exec(2) failed in the child with this error.
    ExecFailed(Errno),
    /// Preparing the child (privileges, descriptors) failed before exec.
    SetupFailed(Errno),
}

impl Outcome {
    /// The status lpexec reports for this outcome (`env`/`timeout` convention for exec
    /// failures: 127 not found, 126 not executable).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(c) => *c,
            Outcome::Signaled(s) => 128 + *s as i32,
            Outcome::ExecFailed(Errno::ENOENT) => 127,
            Outcome::ExecFailed(_) => 126,
            Outcome::SetupFailed(_) => 125,
        }
    }
}

/// Facts about the session the caller may want (tty name for logs, size for the recording).
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    pub tty: Option<String>,
    pub cols: u16,
    pub rows: u16,
    pub uses_pty: bool,
}

/// Prepares the session: decides pty or not, reads the caller's terminal size.
pub fn probe() -> SessionInfo {
    use crate::system::{fd, term};
    let ctty = term::open_controlling_tty();
    let tty = (0..=2).find_map(|n| term::tty_name(fd::stdio(n)));
    let ws = ctty.as_ref().and_then(|t| term::get_winsize(std::os::fd::AsFd::as_fd(t)));
    SessionInfo {
        tty,
        cols: ws.map_or(80, |w| w.ws_col),
        rows: ws.map_or(24, |w| w.ws_row),
        uses_pty: ctty.is_some(),
    }
}

/// Runs the command to completion, relaying its I/O through `observer`.
///
/// `interpose`: route stdout/stderr that are not terminals through the relay (needed to record
/// or mask them); without it they are handed to the command directly.
pub fn run(cmd: &Command, interpose: bool, observer: &mut dyn Observer) -> Result<Outcome, SysError> {
    match crate::system::term::open_controlling_tty() {
        Some(tty) => pty::run(cmd, tty, interpose, observer),
        None => nopty::run(cmd, interpose, observer),
    }
}

/// Maps the child's pre-exec report to an outcome.
fn failed_outcome(stage: u8, errno: Errno) -> Outcome {
    if stage == child::STAGE_EXEC { Outcome::ExecFailed(errno) } else { Outcome::SetupFailed(errno) }
}
