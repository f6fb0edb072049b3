//! lpexec.toml parsing: any text is accepted or refused with diagnostics that point inside it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lpexec::common::config::Config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(Path::new("/etc/lpexec/lpexec.toml"), text) {
        Ok(c) => assert!(!c.secure_path.is_empty() || text.contains("secure_path")),
        Err(d) => {
            assert!(!d.0.is_empty());
            for diag in &d.0 {
                assert!(diag.line <= text.lines().count() + 1, "{diag}");
            }
        }
    }
});
