//! The command's side of the fork: from the helper's (or monitor's) copy of the process to
//! the command's image, in the one order that is safe — standard streams in place, every other
//! descriptor closed, the caller's resource limits back, privileges dropped, umask, default
//! signals — then exec.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::Command;
use crate::system::{Errno, fd, process};

/// What the command's descriptors 0-2 are (`None`: keep the inherited one).
pub struct ChildIo<'a> {
    pub stdio: [Option<BorrowedFd<'a>>; 3],
}

/// Stage markers written to the error pipe before the errno.
pub const STAGE_SETUP: u8 = 1;
pub const STAGE_EXEC: u8 = 2;

/// Never returns. On failure, writes `[stage, errno (4 bytes)]` to `report` and exits 127.
pub fn exec_child(cmd: &Command, io: &ChildIo<'_>, report: &OwnedFd) -> ! {
    let (stage, errno) = setup_and_exec(cmd, io, report);
    let mut msg = [0u8; 5];
    msg[0] = stage;
    msg[1..].copy_from_slice(&(errno as i32).to_le_bytes());
    let _ = fd::write_all(report.as_fd(), &msg);
    process::exit_now(127)
}

fn setup_and_exec(cmd: &Command, io: &ChildIo<'_>, report: &OwnedFd) -> (u8, Errno) {
    for (n, f) in io.stdio.iter().enumerate() {
        if let Some(f) = f {
            if let Err(e) = fd::dup_onto(*f, n as i32) {
                return (STAGE_SETUP, e);
            }
        }
    }
    fd::close_from(3, &[fd::raw(report)]);
    cmd.limits.restore();
    if let Err(e) = process::drop_privileges(&cmd.creds) {
        return (STAGE_SETUP, e.errno);
    }
    process::umask(cmd.umask);
    process::reset_signals();
    (STAGE_EXEC, process::exec(&cmd.path, &cmd.argv, &cmd.envp))
}

/// Reads the child's report after closing our copy of the write end: `Ok(())` if exec
/// succeeded (the pipe closed on exec with nothing written).
pub fn read_report(r: &OwnedFd) -> Result<(), (u8, Errno)> {
    let mut b = [0u8; 5];
    let mut got = 0;
    while got < b.len() {
        match fd::read(r.as_fd(), &mut b[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    if got < b.len() {
        return Ok(());
    }
    let errno = i32::from_le_bytes([b[1], b[2], b[3], b[4]]);
    Err((b[0], Errno::from_raw(errno)))
}
