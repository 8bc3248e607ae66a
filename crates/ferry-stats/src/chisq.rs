//! Pearson's chi-square tests: goodness of fit (scipy's `chisquare`) and
//! independence in a contingency table (scipy's `chi2_contingency`).

use crate::special;
use crate::sum::np_sum;
use crate::validate;
use crate::{StatsError, TestResult};

/// The result of [`chi2_contingency`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContingencyResult {
    /// Pearson's chi-square statistic, with Yates' correction when `dof == 1`.
    pub statistic: f64,
    pub pvalue: f64,
    /// `(rows - 1) * (columns - 1)`.
    pub dof: u64,
    /// Cramér's V, `sqrt(chi2 / (n * min(rows - 1, columns - 1)))` from the
    /// statistic *without* Yates' correction (scipy's
    /// `contingency.association(table, method="cramer")`); 0 when the table
    /// has a single row or column.
    pub cramers_v: f64,
}

/// The survival function of the chi-square distribution with `df` degrees
/// of freedom (scipy's `chi2.sf(x, df)`, `special.chdtrc`).
///
/// `x <= 0` gives 1 and `x = +inf` gives 0. Errors on `df == 0` or a NaN `x`.
/// The work grows as `sqrt(min(x, df))`: some 10^4 steps at `df = 10^6`.
pub fn chi2_sf(x: f64, df: u64) -> Result<f64, StatsError> {
    if df == 0 {
        return Err(StatsError::ZeroDegreesOfFreedom);
    }
    if x.is_nan() {
        return Err(StatsError::NaN { input: "x" });
    }
    Ok(special::chi2_sf(df, x))
}

/// Pearson's chi-square goodness-of-fit test (scipy's
/// `chisquare(observed, expected)`, `ddof=0`).
///
/// `observed` counts must be finite and non-negative, `expected` finite and
/// positive, both of the same length (at least 2 categories), and their sums
/// must agree to a relative `sqrt(f64::EPSILON)` as scipy requires.
pub fn chisquare(observed: &[f64], expected: &[f64]) -> Result<TestResult, StatsError> {
    validate::non_empty("observed", observed)?;
    validate::non_empty("expected", expected)?;
    validate::same_len("observed", observed, "expected", expected)?;
    if observed.len() < 2 {
        return Err(StatsError::TooFewCategories {
            input: "observed",
            len: observed.len(),
        });
    }
    validate::non_negative("observed", observed)?;
    validate::positive("expected", expected)?;

    let obs_sum = np_sum(observed);
    let exp_sum = np_sum(expected);
    let tolerance = f64::EPSILON.sqrt();
    let relative = (obs_sum - exp_sum).abs() / obs_sum.min(exp_sum);
    if relative > tolerance || relative.is_nan() {
        return Err(StatsError::SumMismatch {
            observed: obs_sum,
            expected: exp_sum,
            relative,
            tolerance,
        });
    }

    let statistic = pearson(observed, expected);
    let df = observed.len() as u64 - 1;
    Ok(TestResult {
        statistic,
        pvalue: special::chi2_sf(df, statistic),
    })
}

/// `Σ (o - e)² / e`, summed in numpy's order.
fn pearson(observed: &[f64], expected: &[f64]) -> f64 {
    let terms: Vec<f64> = observed
        .iter()
        .zip(expected)
        .map(|(&o, &e)| {
            let d = o - e;
            d * d / e
        })
        .collect();
    np_sum(&terms)
}

/// Pearson's chi-square test of independence (scipy's
/// `chi2_contingency(table)`, with its default Yates' continuity correction
/// when `dof == 1`).
///
/// `table` is a list of rows of equal length with finite, non-negative
/// counts; no row or column may sum to 0. A table with one row or one
/// column has `dof == 0`, statistic 0 and p-value 1.
pub fn chi2_contingency(table: &[Vec<f64>]) -> Result<ContingencyResult, StatsError> {
    let Some(first) = table.first() else {
        return Err(StatsError::Empty { input: "table" });
    };
    let cols = first.len();
    if cols == 0 {
        return Err(StatsError::Empty { input: "table[0]" });
    }
    for (r, row) in table.iter().enumerate() {
        if row.len() != cols {
            return Err(StatsError::RaggedTable {
                row: r,
                len: row.len(),
                expected: cols,
            });
        }
        for (c, &x) in row.iter().enumerate() {
            if !x.is_finite() {
                return Err(StatsError::NotFinite {
                    at: format!("table[{r}][{c}]"),
                    value: x,
                });
            }
            if x < 0.0 {
                return Err(StatsError::Negative {
                    at: format!("table[{r}][{c}]"),
                    value: x,
                });
            }
        }
    }
    let rows = table.len();

    // Margins and expected frequencies as scipy computes them: row sums
    // pairwise, column sums row by row, the total over the flattened table.
    let row_sums: Vec<f64> = table.iter().map(|row| np_sum(row)).collect();
    let mut col_sums = first.clone();
    for row in &table[1..] {
        for (s, &x) in col_sums.iter_mut().zip(row) {
            *s += x;
        }
    }
    let flat: Vec<f64> = table.iter().flatten().copied().collect();
    let total = np_sum(&flat);
    if let Some(i) = row_sums.iter().position(|&s| s == 0.0) {
        return Err(StatsError::EmptyMargin {
            axis: "row",
            index: i,
        });
    }
    if let Some(j) = col_sums.iter().position(|&s| s == 0.0) {
        return Err(StatsError::EmptyMargin {
            axis: "column",
            index: j,
        });
    }
    let expected: Vec<f64> = row_sums
        .iter()
        .flat_map(|&r| col_sums.iter().map(move |&c| r * c / total))
        .collect();

    let dof = ((rows - 1) * (cols - 1)) as u64;
    if dof == 0 {
        return Ok(ContingencyResult {
            statistic: 0.0,
            pvalue: 1.0,
            dof,
            cramers_v: 0.0,
        });
    }

    let uncorrected = pearson(&flat, &expected);
    let statistic = if dof == 1 {
        // Yates: move each count towards its expectation by at most 0.5.
        let corrected: Vec<f64> = flat
            .iter()
            .zip(&expected)
            .map(|(&o, &e)| {
                let diff = e - o;
                let direction = if diff > 0.0 {
                    1.0
                } else if diff < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                o + diff.abs().min(0.5) * direction
            })
            .collect();
        pearson(&corrected, &expected)
    } else {
        uncorrected
    };
    let k = (rows.min(cols) - 1) as f64;
    Ok(ContingencyResult {
        statistic,
        pvalue: special::chi2_sf(dof, statistic),
        dof,
        cramers_v: (uncorrected / total / k).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chisquare_uniform_counts() {
        let r = chisquare(&[10.0, 10.0, 10.0], &[10.0, 10.0, 10.0]).expect("valid");
        assert_eq!((r.statistic, r.pvalue), (0.0, 1.0));
        // Two categories: statistic 0.4 with df 1, so p = erfc(sqrt(0.2)).
        let r = chisquare(&[6.0, 4.0], &[5.0, 5.0]).expect("valid");
        assert!((r.statistic - 0.4).abs() < 1e-15);
        assert!((r.pvalue - special::erfc(0.2_f64.sqrt())).abs() < 1e-15);
    }

    #[test]
    fn chisquare_errors() {
        assert_eq!(
            chisquare(&[], &[]),
            Err(StatsError::Empty { input: "observed" })
        );
        assert!(matches!(
            chisquare(&[1.0, 2.0], &[1.0, 2.0, 3.0]),
            Err(StatsError::LengthMismatch { .. })
        ));
        assert!(matches!(
            chisquare(&[3.0], &[3.0]),
            Err(StatsError::TooFewCategories { len: 1, .. })
        ));
        assert!(matches!(
            chisquare(&[1.0, -1.0], &[0.0, 0.0]),
            Err(StatsError::Negative { .. })
        ));
        let e = chisquare(&[1.0, 2.0], &[1.0, 0.0]).expect_err("zero expected");
        assert_eq!(
            e.to_string(),
            "`expected[1]` is 0; it must be greater than 0"
        );
        let e = chisquare(&[1.0, f64::NAN], &[1.0, 2.0]).expect_err("nan");
        assert!(
            e.to_string()
                .starts_with("`observed[1]` is NaN, not a finite number")
        );
        assert!(matches!(
            chisquare(&[10.0, 10.0], &[10.0, 11.0]),
            Err(StatsError::SumMismatch { .. })
        ));
        assert!(matches!(
            chisquare(&[0.0, 0.0], &[1.0, 1.0]),
            Err(StatsError::SumMismatch { .. })
        ));
    }

    #[test]
    fn contingency_two_by_two_uses_yates() {
        // Expected all 5; |o - e| = 2 shrinks to 1.5: chi2 = 4 * 1.5² / 5.
        let r = chi2_contingency(&[vec![7.0, 3.0], vec![3.0, 7.0]]).expect("valid");
        assert_eq!(r.dof, 1);
        assert!((r.statistic - 1.8).abs() < 1e-15, "{r:?}");
        // Uncorrected chi2 = 3.2, n = 20: V = sqrt(0.16).
        assert!((r.cramers_v - 0.4).abs() < 1e-15, "{r:?}");
    }

    #[test]
    fn contingency_degenerate_and_errors() {
        let r = chi2_contingency(&[vec![1.0, 2.0, 3.0]]).expect("valid");
        assert_eq!(
            (r.statistic, r.pvalue, r.dof, r.cramers_v),
            (0.0, 1.0, 0, 0.0)
        );
        assert_eq!(
            chi2_contingency(&[]),
            Err(StatsError::Empty { input: "table" })
        );
        assert_eq!(
            chi2_contingency(&[vec![1.0, 2.0], vec![3.0]]),
            Err(StatsError::RaggedTable {
                row: 1,
                len: 1,
                expected: 2
            })
        );
        let e = chi2_contingency(&[vec![1.0, 0.0], vec![3.0, 0.0]]).expect_err("empty column");
        assert_eq!(
            e.to_string(),
            "`table` column 1 sums to 0, so its expected frequencies are 0\n  hint: drop empty rows and columns before calling"
        );
        let e = chi2_contingency(&[vec![1.0, -2.0], vec![3.0, 1.0]]).expect_err("negative");
        assert_eq!(
            e.to_string(),
            "`table[0][1]` is -2; it must not be negative"
        );
    }

    #[test]
    fn chi2_sf_errors() {
        assert_eq!(chi2_sf(1.0, 0), Err(StatsError::ZeroDegreesOfFreedom));
        assert_eq!(chi2_sf(f64::NAN, 3), Err(StatsError::NaN { input: "x" }));
        assert_eq!(chi2_sf(-1.0, 3), Ok(1.0));
    }
}
