//! The recording reader used by replay, verify and sessions: any recording and any sidecar
//! are read or refused without a panic, and nothing unsigned verifies as valid.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lpexec::record::{asciicast, sanitize, seal};

fuzz_target!(|data: &[u8]| {
    let (cast, sidecar) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    if let Ok(text) = std::str::from_utf8(cast) {
        if let Ok(p) = asciicast::parse(text) {
            let mut s = sanitize::Sanitizer::default();
            let mut out = String::new();
            for e in &p.events {
                s.filter(&e.data, &mut out);
            }
            assert!(!out.contains("\x1b]"));
        }
    }
    if let seal::Verdict::Valid { .. } =
        seal::verify(cast, sidecar, Some("ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"))
    {
        panic!("a forged seal verified");
    }
});
