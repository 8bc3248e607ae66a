//! The normal distribution and the two-proportion z-test.

use crate::special::ndtr;
use crate::{StatsError, TestResult};

/// The standard normal survival function `Pr(Z >= z)` (scipy's
/// `norm.sf(z)`, computed as cephes `ndtr(-z)`). Errors on NaN.
pub fn normal_sf(z: f64) -> Result<f64, StatsError> {
    if z.is_nan() {
        return Err(StatsError::NaN { input: "z" });
    }
    Ok(ndtr(-z))
}

/// The two-sided two-proportion z-test with a pooled proportion:
/// `z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b))` with
/// `p = (successes_a + successes_b) / (n_a + n_b)`, and
/// `pvalue = 2 · normal_sf(|z|)`.
///
/// When both samples are all successes or all failures the proportions are
/// equal and there is no spread: the statistic is 0 and the p-value 1.
pub fn two_proportion_z_test(
    successes_a: u64,
    n_a: u64,
    successes_b: u64,
    n_b: u64,
) -> Result<TestResult, StatsError> {
    for (successes, count, trials, n) in [
        ("successes_a", successes_a, "n_a", n_a),
        ("successes_b", successes_b, "n_b", n_b),
    ] {
        if n == 0 {
            return Err(StatsError::NoTrials { input: trials });
        }
        if count > n {
            return Err(StatsError::SuccessesExceedTrials {
                successes,
                count,
                trials,
                n,
            });
        }
    }
    let (xa, na, xb, nb) = (
        successes_a as f64,
        n_a as f64,
        successes_b as f64,
        n_b as f64,
    );
    let (pa, pb) = (xa / na, xb / nb);
    let pooled = (xa + xb) / (na + nb);
    let se = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    if se == 0.0 {
        return Ok(TestResult {
            statistic: 0.0,
            pvalue: 1.0,
        });
    }
    let z = (pa - pb) / se;
    Ok(TestResult {
        statistic: z,
        pvalue: 2.0 * ndtr(-z.abs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_sf_values() {
        assert_eq!(normal_sf(0.0), Ok(0.5));
        assert_eq!(normal_sf(f64::INFINITY), Ok(0.0));
        assert_eq!(normal_sf(f64::NEG_INFINITY), Ok(1.0));
        let v = normal_sf(1.959_963_984_540_054).expect("finite");
        assert!((v - 0.025).abs() < 1e-16, "{v}");
        assert_eq!(normal_sf(f64::NAN), Err(StatsError::NaN { input: "z" }));
    }

    #[test]
    fn z_test() {
        let r = two_proportion_z_test(50, 100, 50, 100).expect("valid");
        assert_eq!((r.statistic, r.pvalue), (0.0, 1.0));
        let r = two_proportion_z_test(0, 10, 0, 20).expect("valid");
        assert_eq!((r.statistic, r.pvalue), (0.0, 1.0));
        // p = 0.5 pooled, se = sqrt(0.25 * 0.02) = sqrt(0.005).
        let r = two_proportion_z_test(60, 100, 40, 100).expect("valid");
        assert!(
            (r.statistic - 0.2 / 0.005_f64.sqrt()).abs() < 1e-14,
            "{r:?}"
        );
        assert!(r.pvalue > 0.0046 && r.pvalue < 0.0047, "{r:?}");
        assert_eq!(
            two_proportion_z_test(1, 0, 1, 1),
            Err(StatsError::NoTrials { input: "n_a" })
        );
        let e = two_proportion_z_test(1, 1, 3, 2).expect_err("too many");
        assert_eq!(
            e.to_string(),
            "`successes_b` is 3 but `n_b` is 2; successes cannot exceed trials"
        );
    }
}
