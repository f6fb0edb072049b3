//! The args_regex path: quoting round-trips, and the literal-prefix prefilter never rejects a
//! string its pattern matches. Input: a pattern line, then arguments separated by NUL.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lpexec::common::policy::ArgsRegex;
use lpexec::common::quote;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern, rest) = text.split_once('\n').unwrap_or((text, ""));
    let args: Vec<&str> = if rest.is_empty() { vec![] } else { rest.split('\0').collect() };
    let joined = quote::join(&args);
    assert_eq!(quote::split(&joined), Some(args.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
    if pattern.len() > 200 {
        return;
    }
    if let Ok(r) = ArgsRegex::new(pattern.to_string()) {
        if let Ok(re) = r.regex() {
            if re.is_match(&joined) {
                assert!(r.may_match(&joined), "prefilter rejected a match: {pattern:?} on {joined:?}");
            }
        }
    }
});
