//! Signals delivered as readable events (signalfd), so the relay loops handle them in order
//! with their other inputs and no code runs in signal-handler context.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::{Context, SysError};

/// A received signal and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub signal: Signal,
    /// Sender pid (0 for the kernel, e.g. a terminal-generated signal).
    pub pid: i32,
    /// `si_code`: `SI_USER` (0) for kill(2), `SI_KERNEL` (0x80) for the terminal, etc.
    pub code: i32,
}

impl Received {
    /// Sent by a process through kill(2)/killpg(2)/raise(3), as opposed to by the kernel
    /// (e.g. the terminal driver).
    pub fn from_user(&self) -> bool {
        self.code == libc::SI_USER || self.code == libc::SI_TKILL || self.code == libc::SI_QUEUE
    }
}

/// Blocks `signals` and receives them through a descriptor.
pub struct SignalQueue {
    fd: SignalFd,
    mask: SigSet,
}

impl SignalQueue {
    pub fn new(signals: &[Signal]) -> Result<SignalQueue, SysError> {
        let mut mask = SigSet::empty();
        for s in signals {
            mask.add(*s);
        }
        mask.thread_block().ctx(|| "sigprocmask".into())?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .ctx(|| "signalfd".into())?;
        Ok(SignalQueue { fd, mask })
    }

    /// The next pending signal, if any.
    pub fn pop(&mut self) -> Option<Received> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Some(Received {
                signal: Signal::try_from(info.ssi_signo as i32).ok()?,
                pid: info.ssi_pid as i32,
                code: info.ssi_code,
            }),
            _ => None,
        }
    }

    /// Unblocks the signals again (in a child before exec; the descriptor is close-on-exec).
    pub fn unblock(&self) {
        let _ = self.mask.thread_unblock();
    }
}

impl AsFd for SignalQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
