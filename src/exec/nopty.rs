//! Without a terminal (CI, cron, pipes): the command is the helper's child, in the caller's
//! process group; stdin passes straight through; stdout and stderr go through pipes (when
//! interposed) so they stay separate for the caller and can be recorded.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use super::child::{ChildIo, exec_child, read_report};
use super::relay::{CHUNK, Drain, read_some};
use super::{Command, Observer, Outcome, Stream, failed_outcome};
use crate::system::process::{self, ChildState, Forked};
use crate::system::signal::SignalQueue;
use crate::system::{Errno, SysError, fd};

pub(super) const RELAYED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGALRM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

struct Source {
    fd: OwnedFd,
    stream: Stream,
    sink: i32,
    open: bool,
}

pub(super) fn run(cmd: &Command, interpose: bool, observer: &mut dyn Observer) -> Result<Outcome, SysError> {
    let mut signals: Vec<Signal> = RELAYED.to_vec();
    signals.extend([Signal::SIGCHLD, Signal::SIGTSTP, Signal::SIGCONT]);
    let mut sigq = SignalQueue::new(&signals)?;
    process::ignore_signal(Signal::SIGPIPE);

    let pipes = if interpose {
        let out = fd::pipe().map_err(|e| SysError::new("pipe", e))?;
        let err = fd::pipe().map_err(|e| SysError::new("pipe", e))?;
        Some((out, err))
    } else {
        None
    };
    let (report_r, report_w) = fd::pipe().map_err(|e| SysError::new("pipe", e))?;

    let pid = match process::fork()? {
        Forked::Child => {
            let io = match &pipes {
                Some(((_, ow), (_, ew))) => ChildIo { stdio: [None, Some(ow.as_fd()), Some(ew.as_fd())] },
                None => ChildIo { stdio: [None, None, None] },
            };
            exec_child(cmd, &io, &report_w)
        }
        Forked::Parent(pid) => pid,
    };
    drop(report_w);
    let mut sources = Vec::new();
    if let Some(((or, ow), (er, ew))) = pipes {
        drop((ow, ew));
        for (r, stream, sink) in [(or, Stream::Stdout, 1), (er, Stream::Stderr, 2)] {
            fd::set_nonblocking(r.as_fd(), true).map_err(|e| SysError::new("O_NONBLOCK", e))?;
            sources.push(Source { fd: r, stream, sink, open: true });
        }
    }
    if let Err((stage, errno)) = read_report(&report_r) {
        let _ = process::wait_child(pid, true);
        return Ok(failed_outcome(stage, errno));
    }

    let mut scratch = vec![0u8; CHUNK];
    let mut show = Vec::with_capacity(CHUNK);
    let mut outcome: Option<Outcome> = None;
    let mut drain: Option<Drain> = None;
    let mut stopping: Option<Instant> = None;
    loop {
        if outcome.is_some() {
            let all_closed = sources.iter().all(|s| !s.open);
            if all_closed || drain.as_ref().is_some_and(Drain::expired) {
                break;
            }
        }
        let timeout = match stopping {
            Some(_) if outcome.is_none() => PollTimeout::from(100u16),
            _ => next_timeout(observer, drain.as_ref().map(Drain::deadline)),
        };
        let mut fds: Vec<PollFd<'_>> = vec![PollFd::new(sigq.as_fd(), PollFlags::POLLIN)];
        let idx: Vec<usize> = (0..sources.len()).filter(|&i| sources[i].open).collect();
        for &i in &idx {
            fds.push(PollFd::new(sources[i].fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(SysError::new("poll", e)),
        }
        let ready: Vec<bool> = fds.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);

        for (k, &i) in idx.iter().enumerate() {
            if !ready[k + 1] {
                continue;
            }
            let src = &mut sources[i];
            // Read until the pipe is empty, so a fast writer is not throttled by poll rounds.
            loop {
                match read_some(src.fd.as_fd(), &mut scratch) {
                    Ok(Some(n)) => {
                        show.clear();
                        observer.output(src.stream, &scratch[..n], &mut show);
                        let _ = fd::write_all(fd::stdio(src.sink), &show);
                        if let Some(d) = drain.as_mut() {
                            d.progress();
                        }
                    }
                    Ok(None) => {
                        src.open = false;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if let Some(deadline) = observer.deadline() {
            if Instant::now() >= deadline {
                observer.tick(&mut |s, b| write_stream(s, b));
            }
        }
        match stopping {
            None => {
                if let Some(reason) = observer.stop_reason() {
                    crate::eprintln_safe!("lpexec: {reason}: stopping the command");
                    let _ = process::signal_process(pid, Signal::SIGTERM);
                    let _ = process::signal_process(pid, Signal::SIGCONT);
                    stopping = Some(Instant::now());
                }
            }
            // A command that ignores SIGTERM is killed: it may not run on unrecorded.
            Some(t) if outcome.is_none() && t.elapsed() > std::time::Duration::from_secs(3) => {
                let _ = process::signal_process(pid, Signal::SIGKILL);
            }
            Some(_) => {}
        }

        if ready[0] {
            while let Some(r) = sigq.pop() {
                match r.signal {
                    Signal::SIGCHLD if outcome.is_none() => {
                        match process::wait_child(pid, false) {
                            Ok(ChildState::Exited(c)) => outcome = Some(Outcome::Exited(c)),
                            Ok(ChildState::Signaled(s, _)) => outcome = Some(Outcome::Signaled(s)),
                            _ => {}
                        }
                        if outcome.is_some() {
                            drain = Some(Drain::start());
                        }
                    }
                    // Signals sent by the kernel (a terminal) already reached the command, which
                    // shares our process group; relay only what someone sent us explicitly, and
                    // never what the command sent itself.
                    s if r.from_user() && r.pid != pid.as_raw() && outcome.is_none() => {
                        let _ = process::signal_process(pid, s);
                    }
                    _ => {}
                }
            }
        }
    }
    observer.finish(&mut |s, b| write_stream(s, b));
    Ok(outcome.unwrap_or(Outcome::Exited(125)))
}

fn write_stream(s: Stream, b: &[u8]) {
    let n = if s == Stream::Stderr { 2 } else { 1 };
    let _ = fd::write_all(fd::stdio(n), b);
}

pub(super) fn next_timeout(observer: &dyn Observer, drain_until: Option<Instant>) -> PollTimeout {
    let now = Instant::now();
    let deadline = match (observer.deadline(), drain_until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match deadline {
        None => PollTimeout::NONE,
        Some(d) => {
            let ms = d.saturating_duration_since(now).as_millis().min(60_000) as u16;
            PollTimeout::from(ms.max(1))
        }
    }
}
