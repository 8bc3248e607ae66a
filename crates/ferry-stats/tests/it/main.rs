//! Replays `tests/vectors/vectors.json` (scipy's answers, written by
//! `tests/vectors/gen.py`) and requires every output to agree to 1e-9
//! relative. Run with `--no-capture` to see the worst error per function.

use std::sync::OnceLock;

use ferry_stats::{KsMethod, StatsError};
use serde_json::Value;

const RTOL: f64 = 1e-9;

fn vectors() -> &'static Value {
    static VECTORS: OnceLock<Value> = OnceLock::new();
    VECTORS.get_or_init(|| {
        serde_json::from_str(include_str!("../vectors/vectors.json"))
            .expect("vectors.json is valid JSON")
    })
}

fn section(name: &str) -> &'static [Value] {
    vectors()[name]
        .as_array()
        .unwrap_or_else(|| panic!("vectors.json has no `{name}` list"))
}

fn num(case: &Value, key: &str) -> f64 {
    case[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {case}"))
}

fn uint(case: &Value, key: &str) -> u64 {
    case[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not an unsigned integer in {case}"))
}

fn floats(case: &Value, key: &str) -> Vec<f64> {
    case[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not a list in {case}"))
        .iter()
        .map(|v| v.as_f64().expect("numbers only"))
        .collect()
}

fn name(case: &Value) -> String {
    match case.get("name").and_then(Value::as_str) {
        Some(n) => n.to_owned(),
        None => {
            // Cases without a name are identified by their scalar inputs.
            let mut parts = Vec::new();
            if let Some(obj) = case.as_object() {
                for (k, v) in obj {
                    if v.is_number() || v.is_null() {
                        parts.push(format!("{k}={v}"));
                    }
                }
            }
            parts.join(" ")
        }
    }
}

/// `|got - want| / max(|got|, |want|)`; below the smallest normal double
/// the difference is measured at that scale instead (subnormals carry too
/// few digits for a relative comparison).
fn rel_err(got: f64, want: f64) -> f64 {
    if got == want {
        return 0.0;
    }
    if !got.is_finite() || !want.is_finite() {
        return f64::INFINITY;
    }
    (got - want).abs() / got.abs().max(want.abs()).max(f64::MIN_POSITIVE)
}

/// Collects the comparisons of one function and fails with every mismatch.
struct Check {
    function: &'static str,
    count: usize,
    worst: f64,
    worst_at: String,
    failures: Vec<String>,
}

impl Check {
    fn new(function: &'static str) -> Check {
        Check {
            function,
            count: 0,
            worst: 0.0,
            worst_at: String::new(),
            failures: Vec::new(),
        }
    }

    fn close(&mut self, case: &str, what: &str, got: f64, want: f64) {
        let err = rel_err(got, want);
        self.count += 1;
        if err > self.worst || self.worst_at.is_empty() {
            self.worst = err;
            self.worst_at = format!("{case}: {what}");
        }
        if err.is_nan() || err > RTOL {
            self.failures.push(format!(
                "{case}: {what} = {got:e}, scipy {want:e} (relative error {err:e})"
            ));
        }
    }

    fn fail(&mut self, case: &str, message: String) {
        self.failures.push(format!("{case}: {message}"));
    }

    fn finish(self) {
        eprintln!(
            "{}: {} values, worst relative error {:e} at {}",
            self.function, self.count, self.worst, self.worst_at
        );
        assert!(self.count > 0, "{}: no vectors", self.function);
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} values differ from scipy by more than {RTOL:e} relative:\n{}",
            self.function,
            self.failures.len(),
            self.count,
            self.failures.join("\n")
        );
    }
}

fn check_ks(section_name: &str, check: &mut Check) {
    for case in section(section_name) {
        let case_name = format!("{section_name} `{}`", name(case));
        let a = floats(case, "a");
        let b = floats(case, "b");
        let r = match ferry_stats::ks_2samp(&a, &b) {
            Ok(r) => r,
            Err(e) => {
                check.fail(&case_name, format!("error: {e}"));
                continue;
            }
        };
        check.close(&case_name, "statistic", r.statistic, num(case, "statistic"));
        check.close(&case_name, "pvalue", r.pvalue, num(case, "pvalue"));
        let want = match case["method"].as_str() {
            Some("exact") => KsMethod::Exact,
            _ => KsMethod::Asymptotic,
        };
        if r.method != want {
            check.fail(&case_name, format!("method {:?}, scipy {want:?}", r.method));
        }
    }
}

#[test]
fn ks_2samp_matches_scipy() {
    let mut check = Check::new("ks_2samp");
    check_ks("ks_2samp_exact", &mut check);
    check_ks("ks_2samp_asymptotic", &mut check);
    check.finish();
}

#[test]
fn kstwo_sf_matches_scipy() {
    let mut check = Check::new("kstwo_sf");
    for case in section("kstwo_sf") {
        let case_name = format!("kstwo_sf {}", name(case));
        match ferry_stats::kstwo_sf(num(case, "d"), uint(case, "n")) {
            Ok(sf) => check.close(&case_name, "sf", sf, num(case, "sf")),
            Err(e) => check.fail(&case_name, format!("error: {e}")),
        }
    }
    check.finish();
}

#[test]
fn chi2_sf_matches_scipy() {
    let mut check = Check::new("chi2_sf");
    for case in section("chi2_sf") {
        let case_name = format!("chi2_sf {}", name(case));
        match ferry_stats::chi2_sf(num(case, "x"), uint(case, "df")) {
            Ok(sf) => check.close(&case_name, "sf", sf, num(case, "sf")),
            Err(e) => check.fail(&case_name, format!("error: {e}")),
        }
    }
    check.finish();
}

#[test]
fn chisquare_matches_scipy() {
    let mut check = Check::new("chisquare");
    for case in section("chisquare") {
        let case_name = format!("chisquare `{}`", name(case));
        let obs = floats(case, "observed");
        let exp = floats(case, "expected");
        match ferry_stats::chisquare(&obs, &exp) {
            Ok(r) => {
                check.close(&case_name, "statistic", r.statistic, num(case, "statistic"));
                check.close(&case_name, "pvalue", r.pvalue, num(case, "pvalue"));
            }
            Err(e) => check.fail(&case_name, format!("error: {e}")),
        }
    }
    check.finish();
}

#[test]
fn chi2_contingency_matches_scipy() {
    let mut check = Check::new("chi2_contingency");
    for case in section("chi2_contingency") {
        let case_name = format!("chi2_contingency `{}`", name(case));
        let table: Vec<Vec<f64>> = case["table"]
            .as_array()
            .expect("table is a list of rows")
            .iter()
            .map(|row| {
                row.as_array()
                    .expect("rows are lists")
                    .iter()
                    .map(|v| v.as_f64().expect("numbers only"))
                    .collect()
            })
            .collect();
        match ferry_stats::chi2_contingency(&table) {
            Ok(r) => {
                check.close(&case_name, "statistic", r.statistic, num(case, "statistic"));
                check.close(&case_name, "pvalue", r.pvalue, num(case, "pvalue"));
                check.close(&case_name, "cramers_v", r.cramers_v, num(case, "cramers_v"));
                if r.dof != uint(case, "dof") {
                    check.fail(&case_name, format!("dof {}, scipy {}", r.dof, case["dof"]));
                }
            }
            Err(e) => check.fail(&case_name, format!("error: {e}")),
        }
    }
    check.finish();
}

#[test]
fn wasserstein_distance_matches_scipy() {
    let mut check = Check::new("wasserstein_distance");
    for case in section("wasserstein_distance") {
        let case_name = format!("wasserstein_distance `{}`", name(case));
        match ferry_stats::wasserstein_distance(&floats(case, "u"), &floats(case, "v")) {
            Ok(d) => check.close(&case_name, "distance", d, num(case, "distance")),
            Err(e) => check.fail(&case_name, format!("error: {e}")),
        }
    }
    check.finish();
}

#[test]
fn jensenshannon_matches_scipy() {
    let mut check = Check::new("jensenshannon");
    for case in section("jensenshannon") {
        let case_name = format!("jensenshannon `{}`", name(case));
        let base = case["base"].as_f64();
        match ferry_stats::jensenshannon(&floats(case, "p"), &floats(case, "q"), base) {
            Ok(d) => check.close(&case_name, "distance", d, num(case, "distance")),
            Err(e) => check.fail(&case_name, format!("error: {e}")),
        }
    }
    check.finish();
}

#[test]
fn psi_matches_numpy() {
    let mut check = Check::new("psi");
    for case in section("psi") {
        let case_name = format!("psi `{}`", name(case));
        match ferry_stats::psi(&floats(case, "expected"), &floats(case, "actual")) {
            Ok(v) => check.close(&case_name, "psi", v, num(case, "psi")),
            Err(e) => check.fail(&case_name, format!("error: {e}")),
        }
    }
    check.finish();
}

#[test]
fn two_proportion_z_test_matches_scipy() {
    let mut check = Check::new("two_proportion_z_test");
    for case in section("two_proportion_z_test") {
        let case_name = format!("two_proportion_z_test {}", name(case));
        let r = ferry_stats::two_proportion_z_test(
            uint(case, "successes_a"),
            uint(case, "n_a"),
            uint(case, "successes_b"),
            uint(case, "n_b"),
        );
        match r {
            Ok(r) => {
                check.close(&case_name, "statistic", r.statistic, num(case, "statistic"));
                check.close(&case_name, "pvalue", r.pvalue, num(case, "pvalue"));
            }
            Err(e) => check.fail(&case_name, format!("error: {e}")),
        }
    }
    check.finish();
}

#[test]
fn normal_sf_matches_scipy() {
    let mut check = Check::new("normal_sf");
    for case in section("normal_sf") {
        let case_name = format!("normal_sf {}", name(case));
        match ferry_stats::normal_sf(num(case, "z")) {
            Ok(sf) => check.close(&case_name, "sf", sf, num(case, "sf")),
            Err(e) => check.fail(&case_name, format!("error: {e}")),
        }
    }
    check.finish();
}

#[test]
fn every_function_rejects_bad_input_without_panicking() {
    let nan = f64::NAN;
    assert_eq!(
        ferry_stats::ks_2samp(&[], &[1.0]),
        Err(StatsError::Empty { input: "a" })
    );
    assert!(matches!(
        ferry_stats::ks_2samp(&[1.0], &[nan]),
        Err(StatsError::NotFinite { .. })
    ));
    assert_eq!(
        ferry_stats::kstwo_sf(0.5, 0),
        Err(StatsError::ZeroSampleSize)
    );
    assert_eq!(
        ferry_stats::kstwo_sf(nan, 3),
        Err(StatsError::NaN { input: "d" })
    );
    assert!(ferry_stats::chisquare(&[1.0, nan], &[1.0, 1.0]).is_err());
    assert!(ferry_stats::chi2_contingency(&[vec![nan, 1.0], vec![1.0, 1.0]]).is_err());
    assert!(ferry_stats::wasserstein_distance(&[1.0], &[]).is_err());
    assert!(ferry_stats::jensenshannon(&[1.0], &[1.0, 2.0], None).is_err());
    assert!(ferry_stats::psi(&[0.5, 0.5], &[0.5, -0.5]).is_err());
    assert!(ferry_stats::two_proportion_z_test(3, 2, 1, 1).is_err());
    assert!(ferry_stats::normal_sf(nan).is_err());
    assert!(ferry_stats::chi2_sf(1.0, 0).is_err());

    let e = ferry_stats::ks_2samp(&[1.0, 2.0], &[3.0, f64::INFINITY]).expect_err("inf");
    assert_eq!(
        e.to_string(),
        "`b[1]` is inf, not a finite number\n  hint: drop NaN and null values before calling"
    );
    let e = ferry_stats::psi(&[0.5, 0.5], &[0.25]).expect_err("lengths");
    assert_eq!(e.to_string(), "`expected` has 2 values but `actual` has 1");
}

/// ROC AUC against sklearn (`roc_auc_score(y, s)`, 1.9.1) on tied scores,
/// and against counting every (positive, negative) pair on seeded samples.
#[test]
fn roc_auc_matches_sklearn_and_pair_counting() {
    let y = [0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1].map(|v| v == 1);
    let s = [0.3, 0.7, 0.7, 0.7, 0.1, 0.0, 0.3, 1.0, 0.5, 0.5, 0.3];
    let mut check = Check::new("roc_auc");
    check.close(
        "tied",
        "auc",
        ferry_stats::roc_auc(&s, &y).unwrap(),
        0.6833333333333333,
    );
    let y = [1, 0, 0, 0, 1, 1, 0].map(|v| v == 1);
    let s = [1.0, 0.0, 0.5, 1.0, 1.0, 0.25, 0.0];
    check.close(
        "clipped",
        "auc",
        ferry_stats::roc_auc(&s, &y).unwrap(),
        0.75,
    );
    let mut rng = ferry_stats::Rng::new(3);
    for case in 0..40 {
        let n = 2 + rng.below(300) as usize;
        // Few distinct scores, so ties are everywhere.
        let levels = 1 + rng.below(12);
        let s: Vec<f64> = (0..n).map(|_| rng.below(levels) as f64 / 4.0).collect();
        let mut y: Vec<bool> = (0..n).map(|_| rng.below(3) == 0).collect();
        y[0] = true;
        y[1] = false;
        let (mut won, mut pairs) = (0.0, 0.0);
        for i in (0..n).filter(|&i| y[i]) {
            for j in (0..n).filter(|&j| !y[j]) {
                pairs += 1.0;
                won += if s[i] > s[j] {
                    1.0
                } else if s[i] == s[j] {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let got = ferry_stats::roc_auc(&s, &y).unwrap();
        check.close(&format!("seeded {case}"), "auc", got, won / pairs);
    }
    check.finish();
    // numpy.percentile([0.51, 0.49, 0.6, 0.55, 0.58, 0.47, 0.5], 95) == 0.594.
    let p = ferry_stats::percentile(&[0.51, 0.49, 0.6, 0.55, 0.58, 0.47, 0.5], 0.95).unwrap();
    assert!((p - 0.594).abs() < 1e-12, "{p}");
}
