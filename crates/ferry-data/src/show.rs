//! Counts and shares as people read them, one way everywhere (the CLI, the
//! check stages' logs, the HTML reports): `1 row (0.67%)`, `3 rows (2%)`,
//! `12,345 rows`, `<0.001%`.

/// `n` with thousands separators: `16,398`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 row`, `16,398 rows`.
pub fn rows(n: u64) -> String {
    format!("{} {}", count(n), if n == 1 { "row" } else { "rows" })
}

/// A share (0..=1) as a percentage: two decimals at most from 1% up
/// (`2%`, `33.33%`), two significant digits below (`0.67%`, `0.012%`),
/// `<0.001%` for what is smaller but not zero. A share short of 1 never
/// reads `100%`, nor one above 0 `0%`.
pub fn share(s: f64) -> String {
    if s.is_nan() {
        return "NaN".into();
    }
    let p = s * 100.0;
    if p <= 0.0 {
        return "0%".into();
    }
    if p < 0.001 {
        return "<0.001%".into();
    }
    let text = if p >= 1.0 {
        let t = trim_zeros(format!("{p:.2}"));
        if t == "100" && s < 1.0 {
            return ">99.99%".into();
        }
        t
    } else {
        // Two significant digits: 0.6667 -> 0.67, 0.0123 -> 0.012.
        let decimals = (1.0 - p.log10().floor()).max(1.0) as usize;
        trim_zeros(format!("{p:.decimals$}"))
    };
    format!("{text}%")
}

/// `1 row (0.67%)`.
pub fn rows_share(n: u64, s: f64) -> String {
    format!("{} ({})", rows(n), share(s))
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A number without a trailing `.0` noise.
pub fn trim(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_read_as_percentages() {
        let cases = [
            (1.0 / 150.0, "0.67%"),
            (3.0 / 150.0, "2%"),
            (1.0 / 3.0, "33.33%"),
            (0.5, "50%"),
            (1.0, "100%"),
            (0.0, "0%"),
            (0.99999, ">99.99%"),
            (0.00001, "0.001%"),
            (0.000_001, "<0.001%"),
            (0.000_123, "0.012%"),
            (0.003, "0.3%"),
            (0.0099999, "1%"),
            (0.012345, "1.23%"),
        ];
        for (s, want) in cases {
            assert_eq!(share(s), want, "{s}");
        }
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(16_398), "16,398");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(rows(1), "1 row");
        assert_eq!(rows(2), "2 rows");
        assert_eq!(rows_share(1, 1.0 / 150.0), "1 row (0.67%)");
        assert_eq!(rows_share(3, 0.02), "3 rows (2%)");
    }
}
