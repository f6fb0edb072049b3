//! The front end's side of OAuth: discovery, the RFC 8628 device authorization grant, and the
//! refresh grant that silently renews an expired ID token.
//!
//! Polling follows RFC 8628 §3.5: wait `interval` seconds (5 when the provider sends none)
//! between requests; `authorization_pending` → keep waiting; `slow_down` → add 5 seconds to
//! the interval for good; `access_denied` and `expired_token` end the flow. The provider's
//! `expires_in` is a backstop: if it keeps answering "pending" past it (plus one interval of
//! grace), lpexec gives up on its own.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::http::{Client, HttpError};
use super::printable;
use crate::common::config::{Issuer, check_url};

/// The endpoints lpexec uses, from the discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub device_authorization: Option<String>,
    pub token: String,
    pub revocation: Option<String>,
}

fn endpoint(doc: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(u)) => {
            check_url(u).map_err(|e| format!("the discovery document's {key}: {e}"))?;
            Ok(Some(u.clone()))
        }
        Some(_) => Err(format!("the discovery document's {key} is not a string")),
    }
}

/// Fetches and checks `{url}/.well-known/openid-configuration`.
pub fn discover(client: &Client, issuer: &Issuer) -> Result<Endpoints, String> {
    let url = format!("{}/.well-known/openid-configuration", issuer.url);
    let doc = client.get_json(&url, 256 * 1024).map_err(|e| format!("discovery at {url} failed: {e}"))?;
    match doc.get("issuer").and_then(Value::as_str) {
        Some(i) if i == issuer.url => {}
        other => {
            return Err(format!(
                "{url} names the issuer {:?}, not {:?}; the configured url must be the exact issuer",
                printable(other.unwrap_or("(none)"), 100),
                issuer.url
            ));
        }
    }
    Ok(Endpoints {
        device_authorization: endpoint(&doc, "device_authorization_endpoint")?,
        token: endpoint(&doc, "token_endpoint")?.ok_or_else(|| format!("{url} has no token_endpoint"))?,
        revocation: endpoint(&doc, "revocation_endpoint")?,
    })
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    pub interval: u64,
}

fn string(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Starts the device flow.
pub fn start(client: &Client, issuer: &Issuer, ep: &Endpoints) -> Result<DeviceAuth, String> {
    let url = ep.device_authorization.as_deref().ok_or_else(|| {
        format!("issuer {} does not support the device flow (no device_authorization_endpoint)", issuer.name)
    })?;
    let scope = issuer.scopes.join(" ");
    let (status, body) = client
        .post_form(url, &[("client_id", &issuer.client_id), ("scope", &scope)])
        .map_err(|e| format!("starting the device flow at {url} failed: {e}"))?;
    if status != 200 {
        return Err(format!(
            "starting the device flow at {url} failed: {}",
            HttpError::Status(status, Some(Value::Object(body)))
        ));
    }
    let missing = |k: &str| format!("the device authorization response from {url} has no {k}");
    let verification_uri = string(&body, "verification_uri")
        .or_else(|| string(&body, "verification_url")) // Google's spelling
        .ok_or_else(|| missing("verification_uri"))?;
    check_url(&verification_uri).map_err(|e| format!("verification_uri: {e}"))?;
    let complete = string(&body, "verification_uri_complete").filter(|u| check_url(u).is_ok());
    let num = |k: &str| body.get(k).and_then(Value::as_u64);
    Ok(DeviceAuth {
        device_code: string(&body, "device_code").ok_or_else(|| missing("device_code"))?,
        user_code: string(&body, "user_code").ok_or_else(|| missing("user_code"))?,
        verification_uri,
        verification_uri_complete: complete,
        expires_in: num("expires_in").unwrap_or(600).clamp(1, 3600),
        interval: num("interval").unwrap_or(5).clamp(1, 60),
    })
}

/// Tokens from the token endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    pub id_token: String,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { .. }")
    }
}

fn tokens(body: &Map<String, Value>, what: &str) -> Result<Tokens, String> {
    let id_token = string(body, "id_token").ok_or_else(|| {
        format!(
            "the {what} response has no id_token (is \"openid\" among the issuer's scopes in lpexec.toml?)"
        )
    })?;
    Ok(Tokens { id_token, refresh_token: string(body, "refresh_token") })
}

/// How the device flow ended, when not with tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    Denied,
    /// The provider said `expired_token`.
    Expired,
    /// The provider kept saying "pending" past `expires_in`.
    TimedOut(u64),
    Cancelled,
    Other(String),
}

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceError::Denied => f.write_str("the login was denied (access_denied)"),
            DeviceError::Expired => {
                f.write_str("the code expired before the login was completed (expired_token)")
            }
            DeviceError::TimedOut(s) => {
                write!(f, "the code expired after {s}s without the login being completed")
            }
            DeviceError::Cancelled => f.write_str("the login was cancelled"),
            DeviceError::Other(e) => f.write_str(e),
        }
    }
}

/// What waiting needs from the outside world (a terminal's Ctrl-C, the clock).
pub trait Waiter {
    /// Sleeps up to `d`; returns false if the user cancelled meanwhile.
    fn sleep(&mut self, d: Duration) -> bool;
    fn cancelled(&self) -> bool;
}

/// Polls the token endpoint until the user completes, denies or lets the code expire.
pub fn wait_for_tokens(
    client: &Client,
    issuer: &Issuer,
    ep: &Endpoints,
    auth: &DeviceAuth,
    waiter: &mut dyn Waiter,
) -> Result<Tokens, DeviceError> {
    let started = Instant::now();
    let deadline = Duration::from_secs(auth.expires_in);
    let mut interval = auth.interval;
    loop {
        if !waiter.sleep(Duration::from_secs(interval)) {
            return Err(DeviceError::Cancelled);
        }
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", auth.device_code.as_str()),
            ("client_id", issuer.client_id.as_str()),
        ];
        let reply = client.post_form(&ep.token, &form);
        if waiter.cancelled() {
            return Err(DeviceError::Cancelled);
        }
        let (status, body) = match reply {
            Ok(r) => r,
            // A transient network error while polling: try again at the next interval.
            Err(HttpError::Transport(_)) if started.elapsed() < deadline => continue,
            Err(e) => return Err(DeviceError::Other(format!("polling {} failed: {e}", ep.token))),
        };
        if status == 200 {
            return tokens(&body, "token").map_err(DeviceError::Other);
        }
        match body.get("error").and_then(Value::as_str) {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            Some("access_denied") => return Err(DeviceError::Denied),
            Some("expired_token") => return Err(DeviceError::Expired),
            _ => {
                return Err(DeviceError::Other(format!(
                    "the token endpoint {} refused: {}",
                    ep.token,
                    HttpError::Status(status, Some(Value::Object(body)))
                )));
            }
        }
        // Pending past the code's lifetime (plus one interval, for the provider's own answer).
        if started.elapsed() >= deadline + Duration::from_secs(interval) {
            return Err(DeviceError::TimedOut(auth.expires_in));
        }
    }
}

/// Why a refresh failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshError {
    /// The provider refused the refresh token (`invalid_grant`: expired or revoked): log in again.
    Rejected(String),
    /// The provider could not be reached or misbehaved.
    Failed(String),
}

/// Renews the ID token with a refresh token (RFC 6749 §6).
pub fn refresh(
    client: &Client,
    issuer: &Issuer,
    ep: &Endpoints,
    refresh_token: &str,
) -> Result<Tokens, RefreshError> {
    let scope = issuer.scopes.join(" ");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", issuer.client_id.as_str()),
        ("scope", scope.as_str()),
    ];
    match client.post_form(&ep.token, &form) {
        Ok((200, body)) => tokens(&body, "refresh").map_err(RefreshError::Failed),
        Ok((status, body)) => {
            let e = HttpError::Status(status, Some(Value::Object(body.clone())));
            match body.get("error").and_then(Value::as_str) {
                Some("invalid_grant" | "invalid_token" | "unauthorized_client") => {
                    Err(RefreshError::Rejected(e.to_string()))
                }
                _ => Err(RefreshError::Failed(e.to_string())),
            }
        }
        Err(e) => Err(RefreshError::Failed(e.to_string())),
    }
}

/// Revokes a refresh token at logout (RFC 7009), best effort.
pub fn revoke(client: &Client, issuer: &Issuer, ep: &Endpoints, refresh_token: &str) -> Result<(), String> {
    let Some(url) = &ep.revocation else {
        return Ok(());
    };
    let form = [
        ("token", refresh_token),
        ("token_type_hint", "refresh_token"),
        ("client_id", issuer.client_id.as_str()),
    ];
    match client.post_form(url, &form) {
        Ok((200, _)) | Err(HttpError::NotJson(_)) => Ok(()),
        Ok((s, body)) => Err(HttpError::Status(s, Some(Value::Object(body))).to_string()),
        Err(HttpError::Status(200, _)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
