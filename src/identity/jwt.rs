//! ID tokens as JWS compact serialisations: strict parsing, signature verification against a
//! JWK set, and the claim checks of OpenID Connect Core §3.1.3.7.
//!
//! This is the part of identity verification an attacker talks to directly, so it is small,
//! pure (no I/O, the time is an argument) and refuses anything it does not fully understand:
//!
//! - only asymmetric algorithms (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA); `none`
//!   and every HMAC algorithm are refused by name before any key is looked at, so the classic
//!   "HS256 signed with the issuer's public key" confusion cannot reach a verifier;
//! - the key must fit the header: an RSA key for RS*/PS*, a P-256 key for ES256, an Ed25519
//!   key for EdDSA, and the JWK's own `alg` (when present) must equal the header's;
//! - `jku`, `x5u`, `jwk` and `x5c` headers are ignored (keys come only from the configured
//!   issuer's JWK set), `kid` is only a lookup key, and a `crit` header is refused;
//! - sizes are bounded before decoding, base64url must be canonical and unpadded.
//!
//! Signatures are checked with `ring`, the same library that provides TLS for lpexec's HTTPS
//! (see the README's dependency table for why not `jsonwebtoken`).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// Largest ID token accepted (real ones are 1-4 KiB).
pub const MAX_TOKEN: usize = 16 * 1024;
/// Clock skew tolerated for `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY: i64 = 60;
/// Longest attacker-controlled string (kid, alg, iss...) repeated in a message.
const MAX_SHOWN: usize = 80;

/// The signature algorithms lpexec accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    /// Parses a header's `alg`, refusing `none`, HMAC and anything unknown.
    pub fn parse(s: &str) -> Result<Alg, VerifyError> {
        Ok(match s {
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            // RFC 8037 `EdDSA`, and the fully specified `Ed25519` of RFC 9864.
            "EdDSA" | "Ed25519" => Alg::EdDSA,
            s if s.eq_ignore_ascii_case("none") => return Err(VerifyError::AlgNone),
            s if s.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS")) => {
                return Err(VerifyError::AlgSymmetric(shown(s)));
            }
            s => return Err(VerifyError::AlgUnsupported(shown(s))),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// Whether a JWK's declared `alg` names this algorithm.
    fn matches_jwk_alg(self, jwk_alg: &str) -> bool {
        jwk_alg == self.name() || (self == Alg::EdDSA && jwk_alg == "Ed25519")
    }
}

/// Why a token was refused. The messages go to syslog and to the caller: they never contain
/// the token, and attacker-chosen strings in them are cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    TooLarge(usize),
    Malformed(String),
    AlgNone,
    AlgSymmetric(String),
    AlgUnsupported(String),
    CritHeader,
    /// The token claims an issuer other than the one it was presented for.
    WrongIssuer {
        got: String,
        want: String,
    },
    /// No key with this `kid` in the issuer's key set.
    UnknownKid(String),
    /// No key of the issuer fits the algorithm (no `kid` in the header).
    NoKey(&'static str),
    /// The key named by `kid` does not fit the header's algorithm.
    KeyMismatch {
        kid: String,
        alg: &'static str,
        why: String,
    },
    BadSignature,
    Expired {
        exp: i64,
        now: i64,
    },
    NotYetValid {
        nbf: i64,
        now: i64,
    },
    IssuedInFuture {
        iat: i64,
        now: i64,
    },
    WrongAudience {
        want: String,
    },
    WrongAzp {
        want: String,
    },
    MissingClaim(&'static str),
    AccessToken,
}

fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_SHOWN).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::TooLarge(n) => {
                write!(f, "the token is {n} bytes, more than the {MAX_TOKEN} accepted")
            }
            VerifyError::Malformed(why) => write!(f, "the token is not a valid signed JWT: {why}"),
            VerifyError::AlgNone => f.write_str("the token is unsigned (alg \"none\")"),
            VerifyError::AlgSymmetric(a) => {
                write!(
                    f,
                    "the token uses the symmetric algorithm {a:?}; only asymmetric signatures are accepted"
                )
            }
            VerifyError::AlgUnsupported(a) => write!(
                f,
                "the token's algorithm {a:?} is not accepted (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA are)"
            ),
            VerifyError::CritHeader => {
                f.write_str("the token has a \"crit\" header lpexec does not understand")
            }
            VerifyError::WrongIssuer { got, want } => {
                write!(f, "the token was issued by {got:?}, not by {want:?}")
            }
            VerifyError::UnknownKid(k) => {
                write!(f, "the token is signed with key {k:?}, which the issuer does not publish")
            }
            VerifyError::NoKey(a) => write!(f, "the issuer publishes no key for algorithm {a}"),
            VerifyError::KeyMismatch { kid, alg, why } => {
                write!(f, "key {kid:?} cannot verify {alg}: {why}")
            }
            VerifyError::BadSignature => f.write_str("the token's signature is invalid"),
            VerifyError::Expired { exp, now } => write!(f, "the token expired {}s ago", now - exp),
            VerifyError::NotYetValid { nbf, now } => {
                write!(f, "the token is not valid for another {}s (nbf)", nbf - now)
            }
            VerifyError::IssuedInFuture { iat, now } => {
                write!(f, "the token was issued {}s in the future (iat)", iat - now)
            }
            VerifyError::WrongAudience { want } => {
                write!(f, "the token is not meant for audience {want:?} (aud)")
            }
            VerifyError::WrongAzp { want } => {
                write!(f, "the token has several audiences but was not issued to {want:?} (azp)")
            }
            VerifyError::MissingClaim(c) => write!(f, "the token has no valid {c:?} claim"),
            VerifyError::AccessToken => f.write_str("this is an access token, not an ID token"),
        }
    }
}

/// A token split and decoded, not yet trusted.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub alg: Alg,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, VerifyError> {
    // The decoder refuses padding and non-canonical trailing bits.
    URL_SAFE_NO_PAD.decode(part).map_err(|_| VerifyError::Malformed(format!("the {what} is not base64url")))
}

fn json_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, VerifyError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(VerifyError::Malformed(format!("the {what} is not a JSON object"))),
    }
}

/// Splits and decodes a compact JWS, checking sizes, structure and the algorithm.
pub fn parse(token: &str) -> Result<Parsed, VerifyError> {
    if token.len() > MAX_TOKEN {
        return Err(VerifyError::TooLarge(token.len()));
    }
    let token = token.trim_ascii();
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(VerifyError::Malformed("it does not have three dot-separated parts".into()));
    };
    let header = json_object(&b64(h, "header")?, "header")?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => Alg::parse(a)?,
        _ => return Err(VerifyError::Malformed("the header has no \"alg\"".into())),
    };
    if header.contains_key("crit") {
        return Err(VerifyError::CritHeader);
    }
    if let Some(Value::String(typ)) = header.get("typ") {
        let t = typ.to_ascii_lowercase();
        if t == "at+jwt" || t == "application/at+jwt" {
            return Err(VerifyError::AccessToken);
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if !k.is_empty() => Some(k.clone()),
        Some(_) => return Err(VerifyError::Malformed("the header's \"kid\" is not a string".into())),
    };
    let claims = json_object(&b64(p, "payload")?, "payload")?;
    let signature = b64(s, "signature")?;
    if signature.is_empty() {
        return Err(VerifyError::Malformed("the signature is empty".into()));
    }
    Ok(Parsed { alg, kid, claims, signing_input: format!("{h}.{p}").into_bytes(), signature })
}

/// The claims of a token without any verification, for display and for choosing what to
/// verify against (`iss`). Never a basis for a decision.
pub fn peek_claims(token: &str) -> Option<Map<String, Value>> {
    if token.len() > MAX_TOKEN {
        return None;
    }
    let p = token.trim_ascii().split('.').nth(1)?;
    json_object(&URL_SAFE_NO_PAD.decode(p).ok()?, "payload").ok()
}

/// One key of an issuer's JWK set, as published. Unknown members are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Jwk {
    pub kty: String,
    pub kid: Option<String>,
    pub alg: Option<String>,
    pub use_: Option<String>,
    pub key_ops: Option<Vec<String>>,
    pub crv: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
}

fn opt_str(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

impl Jwk {
    fn from_json(m: &Map<String, Value>) -> Option<Jwk> {
        Some(Jwk {
            kty: opt_str(m, "kty")?,
            kid: opt_str(m, "kid"),
            alg: opt_str(m, "alg"),
            use_: opt_str(m, "use"),
            key_ops: m
                .get("key_ops")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()),
            crv: opt_str(m, "crv"),
            n: opt_str(m, "n"),
            e: opt_str(m, "e"),
            x: opt_str(m, "x"),
            y: opt_str(m, "y"),
        })
    }

    /// Whether the key may be used to verify signatures at all.
    fn for_signatures(&self) -> bool {
        self.use_.as_deref().is_none_or(|u| u == "sig")
            && self.key_ops.as_ref().is_none_or(|ops| ops.iter().any(|o| o == "verify"))
    }

    /// Checks that this key can verify `alg`: key type, curve and declared algorithm.
    fn fits(&self, alg: Alg) -> Result<(), String> {
        if !self.for_signatures() {
            return Err("the key is not published for signature verification (use/key_ops)".into());
        }
        if let Some(a) = &self.alg {
            if !alg.matches_jwk_alg(a) {
                return Err(format!("the key is declared for {:?}", shown(a)));
            }
        }
        let (kty, crv) = match alg {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => ("RSA", None),
            Alg::ES256 => ("EC", Some("P-256")),
            Alg::ES384 => ("EC", Some("P-384")),
            Alg::EdDSA => ("OKP", Some("Ed25519")),
        };
        if self.kty != kty {
            return Err(format!("it is a {:?} key, {alg} needs {kty}", shown(&self.kty), alg = alg.name()));
        }
        if let Some(c) = crv {
            if self.crv.as_deref() != Some(c) {
                return Err(format!("it is not a {c} key"));
            }
        }
        Ok(())
    }

    /// Verifies `sig` over `msg` with this key (which must fit `alg`).
    fn verify(&self, alg: Alg, msg: &[u8], sig: &[u8]) -> Result<bool, String> {
        use ring::signature as rs;
        let dec = |v: &Option<String>, what: &str| -> Result<Vec<u8>, String> {
            let v = v.as_deref().ok_or_else(|| format!("the key has no {what:?}"))?;
            URL_SAFE_NO_PAD.decode(v).map_err(|_| format!("the key's {what:?} is not base64url"))
        };
        let ok = match alg {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                let params: &rs::RsaParameters = match alg {
                    Alg::RS256 => &rs::RSA_PKCS1_2048_8192_SHA256,
                    Alg::RS384 => &rs::RSA_PKCS1_2048_8192_SHA384,
                    Alg::RS512 => &rs::RSA_PKCS1_2048_8192_SHA512,
                    Alg::PS256 => &rs::RSA_PSS_2048_8192_SHA256,
                    Alg::PS384 => &rs::RSA_PSS_2048_8192_SHA384,
                    _ => &rs::RSA_PSS_2048_8192_SHA512,
                };
                let (n, e) = (dec(&self.n, "n")?, dec(&self.e, "e")?);
                rs::RsaPublicKeyComponents { n: &n, e: &e }.verify(params, msg, sig).is_ok()
            }
            Alg::ES256 | Alg::ES384 => {
                let (params, len): (&rs::EcdsaVerificationAlgorithm, usize) = if alg == Alg::ES256 {
                    (&rs::ECDSA_P256_SHA256_FIXED, 32)
                } else {
                    (&rs::ECDSA_P384_SHA384_FIXED, 48)
                };
                let (x, y) = (dec(&self.x, "x")?, dec(&self.y, "y")?);
                if x.len() != len || y.len() != len {
                    return Err("the key's coordinates have the wrong length".into());
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4u8);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                rs::UnparsedPublicKey::new(params, &point).verify(msg, sig).is_ok()
            }
            Alg::EdDSA => {
                let x = dec(&self.x, "x")?;
                if x.len() != 32 {
                    return Err("the Ed25519 key is not 32 bytes".into());
                }
                rs::UnparsedPublicKey::new(&rs::ED25519, &x).verify(msg, sig).is_ok()
            }
        };
        Ok(ok)
    }
}

/// An issuer's JWK set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

impl KeySet {
    /// Parses `{"keys": [...]}`. Entries without a `kty` are skipped (they cannot be used);
    /// anything else malformed is an error.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let keys = v.get("keys").and_then(Value::as_array).ok_or("no \"keys\" array")?;
        Ok(KeySet { keys: keys.iter().filter_map(Value::as_object).filter_map(Jwk::from_json).collect() })
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// Verifies the signature of `t` with the key its `kid` names (or, without a `kid`, any key
/// that fits the algorithm). [`VerifyError::UnknownKid`] tells the caller a refetch may help.
pub fn verify_signature(t: &Parsed, keys: &KeySet) -> Result<(), VerifyError> {
    let candidates: Vec<&Jwk> = match &t.kid {
        Some(kid) => {
            let named: Vec<&Jwk> = keys.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect();
            if named.is_empty() {
                return Err(VerifyError::UnknownKid(shown(kid)));
            }
            // Several keys may share a kid (an RSA and an EC key during a migration): the
            // one that fits the algorithm is meant.
            let fitting: Vec<&Jwk> = named.iter().copied().filter(|k| k.fits(t.alg).is_ok()).collect();
            if fitting.is_empty() {
                let why = named.first().and_then(|k| k.fits(t.alg).err()).unwrap_or_default();
                return Err(VerifyError::KeyMismatch { kid: shown(kid), alg: t.alg.name(), why });
            }
            fitting
        }
        None => keys.keys.iter().filter(|k| k.fits(t.alg).is_ok()).collect(),
    };
    if candidates.is_empty() {
        return Err(VerifyError::NoKey(t.alg.name()));
    }
    let mut last_err = None;
    for k in candidates {
        match k.verify(t.alg, &t.signing_input, &t.signature) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
    }
    match (last_err, &t.kid) {
        (Some(why), Some(kid)) => Err(VerifyError::KeyMismatch { kid: shown(kid), alg: t.alg.name(), why }),
        _ => Err(VerifyError::BadSignature),
    }
}

/// What the claims must say.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The issuer URL, compared exactly with `iss`.
    pub iss: &'a str,
    /// Must be among `aud`.
    pub audience: &'a str,
    /// Acceptable `azp` values (the client id and the audience).
    pub azp: [&'a str; 2],
    /// Seconds since the epoch.
    pub now: i64,
}

fn int_claim(c: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, VerifyError> {
    match c.get(name) {
        None => Ok(None),
        // NumericDate may carry a fraction.
        Some(Value::Number(n)) => {
            match n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)) {
                Some(v) => Ok(Some(v)),
                None => Err(VerifyError::MissingClaim(name)),
            }
        }
        Some(_) => Err(VerifyError::MissingClaim(name)),
    }
}

/// Checks `iss` only (cheap, before any key is fetched).
pub fn check_issuer(c: &Map<String, Value>, iss: &str) -> Result<(), VerifyError> {
    match c.get("iss") {
        Some(Value::String(got)) if got == iss => Ok(()),
        Some(Value::String(got)) => Err(VerifyError::WrongIssuer { got: shown(got), want: iss.to_string() }),
        _ => Err(VerifyError::MissingClaim("iss")),
    }
}

/// The claim checks of OIDC Core §3.1.3.7, with [`LEEWAY`] for clock skew.
pub fn check_claims(c: &Map<String, Value>, e: &Expect<'_>) -> Result<(), VerifyError> {
    check_issuer(c, e.iss)?;
    match c.get("sub") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => {}
        _ => return Err(VerifyError::MissingClaim("sub")),
    }
    let auds: Vec<&str> = match c.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => return Err(VerifyError::MissingClaim("aud")),
    };
    if !auds.contains(&e.audience) {
        return Err(VerifyError::WrongAudience { want: e.audience.to_string() });
    }
    match c.get("azp") {
        Some(Value::String(azp)) if e.azp.contains(&azp.as_str()) => {}
        Some(_) => return Err(VerifyError::WrongAzp { want: e.azp[0].to_string() }),
        None if auds.len() > 1 => return Err(VerifyError::WrongAzp { want: e.azp[0].to_string() }),
        None => {}
    }
    let exp = int_claim(c, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
    if e.now >= exp.saturating_add(LEEWAY) {
        return Err(VerifyError::Expired { exp, now: e.now });
    }
    if let Some(nbf) = int_claim(c, "nbf")? {
        if e.now.saturating_add(LEEWAY) < nbf {
            return Err(VerifyError::NotYetValid { nbf, now: e.now });
        }
    }
    let iat = int_claim(c, "iat")?.ok_or(VerifyError::MissingClaim("iat"))?;
    if iat > e.now.saturating_add(LEEWAY) {
        return Err(VerifyError::IssuedInFuture { iat, now: e.now });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
