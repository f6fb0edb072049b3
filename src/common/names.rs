//! Checked names: users, groups, environment variables, and which variables are dangerous.

/// A user or group name as accepted in policy and on the command line: what `useradd` accepts
/// by default (`[A-Za-z0-9_.-]`, optionally a trailing `$`), at most 32 bytes, not starting with
/// `-`. Names are looked up, never used to build paths.
pub fn is_valid_account_name(s: &str) -> bool {
    let body = s.strip_suffix('$').unwrap_or(s);
    !body.is_empty()
        && s.len() <= 32
        && !s.starts_with('-')
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A numeric account spelling `#1000`. Rejects `#-1`, `#4294967295` (which is `(uid_t)-1`, the
/// CVE-2019-14287 class), `#+1`, `#0x10`, leading/trailing junk, and overflow.
pub fn parse_numeric_id(s: &str) -> Option<Result<u32, String>> {
    let digits = s.strip_prefix('#')?;
    let bad = || format!("invalid numeric id {s:?}: expected '#' and a number from 0 to 4294967294");
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Err(bad()));
    }
    match digits.parse::<u64>() {
        Ok(n) if n < u64::from(u32::MAX) => Some(Ok(n as u32)),
        _ => Some(Err(bad())),
    }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 bytes.
pub fn is_valid_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && s.len() <= 128
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Variables that change how a program loads code or runs other programs. A role may not
/// pass them through from the caller (`env_keep`), because that would let the caller run code
/// as the target user. Entries ending in `*` are prefixes.
pub const DANGEROUS_ENV: &[&str] = &[
    "LD_*",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "MALLOC_*",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "RES_OPTIONS",
    "LOCALDOMAIN",
    "IFS",
    "ENV",
    "BASH_ENV",
    "BASH_FUNC_*",
    "BASHOPTS",
    "SHELLOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "CDPATH",
    "GLOBIGNORE",
    "PYTHON*",
    "PERL5*",
    "PERLLIB",
    "PERLIO_DEBUG",
    "RUBY*",
    "GEM_*",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "LUA_*",
    "TCLLIBPATH",
    "EDITOR",
    "VISUAL",
    "SUDO_EDITOR",
    "PAGER",
    "MANPAGER",
    "SYSTEMD_PAGER",
    "BROWSER",
    "LESSOPEN",
    "LESSCLOSE",
    "GIT_*",
    "SSH_ASKPASS",
    "KRB5_CONFIG",
    "KRB5CCNAME",
    "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "TERMINFO",
    "TERMINFO_DIRS",
    "TERMCAP",
    "PATH",
    "LPEXEC_*",
    "USER",
    "LOGNAME",
    "HOME",
    "SHELL",
];

/// Returns the dangerous-list entry that `name` falls under, if any.
pub fn dangerous_env(name: &str) -> Option<&'static str> {
    DANGEROUS_ENV.iter().copied().find(|pat| match pat.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *pat,
    })
}

/// A value that is safe to carry for `TERM`: a terminfo name, not a path.
pub fn is_sane_term(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b))
        && !v.contains("..")
}

/// A locale name such as `en_US.UTF-8` or `C`: never a path (a hostile `LC_ALL=../../tmp/x`
/// would make the target's libc load the caller's locale files).
pub fn is_sane_locale(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
        && !v.contains("..")
}

/// A value passed through `env_keep`: bounded, no bash function export, no control characters,
/// and for `TZ` no path (CVE-2014-9680).
pub fn is_sane_kept_value(name: &str, v: &str) -> bool {
    if v.len() > 4096 || v.starts_with("()") || v.bytes().any(|b| b < 0x20 && b != b'\t') {
        return false;
    }
    match name {
        "TZ" => {
            let zone = v.strip_prefix(':').unwrap_or(v);
            !zone.starts_with('/')
                && !zone.contains("..")
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-:,./".contains(&b))
        }
        "TERM" => is_sane_term(v),
        "LANG" | "LANGUAGE" => is_sane_locale(v),
        n if n.starts_with("LC_") => is_sane_locale(v),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        for ok in ["alice", "web-deploy", "svc_1", "build$", "a.b"] {
            assert!(is_valid_account_name(ok), "{ok}");
        }
        for bad in ["", "-rf", "a b", "../etc", "x/y", "a:b", "$", &"a".repeat(33)] {
            assert!(!is_valid_account_name(bad), "{bad}");
        }
    }

    #[test]
    fn cve_2019_14287_uid_minus_one_spellings_are_refused() {
        for bad in ["#-1", "#4294967295", "#4294967296", "#99999999999", "#+1", "#0x1", "#", "#1a", "# 1"] {
            assert!(matches!(parse_numeric_id(bad), Some(Err(_))), "{bad}");
        }
        assert_eq!(parse_numeric_id("#0"), Some(Ok(0)));
        assert_eq!(parse_numeric_id("#4294967294"), Some(Ok(4294967294)));
        assert_eq!(parse_numeric_id("alice"), None);
    }

    #[test]
    fn dangerous_variables() {
        for d in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "BASH_ENV",
            "ENV",
            "PYTHONPATH",
            "PERL5LIB",
            "RUBYOPT",
            "NODE_OPTIONS",
            "GCONV_PATH",
            "IFS",
            "BASH_FUNC_x%%",
            "PS4",
            "EDITOR",
            "PATH",
        ] {
            assert!(dangerous_env(d).is_some(), "{d}");
        }
        for s in ["NODE_ENV", "HTTP_PROXY", "DISPLAY", "TZ", "LDAP_URI"] {
            assert!(dangerous_env(s).is_none(), "{s}");
        }
    }

    #[test]
    fn values() {
        assert!(is_sane_kept_value("TZ", "Europe/Paris"));
        assert!(is_sane_kept_value("TZ", "UTC"));
        for evil in ["/tmp/evil", ":/tmp/evil", "../../tmp/evil", "Europe/../../tmp"] {
            assert!(!is_sane_kept_value("TZ", evil), "{evil}");
        }
        assert!(!is_sane_kept_value("X", "() { :; }; id"));
        assert!(!is_sane_kept_value("LC_ALL", "../../tmp/evil"));
        assert!(is_sane_kept_value("LC_ALL", "en_US.UTF-8"));
        assert!(!is_sane_kept_value("X", "a\nb"));
    }
}
