//! `ferry data profile`, `ferry check data`, `ferry check drift`.

use crate::cli::{CheckCommand, DataCommand, TableArgs};
use crate::exit::{self, usage};
use crate::ui::{Style, print_json};
use anyhow::{Context, Result};
use ferry_data::drift::Method;
use ferry_data::job::{self, Hooks, Input, Job, Opened, Report, Reports};
use ferry_data::{ColType, DataError, Format, Table, TableSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Opens a table; a `--type` naming a column it does not have is an error
/// (not a silent no-op).
fn open_table(spec: &TableSpec, a: &TableArgs) -> Result<Table> {
    let t = Table::open(spec)?;
    inspect(&t, a)?;
    Ok(t)
}

/// What the command line adds once a table is open: a hint when it reads
/// as one column whose name holds another separator (likely not
/// comma-separated), and an error when a `--type` names a column it does
/// not have.
fn inspect(t: &Table, a: &TableArgs) -> Result<(), DataError> {
    if let [only] = t.schema.fields().as_ref()
        && let Some(sep) = [';', '\t', '|']
            .into_iter()
            .find(|c| only.name().contains(*c))
    {
        let shown = if sep == '\t' {
            "tab".to_owned()
        } else {
            format!("'{sep}'")
        };
        eprintln!(
            "hint: {} reads as one column named `{}`; if its fields are separated by {shown}, pass --delimiter {shown}",
            t.label(),
            only.name().escape_debug()
        );
    }
    for given in &a.types {
        let col = given.split_once('=').map_or(given.as_str(), |(c, _)| c);
        require_column(t, t.label(), &format!("--type `{given}`"), col)?;
    }
    Ok(())
}

/// A usage error (exit 2, as every [`DataError`] but an internal one)
/// unless `t` (read from `label`) has the column `col` that the option
/// `what` names.
fn require_column(t: &Table, label: &str, what: &str, col: &str) -> Result<(), DataError> {
    if t.schema.field_with_name(col).is_ok() {
        return Ok(());
    }
    let names: Vec<&str> = t
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    Err(DataError::Invalid(format!(
        "{what}: {label} has no column `{col}` (its columns: {})",
        names.join(", ")
    )))
}

/// What `ferry check` adds to a job's steps: [`inspect`] for every table,
/// and, once both of a drift's tables are open, that the reference has the
/// columns `--threshold` and `--columns` name.
struct Flags<'a> {
    read: &'a TableArgs,
    /// The reference as the user named it.
    reference: &'a str,
    /// The columns the reference must have, with the option naming each.
    needs: Vec<(&'static str, String)>,
}

impl Hooks for Flags<'_> {
    fn opened(&mut self, table: Opened<'_>) -> Result<(), DataError> {
        match table {
            Opened::Table(t) | Opened::Reference(t) => inspect(t, self.read),
            Opened::Current { reference, current } => {
                inspect(current, self.read)?;
                for (flag, col) in &self.needs {
                    require_column(reference, self.reference, flag, col)?;
                }
                Ok(())
            }
        }
    }
}

/// A table spec from the command line, relative to `cwd`.
pub fn table_spec(cwd: &Path, path: &str, a: &TableArgs) -> Result<TableSpec> {
    let full = if Path::new(path).is_absolute() {
        path.to_owned()
    } else {
        cwd.join(path).to_string_lossy().into_owned()
    };
    let mut spec = TableSpec::new(full);
    spec.format = a.format.as_deref().and_then(Format::parse);
    spec.csv.header = !a.no_header;
    spec.csv.delimiter = match a.delimiter.as_str() {
        "tab" | "\\t" => b'\t',
        d if d.len() == 1 => d.as_bytes()[0],
        d => {
            return Err(usage(format!(
                "--delimiter `{d}`: give one character (or `tab`)"
            )));
        }
    };
    let one_char = |flag: &str, v: &str| -> Result<u8> {
        match v.as_bytes() {
            [c] => Ok(*c),
            _ => Err(usage(format!("--{flag} `{v}`: give one character"))),
        }
    };
    spec.csv.quote = one_char("quote", &a.quote)?;
    spec.csv.escape = a
        .escape
        .as_deref()
        .map(|e| one_char("escape", e))
        .transpose()?;
    for t in &a.types {
        let (col, ty) = t
            .split_once('=')
            .ok_or_else(|| usage(format!("--type `{t}`: write COLUMN=TYPE, e.g. price=float")))?;
        let ty = ColType::parse(ty).ok_or_else(|| {
            usage(format!(
                "--type `{t}`: unknown type `{ty}`; types: {}",
                ColType::NAMES
            ))
        })?;
        spec.types.insert(col.to_owned(), ty);
    }
    Ok(spec)
}

pub fn data(style: &Style, cwd: &Path, cmd: DataCommand) -> Result<u8> {
    let _ = style;
    match cmd {
        DataCommand::Profile {
            table,
            output,
            json,
            read,
        } => {
            let t = open_table(&table_spec(cwd, &table, &read)?, &read)?;
            let mut p = ferry_data::profile(&t)?;
            p.source = table.clone();
            if json {
                print_json(&p)?;
                return Ok(exit::OK);
            }
            let yaml = p.suite_yaml();
            match output {
                Some(o) => {
                    ferry_fs::write_atomic(&cwd.join(&o), yaml.as_bytes())
                        .with_context(|| format!("cannot write {}", o.display()))?;
                    eprintln!(
                        "profiled {} rows x {} columns of {}; suite written to {}",
                        p.rows,
                        p.columns.len(),
                        table,
                        o.display()
                    );
                }
                None => print!("{yaml}"),
            }
            Ok(exit::OK)
        }
    }
}

pub fn check(style: &Style, cwd: &Path, cmd: CheckCommand) -> Result<u8> {
    match cmd {
        CheckCommand::Data {
            table,
            expect,
            json,
            html,
            read,
        } => {
            let suite = job::suite(cwd, &expect)?;
            let table = Input {
                spec: table_spec(cwd, &table, &read)?,
                name: table,
            };
            let flags = Flags {
                read: &read,
                reference: "",
                needs: Vec::new(),
            };
            run_check(style, cwd, Job::Data { table, suite }, flags, html, json)
        }
        CheckCommand::Drift {
            reference,
            current,
            columns,
            method,
            threshold,
            drift_share,
            min_effect,
            json,
            html,
            read,
        } => {
            let (method, methods) = methods(method.as_deref())?;
            if !(0.0..=1.0).contains(&drift_share) {
                return Err(usage(format!(
                    "--drift-share {drift_share}: give a share between 0 and 1"
                )));
            }
            let (one, thresholds) = thresholds(&threshold)?;
            // A per-column threshold (or a --columns entry) must name a column.
            let needs = thresholds
                .keys()
                .map(|c| ("--threshold", c.clone()))
                .chain(methods.keys().map(|c| ("--method", c.clone())))
                .chain(columns.iter().flatten().map(|c| ("--columns", c.clone())))
                .collect();
            let job = Job::Drift {
                reference: Input {
                    spec: table_spec(cwd, &reference, &read)?,
                    name: reference.clone(),
                },
                current: Input {
                    spec: table_spec(cwd, &current, &read)?,
                    name: current,
                },
                options: ferry_data::DriftOptions {
                    columns,
                    method,
                    methods,
                    threshold: one,
                    thresholds,
                    drift_share,
                    min_effect,
                    ..Default::default()
                },
            };
            let flags = Flags {
                read: &read,
                reference: &reference,
                needs,
            };
            run_check(style, cwd, job, flags, html, json)
        }
    }
}

/// Runs the check `ferry check` asked for, writes its HTML report to
/// `html` and renders what it found: the report as JSON on stdout with
/// `json` (the summary then goes to stderr), else the summary on stdout.
fn run_check(
    style: &Style,
    cwd: &Path,
    job: Job,
    mut flags: Flags<'_>,
    html: Option<PathBuf>,
    json: bool,
) -> Result<u8> {
    let reports = Reports {
        json: None,
        html: html.clone(),
    };
    let outcome = job::run(cwd, job, &reports, &mut flags)?;
    if let Some(h) = &html {
        eprintln!("report: {}", h.display());
    }
    if json {
        print_json(&outcome.report)?;
    }
    match &outcome.report {
        Report::Data(r) => print_check(style, r, outcome.took, json),
        Report::Drift(r) => print_drift(style, r, outcome.took, json),
    }
    Ok(exit::of_check(outcome.passed()))
}

/// `--method`: one for every column (`psi`), a column's
/// (`review=domain_classifier`), or both, comma-separated.
fn methods(given: Option<&str>) -> Result<(Option<Method>, BTreeMap<String, Method>)> {
    let mut one = None;
    let mut per_column = BTreeMap::new();
    for m in given.into_iter().flat_map(|g| g.split(',')) {
        let (col, name) = match m.split_once('=') {
            Some((c, n)) => (Some(c.trim()), n.trim()),
            None => (None, m.trim()),
        };
        let parsed = Method::parse(name)
            .ok_or_else(|| usage(format!("--method `{m}`: methods: {}", Method::NAMES)))?;
        match col {
            Some(c) => {
                per_column.insert(c.to_owned(), parsed);
            }
            None => one = Some(parsed),
        }
    }
    Ok((one, per_column))
}

/// `--threshold` values: one for every column (`0.1`), or a column's
/// (`price=0.2`).
fn thresholds(given: &[String]) -> Result<(Option<f64>, BTreeMap<String, f64>)> {
    let mut thresholds = BTreeMap::new();
    let mut one = None;
    for t in given {
        let (col, x) = match t.split_once('=') {
            Some((c, x)) => (Some(c), x),
            None => (None, t.as_str()),
        };
        let x: f64 = x
            .parse()
            .ok()
            .filter(|x: &f64| *x > 0.0 && x.is_finite())
            .ok_or_else(|| {
                usage(format!(
                    "--threshold `{t}`: give a positive number, or COLUMN=NUMBER"
                ))
            })?;
        match col {
            Some(c) => {
                thresholds.insert(c.to_owned(), x);
            }
            None => one = Some(x),
        }
    }
    Ok((one, thresholds))
}

/// The terminal summary (stderr when stdout carries JSON).
fn print_check(s: &Style, r: &ferry_data::CheckReport, took: std::time::Duration, json: bool) {
    let mut out = String::new();
    let verdict = if r.passed {
        s.green("passed")
    } else {
        s.red(&format!("{} FAILED", r.failed))
    };
    out.push_str(&format!(
        "data check: {} ({}, {} expectations, {:.2} s): {verdict}\n",
        r.source,
        ferry_data::show::rows(r.rows),
        r.expectations,
        took.as_secs_f64()
    ));
    for x in r.results.iter().filter(|x| !x.success) {
        let mut line = format!(
            "  {} {}  expected {}",
            s.red("FAIL"),
            s.bold(&x.id),
            x.expected
        );
        match x.failing_text() {
            Some(failing) => line.push_str(&format!("; {failing}")),
            None => line.push_str(&format!("; observed {}", x.observed_text())),
        }
        if let Some(f) = x.sample.first() {
            line.push_str(&format!(", e.g. {} = {}", r.place(f), f.value_text()));
        }
        if !x.unexpected_values.is_empty() {
            let v: Vec<String> = x
                .unexpected_values
                .iter()
                .take(5)
                .map(|(v, c)| format!("{v} x{c}"))
                .collect();
            line.push_str(&format!(" [{}]", v.join(", ")));
        }
        if let Some(n) = &x.note {
            line.push_str(&format!(" ({n})"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    if !r.passed {
        out.push_str(&format!(
            "  {} other expectations passed\n",
            r.expectations - r.failed
        ));
    }
    if json {
        eprint!("{out}");
    } else {
        print!("{out}");
    }
}

fn print_drift(s: &Style, r: &ferry_data::DriftReport, took: std::time::Duration, json: bool) {
    let mut out = String::new();
    let verdict = if r.dataset_drift {
        s.red("dataset drift")
    } else {
        s.green("no dataset drift")
    };
    out.push_str(&format!(
        "drift: {} vs {} ({} / {} rows, {:.2} s): {} of {} columns drifted ({}, threshold {}): {verdict}\n",
        r.current,
        r.reference,
        ferry_data::show::count(r.current_rows),
        ferry_data::show::count(r.reference_rows),
        took.as_secs_f64(),
        r.drifted,
        r.columns.len(),
        ferry_data::show::share(r.drifted_share),
        ferry_data::show::share(r.drift_share_threshold)
    ));
    let width = r.columns.iter().map(|c| c.column.len()).max().unwrap_or(0);
    for c in &r.columns {
        let tag = if c.drifted {
            s.red("DRIFT")
        } else {
            s.dim("  ok ")
        };
        let cmp = c.method.drifts_when();
        let threshold = if c.method == Method::DomainClassifier {
            format!("{:.4}", c.threshold)
        } else {
            c.threshold.to_string()
        };
        let mut line = format!(
            "  {tag} {:<width$}  {:<30} {:.4} ({} {cmp} {threshold}), effect {:.4}",
            c.column,
            c.method_label,
            c.value,
            if c.method.is_p_value() {
                "drift if p"
            } else {
                "drift if"
            },
            c.effect_size
        );
        line.push_str(&format!(", on {}", r.rows_used(c)));
        if let Some(n) = r.rows_note(c) {
            line.push_str(&format!(" ({})", s.yellow(&n)));
        }
        if let Some(n) = &c.note {
            line.push_str(&format!(" ({n})"));
        }
        out.push_str(&line);
        out.push('\n');
        if let Some(t) = &c.text {
            for l in t.summary() {
                out.push_str(&format!("        {:<width$}  {}\n", "", s.dim(&l)));
            }
        }
    }
    if json {
        eprint!("{out}");
    } else {
        print!("{out}");
    }
}

/// The dashboard's drift engine: `ferry check drift`'s, on two windows of
/// the prediction log, over the columns both have but the log's own.
pub struct LogDrift;

impl ferry_dashboard::monitoring::DriftEngine for LogDrift {
    fn drift(
        &self,
        reference: &Path,
        current: &Path,
    ) -> std::result::Result<ferry_dashboard::monitoring::WindowDrift, String> {
        use ferry_dashboard::monitoring::{ColumnScore, LOG_FIELDS, WindowDrift};
        let open = |p: &Path| {
            Table::open(&TableSpec::new(p.to_string_lossy()))
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        let (r, c) = (open(reference)?, open(current)?);
        let comparable = |t: &Table| -> Vec<String> {
            t.schema
                .fields()
                .iter()
                .filter(|f| ColType::of(f.data_type()).is_some())
                .map(|f| f.name().clone())
                .filter(|n| !LOG_FIELDS.contains(&n.as_str()))
                .collect()
        };
        let theirs = comparable(&c);
        let columns: Vec<String> = comparable(&r)
            .into_iter()
            .filter(|n| theirs.contains(n))
            .collect();
        if columns.is_empty() {
            return Err("the windows share no column to compare".into());
        }
        let opts = ferry_data::DriftOptions {
            columns: Some(columns),
            ..Default::default()
        };
        let d = ferry_data::drift(&r, &c, &opts).map_err(|e| e.to_string())?;
        Ok(WindowDrift {
            dataset_drift: d.dataset_drift,
            drifted: d.drifted,
            columns: d
                .columns
                .iter()
                .map(|c| ColumnScore {
                    column: c.column.clone(),
                    method: c.method_label.to_owned(),
                    value: c.value,
                    threshold: c.threshold,
                    rule: match c.method.drifts_when() {
                        "<" => format!("p < {}", c.threshold),
                        ">" => format!("ROC AUC > {:.4}", c.threshold),
                        _ => format!("distance >= {}", c.threshold),
                    },
                    drifted: c.drifted,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ferry_dashboard::monitoring::DriftEngine;

    /// `n` logged predictions with petal_length around `centre`.
    fn window(dir: &Path, name: &str, centre: f64, n: usize) -> std::path::PathBuf {
        let mut text = String::new();
        for i in 0..n {
            let x = centre + (i % 20) as f64 * 0.05;
            text.push_str(&format!(
                "{{\"ts\":{i},\"request_id\":\"r{i}\",\"model\":\"iris\",\"version\":{},\"petal_length\":{x},\"sepal_width\":{},\"prediction\":\"{}\"}}\n",
                1 + i % 2,
                3.0 + (i % 7) as f64 * 0.1,
                ["setosa", "virginica"][i % 2]
            ));
        }
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn log_windows_are_compared_on_their_data_columns_only() {
        let dir = tempfile::tempdir().unwrap();
        let reference = window(dir.path(), "predictions-2026-11-26T14.jsonl", 1.5, 200);
        let same = window(dir.path(), "predictions-2026-11-26T15.jsonl", 1.5, 200);
        let moved = window(dir.path(), "predictions-2026-11-26T16.jsonl", 4.5, 200);
        let d = LogDrift.drift(&reference, &same).unwrap();
        let names: Vec<&str> = d.columns.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(names, ["petal_length", "sepal_width", "prediction"]);
        assert_eq!(d.drifted, 0);
        let d = LogDrift.drift(&reference, &moved).unwrap();
        let petal = &d.columns[0];
        assert!(petal.drifted && petal.rule == "p < 0.05", "{petal:?}");
        assert_eq!(d.drifted, 1);
        let err = LogDrift
            .drift(&reference, &dir.path().join("gone.jsonl"))
            .unwrap_err();
        assert!(err.contains("gone.jsonl"), "{err}");
    }
}
