//! What a pipeline says of money: a stage's `resources:` (what it asks
//! for: it is charged on them, as a cluster bills requests) and
//! `max_cost:` (it is stopped when it reaches it), and the top-level
//! `cost:` (the machine class the project's stages run on, and price
//! tables that override or add to those ferry ships). Decoded with the
//! rest of the spec; the names they use (a machine class, a GPU type) are
//! checked against the price tables once the whole spec is read.

use crate::diag::Sink;
use crate::load::{Sp, map_entries, string};
use crate::node::{Kind, Node, Pos};
use ferry_cost::{PriceTable, Prices, Requested};

pub const RESOURCES_KEYS: &[&str] = &["cpus", "memory", "gpus", "gpu_type", "machine"];
pub const COST_KEYS: &[&str] = &["machine", "prices"];
pub const PRICE_KEYS: &[&str] = &[
    "as_of",
    "source",
    "vcpu_hour",
    "memory_gib_hour",
    "gpu_hour",
    "storage_gib_month",
];

/// The pipeline's cost settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CostConfig {
    /// The machine class stages run on unless their `resources.machine`
    /// says otherwise (`aws-us-east-1` by default).
    pub machine: String,
    /// The shipped price tables with the project's on top.
    pub prices: Prices,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            machine: ferry_cost::prices::DEFAULT_MACHINE.to_owned(),
            prices: Prices::shipped(),
        }
    }
}

/// What a stage says of cost, for [`settle`]: its name, `resources:` and
/// `max_cost:` with where each is.
pub(crate) type StageCostKeys = (String, Option<Sp<Requested>>, Option<Sp<f64>>);

/// `cost:` as written.
#[derive(Default)]
pub(crate) struct RawCost {
    machine: Option<Sp<String>>,
    prices: Vec<PriceTable>,
}

/// A number at `path`: an integer or a float, finite and not negative.
fn amount(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<f64> {
    let x = match v.kind {
        Kind::Int(n) => n as f64,
        Kind::Float(f) => f,
        ref other => {
            sink.err(
                v.pos,
                path,
                format!("expected a number, found {}", other.type_name()),
            );
            return None;
        }
    };
    if !x.is_finite() || x < 0.0 {
        sink.err(
            v.pos,
            path,
            format!("expected a number of 0 or more, found {x}"),
        );
        return None;
    }
    Some(x)
}

/// Memory as Kubernetes writes it (`512Mi`, `4Gi`, `1Ti`) or a number of GiB.
fn memory_gib(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<f64> {
    if let Kind::Str(s) = &v.kind {
        let s = s.trim();
        let (digits, scale) = [
            ("Ki", 1.0 / 1_048_576.0),
            ("Mi", 1.0 / 1024.0),
            ("Gi", 1.0),
            ("Ti", 1024.0),
        ]
        .into_iter()
        .find_map(|(unit, scale)| s.strip_suffix(unit).map(|d| (d, scale)))
        .unwrap_or((s, 1.0));
        return match digits.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Some(x * scale),
            _ => {
                sink.err_hint(
                    v.pos,
                    path,
                    format!("invalid memory `{s}`"),
                    "write `512Mi`, `4Gi`, `1Ti`, or a number of GiB",
                );
                None
            }
        };
    }
    amount(v, path, sink)
}

/// A stage's `resources:`.
pub(crate) fn decode_resources(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<Sp<Requested>> {
    let entries = map_entries(v, path, RESOURCES_KEYS, sink)?;
    let mut r = Requested {
        cpus: 0.0,
        memory_gib: 0.0,
        gpus: 0,
        gpu_type: None,
        machine: None,
    };
    for (k, x) in entries {
        let p = format!("{path}.{}", k.name);
        match k.name.as_str() {
            "cpus" => r.cpus = amount(x, &p, sink).unwrap_or(0.0),
            "memory" => r.memory_gib = memory_gib(x, &p, sink).unwrap_or(0.0),
            "gpus" => match x.kind {
                Kind::Int(n) if (0..=64).contains(&n) => r.gpus = n as u32,
                _ => sink.err(x.pos, &p, "expected a whole number of GPUs, 0 to 64"),
            },
            "gpu_type" => r.gpu_type = string(x, &p, sink).map(|s| s.0),
            "machine" => r.machine = string(x, &p, sink).map(|s| s.0),
            // Unknown keys: map_entries reported them.
            _ => {}
        }
    }
    if r.gpus > 0 && r.gpu_type.is_none() {
        sink.err_hint(
            v.pos,
            path,
            format!(
                "{} GPU{} asked for without a type",
                r.gpus,
                if r.gpus == 1 { "" } else { "s" }
            ),
            "add `gpu_type:` (`t4`, `a100`, ...: a GPU the price table prices)",
        );
    }
    Some((r, v.pos))
}

/// A stage's `max_cost:`, in US dollars.
pub(crate) fn decode_max_cost(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<Sp<f64>> {
    let x = amount(v, path, sink)?;
    if x == 0.0 {
        sink.err(v.pos, path, "max_cost must be more than 0");
        return None;
    }
    Some((x, v.pos))
}

/// The top-level `cost:`.
pub(crate) fn decode_cost(v: &Node, sink: &mut Sink<'_>) -> RawCost {
    let mut raw = RawCost::default();
    let Some(entries) = map_entries(v, "cost", COST_KEYS, sink) else {
        return raw;
    };
    for (k, x) in entries {
        match k.name.as_str() {
            "machine" => raw.machine = string(x, "cost.machine", sink),
            "prices" => match &x.kind {
                Kind::Map(m) => {
                    for (name, body) in m {
                        if let Some(t) = decode_table(&name.name, body, sink) {
                            raw.prices.push(t);
                        }
                    }
                }
                other => sink.err(
                    x.pos,
                    "cost.prices",
                    format!(
                        "expected a mapping of machine classes to prices, found {}",
                        other.type_name()
                    ),
                ),
            },
            _ => {}
        }
    }
    raw
}

/// One price table under `cost.prices.NAME`: every price given.
fn decode_table(name: &str, body: &Node, sink: &mut Sink<'_>) -> Option<PriceTable> {
    let path = format!("cost.prices.{name}");
    let entries = map_entries(body, &path, PRICE_KEYS, sink)?;
    let mut t = PriceTable {
        name: name.to_owned(),
        as_of: String::new(),
        source: "ferry.yaml".into(),
        vcpu_hour: f64::NAN,
        memory_gib_hour: f64::NAN,
        gpu_hour: Default::default(),
        storage_gib_month: 0.0,
    };
    for (k, x) in entries {
        let p = format!("{path}.{}", k.name);
        match k.name.as_str() {
            "as_of" => t.as_of = string(x, &p, sink).map(|s| s.0).unwrap_or_default(),
            "source" => t.source = string(x, &p, sink).map(|s| s.0).unwrap_or_default(),
            "vcpu_hour" => t.vcpu_hour = amount(x, &p, sink).unwrap_or(0.0),
            "memory_gib_hour" => t.memory_gib_hour = amount(x, &p, sink).unwrap_or(0.0),
            "storage_gib_month" => t.storage_gib_month = amount(x, &p, sink).unwrap_or(0.0),
            "gpu_hour" => match &x.kind {
                Kind::Map(m) => {
                    for (gpu, price) in m {
                        let gp = format!("{p}.{}", gpu.name);
                        if let Some(v) = amount(price, &gp, sink) {
                            t.gpu_hour.insert(gpu.name.clone(), v);
                        }
                    }
                }
                other => sink.err(
                    x.pos,
                    &p,
                    format!(
                        "expected a mapping of GPU types to prices, found {}",
                        other.type_name()
                    ),
                ),
            },
            _ => {}
        }
    }
    let mut ok = true;
    for (key, v) in [
        ("vcpu_hour", t.vcpu_hour),
        ("memory_gib_hour", t.memory_gib_hour),
    ] {
        if v.is_nan() {
            sink.err(body.pos, &path, format!("missing key `{key}`"));
            ok = false;
        }
    }
    ok.then_some(t)
}

/// The cost settings, with every machine class and GPU type the stages
/// name checked against the price tables.
pub(crate) fn settle(raw: RawCost, stages: &[StageCostKeys], sink: &mut Sink<'_>) -> CostConfig {
    let prices = Prices::shipped().overlay(raw.prices);
    let known = |p: &Prices| {
        p.tables()
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let machine = match raw.machine {
        Some((m, pos)) => {
            if prices.get(&m).is_err() {
                unknown_machine(sink, pos, "cost.machine", &m, &known(&prices));
            }
            m
        }
        None => ferry_cost::prices::DEFAULT_MACHINE.to_owned(),
    };
    for (stage, r, max_cost) in stages {
        // A stage is stopped at `max_cost` by what its requests cost an hour.
        if let Some((_, at)) = max_cost {
            let rate = r
                .as_ref()
                .and_then(|(r, _)| ferry_cost::hourly_rate(&prices, &machine, r).ok());
            if rate.is_none_or(|x| x <= 0.0) {
                sink.err_hint(
                    *at,
                    &format!("stages.{stage}.max_cost"),
                    "max_cost needs `resources:` that cost something",
                    "the stage is stopped when what it asked for has cost max_cost (its cost an hour is its requests')",
                );
            }
        }
        let Some((r, pos)) = r else { continue };
        let path = format!("stages.{stage}.resources");
        let class = r.machine.as_deref().unwrap_or(&machine);
        let Ok(table) = prices.get(class) else {
            if r.machine.is_some() {
                unknown_machine(
                    sink,
                    *pos,
                    &format!("{path}.machine"),
                    class,
                    &known(&prices),
                );
            }
            continue;
        };
        if let Some(gpu) = &r.gpu_type
            && let Err(e) = table.gpu(gpu)
        {
            sink.err(*pos, &format!("{path}.gpu_type"), e.to_string());
        }
    }
    CostConfig { machine, prices }
}

fn unknown_machine(sink: &mut Sink<'_>, pos: Pos, path: &str, name: &str, known: &str) {
    sink.err_hint(
        pos,
        path,
        format!("no prices for machine class `{name}`"),
        format!("known: {known}; or give its prices under `cost.prices.{name}`"),
    );
}
