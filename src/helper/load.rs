//! Loading configuration and policy. The helper reads them only through
//! [`secure_read`](crate::system::fs::secure_read); `lpexec check` uses the same code, with
//! the same checks by default, or plain reads for draft files given on its command line.

use std::path::{Path, PathBuf};

use crate::common::config::Config;
use crate::common::paths;
use crate::common::policy::Policy;
use crate::system::fs;

pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
pub const MAX_POLICY_BYTES: u64 = 16 * 1024 * 1024;
pub const MAX_POLICY_FILES: usize = 1000;

/// How files are read: securely (root-owned chain) or plainly (drafts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Secure,
    Plain,
}

fn read(path: &Path, limit: u64, access: Access) -> Result<Option<String>, String> {
    match access {
        Access::Secure => fs::secure_read(path, limit),
        Access::Plain => match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            Ok(m) if m.len() > limit => Err(format!("{} is larger than {limit} bytes", path.display())),
            Ok(_) => std::fs::read_to_string(path)
                .map(Some)
                .map_err(|e| format!("cannot read {}: {e}", path.display())),
        },
    }
}

/// The main configuration; an absent file means the defaults.
pub fn config(path: &Path, access: Access) -> Result<Config, String> {
    match read(path, MAX_CONFIG_BYTES, access)? {
        None => Ok(Config::default_at(path)),
        Some(text) => Config::parse(path, &text).map_err(|d| d.to_string()),
    }
}

/// The policy files to merge, in order.
pub fn policy_files(
    main: &Path,
    dir: Option<&Path>,
    access: Access,
) -> Result<Vec<(PathBuf, String)>, String> {
    let mut files = Vec::new();
    if let Some(text) = read(main, MAX_POLICY_BYTES, access)? {
        files.push((main.to_path_buf(), text));
    }
    if let Some(dir) = dir {
        let listed = match access {
            Access::Secure => fs::secure_list_toml(dir)?,
            Access::Plain => match crate::common::policy::policy_d_entries(dir) {
                Ok(v) => Some(v),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
            },
        };
        let listed = listed.unwrap_or_default();
        if listed.len() > MAX_POLICY_FILES {
            return Err(format!("{} holds more than {MAX_POLICY_FILES} policy files", dir.display()));
        }
        for p in listed {
            if let Some(text) = read(&p, MAX_POLICY_BYTES, access)? {
                files.push((p, text));
            }
        }
    }
    Ok(files)
}

/// The merged policy, checked against the configured issuers.
pub fn policy(cfg: &Config, main: &Path, dir: Option<&Path>, access: Access) -> Result<Policy, String> {
    let files = policy_files(main, dir, access)?;
    let issuers: Vec<&str> = cfg.issuers.iter().map(|i| i.name.as_str()).collect();
    Policy::parse(&files, &issuers).map_err(|d| d.to_string())
}

/// The installed configuration and policy, as the helper sees them.
pub fn installed() -> Result<(Config, Policy), String> {
    let cfg = config(&paths::config_file(), Access::Secure)?;
    let pol = policy(&cfg, &paths::policy_file(), Some(&paths::policy_dir()), Access::Secure)?;
    Ok((cfg, pol))
}
