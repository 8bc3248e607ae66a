//! Distances between distributions: Wasserstein-1 between two samples,
//! Jensen-Shannon between two histograms, and the population stability
//! index between two binned shares.

use crate::StatsError;
use crate::sum::np_sum;
use crate::validate;

/// The 1-D Wasserstein (earth mover's) distance between two samples with
/// equal weights (scipy's `wasserstein_distance(u, v)`): the integral of
/// `|U(x) - V(x)|` over the pooled sorted values.
///
/// The samples need not be sorted; they must be non-empty and finite.
pub fn wasserstein_distance(u: &[f64], v: &[f64]) -> Result<f64, StatsError> {
    validate::sample("u", u)?;
    validate::sample("v", v)?;
    let us = validate::sorted(u);
    let vs = validate::sorted(v);
    let all = merge_sorted(&us, &vs);

    let (nu, nv) = (us.len() as f64, vs.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut terms = Vec::with_capacity(all.len().saturating_sub(1));
    for w in all.windows(2) {
        let (x, next) = (w[0], w[1]);
        while i < us.len() && us[i] <= x {
            i += 1;
        }
        while j < vs.len() && vs[j] <= x {
            j += 1;
        }
        let cdf_gap = (i as f64 / nu - j as f64 / nv).abs();
        terms.push(cdf_gap * (next - x));
    }
    Ok(np_sum(&terms))
}

/// Two ascending samples as one ascending sample (what sorting their
/// concatenation gives, in linear time).
fn merge_sorted(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].total_cmp(&b[j]).is_le() {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// scipy's `rel_entr(x, y)` for `x, y >= 0`: `x ln(x / y)`, 0 when `x == 0`.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The Jensen-Shannon distance between two histograms (scipy's
/// `spatial.distance.jensenshannon(p, q, base)`): the square root of the
/// Jensen-Shannon divergence, natural log unless `base` is given.
///
/// `p` and `q` are normalised to sum to 1 first; their entries must be
/// finite and non-negative (zeros are fine) and each must have a positive
/// sum. Where rounding makes the divergence of nearly identical histograms
/// a tiny negative number, the distance is 0 (scipy returns NaN there).
pub fn jensenshannon(p: &[f64], q: &[f64], base: Option<f64>) -> Result<f64, StatsError> {
    validate::non_empty("p", p)?;
    validate::non_empty("q", q)?;
    validate::same_len("p", p, "q", q)?;
    validate::non_negative("p", p)?;
    validate::non_negative("q", q)?;
    if let Some(b) = base
        && !(b.is_finite() && b > 0.0 && b != 1.0)
    {
        return Err(StatsError::InvalidBase { base: b });
    }
    let p_sum = np_sum(p);
    if p_sum <= 0.0 {
        return Err(StatsError::ZeroSum { input: "p" });
    }
    let q_sum = np_sum(q);
    if q_sum <= 0.0 {
        return Err(StatsError::ZeroSum { input: "q" });
    }
    let mut left = Vec::with_capacity(p.len());
    let mut right = Vec::with_capacity(p.len());
    for (&pi, &qi) in p.iter().zip(q) {
        let (pn, qn) = (pi / p_sum, qi / q_sum);
        let m = (pn + qn) / 2.0;
        left.push(rel_entr(pn, m));
        right.push(rel_entr(qn, m));
    }
    let mut js = np_sum(&left) + np_sum(&right);
    if let Some(b) = base {
        js /= b.ln();
    }
    Ok((js / 2.0).max(0.0).sqrt())
}

/// The population stability index `Σ (a_i - e_i) ln(a_i / e_i)` between
/// the binned shares of a reference (`expected`) and a current (`actual`)
/// distribution.
///
/// Convention: the shares are used as given (normally each sums to 1), and
/// every share must be strictly positive: an empty bin makes the index
/// infinite, so the caller decides how to floor it (for example, replace 0
/// with 1e-4 and renormalise) before calling. Each term is non-negative, so
/// the index is too.
pub fn psi(expected: &[f64], actual: &[f64]) -> Result<f64, StatsError> {
    validate::non_empty("expected", expected)?;
    validate::non_empty("actual", actual)?;
    validate::same_len("expected", expected, "actual", actual)?;
    for (input, xs) in [("expected", expected), ("actual", actual)] {
        validate::finite(input, xs)?;
        if let Some(i) = xs.iter().position(|&x| x <= 0.0) {
            return Err(StatsError::NotPositiveShare {
                at: format!("{input}[{i}]"),
                value: xs[i],
            });
        }
    }
    let terms: Vec<f64> = expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| (a - e) * (a / e).ln())
        .collect();
    Ok(np_sum(&terms))
}

/// Total variation distance between two class histograms (`None` when
/// either is empty): the share of one that would have to change class to
/// match the other.
pub fn class_shift(a: &[(String, u64)], b: &[(String, u64)]) -> Option<f64> {
    let ta: u64 = a.iter().map(|x| x.1).sum();
    let tb: u64 = b.iter().map(|x| x.1).sum();
    if ta == 0 || tb == 0 {
        return None;
    }
    let mut keys: Vec<&str> = a.iter().chain(b).map(|x| x.0.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let share = |h: &[(String, u64)], t: u64, k: &str| {
        h.iter().find(|x| x.0 == k).map_or(0.0, |x| x.1 as f64) / t as f64
    };
    Some(
        keys.iter()
            .map(|k| (share(a, ta, k) - share(b, tb, k)).abs())
            .sum::<f64>()
            / 2.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_two_sorted_samples_is_sorting_them_together() {
        let a = [-3.0, 0.0, 0.0, 1.5, 7.0];
        let b = [-4.0, 0.0, 1.5, 2.0];
        let mut both = [a.as_slice(), b.as_slice()].concat();
        both.sort_by(f64::total_cmp);
        assert_eq!(merge_sorted(&a, &b), both);
        assert_eq!(merge_sorted(&[], &b), b);
        assert_eq!(merge_sorted(&a, &[]), a);
    }

    #[test]
    fn wasserstein_simple() {
        // Shifting a sample by 2 moves all mass by 2.
        let d = wasserstein_distance(&[0.0, 1.0, 3.0], &[5.0, 2.0, 3.0]).expect("valid");
        assert!((d - 2.0).abs() < 1e-15, "{d}");
        assert_eq!(wasserstein_distance(&[1.0], &[1.0]), Ok(0.0));
        // Ties and different sizes: U jumps 0 -> 1 at 0, V is 0.5 at 0 and 1 at 1.
        let d = wasserstein_distance(&[0.0, 0.0], &[0.0, 1.0, 1.0, 0.0]).expect("valid");
        assert!((d - 0.5).abs() < 1e-15, "{d}");
        assert_eq!(
            wasserstein_distance(&[], &[1.0]),
            Err(StatsError::Empty { input: "u" })
        );
        assert!(matches!(
            wasserstein_distance(&[1.0], &[f64::INFINITY]),
            Err(StatsError::NotFinite { .. })
        ));
    }

    #[test]
    fn jensenshannon_simple() {
        assert_eq!(jensenshannon(&[1.0, 2.0], &[2.0, 4.0], None), Ok(0.0));
        // Disjoint supports: divergence ln 2, distance sqrt(ln 2) (1 in base 2).
        let d = jensenshannon(&[1.0, 0.0], &[0.0, 3.0], None).expect("valid");
        assert!((d - std::f64::consts::LN_2.sqrt()).abs() < 1e-15, "{d}");
        let d = jensenshannon(&[1.0, 0.0], &[0.0, 3.0], Some(2.0)).expect("valid");
        assert!((d - 1.0).abs() < 1e-15, "{d}");
        assert_eq!(
            jensenshannon(&[1.0], &[1.0], Some(1.0)),
            Err(StatsError::InvalidBase { base: 1.0 })
        );
        assert_eq!(
            jensenshannon(&[0.0, 0.0], &[1.0, 1.0], None),
            Err(StatsError::ZeroSum { input: "p" })
        );
        assert!(matches!(
            jensenshannon(&[1.0, -1.0], &[1.0, 1.0], None),
            Err(StatsError::Negative { .. })
        ));
    }

    #[test]
    fn psi_simple() {
        assert_eq!(psi(&[0.5, 0.5], &[0.5, 0.5]), Ok(0.0));
        let v = psi(&[0.5, 0.5], &[0.25, 0.75]).expect("valid");
        let want = -0.25 * 0.5_f64.ln() + 0.25 * 1.5_f64.ln();
        assert!((v - want).abs() < 1e-15, "{v}");
        let e = psi(&[0.5, 0.5], &[1.0, 0.0]).expect_err("zero share");
        assert!(
            e.to_string()
                .starts_with("`actual[1]` is 0; shares must be greater than 0")
        );
        assert!(matches!(
            psi(&[1.0], &[0.5, 0.5]),
            Err(StatsError::LengthMismatch { .. })
        ));
    }
}
