//! The gates of a run: the values they see ([`GateCtx`]: metrics, params,
//! check reports, other model versions) and their evaluation, check stages'
//! gates first.

use crate::record::Recorder;
use crate::report::{Event, GateOutcome, Reporter};
use ferry_gates::{Context, Lookup, Value};
use ferry_spec::{Gate, Stage};
use std::collections::BTreeMap;

/// Evaluates the gate of each check stage (one that only warns says so
/// instead) and then the pipeline's `gates`, reporting each.
pub(crate) fn evaluate(
    stages: &[&Stage],
    gates: &[Gate],
    ctx: &GateCtx<'_>,
    reporter: &dyn Reporter,
) -> Vec<GateOutcome> {
    let mut out = Vec::new();
    for st in stages {
        let Some(c) = &st.check else { continue };
        let source = crate::checks::gate_source(st.name.as_str(), c);
        let Ok(expr) = ferry_gates::parse(&source) else {
            continue;
        };
        let ev = expr.evaluate(ctx);
        if c.warn_only {
            if !ev.passed {
                reporter.line(
                    st.name.as_str(),
                    ferry_executor::Stream::Stderr,
                    &format!(
                        "warning: check `{}` failed (warn_only): see {}",
                        st.name, c.report
                    ),
                );
            }
            continue;
        }
        let outcome = GateOutcome {
            name: format!("check {}", st.name),
            expr: source.clone(),
            passed: ev.passed,
            skipped: false,
            message: if ev.passed {
                ev.message()
            } else {
                format!("check `{}` failed: see {}", st.name, c.report)
            },
        };
        reporter.event(Event::Gate(&outcome));
        out.push(outcome);
    }
    for g in gates {
        let ev = g.expr.evaluate(ctx);
        let outcome = GateOutcome {
            name: g.name.clone(),
            expr: g.source.clone(),
            passed: ev.passed,
            skipped: ev.skipped.is_some(),
            message: ev.message(),
        };
        reporter.event(Event::Gate(&outcome));
        out.push(outcome);
    }
    out
}

/// The values gates see.
pub(crate) struct GateCtx<'a> {
    pub metrics: &'a BTreeMap<String, serde_json::Value>,
    /// Check stages' reports, flattened (see `checks::flatten`), by stage.
    pub checks: &'a BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    pub params: &'a serde_json::Value,
    pub recorder: Option<&'a dyn Recorder>,
}

fn json_to_value(v: &serde_json::Value) -> Option<Value> {
    match v {
        serde_json::Value::Number(n) => n.as_f64().map(Value::Num),
        serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
        serde_json::Value::String(s) => Some(Value::Str(s.clone())),
        _ => None,
    }
}

fn lookup_in(map: &BTreeMap<String, serde_json::Value>, key: &str, what: &str) -> Lookup {
    match map.get(key).and_then(json_to_value) {
        Some(v) => Lookup::Found(v),
        None => {
            let known: Vec<&str> = map.keys().map(String::as_str).take(12).collect();
            Lookup::Missing(if known.is_empty() {
                format!("no stage wrote {what}")
            } else {
                format!("known {what}: {}", known.join(", "))
            })
        }
    }
}

impl Context for GateCtx<'_> {
    fn lookup(&self, path: &[String]) -> Lookup {
        let key = path[1..].join(".");
        match path[0].as_str() {
            "metrics" => lookup_in(self.metrics, &key, "metrics"),
            "params" => {
                let mut cur = self.params;
                for p in &path[1..] {
                    match cur.get(p) {
                        Some(v) => cur = v,
                        None => return Lookup::Missing(format!("no param `{key}`")),
                    }
                }
                match json_to_value(cur) {
                    Some(v) => Lookup::Found(v),
                    None => {
                        Lookup::Missing(format!("param `{key}` is not a number, string or boolean"))
                    }
                }
            }
            "checks" => match self.checks.get(&path[1]) {
                Some(m) => lookup_in(
                    m,
                    &path[2..].join("."),
                    &format!("values of check `{}`", path[1]),
                ),
                None => Lookup::Missing(format!(
                    "check stage `{}` left no report in this run",
                    path[1]
                )),
            },
            other => Lookup::Missing(format!("unknown root `{other}`")),
        }
    }

    fn model(
        &self,
        reference: &str,
        path: &[String],
    ) -> std::result::Result<Option<Lookup>, String> {
        let r: ferry_core::ModelRef = reference
            .parse()
            .map_err(|e: ferry_core::ModelRefParseError| e.to_string())?;
        let Some(recorder) = self.recorder else {
            return Ok(None);
        };
        let found = recorder.resolve(&r).map_err(|e| e.to_string())?;
        let Some(v) = found else { return Ok(None) };
        let key = path[1..].join(".");
        let (section, what) = match path[0].as_str() {
            "metrics" => (&v.lineage["metrics"], "metric"),
            "params" => (&v.lineage["params"], "param"),
            other => {
                return Err(format!(
                    "`model(...)` has `metrics` and `params`, not `{other}`"
                ));
            }
        };
        // The version's values: what its pipeline's stages wrote (lineage),
        // else what its run logged (a version an MLflow client registered,
        // or one whose lineage did not travel).
        if let Some(x) = section.get(&key).and_then(json_to_value) {
            return Ok(Some(Lookup::Found(x)));
        }
        if let Some(run) = &v.run_id
            && let Some(vals) = recorder.run_values(run).map_err(|e| e.to_string())?
        {
            let found = match what {
                "metric" => vals.metrics.get(&key).map(|x| Value::Num(*x)),
                _ => vals.params.get(&key).map(|p| param_value(p)),
            };
            if let Some(x) = found {
                return Ok(Some(Lookup::Found(x)));
            }
        }
        // No comparison possible: the gate is skipped, saying why.
        Ok(Some(Lookup::Found(Value::Absent(format!(
            "{reference} has no {what} {key}"
        )))))
    }
}

/// A param as MLflow keeps it (text) as a gate value: a number or boolean
/// when it reads as one.
fn param_value(p: &str) -> Value {
    match serde_json::from_str::<serde_json::Value>(p) {
        Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            json_to_value(&v).unwrap_or_else(|| Value::Str(p.to_owned()))
        }
        _ => Value::Str(p.to_owned()),
    }
}
