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
//!   review:   {type: string, length: {min: 1, max: 2000}, max_empty_share: 0.01,
//!              regex: '\w', distinct_share: {min: 0.8}}
//! ```
//!
//! Text rules (string columns): `length` bounds each value's length in
//! characters; `regex` wants each value to contain a match of the pattern
//! (anchor it with `^...$` to match the whole value); `max_empty_share`
//! bounds the share of values that are empty or whitespace only (of the
//! values present: missing ones are `max_null_share`'s); `distinct_share`
//! bounds distinct values over values present.

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
    /// The share of present values that are empty or whitespace only.
    MaxEmptyShare(f64),
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
            Kind::MaxEmptyShare(_) => "max_empty_share",
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
    max_empty_share: Option<f64>,
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

/// The errors as they are shown: in the file's order, each once.
fn finish_errors(file: &str, mut errors: Vec<String>) -> SuiteErrors {
    let line_of = |e: &String| -> (u64, u64) {
        let rest = e.strip_prefix(file).unwrap_or("");
        let mut nums = rest
            .trim_start_matches(':')
            .split(':')
            .map(|x| x.trim().parse::<u64>().unwrap_or(0));
        (nums.next().unwrap_or(0), nums.next().unwrap_or(0))
    };
    errors.sort_by_key(line_of);
    errors.dedup();
    SuiteErrors(
        errors
            .into_iter()
            .map(|e| e.replacen(": : ", ": ", 1))
            .collect(),
    )
}

/// `file:line:column` of every key (and list item) under `node`.
fn index_places(
    file: &str,
    node: &ferry_spec::Node,
    path: &str,
    out: &mut std::collections::HashMap<String, String>,
) {
    use ferry_spec::Kind;
    match &node.kind {
        Kind::Map(entries) => {
            for (k, v) in entries {
                let p = if path.is_empty() {
                    k.name.clone()
                } else {
                    format!("{path}.{}", k.name)
                };
                out.insert(p.clone(), format!("{file}:{}:{}", k.pos.line, k.pos.column));
                index_places(file, v, &p, out);
            }
        }
        Kind::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                out.insert(p.clone(), format!("{file}:{}:{}", v.pos.line, v.pos.column));
                index_places(file, v, &p, out);
            }
        }
        _ => {}
    }
}

/// Phase one's checks of a suite's shape, on the positioned tree: unknown
/// keys (with a suggestion) and values of the wrong kind are reported and
/// removed from `doc`, the JSON that phase two decodes.
mod shape {
    use super::Ctx;
    use ferry_spec::{Kind, Node};
    use serde_json::Value;

    const TOP: &[&str] = &["table", "columns"];
    const TABLE: &[&str] = &["columns", "order", "rows"];
    const COLUMN: &[&str] = &[
        "type",
        "not_null",
        "max_null_share",
        "max_empty_share",
        "between",
        "in_set",
        "not_in_set",
        "unique",
        "distinct_share",
        "distinct",
        "length",
        "regex",
        "mean",
        "stdev",
        "median",
        "quantiles",
        "min",
        "max",
    ];
    const RANGE: &[&str] = &["min", "max", "strict_min", "strict_max", "mostly"];
    const BOUNDS: &[&str] = &["min", "max"];
    const MOSTLY: &[&str] = &["mostly"];
    const SET: &[&str] = &["values", "mostly"];
    const REGEX: &[&str] = &["pattern", "mostly"];
    const QUANTILE: &[&str] = &["q", "min", "max"];

    use ferry_spec::key_path as join;

    /// Keys of a mapping node against `known`; unknown ones reported and
    /// removed from `doc`. `false` when the node is not a mapping.
    fn keys(node: &Node, doc: &mut Value, path: &str, known: &[&str], cx: &mut Ctx) -> bool {
        let Kind::Map(entries) = &node.kind else {
            return false;
        };
        for (k, _) in entries {
            if known.contains(&k.name.as_str()) {
                continue;
            }
            let hint = known
                .iter()
                .map(|c| (strsim::jaro_winkler(c, &k.name), c))
                .filter(|(s, _)| *s > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map_or_else(
                    || format!("known keys here: {}", known.join(", ")),
                    |(_, c)| format!("did you mean `{c}`?"),
                );
            cx.err(
                &join(path, &k.name),
                format!("unknown key `{}`; {hint}", k.name),
            );
            if let Value::Object(m) = doc {
                m.remove(&k.name);
            }
        }
        true
    }

    fn child<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
        match &node.kind {
            Kind::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A value that is `simple` (a scalar or list of the allowed kind) or a
    /// mapping with `full` keys; anything else is reported and removed.
    fn either(
        node: &Node,
        doc: &mut Value,
        path: &str,
        simple: fn(&Kind) -> bool,
        full: &[&str],
        want: &str,
        cx: &mut Ctx,
    ) -> bool {
        if simple(&node.kind) {
            return true;
        }
        if keys(node, doc, path, full, cx) {
            return true;
        }
        cx.err(
            path,
            format!("expected {want}, found {}", node.kind.type_name()),
        );
        false
    }

    pub(super) fn check(root: &Node, doc: &mut Value, cx: &mut Ctx) {
        if !keys(root, doc, "", TOP, cx) {
            if !matches!(root.kind, Kind::Null) {
                cx.err(
                    "",
                    format!(
                        "expected a mapping with `table:` and `columns:`, found {}",
                        root.kind.type_name()
                    ),
                );
            }
            return;
        }
        if let (Some(t), Some(d)) = (child(root, "table"), doc.get_mut("table"))
            && keys(t, d, "table", TABLE, cx)
            && let (Some(r), Some(dr)) = (child(t, "rows"), d.get_mut("rows"))
        {
            keys(r, dr, "table.rows", BOUNDS, cx);
        }
        let Some(cols) = child(root, "columns") else {
            return;
        };
        let Kind::Map(entries) = &cols.kind else {
            if !matches!(cols.kind, Kind::Null) {
                cx.err(
                    "columns",
                    format!(
                        "expected a mapping of column names, found {}",
                        cols.kind.type_name()
                    ),
                );
                if let Value::Object(m) = doc {
                    m.remove("columns");
                }
            }
            return;
        };
        for (name, col) in entries {
            column(&name.name, col, doc, cx);
        }
    }

    /// The column `name` of `columns:`: its keys, and the shape of each of
    /// its rules; a column that is not a mapping is reported and removed.
    fn column(name: &str, col: &Node, doc: &mut Value, cx: &mut Ctx) {
        let base = format!("columns.{name}");
        let Some(dcol) = doc.get_mut("columns").and_then(|c| c.get_mut(name)) else {
            return;
        };
        if !keys(col, dcol, &base, COLUMN, cx) {
            if !matches!(col.kind, Kind::Null) {
                cx.err(
                    &base,
                    format!(
                        "expected a mapping of expectations, found {}",
                        col.kind.type_name()
                    ),
                );
            }
            if let Some(Value::Object(m)) = doc.get_mut("columns") {
                m.remove(name);
            }
            return;
        }
        let Kind::Map(rules) = &col.kind else {
            return;
        };
        for (k, v) in rules {
            let p = join(&base, &k.name);
            let Some(dv) = dcol.get_mut(&k.name) else {
                continue;
            };
            if !rule(&k.name, v, dv, &p, cx)
                && let Value::Object(m) = dcol
            {
                m.remove(&k.name);
            }
        }
    }

    /// Whether the rule `name` (at `p`) has a shape it can take; `false`
    /// (reported) to remove it.
    fn rule(name: &str, v: &Node, dv: &mut Value, p: &str, cx: &mut Ctx) -> bool {
        match name {
            "between" | "length" => either(
                v,
                dv,
                p,
                |_| false,
                RANGE,
                "a mapping with `min` and/or `max`",
                cx,
            ),
            "distinct_share" | "distinct" | "mean" | "stdev" | "median" | "min" | "max" => either(
                v,
                dv,
                p,
                |_| false,
                BOUNDS,
                "a mapping with `min` and/or `max`",
                cx,
            ),
            "not_null" | "unique" => either(
                v,
                dv,
                p,
                |k| matches!(k, Kind::Bool(_)),
                MOSTLY,
                "`true`, `false` or `{mostly: share}`",
                cx,
            ),
            "in_set" | "not_in_set" => either(
                v,
                dv,
                p,
                |k| matches!(k, Kind::Seq(_)),
                SET,
                "a list of values or `{values: [...], mostly: share}`",
                cx,
            ),
            "regex" => either(
                v,
                dv,
                p,
                |k| matches!(k, Kind::Str(_)),
                REGEX,
                "a pattern or `{pattern: ..., mostly: share}`",
                cx,
            ),
            "quantiles" => quantiles(v, dv, p, cx),
            _ => true,
        }
    }

    /// `quantiles:` is a list of `{q, min, max}`; items of another shape
    /// are reported (and kept for phase two to refuse).
    fn quantiles(v: &Node, dv: &mut Value, p: &str, cx: &mut Ctx) -> bool {
        match &v.kind {
            Kind::Seq(items) => {
                for (i, q) in items.iter().enumerate() {
                    let qp = format!("{p}[{i}]");
                    if let Some(dq) = dv.get_mut(i)
                        && !keys(q, dq, &qp, QUANTILE, cx)
                    {
                        cx.err(
                            &qp,
                            format!(
                                "expected `{{q: ..., min: ..., max: ...}}`, found {}",
                                q.kind.type_name()
                            ),
                        );
                    }
                }
                true
            }
            other => {
                cx.err(
                    p,
                    format!(
                        "expected a list of `{{q: ..., min: ..., max: ...}}`, found {}",
                        other.type_name()
                    ),
                );
                false
            }
        }
    }
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
    /// `file:line:column` of every key path of the suite.
    places: std::collections::HashMap<String, String>,
}

impl Ctx {
    /// An error at `path`, placed at the key (or the nearest enclosing one).
    fn err(&mut self, path: &str, msg: impl std::fmt::Display) {
        let mut at = path;
        let place = loop {
            if let Some(p) = self.places.get(at) {
                break p.clone();
            }
            match at.rfind(['.', '[']) {
                Some(i) => at = &at[..i],
                None => break self.places.get("").cloned().unwrap_or_default(),
            }
        };
        self.errors.push(format!("{place}: {path}: {msg}"));
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

/// The rules of a suite's `table:` (its columns, its row count).
fn table_rules(t: &RawTable, cx: &mut Ctx, rules: &mut Vec<Rule>) {
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

/// The rules of one column of a suite's `columns:`, made in the order the
/// report lists them (its type, its rules on each row, its statistics),
/// each named `<column>.<rule>`.
struct ColumnRules<'a> {
    name: &'a String,
    /// Its key path, `columns.<column>`.
    base: String,
    rules: &'a mut Vec<Rule>,
}

impl ColumnRules<'_> {
    fn push(&mut self, id: &str, kind: Kind, mostly: f64) {
        self.rules.push(Rule {
            id: format!("{}.{id}", self.name),
            column: Some(self.name.clone()),
            kind,
            mostly,
        })
    }

    /// The column's `type:` (an unknown one is an error), and its rule.
    fn column_type(&mut self, c: &RawColumn, cx: &mut Ctx) -> Option<ColType> {
        let ty = c.ty.as_deref().and_then(|t| {
            let parsed = ColType::parse(t);
            if parsed.is_none() {
                cx.err(
                    &format!("{}.type", self.base),
                    format!("unknown type `{t}`; types: {}", ColType::NAMES),
                );
            }
            parsed
        });
        if let Some(t) = ty {
            self.push("type", Kind::Type(t), 1.0);
        }
        ty
    }

    /// Rules each row is held to: `not_null`, `max_null_share`, `between`
    /// (dates when `ts`), `in_set`, `not_in_set`, `unique`.
    fn row_rules(&mut self, c: &RawColumn, ts: bool, cx: &mut Ctx) {
        let base = self.base.clone();
        match &c.not_null {
            Some(RawFlag::On(true)) => self.push("not_null", Kind::NotNull, 1.0),
            Some(RawFlag::On(false)) | None => {}
            Some(RawFlag::Mostly(RawMostly { mostly })) => {
                let m = cx.mostly(&format!("{base}.not_null"), *mostly);
                self.push("not_null", Kind::NotNull, m)
            }
        }
        if let Some(s) = c.max_null_share {
            if !(0.0..=1.0).contains(&s) {
                cx.err(
                    &format!("{base}.max_null_share"),
                    format!("{s} is not a share between 0 and 1"),
                );
            }
            self.push("max_null_share", Kind::MaxNullShare(s), 1.0);
        }
        if let Some(r) = &c.between {
            let p = format!("{base}.between");
            let bounds = cx.bounds(&p, &r.min, &r.max, ts);
            let m = cx.mostly(&p, r.mostly);
            self.push(
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
                Ok(vs) => self.push(
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
            Some(RawFlag::On(true)) => self.push("unique", Kind::Unique, 1.0),
            Some(RawFlag::On(false)) | None => {}
            Some(RawFlag::Mostly(RawMostly { mostly })) => {
                let m = cx.mostly(&format!("{base}.unique"), *mostly);
                self.push("unique", Kind::Unique, m)
            }
        }
    }

    /// Rules on the column as a whole or on its text: `distinct_share`,
    /// `distinct`, `mean`, `stdev`, `median`, `min`, `max` (the last three
    /// dates when `ts`), `max_empty_share`, `length`, `regex`, `quantiles`.
    fn statistic_rules(&mut self, c: &RawColumn, ts: bool, cx: &mut Ctx) {
        let base = self.base.clone();
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
                self.push(key, make(bounds), 1.0);
            }
        }
        if let Some(s) = c.max_empty_share {
            let p = format!("{base}.max_empty_share");
            if !(0.0..=1.0).contains(&s) {
                cx.err(&p, format!("{s} is not a share between 0 and 1"));
            }
            self.push("max_empty_share", Kind::MaxEmptyShare(s), 1.0);
        }
        if let Some(r) = &c.length {
            let p = format!("{base}.length");
            let bounds = cx.bounds(&p, &r.min, &r.max, false);
            let m = cx.mostly(&p, r.mostly);
            self.push("length", Kind::Length(bounds), m);
        }
        if let Some(r) = &c.regex {
            let p = format!("{base}.regex");
            let (pat, mostly) = match r {
                RawRegex::Pattern(s) => (s, None),
                RawRegex::Full(RawRegexFull { pattern, mostly }) => (pattern, *mostly),
            };
            let m = cx.mostly(&p, mostly);
            match regex::Regex::new(pat) {
                Ok(re) => self.push("regex", Kind::Regex(re), m),
                Err(e) => cx.err(&p, regex_error(pat, &e)),
            }
        }
        for (i, q) in c.quantiles.iter().flatten().enumerate() {
            let p = format!("{base}.quantiles[{i}]");
            if !(0.0..=1.0).contains(&q.q) {
                cx.err(&format!("{p}.q"), format!("{} is not between 0 and 1", q.q));
            }
            let bounds = cx.bounds(&p, &q.min, &q.max, ts);
            self.push(
                &format!("quantile({})", q.q),
                Kind::Quantile { q: q.q, bounds },
                1.0,
            );
        }
    }
}

/// A regular expression that does not compile, in one line: the pattern
/// and what is wrong with it (`unclosed group`).
fn regex_error(pattern: &str, e: &regex::Error) -> String {
    let why = match e {
        regex::Error::Syntax(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or(text.as_str())
            .to_owned(),
        regex::Error::CompiledTooBig(limit) => {
            format!("it compiles to more than the limit of {limit} bytes")
        }
        other => other.to_string(),
    };
    format!("`{pattern}` is not a valid regular expression: {why}")
}

/// Text rules on a column whose `type:` is `t`, not string: each is an
/// error at its key.
fn text_rules_need_strings(c: &RawColumn, base: &str, t: ColType, cx: &mut Ctx) {
    for (key, given) in [
        ("length", c.length.is_some()),
        ("regex", c.regex.is_some()),
        ("max_empty_share", c.max_empty_share.is_some()),
    ] {
        if given {
            cx.err(
                &format!("{base}.{key}"),
                format!("a text rule, but the column's `type` is {}", t.name()),
            );
        }
    }
}

impl Suite {
    /// Parses and validates a suite. `file` names it in messages.
    pub fn parse(file: &str, text: &str) -> Result<Suite, SuiteErrors> {
        // Phase one: YAML to a tree that knows where each key is; every
        // unknown key and misshapen value is reported (and left out) here,
        // so phase two reports the rest at once.
        let root = ferry_spec::parse_yaml(text).map_err(|e| {
            SuiteErrors(vec![format!(
                "{file}:{}:{}: {}",
                e.pos.line, e.pos.column, e.message
            )])
        })?;
        let mut cx = Ctx {
            errors: Vec::new(),
            places: std::collections::HashMap::new(),
        };
        cx.places.insert(String::new(), file.to_owned());
        index_places(file, &root, "", &mut cx.places);
        let mut doc = root.to_json();
        shape::check(&root, &mut doc, &mut cx);
        let raw: RawSuite = match serde_json::from_value(doc) {
            Ok(r) => r,
            Err(e) => {
                cx.err("", e);
                return Err(finish_errors(file, cx.errors));
            }
        };
        let mut rules = Vec::new();
        let mut types = BTreeMap::new();
        if let Some(t) = &raw.table {
            table_rules(t, &mut cx, &mut rules);
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
            let mut col = ColumnRules {
                name,
                base,
                rules: &mut rules,
            };
            let ty = col.column_type(&c, &mut cx);
            if let Some(t) = ty {
                types.insert(name.clone(), t);
            }
            let ts = matches!(ty, Some(ColType::Timestamp | ColType::Date));
            if let Some(t) = ty.filter(|&t| t != ColType::String) {
                text_rules_need_strings(&c, &format!("columns.{name}"), t, &mut cx);
            }
            col.row_rules(&c, ts, &mut cx);
            col.statistic_rules(&c, ts, &mut cx);
        }
        if rules.is_empty() && cx.errors.is_empty() {
            cx.err(
                "",
                "the suite has no expectations (give `table:` or `columns:`)",
            );
        }
        if cx.errors.is_empty() {
            Ok(Suite { rules, types })
        } else {
            Err(finish_errors(file, cx.errors))
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
    fn every_error_is_reported_at_once_with_its_place() {
        let e = Suite::parse(
            "s.yaml",
            r#"
columns:
  x: {type: decimal, between: {min: 5, max: 1, mostly: 2}, regex: '(', betwen: 3}
  y: {between: {min: "a"}, quantiles: [{q: 1.5, min: 0}], in_set: 3, not_null: {mostly: 0.9, often: 1}}
  z: 7
"#,
        )
        .unwrap_err();
        insta::assert_snapshot!(e.to_string(), @r#"
        s.yaml:3:7: columns.x.type: unknown type `decimal`; types: int, float, string, bool, timestamp, date
        s.yaml:3:22: columns.x.between: min (5) is above max (1)
        s.yaml:3:48: columns.x.between.mostly: 2 is not a share between 0 and 1
        s.yaml:3:60: columns.x.regex: `(` is not a valid regular expression: unclosed group
        s.yaml:3:72: columns.x.betwen: unknown key `betwen`; did you mean `between`?
        s.yaml:4:17: columns.y.between.min: `"a"` is not a number
        s.yaml:4:41: columns.y.quantiles[0].q: 1.5 is not between 0 and 1
        s.yaml:4:59: columns.y.in_set: expected a list of values or `{values: [...], mostly: share}`, found an integer
        s.yaml:4:94: columns.y.not_null.often: unknown key `often`; known keys here: mostly
        s.yaml:5:3: columns.z: expected a mapping of expectations, found an integer
        "#);
        let e = Suite::parse("s.yaml", "columns: [1, 2]")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.yaml:1:1: columns: expected a mapping of column names, found a list"),
            "{e}"
        );
        let e = Suite::parse("s.yaml", "columns:\n  x: {between: [1, 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.yaml:"), "{e}");
        assert!(!e.contains("<input>"), "{e}");
        assert!(
            Suite::parse("s.yaml", "{}")
                .unwrap_err()
                .to_string()
                .contains("no expectations")
        );
    }

    #[test]
    fn text_rules_parse_and_bad_ones_name_their_key() {
        let s = Suite::parse(
            "s.yaml",
            "columns:\n  review: {type: string, length: {min: 1, max: 500}, max_empty_share: 0.01, regex: {pattern: '[a-z]', mostly: 0.9}, distinct_share: {min: 0.8}}\n",
        )
        .unwrap();
        let ids: Vec<&str> = s.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "review.type",
                "review.distinct_share",
                "review.max_empty_share",
                "review.length",
                "review.regex"
            ]
        );
        assert!(matches!(s.rules[2].kind, Kind::MaxEmptyShare(x) if x == 0.01));
        let e = Suite::parse(
            "checks/text.yaml",
            r#"
columns:
  review:
    type: string
    regex: '[a-z'
    max_empty_share: 1.5
    max_empty_shares: 0.1
  n: {type: int, regex: '\d', length: {max: 3}}
"#,
        )
        .unwrap_err();
        insta::assert_snapshot!(e.to_string(), @r"
        checks/text.yaml:5:5: columns.review.regex: `[a-z` is not a valid regular expression: unclosed character class
        checks/text.yaml:6:5: columns.review.max_empty_share: 1.5 is not a share between 0 and 1
        checks/text.yaml:7:5: columns.review.max_empty_shares: unknown key `max_empty_shares`; did you mean `max_empty_share`?
        checks/text.yaml:8:18: columns.n.regex: a text rule, but the column's `type` is int
        checks/text.yaml:8:31: columns.n.length: a text rule, but the column's `type` is int
        ");
    }
}
