//! `ferry check drift`: per-column drift between a reference and a current
//! table, with the tests users know, chosen as Evidently's
//! `DataDriftPreset` chooses them by default:
//!
//! | reference rows (non-missing) | column | test | drift when |
//! |---|---|---|---|
//! | <= 1000 | numeric, > 5 distinct values | Kolmogorov-Smirnov | p < 0.05 |
//! | <= 1000 | numeric with 3-5 values, or categorical with > 2 | chi-square | p < 0.05 |
//! | <= 1000 | two values (numeric or categorical) | two-proportion z-test | p < 0.05 |
//! | <= 1000 | text | domain classifier | ROC AUC > a random classifier's 95th percentile |
//! | > 1000 | numeric, > 5 distinct values | Wasserstein distance / reference std | >= 0.1 |
//! | > 1000 | text | domain classifier | ROC AUC > 0.55 |
//! | > 1000 | everything else | Jensen-Shannon distance | >= 0.1 |
//!
//! A column's kind comes from the current table first, as Evidently's
//! `infer_column_type` decides it: floats (and times) are numerical; an
//! integer column is categorical when the current table has at most 10
//! distinct values in it (and no missing ones: pandas reads an integer
//! column with gaps as floats), numerical otherwise; a string column is text
//! when its distinct values are more than half of its non-missing values in
//! the current table, categorical otherwise; booleans are categorical.
//!
//! Text columns are compared as Evidently's text content drift compares
//! them ([`crate::text`]): a classifier is trained on half the texts of both
//! tables to tell them apart, and its ROC AUC on the other half is the
//! value. On a reference of up to 1000 texts the bar is the 95th
//! percentile of the ROC AUC a random classifier reaches on the same half
//! (`perc_text_content_drift`); past that, 0.55 (`abs_text_content_drift`).
//! A text column also reports descriptors (length in characters and words,
//! words the reference never used, non-letters, blanks) and the words most
//! telling of each table. A method named for the column itself wins (a
//! categorical one compares the texts as levels); the method for every
//! column (`--method`) applies to the columns it fits: `domain_classifier`
//! to text columns, the others to the rest. Likewise the threshold for
//! every column is not a ROC AUC and leaves text columns alone, unless
//! the method for every column is `domain_classifier`.
//!
//! PSI (>= 0.1) can be asked for any column. Distinct values
//! for the choice of test are counted over both tables together. The
//! dataset drifts when at least half of the columns drift. Each column
//! also gets an effect size (KS D, Cramér's V, Cohen's h, the distance
//! itself, or the ROC AUC); when a p-value test runs on more than 10,000
//! reference rows (only when asked for) a drift also needs an effect of at
//! least `min_effect` (0.1; 0.2 for Cohen's h), so huge samples do not flag
//! trivial shifts.
//!
//! Binning (Jensen-Shannon and PSI on numbers): 30 equal-width bins over the
//! range of both tables together; categories: the union of levels. PSI
//! replaces empty shares by 0.0001.

use crate::column::Col;
use crate::source::{ColType, Format, Table};
use crate::{DataError, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Ks,
    ChiSquare,
    Z,
    Wasserstein,
    JensenShannon,
    Psi,
    /// Evidently's text content drift: how well a classifier tells the
    /// tables' texts apart (ROC AUC).
    #[serde(rename = "domain_classifier")]
    DomainClassifier,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "ks" => Method::Ks,
            "chisquare" | "chi2" | "chi-square" => Method::ChiSquare,
            "z" | "ztest" => Method::Z,
            "wasserstein" => Method::Wasserstein,
            "jensenshannon" | "js" => Method::JensenShannon,
            "psi" => Method::Psi,
            "domain_classifier" | "domainclassifier" | "domain-classifier" => {
                Method::DomainClassifier
            }
            _ => return None,
        })
    }
    pub const NAMES: &'static str =
        "ks, chisquare, z, wasserstein, jensenshannon, psi, domain_classifier";

    pub fn label(self) -> &'static str {
        match self {
            Method::Ks => "Kolmogorov-Smirnov p-value",
            Method::ChiSquare => "chi-square p-value",
            Method::Z => "two-proportion z-test p-value",
            Method::Wasserstein => "Wasserstein distance (normed)",
            Method::JensenShannon => "Jensen-Shannon distance",
            Method::Psi => "PSI",
            Method::DomainClassifier => "domain classifier ROC AUC",
        }
    }

    pub fn is_p_value(self) -> bool {
        matches!(self, Method::Ks | Method::ChiSquare | Method::Z)
    }

    /// How a value compares with the threshold when it drifts: `<` for
    /// p-values, `>=` for distances, `>` for the domain classifier's ROC
    /// AUC (as Evidently compares each).
    pub fn drifts_when(self) -> &'static str {
        match self {
            m if m.is_p_value() => "<",
            Method::DomainClassifier => ">",
            _ => ">=",
        }
    }

    /// The threshold when none is given: 0.05 for p-values, 0.1 for
    /// distances, 0.55 for the domain classifier on a large reference (on
    /// a small one the bar is a random classifier's, found per column).
    pub fn default_threshold(self) -> f64 {
        match self {
            m if m.is_p_value() => 0.05,
            Method::DomainClassifier => ABSOLUTE_ROC_AUC,
            _ => 0.1,
        }
    }
}

/// Evidently's `abs_text_content_drift` threshold: a domain classifier
/// whose ROC AUC is above it drifts (references of more than 1000 texts).
pub const ABSOLUTE_ROC_AUC: f64 = 0.55;

#[derive(Debug, Clone)]
pub struct DriftOptions {
    /// Columns to compare (default: every column of the reference).
    pub columns: Option<Vec<String>>,
    /// One method for every column (default: chosen per column).
    pub method: Option<Method>,
    pub methods: BTreeMap<String, Method>,
    /// One threshold for every column (default: the method's).
    pub threshold: Option<f64>,
    pub thresholds: BTreeMap<String, f64>,
    /// The dataset drifts when at least this share of columns drift.
    pub drift_share: f64,
    /// Effect size a p-value test on a huge sample also needs.
    pub min_effect: Option<f64>,
    pub bins: usize,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            columns: None,
            method: None,
            methods: BTreeMap::new(),
            threshold: None,
            thresholds: BTreeMap::new(),
            drift_share: 0.5,
            min_effect: None,
            bins: 30,
        }
    }
}

/// Shares per bin (or level) in both tables, for the report's charts.
#[derive(Debug, Clone, Serialize)]
pub struct Histogram {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnDrift {
    pub column: String,
    pub kind: &'static str,
    pub method: Method,
    pub method_label: &'static str,
    /// The p-value (tests) or the distance (distances).
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistic: Option<f64>,
    pub threshold: f64,
    pub rule: &'static str,
    pub effect_size: f64,
    pub effect_label: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_effect: Option<f64>,
    pub drifted: bool,
    /// The rows the test used: those with a value in this column (not
    /// missing, not infinite), which can be far fewer than the table's
    /// (a column most rows of a prediction log lack).
    pub reference_rows: u64,
    pub current_rows: u64,
    /// The table's other rows: missing (null, NaN, absent) or infinite.
    pub reference_missing: u64,
    pub current_missing: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Text columns: the descriptors, and the domain classifier's findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<TextDrift>,
    /// Shares per bin or level; for the domain classifier, of the texts'
    /// length in characters.
    pub histogram: Histogram,
}

/// What a text column's comparison adds.
#[derive(Debug, Clone, Serialize)]
pub struct TextDrift {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier: Option<Classifier>,
    pub descriptors: Vec<crate::text::Descriptor>,
}

impl TextDrift {
    /// A descriptor's values, reference then current.
    pub fn get(&self, name: &str) -> Option<(f64, f64)> {
        self.descriptors
            .iter()
            .find(|d| d.name == name)
            .map(|d| (d.reference, d.current))
    }

    /// The findings in a line or two of words, as the terminal shows them:
    /// the words telling each table apart, then the descriptors,
    /// reference -> current.
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(k) = &self.classifier {
            let words = |w: &[String]| {
                if w.is_empty() {
                    "none".to_owned()
                } else {
                    w.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
                }
            };
            out.push(format!(
                "typical words in current: {}; in reference: {}",
                words(&k.typical_words_current),
                words(&k.typical_words_reference)
            ));
        }
        let num = |v: f64| crate::show::trim((v * 10.0).round() / 10.0);
        let share = crate::show::share;
        let mut parts = Vec::new();
        if let (Some(c), Some(w)) = (self.get("chars_mean"), self.get("words_mean")) {
            parts.push(format!(
                "mean length {} -> {} characters, {} -> {} words",
                num(c.0),
                num(c.1),
                num(w.0),
                num(w.1)
            ));
        }
        if let Some(o) = self.get("oov_share") {
            parts.push(format!(
                "words new to the reference {} (within the reference {})",
                share(o.1),
                share(o.0)
            ));
        }
        if let Some(n) = self.get("non_letter_share") {
            parts.push(format!("non-letters {} -> {}", share(n.0), share(n.1)));
        }
        if let Some(e) = self.get("empty_share") {
            parts.push(format!("empty {} -> {}", share(e.0), share(e.1)));
        }
        if !parts.is_empty() {
            out.push(parts.join("; "));
        }
        out
    }
}

/// The domain classifier's findings, as Evidently's
/// `TextDomainClassifierDriftMetric` reports them.
#[derive(Debug, Clone, Serialize)]
pub struct Classifier {
    pub roc_auc: f64,
    pub threshold: f64,
    /// Where the threshold came from: `random_classifier` (references of
    /// up to 1000 texts: the 95th percentile of a random scorer's ROC AUC
    /// on the same test half, from 1000 seeded draws), `absolute` (0.55),
    /// or `given`.
    pub threshold_from: &'static str,
    /// Texts the classifier trained and was tested on.
    pub train_reference: u64,
    pub train_current: u64,
    pub test_reference: u64,
    pub test_current: u64,
    /// Words it learned from (after stop words and words in more than
    /// half the training texts).
    pub vocabulary: u64,
    pub epochs: u32,
    pub typical_words_current: Vec<String>,
    pub typical_words_reference: Vec<String>,
    pub typical_examples_current: Vec<String>,
    pub typical_examples_reference: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub reference: String,
    pub current: String,
    pub reference_rows: u64,
    pub current_rows: u64,
    pub columns: Vec<ColumnDrift>,
    pub drifted: usize,
    pub drifted_share: f64,
    pub drift_share_threshold: f64,
    pub dataset_drift: bool,
}

/// What Evidently makes of a column (`infer_column_type` on the current
/// data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Numerical,
    Categorical,
    Text,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Numerical => "numerical",
            Kind::Categorical => "categorical",
            Kind::Text => "text",
        }
    }
}

/// Evidently's `INTEGER_CARDINALITY_LIMIT`: an integer column with at most
/// this many distinct values is categorical.
pub const INTEGER_CARDINALITY_LIMIT: usize = 10;

/// Distinct numbers in `v`, counting no further than `cap + 1`.
fn distinct_numbers(v: &[f64], cap: usize) -> usize {
    let mut seen = std::collections::HashSet::new();
    for &x in v {
        seen.insert(crate::suite::num_key(x));
        if seen.len() > cap {
            break;
        }
    }
    seen.len()
}

/// The kind of a column of type `t` whose current values are `cur` (with
/// `cur_missing` missing ones).
fn kind_of(t: Option<ColType>, cur: &Values, cur_missing: u64) -> Kind {
    match (t, cur) {
        (Some(ColType::Int), Values::Num(v))
            if cur_missing == 0
                && distinct_numbers(v, INTEGER_CARDINALITY_LIMIT) <= INTEGER_CARDINALITY_LIMIT =>
        {
            Kind::Categorical
        }
        (Some(ColType::String), Values::Cat(m)) => {
            let values: u64 = m.values().sum();
            if m.len() as f64 > values as f64 * 0.5 {
                Kind::Text
            } else {
                Kind::Categorical
            }
        }
        (_, Values::Num(_)) => Kind::Numerical,
        (_, Values::Cat(_)) => Kind::Categorical,
    }
}

impl DriftReport {
    pub fn get(&self, column: &str) -> Option<&ColumnDrift> {
        self.columns.iter().find(|c| c.column == column)
    }

    /// The rows a column's test used, current then reference as in the
    /// report's header: `7 / 150 rows`.
    pub fn rows_used(&self, c: &ColumnDrift) -> String {
        format!(
            "{} / {}",
            crate::show::count(c.current_rows),
            crate::show::rows(c.reference_rows)
        )
    }

    /// Said when a column's test used far fewer rows than its table has
    /// (under [`FEW_ROWS`] of them): `only 7 of 16,398 current rows have a
    /// value`.
    pub fn rows_note(&self, c: &ColumnDrift) -> Option<String> {
        let few = |used: u64, all: u64| (used as f64) < all as f64 * FEW_ROWS;
        let mut parts = Vec::new();
        for (used, all, side) in [
            (c.current_rows, self.current_rows, "current"),
            (c.reference_rows, self.reference_rows, "reference"),
        ] {
            if few(used, all) {
                parts.push(format!(
                    "only {} of {} {side} rows {} a value",
                    crate::show::count(used),
                    crate::show::count(all),
                    if used == 1 { "has" } else { "have" }
                ));
            }
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// A column's test that uses fewer than this share of a table's rows is
/// pointed out ([`DriftReport::rows_note`]).
pub const FEW_ROWS: f64 = 0.9;

/// A column's values: numbers (missing dropped) or level counts.
#[derive(Debug, PartialEq)]
enum Values {
    Num(Vec<f64>),
    Cat(HashMap<String, u64>),
}

#[derive(Debug, PartialEq)]
struct Loaded {
    rows: u64,
    cols: Vec<(Values, u64)>,
}

fn load(table: &Table, names: &[String], kinds: &[bool]) -> Result<Loaded> {
    let index: HashMap<&str, usize> = table
        .schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().as_str(), i))
        .collect();
    let mut idx = Vec::with_capacity(names.len());
    for n in names {
        match index.get(n.as_str()) {
            Some(&i) => idx.push(i),
            None => {
                return Err(DataError::MissingColumn {
                    table: table.label().to_owned(),
                    column: n.clone(),
                    what: "the drift comparison".into(),
                    available: table
                        .schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    let loaded = match load_flat_lines(table, &idx, kinds) {
        Some(l) => l,
        None => load_batches(table, &idx, kinds)?,
    };
    if loaded.rows == 0 {
        return Err(DataError::Empty {
            source_name: table.label().to_owned(),
        });
    }
    Ok(loaded)
}

/// [`load`] through the table's record batches.
fn load_batches(table: &Table, idx: &[usize], kinds: &[bool]) -> Result<Loaded> {
    let mut cols: Vec<(Values, u64)> = kinds
        .iter()
        .map(|&num| {
            (
                if num {
                    Values::Num(Vec::new())
                } else {
                    Values::Cat(HashMap::new())
                },
                0,
            )
        })
        .collect();
    let mut rows = 0;
    for batch in table.prefetched() {
        let (_, b) = batch?;
        for (k, &ci) in idx.iter().enumerate() {
            let col = Col::of(b.column(ci))?;
            let (values, missing) = &mut cols[k];
            for i in 0..col.len() {
                if col.missing(i) {
                    *missing += 1;
                    continue;
                }
                match values {
                    Values::Num(v) => match col.num(i) {
                        // Infinities are dropped, as Evidently does.
                        Some(x) if x.is_finite() => v.push(x),
                        _ => *missing += 1,
                    },
                    Values::Cat(m) => {
                        if let Some(c) = col.str_at(i).and_then(|s| m.get_mut(s)) {
                            *c += 1;
                            continue;
                        }
                        if let Some(t) = col.text(i) {
                            *m.entry(t).or_insert(0) += 1;
                        }
                    }
                }
            }
        }
        rows += b.num_rows() as u64;
    }
    Ok(Loaded { rows, cols })
}

/// [`load`] through [`crate::jsonl`]'s fast path, when every file is JSON
/// lines and every wanted column has a type it reads; `None` sends the
/// table to the general reader.
fn load_flat_lines(table: &Table, idx: &[usize], kinds: &[bool]) -> Option<Loaded> {
    use crate::jsonl::Want;
    use arrow_schema::DataType;
    if !table.files.iter().all(|(_, f)| *f == Format::JsonLines)
        || idx.iter().enumerate().any(|(k, i)| idx[..k].contains(i))
    {
        return None;
    }
    // Every column of the schema is read as arrow-json would decode it
    // (its type checked on every line); the wanted ones are kept.
    let fields = table.schema.fields();
    let mut wants = Vec::with_capacity(fields.len());
    let mut keep = Vec::with_capacity(fields.len());
    for (ci, f) in fields.iter().enumerate() {
        let wanted = idx.iter().position(|&i| i == ci);
        let want = match (wanted.map(|k| kinds[k]), f.data_type()) {
            (Some(true) | None, DataType::Float64) => Want::Float,
            (Some(true) | None, DataType::Int64) => Want::Int,
            (Some(false) | None, DataType::Utf8) => Want::Text,
            (Some(false) | None, DataType::Boolean) => Want::Bool,
            _ => return None,
        };
        wants.push(want);
        keep.push(wanted.is_some());
    }
    let paths: Vec<&std::path::Path> = table.files.iter().map(|(p, _)| p.as_path()).collect();
    let all: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    let mut read = crate::jsonl::read(&paths, &all, &wants, &keep)?;
    let cols = idx
        .iter()
        .zip(kinds)
        .map(|(&ci, &numeric)| {
            let t = std::mem::take(&mut read.cols[ci]);
            let values = if numeric {
                Values::Num(t.nums)
            } else {
                Values::Cat(t.levels)
            };
            (values, t.missing)
        })
        .collect();
    Some(Loaded {
        rows: read.rows,
        cols,
    })
}

fn stats_err(column: &str, e: impl std::fmt::Display) -> DataError {
    DataError::Invalid(format!("column `{column}`: {e}"))
}

/// Compares `current` with `reference` column by column.
pub fn drift(reference: &Table, current: &Table, opts: &DriftOptions) -> Result<DriftReport> {
    let names: Vec<String> = match &opts.columns {
        Some(c) => c.clone(),
        // Every column ferry can compare (others, like lists, are left out).
        None => reference
            .schema
            .fields()
            .iter()
            .filter(|f| ColType::of(f.data_type()).is_some())
            .map(|f| f.name().clone())
            .collect(),
    };
    // Value kinds (numbers or levels) come from the reference; the current
    // table must agree. Its own type decides the column's kind later.
    let mut kinds = Vec::with_capacity(names.len());
    let mut types = Vec::with_capacity(names.len());
    for n in &names {
        let rt = reference
            .schema
            .field_with_name(n)
            .ok()
            .and_then(|f| ColType::of(f.data_type()));
        let ct = current
            .schema
            .field_with_name(n)
            .ok()
            .and_then(|f| ColType::of(f.data_type()));
        let numeric = |t: Option<ColType>| {
            t.is_some_and(|t| {
                matches!(
                    t,
                    ColType::Int | ColType::Float | ColType::Timestamp | ColType::Date
                )
            })
        };
        if let (Some(r), Some(c)) = (rt, ct)
            && numeric(Some(r)) != numeric(Some(c))
        {
            return Err(DataError::Invalid(format!(
                "column `{n}` is {} in {} but {} in {}",
                r.name(),
                reference.label(),
                c.name(),
                current.label()
            )));
        }
        kinds.push(numeric(rt));
        types.push(ct.or(rt));
    }
    let r = load(reference, &names, &kinds)?;
    let c = load(current, &names, &kinds)?;
    let compared: Vec<(usize, Kind)> = (0..names.len())
        .map(|k| {
            let (cv, cmiss) = &c.cols[k];
            (k, kind_of(types[k], cv, *cmiss))
        })
        .collect();
    // Columns are compared on every core; the report keeps their order.
    let columns = ferry_core::par::map(
        &compared,
        ferry_core::par::threads(),
        || (),
        |&(k, kind), ()| {
            let ((rv, rmiss), (cv, cmiss)) = (&r.cols[k], &c.cols[k]);
            compare(&names[k], kind, rv, cv, *rmiss, *cmiss, opts)
        },
    )
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let drifted = columns.iter().filter(|c| c.drifted).count();
    let share = if columns.is_empty() {
        0.0
    } else {
        drifted as f64 / columns.len() as f64
    };
    Ok(DriftReport {
        reference: reference.label().to_owned(),
        current: current.label().to_owned(),
        reference_rows: r.rows,
        current_rows: c.rows,
        drifted,
        drifted_share: share,
        drift_share_threshold: opts.drift_share,
        dataset_drift: !columns.is_empty() && share >= opts.drift_share,
        columns,
    })
}

/// Counts per level over the union of levels, sorted by level.
fn level_counts(
    r: &HashMap<String, u64>,
    c: &HashMap<String, u64>,
) -> (Vec<String>, Vec<f64>, Vec<f64>) {
    let mut keys: Vec<&String> = r.keys().chain(c.keys()).collect();
    keys.sort();
    keys.dedup();
    let rc = keys
        .iter()
        .map(|k| *r.get(*k).unwrap_or(&0) as f64)
        .collect();
    let cc = keys
        .iter()
        .map(|k| *c.get(*k).unwrap_or(&0) as f64)
        .collect();
    (keys.into_iter().cloned().collect(), rc, cc)
}

/// Equal-width bins over both samples together (numpy.histogram_bin_edges).
fn bins(r: &[f64], c: &[f64], n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let lo = r.iter().chain(c).copied().fold(f64::INFINITY, f64::min);
    let hi = r.iter().chain(c).copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    // numpy.linspace: lo + i * step, the last edge exactly hi.
    let step = (hi - lo) / n as f64;
    let mut edges: Vec<f64> = (0..=n).map(|i| lo + i as f64 * step).collect();
    edges[n] = hi;
    let norm = n as f64 / (hi - lo);
    let count = |v: &[f64]| {
        let mut h = vec![0.0; n];
        for &x in v {
            let mut i = ((x - lo) * norm) as usize;
            if i >= n {
                i = n - 1;
            }
            // Exact edges as numpy: the bin whose left edge is <= x.
            while i > 0 && x < edges[i] {
                i -= 1;
            }
            while i + 1 < n && x >= edges[i + 1] {
                i += 1;
            }
            h[i] += 1.0;
        }
        h
    };
    (count(r), count(c), edges)
}

fn shares(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    counts
        .iter()
        .map(|c| if total > 0.0 { c / total } else { 0.0 })
        .collect()
}

/// One column's values in both tables, and how many there are.
struct Pair<'a> {
    name: &'a str,
    reference: &'a Values,
    current: &'a Values,
    n_ref: usize,
    n_cur: usize,
}

/// Counts per bin (numbers binned by [`bins`]) or per level, in both
/// tables: what binned methods test and the chart shows.
struct Counts {
    levels: Vec<String>,
    edges: Vec<f64>,
    reference: Vec<f64>,
    current: Vec<f64>,
}

/// What a column's test found.
struct Tested {
    /// The p-value (tests) or the distance (distances).
    value: f64,
    statistic: Option<f64>,
    effect: f64,
    effect_label: &'static str,
    note: Option<String>,
}

/// Compares a column of `kind` between the tables: the test its kind and
/// sample size choose (or the one asked for), its value against the
/// threshold, and, on a huge sample, the effect a drift also needs.
fn compare(
    name: &str,
    kind: Kind,
    rv: &Values,
    cv: &Values,
    rmiss: u64,
    cmiss: u64,
    opts: &DriftOptions,
) -> Result<ColumnDrift> {
    let pair = pair(name, rv, cv)?;
    // Text needs no distinct count (its test does not depend on it).
    let distinct = if kind == Kind::Text {
        0
    } else {
        distinct_values(rv, cv)
    };
    // The test follows the kind; the values stay what they are.
    let numeric = kind == Kind::Numerical;
    let method = method(&pair, kind, distinct, opts)?;
    // The threshold for every column goes with the method for every
    // column: a ROC AUC takes it only under `--method domain_classifier`.
    let given = opts.thresholds.get(name).copied().or(
        if method != Method::DomainClassifier || opts.method == Some(Method::DomainClassifier) {
            opts.threshold
        } else {
            None
        },
    );
    if method == Method::DomainClassifier {
        return compare_text(&pair, kind, given, (rmiss, cmiss), opts);
    }
    let threshold = given.unwrap_or_else(|| method.default_threshold());
    let counts = counts(rv, cv, numeric && distinct > 5, opts.bins)?;
    let (rs, cs) = (shares(&counts.reference), shares(&counts.current));
    let tested = test(&pair, method, &counts, (&rs, &cs))?;
    let huge = method.is_p_value() && pair.n_ref > 10_000;
    // Only p-value tests on huge samples need an effect size as well.
    let min_effect = huge.then(|| {
        opts.min_effect
            .unwrap_or(if method == Method::Z { 0.2 } else { 0.1 })
    });
    let past = if method.is_p_value() {
        tested.value < threshold
    } else {
        tested.value >= threshold
    };
    let drifted = past && min_effect.is_none_or(|m| tested.effect >= m);
    let mut note = tested.note;
    if past && !drifted {
        note = Some(format!(
            "significant, but the effect ({:.4}) is below {}: not counted as drift",
            tested.effect,
            min_effect.unwrap_or(0.0)
        ));
    }
    // A text column compared as categories still gets its descriptors.
    let text = match (kind, rv, cv) {
        (Kind::Text, Values::Cat(a), Values::Cat(b)) => {
            let (rt, ct) = (crate::text::expand(a), crate::text::expand(b));
            let measured = (
                crate::text::Measured::of(&rt),
                crate::text::Measured::of(&ct),
            );
            Some(TextDrift {
                classifier: None,
                descriptors: crate::text::descriptors(&rt, &ct, (&measured.0, &measured.1)),
            })
        }
        _ => None,
    };
    Ok(ColumnDrift {
        column: name.to_owned(),
        kind: kind.name(),
        method,
        method_label: method.label(),
        value: tested.value,
        statistic: tested.statistic,
        threshold,
        rule: if method.is_p_value() {
            "p_value < threshold"
        } else {
            "distance >= threshold"
        },
        effect_size: tested.effect,
        effect_label: tested.effect_label,
        min_effect,
        drifted,
        reference_rows: pair.n_ref as u64,
        current_rows: pair.n_cur as u64,
        reference_missing: rmiss,
        current_missing: cmiss,
        note,
        text,
        histogram: Histogram {
            edges: counts.edges,
            levels: counts.levels,
            reference: rs,
            current: cs,
        },
    })
}

/// The column's values in both tables, each with some to compare.
fn pair<'a>(name: &'a str, rv: &'a Values, cv: &'a Values) -> Result<Pair<'a>> {
    let (n_ref, n_cur) = match (rv, cv) {
        (Values::Num(a), Values::Num(b)) => (a.len(), b.len()),
        (Values::Cat(a), Values::Cat(b)) => (
            a.values().sum::<u64>() as usize,
            b.values().sum::<u64>() as usize,
        ),
        _ => return Err(DataError::Internal("mismatched column kinds".into())),
    };
    if n_ref == 0 || n_cur == 0 {
        return Err(DataError::Invalid(format!(
            "column `{name}`: no values to compare in the {} table",
            if n_ref == 0 { "reference" } else { "current" }
        )));
    }
    Ok(Pair {
        name,
        reference: rv,
        current: cv,
        n_ref,
        n_cur,
    })
}

/// Distinct values over both tables (numbers: up to 6 is all the choice
/// of test needs).
fn distinct_values(rv: &Values, cv: &Values) -> usize {
    match (rv, cv) {
        (Values::Num(a), Values::Num(b)) => {
            let mut seen: Vec<u64> = Vec::new();
            for &x in a.iter().chain(b) {
                let k = crate::suite::num_key(x);
                if !seen.contains(&k) {
                    seen.push(k);
                    if seen.len() > 5 {
                        break;
                    }
                }
            }
            seen.len()
        }
        (Values::Cat(a), Values::Cat(b)) => {
            let mut k: Vec<&String> = a.keys().chain(b.keys()).collect();
            k.sort();
            k.dedup();
            k.len()
        }
        _ => 0,
    }
}

/// The method for the column: its own, else the one for every column
/// (`domain_classifier` for text columns only, the others for the rest),
/// else Evidently's choice by the kind, the reference's size and the
/// distinct values. Tests that need numbers refuse levels; the domain
/// classifier refuses numbers.
fn method(p: &Pair<'_>, kind: Kind, distinct: usize, opts: &DriftOptions) -> Result<Method> {
    let numeric = kind == Kind::Numerical;
    let auto = if kind == Kind::Text {
        Method::DomainClassifier
    } else if p.n_ref <= 1000 {
        if numeric && distinct > 5 {
            Method::Ks
        } else if distinct > 2 {
            Method::ChiSquare
        } else {
            Method::Z
        }
    } else if numeric && distinct > 5 {
        Method::Wasserstein
    } else {
        Method::JensenShannon
    };
    let for_all = opts
        .method
        .filter(|&m| (m == Method::DomainClassifier) == (kind == Kind::Text));
    let method = opts
        .methods
        .get(p.name)
        .copied()
        .or(for_all)
        .unwrap_or(auto);
    let numbers = matches!(p.reference, Values::Num(_));
    if !numbers && matches!(method, Method::Ks | Method::Wasserstein) {
        return Err(DataError::Invalid(format!(
            "column `{}`: {} needs numbers; the column is {}",
            p.name,
            method.label(),
            kind.name()
        )));
    }
    if numbers && method == Method::DomainClassifier {
        return Err(DataError::Invalid(format!(
            "column `{}`: the domain classifier needs text; the column is {}",
            p.name,
            kind.name()
        )));
    }
    Ok(method)
}

/// A text column compared by the domain classifier ([`crate::text`]):
/// its ROC AUC against the threshold `given`, else Evidently's bar by the
/// reference's size (a random classifier's 95th percentile up to 1000
/// texts, 0.55 past them); its descriptors; a chart of the texts' length.
fn compare_text(
    p: &Pair<'_>,
    kind: Kind,
    given: Option<f64>,
    (rmiss, cmiss): (u64, u64),
    opts: &DriftOptions,
) -> Result<ColumnDrift> {
    use crate::text::{self, MAX_TEXTS, Measured, SEED};
    let (Values::Cat(a), Values::Cat(b)) = (p.reference, p.current) else {
        return unreachable_kinds();
    };
    let (rt, ct) = (text::expand(a), text::expand(b));
    let (rm, cm) = (Measured::of(&rt), Measured::of(&ct));
    let (rs, cs) = (
        text::sample(&rt, MAX_TEXTS, SEED),
        text::sample(&ct, MAX_TEXTS, SEED + 1),
    );
    let run = text::domain_classifier(&rs, &cs)
        .map_err(|e| DataError::Invalid(format!("column `{}`: {e}", p.name)))?;
    let (threshold, from) = match given {
        Some(t) => (t, "given"),
        None if p.n_ref > 1000 => (ABSOLUTE_ROC_AUC, "absolute"),
        None => (
            ferry_stats::random_roc_auc_quantile(run.test.1, run.test.0, 0.95, 1000, SEED)
                .map_err(|e| stats_err(p.name, e))?,
            "random_classifier",
        ),
    };
    let mut notes = Vec::new();
    if rs.len() < rt.len() || cs.len() < ct.len() {
        notes.push(format!(
            "the classifier saw a sample of {} reference and {} current texts",
            crate::show::count(rs.len() as u64),
            crate::show::count(cs.len() as u64)
        ));
    }
    if run.vocabulary == 0 {
        notes.push(
            "no word is left to tell the tables apart (English stop words and words in more than half the texts are dropped)".into(),
        );
    }
    let (rc, cc, edges) = bins(&rm.chars, &cm.chars, opts.bins.max(1));
    Ok(ColumnDrift {
        column: p.name.to_owned(),
        kind: kind.name(),
        method: Method::DomainClassifier,
        method_label: Method::DomainClassifier.label(),
        value: run.roc_auc,
        statistic: None,
        threshold,
        rule: "roc_auc > threshold",
        effect_size: run.roc_auc,
        effect_label: "ROC AUC",
        min_effect: None,
        drifted: run.roc_auc > threshold,
        reference_rows: p.n_ref as u64,
        current_rows: p.n_cur as u64,
        reference_missing: rmiss,
        current_missing: cmiss,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        text: Some(TextDrift {
            descriptors: text::descriptors(&rt, &ct, (&rm, &cm)),
            classifier: Some(Classifier {
                roc_auc: run.roc_auc,
                threshold,
                threshold_from: from,
                train_reference: run.train.0,
                train_current: run.train.1,
                test_reference: run.test.0,
                test_current: run.test.1,
                vocabulary: run.vocabulary,
                epochs: run.epochs,
                typical_words_current: run.words_current,
                typical_words_reference: run.words_reference,
                typical_examples_current: run.examples_current,
                typical_examples_reference: run.examples_reference,
            }),
        }),
        histogram: Histogram {
            edges,
            levels: vec![],
            reference: shares(&rc),
            current: shares(&cc),
        },
    })
}

/// Counts per bin when `binned` (numbers with many distinct values), else
/// per level: a categorical column's, or the few numbers themselves.
fn counts(rv: &Values, cv: &Values, binned: bool, n_bins: usize) -> Result<Counts> {
    let (levels, edges, reference, current) = match (rv, cv) {
        (Values::Num(a), Values::Num(b)) if binned => {
            let (rc, cc, edges) = bins(a, b, n_bins.max(1));
            (vec![], edges, rc, cc)
        }
        (Values::Num(a), Values::Num(b)) => {
            // Few distinct numbers, or a categorical integer column: its
            // values are the levels.
            let to_map = |v: &[f64]| {
                let mut m: HashMap<String, u64> = HashMap::new();
                for x in v {
                    *m.entry(crate::show::trim(*x)).or_insert(0) += 1;
                }
                m
            };
            let (l, rc, cc) = level_counts(&to_map(a), &to_map(b));
            (l, vec![], rc, cc)
        }
        (Values::Cat(a), Values::Cat(b)) => {
            let (l, rc, cc) = level_counts(a, b);
            (l, vec![], rc, cc)
        }
        _ => unreachable_kinds()?,
    };
    Ok(Counts {
        levels,
        edges,
        reference,
        current,
    })
}

/// Runs `method` on the column: on its values (KS, Wasserstein), its
/// counts (chi-square, z-test) or its shares (`rs`, `cs`: Jensen-Shannon,
/// PSI).
fn test(
    p: &Pair<'_>,
    method: Method,
    counts: &Counts,
    (rs, cs): (&[f64], &[f64]),
) -> Result<Tested> {
    let err = |e: ferry_stats::StatsError| stats_err(p.name, e);
    let tested = |value, statistic, effect, effect_label| Tested {
        value,
        statistic,
        effect,
        effect_label,
        note: None,
    };
    Ok(match method {
        Method::Ks => {
            let (Values::Num(a), Values::Num(b)) = (p.reference, p.current) else {
                return unreachable_kinds();
            };
            let r = ferry_stats::ks_2samp(a, b).map_err(err)?;
            tested(r.pvalue, Some(r.statistic), r.statistic, "KS D")
        }
        Method::ChiSquare => chi_square(p, counts)?,
        Method::Z => z_test(p, counts)?,
        Method::Wasserstein => {
            let (Values::Num(a), Values::Num(b)) = (p.reference, p.current) else {
                return unreachable_kinds();
            };
            let wd = ferry_stats::wasserstein_distance(a, b).map_err(err)?;
            let mut m = crate::sketch::Moments::default();
            for &x in a {
                m.add(x);
            }
            let norm = m.pstdev().unwrap_or(0.0).max(0.001);
            let d = wd / norm;
            tested(d, Some(wd), d, "normed Wasserstein distance")
        }
        Method::JensenShannon => {
            let d = ferry_stats::jensenshannon(rs, cs, None).map_err(err)?;
            tested(d, None, d, "Jensen-Shannon distance")
        }
        Method::Psi => {
            let fill = |v: &[f64]| {
                v.iter()
                    .map(|&s| if s == 0.0 { 0.0001 } else { s })
                    .collect::<Vec<_>>()
            };
            let d = ferry_stats::psi(&fill(rs), &fill(cs)).map_err(err)?;
            tested(d, None, d, "PSI")
        }
        // Compared by `compare_text`, never here.
        Method::DomainClassifier => return unreachable_kinds(),
    })
}

/// Chi-square of the current counts against the reference's shares, with
/// Cramér's V as the effect; a level the reference lacks is drift outright.
fn chi_square(p: &Pair<'_>, counts: &Counts) -> Result<Tested> {
    let (rc, cc) = (&counts.reference, &counts.current);
    let k_norm = p.n_cur as f64 / p.n_ref as f64;
    let expected: Vec<f64> = rc.iter().map(|c| c * k_norm).collect();
    let table = vec![rc.clone(), cc.clone()];
    let v = ferry_stats::chi2_contingency(&table)
        .map(|r| r.cramers_v)
        .unwrap_or(0.0);
    if expected.iter().zip(cc).any(|(e, o)| *e == 0.0 && *o > 0.0) {
        return Ok(Tested {
            value: 0.0,
            statistic: Some(f64::INFINITY),
            effect: v,
            effect_label: "Cramér's V",
            note: Some("a level absent from the reference appears in the current table".into()),
        });
    }
    let r = ferry_stats::chisquare(cc, &expected).map_err(|e| stats_err(p.name, e))?;
    Ok(Tested {
        value: r.pvalue,
        statistic: Some(r.statistic),
        effect: v,
        effect_label: "Cramér's V",
        note: None,
    })
}

/// The two-proportion z-test on the share of the first level, as Evidently
/// tests it, with Cohen's h as the effect.
fn z_test(p: &Pair<'_>, counts: &Counts) -> Result<Tested> {
    let (rc, cc) = (&counts.reference, &counts.current);
    let (a, b) = (
        rc.first().copied().unwrap_or(0.0),
        cc.first().copied().unwrap_or(0.0),
    );
    let (p1, p2) = (a / p.n_ref as f64, b / p.n_cur as f64);
    let h = (2.0 * p1.sqrt().asin() - 2.0 * p2.sqrt().asin()).abs();
    let (value, statistic, effect) = if rc.len() == 1 && cc.len() == 1 {
        (1.0, Some(0.0), 0.0)
    } else {
        let r =
            ferry_stats::two_proportion_z_test(a as u64, p.n_ref as u64, b as u64, p.n_cur as u64)
                .map_err(|e| stats_err(p.name, e))?;
        (r.pvalue, Some(r.statistic), h)
    };
    Ok(Tested {
        value,
        statistic,
        effect,
        effect_label: "Cohen's h",
        note: None,
    })
}

fn unreachable_kinds<T>() -> Result<T> {
    Err(DataError::Internal("mismatched column kinds".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_numpy_edges() {
        let (r, c, e) = bins(&[0.0, 1.0, 2.0, 3.0], &[3.0, 3.0], 3);
        assert_eq!(e, vec![0.0, 1.0, 2.0, 3.0]);
        // numpy puts the right edge in the last bin.
        assert_eq!(r, vec![1.0, 1.0, 2.0]);
        assert_eq!(c, vec![0.0, 0.0, 2.0]);
    }

    /// The JSON lines fast path's invariant: what it takes is what the
    /// general reader gives, in the same order.
    #[test]
    fn flat_lines_read_fast_as_the_general_reader_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..3000 {
            let x = if i % 97 == 0 {
                "null".to_owned()
            } else {
                format!("{}", (i as f64) * 0.37 - 40.0)
            };
            let c = ["a", "b", r"c\\d", r"\u00e9"][i % 4];
            let b = if i % 5 == 0 { "true" } else { "false" };
            let i_part = if i % 11 == 0 {
                String::new()
            } else {
                format!(",\"n\":{}", i % 13)
            };
            text.push_str(&format!(
                "{{\"ts\":{i},\"x\":{x},\"c\":\"{c}\",\"b\":{b},\"o\":\"q\\\"r\"{i_part}}}\n"
            ));
            if i % 500 == 0 {
                text.push('\n');
            }
        }
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, &text).unwrap();
        let table =
            Table::open_files(vec![path.clone(), path], &crate::TableSpec::new("log")).unwrap();
        let names: Vec<String> = ["x", "c", "b", "n", "ts"].map(String::from).into();
        let kinds = [true, false, false, true, true];
        let idx: Vec<usize> = names
            .iter()
            .map(|n| table.schema.index_of(n).unwrap())
            .collect();
        let fast = load_flat_lines(&table, &idx, &kinds).expect("flat lines");
        let general = load_batches(&table, &idx, &kinds).unwrap();
        assert_eq!(fast.rows, 6000);
        assert_eq!(fast, general);
    }
}
