//! What serving costs. Each tick the gateway reads the CPU time it and its
//! process runtimes used since the last, and divides it over the versions
//! that answered meanwhile by the time their answers took (a version whose
//! requests take twice as long is taken to use twice the CPU); priced at
//! the vCPU-hour of the gateway's machine class. Each version's share goes
//! to `/metrics` and, per UTC day, to the store (`serving_usage`), where
//! `ferry cost --by model` divides it over the predictions answered. CPU
//! spent while nothing was answered (idle, loading) is nobody's.

use crate::gateway::Served;
use ferry_metadata::ServingUsage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const DAY_MS: i64 = 86_400_000;

/// The gateway's measurements between ticks.
pub struct Usage {
    /// Dollars per CPU-second.
    usd_per_cpu_s: f64,
    last: Mutex<Last>,
    cpu: Box<dyn Fn() -> f64 + Send + Sync>,
}

#[derive(Default)]
struct Last {
    cpu_s: f64,
    /// Per version: predictions answered and their time (µs), as last read.
    seen: HashMap<(String, i64), (u64, u64)>,
}

impl Usage {
    /// Measures this process and its process runtimes, at `vcpu_hour`
    /// dollars a vCPU-hour, from now on.
    pub fn new(vcpu_hour: f64) -> Self {
        Self::with_clock(
            vcpu_hour,
            Box::new(|| ferry_executor::own_cpu_seconds() + crate::process::runtimes_cpu_seconds()),
        )
    }

    /// [`Usage::new`] reading CPU time from `cpu` (tests).
    pub fn with_clock(vcpu_hour: f64, cpu: Box<dyn Fn() -> f64 + Send + Sync>) -> Self {
        let start = cpu();
        Self {
            usd_per_cpu_s: vcpu_hour / 3600.0,
            last: Mutex::new(Last {
                cpu_s: start,
                seen: HashMap::new(),
            }),
            cpu,
        }
    }

    /// What each of `served` answered since the last call and its share of
    /// the CPU time, added to its counters and given back for the store.
    pub fn collect(&self, served: &[Arc<Served>], now_ms: i64) -> Vec<ServingUsage> {
        let cpu = (self.cpu)();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        // A runtime that stopped takes its CPU time with it: never less than nothing.
        let spent = (cpu - last.cpu_s).max(0.0);
        last.cpu_s = cpu;
        let mut answered = Vec::new();
        for s in served {
            let now = s.stats.answered();
            let before = last
                .seen
                .insert((s.model.clone(), s.version), now)
                .unwrap_or((0, 0));
            let n = now.0.saturating_sub(before.0);
            if n > 0 {
                answered.push((s, n, now.1.saturating_sub(before.1)));
            }
        }
        let total_us: u64 = answered.iter().map(|a| a.2).sum();
        let total_n: u64 = answered.iter().map(|a| a.1).sum();
        answered
            .into_iter()
            .map(|(s, n, us)| {
                let share = if total_us > 0 {
                    us as f64 / total_us as f64
                } else {
                    n as f64 / total_n as f64
                };
                let cpu_seconds = spent * share;
                let cost_usd = cpu_seconds * self.usd_per_cpu_s;
                s.stats.add_serving(cpu_seconds, cost_usd);
                ServingUsage {
                    day: now_ms.div_euclid(DAY_MS),
                    model: s.model.clone(),
                    version: s.version,
                    predictions: i64::try_from(n).unwrap_or(i64::MAX),
                    cpu_seconds,
                    cost_usd,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictor::{Fake, FakePredictor};
    use ferry_metadata::ModelVersion;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn served(version: i64) -> Arc<Served> {
        let v = ModelVersion {
            model: "iris".into(),
            version,
            ..Default::default()
        };
        Arc::new(Served::new(
            &v,
            Arc::new(FakePredictor::new(Fake::default())),
        ))
    }

    #[test]
    fn cpu_time_is_divided_by_the_time_answers_took() {
        // The clock is in milli-CPU-seconds.
        let clock = Arc::new(AtomicU64::new(10_000));
        let c = clock.clone();
        let usage = Usage::with_clock(
            3.6,
            Box::new(move || c.load(Ordering::SeqCst) as f64 / 1000.0),
        );
        let (one, two) = (served(1), served(2));
        // Version 1 answers 3 requests of 10 ms and fails one (its time
        // counts, it is no prediction); version 2 answers one of 10 ms.
        for _ in 0..3 {
            one.stats.record(200, 0.010);
        }
        one.stats.record(500, 0.010);
        two.stats.record(200, 0.010);
        clock.fetch_add(2_000, Ordering::SeqCst);
        let day = 20_790;
        let used = usage.collect(&[one.clone(), two.clone()], day * DAY_MS + 5);
        assert_eq!(used.len(), 2);
        let by = |v: i64| used.iter().find(|u| u.version == v).unwrap();
        // 2 CPU-seconds over 40 ms and 10 ms of answers.
        assert_eq!(by(1).predictions, 3);
        assert!((by(1).cpu_seconds - 1.6).abs() < 1e-9);
        assert!((by(2).cpu_seconds - 0.4).abs() < 1e-9);
        // $3.60 a vCPU-hour is $0.001 a CPU-second.
        assert!((by(1).cost_usd - 0.0016).abs() < 1e-12);
        assert_eq!(by(1).day, day);
        assert!((one.stats.serving().0 - 1.6).abs() < 1e-6);

        // Nothing answered since: nothing to record, the CPU spent is
        // nobody's; a clock going back (a runtime gone) is not negative.
        clock.fetch_add(5_000, Ordering::SeqCst);
        assert!(usage.collect(&[one.clone(), two.clone()], 0).is_empty());
        clock.fetch_sub(1_000, Ordering::SeqCst);
        two.stats.record(200, 0.0);
        let used = usage.collect(&[one.clone(), two], 0);
        assert_eq!(used.len(), 1);
        assert_eq!(used[0].cpu_seconds, 0.0);
        assert!((one.stats.serving().1 - 0.0016).abs() < 1e-9);
    }
}
