//! Files private to the calling user: the front end's token cache
//! (`${XDG_CACHE_HOME:-~/.cache}/lpexec/`).
//!
//! The directory must be a real directory (not a symlink) owned by the real uid with no
//! permissions for group or others; it is created 0700 when missing, and refused — with the
//! command that fixes it — when it is someone else's or too open. Every file is opened
//! relative to the checked directory's descriptor with no-follow (so renaming the directory
//! or planting symlinks in it changes nothing), must be owned by the user and mode 0600, and
//! is replaced atomically (temporary file, `fsync`, rename).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

use super::Errno;

/// A checked private directory.
pub struct PrivateDir {
    fd: OwnedFd,
    pub path: PathBuf,
}

fn owner_check(st: &FileStat, path: &Path, dir: bool) -> Result<(), String> {
    let uid = nix::unistd::getuid().as_raw();
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind != if dir { SFlag::S_IFDIR } else { SFlag::S_IFREG } {
        return Err(format!(
            "{} is not a {}",
            path.display(),
            if dir { "directory" } else { "regular file" }
        ));
    }
    if st.st_uid != uid {
        return Err(format!(
            "{} belongs to uid {}, not to you (uid {uid}); lpexec keeps tokens only in a directory of your own\nremove it, or set XDG_CACHE_HOME to a directory of yours",
            path.display(),
            st.st_uid
        ));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(format!(
            "{} is accessible to other users (mode {:04o}); lpexec refuses to keep tokens there\nfix with: chmod {} {}",
            path.display(),
            st.st_mode & 0o7777,
            if dir { "700" } else { "600" },
            path.display()
        ));
    }
    Ok(())
}

impl PrivateDir {
    /// Opens `path`; with `create`, creates it (and missing parents) 0700 first. `Ok(None)`
    /// when it does not exist and `create` is false.
    pub fn open(path: &Path, create: bool) -> Result<Option<PrivateDir>, String> {
        if !path.is_absolute() {
            return Err(format!("{} is not an absolute path", path.display()));
        }
        if create {
            match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path) {
                Ok(()) => {}
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            }
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match nix::fcntl::open(path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(Errno::EACCES) => {
                // Most likely someone else's directory: say whose.
                if let Ok(m) = std::fs::symlink_metadata(path) {
                    if let Ok(st) = nix::sys::stat::lstat(path) {
                        owner_check(&st, path, m.is_dir())?;
                    }
                }
                return Err(format!("cannot open {}: permission denied", path.display()));
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(format!(
                    "{} is a symbolic link or not a directory; lpexec refuses it",
                    path.display()
                ));
            }
            Err(e) => return Err(format!("cannot open {}: {}", path.display(), e.desc())),
        };
        let st = fstat(&fd).map_err(|e| format!("cannot stat {}: {}", path.display(), e.desc()))?;
        owner_check(&st, path, true)?;
        Ok(Some(PrivateDir { fd, path: path.to_path_buf() }))
    }

    fn check_name(name: &str) -> Result<(), String> {
        if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\0') {
            return Err(format!("invalid cache file name {name:?}"));
        }
        Ok(())
    }

    /// Reads a private file of at most `limit` bytes; `Ok(None)` if absent.
    pub fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, String> {
        Self::check_name(name)?;
        let shown = self.path.join(name);
        let flags =
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let fd = match openat(self.fd.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => {
                return Err(format!("{} is a symbolic link; lpexec refuses it", shown.display()));
            }
            Err(e) => return Err(format!("cannot open {}: {}", shown.display(), e.desc())),
        };
        let st = fstat(&fd).map_err(|e| format!("cannot stat {}: {}", shown.display(), e.desc()))?;
        owner_check(&st, &shown, false)?;
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

    /// Replaces a private file atomically, mode 0600.
    pub fn write(&self, name: &str, data: &[u8]) -> Result<(), String> {
        Self::check_name(name)?;
        let shown = self.path.join(name);
        let tmp = format!(".{name}.{}.tmp", std::process::id());
        let unlink =
            |n: &str| nix::unistd::unlinkat(self.fd.as_fd(), n, nix::unistd::UnlinkatFlags::NoRemoveDir);
        let _ = unlink(&tmp);
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let result = openat(self.fd.as_fd(), tmp.as_str(), flags, Mode::from_bits_truncate(0o600))
            .and_then(|fd| {
                // The umask cannot widen 0600, but make the mode exact anyway.
                nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o600))?;
                super::fd::write_all(fd.as_fd(), data)?;
                nix::unistd::fsync(&fd)
            })
            .and_then(|()| nix::fcntl::renameat(self.fd.as_fd(), tmp.as_str(), self.fd.as_fd(), name));
        result.map_err(|e| {
            let _ = unlink(&tmp);
            format!("cannot write {}: {}", shown.display(), e.desc())
        })
    }

    /// Removes a file; `Ok(false)` if it did not exist.
    pub fn remove(&self, name: &str) -> Result<bool, String> {
        Self::check_name(name)?;
        match nix::unistd::unlinkat(self.fd.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(format!("cannot remove {}: {}", self.path.join(name).display(), e.desc())),
        }
    }

    /// Names of the files in the directory (hidden ones skipped), sorted.
    pub fn list(&self) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let rd =
            std::fs::read_dir(&self.path).map_err(|e| format!("cannot list {}: {e}", self.path.display()))?;
        for e in rd.flatten() {
            if let Some(n) = e.file_name().to_str() {
                if !n.starts_with('.') {
                    out.push(n.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("lpexec-private-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn created_private_and_written_atomically() {
        let base = tmp("create");
        let d = PrivateDir::open(&base.join("a/lpexec"), true).unwrap().unwrap();
        d.write("corp.json", b"{}").unwrap();
        let m = std::fs::metadata(base.join("a/lpexec/corp.json")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(base.join("a/lpexec")).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(d.read("corp.json", 10).unwrap().unwrap(), b"{}");
        assert_eq!(d.list().unwrap(), ["corp.json"]);
        assert!(d.remove("corp.json").unwrap());
        assert!(!d.remove("corp.json").unwrap());
        assert!(d.read("corp.json", 10).unwrap().is_none());
        assert!(d.write("../x", b"").is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn too_open_directories_and_files_and_symlinks_are_refused() {
        let base = tmp("open");
        std::fs::create_dir_all(base.join("lpexec")).unwrap();
        std::fs::set_permissions(base.join("lpexec"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = PrivateDir::open(&base.join("lpexec"), true).err().unwrap();
        assert!(e.contains("accessible to other users (mode 0755)") && e.contains("chmod 700"), "{e}");
        std::fs::set_permissions(base.join("lpexec"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let d = PrivateDir::open(&base.join("lpexec"), false).unwrap().unwrap();
        std::fs::write(base.join("lpexec/corp.json"), "x").unwrap();
        std::fs::set_permissions(base.join("lpexec/corp.json"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert!(d.read("corp.json", 10).unwrap_err().contains("chmod 600"));
        std::os::unix::fs::symlink("/etc/passwd", base.join("lpexec/link.json")).unwrap();
        assert!(d.read("link.json", 10).unwrap_err().contains("symbolic link"));
        std::os::unix::fs::symlink(base.join("lpexec"), base.join("dirlink")).unwrap();
        assert!(PrivateDir::open(&base.join("dirlink"), false).is_err());
        assert!(PrivateDir::open(&base.join("absent"), false).unwrap().is_none());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
