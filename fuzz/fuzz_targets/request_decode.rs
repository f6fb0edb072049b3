//! The helper's request decoding: any bytes on descriptor 3 give an error or a request that
//! respects every bound, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lpexec::helper::request::{MAX_ARGS, MAX_REASON, Request};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::decode(data) {
        assert!(r.argv.len() <= MAX_ARGS);
        assert!(r.reason.as_ref().is_none_or(|x| x.len() <= MAX_REASON));
        assert!(r.argv.iter().all(|a| !a.contains('\0')));
        assert_eq!(Request::decode(&r.encode()).as_ref(), Ok(&r));
    }
});
