//! The service's Ed25519 signing key: `keygen` writes one, the service loads it.
//!
//! File format: one line of text, `ed25519-secret:<base64url of the 32-byte seed>`, so that an
//! operator can tell what the file is and a public key is never mistaken for it. The file is
//! created exclusively (`O_EXCL`, never overwriting a key hosts may trust) with mode 0600, and
//! the service refuses a key that its group or others can read.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use base64::Engine;
use ed25519_dalek::SigningKey;

const PREFIX: &str = "ed25519-secret:";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// The text of a key file.
pub fn encode(key: &SigningKey) -> String {
    format!("{PREFIX}{}\n", b64().encode(key.to_bytes()))
}

/// Parses the text of a key file.
pub fn decode(text: &str) -> Option<SigningKey> {
    let seed = b64().decode(text.trim().strip_prefix(PREFIX)?).ok()?;
    let seed: [u8; 32] = seed.try_into().ok()?;
    Some(SigningKey::from_bytes(&seed))
}

/// Writes a new key to `path` (which must not exist) with mode 0600; returns it.
pub fn generate(path: &Path) -> Result<SigningKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a signing key: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!(
                    "{} already exists; refusing to overwrite a signing key that hosts may trust\n\
                     to rotate keys, write the new key elsewhere (--out FILE) and follow KEY ROTATION in lpexec-approvald(8)",
                    path.display()
                )
            } else {
                format!("cannot create {}: {e}", path.display())
            }
        })?;
    let written = f.write_all(encode(&key).as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(key)
}

/// Loads the key at `path`, refusing one that is not a regular file or that its group or
/// others may read.
pub fn load(path: &Path) -> Result<SigningKey, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "the signing key {} does not exist\ncreate it with `lpexec-approvald keygen --out {}` and add the public key it prints to the hosts' [approval] trusted_keys",
                    path.display(),
                    path.display()
                )
            } else {
                format!("cannot open the signing key {}: {e}", path.display())
            }
        })?;
    let meta = f.metadata().map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("the signing key {} is not a regular file", path.display()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "the signing key {} has mode {:04o}: its group or others may read or change it, so it cannot be trusted to sign approvals\n\
             run `chmod 600 {}`; if others may have read it, make a new key and rotate (lpexec-approvald(8), KEY ROTATION)",
            path.display(),
            meta.mode() & 0o7777,
            path.display()
        ));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(&f, 4096), &mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    decode(&text).ok_or_else(|| {
        format!(
            "{} is not an lpexec-approvald signing key (expected one line \"{PREFIX}<base64url>\", as keygen writes)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_refusals_and_modes() {
        let dir = std::env::temp_dir().join(format!("approvald-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("signing.key");
        let k = generate(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load(&p).unwrap().to_bytes(), k.to_bytes());
        assert!(generate(&p).unwrap_err().contains("refusing to overwrite"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load(&p).unwrap_err();
        assert!(e.contains("has mode 0640") && e.contains("chmod 600"), "{e}");
        std::fs::write(dir.join("bad"), "ed25519:abc").unwrap();
        std::fs::set_permissions(dir.join("bad"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&dir.join("bad")).unwrap_err().contains("not an lpexec-approvald signing key"));
        assert!(load(&dir.join("absent")).unwrap_err().contains("keygen --out"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn decode_is_strict() {
        let k = SigningKey::from_bytes(&[7u8; 32]);
        assert_eq!(decode(&encode(&k)).unwrap().to_bytes(), k.to_bytes());
        assert!(decode("ed25519-secret:AAAA").is_none());
        assert!(decode(&encode(&k).replace("secret", "public")).is_none());
    }
}
