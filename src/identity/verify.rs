//! The helper's identity step: every presented ID token verified against its configured
//! issuer, or the request refused (SPEC §6).
//!
//! Order of checks per token: size and structure and algorithm ([`jwt::parse`]), then `iss`
//! against the issuer it is presented for (so a token of issuer A presented for B, or a
//! token of an unknown issuer, never causes a fetch), then the signature with the issuer's
//! keys ([`Keys`]: pinned, cached, or fetched; one rate-limited refetch on an unknown `kid`),
//! then `aud`, `azp`, `exp`, `nbf`, `iat`. Only then is an [`OidcIdentity`] built.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::jwks::{Fetch, Keys, Store};
use super::jwt::{self, Expect, KeySet, VerifyError};
use super::{Presented, printable};
use crate::common::config::{Config, Issuer};
use crate::common::identity::OidcIdentity;
use crate::common::paths;
use crate::system::fs::{self, TrustedDir};

/// Most tokens one request may present.
pub const MAX_TOKENS: usize = 8;

/// Why one token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    Token(VerifyError),
    /// The issuer's keys could not be had (network, cache, pinned file).
    Keys(String),
}

impl From<VerifyError> for Fail {
    fn from(e: VerifyError) -> Fail {
        Fail::Token(e)
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Token(e) => e.fmt(f),
            Fail::Keys(e) => write!(f, "cannot get the issuer's signing keys: {e}"),
        }
    }
}

/// Verifies one token for `issuer` with `keys`.
pub fn verify_token(
    issuer: &Issuer,
    token: &str,
    keys: &mut Keys<'_>,
    now: i64,
) -> Result<OidcIdentity, Fail> {
    let t = jwt::parse(token)?;
    jwt::check_issuer(&t.claims, &issuer.url)?;
    let first = jwt::verify_signature(&t, keys.get().map_err(Fail::Keys)?);
    match first {
        Ok(()) => {}
        Err(VerifyError::UnknownKid(kid)) => {
            if !keys.refetch_for_unknown_kid().map_err(Fail::Keys)? {
                return Err(VerifyError::UnknownKid(kid).into());
            }
            jwt::verify_signature(&t, keys.get().map_err(Fail::Keys)?)?;
        }
        Err(e) => return Err(e.into()),
    }
    let expect = Expect {
        iss: &issuer.url,
        audience: &issuer.audience,
        azp: [issuer.client_id.as_str(), issuer.audience.as_str()],
        now,
    };
    jwt::check_claims(&t.claims, &expect)?;
    Ok(identity(issuer, t.claims))
}

/// The verified claims as an identity: groups from `groups_claim` (an array of strings, or
/// one string), the email unless the provider says it is unverified, and every claim.
pub fn identity(issuer: &Issuer, claims: Map<String, Value>) -> OidcIdentity {
    let groups = match claims.get(&issuer.groups_claim) {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let unverified = matches!(claims.get("email_verified"), Some(Value::Bool(false)));
    let email = match claims.get("email") {
        Some(Value::String(e)) if !unverified && !e.is_empty() => Some(e.clone()),
        _ => None,
    };
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    OidcIdentity {
        issuer: issuer.name.clone(),
        iss: str_claim("iss"),
        sub: str_claim("sub"),
        email,
        groups,
        claims: claims.into_iter().collect::<BTreeMap<_, _>>(),
    }
}

/// The configured issuer a token is for: the one named, or (CI tokens) the one whose URL
/// equals the token's unverified `iss`.
fn issuer_for<'c>(cfg: &'c Config, p: &Presented) -> Result<&'c Issuer, String> {
    match &p.issuer {
        Some(name) => cfg.issuer(name).ok_or_else(|| {
            format!(
                "the ID token {} names issuer {:?}, which lpexec.toml does not configure",
                p.from,
                printable(name, 64)
            )
        }),
        None => {
            let parsed =
                jwt::parse(&p.token).map_err(|e| format!("the ID token {} was refused: {e}", p.from))?;
            let Some(iss) = parsed.claims.get("iss").and_then(Value::as_str) else {
                return Err(format!(
                    "the ID token {} was refused: {}",
                    p.from,
                    VerifyError::MissingClaim("iss")
                ));
            };
            cfg.issuers.iter().find(|i| i.url == iss).ok_or_else(|| {
                format!(
                    "the ID token {} was refused: it was issued by {:?}, which is not a configured issuer",
                    p.from,
                    printable(iss, 100)
                )
            })
        }
    }
}

/// The helper's HTTP access to one issuer (its `ca_file` read through `secure_open`).
struct IssuerFetch<'a> {
    issuer: &'a Issuer,
}

impl Fetch for IssuerFetch<'_> {
    fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, String> {
        crate::common::config::check_url(url)?;
        let https = url.starts_with("https://");
        let ca = match (&self.issuer.ca_file, https) {
            (Some(p), true) => Some(
                fs::secure_read(p, 1024 * 1024)?.ok_or_else(|| format!("{} does not exist", p.display()))?,
            ),
            _ => None,
        };
        let client =
            super::http::Client::new(super::http::Profile::Helper, https, ca.as_deref().map(str::as_bytes))?;
        let body = client.get(url, limit as u64).map_err(|e| e.to_string())?;
        // The resolver must not have left a thread behind: the helper forks later.
        if crate::system::process::thread_count() > 1 {
            return Err("internal error: a thread was started while fetching keys".into());
        }
        Ok(body)
    }
}

/// The key cache directory, opened on first use.
struct LazyStore {
    dir: std::cell::OnceCell<Result<TrustedDir, String>>,
}

impl LazyStore {
    fn dir(&self) -> Result<&TrustedDir, String> {
        self.dir
            .get_or_init(|| TrustedDir::open(&Path::new(paths::STATE_DIR).join("jwks")))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl Store for LazyStore {
    fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, String> {
        self.dir()?.read(name, limit)
    }
    fn write(&self, name: &str, data: &[u8]) -> Result<(), String> {
        self.dir()?.write(name, data, 0o600)
    }
    fn create_new(&self, name: &str, data: &[u8]) -> Result<bool, String> {
        self.dir()?.create_new(name, data, 0o600)
    }
}

/// Verifies every presented token (the helper's pipeline step). `Err` carries the reason to
/// log and show; it never contains a token.
pub fn verify_presented(
    cfg: &Config,
    presented: &[Presented],
    now: i64,
) -> Result<Vec<OidcIdentity>, String> {
    if presented.len() > MAX_TOKENS {
        return Err(format!(
            "the request presents {} ID tokens; at most {MAX_TOKENS} are accepted",
            presented.len()
        ));
    }
    let store = LazyStore { dir: std::cell::OnceCell::new() };
    let mut out: Vec<OidcIdentity> = Vec::new();
    for p in presented {
        if p.token.len() > jwt::MAX_TOKEN {
            return Err(format!(
                "the ID token {} was refused: {}",
                p.from,
                VerifyError::TooLarge(p.token.len())
            ));
        }
        let issuer = issuer_for(cfg, p)?;
        if out.iter().any(|o| o.issuer == issuer.name) {
            return Err(format!("the request presents two ID tokens for issuer {}", issuer.name));
        }
        let fetch = IssuerFetch { issuer };
        let mut keys = match &issuer.jwks_file {
            Some(path) => {
                let text = fs::secure_read(path, jwks_limit())
                    .and_then(|t| t.ok_or_else(|| format!("{} does not exist", path.display())))
                    .map_err(|e| format!("issuer {}: jwks_file: {e}", issuer.name))?;
                let set = KeySet::parse(text.as_bytes())
                    .map_err(|e| format!("issuer {}: jwks_file {}: {e}", issuer.name, path.display()))?;
                Keys::pinned(issuer, &fetch, &store, set)
            }
            None => Keys::new(issuer, &fetch, &store, now),
        };
        let id = verify_token(issuer, &p.token, &mut keys, now)
            .map_err(|e| format!("the ID token for {} {} was refused: {e}", issuer.name, p.from))?;
        out.push(id);
    }
    Ok(out)
}

fn jwks_limit() -> u64 {
    super::jwks::MAX_DOC as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> Issuer {
        Issuer { groups_claim: "roles".into(), ..Issuer::for_tests() }
    }

    #[test]
    fn identity_takes_groups_from_the_configured_claim() {
        let c: Map<String, Value> = serde_json::from_str(
            r#"{"iss":"https://id.example.com","sub":"u1","email":"a@example.com","roles":["sre",7,"dev"],"groups":["x"]}"#,
        )
        .unwrap();
        let id = identity(&issuer(), c);
        assert_eq!(id.groups, ["sre", "dev"]);
        assert_eq!(id.email.as_deref(), Some("a@example.com"));
        assert_eq!(id.display(), "corp:a@example.com");
        assert_eq!(id.claims["sub"], "u1");
    }

    #[test]
    fn unverified_email_is_not_trusted() {
        let c: Map<String, Value> = serde_json::from_str(
            r#"{"sub":"u1","email":"boss@example.com","email_verified":false,"roles":"ops"}"#,
        )
        .unwrap();
        let id = identity(&issuer(), c);
        assert_eq!(id.email, None);
        assert_eq!(id.groups, ["ops"]);
        assert_eq!(id.display(), "corp:u1");
    }

    #[test]
    fn tokens_of_unconfigured_issuers_are_refused_before_any_fetch() {
        let mut cfg = Config::default_at(Path::new("/etc/lpexec/lpexec.toml"));
        cfg.issuers.push(issuer());
        let p = Presented {
            issuer: Some("other".into()),
            token: "x".into(),
            from: super::super::TokenSource::Cache,
        };
        assert!(verify_presented(&cfg, &[p], 0).unwrap_err().contains("does not configure"));
        let p = Presented { issuer: None, token: "garbage".into(), from: super::super::TokenSource::Env };
        let e = verify_presented(&cfg, &[p], 0).unwrap_err();
        assert!(e.contains("from LPEXEC_ID_TOKEN was refused: the token is not a valid signed JWT"), "{e}");
        let big =
            Presented { issuer: None, token: "a".repeat(20_000), from: super::super::TokenSource::File };
        assert!(verify_presented(&cfg, &[big], 0).unwrap_err().contains("more than the 16384 accepted"));
    }
}
