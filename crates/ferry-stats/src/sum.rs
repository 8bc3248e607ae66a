//! Summation in numpy's order, so that sums of many terms round the way
//! `np.sum` does and results stay close to scipy's even when terms cancel.

/// numpy's pairwise summation (`pairwise_sum` in numpy's `loops_utils`):
/// sequential below 8 terms, eight interleaved accumulators up to 128 terms,
/// and a recursive split (at a multiple of 8) above that.
fn pairwise(xs: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = xs.len();
    if n < 8 {
        let mut res = -0.0;
        for &x in xs {
            res += x;
        }
        res
    } else if n <= BLOCK {
        let mut r = [0.0; 8];
        r.copy_from_slice(&xs[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += xs[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &xs[whole..] {
            res += x;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise(&xs[..half]) + pairwise(&xs[half..])
    }
}

/// `np.sum` of a contiguous 1-D float64 array.
pub(crate) fn np_sum(xs: &[f64]) -> f64 {
    -0.0 + pairwise(xs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_exactly_representable_values() {
        let xs: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(np_sum(&xs), 500_500.0);
        assert_eq!(np_sum(&[]), 0.0);
        assert_eq!(np_sum(&[2.5]), 2.5);
    }
}
