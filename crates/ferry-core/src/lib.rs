//! Shared vocabulary of ferry: content digests, ids and validated names.
//!
//! This crate is pure: no IO, no clocks except [`now_ms`], which callers use at
//! the edges and pass down as values.

pub mod clock;
mod digest;
mod link;
mod names;
pub mod par;
pub mod predlog;

pub use digest::{Digest, DigestParseError, StableHasher};
pub use link::LinkMode;
pub use names::{
    ExperimentId, ExperimentIdError, ModelName, ModelRef, ModelRefParseError, NameError, RunId,
    StageName, slug,
};

/// The proleptic Gregorian date `(year, month, day)` of a day number
/// (days since 1970-01-01).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The day number (days since 1970-01-01) of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A duration in its largest whole unit: `2h`, `90m`, `30s`, `250ms`.
pub fn human_ms(ms: u64) -> String {
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Milliseconds since the Unix epoch, the one timestamp unit of ferry's records.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_468, -1, 0, 1, 19_723, 20_000, 2_932_896] {
            let (y, m, d) = super::civil_from_days(days);
            assert_eq!(super::days_from_civil(y, m, d), days);
        }
        assert_eq!(super::civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(super::civil_from_days(-1), (1969, 12, 31));
    }
}

/// `url` with the password of its user part hidden
/// (`postgres://ferry:***@db/ferry`), for logs and messages: a store's URL
/// is a secret until its password is gone.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn passwords_are_hidden_and_nothing_else_changes() {
        use super::without_password as w;
        assert_eq!(
            w("postgres://ferry:s3cret@db:5432/ferry"),
            "postgres://ferry:***@db:5432/ferry"
        );
        assert_eq!(
            w("postgres://ferry:p@ss@db/ferry?sslmode=require"),
            "postgres://ferry:***@db/ferry?sslmode=require"
        );
        assert_eq!(w("postgres://ferry@db/ferry"), "postgres://ferry@db/ferry");
        assert_eq!(w("postgres://db:5432/ferry"), "postgres://db:5432/ferry");
        assert_eq!(
            w("sqlite:///tmp/x@y/ferry.db"),
            "sqlite:///tmp/x@y/ferry.db"
        );
        assert_eq!(w("not a url"), "not a url");
    }
}
