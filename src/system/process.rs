//! Processes: the helper's own hardening (environment, dumpability, limits), forking, the one
//! place where privileges are dropped, exec, waiting and signalling.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid};

use super::{Context, Errno, SysError};

pub use nix::unistd::Pid as ProcessId;

/// Takes a snapshot of the environment (bounded) and then empties it, so that nothing the
/// caller set can influence libc or any library from here on. Returns the snapshot, from
/// which only vetted variables are later passed to the command.
pub fn take_environment(max_total: usize, max_vars: usize) -> Vec<(String, String)> {
    let mut total = 0usize;
    let mut vars = Vec::new();
    for (k, v) in std::env::vars_os() {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
            continue;
        };
        total = total.saturating_add(k.len() + v.len());
        if total > max_total || vars.len() >= max_vars {
            break;
        }
        vars.push((k.to_string(), v.to_string()));
    }
    // SAFETY: clearenv(3) is not thread-safe; it is called as the first action of the
    // single-threaded helper, before any other thread or environment reader exists.
    unsafe { libc::clearenv() };
    vars
}

pub fn euid_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn real_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// Whether `no_new_privs` is set (setuid would be ignored by the kernel).
pub fn no_new_privs() -> bool {
    nix::sys::prctl::get_no_new_privs().unwrap_or(true)
}

/// Makes the process non-dumpable: no core files, and the caller (whose uid is our real uid)
/// cannot ptrace it or read its memory through /proc.
pub fn set_not_dumpable() -> Result<(), SysError> {
    nix::sys::prctl::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE)".into())
}

/// Resource limits the caller set, saved so the command gets them back while the helper runs
/// with limits under which it cannot be made to fail half-way (a caller's `ulimit -f 0`
/// would otherwise kill it with SIGXFSZ while it writes a recording).
#[derive(Debug, Clone)]
pub struct SavedLimits(Vec<(Resource, (u64, u64))>);

const MANAGED: [Resource; 4] =
    [Resource::RLIMIT_FSIZE, Resource::RLIMIT_NOFILE, Resource::RLIMIT_CORE, Resource::RLIMIT_AS];

impl SavedLimits {
    /// Saves the caller's limits and sets the helper's: unlimited file size and address space,
    /// at least 1024 descriptors, no core files.
    pub fn raise_for_helper() -> SavedLimits {
        let mut saved = Vec::new();
        for r in MANAGED {
            if let Ok(cur) = getrlimit(r) {
                saved.push((r, cur));
            }
        }
        let inf = nix::sys::resource::RLIM_INFINITY;
        let _ = setrlimit(Resource::RLIMIT_FSIZE, inf, inf);
        let _ = setrlimit(Resource::RLIMIT_AS, inf, inf);
        let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            if soft < 1024 {
                let _ = setrlimit(Resource::RLIMIT_NOFILE, 1024, hard.max(1024));
            }
        }
        SavedLimits(saved)
    }

    /// Puts the caller's limits back (in the command's process, before exec).
    pub fn restore(&self) {
        for (r, (soft, hard)) in &self.0 {
            let _ = setrlimit(*r, *soft, *hard);
        }
    }
}

/// The credentials the command runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// The one place privileges are dropped: supplementary groups, then gid, then uid (real,
/// effective and saved), then a check that they cannot be regained.
pub fn drop_privileges(c: &Creds) -> Result<(), SysError> {
    let groups: Vec<Gid> = c.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    nix::unistd::setgroups(&groups).ctx(|| "setgroups".into())?;
    let gid = Gid::from_raw(c.gid);
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("setresgid({})", c.gid))?;
    let uid = Uid::from_raw(c.uid);
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("setresuid({})", c.uid))?;
    let r = nix::unistd::getresuid().ctx(|| "getresuid".into())?;
    let g = nix::unistd::getresgid().ctx(|| "getresgid".into())?;
    if [r.real, r.effective, r.saved] != [uid; 3] || [g.real, g.effective, g.saved] != [gid; 3] {
        return Err(SysError::new("credentials did not change as requested", Errno::EPERM));
    }
    if c.uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(SysError::new("root privileges could be regained after dropping them", Errno::EPERM));
    }
    Ok(())
}

/// Sets real, effective and saved uid to root (the monitor process: so that the caller, whose
/// uid was our real uid, can no longer signal or trace it).
pub fn become_fully_root() -> Result<(), SysError> {
    let root = Uid::from_raw(0);
    nix::unistd::setresuid(root, root, root).ctx(|| "setresuid(0)".into())
}

pub enum Forked {
    Parent(Pid),
    Child,
}

/// `fork(2)`.
pub fn fork() -> Result<Forked, SysError> {
    // SAFETY: lpexec-helper is single-threaded (it never spawns threads), so the child is an
    // exact copy with no lock held by another thread and may run arbitrary code until exec.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Forked::Parent(child)),
        Ok(nix::unistd::ForkResult::Child) => Ok(Forked::Child),
        Err(e) => Err(SysError::new("fork", e)),
    }
}

/// Every catchable signal back to its default disposition, and none blocked — what a freshly
/// started program expects (SPEC §9). This includes the real-time signals, and glibc's two
/// reserved ones (32, 33), which glibc's `sigaction` refuses to touch but which a caller can
/// leave ignored; so the kernel's `rt_sigaction` is called directly.
pub fn reset_signals() {
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: libc::sighandler_t,
        mask: u64,
    }
    let dfl = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction(2) reads one kernel `struct sigaction` (handler, flags, restorer,
        // 64-bit mask: the layout above) from a valid pointer; the old action pointer is null,
        // and the mask size argument is the kernel's 8 bytes. Installing SIG_DFL runs no code.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
    let _ = SigSet::empty().thread_set_mask();
}

/// Ignores `sig` (SIG_IGN).
pub fn ignore_signal(sig: Signal) {
    let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_IGN cannot violate memory safety; no handler code runs.
    let _ = unsafe { nix::sys::signal::sigaction(sig, &ign) };
}

/// Replaces the process image. Returns only on failure, with the errno.
pub fn exec(path: &CString, argv: &[CString], envp: &[CString]) -> Errno {
    match nix::unistd::execve(path, argv, envp) {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// Exits immediately without running destructors or flushing stdio (in a forked child).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) terminates the process; no Rust invariants outlive it.
    unsafe { libc::_exit(code) }
}

pub fn umask(mask: u32) -> u32 {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask)).bits()
}

pub fn getcwd() -> Result<PathBuf, SysError> {
    nix::unistd::getcwd().ctx(|| "getcwd".into())
}

pub fn getpid() -> Pid {
    nix::unistd::getpid()
}

/// How a child ended or changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    Exited(i32),
    Signaled(Signal, bool),
    Stopped(Signal),
    Continued,
    StillRunning,
}

/// `waitpid` with `WUNTRACED | WCONTINUED`, optionally non-blocking.
pub fn wait_child(pid: Pid, block: bool) -> Result<ChildState, Errno> {
    let mut flags = WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED;
    if !block {
        flags |= WaitPidFlag::WNOHANG;
    }
    loop {
        return match waitpid(pid, Some(flags)) {
            Err(Errno::EINTR) => continue,
            Err(e) => Err(e),
            Ok(WaitStatus::Exited(_, c)) => Ok(ChildState::Exited(c)),
            Ok(WaitStatus::Signaled(_, s, core)) => Ok(ChildState::Signaled(s, core)),
            Ok(WaitStatus::Stopped(_, s)) => Ok(ChildState::Stopped(s)),
            Ok(WaitStatus::Continued(_)) => Ok(ChildState::Continued),
            Ok(WaitStatus::StillAlive) => Ok(ChildState::StillRunning),
            Ok(_) => Ok(ChildState::StillRunning),
        };
    }
}

pub fn signal_process(pid: Pid, sig: Signal) -> Result<(), Errno> {
    kill(pid, sig)
}

pub fn signal_group(pgrp: Pid, sig: Signal) -> Result<(), Errno> {
    nix::sys::signal::killpg(pgrp, sig)
}

/// Makes the calling process a process-group leader.
pub fn own_process_group() -> Result<(), Errno> {
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))
}

pub fn new_session() -> Result<Pid, Errno> {
    nix::unistd::setsid()
}

/// Terminates the process the way `sig` would (shells then see 128+N), after which nothing
/// returns. If the signal does not terminate by default, exits with 128+N.
pub fn die_by_signal(sig: Signal) -> ! {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_DFL cannot violate memory safety.
    let _ = unsafe { nix::sys::signal::sigaction(sig, &dfl) };
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = set.thread_unblock();
    let _ = nix::sys::signal::raise(sig);
    exit_now(128 + sig as i32)
}

/// The process group of the terminal in `fd`'s foreground.
pub fn foreground_group(fd: impl AsFd) -> Option<Pid> {
    nix::unistd::tcgetpgrp(fd).ok()
}

pub fn own_group() -> Pid {
    nix::unistd::getpgrp()
}

/// Starts `path` with `argv`/`envp`, descriptors 0-2 inherited and `control` as descriptor 3,
/// every signal at its default disposition and none blocked (posix_spawn: no fork of a large
/// front end, and no code runs between fork and exec).
pub fn spawn_with_fd3(
    path: &CString,
    argv: &[CString],
    envp: &[CString],
    control: std::os::fd::BorrowedFd<'_>,
) -> Result<Pid, Errno> {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
    // Make sure the source is not already 3 (dup2(3, 3) would keep close-on-exec).
    let high = nix::fcntl::fcntl(control, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    let high = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(high) };
    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_dup2(std::os::fd::AsRawFd::as_raw_fd(&high), 3)?;
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_sigdefault(&SigSet::all())?;
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK)?;
    posix_spawn(path.as_c_str(), &actions, &attr, argv, envp)
}

static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = FORWARD_TO.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and takes no pointers.
        unsafe { libc::kill(pid, sig) };
    }
}

/// While the front end waits for the helper: signals someone sends the front end are passed
/// on to the helper (which relays them to the command), and terminal-generated SIGINT/SIGQUIT
/// are ignored here (the helper and command get their own copy), as `system(3)` does.
pub fn forward_signals_to(pid: Pid) {
    FORWARD_TO.store(pid.as_raw(), std::sync::atomic::Ordering::Relaxed);
    let act = SigAction::new(SigHandler::Handler(forward_signal), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGALRM] {
        // SAFETY: the handler only loads an atomic and calls kill(2), both async-signal-safe.
        let _ = unsafe { nix::sys::signal::sigaction(sig, &act) };
    }
    ignore_signal(Signal::SIGINT);
    ignore_signal(Signal::SIGQUIT);
}

/// Blocks until `pid` ends (stops are not reported).
pub fn wait_exit(pid: Pid) -> Result<ChildState, Errno> {
    loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(WaitStatus::Exited(_, c)) => return Ok(ChildState::Exited(c)),
            Ok(WaitStatus::Signaled(_, s, core)) => return Ok(ChildState::Signaled(s, core)),
            Ok(_) => continue,
        }
    }
}

/// How many threads this process has (`/proc/self/status`); 0 if it cannot tell. The helper
/// checks that it is still single-threaded before it forks.
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").and_then(|n| n.trim().parse().ok())))
        .unwrap_or(0)
}

/// Stops the caller's whole process group, this process included, with one job-control
/// signal (normally blocked here and received through a signalfd): it is unblocked just for
/// the moment of the `killpg`, so the kernel stops every member at once, and blocked again
/// once a SIGCONT has resumed us.
pub fn stop_group_with(sig: Signal) {
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = set.thread_unblock();
    let _ = nix::sys::signal::killpg(nix::unistd::getpgrp(), sig);
    // Stopped here until continued.
    let _ = set.thread_block();
}
