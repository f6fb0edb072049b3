//! Terminals: the caller's (attributes, size, raw mode, always restored) and the new
//! pseudo-terminal a command runs on.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Mutex;

use nix::fcntl::OFlag;
use nix::sys::termios::{self, SetArg, Termios};

use super::{Context, Errno, SysError};

pub use nix::pty::Winsize;

nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);
nix::ioctl_write_int_bad!(tiocsctty, libc::TIOCSCTTY);

/// The caller's controlling terminal, opened anew (`/dev/tty`) so that making it non-blocking
/// does not change the descriptor the caller's shell shares with us.
pub fn open_controlling_tty() -> Option<OwnedFd> {
    nix::fcntl::open(
        "/dev/tty",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()
}

pub fn is_tty(fd: BorrowedFd<'_>) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

/// The terminal's name as in `TTY=pts/3`: read from the kernel's view of the descriptor (never
/// parsed out of /proc/self/stat, whose command-name field the caller controls:
/// CVE-2017-1000367). `None` if `fd` is not a terminal under /dev.
pub fn tty_name(fd: BorrowedFd<'_>) -> Option<String> {
    if !is_tty(fd) {
        return None;
    }
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let s = link.to_str()?;
    let name = s.strip_prefix("/dev/")?;
    if name.is_empty()
        || name.contains("..")
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    {
        return None;
    }
    Some(name.to_string())
}

pub fn get_attrs(fd: BorrowedFd<'_>) -> Result<Termios, SysError> {
    termios::tcgetattr(fd).ctx(|| "tcgetattr".into())
}

pub fn set_attrs(fd: BorrowedFd<'_>, t: &Termios) -> Result<(), SysError> {
    termios::tcsetattr(fd, SetArg::TCSADRAIN, t).ctx(|| "tcsetattr".into())
}

/// Raw mode: every byte, including ^C and ^Z, goes to the command's terminal, which applies
/// its own line discipline.
pub fn raw(t: &Termios) -> Termios {
    let mut r = t.clone();
    termios::cfmakeraw(&mut r);
    r
}

pub fn get_winsize(fd: BorrowedFd<'_>) -> Option<Winsize> {
    let mut ws = Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` into the pointed-to, properly sized and
    // aligned local; the fd is borrowed for the duration of the call.
    let ok = unsafe { tiocgwinsz(fd.as_raw_fd(), &mut ws) }.is_ok();
    (ok && ws.ws_row > 0 && ws.ws_col > 0).then_some(ws)
}

pub fn set_winsize(fd: BorrowedFd<'_>, ws: &Winsize) -> Result<(), SysError> {
    // SAFETY: TIOCSWINSZ reads one `struct winsize` from the pointed-to local.
    unsafe { tiocswinsz(fd.as_raw_fd(), ws) }.map(drop).ctx(|| "TIOCSWINSZ".into())
}

/// A new pseudo-terminal pair (both ends close-on-exec).
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

pub fn open_pty(ws: Option<&Winsize>, attrs: Option<&Termios>) -> Result<Pty, SysError> {
    let r = nix::pty::openpty(ws, attrs).ctx(|| "openpty".into())?;
    for fd in [&r.master, &r.slave] {
        super::fd::set_cloexec(fd.as_fd(), true).ctx(|| "FD_CLOEXEC".into())?;
    }
    Ok(Pty { master: r.master, slave: r.slave })
}

/// Makes `fd` the controlling terminal of the calling session leader.
pub fn make_controlling(fd: BorrowedFd<'_>) -> Result<(), SysError> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal) and no pointers.
    unsafe { tiocsctty(fd.as_raw_fd(), 0) }.map(drop).ctx(|| "TIOCSCTTY".into())
}

pub fn set_foreground(fd: BorrowedFd<'_>, pgrp: nix::unistd::Pid) -> Result<(), Errno> {
    nix::unistd::tcsetpgrp(fd, pgrp)
}

/// The terminal state to put back if the helper dies unexpectedly (a panic hook calls
/// [`emergency_restore`]): the caller must never be left with a raw terminal.
static SAVED: Mutex<Option<(RawFd, Termios)>> = Mutex::new(None);

/// Remembers the caller's original terminal state.
pub fn remember_for_restore(fd: BorrowedFd<'_>, t: &Termios) {
    if let Ok(mut g) = SAVED.lock() {
        *g = Some((fd.as_raw_fd(), t.clone()));
    }
}

pub fn forget_restore() {
    if let Ok(mut g) = SAVED.lock() {
        *g = None;
    }
}

/// Restores the remembered terminal state, if any.
pub fn emergency_restore() {
    if let Ok(g) = SAVED.try_lock() {
        if let Some((fd, t)) = g.as_ref() {
            // SAFETY: the descriptor was registered by `remember_for_restore` from a live
            // descriptor and is deregistered before it is closed; tcsetattr only reads `t`.
            let fd = unsafe { BorrowedFd::borrow_raw(*fd) };
            let _ = termios::tcsetattr(fd, SetArg::TCSANOW, t);
        }
    }
}
