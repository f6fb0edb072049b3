//! Verification rules, one test each, with keys generated here (and one fixed RSA test key:
//! `ring` cannot generate RSA keys).

use super::*;
use ring::rand::SystemRandom;
use ring::signature::{self as rs, KeyPair};
use serde_json::json;

const ISS: &str = "https://id.example.com";
const NOW: i64 = 1_800_000_000;

fn b(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

enum Key {
    Rsa(rs::RsaKeyPair),
    Ed(rs::Ed25519KeyPair),
    Ec(rs::EcdsaKeyPair, &'static str),
}

impl Key {
    fn rsa() -> Key {
        Key::Rsa(rs::RsaKeyPair::from_der(include_bytes!("../testdata/rsa2048.der")).unwrap())
    }
    fn ed() -> Key {
        let pk = rs::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Key::Ed(rs::Ed25519KeyPair::from_pkcs8(pk.as_ref()).unwrap())
    }
    fn ec(curve: &'static str) -> Key {
        let alg = if curve == "P-256" {
            &rs::ECDSA_P256_SHA256_FIXED_SIGNING
        } else {
            &rs::ECDSA_P384_SHA384_FIXED_SIGNING
        };
        let rng = SystemRandom::new();
        let pk = rs::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Key::Ec(rs::EcdsaKeyPair::from_pkcs8(alg, pk.as_ref(), &rng).unwrap(), curve)
    }

    fn jwk(&self, kid: &str) -> Value {
        match self {
            Key::Rsa(k) => {
                let p = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public());
                json!({"kty": "RSA", "kid": kid, "n": b(&p.n), "e": b(&p.e)})
            }
            Key::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b(k.public_key().as_ref())})
            }
            Key::Ec(k, crv) => {
                let p = k.public_key().as_ref();
                let n = (p.len() - 1) / 2;
                json!({"kty": "EC", "crv": crv, "kid": kid, "x": b(&p[1..1 + n]), "y": b(&p[1 + n..])})
            }
        }
    }

    fn sign(&self, alg: &str, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Key::Rsa(k) => {
                let pad: &dyn rs::RsaEncoding = match alg {
                    "RS256" => &rs::RSA_PKCS1_SHA256,
                    "RS384" => &rs::RSA_PKCS1_SHA384,
                    "RS512" => &rs::RSA_PKCS1_SHA512,
                    "PS256" => &rs::RSA_PSS_SHA256,
                    "PS384" => &rs::RSA_PSS_SHA384,
                    _ => &rs::RSA_PSS_SHA512,
                };
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(pad, &rng, msg, &mut sig).unwrap();
                sig
            }
            Key::Ed(k) => k.sign(msg).as_ref().to_vec(),
            Key::Ec(k, _) => k.sign(&rng, msg).unwrap().as_ref().to_vec(),
        }
    }
}

fn claims() -> Value {
    json!({"iss": ISS, "sub": "u-17", "aud": "lpexec", "iat": NOW - 10, "exp": NOW + 300,
           "email": "alice@example.com", "groups": ["sre"]})
}

fn token(key: &Key, header: Value, claims: &Value) -> String {
    let h = b(header.to_string().as_bytes());
    let p = b(claims.to_string().as_bytes());
    let alg = header["alg"].as_str().unwrap_or("RS256");
    let sig = key.sign(alg, format!("{h}.{p}").as_bytes());
    format!("{h}.{p}.{}", b(&sig))
}

fn keys(list: &[Value]) -> KeySet {
    KeySet::parse(json!({ "keys": list }).to_string().as_bytes()).unwrap()
}

fn expect() -> Expect<'static> {
    Expect { iss: ISS, audience: "lpexec", azp: ["lpexec", "lpexec"], now: NOW }
}

fn check(t: &str, ks: &KeySet) -> Result<(), VerifyError> {
    let p = parse(t)?;
    verify_signature(&p, ks)?;
    check_claims(&p.claims, &expect())
}

#[test]
fn every_accepted_algorithm_verifies() {
    let rsa = Key::rsa();
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        let t = token(&rsa, json!({"alg": alg, "kid": "r"}), &claims());
        assert_eq!(check(&t, &keys(&[rsa.jwk("r")])), Ok(()), "{alg}");
    }
    let ed = Key::ed();
    let t = token(&ed, json!({"alg": "EdDSA", "kid": "e"}), &claims());
    assert_eq!(check(&t, &keys(&[ed.jwk("e")])), Ok(()));
    for (crv, alg) in [("P-256", "ES256"), ("P-384", "ES384")] {
        let ec = Key::ec(crv);
        let t = token(&ec, json!({"alg": alg, "kid": "c"}), &claims());
        assert_eq!(check(&t, &keys(&[ec.jwk("c")])), Ok(()), "{alg}");
    }
}

#[test]
fn alg_none_is_refused() {
    let h = b(br#"{"alg":"none"}"#);
    let p = b(claims().to_string().as_bytes());
    for t in [format!("{h}.{p}."), format!("{h}.{p}.AAAA")] {
        assert_eq!(parse(&t).unwrap_err(), VerifyError::AlgNone);
    }
    let h = b(br#"{"alg":"NoNe"}"#);
    assert_eq!(parse(&format!("{h}.{p}.AAAA")).unwrap_err(), VerifyError::AlgNone);
}

#[test]
fn hs256_signed_with_the_issuers_public_key_is_refused() {
    // The classic key confusion: HMAC with the RSA public key as the secret.
    let rsa = Key::rsa();
    let secret = rsa.jwk("r").to_string();
    let h = b(br#"{"alg":"HS256","kid":"r"}"#);
    let p = b(claims().to_string().as_bytes());
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
        format!("{h}.{p}").as_bytes(),
    );
    let t = format!("{h}.{p}.{}", b(tag.as_ref()));
    assert!(matches!(parse(&t), Err(VerifyError::AlgSymmetric(a)) if a == "HS256"));
    for alg in ["HS384", "HS512", "hs256"] {
        let h = b(format!("{{\"alg\":\"{alg}\"}}").as_bytes());
        assert!(matches!(parse(&format!("{h}.{p}.AAAA")), Err(VerifyError::AlgSymmetric(_))), "{alg}");
    }
}

#[test]
fn unknown_and_unsupported_algorithms_are_refused() {
    let p = b(claims().to_string().as_bytes());
    for alg in ["ES512", "RSA-OAEP", "Ed448", "", "RS1", "Hé"] {
        let h = b(json!({ "alg": alg }).to_string().as_bytes());
        assert!(matches!(parse(&format!("{h}.{p}.AAAA")), Err(VerifyError::AlgUnsupported(_))), "{alg}");
    }
}

#[test]
fn the_key_must_fit_the_algorithm() {
    let rsa = Key::rsa();
    let ed = Key::ed();
    // An Ed25519-signed token whose kid names the RSA key.
    let t = token(&ed, json!({"alg": "EdDSA", "kid": "r"}), &claims());
    assert!(matches!(check(&t, &keys(&[rsa.jwk("r")])), Err(VerifyError::KeyMismatch { .. })));
    // A P-256 signature presented as ES384 against a P-256 key.
    let ec = Key::ec("P-256");
    let t = token(&ec, json!({"alg": "ES384", "kid": "c"}), &claims());
    assert!(matches!(check(&t, &keys(&[ec.jwk("c")])), Err(VerifyError::KeyMismatch { .. })));
    // The JWK declares another algorithm.
    let mut jwk = rsa.jwk("r");
    jwk["alg"] = json!("PS256");
    let t = token(&rsa, json!({"alg": "RS256", "kid": "r"}), &claims());
    assert!(matches!(check(&t, &keys(&[jwk])), Err(VerifyError::KeyMismatch { .. })));
    // An encryption key.
    let mut jwk = rsa.jwk("r");
    jwk["use"] = json!("enc");
    assert!(matches!(check(&t, &keys(&[jwk])), Err(VerifyError::KeyMismatch { .. })));
    // The right declared algorithm is fine.
    let mut jwk = rsa.jwk("r");
    jwk["alg"] = json!("RS256");
    jwk["use"] = json!("sig");
    assert_eq!(check(&t, &keys(&[jwk])), Ok(()));
}

#[test]
fn unknown_kid_is_reported_as_such() {
    let rsa = Key::rsa();
    let t = token(&rsa, json!({"alg": "RS256", "kid": "rotated"}), &claims());
    assert_eq!(check(&t, &keys(&[rsa.jwk("r")])), Err(VerifyError::UnknownKid("rotated".into())));
}

#[test]
fn without_kid_any_fitting_key_is_tried() {
    let (rsa, ed) = (Key::rsa(), Key::ed());
    let t = token(&ed, json!({"alg": "EdDSA"}), &claims());
    assert_eq!(check(&t, &keys(&[rsa.jwk("r"), Key::ed().jwk("other"), ed.jwk("e")])), Ok(()));
    assert_eq!(check(&t, &keys(&[rsa.jwk("r")])), Err(VerifyError::NoKey("EdDSA")));
}

#[test]
fn foreign_key_headers_are_ignored() {
    // A token carrying its own key (jwk), a key URL (jku, x5u): none of them is used.
    let (attacker, real) = (Key::ed(), Key::ed());
    let h = json!({"alg": "EdDSA", "jwk": attacker.jwk("x"), "jku": "https://evil.example/jwks",
                   "x5u": "https://evil.example/cert"});
    let t = token(&attacker, h, &claims());
    assert_eq!(check(&t, &keys(&[real.jwk("e")])), Err(VerifyError::BadSignature));
}

#[test]
fn kid_is_only_a_lookup_key() {
    let ed = Key::ed();
    let t = token(&ed, json!({"alg": "EdDSA", "kid": "../../etc/passwd"}), &claims());
    assert!(matches!(check(&t, &keys(&[ed.jwk("e")])), Err(VerifyError::UnknownKid(_))));
}

#[test]
fn tampered_payload_fails_the_signature() {
    let ed = Key::ed();
    let t = token(&ed, json!({"alg": "EdDSA", "kid": "e"}), &claims());
    let mut c = claims();
    c["groups"] = json!(["sre", "admin"]);
    let parts: Vec<&str> = t.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b(c.to_string().as_bytes()), parts[2]);
    assert_eq!(check(&forged, &keys(&[ed.jwk("e")])), Err(VerifyError::BadSignature));
}

#[test]
fn time_claims_allow_sixty_seconds_of_skew_and_no_more() {
    let ed = Key::ed();
    let ks = keys(&[ed.jwk("e")]);
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        token(&ed, json!({"alg": "EdDSA", "kid": "e"}), &c)
    };
    assert_eq!(check(&with("exp", json!(NOW - 59)), &ks), Ok(()));
    assert!(matches!(check(&with("exp", json!(NOW - 60)), &ks), Err(VerifyError::Expired { .. })));
    assert_eq!(check(&with("nbf", json!(NOW + 60)), &ks), Ok(()));
    assert!(matches!(check(&with("nbf", json!(NOW + 61)), &ks), Err(VerifyError::NotYetValid { .. })));
    assert_eq!(check(&with("iat", json!(NOW + 60)), &ks), Ok(()));
    assert!(matches!(check(&with("iat", json!(NOW + 61)), &ks), Err(VerifyError::IssuedInFuture { .. })));
    assert_eq!(check(&with("exp", json!("soon")), &ks), Err(VerifyError::MissingClaim("exp")));
    assert_eq!(check(&with("exp", json!(NOW as f64 + 10.5)), &ks), Ok(()));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iat");
    let t = token(&ed, json!({"alg": "EdDSA", "kid": "e"}), &c);
    assert_eq!(check(&t, &ks), Err(VerifyError::MissingClaim("iat")));
}

#[test]
fn issuer_audience_and_azp() {
    let ed = Key::ed();
    let ks = keys(&[ed.jwk("e")]);
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        token(&ed, json!({"alg": "EdDSA", "kid": "e"}), &c)
    };
    assert!(matches!(
        check(&with("iss", json!("https://id.example.com/")), &ks),
        Err(VerifyError::WrongIssuer { .. })
    ));
    assert!(matches!(check(&with("aud", json!("other")), &ks), Err(VerifyError::WrongAudience { .. })));
    assert_eq!(check(&with("aud", json!(["lpexec"])), &ks), Ok(()));
    // Several audiences: azp must name us.
    assert!(matches!(
        check(&with("aud", json!(["lpexec", "other"])), &ks),
        Err(VerifyError::WrongAzp { .. })
    ));
    let mut c = claims();
    c["aud"] = json!(["lpexec", "other"]);
    c["azp"] = json!("lpexec");
    assert_eq!(check(&token(&ed, json!({"alg": "EdDSA", "kid": "e"}), &c), &ks), Ok(()));
    c["azp"] = json!("other");
    assert!(matches!(
        check(&token(&ed, json!({"alg": "EdDSA", "kid": "e"}), &c), &ks),
        Err(VerifyError::WrongAzp { .. })
    ));
    assert_eq!(check(&with("sub", json!("")), &ks), Err(VerifyError::MissingClaim("sub")));
}

#[test]
fn malformed_tokens_are_refused_without_panicking() {
    for t in [
        "",
        "garbage",
        "a.b",
        "a.b.c.d",
        "...",
        "e30.e30.",
        "e30.e30.AAAA",
        "!!!.e30.AAAA",
        "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.AAAA",
        "eyJhbGciOiJSUzI1NiJ9=.e30.AAAA",
    ] {
        assert!(matches!(parse(t), Err(VerifyError::Malformed(_) | VerifyError::AlgUnsupported(_))), "{t:?}");
    }
    let big = "a".repeat(MAX_TOKEN + 1);
    assert_eq!(parse(&big).unwrap_err(), VerifyError::TooLarge(MAX_TOKEN + 1));
    let h = b(br#"{"alg":"EdDSA","crit":["exp"]}"#);
    assert_eq!(parse(&format!("{h}.e30.AAAA")).unwrap_err(), VerifyError::CritHeader);
    let h = b(br#"{"alg":"EdDSA","typ":"at+jwt"}"#);
    assert_eq!(parse(&format!("{h}.e30.AAAA")).unwrap_err(), VerifyError::AccessToken);
}

#[test]
fn keyset_parsing_skips_unusable_entries() {
    let ks = KeySet::parse(br#"{"keys":[{"kid":"no-kty"},{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"},7]}"#)
        .unwrap();
    assert_eq!(ks.keys.len(), 1);
    assert!(ks.has_kid("r"));
    assert!(KeySet::parse(b"[]").is_err());
    assert!(KeySet::parse(b"{").is_err());
}

#[test]
fn peek_reads_claims_without_trusting_them() {
    let ed = Key::ed();
    let t = token(&ed, json!({"alg": "EdDSA"}), &claims());
    assert_eq!(peek_claims(&t).unwrap()["sub"], "u-17");
    assert!(peek_claims("garbage").is_none());
}
