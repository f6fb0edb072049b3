//! `secure_open`: the one gate through which the helper reads configuration and state.
//!
//! A path is walked from `/` one component at a time with `openat(..., O_NOFOLLOW)`, and every
//! directory on the way and the file itself must be owned by root and not writable by group
//! or others. Symlinks anywhere are refused. The same walk creates the directories lpexec
//! writes into (recordings, state), so nothing it writes can be redirected by a planted
//! symlink or a directory someone else can rename into (CVE-2021-23239/23240 class).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, mkdirat};
use nix::unistd::{Gid, Uid, fchown};

use super::Errno;

fn fix_hint(path: &Path) -> String {
    format!("fix with: chown root:root {p} && chmod go-w {p}", p = path.display())
}

/// Checks ownership and mode of an opened object.
fn check_trusted(st: &FileStat, path: &Path, allow_group: Option<u32>) -> Result<(), String> {
    if st.st_uid != 0 {
        return Err(format!(
            "{} is owned by uid {}, not root; {}",
            path.display(),
            st.st_uid,
            fix_hint(path)
        ));
    }
    let group_ok = allow_group.is_some_and(|g| g == st.st_gid);
    let bad_bits = if group_ok { 0o002 } else { 0o022 };
    if st.st_mode & bad_bits != 0 {
        return Err(format!(
            "{} is writable by {} (mode {:04o}); {}",
            path.display(),
            if st.st_mode & 0o002 != 0 { "others" } else { "its group" },
            st.st_mode & 0o7777,
            fix_hint(path)
        ));
    }
    Ok(())
}

fn is_kind(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == kind
}

fn components(path: &Path) -> Result<Vec<&std::ffi::OsStr>, String> {
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            _ => return Err(format!("{} contains '.' or '..'", path.display())),
        }
    }
    Ok(out)
}

fn open_root() -> Result<OwnedFd, String> {
    let fd = nix::fcntl::open("/", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("cannot open /: {}", e.desc()))?;
    let st = fstat(&fd).map_err(|e| format!("cannot stat /: {}", e.desc()))?;
    check_trusted(&st, Path::new("/"), None)?;
    Ok(fd)
}

fn open_child(dir: &OwnedFd, name: &std::ffi::OsStr, flags: OFlag, shown: &Path) -> Result<OwnedFd, Errno> {
    let _ = shown;
    openat(dir.as_fd(), name, flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
}

fn describe_open_error(e: Errno, path: &Path) -> String {
    match e {
        Errno::ELOOP | Errno::ENOTDIR => format!(
            "{} is a symbolic link or not a directory; lpexec refuses symlinks in trusted paths",
            path.display()
        ),
        e => format!("cannot open {}: {}", path.display(), e.desc()),
    }
}

/// Opens every directory of `path` (which must itself be a directory) through the checked
/// walk. `Ok(None)` when some component does not exist.
pub fn open_dir(path: &Path) -> Result<Option<OwnedFd>, String> {
    let mut fd = open_root()?;
    let mut shown = PathBuf::from("/");
    for name in components(path)? {
        shown.push(name);
        fd = match open_child(&fd, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, &shown) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(describe_open_error(e, &shown)),
        };
        let st = fstat(&fd).map_err(|e| format!("cannot stat {}: {}", shown.display(), e.desc()))?;
        check_trusted(&st, &shown, None)?;
    }
    Ok(Some(fd))
}

/// Opens a trusted regular file for reading. `Ok(None)` when it (or a directory above it)
/// does not exist; an error when anything on the way is not root-owned, is writable by group
/// or others, or is a symlink.
pub fn secure_open(path: &Path) -> Result<Option<File>, String> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("{} is not a file path", path.display()));
    };
    let Some(dir) = open_dir(parent)? else {
        return Ok(None);
    };
    let fd = match open_child(&dir, name, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY, path) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => {
            return Err(format!(
                "{} is a symbolic link; lpexec refuses symlinks in trusted paths",
                path.display()
            ));
        }
        Err(e) => return Err(describe_open_error(e, path)),
    };
    let st = fstat(&fd).map_err(|e| format!("cannot stat {}: {}", path.display(), e.desc()))?;
    if !is_kind(&st, SFlag::S_IFREG) {
        return Err(format!("{} is not a regular file", path.display()));
    }
    check_trusted(&st, path, None)?;
    Ok(Some(File::from(fd)))
}

/// Reads a trusted text file of at most `limit` bytes.
pub fn secure_read(path: &Path, limit: u64) -> Result<Option<String>, String> {
    let Some(f) = secure_open(path)? else {
        return Ok(None);
    };
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if buf.len() as u64 > limit {
        return Err(format!("{} is larger than {} bytes", path.display(), limit));
    }
    String::from_utf8(buf).map(Some).map_err(|_| format!("{} is not valid UTF-8", path.display()))
}

/// Lists `*.toml` files of a trusted directory, sorted by name (hidden files skipped).
/// `Ok(None)` when the directory does not exist.
pub fn secure_list_toml(dir: &Path) -> Result<Option<Vec<PathBuf>>, String> {
    if open_dir(dir)?.is_none() {
        return Ok(None);
    }
    crate::common::policy::policy_d_entries(dir)
        .map(Some)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))
}

/// Ownership and mode for directories lpexec creates.
#[derive(Debug, Clone, Copy)]
pub struct DirMode {
    /// Group owner (root's group when `None`).
    pub gid: Option<u32>,
    pub mode: u32,
}

/// Opens `path` as a trusted directory, creating missing components (root-owned, with `mode`
/// and group for the components it creates). Existing components must pass the same checks
/// as `secure_open`, except that a directory whose group is `mode.gid` may be group-readable.
/// Returns the directory's fd for `openat`.
pub fn secure_mkdir_p(path: &Path, mode: DirMode) -> Result<OwnedFd, String> {
    let mut fd = open_root()?;
    let mut shown = PathBuf::from("/");
    for name in components(path)? {
        shown.push(name);
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
        let next = match open_child(&fd, name, flags, &shown) {
            Ok(f) => f,
            Err(Errno::ENOENT) => {
                match mkdirat(fd.as_fd(), name, Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(format!("cannot create {}: {}", shown.display(), e.desc()));
                    }
                }
                let f = open_child(&fd, name, flags, &shown).map_err(|e| describe_open_error(e, &shown))?;
                let st = fstat(&f).map_err(|e| format!("cannot stat {}: {}", shown.display(), e.desc()))?;
                if st.st_uid == 0 && st.st_mode & 0o777 == 0o700 {
                    fchown(&f, Some(Uid::from_raw(0)), Some(Gid::from_raw(mode.gid.unwrap_or(0))))
                        .map_err(|e| format!("cannot chown {}: {}", shown.display(), e.desc()))?;
                    nix::sys::stat::fchmod(&f, Mode::from_bits_truncate(mode.mode))
                        .map_err(|e| format!("cannot chmod {}: {}", shown.display(), e.desc()))?;
                }
                f
            }
            Err(e) => return Err(describe_open_error(e, &shown)),
        };
        let st = fstat(&next).map_err(|e| format!("cannot stat {}: {}", shown.display(), e.desc()))?;
        check_trusted(&st, &shown, mode.gid)?;
        fd = next;
    }
    Ok(fd)
}

/// A trusted directory (state, recordings), opened once through [`secure_mkdir_p`]: every file
/// in it is read and written relative to that descriptor, never following a symlink, so a
/// directory renamed or replaced after opening cannot redirect anything
/// (CVE-2021-23239/23240 class). Files are root-owned (group `gid` where given).
pub struct TrustedDir {
    fd: OwnedFd,
    path: PathBuf,
    gid: Option<u32>,
}

/// Names in a trusted directory are plain names chosen by lpexec (never a path from input);
/// names starting with '.' are kept for temporary files.
fn plain_name(name: &str) -> Result<&str, String> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\0') {
        return Err(format!("invalid file name {name:?}"));
    }
    Ok(name)
}

impl TrustedDir {
    /// Opens (creating if needed) a root-only state directory (0700).
    pub fn open(path: &Path) -> Result<TrustedDir, String> {
        TrustedDir::open_with(path, DirMode { gid: None, mode: 0o700 })
    }

    /// Opens (creating missing components with `mode`) a trusted directory.
    pub fn open_with(path: &Path, mode: DirMode) -> Result<TrustedDir, String> {
        let fd = secure_mkdir_p(path, mode)?;
        Ok(TrustedDir { fd, path: path.to_path_buf(), gid: mode.gid })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a file of at most `limit` bytes. `Ok(None)` when it does not exist; an error when
    /// it is not a root-owned regular file that only root may write.
    pub fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, String> {
        let shown = self.path.join(plain_name(name)?);
        let fd = match open_child(
            &self.fd,
            name.as_ref(),
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            &shown,
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(describe_open_error(e, &shown)),
        };
        let st = fstat(&fd).map_err(|e| format!("cannot stat {}: {}", shown.display(), e.desc()))?;
        if !is_kind(&st, SFlag::S_IFREG) {
            return Err(format!("{} is not a regular file", shown.display()));
        }
        check_trusted(&st, &shown, self.gid)?;
        let mut buf = Vec::new();
        File::from(fd)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", shown.display()))?;
        if buf.len() as u64 > limit {
            return Err(format!("{} is larger than {limit} bytes", shown.display()));
        }
        Ok(Some(buf))
    }

    /// Creates `name` exclusively (never an existing file, never through a symlink), owned by
    /// root and the directory's group, with `mode` whatever the umask.
    fn create_raw(&self, name: &str, mode: u32) -> Result<OwnedFd, Errno> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(self.fd.as_fd(), name, flags, Mode::from_bits_truncate(mode))?;
        // Created with the helper's effective uid (root) but its real gid: make it root's.
        let owned = fchown(&fd, Some(Uid::from_raw(0)), Some(Gid::from_raw(self.gid.unwrap_or(0))))
            .and_then(|()| nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode)));
        if let Err(e) = owned {
            let _ = nix::unistd::unlinkat(self.fd.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        Ok(fd)
    }

    /// A new file to stream into (a recording).
    pub fn create_file(&self, name: &str, mode: u32) -> Result<File, String> {
        let shown = self.path.join(plain_name(name)?);
        self.create_raw(name, mode)
            .map(File::from)
            .map_err(|e| format!("cannot create {}: {}", shown.display(), e.desc()))
    }

    /// Writes `data` to a new temporary file (fsync'd) and returns its name.
    fn temp_with(&self, name: &str, data: &[u8], mode: u32) -> Result<String, Errno> {
        let mut r = [0u8; 6];
        let _ = getrandom::fill(&mut r);
        let tmp = format!(".{name}.{}.tmp", r.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let fd = self.create_raw(&tmp, mode)?;
        let written = super::fd::write_all(fd.as_fd(), data).and_then(|()| nix::unistd::fsync(&fd));
        if let Err(e) = written {
            let _ =
                nix::unistd::unlinkat(self.fd.as_fd(), tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        Ok(tmp)
    }

    /// Replaces a file atomically: readers see the old or the new content, never a mix.
    pub fn write(&self, name: &str, data: &[u8], mode: u32) -> Result<(), String> {
        let shown = self.path.join(plain_name(name)?);
        let tmp = self
            .temp_with(name, data, mode)
            .map_err(|e| format!("cannot write {}: {}", shown.display(), e.desc()))?;
        nix::fcntl::renameat(self.fd.as_fd(), tmp.as_str(), self.fd.as_fd(), name).map_err(|e| {
            let _ =
                nix::unistd::unlinkat(self.fd.as_fd(), tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
            format!("cannot write {}: {}", shown.display(), e.desc())
        })
    }

    /// Creates a file only if it does not exist yet, complete or not at all (written aside,
    /// then linked into place): of several processes racing, exactly one gets `Ok(true)`, and
    /// no reader ever sees it half-written.
    pub fn create_new(&self, name: &str, data: &[u8], mode: u32) -> Result<bool, String> {
        let shown = self.path.join(plain_name(name)?);
        let tmp = self
            .temp_with(name, data, mode)
            .map_err(|e| format!("cannot create {}: {}", shown.display(), e.desc()))?;
        let linked = nix::unistd::linkat(
            self.fd.as_fd(),
            tmp.as_str(),
            self.fd.as_fd(),
            name,
            nix::fcntl::AtFlags::empty(),
        );
        let _ = nix::unistd::unlinkat(self.fd.as_fd(), tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        match linked {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(format!("cannot create {}: {}", shown.display(), e.desc())),
        }
    }
}

impl TrustedDir {
    /// The plain names in the directory (temporary `.` files skipped), at most `max`.
    pub fn names(&self, max: usize) -> Result<Vec<String>, String> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut dir = nix::dir::Dir::openat(self.fd.as_fd(), ".", flags, Mode::empty())
            .map_err(|e| format!("cannot list {}: {}", self.path.display(), e.desc()))?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| format!("cannot list {}: {}", self.path.display(), e.desc()))?;
            let Ok(name) = entry.file_name().to_str() else { continue };
            if !name.starts_with('.') {
                out.push(name.to_string());
                if out.len() >= max {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Removes a file (never a directory, never through a symlink: `unlinkat` acts on the
    /// entry itself).
    pub fn remove(&self, name: &str) -> Result<(), String> {
        let shown = self.path.join(plain_name(name)?);
        match nix::unistd::unlinkat(self.fd.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(format!("cannot remove {}: {}", shown.display(), e.desc())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_dotdot_paths_are_refused() {
        assert!(secure_open(Path::new("etc/passwd")).is_err());
        assert!(secure_open(Path::new("/etc/../etc/passwd")).is_err());
    }

    #[test]
    fn root_owned_system_files_open() {
        // /etc/passwd is root-owned 0644 on every Linux system.
        if nix::unistd::geteuid().is_root() || std::fs::metadata("/etc").is_ok() {
            assert!(secure_open(Path::new("/etc/passwd")).unwrap().is_some());
            assert!(secure_open(Path::new("/etc/does-not-exist-lpexec")).unwrap().is_none());
        }
    }

    #[test]
    fn world_writable_directories_are_refused() {
        // /tmp is 1777: anything below it is untrusted.
        let e = secure_open(Path::new("/tmp/lpexec-nothing.toml")).unwrap_err();
        assert!(e.contains("/tmp is writable by others"), "{e}");
    }
}
