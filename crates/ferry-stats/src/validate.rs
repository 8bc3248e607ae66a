//! Input checks shared by the public functions. Each returns the first
//! offending element, named as `input[index]`.

use crate::StatsError;

pub(crate) fn non_empty(input: &'static str, xs: &[f64]) -> Result<(), StatsError> {
    if xs.is_empty() {
        return Err(StatsError::Empty { input });
    }
    Ok(())
}

pub(crate) fn same_len(
    left: &'static str,
    a: &[f64],
    right: &'static str,
    b: &[f64],
) -> Result<(), StatsError> {
    if a.len() != b.len() {
        return Err(StatsError::LengthMismatch {
            left,
            left_len: a.len(),
            right,
            right_len: b.len(),
        });
    }
    Ok(())
}

pub(crate) fn finite(input: &'static str, xs: &[f64]) -> Result<(), StatsError> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(StatsError::NotFinite {
            at: format!("{input}[{i}]"),
            value: xs[i],
        }),
        None => Ok(()),
    }
}

/// Finite and `>= 0`.
pub(crate) fn non_negative(input: &'static str, xs: &[f64]) -> Result<(), StatsError> {
    finite(input, xs)?;
    match xs.iter().position(|&x| x < 0.0) {
        Some(i) => Err(StatsError::Negative {
            at: format!("{input}[{i}]"),
            value: xs[i],
        }),
        None => Ok(()),
    }
}

/// Finite and `> 0`.
pub(crate) fn positive(input: &'static str, xs: &[f64]) -> Result<(), StatsError> {
    finite(input, xs)?;
    match xs.iter().position(|&x| x <= 0.0) {
        Some(i) => Err(StatsError::NotPositive {
            at: format!("{input}[{i}]"),
            value: xs[i],
        }),
        None => Ok(()),
    }
}

/// A sample for a two-sample test: non-empty and finite.
pub(crate) fn sample(input: &'static str, xs: &[f64]) -> Result<(), StatsError> {
    non_empty(input, xs)?;
    finite(input, xs)
}

/// The values sorted ascending, with `-0.0` folded into `0.0` so that
/// comparisons and sorting agree. Callers have checked that all are finite.
pub(crate) fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = xs.iter().map(|&x| x + 0.0).collect();
    // Values equal under `total_cmp` are the same bits, so an unstable
    // sort gives exactly the stable one's result, faster.
    v.sort_unstable_by(f64::total_cmp);
    v
}
