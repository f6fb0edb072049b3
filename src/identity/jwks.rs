//! An issuer's signing keys, as the helper gets them: the pinned `jwks_file`, or discovery
//! (`{url}/.well-known/openid-configuration` → `jwks_uri`) with a root-owned cache in the state
//! directory.
//!
//! - A cached key set is used for [`TTL`] seconds; after that it is fetched again (and if the
//!   issuer cannot be reached, the request fails closed).
//! - A token whose `kid` is not in the set triggers exactly one refetch (keys rotate), but at
//!   most one per issuer every [`REFETCH_INTERVAL`] seconds across all helper processes: the
//!   time of the last such refetch is a state file claimed with `O_EXCL`, so a burst of
//!   forged `kid`s costs the identity provider one request, not one per attempt.
//! - Nothing is fetched for a token that claims another issuer (`iss` is checked first), and
//!   only URLs that pass [`check_url`] (https, or http on loopback) are ever fetched.
//!
//! The network and the state directory are behind the [`Fetch`] and [`Store`] traits so the
//! rules above are unit-tested without either.

use serde::{Deserialize, Serialize};

use super::jwt::KeySet;
use crate::common::config::{Issuer, check_url};

/// How long a fetched key set is used before it is fetched again, in seconds.
pub const TTL: i64 = 3600;
/// Least time between two refetches caused by an unknown `kid`, per issuer, in seconds.
pub const REFETCH_INTERVAL: i64 = 60;
/// Largest discovery document or key set read.
pub const MAX_DOC: usize = 256 * 1024;

/// Fetches a URL (the helper's HTTP client, or a table in tests).
pub trait Fetch {
    fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, String>;
}

/// The helper's state directory for key sets (`TrustedDir`, or memory in tests).
pub trait Store {
    fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, String>;
    fn write(&self, name: &str, data: &[u8]) -> Result<(), String>;
    /// Creates `name` only if absent; `Ok(false)` if it existed.
    fn create_new(&self, name: &str, data: &[u8]) -> Result<bool, String>;
}

/// What is cached per issuer.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    /// The issuer URL the set was fetched for (a changed configuration invalidates it).
    issuer_url: String,
    fetched_at: i64,
    jwks_uri: String,
    jwks: serde_json::Value,
}

/// The signing keys of one issuer, loaded lazily.
pub struct Keys<'a> {
    issuer: &'a Issuer,
    fetch: &'a dyn Fetch,
    store: &'a dyn Store,
    now: i64,
    pinned: Option<KeySet>,
    current: Option<KeySet>,
    jwks_uri: Option<String>,
    /// Whether this process already fetched (then a refetch cannot find anything newer).
    fetched: bool,
}

fn cache_name(issuer: &Issuer) -> String {
    format!("{}.json", issuer.name)
}

fn marker_name(issuer: &Issuer) -> String {
    format!("{}.refetch", issuer.name)
}

impl<'a> Keys<'a> {
    pub fn new(issuer: &'a Issuer, fetch: &'a dyn Fetch, store: &'a dyn Store, now: i64) -> Keys<'a> {
        Keys { issuer, fetch, store, now, pinned: None, current: None, jwks_uri: None, fetched: false }
    }

    /// Keys pinned by `jwks_file` (never refetched).
    pub fn pinned(issuer: &'a Issuer, fetch: &'a dyn Fetch, store: &'a dyn Store, set: KeySet) -> Keys<'a> {
        let mut k = Keys::new(issuer, fetch, store, 0);
        k.pinned = Some(set);
        k
    }

    /// The key set to verify with.
    pub fn get(&mut self) -> Result<&KeySet, String> {
        if self.pinned.is_some() {
            return self.pinned.as_ref().ok_or_else(String::new);
        }
        if self.current.is_none() {
            match self.cached() {
                Some((set, uri)) => {
                    self.current = Some(set);
                    self.jwks_uri = Some(uri);
                }
                None => self.fetch_all()?,
            }
        }
        self.current.as_ref().ok_or_else(|| "no keys".to_string())
    }

    fn cached(&self) -> Option<(KeySet, String)> {
        // An unreadable or corrupt cache is as good as none: it is fetched again.
        let bytes = self.store.read(&cache_name(self.issuer), MAX_DOC as u64 * 2).ok()??;
        let c: Cached = serde_json::from_slice(&bytes).ok()?;
        let age = self.now - c.fetched_at;
        if c.issuer_url != self.issuer.url || !(-60..TTL).contains(&age) {
            return None;
        }
        let set = KeySet::parse(c.jwks.to_string().as_bytes()).ok()?;
        Some((set, c.jwks_uri))
    }

    /// The discovery document's `jwks_uri`, checked.
    fn discover(&self) -> Result<String, String> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer.url);
        let body = self.fetch.get(&url, MAX_DOC)?;
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| format!("{url} is not a JSON discovery document"))?;
        match doc.get("issuer").and_then(|v| v.as_str()) {
            Some(i) if i == self.issuer.url => {}
            other => {
                return Err(format!(
                    "{url} names the issuer {:?}, not {:?} (the configured url must be the exact issuer)",
                    other.unwrap_or("(none)"),
                    self.issuer.url
                ));
            }
        }
        let uri =
            doc.get("jwks_uri").and_then(|v| v.as_str()).ok_or_else(|| format!("{url} has no jwks_uri"))?;
        check_url(uri).map_err(|e| format!("jwks_uri of {url}: {e}"))?;
        Ok(uri.to_string())
    }

    /// Fetches the key set (discovering `jwks_uri` when not known) and caches it.
    fn fetch_keys(&mut self, uri: Option<String>) -> Result<(), String> {
        let uri = match uri {
            Some(u) => u,
            None => self.discover()?,
        };
        let body = self.fetch.get(&uri, MAX_DOC)?;
        let set = KeySet::parse(&body).map_err(|e| format!("the key set at {uri} is invalid: {e}"))?;
        let jwks: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let cached =
            Cached { issuer_url: self.issuer.url.clone(), fetched_at: self.now, jwks_uri: uri.clone(), jwks };
        // A cache that cannot be written costs a fetch next time; it does not fail the request.
        if let Ok(bytes) = serde_json::to_vec(&cached) {
            let _ = self.store.write(&cache_name(self.issuer), &bytes);
        }
        self.current = Some(set);
        self.jwks_uri = Some(uri);
        self.fetched = true;
        Ok(())
    }

    fn fetch_all(&mut self) -> Result<(), String> {
        self.fetch_keys(None)
    }

    /// After an unknown `kid`: refetch once if allowed. `Ok(true)` when a new set was fetched
    /// (verify again), `Ok(false)` when a refetch is not allowed or cannot help.
    pub fn refetch_for_unknown_kid(&mut self) -> Result<bool, String> {
        if self.pinned.is_some() || self.fetched {
            return Ok(false);
        }
        let name = marker_name(self.issuer);
        let stamp = self.now.to_string();
        if !self.store.create_new(&name, stamp.as_bytes())? {
            let last = self
                .store
                .read(&name, 64)
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.trim().parse::<i64>().ok());
            match last {
                // A recent refetch (maybe by another process right now): not again.
                Some(t) if (-60..REFETCH_INTERVAL).contains(&(self.now - t)) => return Ok(false),
                _ => self.store.write(&name, stamp.as_bytes())?,
            }
        }
        let uri = self.jwks_uri.clone();
        self.fetch_keys(uri)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    struct Net {
        docs: HashMap<String, String>,
        log: RefCell<Vec<String>>,
    }
    impl Fetch for Net {
        fn get(&self, url: &str, _limit: usize) -> Result<Vec<u8>, String> {
            self.log.borrow_mut().push(url.to_string());
            self.docs
                .get(url)
                .map(|d| d.as_bytes().to_vec())
                .ok_or_else(|| format!("{url}: connection refused"))
        }
    }
    #[derive(Default)]
    struct Mem(RefCell<HashMap<String, Vec<u8>>>);
    impl Store for Mem {
        fn read(&self, name: &str, _: u64) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.borrow().get(name).cloned())
        }
        fn write(&self, name: &str, data: &[u8]) -> Result<(), String> {
            self.0.borrow_mut().insert(name.into(), data.to_vec());
            Ok(())
        }
        fn create_new(&self, name: &str, data: &[u8]) -> Result<bool, String> {
            if self.0.borrow().contains_key(name) {
                return Ok(false);
            }
            self.write(name, data).map(|()| true)
        }
    }

    const URL: &str = "https://id.example.com";

    fn issuer() -> Issuer {
        Issuer { url: URL.into(), ..Issuer::for_tests() }
    }

    fn net(kids: &[&str]) -> Net {
        let keys: Vec<String> =
            kids.iter().map(|k| format!(r#"{{"kty":"OKP","crv":"Ed25519","kid":"{k}","x":"AA"}}"#)).collect();
        let mut docs = HashMap::new();
        docs.insert(
            format!("{URL}/.well-known/openid-configuration"),
            format!(r#"{{"issuer":"{URL}","jwks_uri":"{URL}/jwks"}}"#),
        );
        docs.insert(format!("{URL}/jwks"), format!(r#"{{"keys":[{}]}}"#, keys.join(",")));
        Net { docs, log: RefCell::new(Vec::new()) }
    }

    #[test]
    fn fetched_once_then_served_from_the_cache_until_the_ttl() {
        let (i, n, s) = (issuer(), net(&["a"]), Mem::default());
        assert!(Keys::new(&i, &n, &s, 1000).get().unwrap().has_kid("a"));
        assert_eq!(n.log.borrow().len(), 2); // discovery + jwks
        assert!(Keys::new(&i, &n, &s, 1000 + TTL - 1).get().unwrap().has_kid("a"));
        assert_eq!(n.log.borrow().len(), 2);
        Keys::new(&i, &n, &s, 1000 + TTL).get().unwrap();
        assert_eq!(n.log.borrow().len(), 4);
    }

    #[test]
    fn unknown_kid_refetches_once_per_interval_across_processes() {
        let (i, n, s) = (issuer(), net(&["a"]), Mem::default());
        Keys::new(&i, &n, &s, 1000).get().unwrap();
        let before = n.log.borrow().len();
        // A new process, keys from the cache, an unknown kid: one refetch (jwks only).
        let mut k = Keys::new(&i, &n, &s, 1010);
        k.get().unwrap();
        assert!(k.refetch_for_unknown_kid().unwrap());
        assert!(!k.refetch_for_unknown_kid().unwrap(), "never twice in one process");
        assert_eq!(n.log.borrow().len(), before + 1);
        assert_eq!(n.log.borrow().last().unwrap(), &format!("{URL}/jwks"));
        // A burst of further processes within the interval: no request at all.
        for t in 1011..1060 {
            let mut k = Keys::new(&i, &n, &s, t);
            k.get().unwrap();
            assert!(!k.refetch_for_unknown_kid().unwrap());
        }
        assert_eq!(n.log.borrow().len(), before + 1);
        // After the interval, one more is allowed.
        let mut k = Keys::new(&i, &n, &s, 1010 + REFETCH_INTERVAL);
        k.get().unwrap();
        assert!(k.refetch_for_unknown_kid().unwrap());
        assert_eq!(n.log.borrow().len(), before + 2);
    }

    #[test]
    fn a_process_that_just_fetched_does_not_refetch() {
        let (i, n, s) = (issuer(), net(&["a"]), Mem::default());
        let mut k = Keys::new(&i, &n, &s, 1000);
        k.get().unwrap();
        assert!(!k.refetch_for_unknown_kid().unwrap());
        assert_eq!(n.log.borrow().len(), 2);
    }

    #[test]
    fn discovery_must_name_the_configured_issuer_and_a_safe_jwks_uri() {
        let (i, s) = (issuer(), Mem::default());
        let mut n = net(&["a"]);
        n.docs.insert(
            format!("{URL}/.well-known/openid-configuration"),
            format!(r#"{{"issuer":"https://evil.example.com","jwks_uri":"{URL}/jwks"}}"#),
        );
        let e = Keys::new(&i, &n, &s, 1000).get().map(|_| ()).unwrap_err();
        assert!(e.contains("names the issuer \"https://evil.example.com\""), "{e}");
        n.docs.insert(
            format!("{URL}/.well-known/openid-configuration"),
            format!(r#"{{"issuer":"{URL}","jwks_uri":"http://keys.example.com/jwks"}}"#),
        );
        let e = Keys::new(&i, &n, &s, 1000).get().map(|_| ()).unwrap_err();
        assert!(e.contains("must use https://"), "{e}");
    }

    #[test]
    fn unreachable_issuer_fails_closed_and_a_stale_cache_is_not_used() {
        let (i, n, s) = (issuer(), net(&["a"]), Mem::default());
        Keys::new(&i, &n, &s, 1000).get().unwrap();
        let down = Net { docs: HashMap::new(), log: RefCell::new(Vec::new()) };
        assert!(Keys::new(&i, &down, &s, 1000 + TTL + 1).get().is_err());
    }

    #[test]
    fn a_cache_for_another_issuer_url_is_ignored() {
        let (i, n, s) = (issuer(), net(&["a"]), Mem::default());
        Keys::new(&i, &n, &s, 1000).get().unwrap();
        let mut other = issuer();
        other.url = "https://other.example.com".into();
        let e = Keys::new(&other, &n, &s, 1001).get().map(|_| ()).unwrap_err();
        assert!(e.contains("other.example.com"), "{e}");
    }

    #[test]
    fn pinned_keys_never_touch_the_network() {
        let (i, n, s) = (issuer(), net(&["a"]), Mem::default());
        let set = KeySet::parse(br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"p","x":"AA"}]}"#).unwrap();
        let mut k = Keys::pinned(&i, &n, &s, set);
        assert!(k.get().unwrap().has_kid("p"));
        assert!(!k.refetch_for_unknown_kid().unwrap());
        assert!(n.log.borrow().is_empty());
    }
}
