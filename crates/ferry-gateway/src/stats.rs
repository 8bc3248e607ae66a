//! Per-version measurements: lock-free counters the request path bumps, and
//! snapshots the controller subtracts to get a step's window. The same
//! counters feed `/metrics`.

use crate::canary::Window;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Latency bucket upper bounds in seconds: 1, 1.25, 1.5, 2, 2.5, 3, 4, 5,
/// 6, 7.5 times each power of ten from 10 µs to 100 s (a p99 within ~12%),
/// which include Prometheus' usual 1-2.5-5 series.
pub fn bucket_bounds() -> &'static [f64] {
    static B: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        let mut v = Vec::new();
        for e in -5..=1 {
            for m in [1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.5] {
                v.push(m * 10f64.powi(e));
            }
        }
        v.push(100.0);
        v
    })
}

/// The buckets `/metrics` exposes (a subset of [`bucket_bounds`]).
pub const EXPOSED_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Classes counted per version at most (a regressor mistaken for a
/// classifier must not grow without bound).
const MAX_CLASSES: usize = 256;

#[derive(Debug)]
pub struct VersionStats {
    /// Answers by status code (index = code - 100).
    codes: Box<[AtomicU64]>,
    /// Latency histogram over `bucket_bounds()` plus +Inf.
    buckets: Box<[AtomicU64]>,
    latency_sum_us: AtomicU64,
    classes: Mutex<HashMap<String, u64>>,
    /// Numeric predictions: count, sum and sum of squares (f64 bits).
    numeric: Mutex<(u64, f64, f64)>,
    labelled: AtomicU64,
    correct: AtomicU64,
    compared: AtomicU64,
    agreed: AtomicU64,
    /// CPU time and dollars spent serving it (`usage.rs`), in
    /// microseconds and nano-dollars.
    serving_cpu_us: AtomicU64,
    serving_nano_usd: AtomicU64,
}

impl Default for VersionStats {
    fn default() -> Self {
        Self {
            codes: (0..500).map(|_| AtomicU64::new(0)).collect(),
            buckets: (0..=bucket_bounds().len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency_sum_us: AtomicU64::new(0),
            classes: Mutex::new(HashMap::new()),
            numeric: Mutex::new((0, 0.0, 0.0)),
            labelled: AtomicU64::new(0),
            correct: AtomicU64::new(0),
            compared: AtomicU64::new(0),
            agreed: AtomicU64::new(0),
            serving_cpu_us: AtomicU64::new(0),
            serving_nano_usd: AtomicU64::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl VersionStats {
    /// An answer: its status, and its latency unless the client was at
    /// fault (4xx answers are fast and say nothing of the version).
    pub fn record(&self, status: u16, seconds: f64) {
        let i = usize::from(status.clamp(100, 599) - 100);
        self.codes[i].fetch_add(1, Relaxed);
        if (400..500).contains(&status) {
            return;
        }
        let b = bucket_bounds().partition_point(|&ub| ub < seconds);
        self.buckets[b].fetch_add(1, Relaxed);
        self.latency_sum_us
            .fetch_add((seconds * 1e6).round() as u64, Relaxed);
    }

    pub fn record_classes<'a>(&self, labels: impl Iterator<Item = &'a str>) {
        // A batch's classes are few: counted here first, so that the lock
        // is held for one lookup per class, not one per row. Past
        // `LOCAL` distinct labels, the rest are counted under the lock.
        const LOCAL: usize = 16;
        let mut counts: Vec<(&str, u64)> = Vec::new();
        let mut rest = Vec::new();
        for l in labels {
            if let Some((_, n)) = counts.iter_mut().find(|(c, _)| *c == l) {
                *n += 1;
            } else if counts.len() < LOCAL {
                counts.push((l, 1));
            } else {
                rest.push(l);
            }
        }
        let mut m = lock(&self.classes);
        let ones = rest.into_iter().map(|l| (l, 1));
        for (l, k) in counts.into_iter().chain(ones) {
            if let Some(n) = m.get_mut(l) {
                *n += k;
            } else if m.len() < MAX_CLASSES {
                m.insert(l.to_owned(), k);
            }
        }
    }

    pub fn record_numeric(&self, values: impl Iterator<Item = f64>) {
        let mut n = lock(&self.numeric);
        for v in values.filter(|v| v.is_finite()) {
            n.0 += 1;
            n.1 += v;
            n.2 += v * v;
        }
    }

    pub fn record_feedback(&self, labelled: u64, correct: u64) {
        self.labelled.fetch_add(labelled, Relaxed);
        self.correct.fetch_add(correct, Relaxed);
    }

    pub fn record_comparison(&self, agreed: bool) {
        self.compared.fetch_add(1, Relaxed);
        if agreed {
            self.agreed.fetch_add(1, Relaxed);
        }
    }

    /// Predictions answered (2xx), and the time every answer took, in
    /// microseconds.
    pub fn answered(&self) -> (u64, u64) {
        let ok = self.codes[100..200].iter().map(|c| c.load(Relaxed)).sum();
        (ok, self.latency_sum_us.load(Relaxed))
    }

    /// CPU time and its cost spent answering this version.
    pub fn add_serving(&self, cpu_seconds: f64, usd: f64) {
        self.serving_cpu_us
            .fetch_add((cpu_seconds * 1e6).round() as u64, Relaxed);
        self.serving_nano_usd
            .fetch_add((usd * 1e9).round() as u64, Relaxed);
    }

    /// What [`VersionStats::add_serving`] added up to: CPU seconds, dollars.
    pub fn serving(&self) -> (f64, f64) {
        (
            self.serving_cpu_us.load(Relaxed) as f64 / 1e6,
            self.serving_nano_usd.load(Relaxed) as f64 / 1e9,
        )
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            codes: self.codes.iter().map(|c| c.load(Relaxed)).collect(),
            buckets: self.buckets.iter().map(|c| c.load(Relaxed)).collect(),
            latency_sum_us: self.latency_sum_us.load(Relaxed),
            classes: lock(&self.classes).clone(),
            numeric: *lock(&self.numeric),
            labelled: self.labelled.load(Relaxed),
            correct: self.correct.load(Relaxed),
            compared: self.compared.load(Relaxed),
            agreed: self.agreed.load(Relaxed),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub codes: Vec<u64>,
    pub buckets: Vec<u64>,
    pub latency_sum_us: u64,
    pub classes: HashMap<String, u64>,
    pub numeric: (u64, f64, f64),
    pub labelled: u64,
    pub correct: u64,
    pub compared: u64,
    pub agreed: u64,
}

impl Snapshot {
    pub fn requests(&self) -> u64 {
        self.codes.iter().sum()
    }

    /// Requests that reached the model: 4xx answers are the client's fault
    /// and count neither as requests nor as errors of a version.
    fn served(&self) -> (u64, u64) {
        let mut ok = 0;
        let mut err = 0;
        for (i, n) in self.codes.iter().enumerate() {
            match i + 100 {
                500..=599 => err += n,
                400..=499 => {}
                _ => ok += n,
            }
        }
        (ok + err, err)
    }

    /// `other` added in: what two gateways measured, as one (counts,
    /// buckets and sums add up).
    pub fn add(&mut self, other: &Snapshot) {
        let add = |a: &mut Vec<u64>, b: &[u64]| {
            if a.len() < b.len() {
                a.resize(b.len(), 0);
            }
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        };
        add(&mut self.codes, &other.codes);
        add(&mut self.buckets, &other.buckets);
        self.latency_sum_us += other.latency_sum_us;
        for (k, v) in &other.classes {
            *self.classes.entry(k.clone()).or_insert(0) += v;
        }
        self.numeric.0 += other.numeric.0;
        self.numeric.1 += other.numeric.1;
        self.numeric.2 += other.numeric.2;
        self.labelled += other.labelled;
        self.correct += other.correct;
        self.compared += other.compared;
        self.agreed += other.agreed;
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let sub = |a: &[u64], b: &[u64]| -> Vec<u64> {
            a.iter()
                .enumerate()
                .map(|(i, x)| x.saturating_sub(b.get(i).copied().unwrap_or(0)))
                .collect()
        };
        Snapshot {
            codes: sub(&self.codes, &earlier.codes),
            buckets: sub(&self.buckets, &earlier.buckets),
            latency_sum_us: self.latency_sum_us.saturating_sub(earlier.latency_sum_us),
            classes: self
                .classes
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.saturating_sub(earlier.classes.get(k).copied().unwrap_or(0)),
                    )
                })
                .filter(|(_, v)| *v > 0)
                .collect(),
            numeric: (
                self.numeric.0.saturating_sub(earlier.numeric.0),
                self.numeric.1 - earlier.numeric.1,
                self.numeric.2 - earlier.numeric.2,
            ),
            labelled: self.labelled.saturating_sub(earlier.labelled),
            correct: self.correct.saturating_sub(earlier.correct),
            compared: self.compared.saturating_sub(earlier.compared),
            agreed: self.agreed.saturating_sub(earlier.agreed),
        }
    }

    /// The `q` quantile of latency in milliseconds (linear within a bucket).
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let bounds = bucket_bounds();
        let rank = (q * total as f64).ceil().max(1.0);
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let lo = if i == 0 { 0.0 } else { bounds[i - 1] };
                let hi = bounds.get(i).copied().unwrap_or(lo * 2.0);
                let frac = (rank - seen as f64) / *n as f64;
                return Some((lo + (hi - lo) * frac) * 1e3);
            }
            seen += n;
        }
        bounds.last().map(|b| b * 1e3)
    }

    pub fn window(&self) -> Window {
        let (requests, errors) = self.served();
        let mut classes: Vec<(String, u64)> =
            self.classes.iter().map(|(k, v)| (k.clone(), *v)).collect();
        classes.sort();
        let (n, s, ss) = self.numeric;
        Window {
            requests,
            errors,
            p99_ms: self.latency_quantile_ms(0.99),
            classes,
            numeric: (n > 0).then(|| {
                let mean = s / n as f64;
                (n, mean, (ss / n as f64 - mean * mean).max(0.0))
            }),
            labelled: self.labelled,
            correct: self.correct,
            compared: self.compared,
            agreed: self.agreed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_subtract_and_quantiles_interpolate() {
        let s = VersionStats::default();
        s.record(200, 0.002);
        let base = s.snapshot();
        for _ in 0..98 {
            s.record(200, 0.001);
        }
        s.record(500, 0.001);
        s.record(200, 0.080);
        s.record(400, 5.0);
        s.record_classes(["a", "b", "a"].into_iter());
        let w = s.snapshot().since(&base).window();
        assert_eq!((w.requests, w.errors), (100, 1));
        assert_eq!(w.classes, vec![("a".into(), 2), ("b".into(), 1)]);
        // 99 of the 100 timed answers (the 4xx is not timed) took 1 ms,
        // the last 80 ms: the p99 is in the 1 ms bucket, the maximum in
        // the (75, 100] ms one.
        let p99 = w.p99_ms.unwrap();
        assert!((0.75..=1.0).contains(&p99), "{p99}");
        let p100 = s.snapshot().since(&base).latency_quantile_ms(1.0).unwrap();
        assert!((75.0..=100.0).contains(&p100), "{p100}");
    }

    #[test]
    fn exposed_buckets_are_bounds() {
        for b in EXPOSED_BUCKETS {
            assert!(bucket_bounds().iter().any(|x| (x - b).abs() < 1e-12), "{b}");
        }
    }

    #[test]
    fn classes_are_bounded() {
        let s = VersionStats::default();
        let many: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        s.record_classes(many.iter().map(String::as_str));
        assert_eq!(s.snapshot().classes.len(), MAX_CLASSES);
    }

    #[test]
    fn a_batch_of_many_classes_is_counted_exactly() {
        let s = VersionStats::default();
        // 40 distinct labels (more than a batch counts before the lock),
        // label i seen i + 1 times, interleaved.
        let labels: Vec<String> = (0..40)
            .flat_map(|round| (round..40).map(|i| format!("c{i:02}")))
            .collect();
        s.record_classes(labels.iter().map(String::as_str));
        s.record_classes(["c00", "c39"].into_iter());
        let mut got: Vec<(String, u64)> = s.snapshot().classes.into_iter().collect();
        got.sort();
        let want: Vec<(String, u64)> = (0..40)
            .map(|i| {
                (
                    format!("c{i:02}"),
                    i as u64 + 1 + u64::from(i == 0 || i == 39),
                )
            })
            .collect();
        assert_eq!(got, want);
    }
}
