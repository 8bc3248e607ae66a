//! The one clock the closed loop reads: schedules, monitor windows,
//! cooldowns, leases and deadlines ask a [`Clock`], so a test drives the
//! whole loop in seconds with a [`ManualClock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch, as [`crate::now_ms`] gives them.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::now_ms()
    }
}

/// A clock that moves only when told (tests, replays). Clones share one
/// time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(ms)))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A five-field cron schedule (`minute hour day-of-month month
/// day-of-week`, in UTC), as crontab(5) spells it: `*`, numbers, ranges
/// `a-b`, steps `*/n` and `a-b/n`, lists `a,b`; day of week 0-7 (0 and 7
/// are Sunday). When both day fields are restricted a day matches either,
/// as cron does.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    any_day: bool,
    any_weekday: bool,
    text: String,
}

impl std::fmt::Debug for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cron({:?})", self.text)
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The bits a cron field sets, within `lo..=hi`.
fn field(s: &str, lo: u32, hi: u32, what: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let n: u32 = st
                    .parse()
                    .map_err(|_| format!("the {what} step `{st}` is not a number"))?;
                if n == 0 {
                    return Err(format!("the {what} step must be at least 1"));
                }
                (r, n)
            }
            None => (part, 1),
        };
        let num = |t: &str| -> Result<u32, String> {
            let n: u32 = t
                .parse()
                .map_err(|_| format!("`{t}` is not a {what} (a number {lo}-{hi})"))?;
            if n < lo || n > hi {
                return Err(format!("{what} {n} is outside {lo}-{hi}"));
            }
            Ok(n)
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None if step > 1 => (num(r)?, hi),
                None => {
                    let n = num(r)?;
                    (n, n)
                }
            },
        };
        if a > b {
            return Err(format!("the {what} range {a}-{b} is empty"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    pub fn parse(s: &str) -> Result<Cron, String> {
        let f: Vec<&str> = s.split_whitespace().collect();
        let [mi, h, dom, mo, dow] = f[..] else {
            return Err(format!(
                "`{s}` has {} fields; a schedule has five: minute hour day-of-month month day-of-week (\"0 3 * * 1\": Mondays at 03:00 UTC)",
                f.len()
            ));
        };
        let mut weekdays = field(dow, 0, 7, "day of week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes: field(mi, 0, 59, "minute")?,
            hours: field(h, 0, 23, "hour")? as u32,
            days: field(dom, 1, 31, "day of month")? as u32,
            months: field(mo, 1, 12, "month")? as u16,
            weekdays: (weekdays & 0x7f) as u8,
            any_day: dom == "*",
            any_weekday: dow == "*",
            text: f.join(" "),
        })
    }

    fn day_matches(&self, days: i64) -> bool {
        let (_, m, d) = crate::civil_from_days(days);
        if self.months & (1 << m) == 0 {
            return false;
        }
        // 1970-01-01 was a Thursday (4).
        let wd = (days + 4).rem_euclid(7) as u32;
        let by_day = self.days & (1 << d) != 0;
        let by_weekday = self.weekdays & (1 << wd) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => by_weekday,
            (false, true) => by_day,
            (false, false) => by_day || by_weekday,
        }
    }

    /// The first minute strictly after `after_ms` the schedule names, in
    /// ms; `None` if none comes within eight years (`0 0 30 2 *`).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start_min = after_ms.div_euclid(60_000) + 1;
        let first_day = start_min.div_euclid(1440);
        for day in first_day..first_day + 366 * 8 {
            if !self.day_matches(day) {
                continue;
            }
            let from = if day == first_day {
                start_min.rem_euclid(1440)
            } else {
                0
            };
            for m in from..1440 {
                let (h, mi) = (m / 60, m % 60);
                if self.hours & (1 << h) != 0 && self.minutes & (1 << mi) != 0 {
                    return Some((day * 1440 + m) * 60_000);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    /// 2026-11-30T00:00Z, a Monday.
    fn monday() -> i64 {
        crate::days_from_civil(2026, 11, 30) * 1440 * MIN
    }

    #[test]
    fn schedules_name_the_next_minute_they_match() {
        let mon = monday();
        let weekly = Cron::parse("0 3 * * 1").unwrap();
        assert_eq!(weekly.next_after(mon), Some(mon + 180 * MIN));
        assert_eq!(
            weekly.next_after(mon + 180 * MIN),
            Some(mon + (7 * 1440 + 180) * MIN)
        );
        let every = Cron::parse("*/15 * * * *").unwrap();
        assert_eq!(every.next_after(mon + 1), Some(mon + 15 * MIN));
        let sunday = Cron::parse("30 0 * * 7").unwrap();
        assert_eq!(sunday.next_after(mon), Some(mon + (6 * 1440 + 30) * MIN));
        // Both day fields restricted: either matches (the 1st, or a Monday).
        let either = Cron::parse("0 0 1 * 1").unwrap();
        assert_eq!(either.next_after(mon), Some(mon + 1440 * MIN));
        let list = Cron::parse("5,10-12 2 * 12 *").unwrap();
        assert_eq!(list.next_after(mon), Some(mon + (1440 + 125) * MIN));
        assert_eq!(Cron::parse("0 0 30 2 *").unwrap().next_after(mon), None);
        assert_eq!(weekly.to_string(), "0 3 * * 1");
    }

    #[test]
    fn a_bad_schedule_says_which_field() {
        for (s, says) in [
            ("0 3 * *", "has 4 fields"),
            ("60 * * * *", "minute 60 is outside 0-59"),
            ("* 24 * * *", "hour 24"),
            ("* * 0 * *", "day of month 0"),
            ("*/0 * * * *", "step must be at least 1"),
            ("5-1 * * * *", "range 5-1 is empty"),
            ("x * * * *", "`x` is not a minute"),
        ] {
            let err = Cron::parse(s).unwrap_err();
            assert!(err.contains(says), "{s}: {err}");
        }
    }

    #[test]
    fn a_manual_clock_moves_when_told_and_clones_share_it() {
        let c = ManualClock::at(1000);
        let d = c.clone();
        c.advance(500);
        assert_eq!(d.now_ms(), 1500);
        d.set(7);
        assert_eq!(c.now_ms(), 7);
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
    }
}
