//! Compiled-in locations. Packagers may change them at build time through the environment
//! variables named below; the helper never takes them from its caller.

macro_rules! build_path {
    ($var:literal, $default:literal) => {
        match option_env!($var) {
            Some(p) => p,
            None => $default,
        }
    };
}

/// Main configuration, policy and `policy.d/`.
pub const CONFIG_DIR: &str = build_path!("LPEXEC_CONFIG_DIR", "/etc/lpexec");
/// Root-owned state: host key, JWKS cache, used approval tokens.
pub const STATE_DIR: &str = build_path!("LPEXEC_STATE_DIR", "/var/lib/lpexec");
/// Default recordings directory (`[recording] dir` overrides it).
pub const SESSIONS_DIR: &str = build_path!("LPEXEC_SESSIONS_DIR", "/var/log/lpexec/sessions");
/// Where the front end finds the setuid helper (`LPEXEC_HELPER` overrides it for the front end).
pub const HELPER_PATH: &str = build_path!("LPEXEC_HELPER_PATH", "/usr/libexec/lpexec/lpexec-helper");

/// Default `secure_path` when the configuration does not set one.
pub const DEFAULT_SECURE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn config_file() -> std::path::PathBuf {
    std::path::Path::new(CONFIG_DIR).join("lpexec.toml")
}

pub fn policy_file() -> std::path::PathBuf {
    std::path::Path::new(CONFIG_DIR).join("policy.toml")
}

pub fn policy_dir() -> std::path::PathBuf {
    std::path::Path::new(CONFIG_DIR).join("policy.d")
}
