//! Timestamps as microseconds since the Unix epoch (UTC), to and from the
//! ISO 8601 text users write in suites (`2024-01-01`, `2024-01-01T10:00:00`,
//! `2024-01-01 10:00:00.5`, with an optional `Z` or `+02:00`).

use ferry_core::{civil_from_days, days_from_civil};

/// Parses an ISO 8601 date or date-time into µs since the epoch.
pub fn parse_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let mut it = date.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut micros = days_from_civil(y, m, d) * 86_400_000_000;
    if rest.is_empty() {
        return Some(micros);
    }
    // Time, then an optional zone.
    let (time, offset_s) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0i64)
    } else if let Some(i) = rest.rfind(['+', '-']).filter(|&i| i > 0) {
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let mut hm = z[1..].split(':');
        let h: i64 = hm.next()?.parse().ok()?;
        let mm: i64 = hm.next().unwrap_or("0").parse().ok()?;
        (t, sign * (h * 3600 + mm * 60))
    } else {
        (rest, 0)
    };
    let mut parts = time.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let mi: i64 = parts.next().unwrap_or("0").parse().ok()?;
    let sec = parts.next().unwrap_or("0");
    let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let sec: i64 = whole.parse().ok()?;
    if h > 23 || mi > 59 || sec > 60 || parts.next().is_some() {
        return None;
    }
    let mut frac_us = 0i64;
    for (k, c) in frac.chars().take(6).enumerate() {
        frac_us += i64::from(c.to_digit(10)?) * 10i64.pow(5 - k as u32);
    }
    micros += ((h * 60 + mi) * 60 + sec - offset_s) * 1_000_000 + frac_us;
    Some(micros)
}

/// `2024-01-01T10:00:00` (with `.ffffff` when there are microseconds).
pub fn format_micros(us: i64) -> String {
    let days = us.div_euclid(86_400_000_000);
    let rem = us.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    let frac = rem % 1_000_000;
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:06}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "1970-01-01T00:00:00",
            "2024-02-29T23:59:59",
            "1969-12-31T23:59:59.500000",
            "2025-12-31T00:00:00",
        ] {
            assert_eq!(format_micros(parse_micros(s).unwrap()), s);
        }
        assert_eq!(parse_micros("2024-01-01").unwrap(), 1_704_067_200_000_000);
        assert_eq!(
            parse_micros("2024-01-01T02:00:00+02:00"),
            parse_micros("2024-01-01 00:00:00Z")
        );
        for bad in ["2024-13-01", "yesterday", "2024-01-01T25:00:00", "2024-01"] {
            assert_eq!(parse_micros(bad), None, "{bad}");
        }
    }
}
