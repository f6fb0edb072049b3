//! Sealing recordings: at the end of a session the helper writes a sidecar
//! `{session}.json` with what happened (times, exit, byte counts) and the recording's SHA-256,
//! signed with the host's Ed25519 key. `lpexec verify` checks it: sealed and valid, tampered
//! (which check failed), or unsealed (the session was interrupted, or is still running).
//!
//! The private key is `host-key` in the state directory (root, 0600), created on first use;
//! its public half is published next to the recordings as `host-key.pub` so auditors can check
//! seals without privileges.

use std::path::Path;

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::system::fs;

pub const KEY_FILE: &str = "host-key";
pub const PUB_FILE: &str = "host-key.pub";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub fn public_key_text(k: &VerifyingKey) -> String {
    format!("ed25519:{}", b64(k.as_bytes()))
}

/// The host key: loaded from the state directory, or created there (exclusively and whole,
/// so two helpers racing agree on one key).
pub fn host_key(state_dir: &Path) -> Result<SigningKey, String> {
    let dir = fs::TrustedDir::open(state_dir)?;
    let shown = state_dir.join(KEY_FILE);
    for _ in 0..3 {
        if let Some(bytes) = dir.read(KEY_FILE, 64)? {
            let seed: [u8; 32] =
                bytes.try_into().map_err(|_| format!("{} is not a 32-byte Ed25519 key", shown.display()))?;
            return Ok(SigningKey::from_bytes(&seed));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a host key: {e}"))?;
        if dir.create_new(KEY_FILE, &seed, 0o600)? {
            return Ok(SigningKey::from_bytes(&seed));
        }
        // Another helper won the race; read its key.
    }
    Err(format!("cannot create {}", shown.display()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bytes {
    pub output: u64,
    pub input: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingDigest {
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

/// The sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    pub version: u32,
    pub session: String,
    pub start: String,
    pub end: String,
    pub duration: f64,
    pub exit: Option<i32>,
    pub signal: Option<String>,
    pub bytes: Bytes,
    pub events: u64,
    #[serde(default)]
    pub error: Option<String>,
    pub recording: RecordingDigest,
    pub key: String,
    pub signature: String,
}

impl Seal {
    /// What is signed: every field but the signature, in a fixed textual form.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "lpexec-seal v1\nsession {}\nstart {}\nend {}\nduration {:.6}\nexit {:?}\nsignal {:?}\noutput {}\ninput {}\nevents {}\nerror {:?}\nfile {}\nsize {}\nsha256 {}\nkey {}\n",
            self.session, self.start, self.end, self.duration, self.exit, self.signal, self.bytes.output,
            self.bytes.input, self.events, self.error, self.recording.file, self.recording.size,
            self.recording.sha256, self.key
        )
        .into_bytes()
    }

    pub fn sign(&mut self, key: &SigningKey) {
        self.key = public_key_text(&key.verifying_key());
        self.signature = b64(&key.sign(&self.message()).to_bytes());
    }
}

/// What `lpexec verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Sealed by `key`, and the recording is exactly what was sealed.
    Valid {
        key: String,
    },
    Tampered(String),
    Unsealed(String),
}

fn decode_key(s: &str) -> Option<VerifyingKey> {
    let raw = crate::common::config::parse_public_key(s).ok()?;
    VerifyingKey::from_bytes(&raw).ok()
}

/// Checks a recording against its sidecar (`None`: there is none) and the host's published
/// key (`None`: not available to this caller).
pub fn verify(cast: &[u8], sidecar: Option<&[u8]>, host_key: Option<&str>) -> Verdict {
    let Some(sidecar) = sidecar else {
        return Verdict::Unsealed(
            "there is no seal: the session was interrupted (or is still running)".into(),
        );
    };
    let seal: Seal = match serde_json::from_slice(sidecar) {
        Ok(s) => s,
        Err(e) => return Verdict::Tampered(format!("the seal is not valid JSON of the expected form: {e}")),
    };
    let Some(key) = decode_key(&seal.key) else {
        return Verdict::Tampered("the seal's key is malformed".into());
    };
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seal.signature.as_bytes())
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b));
    let Some(sig) = sig else {
        return Verdict::Tampered("the seal's signature is malformed".into());
    };
    if key.verify_strict(&seal.message(), &sig).is_err() {
        return Verdict::Tampered(
            "the seal's signature does not match its contents (the sidecar was altered)".into(),
        );
    }
    match host_key {
        Some(h) if h.trim() != seal.key => {
            return Verdict::Tampered(format!(
                "the seal was made with {}, not this host's key {}",
                seal.key,
                h.trim()
            ));
        }
        _ => {}
    }
    if cast.len() as u64 != seal.recording.size {
        return Verdict::Tampered(format!(
            "the recording is {} bytes, the seal says {} ({})",
            cast.len(),
            seal.recording.size,
            if (cast.len() as u64) < seal.recording.size { "truncated" } else { "appended to" }
        ));
    }
    let digest = hex(&sha2::Sha256::digest(cast));
    if digest != seal.recording.sha256 {
        return Verdict::Tampered(format!(
            "the recording's SHA-256 is {digest}, the seal says {}",
            seal.recording.sha256
        ));
    }
    Verdict::Valid { key: seal.key }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(cast: &[u8], key: &SigningKey) -> Vec<u8> {
        let mut s = Seal {
            version: 1,
            session: "20261203T190525.482913Z-3f9a2c1b".into(),
            start: "2026-12-03T19:05:25Z".into(),
            end: "2026-12-03T19:05:27Z".into(),
            duration: 2.0,
            exit: Some(0),
            signal: None,
            bytes: Bytes { output: 5, input: 0 },
            events: 1,
            error: None,
            recording: RecordingDigest {
                file: "x.cast".into(),
                size: cast.len() as u64,
                sha256: hex(&sha2::Sha256::digest(cast)),
            },
            key: String::new(),
            signature: String::new(),
        };
        s.sign(key);
        serde_json::to_vec(&s).unwrap()
    }

    #[test]
    fn valid_tampered_truncated_unsealed_wrong_key() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let other = SigningKey::from_bytes(&[8u8; 32]);
        let host = public_key_text(&key.verifying_key());
        let cast = b"{\"version\":2}\n[0.1, \"o\", \"hello\"]\n".to_vec();
        let side = sealed(&cast, &key);
        assert!(matches!(verify(&cast, Some(&side), Some(&host)), Verdict::Valid { .. }));
        assert!(matches!(verify(&cast, Some(&side), None), Verdict::Valid { .. }));

        let mut flipped = cast.clone();
        flipped[20] ^= 1;
        assert!(
            matches!(verify(&flipped, Some(&side), Some(&host)), Verdict::Tampered(m) if m.contains("SHA-256"))
        );
        assert!(
            matches!(verify(&cast[..cast.len() - 3], Some(&side), Some(&host)), Verdict::Tampered(m) if m.contains("truncated"))
        );
        assert!(matches!(verify(&cast, None, Some(&host)), Verdict::Unsealed(_)));

        let side_other = sealed(&cast, &other);
        assert!(
            matches!(verify(&cast, Some(&side_other), Some(&host)), Verdict::Tampered(m) if m.contains("not this host's key"))
        );

        // Editing the sidecar (say, the exit status) breaks the signature.
        let edited = String::from_utf8(side.clone()).unwrap().replace("\"exit\":0", "\"exit\":1");
        assert!(
            matches!(verify(&cast, Some(edited.as_bytes()), Some(&host)), Verdict::Tampered(m) if m.contains("signature"))
        );
        assert!(matches!(verify(&cast, Some(b"{"), Some(&host)), Verdict::Tampered(_)));
    }
}
