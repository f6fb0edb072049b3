//! Session ids: time-sortable (UTC, microseconds) and unique (random suffix, and recordings
//! are created exclusively), e.g. `20261203T190525.482913Z-3f9a2c1b`.

use std::time::SystemTime;

use crate::common::timefmt::Utc;

/// A new id for a session starting at `at`.
pub fn new_id(at: SystemTime) -> String {
    let u = Utc::from_system(at);
    let mut r = [0u8; 4];
    // If the kernel cannot give randomness, the microseconds and the exclusive file creation
    // still keep ids unique; the suffix only makes collisions unlikely.
    let _ = getrandom::fill(&mut r);
    format!("{}.{:06}Z-{:08x}", u.compact(), u.nanos / 1000, u32::from_le_bytes(r))
}

/// Whether `s` has the shape of a session id (and so is safe to use in a path).
pub fn is_valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 32
        && b[8] == b'T'
        && b[15] == b'.'
        && b[22] == b'Z'
        && b[23] == b'-'
        && b[..8].iter().chain(&b[9..15]).chain(&b[16..22]).all(u8::is_ascii_digit)
        && b[24..].iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// The `YYYY/MM/DD` directory part of an id.
pub fn date_dir(id: &str) -> Option<String> {
    is_valid_id(id).then(|| format!("{}/{}/{}", &id[..4], &id[4..6], &id[6..8]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn ids_sort_by_time_and_validate() {
        let t = UNIX_EPOCH + Duration::from_micros(1_796_324_725_482_913);
        let a = new_id(t);
        assert!(a.starts_with("20261203T190525.482913Z-"), "{a}");
        assert!(is_valid_id(&a), "{a}");
        assert_eq!(date_dir(&a).unwrap(), "2026/12/03");
        let b = new_id(t + Duration::from_micros(1));
        assert!(a < b);
        assert_ne!(new_id(t), new_id(t));
        for bad in [
            "",
            "../../etc/passwd",
            "20261203T190525.482913Z-3F9A2C1B",
            "20261203T190525.482913Z-3f9a2c1b/..",
            "x".repeat(32).as_str(),
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
