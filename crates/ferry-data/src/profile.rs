//! `ferry data profile`: one streaming pass over a trusted batch gives each
//! column's type, missing share, range, mean, spread, quantiles, distinct
//! count and (for low-cardinality columns) its levels; [`Profile::suite_yaml`]
//! turns that into a starting expectation suite for humans to edit.

use crate::column::Col;
use crate::sketch::{Distinct, Moments, Quantiles};
use crate::source::{ColType, Table};
use crate::{DataError, Result};
use serde::Serialize;
use std::collections::HashMap;

/// Levels tracked per column; past this a column is not low-cardinality.
pub const MAX_LEVELS: usize = 1000;
/// Columns with at most this many levels get an `in_set` expectation.
pub const SET_LEVELS: usize = 50;

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub source: String,
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: Option<ColType>,
    pub missing: u64,
    pub missing_share: f64,
    pub distinct: u64,
    pub distinct_exact: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdev: Option<f64>,
    /// (q, value) for q in 0.05, 0.25, 0.5, 0.75, 0.95.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quantiles: Vec<(f64, f64)>,
    /// Levels with counts, most frequent first (low-cardinality columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<(String, u64)>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// String columns: values that are empty or whitespace only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty: Option<u64>,
}

struct Acc {
    missing: u64,
    moments: Moments,
    quantiles: Quantiles,
    distinct: Distinct,
    levels: Option<HashMap<String, u64>>,
    len: Moments,
    empty: u64,
}

impl Default for Acc {
    fn default() -> Self {
        Acc {
            missing: 0,
            moments: Moments::default(),
            quantiles: Quantiles::default(),
            distinct: Distinct::default(),
            levels: Some(HashMap::new()),
            len: Moments::default(),
            empty: 0,
        }
    }
}

/// Profiles every column of `table`.
pub fn profile(table: &Table) -> Result<Profile> {
    let schema = table.schema.clone();
    let n = schema.fields().len();
    let mut accs: Vec<Acc> = (0..n).map(|_| Acc::default()).collect();
    let types: Vec<Option<ColType>> = schema
        .fields()
        .iter()
        .map(|f| ColType::of(f.data_type()))
        .collect();
    let mut rows = 0u64;
    for batch in table.prefetched() {
        let (_, b) = batch?;
        for (ci, acc) in accs.iter_mut().enumerate() {
            if types[ci].is_none() {
                continue;
            }
            let col = Col::of(b.column(ci))?;
            for i in 0..col.len() {
                if col.missing(i) {
                    acc.missing += 1;
                    continue;
                }
                acc.distinct.add(col.hash(i));
                if let Some(v) = col.num(i) {
                    acc.moments.add(v);
                    acc.quantiles.add(v);
                }
                if let Some(s) = col.str_at(i) {
                    acc.len.add(s.chars().count() as f64);
                    if s.trim().is_empty() {
                        acc.empty += 1;
                    }
                }
                if let Some(levels) = &mut acc.levels {
                    if !matches!(col, Col::Float(_)) {
                        if let Some(c) = col.str_at(i).and_then(|s| levels.get_mut(s)) {
                            *c += 1;
                        } else if let Some(t) = col.text(i) {
                            *levels.entry(t).or_insert(0) += 1;
                        }
                        if levels.len() > MAX_LEVELS {
                            acc.levels = None;
                        }
                    } else {
                        acc.levels = None;
                    }
                }
            }
        }
        rows += b.num_rows() as u64;
    }
    if rows == 0 {
        return Err(DataError::Empty {
            source_name: table.label().to_owned(),
        });
    }
    let columns = schema
        .fields()
        .iter()
        .zip(accs)
        .zip(types)
        .map(|((f, mut a), ty)| {
            let numeric = ty.is_some_and(|t| t != ColType::String);
            let quantiles = if numeric && a.moments.n > 0 {
                [0.05, 0.25, 0.5, 0.75, 0.95]
                    .iter()
                    .filter_map(|&q| a.quantiles.quantile(q).map(|v| (q, v)))
                    .collect()
            } else {
                vec![]
            };
            let levels = a.levels.map(|l| {
                let mut v: Vec<(String, u64)> = l.into_iter().collect();
                v.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
                v
            });
            ColumnProfile {
                name: f.name().clone(),
                ty,
                missing: a.missing,
                missing_share: a.missing as f64 / rows as f64,
                distinct: a.distinct.count(),
                distinct_exact: a.distinct.is_exact(),
                min: numeric.then_some(a.moments.min).flatten(),
                max: numeric.then_some(a.moments.max).flatten(),
                mean: if numeric { a.moments.mean() } else { None },
                stdev: if numeric { a.moments.stdev() } else { None },
                quantiles,
                levels,
                min_length: a.len.min.map(|v| v as u64),
                max_length: a.len.max.map(|v| v as u64),
                empty: (ty == Some(ColType::String)).then_some(a.empty),
            }
        })
        .collect();
    Ok(Profile {
        source: table.label().to_owned(),
        rows,
        columns,
    })
}

/// A YAML scalar: plain when safe, JSON-quoted otherwise.
fn scalar(s: &str) -> String {
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let keyword = matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "nan" | "inf"
    );
    let plain = first_ok
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !keyword;
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// `v` rounded outward to 4 significant digits (`down`: towards -inf).
fn round_out(v: f64, down: bool) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let mag = 10f64.powi(v.abs().log10().floor() as i32 - 3);
    let r = if down {
        (v / mag).floor() * mag
    } else {
        (v / mag).ceil() * mag
    };
    // Trim the float noise of the multiplication.
    format!("{r:.12e}").parse().unwrap_or(r)
}

fn num(v: f64) -> String {
    crate::show::trim(v)
}

/// The rules proposed for a text column (a string column with too many
/// levels for `in_set`): its observed length range, its share of empty
/// values, and (when more than half its values are distinct, but not all)
/// a floor under its distinct share.
fn text_rules(c: &ColumnProfile, nonmissing: u64, all_distinct: bool, rules: &mut Vec<String>) {
    if let (Some(a), Some(b)) = (c.min_length, c.max_length) {
        rules.push(format!("length: {{min: {a}, max: {b}}}"));
    }
    if nonmissing == 0 {
        return;
    }
    let empty = c.empty.unwrap_or(0);
    let share = if empty == 0 {
        0.0
    } else {
        (((empty as f64 / nonmissing as f64) * 2.0 + 0.005) * 1000.0).ceil() / 1000.0
    };
    rules.push(format!("max_empty_share: {}", num(share.min(1.0))));
    // Text as Evidently types it (distinct values more than half the
    // values): a floor under the share catches repeated texts.
    let distinct = c.distinct as f64 / nonmissing as f64;
    if distinct > 0.5 && !all_distinct {
        let floor = (distinct * 0.8 * 1000.0).floor() / 1000.0;
        rules.push(format!("distinct_share: {{min: {}}}", num(floor)));
    }
}

impl Profile {
    /// A starting suite: the rules are written in the file's header.
    pub fn suite_yaml(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "# Expectations profiled from {} ({} rows) by `ferry data profile`.\n\
             # A starting point: edit, then commit. How each rule was derived:\n\
             #   rows: observed +-10%; not_null: no missing value seen, else max_null_share:\n\
             #   twice the observed share + 0.005; numbers: between the observed min and max\n\
             #   widened by 5% of the range, mean within +-0.1 sd, stdev within +-10%;\n\
             #   strings with at most {SET_LEVELS} levels: in_set; otherwise (text) the observed\n\
             #   length range, max_empty_share: none seen 0, else twice the observed + 0.005,\n\
             #   and when more than half the values are distinct, distinct_share at least 80%\n\
             #   of the observed;\n\
             #   columns whose values were all distinct: unique.\n",
            self.source, self.rows
        ));
        let names: Vec<String> = self.columns.iter().map(|c| scalar(&c.name)).collect();
        out.push_str(&format!(
            "table:\n  columns: [{}]\n  rows: {{min: {}, max: {}}}\ncolumns:\n",
            names.join(", "),
            (self.rows as f64 * 0.9).floor(),
            (self.rows as f64 * 1.1).ceil()
        ));
        for c in &self.columns {
            let Some(ty) = c.ty else {
                out.push_str(&format!(
                    "  # {}: a type ferry cannot check yet\n",
                    scalar(&c.name)
                ));
                continue;
            };
            let mut rules: Vec<String> = vec![format!("type: {}", ty.name())];
            if c.missing == 0 {
                rules.push("not_null: true".into());
            } else {
                let s = ((c.missing_share * 2.0 + 0.005) * 1000.0).ceil() / 1000.0;
                rules.push(format!("max_null_share: {}", num(s.min(1.0))));
            }
            let nonmissing = self.rows - c.missing;
            let all_distinct = c.distinct_exact && c.distinct == nonmissing && nonmissing >= 100;
            match ty {
                ColType::Int | ColType::Float => {
                    if let (Some(lo), Some(hi)) = (c.min, c.max) {
                        let pad = (hi - lo) * 0.05;
                        // A column never seen negative is not widened below 0.
                        let min = if lo >= 0.0 {
                            (lo - pad).max(0.0)
                        } else {
                            lo - pad
                        };
                        rules.push(format!(
                            "between: {{min: {}, max: {}}}",
                            num(round_out(min, true)),
                            num(round_out(hi + pad, false))
                        ));
                    }
                    if let (Some(m), Some(sd)) = (c.mean, c.stdev)
                        && sd > 0.0
                        && !all_distinct
                    {
                        rules.push(format!(
                            "mean: {{min: {}, max: {}}}",
                            num(round_out(m - 0.1 * sd, true)),
                            num(round_out(m + 0.1 * sd, false))
                        ));
                        rules.push(format!(
                            "stdev: {{min: {}, max: {}}}",
                            num(round_out(sd * 0.9, true)),
                            num(round_out(sd * 1.1, false))
                        ));
                    }
                }
                ColType::String => match &c.levels {
                    Some(levels) if levels.len() <= SET_LEVELS && !all_distinct => {
                        let mut l: Vec<String> = levels.iter().map(|(v, _)| scalar(v)).collect();
                        l.sort();
                        rules.push(format!("in_set: [{}]", l.join(", ")));
                    }
                    _ => text_rules(c, nonmissing, all_distinct, &mut rules),
                },
                _ => {}
            }
            if all_distinct && matches!(ty, ColType::Int | ColType::String) {
                rules.push("unique: true".into());
            }
            out.push_str(&format!(
                "  {}: {{{}}}\n",
                scalar(&c.name),
                rules.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_outward() {
        assert_eq!(round_out(12.3456, true), 12.34);
        assert_eq!(round_out(12.3456, false), 12.35);
        assert_eq!(round_out(-0.012345, true), -0.01235);
        assert_eq!(round_out(1_234_567.0, false), 1_235_000.0);
    }

    #[test]
    fn scalars_are_quoted_when_needed() {
        assert_eq!(scalar("cat_a"), "cat_a");
        assert_eq!(scalar("a b"), "\"a b\"");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("10"), "\"10\"");
    }
}
