//! The masking stream: however output is cut into reads, the result equals masking the whole
//! text at once, and the UTF-8 decoder agrees with a one-shot lossy decode.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lpexec::record::mask::{MaskSet, Masker};
use lpexec::record::utf8::Decoder;
use std::sync::OnceLock;

fn set() -> &'static MaskSet {
    static S: OnceLock<MaskSet> = OnceLock::new();
    S.get_or_init(|| {
        MaskSet::new(&[
            "npm_[A-Za-z0-9]{36}".to_string(),
            "secret=[a-z]+".to_string(),
            "AKIA[0-9A-Z]{16}".to_string(),
        ])
        .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cuts = data[0] as usize % 8;
    let body = &data[1..];
    let mut pieces = Vec::new();
    let mut at = 0;
    for k in 0..cuts {
        let next = (at + body.get(k).copied().unwrap_or(1) as usize).min(body.len());
        pieces.push(&body[at..next]);
        at = next;
    }
    pieces.push(&body[at..]);

    let mut m = Masker::new(set());
    let mut streamed = Vec::new();
    for p in &pieces {
        m.push(p, &mut streamed);
    }
    m.flush(&mut streamed);
    let whole = set().mask_text(&String::from_utf8_lossy(body));
    if std::str::from_utf8(body).is_ok() {
        assert_eq!(String::from_utf8_lossy(&streamed), whole);
    }

    let mut d = Decoder::default();
    let mut s = String::new();
    for p in &pieces {
        d.decode(p, &mut s);
    }
    d.finish(&mut s);
    assert_eq!(s, String::from_utf8_lossy(body));
});
