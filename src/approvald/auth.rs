//! Who is calling: every `/v1/requests*` call carries `Authorization: Bearer <ID token>`,
//! verified by the helper's own rules ([`verify_token`]: asymmetric algorithms only, `iss`
//! checked before any key fetch, signature, `aud`, `azp`, `exp`, `nbf`, `iat` with 60 s
//! leeway). The token's `iss` picks the configured `[[issuer]]`; a token of any other issuer
//! is refused without a fetch.
//!
//! Keys: a pinned `jwks_file` is read once at start; otherwise discovery and the JWK set are
//! fetched and kept in memory for [`jwks::TTL`] (so a busy service does not fetch per
//! request), with the helper's rate-limited refetch on an unknown `kid`
//! ([`jwks::REFETCH_INTERVAL`]) — the in-memory [`MemStore`] plays the helper's state
//! directory. Verification is blocking (ring, and ureq for fetches): call it from
//! `spawn_blocking`.
//!
//! [`jwks::TTL`]: crate::identity::jwks::TTL
//! [`jwks::REFETCH_INTERVAL`]: crate::identity::jwks::REFETCH_INTERVAL

use std::collections::HashMap;
use std::sync::Mutex;

use crate::common::config::{Issuer, check_url};
use crate::common::identity::OidcIdentity;
use crate::identity::jwks::{Fetch, Keys, Store};
use crate::identity::jwt::{self, KeySet};
use crate::identity::printable;
use crate::identity::verify::{Fail, verify_token};

/// Why a caller is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No usable `Authorization: Bearer` header (401).
    Missing,
    /// The token was refused; the reason is safe to show (401).
    Refused(String),
    /// The identity provider's keys cannot be had: the service's problem (503); the detail
    /// is for the log only.
    Unavailable(String),
}

/// An in-memory stand-in for the helper's key cache directory.
#[derive(Default)]
pub struct MemStore(Mutex<HashMap<String, Vec<u8>>>);

impl MemStore {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemStore {
    fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, String> {
        Ok(self.map().get(name).filter(|v| v.len() as u64 <= limit).cloned())
    }
    fn write(&self, name: &str, data: &[u8]) -> Result<(), String> {
        self.map().insert(name.to_string(), data.to_vec());
        Ok(())
    }
    fn create_new(&self, name: &str, data: &[u8]) -> Result<bool, String> {
        let mut m = self.map();
        if m.contains_key(name) {
            return Ok(false);
        }
        m.insert(name.to_string(), data.to_vec());
        Ok(true)
    }
}

/// HTTP access to one issuer, trusting the system CAs plus its `ca_file`.
struct IssuerFetch<'a> {
    ca: Option<&'a [u8]>,
}

impl Fetch for IssuerFetch<'_> {
    fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, String> {
        check_url(url)?;
        let https = url.starts_with("https://");
        let client = crate::identity::http::Client::new(
            crate::identity::http::Profile::Helper,
            https,
            if https { self.ca } else { None },
        )?;
        client.get(url, limit as u64).map_err(|e| e.to_string())
    }
}

struct Configured {
    issuer: Issuer,
    /// `jwks_file` contents, read at start.
    pinned: Option<Vec<u8>>,
    /// `ca_file` contents, read at start.
    ca: Option<Vec<u8>>,
}

/// Verifies callers' ID tokens against the configured issuers.
pub struct Verifier {
    issuers: Vec<Configured>,
    store: MemStore,
}

impl Verifier {
    /// Reads every issuer's `jwks_file` and `ca_file` (failing now rather than per request).
    pub fn new(issuers: &[Issuer]) -> Result<Verifier, String> {
        let mut out = Vec::new();
        for i in issuers {
            let read = |p: &std::path::Path, what: &str| {
                std::fs::read(p)
                    .map_err(|e| format!("issuer {}: cannot read {what} {}: {e}", i.name, p.display()))
            };
            let pinned = match &i.jwks_file {
                Some(p) => {
                    let bytes = read(p, "jwks_file")?;
                    KeySet::parse(&bytes)
                        .map_err(|e| format!("issuer {}: jwks_file {}: {e}", i.name, p.display()))?;
                    Some(bytes)
                }
                None => None,
            };
            let ca = match &i.ca_file {
                Some(p) => Some(read(p, "ca_file")?),
                None => None,
            };
            out.push(Configured { issuer: i.clone(), pinned, ca });
        }
        Ok(Verifier { issuers: out, store: MemStore::default() })
    }

    /// Verifies the value of an `Authorization` header.
    pub fn verify_header(&self, header: Option<&str>, now: i64) -> Result<OidcIdentity, AuthError> {
        let token = header
            .and_then(|h| {
                let (scheme, rest) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify(token, now)
    }

    /// Verifies one ID token.
    pub fn verify(&self, token: &str, now: i64) -> Result<OidcIdentity, AuthError> {
        let parsed = jwt::parse(token).map_err(|e| AuthError::Refused(e.to_string()))?;
        let iss = parsed
            .claims
            .get("iss")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| AuthError::Refused(jwt::VerifyError::MissingClaim("iss").to_string()))?;
        let c = self.issuers.iter().find(|c| c.issuer.url == iss).ok_or_else(|| {
            AuthError::Refused(format!(
                "the token was issued by {:?}, which this approval service does not trust",
                printable(iss, 100)
            ))
        })?;
        let fetch = IssuerFetch { ca: c.ca.as_deref() };
        let mut keys = match &c.pinned {
            Some(bytes) => {
                let set = KeySet::parse(bytes).map_err(AuthError::Unavailable)?;
                Keys::pinned(&c.issuer, &fetch, &self.store, set)
            }
            None => Keys::new(&c.issuer, &fetch, &self.store, now),
        };
        verify_token(&c.issuer, token, &mut keys, now).map_err(|e| match e {
            Fail::Token(e) => AuthError::Refused(e.to_string()),
            Fail::Keys(e) => AuthError::Unavailable(format!("issuer {}: {e}", c.issuer.name)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> Verifier {
        Verifier::new(&[Issuer::for_tests()]).unwrap()
    }

    #[test]
    fn header_forms() {
        let v = verifier();
        assert_eq!(v.verify_header(None, 0), Err(AuthError::Missing));
        assert_eq!(v.verify_header(Some("Basic abc"), 0), Err(AuthError::Missing));
        assert_eq!(v.verify_header(Some("Bearer   "), 0), Err(AuthError::Missing));
        assert!(matches!(v.verify_header(Some("bearer x.y.z"), 0), Err(AuthError::Refused(_))));
    }

    #[test]
    fn other_issuers_are_refused_without_a_fetch() {
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t =
            format!("{}.{}.{}", b(r#"{"alg":"RS256","kid":"k"}"#), b(r#"{"iss":"https://evil"}"#), b("sig"));
        let e = verifier().verify(&t, 0).unwrap_err();
        assert!(matches!(&e, AuthError::Refused(m) if m.contains("does not trust")), "{e:?}");
    }

    #[test]
    fn memstore_create_new_is_exclusive() {
        let s = MemStore::default();
        assert!(s.create_new("a", b"1").unwrap());
        assert!(!s.create_new("a", b"2").unwrap());
        assert_eq!(s.read("a", 10).unwrap().unwrap(), b"1");
    }
}
