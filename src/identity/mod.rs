//! OIDC identity: who vouches for the caller beyond their Unix account (SPEC §6).
//!
//! Two halves share the types here:
//! - the helper's ([`verify`], [`jwt`], [`jwks`]): verify each ID token a request presents
//!   against its configured issuer's keys and turn it into an [`OidcIdentity`]; any token that
//!   fails refuses the whole request (a caller who presents an identity means to use it);
//! - the front end's ([`cache`], [`device`]): the RFC 8628 device flow, the per-user token
//!   cache and refresh, and CI tokens from `LPEXEC_ID_TOKEN` / `LPEXEC_ID_TOKEN_FILE`.
//!
//! Tokens travel from the front end to the helper only inside the request on descriptor 3
//! ([`Presented`]); never in argv, the environment of the command, recordings or logs.
//!
//! [`OidcIdentity`]: crate::common::identity::OidcIdentity

pub mod cache;
pub mod device;
pub mod http;
pub mod jwks;
pub mod jwt;
pub mod verify;

use serde::{Deserialize, Serialize};

/// Where the front end got a token (for messages: what the caller should fix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The token cache filled by `lpexec login`.
    Cache,
    /// `LPEXEC_ID_TOKEN`.
    Env,
    /// The file named by `LPEXEC_ID_TOKEN_FILE`.
    File,
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenSource::Cache => "from lpexec login",
            TokenSource::Env => "from LPEXEC_ID_TOKEN",
            TokenSource::File => "from LPEXEC_ID_TOKEN_FILE",
        })
    }
}

/// An ID token presented to the helper.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presented {
    /// The configured issuer name it is presented for (cached tokens), or `None` for CI
    /// tokens: the helper then picks the configured issuer whose URL equals the token's
    /// `iss` (and verifies the signature with that issuer's keys, so naming one proves
    /// nothing).
    #[serde(default)]
    pub issuer: Option<String>,
    pub token: String,
    pub from: TokenSource,
}

impl std::fmt::Debug for Presented {
    // Never print a token, not even in a debug dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("issuer", &self.issuer)
            .field("token", &format_args!("<{} bytes>", self.token.len()))
            .field("from", &self.from)
            .finish()
    }
}

/// The helper's answer on descriptor 3 when a run needs an identity the caller has not got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRequired {
    /// The configured issuer name.
    pub issuer: String,
    /// Whether the issuer allows the device flow (else only CI tokens can satisfy it).
    pub device_flow: bool,
}

/// What the helper writes back on descriptor 3 (empty when it has nothing to say).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_required: Option<IdentityRequired>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_required: Option<crate::approval::ApprovalNeeded>,
}

/// A string from an identity provider or a token, safe to print on a terminal or in a log:
/// control characters replaced, length bounded.
pub fn printable(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().count() > max {
        out.push_str("...");
    }
    out
}

/// Seconds since the epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_token() {
        let p = Presented {
            issuer: Some("corp".into()),
            token: "eyJsecret.payload.sig".into(),
            from: TokenSource::Env,
        };
        let d = format!("{p:?}");
        assert!(!d.contains("eyJsecret") && d.contains("<21 bytes>"), "{d}");
    }

    #[test]
    fn identity_required_round_trips_and_absent_means_nothing() {
        let r = HelperResponse {
            identity_required: Some(IdentityRequired { issuer: "corp".into(), device_flow: true }),
            approval_required: None,
        };
        let b = serde_json::to_vec(&r).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&b),
            r#"{"identity_required":{"issuer":"corp","device_flow":true}}"#
        );
        assert_eq!(serde_json::from_slice::<HelperResponse>(&b).unwrap(), r);
        assert_eq!(serde_json::from_slice::<HelperResponse>(b"{}").unwrap(), HelperResponse::default());
    }

    #[test]
    fn printable_strips_control_characters() {
        assert_eq!(printable("a\x1b[2Jb\n", 100), "a?[2Jb?");
        assert_eq!(printable("abcdef", 3), "abc...");
    }
}
