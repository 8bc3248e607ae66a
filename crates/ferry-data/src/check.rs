//! `ferry check data`: evaluates a [`Suite`] over a table in one streaming
//! pass with bounded state (see [`crate::sketch`]; `unique` spills to disk).

use crate::column::Col;
use crate::failing::Failing;
use crate::show::trim;
use crate::sketch::{Distinct, Moments, Quantiles};
use crate::source::{ColType, Format, Table};
use crate::suite::{Bounds, Kind, Rule, Suite, num_key};
use crate::{DataError, Result};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Failing rows listed per expectation, at most.
pub const SAMPLE_ROWS: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct ExpectationResult {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub rule: &'static str,
    /// What the suite asks, in words (`between 0 and 100`).
    pub expected: String,
    pub success: bool,
    /// The value observed (a statistic, a share, the columns, ...).
    pub observed: Value,
    /// Row rules: rows considered (not missing) and how many failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unexpected_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unexpected_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mostly: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<Failing>,
    /// Unexpected values with their counts (set rules; the most frequent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unexpected_values: Vec<(String, u64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub source: String,
    pub files: Vec<String>,
    pub rows: u64,
    pub passed: bool,
    pub expectations: usize,
    pub failed: usize,
    pub results: Vec<ExpectationResult>,
}

impl CheckReport {
    /// The result of expectation `id` (`price.between`, `table.rows`).
    pub fn get(&self, id: &str) -> Option<&ExpectationResult> {
        self.results.iter().find(|r| r.id == id)
    }

    /// Where a failing row is, in words ([`Failing::place`]).
    pub fn place(&self, f: &Failing) -> String {
        f.place(self.files.len() > 1)
    }

    /// Names the files (`files`, and each failing row's `file`) relative to
    /// `base` when they are under it.
    pub fn relative_to(&mut self, base: &std::path::Path) {
        let rel = |f: &mut String| {
            if let Ok(p) = std::path::Path::new(f.as_str()).strip_prefix(base) {
                *f = p.display().to_string();
            }
        };
        self.files.iter_mut().for_each(rel);
        for r in &mut self.results {
            r.sample
                .iter_mut()
                .filter_map(|f| f.file.as_mut())
                .for_each(rel);
        }
    }
}

impl ExpectationResult {
    /// The observed value in words: shares as percentages (row rules,
    /// `max_null_share`, `distinct_share`), numbers without float noise.
    pub fn observed_text(&self) -> String {
        let share = self.unexpected_share.is_some()
            || matches!(
                self.rule,
                "max_null_share" | "max_empty_share" | "distinct_share"
            );
        match &self.observed {
            Value::Number(n) => match n.as_f64() {
                Some(v) if share => crate::show::share(v),
                Some(v) => trim((v * 1e6).round() / 1e6),
                None => n.to_string(),
            },
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        }
    }

    /// The failing rows in words: `1 row (0.67%)`.
    pub fn failing_text(&self) -> Option<String> {
        let c = self.unexpected_count?;
        Some(match self.unexpected_share {
            Some(s) => crate::show::rows_share(c, s),
            None => crate::show::rows(c),
        })
    }
}

#[derive(Default)]
struct RowTally {
    considered: u64,
    bad: u64,
    sample: Vec<Failing>,
    values: HashMap<String, u64, crate::sketch::TextHasher>,
}

impl RowTally {
    #[inline]
    fn fail(&mut self, row: u64, col: &Col, i: usize) {
        self.bad += 1;
        if self.sample.len() < SAMPLE_ROWS {
            self.sample.push(Failing::at(row, col.json(i)));
        }
    }
    fn fail_value(&mut self, row: u64, col: &Col, i: usize) {
        self.fail(row, col, i);
        if let Some(t) = col.text(i)
            && (self.values.len() < 1000 || self.values.contains_key(&t))
        {
            *self.values.entry(t).or_insert(0) += 1;
        }
    }
}

enum State {
    Nothing,
    Rows(RowTally),
    Missing { missing: u64 },
    Moments(Moments),
    Quantiles(Quantiles),
    Distinct(Distinct, u64),
    Unique(Box<crate::unique::UniqueState>, u64),
}

fn state_for(kind: &Kind) -> State {
    match kind {
        Kind::Columns { .. } | Kind::RowCount(_) | Kind::Type(_) => State::Nothing,
        Kind::NotNull
        | Kind::Between { .. }
        | Kind::InSet(_)
        | Kind::NotInSet(_)
        | Kind::Length(_)
        | Kind::Regex(_)
        | Kind::MaxEmptyShare(_) => State::Rows(RowTally::default()),
        Kind::MaxNullShare(_) => State::Missing { missing: 0 },
        Kind::Mean(_) | Kind::Stdev(_) | Kind::Min(_) | Kind::Max(_) => {
            State::Moments(Moments::default())
        }
        Kind::Median(_) | Kind::Quantile { .. } => State::Quantiles(Quantiles::default()),
        Kind::DistinctShare(_) | Kind::Distinct(_) => State::Distinct(Distinct::default(), 0),
        Kind::Unique => State::Unique(Box::default(), 0),
    }
}

#[inline]
fn within(v: f64, (lo, hi): Bounds) -> bool {
    lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi)
}

fn describe(rule: &Rule) -> String {
    fn b((lo, hi): Bounds, ts: bool) -> String {
        bounds((lo, hi), |v: f64| {
            if ts {
                crate::time::format_micros(v as i64)
            } else {
                trim(v)
            }
        })
    }
    fn bounds((lo, hi): Bounds, f: impl Fn(f64) -> String) -> String {
        match (lo, hi) {
            (Some(a), Some(b)) => format!("between {} and {}", f(a), f(b)),
            (Some(a), None) => format!("at least {}", f(a)),
            (None, Some(b)) => format!("at most {}", f(b)),
            (None, None) => "anything".into(),
        }
    }
    let share = crate::show::share;
    let mostly = if rule.mostly < 1.0 {
        format!(" for at least {} of rows", share(rule.mostly))
    } else {
        String::new()
    };
    let text = match &rule.kind {
        Kind::Columns { names, ordered } => {
            format!(
                "columns {}{}",
                names.join(", "),
                if *ordered {
                    " in this order"
                } else {
                    " in any order"
                }
            )
        }
        Kind::RowCount(x) => format!("row count {}", b(*x, false)),
        Kind::Type(t) => format!("type {}", t.name()),
        Kind::NotNull => "no missing values".into(),
        Kind::MaxNullShare(s) => format!("missing share at most {}", share(*s)),
        Kind::MaxEmptyShare(s) => format!("empty (or whitespace-only) share at most {}", share(*s)),
        Kind::Between {
            bounds,
            strict_min,
            strict_max,
            timestamps,
        } => {
            let strict = match (strict_min, strict_max) {
                (true, true) => " (both ends excluded)",
                (true, false) => " (min excluded)",
                (false, true) => " (max excluded)",
                _ => "",
            };
            format!("values {}{strict}", b(*bounds, *timestamps))
        }
        Kind::InSet(s) => format!("values in {}", Value::Array(s.listed.clone())),
        Kind::NotInSet(s) => format!("values not in {}", Value::Array(s.listed.clone())),
        Kind::Unique => "unique values".into(),
        Kind::DistinctShare(x) => format!("distinct share {}", bounds(*x, share)),
        Kind::Distinct(x) => format!("distinct count {}", b(*x, false)),
        Kind::Length(x) => format!("length {}", b(*x, false)),
        Kind::Regex(r) => format!("matches /{}/", r.as_str()),
        Kind::Mean(x) => format!("mean {}", b(*x, false)),
        Kind::Stdev(x) => format!("standard deviation {}", b(*x, false)),
        Kind::Median(x) => format!("median {}", b(*x, false)),
        Kind::Quantile { q, bounds } => format!("quantile {} {}", trim(*q), b(*bounds, false)),
        Kind::Min(x) => format!("minimum {}", b(*x, false)),
        Kind::Max(x) => format!("maximum {}", b(*x, false)),
    };
    text + &mostly
}

/// Evaluates `suite` over `table`.
pub fn check(table: &Table, suite: &Suite) -> Result<CheckReport> {
    let schema = table.schema.clone();
    let index: HashMap<&str, usize> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().as_str(), i))
        .collect();
    let col_of: Vec<Option<usize>> = suite
        .rules
        .iter()
        .map(|r| r.column.as_deref().and_then(|c| index.get(c).copied()))
        .collect();
    let mut states: Vec<State> = suite.rules.iter().map(|r| state_for(&r.kind)).collect();
    let mut rows: u64 = 0;
    // Rows per file, to place failing rows in their files afterwards.
    let mut file_rows = vec![0u64; table.files.len()];
    let mut cols: Vec<Option<Col>> = Vec::new();
    for batch in table.prefetched() {
        let (fi, b) = batch?;
        if let Some(n) = file_rows.get_mut(fi) {
            *n += b.num_rows() as u64;
        }
        cols.clear();
        cols.resize_with(b.num_columns(), || None);
        for (ri, rule) in suite.rules.iter().enumerate() {
            let Some(ci) = col_of[ri] else { continue };
            if ColType::of(schema.field(ci).data_type()).is_none() {
                continue;
            }
            if cols[ci].is_none() {
                cols[ci] = Some(Col::of(b.column(ci))?);
            }
            let Some(col) = cols[ci].as_ref() else {
                continue;
            };
            update(&mut states[ri], &rule.kind, col, rows);
        }
        rows += b.num_rows() as u64;
    }
    if rows == 0 {
        return Err(DataError::Empty {
            source_name: table.label().to_owned(),
        });
    }
    let mut results = suite
        .rules
        .iter()
        .zip(states)
        .zip(&col_of)
        .map(|((rule, state), ci)| result(rule, state, *ci, rows, &schema))
        .collect::<Result<Vec<_>>>()?;
    place(table, &file_rows, &mut results);
    let failed = results.iter().filter(|r| !r.success).count();
    Ok(CheckReport {
        source: table.label().to_owned(),
        files: table
            .files
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect(),
        rows,
        passed: failed == 0,
        expectations: results.len(),
        failed,
        results,
    })
}

/// The result of `rule` after the pass: its column's index in `schema`
/// (`None`: the table has no such column), and what it saw (`state`) in
/// the table's `rows`.
fn result(
    rule: &Rule,
    state: State,
    ci: Option<usize>,
    rows: u64,
    schema: &arrow_schema::Schema,
) -> Result<ExpectationResult> {
    let mut r = ExpectationResult {
        id: rule.id.clone(),
        column: rule.column.clone(),
        rule: rule.kind.name(),
        expected: describe(rule),
        success: false,
        observed: Value::Null,
        element_count: None,
        unexpected_count: None,
        unexpected_share: None,
        mostly: (rule.kind.per_row() && rule.mostly < 1.0).then_some(rule.mostly),
        sample: vec![],
        unexpected_values: vec![],
        note: None,
    };
    let present = ci.is_some() || rule.column.is_none();
    if !present {
        let c = rule.column.as_deref().unwrap_or_default();
        r.observed = json!(format!("no column `{c}` in the table"));
        r.note = Some(format!(
            "the table's columns: {}",
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Ok(r);
    }
    let field_type = ci.and_then(|ci| ColType::of(schema.field(ci).data_type()));
    if let (None, Some(ci)) = (field_type, ci) {
        r.observed = json!(format!(
            "the column is of type {}, which ferry cannot check",
            schema.field(ci).data_type()
        ));
        return Ok(r);
    }
    finish(&mut r, rule, state, rows, schema, field_type)?;
    Ok(r)
}

/// Puts each failing row in its file (`file`, `file_row`) and, for CSV
/// and JSON lines, on its line, reading each file once more up to its last
/// sampled row (at most [`SAMPLE_ROWS`] per expectation). A file that
/// cannot be read again leaves its rows without a line.
fn place(table: &Table, file_rows: &[u64], results: &mut [ExpectationResult]) {
    let mut starts = Vec::with_capacity(file_rows.len());
    let mut at = 0u64;
    for n in file_rows {
        starts.push(at);
        at += n;
    }
    let file_of = |row: u64| starts.partition_point(|&s| s <= row).saturating_sub(1);
    // Sampled rows per file, in order (0-based within the file).
    let mut wanted: Vec<Vec<u64>> = vec![Vec::new(); table.files.len()];
    for f in results.iter().flat_map(|r| &r.sample) {
        let fi = file_of(f.row);
        if let Some(w) = wanted.get_mut(fi) {
            w.push(f.row - starts[fi]);
        }
    }
    let mut lines: Vec<Vec<(u64, u64)>> = Vec::with_capacity(wanted.len());
    for (fi, mut w) in wanted.into_iter().enumerate() {
        w.sort_unstable();
        w.dedup();
        let (path, fmt) = &table.files[fi];
        let found = match fmt {
            _ if w.is_empty() => Ok(vec![]),
            Format::Csv => {
                let header = u64::from(table.spec.csv.header);
                let records: Vec<u64> = w.iter().map(|r| r + header).collect();
                crate::locate::csv_record_lines(path, &table.spec.csv, &records)
            }
            Format::JsonLines => crate::locate::json_row_lines(path, &w),
            Format::Parquet => Ok(vec![]),
        };
        lines.push(
            w.iter()
                .zip(found.unwrap_or_default())
                .filter_map(|(r, l)| Some((*r, l?)))
                .collect(),
        );
    }
    for f in results.iter_mut().flat_map(|r| r.sample.iter_mut()) {
        let fi = file_of(f.row);
        let Some((path, _)) = table.files.get(fi) else {
            continue;
        };
        f.file_row = f.row - starts[fi];
        f.file = Some(path.display().to_string());
        f.line = lines[fi]
            .binary_search_by_key(&f.file_row, |(r, _)| *r)
            .ok()
            .map(|i| lines[fi][i].1);
    }
}

fn update(state: &mut State, kind: &Kind, col: &Col, offset: u64) {
    let n = col.len();
    match (state, kind) {
        (State::Rows(t), Kind::NotNull) => {
            t.considered += n as u64;
            if !col.any_missing() {
                return;
            }
            for i in 0..n {
                if col.missing(i) {
                    t.fail(offset + i as u64, col, i);
                }
            }
        }
        (
            State::Rows(t),
            Kind::Between {
                bounds,
                strict_min,
                strict_max,
                ..
            },
        ) => {
            if !col.is_numeric() {
                return;
            }
            let (lo, hi) = *bounds;
            for i in 0..n {
                let Some(v) = col.num(i) else { continue };
                t.considered += 1;
                let ok = lo.is_none_or(|lo| if *strict_min { v > lo } else { v >= lo })
                    && hi.is_none_or(|hi| if *strict_max { v < hi } else { v <= hi });
                if !ok {
                    t.fail(offset + i as u64, col, i);
                }
            }
        }
        (State::Rows(t), Kind::InSet(set) | Kind::NotInSet(set)) => {
            let want_in = matches!(kind, Kind::InSet(_));
            for i in 0..n {
                if col.missing(i) {
                    continue;
                }
                t.considered += 1;
                let member = match col {
                    Col::Str(_) => col.str_at(i).is_some_and(|s| set.text.contains(s)),
                    _ => col
                        .num(i)
                        .is_some_and(|v| set.numbers.contains(&num_key(v))),
                };
                if member != want_in {
                    t.fail_value(offset + i as u64, col, i);
                }
            }
        }
        (State::Rows(t), Kind::Length(bounds)) => {
            for i in 0..n {
                let Some(s) = col.str_at(i) else { continue };
                t.considered += 1;
                if !within(s.chars().count() as f64, *bounds) {
                    t.fail(offset + i as u64, col, i);
                }
            }
        }
        (State::Rows(t), Kind::MaxEmptyShare(_)) => {
            for i in 0..n {
                let Some(s) = col.str_at(i) else { continue };
                t.considered += 1;
                if s.trim().is_empty() {
                    t.fail(offset + i as u64, col, i);
                }
            }
        }
        (State::Rows(t), Kind::Regex(re)) => {
            for i in 0..n {
                let Some(s) = col.str_at(i) else { continue };
                t.considered += 1;
                if !re.is_match(s) {
                    t.fail(offset + i as u64, col, i);
                }
            }
        }
        // A complete column adds nothing (the last arm).
        (State::Missing { missing }, _) if col.any_missing() => {
            *missing += (0..n).filter(|&i| col.missing(i)).count() as u64;
        }
        (State::Moments(m), _) => {
            for i in 0..n {
                if let Some(v) = col.num(i) {
                    m.add(v);
                }
            }
        }
        (State::Quantiles(q), _) => {
            for i in 0..n {
                if let Some(v) = col.num(i) {
                    q.add(v);
                }
            }
        }
        (State::Distinct(d, nonmissing), _) => {
            let complete = !col.any_missing();
            for i in 0..n {
                if complete || !col.missing(i) {
                    *nonmissing += 1;
                    d.add(col.hash(i));
                }
            }
        }
        (State::Unique(u, nonmissing), _) => {
            let complete = !col.any_missing();
            for i in 0..n {
                if complete || !col.missing(i) {
                    *nonmissing += 1;
                    u.add(col.hash(i), offset + i as u64, || col.json(i));
                }
            }
        }
        _ => {}
    }
}

/// Fills `r` from what `rule` saw: the observed value, whether it holds,
/// and for rules on rows how many failed and which.
fn finish(
    r: &mut ExpectationResult,
    rule: &Rule,
    state: State,
    rows: u64,
    schema: &arrow_schema::Schema,
    field_type: Option<ColType>,
) -> Result<()> {
    match (&rule.kind, state) {
        (Kind::Columns { names, ordered }, _) => columns_result(r, names, *ordered, schema),
        (Kind::RowCount(b), _) => {
            r.observed = json!(rows);
            r.success = within(rows as f64, *b);
        }
        (Kind::Type(t), _) => {
            r.observed = json!(field_type.map_or("unsupported", ColType::name));
            r.success = field_type == Some(*t);
        }
        (Kind::NotNull, State::Rows(t)) => {
            row_result(r, rule, t);
        }
        (
            Kind::Between { .. }
            | Kind::InSet(_)
            | Kind::NotInSet(_)
            | Kind::Length(_)
            | Kind::Regex(_)
            | Kind::MaxEmptyShare(_),
            State::Rows(t),
        ) => {
            let needs_numbers = matches!(rule.kind, Kind::Between { .. });
            let needs_strings = matches!(
                rule.kind,
                Kind::Length(_) | Kind::Regex(_) | Kind::MaxEmptyShare(_)
            );
            if needs_numbers && !field_type.is_some_and(|t| t != ColType::String) {
                not_numeric(r, field_type);
                return Ok(());
            }
            if needs_strings && field_type != Some(ColType::String) {
                r.observed = json!(format!(
                    "the column is {}, not string",
                    field_type.map_or("of an unsupported type", ColType::name)
                ));
                return Ok(());
            }
            let max_empty = match rule.kind {
                Kind::MaxEmptyShare(s) => Some(s),
                _ => None,
            };
            row_result(r, rule, t);
            // Empty values are allowed up to a share: the rows listed are
            // the empty ones, the rule holds while their share is small.
            if let (Some(s), Some(share)) = (max_empty, r.unexpected_share) {
                r.success = share <= s + 1e-12;
            }
        }
        (Kind::MaxNullShare(s), State::Missing { missing }) => {
            let share = missing as f64 / rows as f64;
            r.observed = json!(share);
            r.element_count = Some(rows);
            r.unexpected_count = Some(missing);
            r.success = share <= *s;
        }
        (Kind::Mean(b) | Kind::Stdev(b) | Kind::Min(b) | Kind::Max(b), State::Moments(m)) => {
            moments_result(r, rule, *b, &m, field_type)
        }
        (Kind::Median(b) | Kind::Quantile { bounds: b, .. }, State::Quantiles(q)) => {
            quantile_result(r, rule, *b, q, field_type)
        }
        (Kind::Distinct(b) | Kind::DistinctShare(b), State::Distinct(d, nonmissing)) => {
            distinct_result(r, rule, *b, &d, nonmissing)
        }
        (Kind::Unique, State::Unique(u, nonmissing)) => {
            let (bad, sample) = u.finish(SAMPLE_ROWS)?;
            let t = RowTally {
                considered: nonmissing,
                bad,
                sample,
                values: HashMap::default(),
            };
            row_result(r, rule, t);
        }
        _ => {
            return Err(DataError::Internal(format!("no state for {}", rule.id)));
        }
    }
    Ok(())
}

/// A statistic asked of a column that is not numeric.
fn not_numeric(r: &mut ExpectationResult, field_type: Option<ColType>) {
    r.observed = json!(format!(
        "the column is {}, not numeric",
        field_type.map_or("of an unsupported type", ColType::name)
    ));
}

/// A value of the column as the report shows it: a date-time for
/// timestamp and date columns, else the number.
fn shown(v: f64, field_type: Option<ColType>) -> Value {
    if matches!(field_type, Some(ColType::Timestamp | ColType::Date)) {
        json!(crate::time::format_micros(v as i64))
    } else {
        json!(v)
    }
}

/// `columns`: the table's columns are `names` (in this order when
/// `ordered`); a note says which are missing or unexpected.
fn columns_result(
    r: &mut ExpectationResult,
    names: &[String],
    ordered: bool,
    schema: &arrow_schema::Schema,
) {
    let actual: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    r.success = if ordered {
        actual == names
    } else {
        let mut a = actual.clone();
        let mut b = names.to_vec();
        a.sort();
        b.sort();
        a == b
    };
    r.observed = json!(actual);
    if r.success {
        return;
    }
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| !actual.contains(n))
        .map(String::as_str)
        .collect();
    let extra: Vec<&str> = actual
        .iter()
        .filter(|n| !names.contains(n))
        .map(String::as_str)
        .collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing: {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        parts.push(format!("unexpected: {}", extra.join(", ")));
    }
    if parts.is_empty() {
        parts.push("same columns, another order".into());
    }
    r.note = Some(parts.join("; "));
}

/// `mean`, `stdev`, `min`, `max` within `b`.
fn moments_result(
    r: &mut ExpectationResult,
    rule: &Rule,
    b: Bounds,
    m: &Moments,
    field_type: Option<ColType>,
) {
    if field_type.is_none_or(|t| t == ColType::String) {
        not_numeric(r, field_type);
        return;
    }
    let v = match rule.kind {
        Kind::Mean(_) => m.mean(),
        Kind::Stdev(_) => m.stdev(),
        Kind::Min(_) => m.min,
        _ => m.max,
    };
    r.observed = match (rule.kind.name(), v) {
        ("min" | "max", Some(v)) => shown(v, field_type),
        _ => v.map_or(Value::Null, |v| json!(v)),
    };
    r.success = v.is_some_and(|v| within(v, b));
}

/// `median` or a `quantile` within `b` (estimated past the exact sketch's
/// size, and said so).
fn quantile_result(
    r: &mut ExpectationResult,
    rule: &Rule,
    b: Bounds,
    mut q: Quantiles,
    field_type: Option<ColType>,
) {
    if field_type.is_none_or(|t| t == ColType::String) {
        not_numeric(r, field_type);
        return;
    }
    let at = match rule.kind {
        Kind::Quantile { q, .. } => q,
        _ => 0.5,
    };
    let v = q.quantile(at);
    r.observed = v.map_or(Value::Null, |v| shown(v, field_type));
    r.success = v.is_some_and(|v| within(v, b));
    if !q.is_exact() {
        r.note = Some("estimated with a t-digest (more than 4,000,000 values)".into());
    }
}

/// `distinct` (a count) or `distinct_share` (of the `nonmissing` values)
/// within `b` (estimated past the exact sketch's size, and said so).
fn distinct_result(
    r: &mut ExpectationResult,
    rule: &Rule,
    b: Bounds,
    d: &Distinct,
    nonmissing: u64,
) {
    let count = d.count();
    let v = match rule.kind {
        Kind::Distinct(_) => count as f64,
        _ if nonmissing == 0 => 0.0,
        _ => count as f64 / nonmissing as f64,
    };
    r.observed = json!(v);
    r.element_count = Some(nonmissing);
    r.success = within(v, b);
    if !d.is_exact() {
        r.note = Some("estimated with HyperLogLog (more than 2,000,000 distinct values)".into());
    }
}

fn row_result(r: &mut ExpectationResult, rule: &Rule, t: RowTally) {
    let share = if t.considered == 0 {
        0.0
    } else {
        t.bad as f64 / t.considered as f64
    };
    r.element_count = Some(t.considered);
    r.unexpected_count = Some(t.bad);
    r.unexpected_share = Some(share);
    r.observed = json!(share);
    // A tolerance of a few ulps so `mostly: 0.999` with exactly 0.1% fails passes.
    r.success = share <= (1.0 - rule.mostly) + 1e-12;
    r.sample = t.sample;
    let mut values: Vec<(String, u64)> = t.values.into_iter().collect();
    values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    values.truncate(20);
    r.unexpected_values = values;
}
