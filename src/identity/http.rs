//! The one HTTP client of both binaries: `ureq` (synchronous, no async runtime, no threads)
//! over rustls with `ring` — the same crypto library that verifies ID token signatures, so
//! lpexec links exactly one TLS stack and one crypto provider.
//!
//! Two profiles:
//! - [`Profile::Front`] (the unprivileged `lpexec`): proxies from the environment
//!   (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, ...) are honoured, as users expect of a CLI.
//! - [`Profile::Helper`] (setuid root, fetching a configured issuer's discovery document and
//!   JWK set): no proxy, no redirects, and no resolve timeout — ureq resolves names on a
//!   helper thread when a resolve or global timeout is set, and the helper must stay
//!   single-threaded because it forks later; the system resolver's own timeouts bound the
//!   lookup, and connect/send/receive each have their own limit.
//!
//! Trust: the system's CA certificates (`rustls-native-certs`) plus the issuer's `ca_file`.
//! Plain `http://` is only ever used for loopback issuers ([`crate::common::config::check_url`]).

use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Front,
    Helper,
}

/// An error talking to an identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Could not connect, timed out, TLS failure, oversized body...
    Transport(String),
    /// The server answered with this status and (maybe) a JSON body.
    Status(u16, Option<serde_json::Value>),
    /// The body is not the JSON object expected.
    NotJson(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Transport(e) => f.write_str(e),
            HttpError::Status(s, Some(body)) => {
                let err = body.get("error").and_then(|v| v.as_str()).unwrap_or("");
                let desc = body.get("error_description").and_then(|v| v.as_str()).unwrap_or("");
                write!(f, "HTTP status {s}")?;
                if !err.is_empty() {
                    write!(f, ": {}", super::printable(err, 100))?;
                }
                if !desc.is_empty() {
                    write!(f, " ({})", super::printable(desc, 200))?;
                }
                Ok(())
            }
            HttpError::Status(s, None) => write!(f, "HTTP status {s}"),
            HttpError::NotJson(url) => write!(f, "{url} did not answer with a JSON object"),
        }
    }
}

/// A configured client.
pub struct Client {
    agent: ureq::Agent,
}

/// Certificates from a PEM file's contents.
fn pem_certs(pem: &[u8]) -> Result<Vec<Certificate<'static>>, String> {
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(c)) => out.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("not a PEM certificate file: {e}")),
        }
    }
    if out.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(out)
}

impl Client {
    /// A client for `profile`; `extra_ca` is the issuer's `ca_file` contents (PEM), already
    /// read by the caller (the helper reads it through `secure_open`). `https` says whether
    /// trust anchors are needed at all (loading the system store costs a few milliseconds).
    pub fn new(profile: Profile, https: bool, extra_ca: Option<&[u8]>) -> Result<Client, String> {
        let mut roots: Vec<Certificate<'static>> = Vec::new();
        if https {
            let native = rustls_native_certs::load_native_certs();
            roots.extend(native.certs.iter().map(|c| Certificate::from_der(c.as_ref()).to_owned()));
            if let Some(pem) = extra_ca {
                roots.extend(pem_certs(pem).map_err(|e| format!("ca_file {e}"))?);
            }
            if roots.is_empty() {
                return Err(
                    "no trusted CA certificates: install ca-certificates, or set the issuer's ca_file".into(),
                );
            }
        }
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let secs = |s| Some(Duration::from_secs(s));
        let mut cfg = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("lpexec/", env!("CARGO_PKG_VERSION")))
            .max_response_header_size(64 * 1024)
            .timeout_connect(secs(5))
            .timeout_send_request(secs(5))
            .timeout_send_body(secs(5))
            .timeout_recv_response(secs(10))
            .timeout_recv_body(secs(10));
        cfg = match profile {
            Profile::Front => cfg.proxy(ureq::Proxy::try_from_env()),
            Profile::Helper => cfg.proxy(None).max_idle_connections(0),
        };
        Ok(Client { agent: cfg.build().into() })
    }

    fn finish(
        &self,
        url: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        limit: u64,
    ) -> Result<(u16, Vec<u8>), HttpError> {
        let mut resp = r.map_err(|e| HttpError::Transport(format!("{url}: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| HttpError::Transport(format!("{url}: reading the response: {e}")))?;
        Ok((status, body))
    }

    /// GET `url`, at most `limit` bytes of body.
    pub fn get(&self, url: &str, limit: u64) -> Result<Vec<u8>, HttpError> {
        let r = self.agent.get(url).header("accept", "application/json").call();
        match self.finish(url, r, limit)? {
            (200, body) => Ok(body),
            (s, body) => Err(HttpError::Status(s, serde_json::from_slice(&body).ok())),
        }
    }

    /// GET a JSON object.
    pub fn get_json(
        &self,
        url: &str,
        limit: u64,
    ) -> Result<serde_json::Map<String, serde_json::Value>, HttpError> {
        let body = self.get(url, limit)?;
        match serde_json::from_slice(&body) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            _ => Err(HttpError::NotJson(url.to_string())),
        }
    }

    /// A JSON API call (the approval service): `method` is GET, POST or DELETE; `bearer` goes
    /// in `Authorization`; any status comes back with its body (at most `limit` bytes).
    /// `wait` extends the response timeout for a long-poll.
    pub fn call(
        &self,
        method: &str,
        url: &str,
        bearer: Option<&str>,
        body: Option<&[u8]>,
        wait: Duration,
        limit: u64,
    ) -> Result<(u16, Vec<u8>), HttpError> {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let timeout = Some(Duration::from_secs(10) + wait);
        macro_rules! prepare {
            ($b:expr) => {{
                let mut b = $b.header("accept", "application/json");
                if let Some(a) = &auth {
                    b = b.header("authorization", a.as_str());
                }
                b.config().timeout_recv_response(timeout).build()
            }};
        }
        let r = match method {
            "GET" => prepare!(self.agent.get(url)).call(),
            "DELETE" => prepare!(self.agent.delete(url)).call(),
            _ => prepare!(self.agent.post(url))
                .header("content-type", "application/json")
                .send(body.unwrap_or(b"{}")),
        };
        self.finish(url, r, limit)
    }

    /// POST a form; any status comes back with its JSON body (OAuth errors are 400s).
    pub fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(u16, serde_json::Map<String, serde_json::Value>), HttpError> {
        let r = self.agent.post(url).header("accept", "application/json").send_form(form.iter().copied());
        let (status, body) = self.finish(url, r, 1024 * 1024)?;
        match serde_json::from_slice(&body) {
            Ok(serde_json::Value::Object(m)) => Ok((status, m)),
            _ if status != 200 => Err(HttpError::Status(status, None)),
            _ => Err(HttpError::NotJson(url.to_string())),
        }
    }
}
