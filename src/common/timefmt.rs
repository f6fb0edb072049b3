//! Wall-clock formatting in UTC for ids, paths, logs and tables (no time-zone files are read:
//! the helper must not load anything the caller influences, such as `TZ`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub nanos: u32,
}

impl Utc {
    pub fn from_system(t: SystemTime) -> Utc {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
        let dt = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Utc {
            year: dt.year(),
            month: u8::from(dt.month()),
            day: dt.day(),
            hour: dt.hour(),
            minute: dt.minute(),
            second: dt.second(),
            nanos: d.subsec_nanos(),
        }
    }

    pub fn now() -> Utc {
        Utc::from_system(SystemTime::now())
    }

    /// `2026-12-03T19:05:25Z`
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `2026-12-03 19:05:25` for tables.
    pub fn short(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `20261203T190525` — sorts like the time it names.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Seconds since the epoch as a float, for JSON.
pub fn unix_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Parses `--since`/`--until` values: RFC 3339 (`2026-12-03T19:05:25Z`), a date
/// (`2026-12-03`, midnight UTC), a date and time (`2026-12-03 19:05`), or a relative age
/// (`2h`, `30m`, `7d` ago).
pub fn parse_when(s: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Ok(d) = crate::common::duration::parse(s) {
        return now.checked_sub(d).ok_or_else(|| format!("{s:?} is too far in the past"));
    }
    let bad = || {
        format!(
            "invalid time {s:?}: use 2026-12-03, \"2026-12-03 19:05\", 2026-12-03T19:05:25Z or an age such as 2h or 7d"
        )
    };
    let s2 = s.trim_end_matches('Z').replace('T', " ");
    let (date, clock) = match s2.split_once(' ') {
        Some((d, c)) => (d, Some(c)),
        None => (s2.as_str(), None),
    };
    let mut dp = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (dp.next(), dp.next(), dp.next(), dp.next()) else {
        return Err(bad());
    };
    let y: i32 = y.parse().map_err(|_| bad())?;
    let m: u8 = m.parse().map_err(|_| bad())?;
    let d: u8 = d.parse().map_err(|_| bad())?;
    let (mut hh, mut mm, mut ss) = (0u8, 0u8, 0u8);
    if let Some(c) = clock {
        let parts: Vec<&str> = c.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(bad());
        }
        hh = parts[0].parse().map_err(|_| bad())?;
        mm = parts[1].parse().map_err(|_| bad())?;
        if let Some(sec) = parts.get(2) {
            ss = sec.parse().map_err(|_| bad())?;
        }
    }
    let month = time::Month::try_from(m).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(y, month, d).map_err(|_| bad())?;
    let t = time::Time::from_hms(hh, mm, ss).map_err(|_| bad())?;
    let ts = time::PrimitiveDateTime::new(date, t).assume_utc().unix_timestamp();
    let secs = u64::try_from(ts).map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_324_725);
        let u = Utc::from_system(t);
        assert_eq!(u.rfc3339(), "2026-12-03T19:05:25Z");
        assert_eq!(u.compact(), "20261203T190525");
    }

    #[test]
    fn parses_when() {
        let now = UNIX_EPOCH + Duration::from_secs(1_796_324_725);
        assert_eq!(parse_when("2026-12-03T19:05:25Z", now).unwrap(), now);
        assert_eq!(parse_when("2026-12-03 19:05:25", now).unwrap(), now);
        assert_eq!(unix_secs(parse_when("2026-12-03", now).unwrap()), 1_796_256_000);
        assert_eq!(parse_when("2h", now).unwrap(), now - Duration::from_secs(7200));
        for bad in ["yesterday", "2026-13-01", "2026-12-03 25:00", "12/03/2026"] {
            assert!(parse_when(bad, now).is_err(), "{bad}");
        }
    }
}
