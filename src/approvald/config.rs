//! `approvald.toml` (SPEC §7): where the service listens, who it is (`public_url`, the `iss`
//! of its tokens), where its database and signing key live, and which identity providers
//! vouch for requesters and approvers.
//!
//! Parsed like `lpexec.toml`: unknown keys are errors, every problem is reported at once with
//! file, line and column, and `[[issuer]]` tables are checked by the very same code
//! ([`check_issuers`]) so that one table can be copied between the two files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::common::config::{Issuer, RawIssuer, check_issuers, check_url};
use crate::common::diag::{Diags, Source};
use crate::common::duration;

/// The packaged location.
pub const DEFAULT_CONFIG: &str = "/etc/lpexec/approvald.toml";
/// `request_ttl` when absent.
pub const DEFAULT_REQUEST_TTL: Duration = Duration::from_secs(3600);

/// Where the service accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `host:port`.
    Tcp(String),
    /// An absolute path: a unix stream socket (mode 0660).
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => f.write_str(a),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub path: PathBuf,
    pub listen: Listen,
    pub public_url: String,
    pub database: PathBuf,
    pub signing_key: PathBuf,
    /// Certificate chain and private key (PEM) to serve HTTPS; both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub request_ttl: Duration,
    pub issuers: Vec<Issuer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Spanned<String>,
    public_url: Spanned<String>,
    database: Spanned<String>,
    signing_key: Spanned<String>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    request_ttl: Option<Spanned<String>>,
    #[serde(default)]
    issuer: Vec<Spanned<RawIssuer>>,
}

impl Config {
    /// Parses and checks the text of `approvald.toml`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Diags> {
        let src = Source::new(path, text);
        let raw: Raw = toml::from_str(text).map_err(|e| Diags(vec![src.toml_error(&e)]))?;
        let mut diags = Vec::new();

        let listen = match parse_listen(raw.listen.get_ref()) {
            Ok(l) => l,
            Err(e) => {
                diags.push(src.at(&raw.listen.span(), e));
                Listen::Tcp(String::new())
            }
        };
        if let Err(e) = check_url(raw.public_url.get_ref()) {
            diags.push(src.at(&raw.public_url.span(), format!("public_url: {e}")));
        }
        let mut abs = |p: &Spanned<String>, what: &str| {
            let s = p.get_ref();
            if !s.starts_with('/') || s.split('/').any(|c| c == "..") {
                diags.push(src.at(&p.span(), format!("{what} must be an absolute path without '..'")));
            }
            PathBuf::from(s)
        };
        let database = abs(&raw.database, "database");
        let signing_key = abs(&raw.signing_key, "signing_key");
        let tls = match (&raw.tls_cert, &raw.tls_key) {
            (Some(c), Some(k)) => Some((abs(c, "tls_cert"), abs(k, "tls_key"))),
            (None, None) => None,
            (Some(c), None) => {
                diags.push(src.at(&c.span(), "tls_cert needs tls_key too (the certificate's private key)"));
                None
            }
            (None, Some(k)) => {
                diags.push(src.at(&k.span(), "tls_key needs tls_cert too (the certificate chain)"));
                None
            }
        };
        if tls.is_some() && matches!(listen, Listen::Unix(_)) {
            let span = raw.tls_cert.as_ref().map_or(raw.listen.span(), Spanned::span);
            diags.push(
                src.at(&span, "tls_cert and tls_key apply to a host:port listen address, not a unix socket"),
            );
        }
        let request_ttl = match &raw.request_ttl {
            Some(t) => duration::parse(t.get_ref()).unwrap_or_else(|e| {
                diags.push(src.at(&t.span(), format!("request_ttl: {e}")));
                DEFAULT_REQUEST_TTL
            }),
            None => DEFAULT_REQUEST_TTL,
        };
        let issuers = check_issuers(&src, raw.issuer, &mut diags);
        if issuers.is_empty() && diags.is_empty() {
            diags.push(src.whole(
                "no [[issuer]] is configured, so nobody could authenticate: add the identity provider \
                 your hosts' lpexec.toml uses (the same [[issuer]] table)",
            ));
        }
        if !diags.is_empty() {
            return Err(Diags(diags));
        }
        Ok(Config {
            path: path.to_path_buf(),
            listen,
            public_url: raw.public_url.into_inner().trim_end_matches('/').to_string(),
            database,
            signing_key,
            tls,
            request_ttl,
            issuers,
        })
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read {}: {e}\nwrite one (see lpexec-approvald.toml(5) and /usr/share/doc/lpexec/examples/approvald.toml) or pass --config FILE",
                path.display()
            )
        })?;
        Config::parse(path, &text).map_err(|d| d.to_string())
    }
}

/// `host:port` (a name or an IP address, `[v6]:port`) or an absolute socket path.
fn parse_listen(s: &str) -> Result<Listen, String> {
    if s.starts_with('/') {
        if s.split('/').any(|c| c == "..") || s.ends_with('/') || s.len() > 100 {
            return Err(format!(
                "listen {s:?}: a unix socket path must be absolute, without '..', at most 100 bytes"
            ));
        }
        return Ok(Listen::Unix(PathBuf::from(s)));
    }
    let bad = || {
        format!(
            "listen {s:?} must be host:port (like \"127.0.0.1:8443\" or \"[::1]:8443\") or an absolute unix socket path"
        )
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.len() <= 253
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        }
    };
    if !host_ok || port == 0 {
        return Err(bad());
    }
    Ok(Listen::Tcp(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str =
        "[[issuer]]\nname = \"corp\"\nurl = \"https://id.example.com\"\nclient_id = \"lpexec\"\n";

    fn parse(text: &str) -> Result<Config, Diags> {
        Config::parse(Path::new("/etc/lpexec/approvald.toml"), text)
    }

    fn base(extra: &str) -> String {
        format!(
            "listen = \"127.0.0.1:8443\"\npublic_url = \"https://approvals.example.com/\"\n\
             database = \"/var/lib/a/approvals.db\"\nsigning_key = \"/var/lib/a/signing.key\"\n{extra}\n{ISSUER}"
        )
    }

    #[test]
    fn minimal_file_parses_with_defaults() {
        let c = parse(&base("")).unwrap();
        assert_eq!(c.listen, Listen::Tcp("127.0.0.1:8443".into()));
        assert_eq!(c.public_url, "https://approvals.example.com");
        assert_eq!(c.request_ttl, DEFAULT_REQUEST_TTL);
        assert_eq!(c.issuers[0].name, "corp");
        assert_eq!(c.tls, None);
    }

    #[test]
    fn unix_socket_and_ttl() {
        let c = parse(&base("request_ttl = \"2s\"").replace("127.0.0.1:8443", "/run/lpexec/approvald.sock"))
            .unwrap();
        assert_eq!(c.listen, Listen::Unix("/run/lpexec/approvald.sock".into()));
        assert_eq!(c.request_ttl, Duration::from_secs(2));
    }

    #[test]
    fn problems_name_line_and_column() {
        let e = parse(&base("request_ttl = \"1 hour\"")).unwrap_err().to_string();
        assert!(e.starts_with("/etc/lpexec/approvald.toml:5:15: request_ttl: invalid duration"), "{e}");
        let e = parse(&base("reqest_ttl = \"1h\"")).unwrap_err().to_string();
        assert!(e.starts_with("/etc/lpexec/approvald.toml:5:1: unknown field `reqest_ttl`"), "{e}");
        let e = parse(&base("").replace("https://approvals", "http://approvals")).unwrap_err().to_string();
        assert!(e.contains(":2:14: public_url: URL"), "{e}");
    }

    #[test]
    fn collects_every_problem() {
        let text = base("tls_cert = \"cert.pem\"")
            .replace("127.0.0.1:8443", "nowhere")
            .replace("/var/lib/a/approvals.db", "approvals.db");
        let e = parse(&text).unwrap_err();
        // listen, database, tls_cert without tls_key
        assert_eq!(e.0.len(), 3, "{e}");
    }

    #[test]
    fn an_issuer_is_required() {
        let text = base("").replace(ISSUER, "");
        assert!(parse(&text).unwrap_err().to_string().contains("no [[issuer]] is configured"));
    }

    #[test]
    fn listen_forms() {
        assert!(parse_listen("[::1]:8443").is_ok());
        assert!(parse_listen("approvals.internal:443").is_ok());
        for bad in ["8443", ":8443", "host:0", "host:99999", "/run/../x.sock", "relative.sock", "a b:1"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }
}
