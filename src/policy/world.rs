//! The decision engine's only view of the system.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::Digest;

use super::Target;

/// Filesystem and account answers the decision needs. The helper uses [`SystemWorld`]; tests
/// use a table.
pub trait World {
    /// The first `secure_path` entry holding an executable regular file called `name`.
    fn resolve_name(&self, name: &str) -> Option<PathBuf>;
    /// The canonical form of an existing path (symlinks resolved).
    fn canonicalize(&self, path: &Path) -> Option<PathBuf>;
    /// SHA-256 of a file's contents.
    fn sha256(&self, path: &Path) -> Option<[u8; 32]>;
    /// A target account by name or `#uid`.
    fn lookup_user(&self, spec: &str) -> Option<Target>;
}

/// The real system, searching `secure_path`.
pub struct SystemWorld {
    pub secure_path: Vec<PathBuf>,
}

impl World for SystemWorld {
    fn resolve_name(&self, name: &str) -> Option<PathBuf> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return None;
        }
        self.secure_path
            .iter()
            .map(|d| d.join(name))
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    }

    fn canonicalize(&self, path: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(path).ok()
    }

    fn sha256(&self, path: &Path) -> Option<[u8; 32]> {
        let mut f = std::fs::File::open(path).ok()?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        Some(h.finalize().into())
    }

    fn lookup_user(&self, spec: &str) -> Option<Target> {
        crate::system::user::lookup_target(spec).ok()
    }
}
