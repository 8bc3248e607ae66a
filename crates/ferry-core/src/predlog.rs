//! The prediction log's layout, shared by the gateway that writes it and
//! the dashboard that reads it: `<dir>/<model folder>/<kind>-<window>[.<part>].jsonl`,
//! where the window is the UTC start of the file's time window
//! (`2026-11-26T14` for an hour) and the part counts size rotations.

/// The fields the gateway adds to every logged row besides the request's
/// columns and the outputs (`prediction`, `probability_<class>`).
pub const LOG_FIELDS: [&str; 4] = ["ts", "request_id", "model", "version"];

/// Whether a logged column is one of the model's outputs.
pub fn is_output(column: &str) -> bool {
    column == "prediction" || column.starts_with("probability_")
}

/// The folder a model's files go in: its name with anything but ASCII
/// letters, digits, `-`, `_` and `.` made `_`, and a name of dots alone
/// (or none) prefixed with `_`, so the folder is always one inside the
/// log's. Different names can share a folder (`a b`, `a_b`): a reader
/// must not take a folder for one model's without checking that.
pub fn model_dir(model: &str) -> String {
    let dir: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if dir.chars().all(|c| c == '.') {
        format!("_{dir}")
    } else {
        dir
    }
}

/// The name of the window `at_ms` falls in, for windows of `window_s`
/// seconds: `2026-11-26` (a day or more), `2026-11-26T14` (an hour or
/// more), else `2026-11-26T14-05`.
pub fn window_name(at_ms: i64, window_s: u64) -> String {
    let w = window_s.max(1) as i64;
    let start = at_ms.div_euclid(1000).div_euclid(w) * w;
    let days = start.div_euclid(86_400);
    let secs = start.rem_euclid(86_400);
    let (y, m, d) = crate::civil_from_days(days);
    if window_s >= 86_400 {
        format!("{y:04}-{m:02}-{d:02}")
    } else if window_s >= 3600 {
        format!("{y:04}-{m:02}-{d:02}T{:02}", secs / 3600)
    } else {
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}-{:02}",
            secs / 3600,
            (secs % 3600) / 60
        )
    }
}

/// What a log file's name says: its kind (`predictions`, `feedback`), the
/// start of its window (ms) and its part; `None` for a name the gateway
/// does not write.
pub fn parse_file_name(name: &str) -> Option<(&str, i64, u32)> {
    let stem = name.strip_suffix(".jsonl")?;
    let (kind, rest) = stem.split_once('-')?;
    let (window, part) = match rest.split_once('.') {
        Some((w, p)) => (w, p.parse().ok()?),
        None => (rest, 0),
    };
    let num = |s: &str| s.parse::<i64>().ok();
    let (date, time) = window.split_once('T').unwrap_or((window, ""));
    let mut ymd = date.splitn(3, '-');
    let (y, m, d) = (num(ymd.next()?)?, num(ymd.next()?)?, num(ymd.next()?)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || date.len() != 10 {
        return None;
    }
    let (h, min) = match time {
        "" => (0, 0),
        t => match t.split_once('-') {
            Some((h, mi)) => (num(h)?, num(mi)?),
            None => (num(t)?, 0),
        },
    };
    if !(0..24).contains(&h) || !(0..60).contains(&min) {
        return None;
    }
    let days = crate::days_from_civil(y, m as u32, d as u32);
    Some((kind, ((days * 24 + h) * 60 + min) * 60_000, part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_named_in_utc_and_read_back() {
        // 2026-11-26T14:05:30Z
        let t = 1_795_701_930_000;
        assert_eq!(window_name(t, 3600), "2026-11-26T14");
        assert_eq!(window_name(t, 300), "2026-11-26T14-05");
        assert_eq!(window_name(t, 86_400), "2026-11-26");
        let hour = t - 330_000;
        assert_eq!(
            parse_file_name("predictions-2026-11-26T14.jsonl"),
            Some(("predictions", hour, 0))
        );
        assert_eq!(
            parse_file_name("predictions-2026-11-26T14-05.2.jsonl"),
            Some(("predictions", t - 30_000, 2))
        );
        assert_eq!(
            parse_file_name("feedback-2026-11-26.jsonl"),
            Some(("feedback", hour - 14 * 3_600_000, 0))
        );
        for bad in [
            "predictions-2026-13-26T14.jsonl",
            "predictions-x.jsonl",
            "predictions-2026-11-26T14.csv",
            "notes.jsonl",
            "predictions-2026-11-26T25.jsonl",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
        assert_eq!(model_dir("team/iris v2"), "team_iris_v2");
        for (name, dir) in [("..", "_.."), (".", "_."), ("", "_"), ("../x", ".._x")] {
            assert_eq!(model_dir(name), dir, "{name}");
        }
    }
}
