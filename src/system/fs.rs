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

/// Creates `name` in the trusted directory `dir`: exclusively (never an existing file),
/// never through a symlink, owned by root and `gid`, with `mode` (set explicitly, whatever the
/// umask).
pub fn create_new(
    dir: &OwnedFd,
    name: &str,
    mode: u32,
    gid: Option<u32>,
    shown: &Path,
) -> Result<File, String> {
    let fd = openat(
        dir.as_fd(),
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(|e| format!("cannot create {}: {}", shown.display(), e.desc()))?;
    fchown(&fd, Some(Uid::from_raw(0)), Some(Gid::from_raw(gid.unwrap_or(0))))
        .map_err(|e| format!("cannot chown {}: {}", shown.display(), e.desc()))?;
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
        .map_err(|e| format!("cannot chmod {}: {}", shown.display(), e.desc()))?;
    Ok(File::from(fd))
}

/// Replaces `name` in the trusted directory `dir` with `bytes`, atomically (a temporary file
/// renamed over it).
pub fn replace_file(
    dir: &OwnedFd,
    name: &str,
    bytes: &[u8],
    mode: u32,
    gid: Option<u32>,
    shown: &Path,
) -> Result<(), String> {
    use std::io::Write;
    let mut r = [0u8; 6];
    let _ = getrandom::fill(&mut r);
    let tmp = format!(".{name}.{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let mut f = create_new(dir, &tmp, mode, gid, shown)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    let renamed = written.map_err(|e| e.to_string()).and_then(|()| {
        nix::fcntl::renameat(dir.as_fd(), tmp.as_str(), dir.as_fd(), name).map_err(|e| e.desc().to_string())
    });
    if let Err(e) = renamed {
        let _ = nix::unistd::unlinkat(dir.as_fd(), tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        return Err(format!("cannot write {}: {e}", shown.display()));
    }
    Ok(())
}

/// Reads `name` from the trusted directory `dir` (no symlinks; must be a root-owned regular file
/// not writable by others). `Ok(None)` if absent.
pub fn read_in(dir: &OwnedFd, name: &str, limit: u64, shown: &Path) -> Result<Option<Vec<u8>>, String> {
    let fd = match openat(
        dir.as_fd(),
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(describe_open_error(e, shown)),
    };
    let st = fstat(&fd).map_err(|e| format!("cannot stat {}: {}", shown.display(), e.desc()))?;
    if !is_kind(&st, SFlag::S_IFREG) {
        return Err(format!("{} is not a regular file", shown.display()));
    }
    check_trusted(&st, shown, None)?;
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
