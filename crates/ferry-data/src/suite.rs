//! Expectation suites (`expectations.yaml`): parsed in two phases (raw
//! serde with unknown keys rejected, then a validated [`Suite`]), with every
//! error reported at once, each naming the key path (`columns.price.between.min`).
//!
//! ```yaml
//! table:
//!   columns: [id, price, category]   # names and order (order: any to ignore it)
//!   rows: {min: 900000, max: 1100000}
//! columns:
//!   id:       {type: int, not_null: true, unique: true}
//!   price:    {type: float, max_null_share: 0.03, between: {min: 0, max: 1000, mostly: 0.999}}
//!   category: {type: string, in_set: [a, b, c]}
//! ```

use crate::source::ColType;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// A validated suite.
#[derive(Debug, Clone)]
pub struct Suite {
    pub rules: Vec<Rule>,
    /// Column types the suite names (they also tell CSV reading the types).
    pub types: BTreeMap<String, ColType>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// `table.columns`, `table.rows`, `<column>.<rule>`, `<column>.quantile(0.9)`.
    pub id: String,
    pub column: Option<String>,
    pub kind: Kind,
    /// Row rules pass when at least this share of the (non-missing) rows
    /// pass.
    pub mostly: f64,
}

/// A bound: a number, or a timestamp (µs) for timestamp columns.
pub type Bounds = (Option<f64>, Option<f64>);

#[derive(Debug, Clone)]
pub enum Kind {
    Columns {
        names: Vec<String>,
        ordered: bool,
    },
    RowCount(Bounds),
    Type(ColType),
    NotNull,
    MaxNullShare(f64),
    Between {
        bounds: Bounds,
        strict_min: bool,
        strict_max: bool,
        timestamps: bool,
    },
    InSet(ValueSet),
    NotInSet(ValueSet),
    Unique,
    DistinctShare(Bounds),
    Distinct(Bounds),
    Length(Bounds),
    Regex(regex::Regex),
    Mean(Bounds),
    Stdev(Bounds),
    Median(Bounds),
    Quantile {
        q: f64,
        bounds: Bounds,
    },
    Min(Bounds),
    Max(Bounds),
}

impl Kind {
    /// Judged row by row (so `mostly` applies and failing rows are listed).
    pub fn per_row(&self) -> bool {
        matches!(
            self,
            Kind::NotNull
                | Kind::Between { .. }
                | Kind::InSet(_)
                | Kind::NotInSet(_)
                | Kind::Unique
                | Kind::Length(_)
                | Kind::Regex(_)
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Kind::Columns { .. } => "columns",
            Kind::RowCount(_) => "rows",
            Kind::Type(_) => "type",
            Kind::NotNull => "not_null",
            Kind::MaxNullShare(_) => "max_null_share",
            Kind::Between { .. } => "between",
            Kind::InSet(_) => "in_set",
            Kind::NotInSet(_) => "not_in_set",
            Kind::Unique => "unique",
            Kind::DistinctShare(_) => "distinct_share",
            Kind::Distinct(_) => "distinct",
            Kind::Length(_) => "length",
            Kind::Regex(_) => "regex",
            Kind::Mean(_) => "mean",
            Kind::Stdev(_) => "stdev",
            Kind::Median(_) => "median",
            Kind::Quantile { .. } => "quantile",
            Kind::Min(_) => "min",
            Kind::Max(_) => "max",
        }
    }
}

/// Allowed (or forbidden) values: text for strings, numbers for numeric
/// columns (compared as numbers: `1` matches `1.0`).
#[derive(Debug, Clone, Default)]
pub struct ValueSet {
    pub text: HashSet<String, crate::sketch::TextHasher>,
    pub numbers: HashSet<u64, crate::sketch::TextHasher>,
    /// As written, for reports.
    pub listed: Vec<Value>,
}

impl ValueSet {
    fn from_values(values: &[Value]) -> Result<ValueSet, String> {
        let mut s = ValueSet {
            listed: values.to_vec(),
            ..Default::default()
        };
        for v in values {
            match v {
                Value::String(t) => {
                    s.text.insert(t.clone());
                    if let Ok(n) = t.parse::<f64>() {
                        s.numbers.insert(num_key(n));
                    } else if let Some(us) = crate::time::parse_micros(t) {
                        // For timestamp and date columns (compared in µs).
                        s.numbers.insert(num_key(us as f64));
                    } else if t == "true" || t == "false" {
                        s.numbers.insert(num_key(f64::from(u8::from(t == "true"))));
                    }
                }
                Value::Number(n) => {
                    let f = n.as_f64().ok_or("a number out of range")?;
                    s.numbers.insert(num_key(f));
                    s.text.insert(n.to_string());
                }
                Value::Bool(b) => {
                    s.text.insert(b.to_string());
                    s.numbers.insert(num_key(f64::from(u8::from(*b))));
                }
                other => return Err(format!("`{other}` is not a string, number or boolean")),
            }
        }
        Ok(s)
    }
}

/// A hashable key for a number (0.0 and -0.0 alike).
pub fn num_key(v: f64) -> u64 {
    if v == 0.0 { 0 } else { v.to_bits() }
}

// ------------------------------------------------------------------ raw

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    #[serde(default)]
    table: Option<RawTable>,
    #[serde(default)]
    columns: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    columns: Option<Vec<String>>,
    order: Option<String>,
    rows: Option<RawBounds>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    #[serde(rename = "type")]
    ty: Option<String>,
    not_null: Option<RawFlag>,
    max_null_share: Option<f64>,
    between: Option<RawRange>,
    in_set: Option<RawSet>,
    not_in_set: Option<RawSet>,
    unique: Option<RawFlag>,
    distinct_share: Option<RawBounds>,
    distinct: Option<RawBounds>,
    length: Option<RawRange>,
    regex: Option<RawRegex>,
    mean: Option<RawBounds>,
    stdev: Option<RawBounds>,
    median: Option<RawBounds>,
    quantiles: Option<Vec<RawQuantile>>,
    min: Option<RawBounds>,
    max: Option<RawBounds>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawFlag {
    On(bool),
    Mostly(RawMostly),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMostly {
    #[serde(default)]
    mostly: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetFull {
    values: Vec<Value>,
    #[serde(default)]
    mostly: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegexFull {
    pattern: String,
    #[serde(default)]
    mostly: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBounds {
    min: Option<Value>,
    max: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRange {
    min: Option<Value>,
    max: Option<Value>,
    #[serde(default)]
    strict_min: bool,
    #[serde(default)]
    strict_max: bool,
    mostly: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSet {
    List(Vec<Value>),
    Full(RawSetFull),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRegex {
    Pattern(String),
    Full(RawRegexFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuantile {
    q: f64,
    min: Option<Value>,
    max: Option<Value>,
}

/// Every problem with a suite, each with its key path.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteErrors(pub Vec<String>);

impl std::fmt::Display for SuiteErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

struct Ctx {
    errors: Vec<String>,
}

impl Ctx {
    fn err(&mut self, path: &str, msg: impl std::fmt::Display) {
        self.errors.push(format!("{path}: {msg}"));
    }

    fn mostly(&mut self, path: &str, m: Option<f64>) -> f64 {
        match m {
            None => 1.0,
            Some(m) if (0.0..=1.0).contains(&m) => m,
            Some(m) => {
                self.err(
                    &format!("{path}.mostly"),
                    format!("{m} is not a share between 0 and 1"),
                );
                1.0
            }
        }
    }

    /// A bound: a number, or for timestamp columns an ISO date-time.
    fn bound(&mut self, path: &str, v: &Option<Value>, ts: bool) -> Option<f64> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if !ts => n.as_f64(),
            Some(Value::String(s)) if ts => match crate::time::parse_micros(s) {
                Some(us) => Some(us as f64),
                None => {
                    self.err(
                        path,
                        format!("`{s}` is not a date or date-time (e.g. 2024-01-31T12:00:00)"),
                    );
                    None
                }
            },
            Some(other) => {
                let want = if ts { "a date-time string" } else { "a number" };
                self.err(path, format!("`{other}` is not {want}"));
                None
            }
        }
    }

    fn bounds(&mut self, path: &str, min: &Option<Value>, max: &Option<Value>, ts: bool) -> Bounds {
        let lo = self.bound(&format!("{path}.min"), min, ts);
        let hi = self.bound(&format!("{path}.max"), max, ts);
        if let (Some(a), Some(b)) = (lo, hi)
            && a > b
        {
            self.err(path, format!("min ({a}) is above max ({b})"));
        }
        if min.is_none() && max.is_none() {
            self.err(path, "give min, max or both");
        }
        (lo, hi)
    }
}

impl Suite {
    /// Parses and validates a suite. `file` names it in messages.
    pub fn parse(file: &str, text: &str) -> Result<Suite, SuiteErrors> {
        let raw: RawSuite = match serde_saphyr::from_str(text) {
            Ok(r) => r,
            Err(e) => return Err(SuiteErrors(vec![format!("{file}: {e}")])),
        };
        let mut cx = Ctx { errors: Vec::new() };
        let mut rules = Vec::new();
        let mut types = BTreeMap::new();
        if let Some(t) = &raw.table {
            if let Some(names) = &t.columns {
                let ordered = match t.order.as_deref() {
                    None | Some("exact") => true,
                    Some("any") => false,
                    Some(o) => {
                        cx.err("table.order", format!("`{o}`: use `exact` or `any`"));
                        true
                    }
                };
                let mut seen = HashSet::new();
                for n in names {
                    if !seen.insert(n) {
                        cx.err("table.columns", format!("`{n}` is listed twice"));
                    }
                }
                rules.push(Rule {
                    id: "table.columns".into(),
                    column: None,
                    kind: Kind::Columns {
                        names: names.clone(),
                        ordered,
                    },
                    mostly: 1.0,
                });
            }
            if let Some(r) = &t.rows {
                let b = cx.bounds("table.rows", &r.min, &r.max, false);
                rules.push(Rule {
                    id: "table.rows".into(),
                    column: None,
                    kind: Kind::RowCount(b),
                    mostly: 1.0,
                });
            }
        }
        for (name, v) in raw.columns.iter().flatten() {
            let base = format!("columns.{name}");
            let c: RawColumn = match serde_json::from_value(v.clone()) {
                Ok(c) => c,
                Err(e) => {
                    cx.err(&base, e);
                    continue;
                }
            };
            let ty = c.ty.as_deref().and_then(|t| {
                let parsed = ColType::parse(t);
                if parsed.is_none() {
                    cx.err(
                        &format!("{base}.type"),
                        format!("unknown type `{t}`; types: {}", ColType::NAMES),
                    );
                }
                parsed
            });
            let ts = matches!(ty, Some(ColType::Timestamp | ColType::Date));
            let mut push = |id: &str, kind: Kind, mostly: f64| {
                rules.push(Rule {
                    id: format!("{name}.{id}"),
                    column: Some(name.clone()),
                    kind,
                    mostly,
                })
            };
            if let Some(t) = ty {
                types.insert(name.clone(), t);
                push("type", Kind::Type(t), 1.0);
            }
            match &c.not_null {
                Some(RawFlag::On(true)) => push("not_null", Kind::NotNull, 1.0),
                Some(RawFlag::On(false)) | None => {}
                Some(RawFlag::Mostly(RawMostly { mostly })) => {
                    let m = cx.mostly(&format!("{base}.not_null"), *mostly);
                    push("not_null", Kind::NotNull, m)
                }
            }
            if let Some(s) = c.max_null_share {
                if !(0.0..=1.0).contains(&s) {
                    cx.err(
                        &format!("{base}.max_null_share"),
                        format!("{s} is not a share between 0 and 1"),
                    );
                }
                push("max_null_share", Kind::MaxNullShare(s), 1.0);
            }
            if let Some(r) = &c.between {
                let p = format!("{base}.between");
                let bounds = cx.bounds(&p, &r.min, &r.max, ts);
                let m = cx.mostly(&p, r.mostly);
                push(
                    "between",
                    Kind::Between {
                        bounds,
                        strict_min: r.strict_min,
                        strict_max: r.strict_max,
                        timestamps: ts,
                    },
                    m,
                );
            }
            for (key, set, not) in [
                ("in_set", &c.in_set, false),
                ("not_in_set", &c.not_in_set, true),
            ] {
                let Some(set) = set else { continue };
                let p = format!("{base}.{key}");
                let (values, mostly) = match set {
                    RawSet::List(v) => (v, None),
                    RawSet::Full(RawSetFull { values, mostly }) => (values, *mostly),
                };
                let m = cx.mostly(&p, mostly);
                match ValueSet::from_values(values) {
                    Ok(vs) => push(
                        key,
                        if not {
                            Kind::NotInSet(vs)
                        } else {
                            Kind::InSet(vs)
                        },
                        m,
                    ),
                    Err(e) => cx.err(&p, e),
                }
            }
            match &c.unique {
                Some(RawFlag::On(true)) => push("unique", Kind::Unique, 1.0),
                Some(RawFlag::On(false)) | None => {}
                Some(RawFlag::Mostly(RawMostly { mostly })) => {
                    let m = cx.mostly(&format!("{base}.unique"), *mostly);
                    push("unique", Kind::Unique, m)
                }
            }
            type Simple<'a> = (&'a str, &'a Option<RawBounds>, fn(Bounds) -> Kind, bool);
            let simple: [Simple<'_>; 7] = [
                (
                    "distinct_share",
                    &c.distinct_share,
                    Kind::DistinctShare,
                    false,
                ),
                ("distinct", &c.distinct, Kind::Distinct, false),
                ("mean", &c.mean, Kind::Mean, false),
                ("stdev", &c.stdev, Kind::Stdev, false),
                ("median", &c.median, Kind::Median, ts),
                ("min", &c.min, Kind::Min, ts),
                ("max", &c.max, Kind::Max, ts),
            ];
            for (key, b, make, ts_bounds) in simple {
                if let Some(b) = b {
                    let bounds = cx.bounds(&format!("{base}.{key}"), &b.min, &b.max, ts_bounds);
                    push(key, make(bounds), 1.0);
                }
            }
            if let Some(r) = &c.length {
                let p = format!("{base}.length");
                let bounds = cx.bounds(&p, &r.min, &r.max, false);
                let m = cx.mostly(&p, r.mostly);
                push("length", Kind::Length(bounds), m);
            }
            if let Some(r) = &c.regex {
                let p = format!("{base}.regex");
                let (pat, mostly) = match r {
                    RawRegex::Pattern(s) => (s, None),
                    RawRegex::Full(RawRegexFull { pattern, mostly }) => (pattern, *mostly),
                };
                let m = cx.mostly(&p, mostly);
                match regex::Regex::new(pat) {
                    Ok(re) => push("regex", Kind::Regex(re), m),
                    Err(e) => cx.err(&p, format!("not a valid regular expression: {e}")),
                }
            }
            for (i, q) in c.quantiles.iter().flatten().enumerate() {
                let p = format!("{base}.quantiles[{i}]");
                if !(0.0..=1.0).contains(&q.q) {
                    cx.err(&format!("{p}.q"), format!("{} is not between 0 and 1", q.q));
                }
                let bounds = cx.bounds(&p, &q.min, &q.max, ts);
                push(
                    &format!("quantile({})", q.q),
                    Kind::Quantile { q: q.q, bounds },
                    1.0,
                );
            }
        }
        if rules.is_empty() && cx.errors.is_empty() {
            cx.err(
                file,
                "the suite has no expectations (give `table:` or `columns:`)",
            );
        }
        if cx.errors.is_empty() {
            Ok(Suite { rules, types })
        } else {
            Err(SuiteErrors(
                cx.errors
                    .into_iter()
                    .map(|e| {
                        if e.starts_with(file) {
                            e
                        } else {
                            format!("{file}: {e}")
                        }
                    })
                    .collect(),
            ))
        }
    }

    /// Columns the suite refers to.
    pub fn columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.rules {
            if let Some(c) = &r.column
                && !out.contains(&c.as_str())
            {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_suite_parses() {
        let s = Suite::parse(
            "s.yaml",
            r#"
table: {columns: [id, x, c, ts], rows: {min: 10, max: 20}}
columns:
  id: {type: int, not_null: true, unique: true}
  x:
    type: float
    max_null_share: 0.1
    between: {min: 0, max: 1, mostly: 0.9}
    mean: {min: 0.4, max: 0.6}
    quantiles: [{q: 0.9, max: 0.95}]
  c: {type: string, in_set: [a, b], regex: '^[ab]$', length: {min: 1, max: 1}}
  ts: {type: timestamp, between: {min: "2024-01-01", max: "2025-01-01T00:00:00"}}
"#,
        )
        .unwrap();
        let ids: Vec<&str> = s.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "table.columns",
                "table.rows",
                "id.type",
                "id.not_null",
                "id.unique",
                "x.type",
                "x.max_null_share",
                "x.between",
                "x.mean",
                "x.quantile(0.9)",
                "c.type",
                "c.in_set",
                "c.length",
                "c.regex",
                "ts.type",
                "ts.between"
            ]
        );
        assert_eq!(s.types["ts"], ColType::Timestamp);
    }

    #[test]
    fn every_error_is_reported_with_its_key_path() {
        let e = Suite::parse(
            "s.yaml",
            r#"
columns:
  x: {type: decimal, between: {min: 5, max: 1, mostly: 2}, regex: '(', betwen: 3}
  y: {between: {min: "a"}, quantiles: [{q: 1.5, min: 0}]}
"#,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("s.yaml: columns.x: unknown field `betwen`"),
            "{text}"
        );
        let e = Suite::parse(
            "s.yaml",
            r#"
columns:
  x: {type: decimal, between: {min: 5, max: 1, mostly: 2}, regex: '('}
  y: {between: {min: "a"}, quantiles: [{q: 1.5, min: 0}]}
"#,
        )
        .unwrap_err();
        let text = e.to_string();
        for want in [
            "s.yaml: columns.x.type: unknown type `decimal`",
            "s.yaml: columns.x.between: min (5) is above max (1)",
            "s.yaml: columns.x.between.mostly: 2 is not a share",
            "s.yaml: columns.x.regex: not a valid regular expression",
            "s.yaml: columns.y.between.min: `\"a\"` is not a number",
            "s.yaml: columns.y.quantiles[0].q: 1.5 is not between 0 and 1",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(Suite::parse("s.yaml", "columns: [1, 2]").is_err());
        assert!(
            Suite::parse("s.yaml", "{}")
                .unwrap_err()
                .to_string()
                .contains("no expectations")
        );
    }
}
