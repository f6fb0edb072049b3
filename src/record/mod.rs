//! Session recordings: asciicast v2 files that the real asciinema players read, secrets
//! masked before they reach disk, sealed at the end with the host's Ed25519 key, and the
//! auditor's view of them (listing, replay, verification).

pub mod asciicast;
pub mod index;
pub mod mask;
pub mod recorder;
pub mod sanitize;
pub mod seal;
pub mod utf8;
