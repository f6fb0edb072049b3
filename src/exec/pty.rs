//! With a terminal: the command runs in its own session on a new pseudo-terminal, like sudo's
//! `use_pty`. Three processes:
//!
//! - the helper (here, in the caller's session and process group) relays the caller's terminal
//!   to the pty master and back, passes output to the observer, follows window size changes,
//!   and mirrors job control: when the command stops, it restores the caller's terminal and
//!   stops itself (and the front end), and continues the command on `fg`;
//! - the monitor, root with real uid 0 (so the caller cannot signal it), is the new session's
//!   leader with the pty as its controlling terminal; it starts the command, reports its state,
//!   and kills it if the helper disappears;
//! - the command, in its own process group, the pty's foreground group.
//!
//! The pty isolates the caller's terminal: `TIOCSTI` or `TIOCLINUX` from the command reach the
//! pty, not the shell the caller returns to.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::termios::Termios;
use nix::unistd::Pid;

use super::backchannel::{self, Channel, Msg};
use super::child::{ChildIo, exec_child, read_report};
use super::nopty::{RELAYED, next_timeout};
use super::relay::{Buf, CHUNK, Drain, read_some};
use super::{Command, Observer, Outcome, Stream, failed_outcome};
use crate::system::process::{self, ChildState, Forked};
use crate::system::signal::SignalQueue;
use crate::system::{Errno, SysError, fd, term};

/// The caller's terminal in raw mode for as long as this lives.
struct RawGuard<'a> {
    tty: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawGuard<'a> {
    fn new(tty: BorrowedFd<'a>, saved: &Termios) -> Option<RawGuard<'a>> {
        term::remember_for_restore(tty, saved);
        term::set_attrs(tty, &term::raw(saved)).ok()?;
        Some(RawGuard { tty, saved: saved.clone() })
    }
}

impl Drop for RawGuard<'_> {
    fn drop(&mut self) {
        let _ = term::set_attrs(self.tty, &self.saved);
        term::forget_restore();
    }
}

struct Pipe {
    r: OwnedFd,
    stream: Stream,
    sink: i32,
    open: bool,
}

pub(super) fn run(
    cmd: &Command,
    tty: OwnedFd,
    interpose: bool,
    observer: &mut dyn Observer,
) -> Result<Outcome, SysError> {
    let is_tty = |n| term::is_tty(fd::stdio(n));
    let (stdin_tty, stdout_tty, stderr_tty) = (is_tty(0), is_tty(1), is_tty(2));
    let attrs = term::get_attrs(tty.as_fd()).ok();
    let ws = term::get_winsize(tty.as_fd());
    let pty = term::open_pty(ws.as_ref(), attrs.as_ref())?;
    fd::set_nonblocking(pty.master.as_fd(), true).map_err(|e| SysError::new("O_NONBLOCK", e))?;
    fd::set_nonblocking(tty.as_fd(), true).map_err(|e| SysError::new("O_NONBLOCK", e))?;

    let mk_pipe = |want: bool| -> Result<Option<(OwnedFd, OwnedFd)>, SysError> {
        if want { fd::pipe().map(Some).map_err(|e| SysError::new("pipe", e)) } else { Ok(None) }
    };
    let out_pipe = mk_pipe(!stdout_tty && interpose)?;
    let err_pipe = mk_pipe(!stderr_tty && interpose)?;

    let mut signals: Vec<Signal> = RELAYED.to_vec();
    signals.extend([
        Signal::SIGCHLD,
        Signal::SIGWINCH,
        Signal::SIGTSTP,
        Signal::SIGCONT,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ]);
    let mut sigq = SignalQueue::new(&signals)?;
    process::ignore_signal(Signal::SIGPIPE);
    let (chan, theirs) = backchannel::pair()?;

    let monitor_pid = match process::fork()? {
        Forked::Child => {
            drop(chan);
            drop(sigq);
            drop(pty.master);
            let slave = pty.slave;
            let (out_w, err_w) =
                (out_pipe.map(|(r, w)| (drop(r), w).1), err_pipe.map(|(r, w)| (drop(r), w).1));
            // The monitor keeps the caller's terminal and its original mode, to put it back if
            // the helper is killed while the terminal is raw.
            let restore = attrs.clone().map(|a| (tty, a));
            monitor(cmd, slave, [stdin_tty, stdout_tty, stderr_tty], out_w, err_w, theirs, restore)
        }
        Forked::Parent(pid) => pid,
    };
    drop(theirs);
    drop(pty.slave);
    let mut pipes = Vec::new();
    for (p, stream, sink) in [(out_pipe, Stream::Stdout, 1), (err_pipe, Stream::Stderr, 2)] {
        if let Some((r, w)) = p {
            drop(w);
            fd::set_nonblocking(r.as_fd(), true).map_err(|e| SysError::new("O_NONBLOCK", e))?;
            pipes.push(Pipe { r, stream, sink, open: true });
        }
    }

    let cmd_pid = match chan.recv() {
        Ok(Some(Msg::Started(pid))) => Pid::from_raw(pid),
        Ok(Some(Msg::ExecFailed(e))) => {
            let _ = process::wait_child(monitor_pid, true);
            return Ok(failed_outcome(super::child::STAGE_EXEC, e));
        }
        Ok(Some(Msg::SetupFailed(e))) => {
            let _ = process::wait_child(monitor_pid, true);
            return Ok(failed_outcome(super::child::STAGE_SETUP, e));
        }
        _ => {
            let _ = process::signal_process(monitor_pid, Signal::SIGKILL);
            let _ = process::wait_child(monitor_pid, true);
            return Err(SysError::new("the session monitor failed to start the command", Errno::EPROTO));
        }
    };

    let mut s = Session {
        tty: tty.as_fd(),
        master: pty.master.as_fd(),
        attrs,
        stdin_tty,
        raw: None,
        foreground: false,
        tty_in: stdin_tty,
        tty_out: true,
        master_open: true,
        cmd_stopped: false,
        to_pty: Buf::default(),
        to_tty: Buf::default(),
        chan: &chan,
    };
    s.take_foreground();
    if let Some(ws) = ws {
        observer.resize(ws.ws_col, ws.ws_row);
    }

    let mut scratch = vec![0u8; CHUNK];
    let mut show = Vec::with_capacity(CHUNK);
    let mut outcome: Option<Outcome> = None;
    let mut drain: Option<Drain> = None;
    let mut stopping: Option<Instant> = None;
    let self_pid = process::getpid().as_raw();
    loop {
        if outcome.is_some() {
            let done = !s.master_open && pipes.iter().all(|p| !p.open);
            if done || drain.as_ref().is_some_and(Drain::expired) {
                break;
            }
        }
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(6);
        fds.push(PollFd::new(sigq.as_fd(), PollFlags::POLLIN));
        let chan_i = outcome.is_none().then(|| {
            fds.push(PollFd::new(chan.0.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let mut mflags = PollFlags::empty();
        if s.master_open && s.to_tty.has_room() {
            mflags |= PollFlags::POLLIN;
        }
        if s.master_open && !s.to_pty.is_empty() {
            mflags |= PollFlags::POLLOUT;
        }
        let master_i = (!mflags.is_empty()).then(|| {
            fds.push(PollFd::new(s.master, mflags));
            fds.len() - 1
        });
        let mut tflags = PollFlags::empty();
        if s.reading_input() && s.to_pty.has_room() {
            tflags |= PollFlags::POLLIN;
        }
        if s.tty_out && !s.to_tty.is_empty() {
            tflags |= PollFlags::POLLOUT;
        }
        let tty_i = (!tflags.is_empty()).then(|| {
            fds.push(PollFd::new(s.tty, tflags));
            fds.len() - 1
        });
        let mut pipe_i = Vec::new();
        for (k, p) in pipes.iter().enumerate() {
            if p.open {
                fds.push(PollFd::new(p.r.as_fd(), PollFlags::POLLIN));
                pipe_i.push((k, fds.len() - 1));
            }
        }
        let timeout = match stopping {
            Some(_) => PollTimeout::from(100u16),
            None => next_timeout(observer, drain.as_ref().map(Drain::deadline)),
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(SysError::new("poll", e)),
        }
        let rev: Vec<PollFlags> = fds.iter().map(|p| p.revents().unwrap_or(PollFlags::empty())).collect();
        drop(fds);
        let has = |i: Option<usize>, f: PollFlags| i.is_some_and(|i| rev[i].intersects(f));
        let any = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;

        // Signals first: a window size change or a resume must take effect before the
        // keystrokes that were typed after it are passed on.
        if rev[0].intersects(any) {
            while let Some(r) = sigq.pop() {
                if r.pid == self_pid || r.pid == monitor_pid.as_raw() || r.pid == cmd_pid.as_raw() {
                    continue; // our own job-control signals, or the session's own
                }
                match r.signal {
                    Signal::SIGCHLD | Signal::SIGTTIN | Signal::SIGTTOU => {}
                    Signal::SIGWINCH => {
                        let _ = resize(&s, observer);
                    }
                    Signal::SIGCONT => s.resume(),
                    sig if outcome.is_none() => {
                        let _ = chan.send(Msg::Signal(sig));
                    }
                    _ => {}
                }
            }
        }

        // Command output from the pty.
        if has(master_i, any) {
            let mut progressed = false;
            while s.to_tty.has_room() {
                match read_some(s.master, &mut scratch) {
                    Ok(Some(n)) => {
                        progressed = true;
                        observer.output(Stream::Tty, &scratch[..n], s.to_tty.tail());
                        if !s.tty_out {
                            s.to_tty.clear();
                        }
                    }
                    Ok(None) => {
                        s.master_open = false;
                        break;
                    }
                    Err(_) => break,
                }
            }
            if progressed {
                if let Some(d) = drain.as_mut() {
                    d.progress();
                }
            }
            s.flush_tty();
        }
        // Caller keystrokes.
        if has(tty_i, any) && s.reading_input() {
            match read_some(s.tty, &mut scratch) {
                Ok(Some(n)) => {
                    observer.input(&scratch[..n]);
                    s.to_pty.tail().extend_from_slice(&scratch[..n]);
                }
                Ok(None) => s.tty_in = false,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(_) => s.tty_in = false,
            }
        }
        if s.master_open && !s.to_pty.is_empty() && s.to_pty.flush_to(s.master).is_err() {
            s.to_pty.clear();
        }
        if has(tty_i, PollFlags::POLLOUT) {
            s.flush_tty();
        }
        // Separate stdout/stderr.
        for (k, i) in pipe_i {
            if !rev[i].intersects(any) {
                continue;
            }
            let p = &mut pipes[k];
            loop {
                match read_some(p.r.as_fd(), &mut scratch) {
                    Ok(Some(n)) => {
                        show.clear();
                        observer.output(p.stream, &scratch[..n], &mut show);
                        let _ = fd::write_all(fd::stdio(p.sink), &show);
                        if let Some(d) = drain.as_mut() {
                            d.progress();
                        }
                    }
                    Ok(None) => {
                        p.open = false;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if let Some(deadline) = observer.deadline() {
            if Instant::now() >= deadline {
                let to_tty = &mut s.to_tty;
                observer.tick(&mut |st, b| emit(st, b, to_tty));
                s.flush_tty();
            }
        }
        if outcome.is_none() {
            match stopping {
                None => {
                    if let Some(reason) = observer.stop_reason() {
                        s.restore_terminal();
                        crate::eprintln_safe!("lpexec: {reason}: stopping the command");
                        let _ = chan.send(Msg::Signal(Signal::SIGTERM));
                        let _ = chan.send(Msg::Signal(Signal::SIGCONT));
                        stopping = Some(Instant::now());
                    }
                }
                Some(t) if t.elapsed() > Duration::from_secs(3) => {
                    let _ = chan.send(Msg::Signal(Signal::SIGKILL));
                }
                Some(_) => {}
            }
        }

        // Monitor reports.
        if outcome.is_none() && has(chan_i, any) {
            match chan.recv() {
                Ok(Some(Msg::Stopped(sig))) => {
                    s.cmd_stopped = true;
                    s.suspend(sig);
                    let _ = resize(&s, observer);
                }
                Ok(Some(Msg::Exited(c))) => outcome = Some(Outcome::Exited(c)),
                Ok(Some(Msg::Signaled(sig))) => outcome = Some(Outcome::Signaled(sig)),
                Ok(Some(_)) | Err(Errno::EAGAIN) => {}
                Ok(None) | Err(_) => {
                    crate::eprintln_safe!("lpexec: the session monitor exited unexpectedly");
                    outcome = Some(Outcome::SetupFailed(Errno::EPROTO));
                }
            }
            if outcome.is_some() {
                drain = Some(Drain::start());
            }
        }
    }

    // Everything the command wrote reaches the caller before lpexec returns.
    let mut show_rest: Vec<(Stream, Vec<u8>)> = Vec::new();
    observer.finish(&mut |st, b| show_rest.push((st, b.to_vec())));
    for (st, b) in show_rest {
        emit(st, &b, &mut s.to_tty);
    }
    let give_up = Instant::now() + Duration::from_secs(5);
    while s.tty_out && !s.to_tty.is_empty() && Instant::now() < give_up {
        s.flush_tty();
        if !s.to_tty.is_empty() {
            let mut p = [PollFd::new(s.tty, PollFlags::POLLOUT)];
            let _ = poll(&mut p, PollTimeout::from(100u16));
        }
    }
    s.restore_terminal();
    let _ = process::wait_child(monitor_pid, true);
    Ok(outcome.unwrap_or(Outcome::SetupFailed(Errno::EPROTO)))
}

/// Sends released output where it belongs: terminal output to the tty buffer, pipes to 1/2.
fn emit(st: Stream, b: &[u8], to_tty: &mut Buf) {
    match st {
        Stream::Tty => to_tty.tail().extend_from_slice(b),
        Stream::Stdout => {
            let _ = fd::write_all(fd::stdio(1), b);
        }
        Stream::Stderr => {
            let _ = fd::write_all(fd::stdio(2), b);
        }
    }
}

/// Copies the caller's window size to the pty (the kernel then signals the command's
/// foreground group) and tells the observer.
fn resize(s: &Session<'_>, observer: &mut dyn Observer) -> Option<()> {
    let ws = term::get_winsize(s.tty)?;
    term::set_winsize(s.master, &ws).ok()?;
    observer.resize(ws.ws_col, ws.ws_row);
    Some(())
}

struct Session<'a> {
    tty: BorrowedFd<'a>,
    master: BorrowedFd<'a>,
    attrs: Option<Termios>,
    stdin_tty: bool,
    raw: Option<RawGuard<'a>>,
    foreground: bool,
    tty_in: bool,
    tty_out: bool,
    master_open: bool,
    cmd_stopped: bool,
    to_pty: Buf,
    to_tty: Buf,
    chan: &'a Channel,
}

impl Session<'_> {
    /// Keystrokes are read only while we are the terminal's foreground job (reading in the
    /// background would stop us with SIGTTIN).
    fn reading_input(&self) -> bool {
        self.tty_in && self.foreground && self.master_open
    }

    fn flush_tty(&mut self) {
        if self.tty_out && self.to_tty.flush_to(self.tty).is_err() {
            self.tty_out = false;
        }
    }

    fn take_foreground(&mut self) {
        self.foreground = process::foreground_group(self.tty) == Some(process::own_group());
        if self.foreground && self.stdin_tty && self.raw.is_none() {
            if let Some(a) = &self.attrs {
                self.raw = RawGuard::new(self.tty, a);
            }
        }
    }

    fn restore_terminal(&mut self) {
        self.raw = None;
    }

    /// The command stopped: give the caller their terminal back and stop ourselves and our
    /// process group (the front end) the same way, as a Ctrl-Z at the shell would.
    ///
    /// The whole process group — the front end and this helper together — is stopped by one
    /// signal: the shell only watches the front end, so a helper stopping itself afterwards
    /// could receive the shell's SIGCONT (a quick `fg`) before its own stop, and then stay
    /// stopped for good.
    fn suspend(&mut self, sig: Signal) {
        self.restore_terminal();
        let group_sig = match sig {
            Signal::SIGTTIN | Signal::SIGTTOU | Signal::SIGTSTP => sig,
            _ => Signal::SIGTSTP,
        };
        process::stop_group_with(group_sig);
        // Continued (fg/bg): pick up where we were.
        self.resume();
    }

    fn resume(&mut self) {
        self.take_foreground();
        if self.cmd_stopped {
            self.cmd_stopped = false;
            let _ = self.chan.send(Msg::Resume);
        }
    }
}

/// The monitor process. Never returns.
fn monitor(
    cmd: &Command,
    slave: OwnedFd,
    ttys: [bool; 3],
    out_w: Option<OwnedFd>,
    err_w: Option<OwnedFd>,
    chan: Channel,
    restore: Option<(OwnedFd, Termios)>,
) -> ! {
    monitor_inner(cmd, slave, ttys, out_w, err_w, &chan, restore.as_ref());
    process::exit_now(0)
}

/// `ttys[n]`: the caller's descriptor n is a terminal (so the command's n is the pty);
/// otherwise it is the pipe (when interposed) or the caller's own descriptor, inherited.
fn monitor_inner(
    cmd: &Command,
    slave: OwnedFd,
    ttys: [bool; 3],
    out_w: Option<OwnedFd>,
    err_w: Option<OwnedFd>,
    chan: &Channel,
    restore: Option<&(OwnedFd, Termios)>,
) {
    let _ = process::become_fully_root();
    let setup = process::new_session()
        .map_err(|e| SysError::new("setsid", e))
        .and_then(|_| term::make_controlling(slave.as_fd()));
    if let Err(e) = setup {
        let _ = chan.send(Msg::SetupFailed(e.errno));
        return;
    }
    let Ok(mut sigq) = SignalQueue::new(&[Signal::SIGCHLD]) else {
        let _ = chan.send(Msg::SetupFailed(Errno::EAGAIN));
        return;
    };
    let Ok((rep_r, rep_w)) = fd::pipe() else {
        let _ = chan.send(Msg::SetupFailed(Errno::EMFILE));
        return;
    };
    let pid = {
        let pty = Some(slave.as_fd());
        let io = ChildIo {
            stdio: [
                if ttys[0] { pty } else { None },
                if ttys[1] { pty } else { out_w.as_ref().map(AsFd::as_fd) },
                if ttys[2] { pty } else { err_w.as_ref().map(AsFd::as_fd) },
            ],
        };
        match process::fork() {
            Ok(Forked::Child) => {
                let _ = process::own_process_group();
                let _ = term::set_foreground(slave.as_fd(), process::getpid());
                exec_child(cmd, &io, &rep_w)
            }
            Ok(Forked::Parent(pid)) => pid,
            Err(e) => {
                let _ = chan.send(Msg::SetupFailed(e.errno));
                return;
            }
        }
    };
    let _ = nix::unistd::setpgid(pid, pid);
    let _ = term::set_foreground(slave.as_fd(), pid);
    drop((rep_w, out_w, err_w));
    if let Err((stage, e)) = read_report(&rep_r) {
        let _ = process::wait_child(pid, true);
        let m = if stage == super::child::STAGE_EXEC { Msg::ExecFailed(e) } else { Msg::SetupFailed(e) };
        let _ = chan.send(m);
        return;
    }
    let _ = chan.send(Msg::Started(pid.as_raw()));

    loop {
        let mut fds =
            [PollFd::new(sigq.as_fd(), PollFlags::POLLIN), PollFd::new(chan.0.as_fd(), PollFlags::POLLIN)];
        if let Err(e) = poll(&mut fds, PollTimeout::NONE) {
            if e != Errno::EINTR {
                break;
            }
        }
        let sig_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let chan_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        if sig_ready {
            while sigq.pop().is_some() {}
            loop {
                match process::wait_child(pid, false) {
                    Ok(ChildState::Stopped(s)) => {
                        let _ = chan.send(Msg::Stopped(s));
                    }
                    Ok(ChildState::Exited(c)) => {
                        let _ = chan.send(Msg::Exited(c));
                        return;
                    }
                    Ok(ChildState::Signaled(s, _)) => {
                        let _ = chan.send(Msg::Signaled(s));
                        return;
                    }
                    Ok(ChildState::Continued) => continue,
                    Ok(ChildState::StillRunning) => break,
                    Err(_) => return,
                }
            }
        }
        if chan_ready {
            match chan.recv() {
                Ok(Some(Msg::Signal(s))) => {
                    let _ = process::signal_group(pid, s);
                }
                Ok(Some(Msg::Resume)) => {
                    let _ = term::set_foreground(slave.as_fd(), pid);
                    let _ = process::signal_group(pid, Signal::SIGCONT);
                }
                Ok(Some(_)) | Err(Errno::EAGAIN) => {}
                Ok(None) | Err(_) => {
                    // The helper is gone (killed): nothing relays or records this session any
                    // more, so the command must not go on running, and the caller must not be
                    // left with a raw terminal.
                    if let Some((tty, attrs)) = restore {
                        let _ = term::set_attrs(tty.as_fd(), attrs);
                    }
                    end_orphaned(pid, &mut sigq);
                    return;
                }
            }
        }
    }
}

/// Hang up on the command, then kill it if it does not go within a second.
fn end_orphaned(pid: Pid, sigq: &mut SignalQueue) {
    let _ = process::signal_group(pid, Signal::SIGHUP);
    let _ = process::signal_group(pid, Signal::SIGCONT);
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if let Ok(ChildState::Exited(_) | ChildState::Signaled(..)) = process::wait_child(pid, false) {
            return;
        }
        let mut fds = [PollFd::new(sigq.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(50u16));
        while sigq.pop().is_some() {}
    }
    let _ = process::signal_group(pid, Signal::SIGKILL);
    let _ = process::wait_child(pid, true);
}
