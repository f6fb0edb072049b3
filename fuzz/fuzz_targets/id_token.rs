//! ID-token parsing and verification: the fuzzer controls both the token and the key set, so
//! any input that verifies would be a forged signature — the run fails if one ever does.
//! Claims checks run on whatever parses, with fixed expectations.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lpexec::identity::jwt::{self, Expect, KeySet};

fuzz_target!(|data: &[u8]| {
    let (token, jwks) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{\"keys\":[]}"[..]),
    };
    let Ok(token) = std::str::from_utf8(token) else { return };
    let _ = jwt::peek_claims(token);
    let Ok(parsed) = jwt::parse(token) else { return };
    if let Ok(keys) = KeySet::parse(jwks) {
        assert!(jwt::verify_signature(&parsed, &keys).is_err(), "a signature made without a private key verified");
    }
    let e = Expect { iss: "https://id.example.com", audience: "lpexec", azp: ["lpexec", "lpexec"], now: 1_796_324_725 };
    let _ = jwt::check_claims(&parsed.claims, &e);
});
