//! ROC AUC, exact with ties (sklearn's `roc_auc_score` for two classes),
//! the quantile of a random scorer's ROC AUC (Evidently's bar for a text
//! domain classifier on small samples), and numpy's default percentile.

use crate::{Rng, StatsError, validate};

/// The area under the ROC curve of `scores` for telling the `positive`
/// items from the others: the probability that a random positive scores
/// above a random negative, ties counting half (the Mann-Whitney U over
/// `n_pos * n_neg`, with midranks). Equal to sklearn's
/// `roc_auc_score(positive, scores)`. `O(n log n)`.
///
/// Errors on empty or mismatched inputs, a non-finite score, or labels of
/// one class only.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Result<f64, StatsError> {
    validate::non_empty("scores", scores)?;
    if scores.len() != positive.len() {
        return Err(StatsError::LengthMismatch {
            left: "scores",
            left_len: scores.len(),
            right: "positive",
            right_len: positive.len(),
        });
    }
    validate::finite("scores", scores)?;
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(StatsError::OneClass { input: "positive" });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| (scores[a] + 0.0).total_cmp(&(scores[b] + 0.0)));
    // Ranks from 1; a run of ties shares the mean of its ranks.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let mid = (i + 1 + j) as f64 / 2.0;
        let pos = order[i..j].iter().filter(|&&k| positive[k]).count();
        rank_sum += mid * pos as f64;
        i = j;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The `q` quantile of the ROC AUC that a random scorer (continuous scores,
/// no ties) reaches on `n_pos` positives and `n_neg` negatives, from
/// `draws` seeded draws: what Evidently's `roc_auc_random_classifier_
/// percentile` estimates with 1000 draws of `np.random.rand` (ferry draws
/// the positives' ranks directly, `O(min(n_pos, n_neg))` a draw). The
/// quantile interpolates as [`percentile`] does.
pub fn random_roc_auc_quantile(
    n_pos: u64,
    n_neg: u64,
    q: f64,
    draws: usize,
    seed: u64,
) -> Result<f64, StatsError> {
    if n_pos == 0 || n_neg == 0 {
        return Err(StatsError::OneClass {
            input: "n_pos, n_neg",
        });
    }
    if draws == 0 {
        return Err(StatsError::Empty { input: "draws" });
    }
    share("q", q)?;
    let n = n_pos + n_neg;
    let Ok(n_items) = usize::try_from(n) else {
        return Err(StatsError::NotFinite {
            at: "n_pos + n_neg".into(),
            value: n as f64,
        });
    };
    // Draw the smaller class's ranks; the other's AUC is one minus it.
    let (k, other, flip) = if n_pos <= n_neg {
        (n_pos, n_neg, false)
    } else {
        (n_neg, n_pos, true)
    };
    let mut rng = Rng::new(seed);
    let mut pool: Vec<u64> = (1..=n).collect();
    let mut swaps: Vec<usize> = Vec::with_capacity(k as usize);
    let (kf, of) = (k as f64, other as f64);
    let mut aucs = Vec::with_capacity(draws);
    for _ in 0..draws {
        // A partial Fisher-Yates picks k of the n ranks; undone afterwards.
        swaps.clear();
        let mut sum = 0u64;
        for i in 0..k as usize {
            let j = i + rng.below((n_items - i) as u64) as usize;
            pool.swap(i, j);
            swaps.push(j);
            sum += pool[i];
        }
        for (i, &j) in swaps.iter().enumerate().rev() {
            pool.swap(i, j);
        }
        let auc = (sum as f64 - kf * (kf + 1.0) / 2.0) / (kf * of);
        aucs.push(if flip { 1.0 - auc } else { auc });
    }
    percentile(&aucs, q)
}

/// The `q` quantile (`0..=1`) of `values` as `numpy.percentile(values,
/// 100 * q)` gives it by default: linear interpolation between the two
/// nearest order statistics.
pub fn percentile(values: &[f64], q: f64) -> Result<f64, StatsError> {
    validate::sample("values", values)?;
    share("q", q)?;
    let v = validate::sorted(values);
    let h = (v.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let t = h - lo as f64;
    let (a, b) = (v[lo], v[(lo + 1).min(v.len() - 1)]);
    // numpy's `_lerp`, which is exact at both ends.
    let d = b - a;
    Ok(if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    })
}

fn share(at: &'static str, q: f64) -> Result<(), StatsError> {
    if (0.0..=1.0).contains(&q) {
        Ok(())
    } else {
        Err(StatsError::NotAShare {
            at: at.into(),
            value: q,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_auc_by_hand() {
        // Perfect, reversed, and every pair tied.
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Ok(1.0)
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Ok(0.0)
        );
        assert_eq!(roc_auc(&[0.5; 4], &[false, true, false, true]), Ok(0.5));
        // sklearn: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75.
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Ok(0.75)
        );
        // One tie across the classes: pairs (1, 1) half, the rest won:
        // positives {1, 2} vs negatives {0, 1} -> (1 + 0.5 + 1 + 1) / 4.
        assert_eq!(
            roc_auc(&[0.0, 1.0, 1.0, 2.0], &[false, false, true, true]),
            Ok(0.875)
        );
    }

    #[test]
    fn roc_auc_refuses_bad_input() {
        assert_eq!(
            roc_auc(&[], &[]),
            Err(StatsError::Empty { input: "scores" })
        );
        assert_eq!(
            roc_auc(&[1.0, 2.0], &[true, true]),
            Err(StatsError::OneClass { input: "positive" })
        );
        assert!(matches!(
            roc_auc(&[1.0], &[true, false]),
            Err(StatsError::LengthMismatch { .. })
        ));
        assert!(matches!(
            roc_auc(&[1.0, f64::NAN], &[true, false]),
            Err(StatsError::NotFinite { .. })
        ));
    }

    #[test]
    fn percentile_interpolates_as_numpy() {
        // numpy.percentile([1, 2, 3, 4], 95) == 3.85; 50 -> 2.5.
        let v = [4.0, 1.0, 3.0, 2.0];
        assert!((percentile(&v, 0.95).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(percentile(&v, 0.5), Ok(2.5));
        assert_eq!(percentile(&v, 0.0), Ok(1.0));
        assert_eq!(percentile(&v, 1.0), Ok(4.0));
        assert_eq!(percentile(&[7.0], 0.3), Ok(7.0));
        assert!(matches!(
            percentile(&v, 1.5),
            Err(StatsError::NotAShare { .. })
        ));
    }

    #[test]
    fn a_random_scorers_quantile_is_near_the_normal_approximation() {
        // U is about normal with mean 1/2 and variance (n+1) / (12 p n) in
        // AUC units: for 100 vs 100 the 95th percentile is ~0.5 + 1.645 *
        // 0.0409 = 0.567.
        let q = random_roc_auc_quantile(100, 100, 0.95, 2000, 42).unwrap();
        assert!((q - 0.567).abs() < 0.01, "{q}");
        // Deterministic, and symmetric in the classes.
        assert_eq!(
            random_roc_auc_quantile(30, 70, 0.95, 1000, 42),
            random_roc_auc_quantile(30, 70, 0.95, 1000, 42)
        );
        let a = random_roc_auc_quantile(30, 70, 0.5, 1000, 1).unwrap();
        assert!((a - 0.5).abs() < 0.02, "{a}");
        assert!(random_roc_auc_quantile(0, 5, 0.95, 10, 1).is_err());
    }
}
