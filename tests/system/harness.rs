//! The system-test harness: the real setuid helper, real users, a private mount namespace
//! per command.
//!
//! Each test gets a [`Sandbox`]: a root-owned directory under /var/tmp holding its own
//! `/etc/lpexec`, `/var/lib/lpexec` and `/var/log/lpexec`, and a datagram socket standing in for
//! `/dev/log`. Every command runs as `unshare --mount` → bind mounts → `setpriv` (a real
//! unprivileged test user) → `env -i` → `lpexec`, so tests never touch the machine's own
//! lpexec files and run in parallel. The binaries are copied once per test process to a
//! world-traversable directory, with the helper `root:root 4755`.
//!
//! These tests need root. They fail (never skip) without it.

#![allow(dead_code)]

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Test accounts (created once per machine, reused).
pub const ALICE: &str = "lpxt-alice"; // member of lpxt-dev
pub const BOB: &str = "lpxt-bob"; // member of lpxt-ops
pub const MALLORY: &str = "lpxt-mallory"; // no groups
pub const WEB: &str = "lpxt-web"; // a service account used as a target
pub const DEV: &str = "lpxt-dev";
pub const OPS: &str = "lpxt-ops";

pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "system tests need root (they install the setuid helper and create users); \
             run the suite as root, e.g. with .ci/run"
        );
    }
}

fn sh(cmd: &str) -> std::process::Output {
    output_within(Command::new("sh").arg("-c").arg(cmd), COMMAND_LIMIT)
}

/// The longest any one command a test starts may take. Past it the test fails, showing what
/// the command printed and every process still running: a test never hangs the suite.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// Reads `r` to its end on a thread; the receiver hears when it is done.
fn drain(mut r: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, mpsc::Receiver<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let into = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 65536];
        loop {
            match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => into.lock().unwrap().extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tx.send(());
    });
    (buf, rx)
}

/// An HTTP client for tests: any status is an answer, and no call takes longer than 90 s.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(90)))
        .build()
        .into()
}

/// Every process on the machine, as a tree (for a test that timed out).
pub fn process_tree() -> String {
    Command::new("ps")
        .args(["-e", "-o", "pid,ppid,stat,etime,wchan:24,args", "--forest"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("(ps failed: {e})"))
}

/// What one process is doing: its state, each thread's wait channel and its descriptors.
pub fn process_state(pid: u32) -> String {
    let mut out = format!("process {pid}:\n");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    for l in status.lines().filter(|l| l.starts_with("State") || l.starts_with("Sig")) {
        out += &format!("  {l}\n");
    }
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            let p = t.path();
            let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
            let wchan = std::fs::read_to_string(p.join("wchan")).unwrap_or_default();
            let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
            let st =
                stat.rsplit(')').next().unwrap_or("").split_whitespace().next().unwrap_or("?").to_string();
            out += &format!("  thread {} {} {st} {wchan}\n", t.file_name().to_string_lossy(), comm.trim());
        }
    }
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for f in rd.flatten() {
            let target = std::fs::read_link(f.path()).map(|t| t.display().to_string()).unwrap_or_default();
            out += &format!("  fd {} -> {target}\n", f.file_name().to_string_lossy());
        }
    }
    out
}

/// SIGKILL to a process and everything it started.
fn kill_tree(pid: u32) {
    for p in descendants_of(pid).into_iter().chain([pid]) {
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Waits at most `limit` for a started command to exit. One still running then is killed
/// with everything it started, and the test fails showing the process tree.
#[track_caller]
pub fn wait_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st;
        }
        if Instant::now() >= until {
            let tree = process_tree();
            let pid = child.id();
            kill_tree(pid);
            let _ = child.wait();
            panic!("process {pid} still running after {limit:?}, killed; processes then:\n{tree}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `Command::output` with a limit: runs `c` with stdout and stderr captured (stdin as the
/// caller set it) and waits at most `limit` for it to exit and for its output to end. A
/// command still running then is killed with everything it started, and the test fails
/// with what the command printed and the process tree at that moment.
#[track_caller]
pub fn output_within(c: &mut Command, limit: Duration) -> std::process::Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let what = format!("{c:?}");
    let mut child = c.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let (out, out_done) = drain(child.stdout.take().unwrap());
    let (err, err_done) = drain(child.stderr.take().unwrap());
    let pid = child.id();
    let (tx, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let until = Instant::now() + limit;
    let shown = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
    let status = match exited.recv_timeout(limit) {
        Ok(st) => st.expect("wait"),
        Err(_) => {
            let tree = process_tree();
            kill_tree(pid);
            panic!(
                "still running after {limit:?}, killed: {what}\nstdout: {}\nstderr: {}\nprocesses then:\n{tree}",
                shown(&out),
                shown(&err)
            );
        }
    };
    // The command is gone; its output ends unless something it started still holds it open.
    let grace = until.saturating_duration_since(Instant::now()).max(Duration::from_secs(10));
    let deadline = Instant::now() + grace;
    for done in [&out_done, &err_done] {
        if done.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_err() {
            panic!(
                "exited ({status}) but a process it started still holds its output open: {what}\n\
                 stdout: {}\nstderr: {}\nprocesses:\n{}",
                shown(&out),
                shown(&err),
                process_tree()
            );
        }
    }
    let take = |b: Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *b.lock().unwrap());
    std::process::Output { status, stdout: take(out), stderr: take(err) }
}

fn must(cmd: &str) {
    let o = sh(cmd);
    assert!(o.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&o.stderr));
}

struct Fixture {
    bin: PathBuf,
}

/// Creates the users and groups (serialised across test processes with flock; idempotent)
/// and copies the binaries.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        require_root();
        let setup = format!(
            "exec 9>/var/tmp/lpexec-systest.lock && flock 9 && \
             for g in {DEV} {OPS}; do getent group $g >/dev/null || groupadd $g; done && \
             for u in {ALICE} {BOB} {MALLORY} {WEB}; do id $u >/dev/null 2>&1 || useradd -m -s /bin/bash $u; done && \
             usermod -aG {DEV} {ALICE} && usermod -aG {OPS} {BOB} && usermod -aG {OPS} {WEB}"
        );
        must(&setup);
        for d in ["/etc/lpexec", "/var/lib/lpexec", "/var/log/lpexec"] {
            if !Path::new(d).exists() {
                std::fs::create_dir_all(d).expect("mount point");
            }
        }
        assert!(
            Path::new("/dev/log").exists(),
            "/dev/log is missing: a syslog daemon must run for these tests (.ci/run starts rsyslog)"
        );
        // Stale directories of earlier runs.
        if let Ok(rd) = std::fs::read_dir("/var/tmp") {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(pid) = name.strip_prefix("lpexec-systest-").and_then(|p| p.parse::<i32>().ok()) {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let root = PathBuf::from(format!("/var/tmp/lpexec-systest-{}", std::process::id()));
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        for (name, src) in [("lpexec", env!("CARGO_BIN_EXE_lpexec")), ("lpexec-helper", env!("CARGO_BIN_EXE_lpexec-helper"))] {
            let dst = bin.join(name);
            std::fs::copy(src, &dst).expect("copy binary");
            nix::unistd::chown(&dst, Some(0.into()), Some(0.into())).expect("chown");
            let mode = if name == "lpexec-helper" { 0o4755 } else { 0o755 };
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        for d in [&root, &bin] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Fixture { bin }
    })
}

pub fn uid_of(user: &str) -> u32 {
    nix::unistd::User::from_name(user).unwrap().unwrap().uid.as_raw()
}

/// One command's result.
#[derive(Debug)]
pub struct Out {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn signal(&self) -> Option<i32> {
        std::os::unix::process::ExitStatusExt::signal(&self.status)
    }
    #[track_caller]
    pub fn assert_code(&self, want: i32) -> &Out {
        assert_eq!(
            self.code(),
            Some(want),
            "unexpected status\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct Sandbox {
    pub dir: PathBuf,
    pub etc: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
    sock_path: PathBuf,
    sock: UnixDatagram,
    lines: std::cell::RefCell<Vec<String>>,
    pub bin: PathBuf,
    tmpfs: std::cell::Cell<bool>,
    syslog_mode: std::cell::Cell<SyslogMode>,
    state_ro: std::cell::Cell<bool>,
}

/// What /dev/log is inside the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogMode {
    /// A socket the test reads (the default).
    Capture,
    /// Nothing listening (an empty file where the socket should be).
    Missing,
    /// A socket whose queue is full and that nobody reads.
    Stalled,
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        let f = fixture();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = f.bin.parent().unwrap().join(format!("{name}-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let (etc, state, log) = (dir.join("etc"), dir.join("state"), dir.join("log"));
        for (d, mode) in [(&dir, 0o755), (&etc, 0o755), (&state, 0o755), (&log, 0o755)] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let sock_path = dir.join("log.sock");
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        sock.set_nonblocking(true).unwrap();
        std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o666)).unwrap();
        Sandbox {
            dir,
            etc,
            state,
            log,
            sock_path,
            sock,
            lines: Default::default(),
            bin: f.bin.clone(),
            tmpfs: false.into(),
            syslog_mode: SyslogMode::Capture.into(),
            state_ro: false.into(),
        }
    }

    /// Writes a file under the sandbox's /etc/lpexec (root-owned, 0644).
    pub fn etc_file(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.etc.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    pub fn policy(&self, text: &str) -> &Sandbox {
        self.etc_file("policy.toml", text);
        self
    }

    pub fn config(&self, text: &str) -> &Sandbox {
        self.etc_file("lpexec.toml", text);
        self
    }

    pub fn lpexec(&self) -> String {
        self.bin.join("lpexec").display().to_string()
    }

    /// A command running `argv` as `user` inside the sandbox's mount namespace, with a clean
    /// environment plus `env`.
    pub fn command(&self, user: &str, env: &[(&str, &str)], argv: &[&str]) -> Command {
        self.command_opts(user, env, argv, false)
    }

    fn command_opts(&self, user: &str, env: &[(&str, &str)], argv: &[&str], ctty: bool) -> Command {
        let log_target = match self.syslog_mode.get() {
            SyslogMode::Capture => self.sock_path.clone(),
            SyslogMode::Missing => {
                let p = self.dir.join("no-syslog");
                let _ = std::fs::write(&p, "");
                p
            }
            SyslogMode::Stalled => self.dir.join("stalled.sock"),
        };
        let script = format!(
            "mount --bind '{etc}' /etc/lpexec && mount --bind '{state}' /var/lib/lpexec && \
             mount --bind '{log}' /var/log/lpexec && mount --bind '{sock}' /dev/log {ro}|| exit 99; \
             exec {setsid} setpriv --reuid={user} --regid={user} --init-groups -- env -i \"$@\"",
            etc = self.etc.display(),
            state = self.state.display(),
            log = self.log.display(),
            sock = log_target.display(),
            ro = if self.state_ro.get() { "&& mount -o remount,bind,ro /var/lib/lpexec " } else { "" },
            setsid = if ctty { "setsid -c" } else { "" },
        );
        let home = format!("HOME=/home/{user}");
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "--", "sh", "-c", &script, "sh"]);
        c.arg("PATH=/usr/local/bin:/usr/bin:/bin");
        c.arg(&home);
        c.arg(format!("USER={user}"));
        c.arg(format!("LPEXEC_HELPER={}", self.bin.join("lpexec-helper").display()));
        for (k, v) in env {
            c.arg(format!("{k}={v}"));
        }
        c.args(argv);
        c.current_dir("/");
        c
    }

    /// Changes what /dev/log is for the following commands. `Stalled` creates a socket with
    /// a full queue that is never read.
    pub fn set_syslog(&self, mode: SyslogMode) {
        if mode == SyslogMode::Stalled {
            let p = self.dir.join("stalled.sock");
            let sock = UnixDatagram::bind(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
            let filler = UnixDatagram::unbound().unwrap();
            filler.set_nonblocking(true).unwrap();
            while filler.send_to(&[b'x'; 2048], &p).is_ok() {}
            std::mem::forget(sock); // kept open, never read, for the life of the test process
        }
        self.syslog_mode.set(mode);
    }

    /// Makes /var/lib/lpexec read-only for the following commands.
    pub fn state_readonly(&self) {
        self.state_ro.set(true);
    }

    /// Puts the sandbox's /var/log/lpexec on a tmpfs of `size` (e.g. "1m"), to fill it up.
    pub fn log_on_tmpfs(&self, size: &str) {
        must(&format!("mount -t tmpfs -o size={size},mode=0755 lpexec-test '{}'", self.log.display()));
        self.tmpfs.set(true);
    }

    /// The recordings under this sandbox's /var/log/lpexec/sessions, oldest first.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self
            .files_under(&self.log.join("sessions"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "cast"))
            .collect();
        v.sort();
        v
    }

    /// Runs `lpexec ARGS` as `user` without a terminal (stdin empty).
    pub fn lp(&self, user: &str, args: &[&str]) -> Out {
        self.lp_env(user, &[], args)
    }

    pub fn lp_env(&self, user: &str, env: &[(&str, &str)], args: &[&str]) -> Out {
        let lp = self.lpexec();
        let mut argv = vec![lp.as_str()];
        argv.extend_from_slice(args);
        self.run(user, env, &argv)
    }

    /// Runs `lpexec ARGS` as `user` and returns the raw bytes of stdout (large outputs).
    pub fn lp_raw(&self, user: &str, args: &[&str]) -> (std::process::ExitStatus, Vec<u8>) {
        let lp = self.lpexec();
        let mut argv = vec![lp.as_str()];
        argv.extend_from_slice(args);
        let o = output_within(self.command(user, &[], &argv).stdin(Stdio::null()), COMMAND_LIMIT);
        eprint!("{}", String::from_utf8_lossy(&o.stderr));
        (o.status, o.stdout)
    }

    /// Runs any program as `user` in the sandbox.
    pub fn run(&self, user: &str, env: &[(&str, &str)], argv: &[&str]) -> Out {
        let o = output_within(self.command(user, env, argv).stdin(Stdio::null()), COMMAND_LIMIT);
        Out {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs a shell snippet as `user` (the snippet may use `$LP` for lpexec).
    pub fn sh(&self, user: &str, snippet: &str) -> Out {
        let lp = self.lpexec();
        self.run(user, &[("LP", &lp)], &["/bin/sh", "-c", snippet])
    }

    /// Syslog lines received so far (waits up to `wait` for at least one new line).
    pub fn syslog(&self, wait: Duration) -> Vec<String> {
        let until = Instant::now() + wait;
        let mut buf = vec![0u8; 65536];
        loop {
            let mut got = false;
            while let Ok(n) = self.sock.recv(&mut buf) {
                self.lines.borrow_mut().push(String::from_utf8_lossy(&buf[..n]).into_owned());
                got = true;
            }
            if got || Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.lines.borrow().clone()
    }

    /// Waits until a syslog line containing all of `needles` arrives.
    #[track_caller]
    pub fn expect_syslog(&self, needles: &[&str]) -> String {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = self.syslog(Duration::from_millis(100));
            if let Some(l) = lines.iter().find(|l| needles.iter().all(|n| l.contains(n))) {
                return l.clone();
            }
            if Instant::now() >= until {
                panic!("no syslog line with {needles:?}; got:\n{}", lines.join("\n"));
            }
        }
    }

    /// Starts `lpexec ARGS` (or any argv if `raw`) as `user` on a new terminal.
    pub fn pty(&self, user: &str, env: &[(&str, &str)], argv: &[&str]) -> Pty {
        let ws = nix::pty::Winsize { ws_row: 30, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0 };
        let p = nix::pty::openpty(Some(&ws), None).expect("openpty");
        // openpty's descriptors are inherited across exec: without this, every process another
        // test starts meanwhile (a provider living for its whole test) would hold this
        // terminal open, and it would never hang up.
        for fd in [&p.master, &p.slave] {
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))
                .expect("cloexec");
        }
        let mut full_env = vec![("TERM", "xterm")];
        full_env.extend_from_slice(env);
        let mut c = self.command_opts(user, &full_env, argv, true);
        let slave = p.slave;
        let slave_path = nix::unistd::ttyname(&slave).expect("ttyname");
        c.stdin(Stdio::from(slave.try_clone().unwrap()));
        c.stdout(Stdio::from(slave.try_clone().unwrap()));
        c.stderr(Stdio::from(slave));
        let child = c.spawn().expect("spawn on pty");
        let master = p.master;
        let flags = nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
        Pty { master, child: Some(child), seen: Vec::new(), slave_path }
    }

    pub fn files_under(&self, d: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![d.to_path_buf()];
        while let Some(p) = stack.pop() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else {
                        out.push(path);
                    }
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.tmpfs.get() {
            let _ = Command::new("umount").arg(&self.log).status();
        }
        if std::env::var_os("LPEXEC_KEEP_TEST").is_none() && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The caller's side of a terminal a test drives.
pub struct Pty {
    pub master: OwnedFd,
    child: Option<std::process::Child>,
    /// Everything read so far.
    pub seen: Vec<u8>,
    slave_path: PathBuf,
}

impl Pty {
    pub fn send(&mut self, s: &str) {
        let mut b = s.as_bytes();
        while !b.is_empty() {
            match nix::unistd::write(&self.master, b) {
                Ok(n) => b = &b[n..],
                Err(nix::errno::Errno::EAGAIN) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("write to pty: {e}"),
            }
        }
    }

    /// Reads what is available within `wait`.
    pub fn pump(&mut self, wait: Duration) -> bool {
        let mut buf = [0u8; 65536];
        let mut fds = [nix::poll::PollFd::new(self.master.as_fd(), nix::poll::PollFlags::POLLIN)];
        let ms = wait.as_millis().min(60_000) as u16;
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)).unwrap_or(0) == 0 {
            return false;
        }
        let mut any = false;
        loop {
            match nix::unistd::read(&self.master, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.seen.extend_from_slice(&buf[..n]);
                    any = true;
                }
                Err(_) => break,
            }
        }
        any
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Waits until the output (since the start) contains `needle` `count` times.
    #[track_caller]
    pub fn expect_n(&mut self, needle: &str, count: usize, timeout: Duration) {
        let until = Instant::now() + timeout;
        while self.text().matches(needle).count() < count {
            if Instant::now() >= until {
                panic!("timed out waiting for {needle:?} (x{count}); terminal showed:\n{}", self.text());
            }
            self.pump(Duration::from_millis(50));
        }
    }

    #[track_caller]
    pub fn expect(&mut self, needle: &str) {
        self.expect_n(needle, 1, Duration::from_secs(10));
    }

    /// The pid of the process started on the terminal (for `lpexec ...`, the front end).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Changes the terminal's size (the kernel signals its foreground group).
    pub fn resize(&self, rows: u16, cols: u16) {
        must(&format!("stty -F {} rows {rows} cols {cols}", self.slave_path.display()));
    }

    /// Waits for the process tree on the terminal to exit, collecting output.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("already waited");
        let until = Instant::now() + timeout;
        loop {
            self.pump(Duration::from_millis(20));
            if let Some(st) = child.try_wait().unwrap() {
                while self.pump(Duration::from_millis(50)) {}
                return st;
            }
            if Instant::now() >= until {
                let _ = child.kill();
                panic!("timed out waiting for exit; terminal showed:\n{}", self.text());
            }
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Mode and owner of a path.
pub fn mode_owner(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

/// Reads a whole file as a string.
pub fn read(p: &Path) -> String {
    let mut s = String::new();
    std::fs::File::open(p).unwrap().read_to_string(&mut s).unwrap();
    s
}

/// A policy giving `lpxt-dev` members the listed rules (TOML fragments) as root.
pub fn dev_policy(rules: &str) -> String {
    format!(
        "[[role]]\nname = \"dev\"\nmembers = [{{ unix_group = \"{DEV}\" }}]\nrun_as = [\"root\", \"{WEB}\"]\n{rules}"
    )
}

/// `[[role.rule]]` allowing a command.
pub fn allow(cmd: &str) -> String {
    format!("  [[role.rule]]\n  action = \"allow\"\n  command = \"{cmd}\"\n")
}

/// The direct children of a process.
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Every descendant of a process.
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        for c in children_of(p) {
            out.push(c);
            stack.push(c);
        }
    }
    out
}

/// Runs a command in a pseudo-terminal (asciinema insists on one) and returns its output.
pub fn on_a_terminal(cmd: &str) -> (bool, String) {
    let o = output_within(
        Command::new("script").args(["-qec", cmd, "/dev/null"]).stdin(Stdio::null()),
        COMMAND_LIMIT,
    );
    (o.status.success(), String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n"))
}

/// Runs a shell command as root, asserting success.
pub fn must_sh(cmd: &str) {
    must(cmd);
}

/// Whether a process is gone (or a zombie).
pub fn is_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// Waits up to 10 s for every listed process to be gone; panics naming a survivor.
#[track_caller]
pub fn assert_all_gone(pids: &[u32], what: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while let Some(p) = pids.iter().find(|p| !is_gone(**p)) {
        assert!(Instant::now() < until, "process {p} still runs: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[should_panic(expected = "still running after 300ms, killed")]
fn a_command_past_its_limit_is_killed_and_fails_the_test() {
    output_within(Command::new("sleep").arg("30"), Duration::from_millis(300));
}
