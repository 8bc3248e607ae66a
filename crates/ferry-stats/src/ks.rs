//! The two-sample Kolmogorov-Smirnov test, as scipy's
//! `ks_2samp(a, b, alternative="two-sided", method="auto")`.

use crate::StatsError;
use crate::kolmogn::kolmogn_sf;
use crate::validate;

/// How a [`KsResult`]'s p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KsMethod {
    /// The exact distribution of the statistic under the null hypothesis
    /// (both samples at most 10 000 values).
    Exact,
    /// The asymptotic distribution, `kstwo.sf(D, round(n·m / (n + m)))`
    /// (a larger sample, or an exact computation that failed).
    Asymptotic,
}

/// The result of [`ks_2samp`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// `D`, the largest absolute difference between the two empirical CDFs.
    pub statistic: f64,
    /// The two-sided p-value.
    pub pvalue: f64,
    pub method: KsMethod,
}

/// scipy's `MAX_AUTO_N`: up to this size `method="auto"` tries the exact
/// distribution.
const MAX_AUTO_N: usize = 10_000;

/// The two-sided two-sample Kolmogorov-Smirnov test (scipy's
/// `ks_2samp(a, b)` with `method="auto"`).
///
/// The samples need not be sorted; they must be non-empty and finite (drop
/// NaN and nulls first). Ties are allowed.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Result<KsResult, StatsError> {
    validate::sample("a", a)?;
    validate::sample("b", b)?;
    let xs = validate::sorted(a);
    let ys = validate::sorted(b);
    let d = statistic(&xs, &ys);
    let (n1, n2) = (xs.len(), ys.len());

    if n1.max(n2) <= MAX_AUTO_N {
        let g = gcd(n1, n2) as i64;
        let (n1, n2) = (n1 as i64, n2 as i64);
        let lcm = (n1 / g) * n2;
        let h = (d * lcm as f64).round_ties_even() as i64;
        let d = h as f64 / lcm as f64;
        if h == 0 {
            return Ok(KsResult {
                statistic: d,
                pvalue: 1.0,
                method: KsMethod::Exact,
            });
        }
        let prob = if n1 == n2 {
            Some(prob_outside_square(n1, h))
        } else {
            outer_prob_inside(n1, n2, g, h)
        };
        match prob {
            Some(p) if (0.0..=1.0).contains(&p) => {
                return Ok(KsResult {
                    statistic: d,
                    pvalue: p,
                    method: KsMethod::Exact,
                });
            }
            // scipy warns and falls back to the asymptotic distribution,
            // keeping the rounded statistic.
            _ => return Ok(asymptotic(d, xs.len(), ys.len())),
        }
    }
    Ok(asymptotic(d, n1, n2))
}

fn asymptotic(d: f64, n1: usize, n2: usize) -> KsResult {
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = m * n / (m + n);
    let nn = en.round_ties_even() as u64;
    KsResult {
        statistic: d,
        pvalue: kolmogn_sf(nn, d).clamp(0.0, 1.0),
        method: KsMethod::Asymptotic,
    }
}

/// `max |F_a - F_b|` over the pooled values, with each CDF difference
/// computed as `i/n1 - j/n2` the way scipy does.
fn statistic(xs: &[f64], ys: &[f64]) -> f64 {
    let (n1, n2) = (xs.len() as f64, ys.len() as f64);
    let (mut i, mut j) = (0, 0);
    let (mut max_s, mut min_s) = (f64::NEG_INFINITY, f64::INFINITY);
    while i < xs.len() || j < ys.len() {
        let v = match (xs.get(i), ys.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        while i < xs.len() && xs[i] <= v {
            i += 1;
        }
        while j < ys.len() && ys[j] <= v {
            j += 1;
        }
        let diff = i as f64 / n1 - j as f64 / n2;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    }
    let min_s = (-min_s).clamp(0.0, 1.0);
    if min_s > max_s { min_s } else { max_s }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `Pr(D_{n,n} >= h/n)` (scipy's `_compute_prob_outside_square`):
/// `2 Σ_k (-1)^k C(2n, n - k h) / C(2n, n)` evaluated with a Horner-like
/// scheme to avoid cancellation.
fn prob_outside_square(n: i64, h: i64) -> f64 {
    let mut p = 0.0;
    let mut k = n / h;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// The proportion of lattice paths from `(0, 0)` to `(m, n)` that leave the
/// band `|x/m - y/n| < h / lcm(m, n)` (scipy's
/// `_compute_outer_prob_inside_method`, Hodges' inside method with
/// Viehmann's recursion for `1 - p`). `None` if the window bookkeeping goes
/// out of bounds, which scipy would report as a failed exact computation.
fn outer_prob_inside(m: i64, n: i64, g: i64, h: i64) -> Option<f64> {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let mg = m / g;
    let ng = n / g;
    let idx = |i: i64| usize::try_from(i).ok();

    // A sliding window of one column of the path-count matrix.
    let mut minj: i64 = 0;
    let mut maxj: i64 = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = idx((2 * maxj + 2).min(n + 1))?;
    let mut a = vec![1.0; len_a];
    for slot in a.iter_mut().take(idx(maxj)?) {
        *slot = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = (floor_div(ng * i - h, mg) + 1).max(0).min(n);
        maxj = ceil_div(ng * i + h, mg).min(n + 1);
        if maxj <= minj {
            return Some(1.0);
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let fi = i as f64;
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            let prev = *a.get(idx(jj + minj - lastminj)?)?;
            val = (prev * fi + val * j as f64) / (i + j) as f64;
            *a.get_mut(idx(jj)?)? = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            // Carried-over entries go back to 1.
            let start = idx(maxj - minj)?;
            let end = idx(maxj - minj + (lastlen - curlen))?;
            for slot in a.iter_mut().take(end).skip(start) {
                *slot = 1.0;
            }
        }
    }
    a.get(idx(maxj - minj - 1)?).copied()
}

/// `floor(a / b)` for `b > 0`.
fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

/// `ceil(a / b)` for `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistic_handles_ties_and_order() {
        let a = validate::sorted(&[3.0, 1.0, 2.0, 2.0]);
        let b = validate::sorted(&[2.0, 5.0, 4.0]);
        // At 3: F_a = 1, F_b = 1/3.
        assert_eq!(statistic(&a, &b), 1.0 - 1.0 / 3.0);
        assert_eq!(statistic(&a, &a), 0.0);
        let z = validate::sorted(&[-0.0, 1.0]);
        let w = validate::sorted(&[0.0, 1.0]);
        assert_eq!(statistic(&z, &w), 0.0);
    }

    #[test]
    fn exact_small_cases() {
        // Disjoint samples of 3 and 3: D = 1, p = 2 / C(6, 3) = 0.1.
        let r = ks_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).expect("valid");
        assert_eq!(r.statistic, 1.0);
        assert!((r.pvalue - 0.1).abs() < 1e-15, "{r:?}");
        assert_eq!(r.method, KsMethod::Exact);
        // Disjoint samples of 2 and 3: p = 2 / C(5, 2) = 0.2.
        let r = ks_2samp(&[1.0, 2.0], &[4.0, 5.0, 6.0]).expect("valid");
        assert!((r.pvalue - 0.2).abs() < 1e-15, "{r:?}");
        // Identical samples.
        let r = ks_2samp(&[1.0, 2.0], &[2.0, 1.0]).expect("valid");
        assert_eq!((r.statistic, r.pvalue), (0.0, 1.0));
    }

    #[test]
    fn large_samples_use_the_asymptotic_distribution() {
        let a: Vec<f64> = (0..10_001).map(f64::from).collect();
        let b: Vec<f64> = (0..50).map(|i| f64::from(i) * 200.0 + 0.5).collect();
        let r = ks_2samp(&a, &b).expect("valid");
        assert_eq!(r.method, KsMethod::Asymptotic);
        assert!(r.pvalue > 0.5, "{r:?}");
    }

    #[test]
    fn integer_division_helpers() {
        assert_eq!(floor_div(-7, 2), -4);
        assert_eq!(floor_div(7, 2), 3);
        assert_eq!(ceil_div(7, 2), 4);
        assert_eq!(ceil_div(-7, 2), -3);
        assert_eq!(ceil_div(8, 2), 4);
    }
}
