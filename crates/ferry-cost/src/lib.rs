//! What runs cost, without I/O: price tables per machine class
//! ([`prices`]), the resources a stage asked for and used, and the money
//! they come to ([`stage_cost`]), and the cost ledger's arithmetic: a
//! cost spread over the hours it ran, summed back by stage, pipeline, day
//! or month in a report's zone ([`ledger`]).
//!
//! A stage that declares `resources:` is charged on what it asked for, as
//! a cluster bills a pod's requests; one that does not is charged on what
//! it used (its CPU time, and its peak memory for as long as it ran). Both
//! figures are kept when both exist, so efficiency (used / requested) can
//! be shown. Money is US dollars as `f64`: figures are estimates to a
//! fraction of a cent, summed over at most millions of rows.

pub mod budget;
pub mod ledger;
pub mod prices;

pub use prices::{PriceTable, Prices};

/// What a stage declares it needs (`resources:` in `ferry.yaml`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Requested {
    /// vCPUs (fractions allowed: `0.5`).
    pub cpus: f64,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// GPUs of `gpu_type`.
    pub gpus: u32,
    /// The GPU type, a key of the price table's GPU prices (`t4`, `a100`).
    pub gpu_type: Option<String>,
    /// The machine class whose prices apply (the project's default when
    /// `None`).
    pub machine: Option<String>,
}

/// What a stage used, as the executor measured it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Used {
    /// Wall time, every attempt included.
    pub wall_ms: i64,
    /// User and system CPU time.
    pub cpu_ms: i64,
    /// Peak resident memory.
    pub max_rss_bytes: i64,
}

/// Which figure a stage is charged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// What it declared (`resources:`).
    Requested,
    /// What it used (no `resources:`).
    Used,
    /// Nothing ran: restored from the run cache, or up to date.
    Restored,
}

impl Basis {
    /// Its name as the store and the MLflow tags keep it.
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Requested => "requested",
            Basis::Used => "used",
            Basis::Restored => "restored",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Basis::Requested, Basis::Used, Basis::Restored]
            .into_iter()
            .find(|b| b.as_str() == s)
    }
}

/// A stage's cost.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageCost {
    /// What it is charged, in US dollars.
    pub charged: f64,
    pub basis: Basis,
    /// What its requests came to (when it declared them).
    pub requested: Option<f64>,
    /// What its use came to.
    pub used: f64,
    /// The machine class whose prices applied.
    pub machine: String,
}

impl StageCost {
    /// A stage that ran nothing: restored or up to date, costing nothing.
    pub fn restored(machine: &str) -> Self {
        Self {
            charged: 0.0,
            basis: Basis::Restored,
            requested: None,
            used: 0.0,
            machine: machine.to_owned(),
        }
    }

    /// Used over requested (`None` without requests, or for requests that
    /// cost nothing).
    pub fn efficiency(&self) -> Option<f64> {
        self.requested.filter(|r| *r > 0.0).map(|r| self.used / r)
    }
}

/// Why a cost cannot be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CostError {
    #[error("no prices for machine class `{name}` (known: {known})")]
    UnknownMachine { name: String, known: String },
    #[error("machine class `{machine}` has no price for GPU type `{gpu}` (priced: {known})")]
    UnknownGpu {
        machine: String,
        gpu: String,
        known: String,
    },
    #[error("{0} GPUs requested without a GPU type (`resources.gpu_type`)")]
    NoGpuType(u32),
}

const MS_PER_HOUR: f64 = 3_600_000.0;
const GIB: f64 = (1u64 << 30) as f64;

/// What a stage that ran costs: on its requests when it made any (as a
/// cluster bills), on its use otherwise; the use is priced either way.
/// The requests' machine class, else `default_machine`, names the prices.
pub fn stage_cost(
    prices: &Prices,
    default_machine: &str,
    requested: Option<&Requested>,
    used: &Used,
) -> Result<StageCost, CostError> {
    let machine = requested
        .and_then(|r| r.machine.as_deref())
        .unwrap_or(default_machine);
    let table = prices.get(machine)?;
    let hours = used.wall_ms.max(0) as f64 / MS_PER_HOUR;
    let cpu_hours = used.cpu_ms.max(0) as f64 / MS_PER_HOUR;
    let rss_gib = used.max_rss_bytes.max(0) as f64 / GIB;
    let gpu_price = match requested {
        Some(r) => gpus_hourly(table, r)?,
        None => 0.0,
    };
    // Used GPUs are not measured: the GPUs asked for count as used.
    let used_cost =
        cpu_hours * table.vcpu_hour + rss_gib * hours * table.memory_gib_hour + gpu_price * hours;
    let requested_cost = requested
        .map(|r| hourly_rate(prices, default_machine, r).map(|rate| rate * hours))
        .transpose()?;
    Ok(StageCost {
        charged: requested_cost.unwrap_or(used_cost),
        basis: if requested.is_some() {
            Basis::Requested
        } else {
            Basis::Used
        },
        requested: requested_cost,
        used: used_cost,
        machine: machine.to_owned(),
    })
}

/// What the GPUs `r` asks for cost an hour.
fn gpus_hourly(table: &PriceTable, r: &Requested) -> Result<f64, CostError> {
    if r.gpus == 0 {
        return Ok(0.0);
    }
    let gpu = r.gpu_type.as_deref().ok_or(CostError::NoGpuType(r.gpus))?;
    Ok(table.gpu(gpu)? * f64::from(r.gpus))
}

/// What the resources `r` asks for cost an hour, at its machine class's
/// prices (else `default_machine`'s): what a stage that declares them is
/// charged per hour it runs, and how long `max_cost` lets it run.
pub fn hourly_rate(
    prices: &Prices,
    default_machine: &str,
    r: &Requested,
) -> Result<f64, CostError> {
    let table = prices.get(r.machine.as_deref().unwrap_or(default_machine))?;
    Ok(r.cpus * table.vcpu_hour + r.memory_gib * table.memory_gib_hour + gpus_hourly(table, r)?)
}

/// How long a stage that asks for `r` may run before its cost reaches
/// `max_cost` (`None`: its requests cost nothing, so never).
pub fn time_for(
    prices: &Prices,
    default_machine: &str,
    r: &Requested,
    max_cost: f64,
) -> Result<Option<std::time::Duration>, CostError> {
    let rate = hourly_rate(prices, default_machine, r)?;
    Ok((rate > 0.0).then(|| std::time::Duration::from_secs_f64(max_cost / rate * 3600.0)))
}

/// US dollars, to the cent from a dollar up and to a few significant
/// figures below (a stage's cost is often a fraction of a cent).
pub fn money(x: f64) -> String {
    if x == 0.0 {
        "$0".to_owned()
    } else if x.abs() < 0.000_000_5 {
        "<$0.000001".to_owned()
    } else if x.abs() >= 1.0 {
        format!("${x:.2}")
    } else if x.abs() >= 0.01 {
        format!("${x:.4}")
    } else {
        format!("${x:.6}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_cost_is_a_time_at_the_requests_rate() {
        let r = Requested {
            cpus: 2.0,
            memory_gib: 10.0,
            gpus: 0,
            gpu_type: None,
            machine: None,
        };
        // 2 x 0.04 + 10 x 0.005 = $0.13 an hour: $0.065 buys 30 minutes.
        let rate = hourly_rate(&round(), "test", &r).unwrap();
        close(rate, 0.13);
        let t = time_for(&round(), "test", &r, 0.065).unwrap().unwrap();
        assert_eq!(t.as_secs(), 1800);
        let free = Requested {
            cpus: 0.0,
            memory_gib: 0.0,
            ..r
        };
        assert_eq!(time_for(&round(), "test", &free, 1.0).unwrap(), None);
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    /// A table with round prices, so the expected figures are worked by hand.
    fn round() -> Prices {
        Prices::with(vec![PriceTable {
            name: "test".into(),
            as_of: "2026-12-01".into(),
            source: "by hand".into(),
            vcpu_hour: 0.04,
            memory_gib_hour: 0.005,
            gpu_hour: [("t4".to_owned(), 0.35)].into(),
            storage_gib_month: 0.02,
        }])
    }

    #[test]
    fn a_stage_without_requests_is_charged_on_what_it_used() {
        // 90 minutes of wall time, 45 of CPU, 2 GiB at its peak:
        // 0.75 h x $0.04 + 2 GiB x 1.5 h x $0.005 = $0.03 + $0.015.
        let used = Used {
            wall_ms: 90 * 60_000,
            cpu_ms: 45 * 60_000,
            max_rss_bytes: 2 << 30,
        };
        let c = stage_cost(&round(), "test", None, &used).unwrap();
        close(c.charged, 0.045);
        close(c.used, 0.045);
        assert_eq!(
            (c.basis, c.requested, c.efficiency()),
            (Basis::Used, None, None)
        );
    }

    #[test]
    fn a_stage_with_requests_is_charged_on_them_and_its_efficiency_kept() {
        // Asked 4 vCPUs, 8 GiB and a T4; ran 30 minutes with 2 cores busy
        // (60 minutes of CPU) and 1 GiB at its peak.
        let r = Requested {
            cpus: 4.0,
            memory_gib: 8.0,
            gpus: 1,
            gpu_type: Some("t4".into()),
            machine: None,
        };
        let used = Used {
            wall_ms: 30 * 60_000,
            cpu_ms: 60 * 60_000,
            max_rss_bytes: 1 << 30,
        };
        let c = stage_cost(&round(), "test", Some(&r), &used).unwrap();
        // Requested: 0.5 h x (4 x 0.04 + 8 x 0.005) + 0.5 h x 0.35 = 0.1 + 0.175.
        close(c.charged, 0.275);
        close(c.requested.unwrap(), 0.275);
        // Used: 1 h x 0.04 + 1 GiB x 0.5 h x 0.005 + the GPU's 0.175.
        close(c.used, 0.04 + 0.0025 + 0.175);
        close(c.efficiency().unwrap(), 0.2175 / 0.275);
        assert_eq!(c.basis, Basis::Requested);
    }

    #[test]
    fn unknown_machines_and_gpus_are_named() {
        let r = Requested {
            cpus: 1.0,
            memory_gib: 1.0,
            gpus: 2,
            gpu_type: Some("h100".into()),
            machine: None,
        };
        let e = stage_cost(&round(), "test", Some(&r), &Used::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "machine class `test` has no price for GPU type `h100` (priced: t4)"
        );
        let e = stage_cost(&round(), "azure", None, &Used::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no prices for machine class `azure` (known: test)"
        );
        let no_type = Requested {
            gpu_type: None,
            ..r
        };
        let e = stage_cost(&round(), "test", Some(&no_type), &Used::default()).unwrap_err();
        assert_eq!(e, CostError::NoGpuType(2));
    }

    #[test]
    fn restored_stages_cost_nothing_and_say_so() {
        let c = StageCost::restored("test");
        assert_eq!((c.charged, c.basis), (0.0, Basis::Restored));
    }

    #[test]
    fn the_shipped_tables_price_a_stage() {
        // One vCPU busy for an hour, 1 GiB: the table's own two prices.
        let p = Prices::shipped();
        let used = Used {
            wall_ms: 3_600_000,
            cpu_ms: 3_600_000,
            max_rss_bytes: 1 << 30,
        };
        for name in ["aws-us-east-1", "gcp-us-central1"] {
            let t = p.get(name).unwrap();
            let c = stage_cost(&p, name, None, &used).unwrap();
            close(c.charged, t.vcpu_hour + t.memory_gib_hour);
        }
    }
}
