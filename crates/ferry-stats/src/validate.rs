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
    if xs.len() >= RADIX_FROM {
        return radix_sorted(xs);
    }
    let mut v: Vec<f64> = xs.iter().map(|&x| x + 0.0).collect();
    // Values equal under `total_cmp` are the same bits, so an unstable
    // sort gives exactly the stable one's result, faster.
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// From this many values a radix sort beats comparisons (a drift check's
/// million logged rows per column).
const RADIX_FROM: usize = 4096;

/// The key whose unsigned order is `f64::total_cmp`'s: negative numbers'
/// bits all flipped, the others' sign bit set.
fn order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | 1 << 63 }
}

fn from_order_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// [`sorted`] by least-significant-digit radix sort over [`order_key`],
/// 16 bits a pass (four passes, a pass skipped when every key shares its
/// digit): the same order, so the same values.
fn radix_sorted(xs: &[f64]) -> Vec<f64> {
    let mut keys: Vec<u64> = xs.iter().map(|&x| order_key(x + 0.0)).collect();
    let mut scratch = vec![0u64; keys.len()];
    let mut counts = vec![0usize; 1 << 16];
    for pass in 0..4 {
        let shift = pass * 16;
        let digit = |k: u64| ((k >> shift) & 0xFFFF) as usize;
        counts.iter_mut().for_each(|c| *c = 0);
        for &k in &keys {
            counts[digit(k)] += 1;
        }
        if counts[digit(keys[0])] == keys.len() {
            continue;
        }
        let mut at = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = at;
            at += n;
        }
        for &k in &keys {
            let d = digit(k);
            scratch[counts[d]] = k;
            counts[d] += 1;
        }
        std::mem::swap(&mut keys, &mut scratch);
    }
    keys.into_iter().map(from_order_key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sorting_is_sorting() {
        // Negative and positive, zeros of both signs, subnormals, extremes
        // and many repeats, past the size where the radix sort takes over.
        let mut xs = vec![
            -0.0,
            0.0,
            f64::MIN_POSITIVE / 4.0,
            -f64::MIN_POSITIVE / 4.0,
            f64::MAX,
            f64::MIN,
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        while xs.len() < 3 * RADIX_FROM {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = (state % 20_001) as f64 / 100.0 - 100.0;
            // Whole numbers repeat; the rest are spread thin.
            xs.push(if state.is_multiple_of(3) {
                x.round()
            } else {
                x / 1000.0
            });
        }
        let mut want: Vec<f64> = xs.iter().map(|&x| x + 0.0).collect();
        want.sort_by(f64::total_cmp);
        let got = radix_sorted(&xs);
        assert_eq!(
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(sorted(&xs[..10]), {
            let mut w = xs[..10].iter().map(|&x| x + 0.0).collect::<Vec<_>>();
            w.sort_by(f64::total_cmp);
            w
        });
    }
}
