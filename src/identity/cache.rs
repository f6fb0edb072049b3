//! The front end's token cache: one file per issuer, `${XDG_CACHE_HOME:-~/.cache}/lpexec/
//! <issuer>.json`, in a directory only the user can enter (see [`PrivateDir`] for the
//! checks). It holds what later runs need and nothing else: the ID token and the refresh
//! token (access tokens are not kept: lpexec never calls an API with them).
//!
//! The cache is a convenience, never a source of truth: the helper verifies every token it
//! is given, so a cache a user edits can only get that user's own requests refused.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::jwt;
use crate::system::private::PrivateDir;

/// Largest cache file read.
const MAX_ENTRY: u64 = 64 * 1024;
const VERSION: u32 = 1;

/// One issuer's cached tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u32,
    /// The configured issuer name (also the file name).
    pub issuer: String,
    /// The issuer URL at login time: a cache entry for a reconfigured issuer is not used.
    pub issuer_url: String,
    pub client_id: String,
    pub id_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the tokens were obtained (seconds since the epoch).
    pub obtained_at: i64,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("issuer", &self.issuer)
            .field("issuer_url", &self.issuer_url)
            .field("refreshable", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Entry {
    pub fn new(
        issuer: &str,
        issuer_url: &str,
        client_id: &str,
        id_token: String,
        refresh_token: Option<String>,
        now: i64,
    ) -> Entry {
        Entry {
            version: VERSION,
            issuer: issuer.to_string(),
            issuer_url: issuer_url.to_string(),
            client_id: client_id.to_string(),
            id_token,
            refresh_token,
            obtained_at: now,
        }
    }

    /// The ID token's claims, unverified (for display and expiry only).
    pub fn claims(&self) -> serde_json::Map<String, serde_json::Value> {
        jwt::peek_claims(&self.id_token).unwrap_or_default()
    }

    /// The ID token's `exp`, if it has one.
    pub fn expires_at(&self) -> Option<i64> {
        self.claims().get("exp").and_then(serde_json::Value::as_i64)
    }

    /// Whether the ID token should be renewed before use: expired, or expiring within
    /// `margin` seconds (so it does not expire between here and the helper).
    pub fn needs_refresh(&self, now: i64, margin: i64) -> bool {
        self.expires_at().is_none_or(|exp| exp <= now + margin)
    }
}

/// `${XDG_CACHE_HOME:-~/.cache}/lpexec` (a relative `XDG_CACHE_HOME` is ignored, as the XDG
/// specification says).
pub fn dir_path() -> Result<PathBuf, String> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from) {
        if x.is_absolute() {
            return Ok(x.join("lpexec"));
        }
    }
    let home = match std::env::var_os("HOME").map(PathBuf::from) {
        Some(h) if h.is_absolute() => h,
        _ => crate::system::user::by_uid(crate::system::process::real_uid())?.home,
    };
    Ok(home.join(".cache").join("lpexec"))
}

/// The token cache.
pub struct TokenCache {
    dir: PrivateDir,
}

fn file_name(issuer: &str) -> Result<String, String> {
    // Issuer names are checked by the configuration ([A-Za-z0-9_-]); check again here.
    if issuer.is_empty() || !issuer.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)) {
        return Err(format!("invalid issuer name {issuer:?}"));
    }
    Ok(format!("{issuer}.json"))
}

impl TokenCache {
    /// Opens the cache; with `create`, creates the directory. `Ok(None)`: there is none.
    pub fn open(create: bool) -> Result<Option<TokenCache>, String> {
        let path = dir_path()?;
        Ok(PrivateDir::open(&path, create)?.map(|dir| TokenCache { dir }))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.dir.path
    }

    /// The cached entry of `issuer`, if any. A file that cannot be parsed is reported.
    pub fn load(&self, issuer: &str) -> Result<Option<Entry>, String> {
        let name = file_name(issuer)?;
        let Some(bytes) = self.dir.read(&name, MAX_ENTRY)? else {
            return Ok(None);
        };
        let e: Entry = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{} is not a valid lpexec token cache file ({e})\nremove it with: lpexec logout {issuer}",
                self.dir.path.join(&name).display()
            )
        })?;
        if e.version != VERSION || e.issuer != issuer {
            return Ok(None);
        }
        Ok(Some(e))
    }

    pub fn save(&self, e: &Entry) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(e).map_err(|e| e.to_string())?;
        self.dir.write(&file_name(&e.issuer)?, &bytes)
    }

    pub fn remove(&self, issuer: &str) -> Result<bool, String> {
        self.dir.remove(&file_name(issuer)?)
    }

    /// The issuer names that have a cache file.
    pub fn issuers(&self) -> Result<Vec<String>, String> {
        Ok(self.dir.list()?.into_iter().filter_map(|n| n.strip_suffix(".json").map(str::to_string)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn token(exp: i64) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(br#"{"alg":"EdDSA"}"#),
            e.encode(format!(r#"{{"sub":"s","exp":{exp}}}"#))
        )
    }

    #[test]
    fn refresh_is_due_shortly_before_expiry() {
        let e = Entry::new("corp", "https://id", "lpexec", token(1000), None, 0);
        assert_eq!(e.expires_at(), Some(1000));
        assert!(!e.needs_refresh(900, 30));
        assert!(e.needs_refresh(971, 30));
        let bad = Entry::new("corp", "https://id", "lpexec", "garbage".into(), None, 0);
        assert!(bad.needs_refresh(0, 30));
    }

    #[test]
    fn debug_output_never_shows_tokens() {
        let e = Entry::new("corp", "https://id", "lpexec", token(1000), Some("secret-refresh".into()), 0);
        let d = format!("{e:?}");
        assert!(!d.contains("secret-refresh") && !d.contains(&token(1000)), "{d}");
    }

    #[test]
    fn file_names_are_issuer_names_only() {
        assert_eq!(file_name("corp-1").unwrap(), "corp-1.json");
        assert!(file_name("../x").is_err());
        assert!(file_name("").is_err());
    }
}
