//! File descriptors: the standard streams, inherited descriptors, and plain reads/writes that
//! retry on `EINTR`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};

use super::Errno;

/// Borrows one of the standard descriptors 0, 1, 2.
pub fn stdio(n: RawFd) -> BorrowedFd<'static> {
    assert!((0..=2).contains(&n), "stdio() is for descriptors 0-2");
    // SAFETY: 0, 1 and 2 are kept open for the whole life of the process (`ensure_stdio` opens
    // /dev/null on any that the caller closed, before anything else runs).
    unsafe { BorrowedFd::borrow_raw(n) }
}

/// Whether descriptor `n` is open.
pub fn is_open(n: RawFd) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table; an invalid fd yields EBADF and the
    // borrow is never used beyond this call.
    let fd = unsafe { BorrowedFd::borrow_raw(n) };
    fcntl(fd, FcntlArg::F_GETFD).is_ok()
}

/// Opens `/dev/null` on any of 0, 1, 2 that is closed, so that files the program opens later
/// can never land on a standard stream (a caller could otherwise make the helper write
/// diagnostics into a file it opened).
pub fn ensure_stdio() -> Result<(), Errno> {
    for n in 0..=2 {
        if !is_open(n) {
            let fd = nix::fcntl::open("/dev/null", OFlag::O_RDWR, nix::sys::stat::Mode::empty())?;
            let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
            if raw != n {
                // The lowest free descriptor is returned, so with n closed this cannot happen;
                // refuse rather than guess.
                return Err(Errno::EBADF);
            }
        }
    }
    Ok(())
}

/// Takes ownership of an inherited descriptor number (the front end's request channel).
pub fn take_inherited(n: RawFd) -> Option<OwnedFd> {
    if n <= 2 || !is_open(n) {
        return None;
    }
    // SAFETY: `n` is open (checked above), is not a standard stream, and nothing else in this
    // process refers to it: it was inherited across exec and is claimed exactly once, before
    // `close_from` closes every other inherited descriptor.
    Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) })
}

/// Closes every descriptor numbered `from` or higher, except those in `keep`.
pub fn close_from(from: RawFd, keep: &[RawFd]) {
    let mut start = from;
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&k| k >= from).collect();
    keep.sort_unstable();
    keep.push(RawFd::MAX);
    for k in keep {
        if start < k {
            close_range(start, k - 1);
        }
        start = k.saturating_add(1);
    }
}

fn close_range(first: RawFd, last: RawFd) {
    // SAFETY: close_range(2) closes descriptors in [first, last]; it cannot corrupt memory.
    // Callers only close descriptors that no live Rust object owns (inherited ones, before any
    // are wrapped, or in a child between fork and exec).
    let rc = unsafe {
        libc::syscall(libc::SYS_close_range, first as libc::c_uint, last as libc::c_uint, 0 as libc::c_uint)
    };
    if rc != 0 {
        // Kernels before 5.9: close one by one.
        let upper = last.min(65535);
        for n in first..=upper {
            // SAFETY: as above, closing a descriptor number nothing owns.
            unsafe { libc::close(n) };
        }
    }
}

pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> Result<(), Errno> {
    let flags = if on { FdFlag::FD_CLOEXEC } else { FdFlag::empty() };
    fcntl(fd, FcntlArg::F_SETFD(flags)).map(drop)
}

pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> Result<(), Errno> {
    let cur = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    let new = if on { cur | OFlag::O_NONBLOCK } else { cur & !OFlag::O_NONBLOCK };
    fcntl(fd, FcntlArg::F_SETFL(new)).map(drop)
}

/// `read(2)`, retrying on `EINTR`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// `write(2)`, retrying on `EINTR`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    loop {
        match nix::unistd::write(fd, buf) {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// Writes everything, blocking as needed (`EAGAIN` on a non-blocking fd waits with poll).
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EAGAIN) => {
                let mut p = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut p, nix::poll::PollTimeout::from(1000u16));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads until end of file, at most `limit` bytes; `Err(EFBIG)` beyond that.
pub fn read_to_end_limited(fd: BorrowedFd<'_>, limit: usize) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match read(fd, &mut buf)? {
            0 => return Ok(out),
            n => {
                if out.len() + n > limit {
                    return Err(Errno::EFBIG);
                }
                out.extend_from_slice(&buf[..n]);
            }
        }
    }
}

/// A pipe whose ends are close-on-exec.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC)
}

/// Duplicates `fd` onto standard descriptor `n` (0-2) in a child before exec.
pub fn dup_onto(fd: BorrowedFd<'_>, n: RawFd) -> Result<(), Errno> {
    let r = match n {
        0 => nix::unistd::dup2_stdin(fd),
        1 => nix::unistd::dup2_stdout(fd),
        2 => nix::unistd::dup2_stderr(fd),
        _ => Err(Errno::EBADF),
    };
    r?;
    // dup2 onto the same number leaves the flags alone; make sure the stream survives exec.
    set_cloexec(stdio(n), false)
}

pub fn raw(fd: &impl AsFd) -> RawFd {
    std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd())
}
