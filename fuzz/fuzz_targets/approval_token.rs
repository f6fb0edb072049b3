//! Approval-token verification and the bound-field comparison: the fuzzer controls the whole
//! token; the trusted key is fixed and its private half never used, so any input that
//! verifies would be a forged signature — the run fails if one ever does. Also the service's
//! request checks and the API bodies, on the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lpexec::approval::{api, token, ApprovalRequest};

const TRUSTED: [u8; 32] = [
    0x3d, 0x40, 0x17, 0xc3, 0xe8, 0x43, 0x89, 0x5a, 0x92, 0xb7, 0x0a, 0xa7, 0x4d, 0x1b, 0x7e, 0xbc, 0x9c, 0x98,
    0x2c, 0xcf, 0x2e, 0xc4, 0x96, 0x8c, 0xc0, 0xcd, 0x55, 0xf1, 0x2a, 0xf4, 0x66, 0x0c,
];

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = token::peek(s);
        let _ = token::valid_id(s);
        if let Ok(c) = token::verify(s, &[TRUSTED], 1_800_000_000) {
            panic!("a token verified without the private key: {c:?}");
        }
    }
    if let Ok(r) = serde_json::from_slice::<ApprovalRequest>(data) {
        let _ = r.check();
        let _ = r.subject.first_difference(&r.subject.clone());
    }
    let _ = serde_json::from_slice::<api::RequestView>(data);
    let _ = serde_json::from_slice::<api::Submit>(data);
});
