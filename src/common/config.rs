//! The main configuration file, `/etc/lpexec/lpexec.toml` (SPEC §3), as checked types.
//!
//! Every key is optional and unknown keys are errors: a typo must not silently weaken policy.
//! Problems are reported with file, line and column, all of them at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::common::diag::{Diag, Diags, Source};
use crate::common::{duration, names, paths};

/// `[syslog] facility`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facility {
    Auth,
    Authpriv,
    Daemon,
    User,
    Local(u8),
}

impl Facility {
    fn parse(s: &str) -> Option<Facility> {
        Some(match s {
            "auth" => Facility::Auth,
            "authpriv" => Facility::Authpriv,
            "daemon" => Facility::Daemon,
            "user" => Facility::User,
            _ => {
                let n: u8 = s.strip_prefix("local")?.parse().ok()?;
                if n > 7 {
                    return None;
                }
                Facility::Local(n)
            }
        })
    }
}

/// `[recording] on_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Never run a command that cannot be recorded; stop one whose recording fails.
    Deny,
    /// Run on and log loudly.
    Continue,
}

/// An `[[issuer]]` entry: an OIDC provider whose ID tokens identify callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    pub name: String,
    pub url: String,
    pub client_id: String,
    pub audience: String,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    pub device_flow: bool,
    pub jwks_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

#[cfg(test)]
impl Issuer {
    /// `corp` at `https://id.example.com`, client and audience `lpexec`, groups in `groups`.
    pub fn for_tests() -> Issuer {
        Issuer {
            name: "corp".into(),
            url: "https://id.example.com".into(),
            client_id: "lpexec".into(),
            audience: "lpexec".into(),
            scopes: vec![],
            groups_claim: "groups".into(),
            device_flow: true,
            jwks_file: None,
            ca_file: None,
        }
    }
}

/// `[approval]`: where approvals are requested and which keys may sign them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub url: String,
    /// Raw 32-byte Ed25519 public keys.
    pub trusted_keys: Vec<[u8; 32]>,
    pub wait_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub dir: PathBuf,
    pub group: Option<String>,
    pub record_input: bool,
    pub on_error: OnError,
}

/// The whole checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub path: PathBuf,
    pub secure_path: Vec<PathBuf>,
    pub issuers: Vec<Issuer>,
    pub approval: Option<Approval>,
    pub recording: Recording,
    pub facility: Facility,
}

impl Config {
    /// The configuration that an absent file means.
    pub fn default_at(path: &Path) -> Config {
        Config {
            path: path.to_path_buf(),
            secure_path: split_path(paths::DEFAULT_SECURE_PATH),
            issuers: Vec::new(),
            approval: None,
            recording: Recording {
                dir: PathBuf::from(paths::SESSIONS_DIR),
                group: None,
                record_input: false,
                on_error: OnError::Deny,
            },
            facility: Facility::Authpriv,
        }
    }

    pub fn issuer(&self, name: &str) -> Option<&Issuer> {
        self.issuers.iter().find(|i| i.name == name)
    }

    pub fn issuer_names(&self) -> BTreeSet<&str> {
        self.issuers.iter().map(|i| i.name.as_str()).collect()
    }

    /// Parses and checks the text of a configuration file.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Diags> {
        let src = Source::new(path, text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| Diags(vec![src.toml_error(&e)]))?;
        let mut diags = Vec::new();
        let mut cfg = Config::default_at(path);

        if let Some(sp) = raw.secure_path {
            let dirs = split_path(sp.get_ref());
            if dirs.is_empty() || sp.get_ref().split(':').any(|d| !d.starts_with('/')) {
                diags.push(
                    src.at(&sp.span(), "secure_path must be a ':'-separated list of absolute directories"),
                );
            }
            cfg.secure_path = dirs;
        }
        cfg.issuers = check_issuers(&src, raw.issuer, &mut diags);
        if let Some(a) = raw.approval {
            let span = a.span();
            let a = a.into_inner();
            if let Err(e) = check_url(a.url.get_ref()) {
                diags.push(src.at(&a.url.span(), format!("approval url: {e}")));
            }
            let mut keys = Vec::new();
            for k in &a.trusted_keys {
                match parse_public_key(k.get_ref()) {
                    Ok(key) => keys.push(key),
                    Err(e) => diags.push(src.at(&k.span(), e)),
                }
            }
            if keys.is_empty() && a.trusted_keys.is_empty() {
                diags.push(src.at(&span, "[approval] needs at least one entry in trusted_keys (the service's `lpexec-approvald keygen` prints it)"));
            }
            let wait_timeout = match &a.wait_timeout {
                Some(w) => duration::parse(w.get_ref()).unwrap_or_else(|e| {
                    diags.push(src.at(&w.span(), e));
                    Duration::from_secs(1800)
                }),
                None => Duration::from_secs(1800),
            };
            cfg.approval = Some(Approval { url: a.url.into_inner(), trusted_keys: keys, wait_timeout });
        }
        if let Some(r) = raw.recording {
            if let Some(dir) = r.dir {
                if !dir.get_ref().starts_with('/')
                    || dir.get_ref().contains("/../")
                    || dir.get_ref().ends_with("/..")
                {
                    diags.push(src.at(&dir.span(), "recording dir must be an absolute path without '..'"));
                }
                cfg.recording.dir = PathBuf::from(dir.into_inner());
            }
            if let Some(g) = r.group {
                if !names::is_valid_account_name(g.get_ref()) {
                    diags.push(src.at(
                        &g.span(),
                        format!("recording group {:?} is not a valid group name", g.get_ref()),
                    ));
                }
                cfg.recording.group = Some(g.into_inner());
            }
            cfg.recording.record_input = r.record_input.unwrap_or(false);
            if let Some(oe) = r.on_error {
                cfg.recording.on_error = match oe.get_ref().as_str() {
                    "deny" => OnError::Deny,
                    "continue" => OnError::Continue,
                    other => {
                        diags.push(src.at(
                            &oe.span(),
                            format!("on_error must be \"deny\" or \"continue\", not {other:?}"),
                        ));
                        OnError::Deny
                    }
                };
            }
        }
        if let Some(s) = raw.syslog {
            if let Some(f) = s.facility {
                match Facility::parse(f.get_ref()) {
                    Some(fac) => cfg.facility = fac,
                    None => diags.push(src.at(&f.span(), format!(
                        "unknown syslog facility {:?}: use auth, authpriv, daemon, user or local0..local7", f.get_ref()))),
                }
            }
        }
        if diags.is_empty() { Ok(cfg) } else { Err(Diags(diags)) }
    }
}

fn split_path(s: &str) -> Vec<PathBuf> {
    s.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    secure_path: Option<Spanned<String>>,
    #[serde(default)]
    issuer: Vec<Spanned<RawIssuer>>,
    approval: Option<Spanned<RawApproval>>,
    recording: Option<RawRecording>,
    syslog: Option<RawSyslog>,
}

/// The `[[issuer]]` table, shared with the approval service's configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    name: Spanned<String>,
    url: Spanned<String>,
    client_id: Spanned<String>,
    audience: Option<String>,
    scopes: Option<Vec<String>>,
    groups_claim: Option<String>,
    device_flow: Option<bool>,
    jwks_file: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    url: Spanned<String>,
    #[serde(default)]
    trusted_keys: Vec<Spanned<String>>,
    wait_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecording {
    dir: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    record_input: Option<bool>,
    on_error: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSyslog {
    facility: Option<Spanned<String>>,
}

/// Checks `[[issuer]]` entries: names unique and usable as cache keys, URLs https (or http on
/// loopback), absolute key/CA paths.
pub fn check_issuers(src: &Source<'_>, raw: Vec<Spanned<RawIssuer>>, diags: &mut Vec<Diag>) -> Vec<Issuer> {
    let mut out: Vec<Issuer> = Vec::new();
    for spanned in raw {
        let i = spanned.into_inner();
        let name = i.name.get_ref();
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        {
            diags.push(src.at(
                &i.name.span(),
                format!("issuer name {name:?} must be 1-64 characters of [A-Za-z0-9_-]"),
            ));
        }
        if out.iter().any(|o| &o.name == name) {
            diags.push(src.at(&i.name.span(), format!("issuer {name:?} is defined twice")));
        }
        if let Err(e) = check_url(i.url.get_ref()) {
            diags.push(src.at(&i.url.span(), format!("issuer {name:?}: {e}")));
        }
        if i.client_id.get_ref().is_empty() {
            diags.push(src.at(&i.client_id.span(), "client_id must not be empty"));
        }
        let mut abs = |p: Option<Spanned<String>>, what: &str| {
            p.map(|p| {
                if !p.get_ref().starts_with('/') {
                    diags.push(src.at(&p.span(), format!("{what} must be an absolute path")));
                }
                PathBuf::from(p.into_inner())
            })
        };
        let jwks_file = abs(i.jwks_file, "jwks_file");
        let ca_file = abs(i.ca_file, "ca_file");
        let client_id = i.client_id.into_inner();
        out.push(Issuer {
            name: i.name.into_inner(),
            url: i.url.into_inner().trim_end_matches('/').to_string(),
            audience: i.audience.unwrap_or_else(|| client_id.clone()),
            client_id,
            scopes: i.scopes.unwrap_or_else(|| {
                ["openid", "email", "profile", "offline_access"].map(String::from).to_vec()
            }),
            groups_claim: i.groups_claim.unwrap_or_else(|| "groups".to_string()),
            device_flow: i.device_flow.unwrap_or(true),
            jwks_file,
            ca_file,
        });
    }
    out
}

/// `https://` anywhere; `http://` only to a loopback host (tests and demos).
pub fn check_url(url: &str) -> Result<(), String> {
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("URL {url:?} contains spaces or control characters"));
    }
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("URL {url:?} must start with https://"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!("URL {url:?} must not contain user information"));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(format!("URL {url:?} has no host"));
    }
    if !https && !is_loopback_host(host) {
        return Err(format!(
            "URL {url:?} must use https:// (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)"
        ));
    }
    Ok(())
}

fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// Parses `ed25519:<base64url>` into the raw 32-byte key.
pub fn parse_public_key(s: &str) -> Result<[u8; 32], String> {
    use base64::Engine;
    let bad =
        || format!("trusted key {s:?} must be \"ed25519:\" followed by a base64url-encoded 32-byte key");
    let b64 = s.strip_prefix("ed25519:").ok_or_else(bad)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Diags> {
        Config::parse(Path::new("/etc/lpexec/lpexec.toml"), text)
    }

    #[test]
    fn empty_file_means_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.facility, Facility::Authpriv);
        assert!(c.issuers.is_empty() && c.approval.is_none());
        assert_eq!(c.recording.on_error, OnError::Deny);
        assert_eq!(c.secure_path[0], PathBuf::from("/usr/local/sbin"));
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
secure_path = "/usr/bin:/bin"
[[issuer]]
name = "corp"
url = "https://id.example.com/realms/corp"
client_id = "lpexec"
scopes = ["openid"]
[[issuer]]
name = "local"
url = "http://127.0.0.1:9999/"
client_id = "x"
audience = "aud"
device_flow = false
jwks_file = "/etc/lpexec/jwks.json"
[approval]
url = "https://approvals.example.com"
trusted_keys = ["ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"]
wait_timeout = "5m"
[recording]
dir = "/srv/rec"
group = "lpexec-audit"
record_input = true
on_error = "continue"
[syslog]
facility = "local3"
"#,
        )
        .unwrap();
        assert_eq!(c.issuers.len(), 2);
        assert_eq!(c.issuers[0].audience, "lpexec");
        assert_eq!(c.issuers[1].url, "http://127.0.0.1:9999");
        assert_eq!(c.approval.unwrap().wait_timeout, Duration::from_secs(300));
        assert_eq!(c.recording.on_error, OnError::Continue);
        assert_eq!(c.facility, Facility::Local(3));
    }

    #[test]
    fn unknown_keys_name_the_line() {
        let e = parse("secure_path = \"/bin\"\n[recording]\nrecord_inptu = true\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("/etc/lpexec/lpexec.toml:3:1: unknown field `record_inptu`"), "{s}");
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("http://[::1]:8080").is_ok());
        assert!(check_url("http://localhost").is_ok());
        assert!(check_url("http://id.example.com").is_err());
        assert!(check_url("http://127.0.0.1.evil.com").is_err());
        assert!(check_url("https://user@host").is_err());
        assert!(check_url("ftp://x").is_err());
        let e = parse("[[issuer]]\nname = \"c\"\nurl = \"http://id.example.com\"\nclient_id = \"x\"\n")
            .unwrap_err();
        assert!(e.to_string().contains(":3:7: issuer \"c\": URL"), "{e}");
    }

    #[test]
    fn collects_every_problem() {
        let e = parse("[recording]\non_error = \"maybe\"\ngroup = \"a b\"\n[syslog]\nfacility = \"kern\"\n")
            .unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
    }

    #[test]
    fn bad_trusted_keys() {
        let e = parse("[approval]\nurl = \"https://a\"\ntrusted_keys = [\"ed25519:abc\", \"rsa:x\"]\n")
            .unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
    }
}
