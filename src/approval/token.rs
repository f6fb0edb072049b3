//! The approval token (SPEC §7): a JWS compact serialisation, `alg: EdDSA` (Ed25519,
//! RFC 8037), header `typ: lpexec-approval+jwt` and `kid`, whose claims bind the request id
//! (`jti`), `iat`, `exp`, the [`Subject`] and the approvals.
//!
//! The service signs ([`sign`]); the helper verifies ([`verify`]) with strict Ed25519 rules
//! (no small-order keys or malleable signatures), against its configured `trusted_keys` only.
//! Parsing is bounded and strict: unknown header parameters or claims are refused, because
//! nobody but `lpexec-approvald` makes these tokens.

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{Approval, MAX_TOKEN, Subject};

pub const TYP: &str = "lpexec-approval+jwt";
/// Clock skew tolerated on `iat` (a token from a service whose clock runs a little ahead).
pub const LEEWAY: i64 = 60;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()
}

/// The key id of a public key: base64url of the first 12 bytes of its SHA-256.
pub fn kid(key: &[u8; 32]) -> String {
    let d = sha2::Sha256::digest(key);
    b64(&d[..12])
}

/// `ed25519:<base64url>`, the form `trusted_keys` takes.
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!("ed25519:{}", b64(key.as_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// Every claim of an approval token: the request id and times, then the [`Subject`]'s fields
/// at the top level of the payload (flattened: the wire format stays flat and strict, unknown
/// claims are refused), and the approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The service's `public_url`.
    pub iss: String,
    /// The request id.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(flatten)]
    pub subject: Subject,
    pub approvals: Vec<Approval>,
}

impl Claims {
    pub fn new(iss: &str, jti: &str, iat: i64, exp: i64, s: &Subject, approvals: Vec<Approval>) -> Claims {
        Claims { iss: iss.to_string(), jti: jti.to_string(), iat, exp, subject: s.clone(), approvals }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    TooLarge,
    Malformed(&'static str),
    /// `alg` other than EdDSA, or `typ` other than ours.
    WrongType(String),
    /// No trusted key has this `kid`.
    UntrustedKey(String),
    BadSignature,
    Expired {
        exp: i64,
        now: i64,
    },
    IssuedInFuture,
    BadId,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::TooLarge => write!(f, "the approval token is larger than {MAX_TOKEN} bytes"),
            TokenError::Malformed(what) => write!(f, "the approval token is malformed: {what}"),
            TokenError::WrongType(what) => write!(f, "not an lpexec approval token: {what}"),
            TokenError::UntrustedKey(kid) => write!(
                f,
                "the approval token is signed by key {kid}, which is not in [approval] trusted_keys"
            ),
            TokenError::BadSignature => write!(f, "the approval token's signature is invalid"),
            TokenError::Expired { exp, now } => {
                write!(f, "the approval token expired {}s ago", now.saturating_sub(*exp))
            }
            TokenError::IssuedInFuture => write!(f, "the approval token is issued in the future"),
            TokenError::BadId => write!(f, "the approval token's request id (jti) is not a valid id"),
        }
    }
}

/// Whether `id` is a valid request id: 8 to 64 characters of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Signs `claims` with `key`.
pub fn sign(key: &SigningKey, claims: &Claims) -> String {
    let header = Header { alg: "EdDSA".into(), typ: TYP.into(), kid: kid(key.verifying_key().as_bytes()) };
    let h = serde_json::to_vec(&header).unwrap_or_default();
    let c = serde_json::to_vec(claims).unwrap_or_default();
    let input = format!("{}.{}", b64(&h), b64(&c));
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

/// The claims of a token without checking anything (for showing what a token says).
pub fn peek(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_, c) = (parts.next()?, parts.next()?);
    serde_json::from_slice(&unb64(c)?).ok()
}

/// Verifies structure, type, signature (by one of `trusted` keys, strictly), `exp` and `iat`
/// at `now`, and the shape of `jti`. The caller then compares the bound fields and approvers.
pub fn verify(token: &str, trusted: &[[u8; 32]], now: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed("not three dot-separated parts"));
    };
    let header: Header =
        unb64(h).and_then(|b| serde_json::from_slice(&b).ok()).ok_or(TokenError::Malformed("header"))?;
    if header.alg != "EdDSA" {
        return Err(TokenError::WrongType(format!("alg {:?}", crate::identity::printable(&header.alg, 16))));
    }
    if header.typ != TYP {
        return Err(TokenError::WrongType(format!("typ {:?}", crate::identity::printable(&header.typ, 40))));
    }
    let key = trusted
        .iter()
        .find(|k| kid(k) == header.kid)
        .ok_or_else(|| TokenError::UntrustedKey(crate::identity::printable(&header.kid, 24)))?;
    let key = VerifyingKey::from_bytes(key).map_err(|_| TokenError::UntrustedKey(header.kid.clone()))?;
    let sig: [u8; 64] = unb64(s).and_then(|b| b.try_into().ok()).ok_or(TokenError::Malformed("signature"))?;
    let input_len = h.len() + 1 + c.len();
    key.verify_strict(&token.as_bytes()[..input_len], &Signature::from_bytes(&sig))
        .map_err(|_| TokenError::BadSignature)?;
    let claims: Claims =
        unb64(c).and_then(|b| serde_json::from_slice(&b).ok()).ok_or(TokenError::Malformed("claims"))?;
    if !valid_id(&claims.jti) {
        return Err(TokenError::BadId);
    }
    if claims.exp <= now {
        return Err(TokenError::Expired { exp: claims.exp, now });
    }
    if claims.iat > now.saturating_add(LEEWAY) {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Principal;

    fn claims(now: i64) -> Claims {
        let s = Subject {
            host: "h".into(),
            uid: 1000,
            user: "alice".into(),
            requester: Some(Principal { iss: "https://id".into(), sub: "a".into() }),
            role: "rel".into(),
            run_as: "root".into(),
            command: "/usr/bin/npm".into(),
            argv: vec!["npm".into(), "publish".into()],
            cwd: "/srv".into(),
        };
        let a = Approval {
            iss: "https://id".into(),
            sub: "b".into(),
            email: Some("bob@example.com".into()),
            groups: vec!["rm".into()],
            time: now,
            comment: Some("ok".into()),
        };
        Claims::new("https://approvals", "req_0123456789", now, now + 600, &s, vec![a])
    }

    #[test]
    fn round_trip_and_refusals() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let other = SigningKey::from_bytes(&[4u8; 32]);
        let pk = key.verifying_key().to_bytes();
        let now = 1_800_000_000;
        let t = sign(&key, &claims(now));
        assert_eq!(verify(&t, &[pk], now).unwrap(), claims(now));
        assert_eq!(peek(&t).unwrap().jti, "req_0123456789");
        // several trusted keys during rotation
        assert!(verify(&t, &[other.verifying_key().to_bytes(), pk], now).is_ok());
        // untrusted
        assert!(matches!(
            verify(&t, &[other.verifying_key().to_bytes()], now),
            Err(TokenError::UntrustedKey(_))
        ));
        // expired, and exactly at exp
        assert!(matches!(verify(&t, &[pk], now + 600), Err(TokenError::Expired { .. })));
        assert!(matches!(verify(&t, &[pk], now - 61), Err(TokenError::IssuedInFuture)));
        // a forged key under the trusted kid fails the signature
        let mut forged = claims(now);
        forged.subject.argv.push("--force".into());
        let f = sign(&other, &forged);
        let (fh, rest) = f.split_once('.').unwrap();
        let _ = fh;
        let (good_h, _) = t.split_once('.').unwrap();
        assert_eq!(verify(&format!("{good_h}.{rest}"), &[pk], now), Err(TokenError::BadSignature));
        // claims edited after signing
        let parts: Vec<&str> = t.split('.').collect();
        let edited = b64(&serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            verify(&format!("{}.{edited}.{}", parts[0], parts[2]), &[pk], now),
            Err(TokenError::BadSignature)
        );
        // structure
        for bad in ["", "a.b", "a.b.c.d", &format!("{}.{}.", parts[0], parts[1])] {
            assert!(verify(bad, &[pk], now).is_err(), "{bad}");
        }
        assert_eq!(verify(&"a".repeat(MAX_TOKEN + 1), &[pk], now), Err(TokenError::TooLarge));
    }

    #[test]
    fn claims_are_flat_and_strict() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let pk = key.verifying_key().to_bytes();
        let now = 1_800_000_000;
        let v = serde_json::to_value(claims(now)).unwrap();
        // The subject's fields sit at the top level of the payload, beside jti and approvals.
        for k in [
            "iss",
            "jti",
            "iat",
            "exp",
            "host",
            "uid",
            "user",
            "requester",
            "role",
            "run_as",
            "command",
            "argv",
            "cwd",
            "approvals",
        ] {
            assert!(v.get(k).is_some(), "{k} missing from {v}");
        }
        assert!(v.get("subject").is_none());
        // A validly signed payload with a claim nobody defined is refused.
        let mut extra = v.clone();
        extra["admin"] = serde_json::json!(true);
        let h = b64(format!(r#"{{"alg":"EdDSA","typ":"{TYP}","kid":"{}"}}"#, kid(&pk)).as_bytes());
        let p = b64(&serde_json::to_vec(&extra).unwrap());
        let sig = b64(&ed25519_dalek::Signer::sign(&key, format!("{h}.{p}").as_bytes()).to_bytes());
        assert!(matches!(verify(&format!("{h}.{p}.{sig}"), &[pk], now), Err(TokenError::Malformed(_))));
        // ...while the same payload without it verifies.
        let p = b64(&serde_json::to_vec(&v).unwrap());
        let sig = b64(&ed25519_dalek::Signer::sign(&key, format!("{h}.{p}").as_bytes()).to_bytes());
        assert_eq!(verify(&format!("{h}.{p}.{sig}"), &[pk], now).unwrap(), claims(now));
    }

    #[test]
    fn other_algorithms_and_types_are_refused() {
        let now = 1_800_000_000;
        let c = b64(&serde_json::to_vec(&claims(now)).unwrap());
        for h in [
            r#"{"alg":"none","typ":"lpexec-approval+jwt","kid":"x"}"#,
            r#"{"alg":"HS256","typ":"lpexec-approval+jwt","kid":"x"}"#,
            r#"{"alg":"EdDSA","typ":"JWT","kid":"x"}"#,
            r#"{"alg":"EdDSA","typ":"lpexec-approval+jwt"}"#,
            r#"{"alg":"EdDSA","typ":"lpexec-approval+jwt","kid":"x","crit":["b64"]}"#,
        ] {
            let t = format!("{}.{c}.", b64(h.as_bytes()));
            assert!(
                matches!(
                    verify(&t, &[[9u8; 32]], now),
                    Err(TokenError::WrongType(_) | TokenError::Malformed(_))
                ),
                "{h}"
            );
        }
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("req_0123456789"));
        assert!(!valid_id("../../etc"));
        assert!(!valid_id("short"));
        assert!(!valid_id(&"a".repeat(65)));
    }
}
