//! One data check as `ferry check data|drift` and a pipeline's check stage
//! both run it ([`run`]): open the tables (a data check's with its suite's
//! types), validate them against the suite or compare them for drift, name
//! what the report shows as the user wrote it, write the JSON and HTML
//! reports, and say whether the check passed ([`Outcome::passed`]). The
//! suite is read first, by [`suite`]. The callers render the outcome (the
//! terminal, a stage's log) and decide what a failure means (an exit code,
//! a gate); what else they need at a step they add through [`Hooks`].

use crate::check::CheckReport;
use crate::drift::{DriftOptions, DriftReport};
use crate::source::{Table, TableSpec};
use crate::suite::Suite;
use crate::{DataError, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A table to read, and its name in the report (as the user wrote it:
/// `data/batch.csv`, not the path it resolves to).
#[derive(Debug, Clone)]
pub struct Input {
    pub spec: TableSpec,
    pub name: String,
}

/// What to check.
#[derive(Debug, Clone)]
pub enum Job {
    /// Validate `table` against `suite` (read by [`suite`]).
    Data { table: Input, suite: Suite },
    /// Compare `current` with `reference`.
    Drift {
        reference: Input,
        current: Input,
        options: DriftOptions,
    },
}

/// Where a job writes its reports, as the user named them: relative to the
/// job's folder (or absolute). `None`: that report is not written.
#[derive(Debug, Clone, Default)]
pub struct Reports {
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
}

/// A job's report: what it found, in the shape its JSON report has.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Report {
    Data(CheckReport),
    Drift(DriftReport),
}

impl Report {
    /// The self-contained HTML report.
    pub fn html(&self) -> String {
        match self {
            Report::Data(r) => crate::report::check_html(r),
            Report::Drift(r) => crate::report::drift_html(r),
        }
    }
}

/// What a job found, and how long finding it and writing its reports took.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: Report,
    pub took: Duration,
}

impl Outcome {
    /// Whether the check passed: every expectation holds, or the dataset
    /// did not drift.
    pub fn passed(&self) -> bool {
        match &self.report {
            Report::Data(r) => r.passed,
            Report::Drift(r) => !r.dataset_drift,
        }
    }
}

/// A table a job has just opened; none of its rows is read yet.
pub enum Opened<'a> {
    /// A data check's table.
    Table(&'a Table),
    /// A drift's reference table (the current one is not open yet).
    Reference(&'a Table),
    /// A drift's current table, and the reference opened before it.
    Current {
        reference: &'a Table,
        current: &'a Table,
    },
}

/// What a caller adds at two steps of a job: when a table is open (the
/// CLI's hints, and its checks of the columns its options name; an error
/// ends the job there) and when the check is done, before its reports are
/// written (a stage's log says what it found even when a report cannot
/// be written).
pub trait Hooks {
    fn opened(&mut self, _table: Opened<'_>) -> Result<()> {
        Ok(())
    }
    fn checked(&mut self, _report: &Report) {}
}

/// A job's callers that add nothing.
pub struct NoHooks;

impl Hooks for NoHooks {}

/// Reads and parses the suite `path` (relative to `dir`, or absolute),
/// named `path` in its messages.
pub fn suite(dir: &Path, path: &Path) -> Result<Suite> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(dir.join(path)).map_err(|source| DataError::SuiteUnreadable {
            name: name.clone(),
            source,
        })?;
    Suite::parse(&name, &text).map_err(DataError::Suite)
}

/// Runs `job` in `dir` (where `reports` go, and what the report's file
/// names are shown relative to) and writes its reports.
pub fn run(dir: &Path, job: Job, reports: &Reports, hooks: &mut dyn Hooks) -> Result<Outcome> {
    let (report, started) = match job {
        Job::Data { table, suite } => {
            let mut spec = table.spec;
            // The suite's types tell CSV reading what to expect; the
            // caller's own come first.
            for (c, t) in &suite.types {
                spec.types.entry(c.clone()).or_insert(*t);
            }
            let t = Table::open(&spec)?;
            hooks.opened(Opened::Table(&t))?;
            let started = Instant::now();
            let mut r = crate::check(&t, &suite)?;
            r.source = table.name;
            r.relative_to(dir);
            (Report::Data(r), started)
        }
        Job::Drift {
            reference,
            current,
            options,
        } => {
            let r = Table::open(&reference.spec)?;
            hooks.opened(Opened::Reference(&r))?;
            let c = Table::open(&current.spec)?;
            hooks.opened(Opened::Current {
                reference: &r,
                current: &c,
            })?;
            let started = Instant::now();
            let mut d = crate::drift(&r, &c, &options)?;
            d.reference = reference.name;
            d.current = current.name;
            (Report::Drift(d), started)
        }
    };
    hooks.checked(&report);
    write(dir, reports, &report)?;
    Ok(Outcome {
        report,
        took: started.elapsed(),
    })
}

/// Writes the reports `reports` asks for: the JSON, then the HTML.
fn write(dir: &Path, reports: &Reports, report: &Report) -> Result<()> {
    if let Some(p) = &reports.json {
        let json = serde_json::to_vec_pretty(report)
            .map_err(|e| DataError::Internal(format!("cannot serialize the report: {e}")))?;
        write_file(dir, p, &json)?;
    }
    if let Some(p) = &reports.html {
        write_file(dir, p, report.html().as_bytes())?;
    }
    Ok(())
}

fn write_file(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    ferry_fs::write_atomic(&dir.join(path), bytes).map_err(|source| DataError::Write {
        name: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ColType;

    const SUITE: &str =
        "columns:\n  price: {type: float, between: {min: 0, max: 100}}\n  kind: {in_set: [a, b]}\n";

    /// A folder with `batch.csv` (its third row's price out of range when
    /// `bad`) and the suite `suite.yaml`.
    fn folder(bad: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let price = if bad { 250 } else { 25 };
        std::fs::write(
            dir.path().join("batch.csv"),
            format!("price,kind\n1,a\n2,b\n{price},a\n4,b\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("suite.yaml"), SUITE).unwrap();
        dir
    }

    fn input(dir: &Path, name: &str) -> Input {
        Input {
            spec: TableSpec::new(dir.join(name).to_string_lossy()),
            name: name.to_owned(),
        }
    }

    fn data_job(dir: &Path) -> Job {
        Job::Data {
            table: input(dir, "batch.csv"),
            suite: suite(dir, Path::new("suite.yaml")).unwrap(),
        }
    }

    fn drift_job(dir: &Path) -> Job {
        Job::Drift {
            reference: input(dir, "batch.csv"),
            current: input(dir, "batch.csv"),
            options: DriftOptions {
                columns: Some(vec!["kind".into()]),
                ..Default::default()
            },
        }
    }

    /// Hooks that write down what they were told.
    #[derive(Default)]
    struct Seen {
        steps: Vec<String>,
        refuse: bool,
    }

    impl Hooks for Seen {
        fn opened(&mut self, table: Opened<'_>) -> Result<()> {
            let step = match table {
                Opened::Table(t) => format!("table {}", t.schema.fields().len()),
                Opened::Reference(_) => "reference".into(),
                Opened::Current { reference, current } => format!(
                    "current {} {}",
                    reference.label().ends_with("batch.csv"),
                    current.schema.fields().len()
                ),
            };
            self.steps.push(step);
            if self.refuse {
                return Err(DataError::Invalid("refused".into()));
            }
            Ok(())
        }
        fn checked(&mut self, report: &Report) {
            self.steps.push(match report {
                Report::Data(r) => format!("checked {}", r.passed),
                Report::Drift(r) => format!("checked {}", r.dataset_drift),
            });
        }
    }

    #[test]
    fn a_data_check_writes_both_reports_and_names_the_table_as_given() {
        let dir = folder(false);
        let reports = Reports {
            json: Some("out/r.json".into()),
            html: Some("out/r.html".into()),
        };
        let mut seen = Seen::default();
        let o = run(dir.path(), data_job(dir.path()), &reports, &mut seen).unwrap();
        assert!(o.passed());
        assert_eq!(seen.steps, ["table 2", "checked true"]);
        let Report::Data(r) = &o.report else {
            panic!("{o:?}")
        };
        assert_eq!((r.source.as_str(), r.rows), ("batch.csv", 4));
        // The files a report names are relative to the job's folder.
        assert_eq!(r.files, ["batch.csv"]);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("out/r.json")).unwrap()).unwrap();
        assert_eq!(json, serde_json::to_value(r).unwrap());
        let html = std::fs::read_to_string(dir.path().join("out/r.html")).unwrap();
        assert!(html.starts_with("<!doctype html>"), "{html}");
    }

    #[test]
    fn a_failed_expectation_fails_the_check_and_still_writes_its_report() {
        let dir = folder(true);
        let reports = Reports {
            json: Some("r.json".into()),
            html: None,
        };
        let o = run(dir.path(), data_job(dir.path()), &reports, &mut NoHooks).unwrap();
        assert!(!o.passed());
        let Report::Data(r) = &o.report else {
            panic!("{o:?}")
        };
        assert_eq!(r.get("price.between").unwrap().unexpected_count, Some(1));
        assert!(dir.path().join("r.json").is_file());
        assert!(!dir.path().join("r.html").exists());
    }

    #[test]
    fn the_suites_types_read_the_table_unless_the_caller_gave_one() {
        let dir = folder(false);
        std::fs::write(
            dir.path().join("suite.yaml"),
            "columns:\n  price: {type: string}\n  kind: {type: string}\n",
        )
        .unwrap();
        let mut table = input(dir.path(), "batch.csv");
        table.spec.types.insert("price".into(), ColType::Float);
        let job = Job::Data {
            table,
            suite: suite(dir.path(), Path::new("suite.yaml")).unwrap(),
        };
        let o = run(dir.path(), job, &Reports::default(), &mut NoHooks).unwrap();
        let Report::Data(r) = &o.report else {
            panic!("{o:?}")
        };
        // `price` read as the caller said (float), not as the suite's
        // string: its type expectation fails.
        assert!(!r.get("price.type").unwrap().success, "{r:?}");
        assert!(r.get("kind.type").unwrap().success, "{r:?}");
    }

    #[test]
    fn a_drift_opens_the_reference_first_and_passes_without_drift() {
        let dir = folder(false);
        let mut seen = Seen::default();
        let o = run(
            dir.path(),
            drift_job(dir.path()),
            &Reports::default(),
            &mut seen,
        )
        .unwrap();
        assert!(o.passed());
        assert_eq!(seen.steps, ["reference", "current true 2", "checked false"]);
        let Report::Drift(d) = &o.report else {
            panic!("{o:?}")
        };
        assert_eq!(
            (d.reference.as_str(), d.current.as_str()),
            ("batch.csv", "batch.csv")
        );
    }

    #[test]
    fn a_hook_that_refuses_a_table_ends_the_job_before_any_report() {
        let dir = folder(false);
        let reports = Reports {
            json: Some("r.json".into()),
            html: Some("r.html".into()),
        };
        for job in [data_job(dir.path()), drift_job(dir.path())] {
            let mut seen = Seen {
                refuse: true,
                ..Default::default()
            };
            let e = run(dir.path(), job, &reports, &mut seen).unwrap_err();
            assert_eq!(e.to_string(), "refused");
            assert_eq!(seen.steps.len(), 1, "{:?}", seen.steps);
        }
        assert!(!dir.path().join("r.json").exists());
        assert!(!dir.path().join("r.html").exists());
    }

    #[test]
    fn a_report_that_cannot_be_written_is_an_error_after_the_findings() {
        let dir = folder(false);
        // A file where the report's folder should be.
        std::fs::write(dir.path().join("taken"), "").unwrap();
        let reports = Reports {
            json: Some("taken/r.json".into()),
            html: None,
        };
        let mut seen = Seen::default();
        let e = run(dir.path(), data_job(dir.path()), &reports, &mut seen).unwrap_err();
        assert!(
            matches!(&e, DataError::Write { name, .. } if name == "taken/r.json"),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with("cannot write taken/r.json: "),
            "{e}"
        );
        assert_eq!(seen.steps, ["table 2", "checked true"]);
    }

    #[test]
    fn a_suite_that_cannot_be_read_or_parsed_says_which() {
        let dir = folder(false);
        let e = suite(dir.path(), Path::new("missing.yaml")).unwrap_err();
        assert!(matches!(e, DataError::SuiteUnreadable { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("cannot read the suite missing.yaml: "),
            "{e}"
        );
        std::fs::write(
            dir.path().join("bad.yaml"),
            "columns:\n  price: {between: {min: 5, max: 1}}\n",
        )
        .unwrap();
        let e = suite(dir.path(), Path::new("bad.yaml")).unwrap_err();
        assert!(matches!(e, DataError::Suite(_)), "{e:?}");
        assert!(e.to_string().starts_with("bad.yaml:2:"), "{e}");
    }
}
