//! Durations in configuration: `90s`, `10m`, `1h30m`, `2d`.

use std::time::Duration;

/// Parses a duration such as `30m` or `1h30m`. Units: s, m, h, d. At least one component;
/// the total must be positive and at most 366 days.
pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {s:?}: expected a number and a unit, like \"90s\", \"10m\", \"1h30m\" or \"2d\""
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num =
                Some(num.unwrap_or(0).checked_mul(10).and_then(|n| n.checked_add(d.into())).ok_or_else(bad)?);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n = num.take().ok_or_else(bad)?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
    }
    if num.is_some() {
        return Err(bad());
    }
    if total == 0 {
        return Err(format!("invalid duration {s:?}: must be more than zero"));
    }
    if total > 366 * 86400 {
        return Err(format!("invalid duration {s:?}: more than a year"));
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration compactly (`12.3s`, `3s`, `4m05s`, `2h10m`) for logs and tables; whole
/// seconds (a configured timeout, an age) print without a fraction.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 && d.subsec_nanos() == 0 {
        format!("{secs}s")
    } else if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("2d").unwrap(), Duration::from_secs(172800));
    }

    #[test]
    fn refuses_nonsense() {
        for s in ["", "10", "m", "1x", "-1m", "0s", "1 m", "99999999999999999999s", "400d"] {
            assert!(parse(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn human_forms() {
        assert_eq!(human(Duration::from_millis(12300)), "12.3s");
        assert_eq!(human(Duration::from_millis(3000)), "3s");
        assert_eq!(human(Duration::from_millis(3001)), "3.0s");
        assert_eq!(human(Duration::from_secs(245)), "4m05s");
        assert_eq!(human(Duration::from_secs(7800)), "2h10m");
    }
}
