//! The command's environment (SPEC §9): reset like sudo's `env_reset`, then only what the
//! policy asks for. Nothing else from the caller gets through.

use std::ffi::CString;

use crate::common::identity::Caller;
use crate::common::names;
use crate::common::policy::Role;
use crate::system::user::Account;

/// Largest environment the helper takes a snapshot of.
pub const MAX_ENV_BYTES: usize = 256 * 1024;
pub const MAX_ENV_VARS: usize = 1024;

pub struct EnvInput<'a> {
    /// The caller's environment as the helper found it.
    pub caller_env: &'a [(String, String)],
    pub caller: &'a Caller,
    pub target: &'a Account,
    pub role: Option<&'a Role>,
    pub secure_path: &'a [std::path::PathBuf],
    pub session: &'a str,
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Builds the environment as `NAME=value` entries; later settings replace earlier ones.
pub fn build(i: &EnvInput<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| {
        out.retain(|(n, _)| n != k);
        out.push((k.to_string(), v.to_string()));
    };
    if let Some(t) = get(i.caller_env, "TERM").filter(|t| names::is_sane_term(t)) {
        set("TERM", t);
    }
    let path: Vec<String> = i.secure_path.iter().map(|p| p.display().to_string()).collect();
    set("PATH", &path.join(":"));
    set("HOME", &i.target.home.display().to_string());
    set("USER", &i.target.name);
    set("LOGNAME", &i.target.name);
    set("SHELL", &i.target.shell.display().to_string());
    for (k, v) in i.caller_env {
        let locale = k == "LANG" || k == "LANGUAGE" || (k.starts_with("LC_") && names::is_valid_env_name(k));
        if locale && names::is_sane_locale(v) {
            set(k, v);
        }
    }
    set("LPEXEC_USER", &i.caller.name);
    set("LPEXEC_UID", &i.caller.uid.to_string());
    set("LPEXEC_ROLE", i.role.map_or("", |r| r.name.as_str()));
    set("LPEXEC_SESSION", i.session);
    if let Some(role) = i.role {
        for k in &role.env_keep {
            // The policy checker refuses dangerous names; check again here so a policy
            // that somehow bypassed it cannot pass one.
            if names::dangerous_env(k).is_some() {
                continue;
            }
            if let Some(v) = get(i.caller_env, k).filter(|v| names::is_sane_kept_value(k, v)) {
                set(k, v);
            }
        }
        for (k, v) in &role.env_set {
            set(k, v);
        }
    }
    out
}

pub fn to_cstrings(env: &[(String, String)]) -> Vec<CString> {
    env.iter().filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::policy::Policy;
    use std::path::PathBuf;

    fn role() -> Role {
        let p = Policy::parse(
            &[(PathBuf::from("/p.toml"), "[[role]]\nname = \"web\"\nmembers = [{ unix_user = \"a\" }]\nenv_keep = [\"NODE_ENV\", \"TZ\"]\nenv_set = { CI = \"true\", HOME = \"/srv\" }\n".into())],
            &[],
        )
        .unwrap();
        p.roles[0].clone()
    }

    #[test]
    fn only_vetted_variables_pass() {
        let caller_env: Vec<(String, String)> = [
            ("TERM", "xterm-256color"),
            ("PATH", "/home/alice/bin:/usr/bin"),
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("LD_LIBRARY_PATH", "/tmp"),
            ("BASH_ENV", "/tmp/x"),
            ("BASH_FUNC_ls%%", "() { id; }"),
            ("PYTHONPATH", "/tmp"),
            ("TZ", "/tmp/evil"),
            ("PS4", "$(id)"),
            ("NODE_ENV", "production"),
            ("LANG", "en_US.UTF-8"),
            ("LC_ALL", "../../tmp/evil"),
            ("HOME", "/home/alice"),
            ("LPEXEC_ROLE", "forged"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let caller = Caller { uid: 1000, name: "alice".into(), groups: vec![] };
        let target =
            Account { uid: 0, gid: 0, name: "root".into(), home: "/root".into(), shell: "/bin/bash".into() };
        let r = role();
        let env = build(&EnvInput {
            caller_env: &caller_env,
            caller: &caller,
            target: &target,
            role: Some(&r),
            secure_path: &[PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")],
            session: "S1",
        });
        let m: std::collections::BTreeMap<_, _> = env.iter().cloned().collect();
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "CI",
                "HOME",
                "LANG",
                "LOGNAME",
                "LPEXEC_ROLE",
                "LPEXEC_SESSION",
                "LPEXEC_UID",
                "LPEXEC_USER",
                "NODE_ENV",
                "PATH",
                "SHELL",
                "TERM",
                "USER"
            ]
        );
        assert_eq!(m["PATH"], "/usr/sbin:/usr/bin");
        assert_eq!(m["HOME"], "/srv"); // env_set wins
        assert_eq!(m["LPEXEC_ROLE"], "web");
        assert_eq!(m["LPEXEC_USER"], "alice");
        assert_eq!(m["USER"], "root");
    }
}
