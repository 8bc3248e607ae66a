//! Built-in check stages (`check: data`, `check: drift`): run in-process by
//! ferry-data instead of a shell command, with the same outcome, log and
//! caching as any stage. Their reports feed the gates (`checks.<stage>.…`).

use ferry_data::TableSpec;
use ferry_data::job::{self, Hooks, Input, Job, Report, Reports};
use ferry_executor::{Exit, Outcome, OutputSink, Stream};
use ferry_spec::{Check, CheckKind};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn thread_cpu() -> (Duration, Duration, u64) {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_THREAD is Linux's.
    let mut t: libc::rusage = unsafe { std::mem::zeroed() };
    let mut p: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, &mut t);
        libc::getrusage(libc::RUSAGE_SELF, &mut p);
    }
    let tv = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    (tv(t.ru_utime), tv(t.ru_stime), p.ru_maxrss as u64 * 1024)
}

/// Runs `check` for `stage`, writing its report(s) under `root`, its summary
/// to `log_path` and to `sink`. Exit 0 when the report was written (whatever
/// it says), 2 when the check could not run (bad data, a bad suite).
pub(crate) fn run(
    root: &Path,
    stage: &str,
    check: &Check,
    log_path: &Path,
    sink: &dyn OutputSink,
) -> Outcome {
    let started = Instant::now();
    let (u0, s0, _) = thread_cpu();
    let mut lines: Vec<String> = Vec::new();
    let result = run_inner(root, check, &mut lines);
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            lines.push(format!("error: {e}"));
            2
        }
    };
    for l in &lines {
        sink.line(
            stage,
            if code == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            },
            l,
        );
    }
    if let Some(d) = log_path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    if let Ok(mut f) = std::fs::File::create(log_path) {
        for l in &lines {
            let _ = writeln!(f, "{l}");
        }
    }
    let (u1, s1, rss) = thread_cpu();
    Outcome {
        exit: Exit::Code(code),
        wall: started.elapsed(),
        user_cpu: u1.saturating_sub(u0),
        sys_cpu: s1.saturating_sub(s0),
        max_rss_bytes: rss,
        log_truncated_bytes: 0,
    }
}

fn run_inner(root: &Path, check: &Check, lines: &mut Vec<String>) -> Result<(), String> {
    let input = |p: &str| Input {
        spec: TableSpec::new(root.join(p).to_string_lossy()),
        name: p.to_owned(),
    };
    let mut log = Log { suite: "", lines };
    let job = match &check.kind {
        CheckKind::Data { data, expect } => {
            log.suite = expect;
            Job::Data {
                table: input(data),
                suite: job::suite(root, Path::new(expect)).map_err(|e| e.to_string())?,
            }
        }
        CheckKind::Drift {
            reference,
            current,
            method,
            threshold,
            thresholds,
            drift_share,
            columns,
        } => Job::Drift {
            reference: input(reference),
            current: input(current),
            options: ferry_data::DriftOptions {
                thresholds: thresholds.iter().cloned().collect(),
                columns: (!columns.is_empty()).then(|| columns.clone()),
                method: method.as_deref().and_then(ferry_data::drift::Method::parse),
                threshold: *threshold,
                drift_share: *drift_share,
                ..Default::default()
            },
        },
    };
    let reports = Reports {
        json: Some(PathBuf::from(&check.report)),
        html: check.html.as_ref().map(PathBuf::from),
    };
    job::run(root, job, &reports, &mut log).map_err(|e| e.to_string())?;
    if let Some(h) = &check.html {
        log.lines.push(format!("report: {h}"));
    }
    Ok(())
}

/// A check stage's log: what the check found, written before its reports
/// are (so a report that cannot be written still leaves the findings).
struct Log<'a> {
    /// A data check's suite, as the stage names it.
    suite: &'a str,
    lines: &'a mut Vec<String>,
}

impl Hooks for Log<'_> {
    fn checked(&mut self, report: &Report) {
        match report {
            Report::Data(r) => data_lines(r, self.suite, self.lines),
            Report::Drift(r) => drift_lines(r, self.lines),
        }
    }
}

fn data_lines(r: &ferry_data::CheckReport, suite: &str, lines: &mut Vec<String>) {
    lines.push(format!(
        "data check {} against {suite}: {}, {} expectations, {}",
        r.source,
        ferry_data::show::rows(r.rows),
        r.expectations,
        if r.passed {
            "all hold".to_owned()
        } else {
            format!("{} FAILED", r.failed)
        }
    ));
    for x in r.results.iter().filter(|x| !x.success) {
        let mut l = format!("  FAIL {}: expected {}", x.id, x.expected);
        match x.failing_text() {
            Some(failing) => l.push_str(&format!("; {failing}")),
            None => l.push_str(&format!("; observed {}", x.observed_text())),
        }
        if let Some(f) = x.sample.first() {
            l.push_str(&format!(", e.g. {} = {}", r.place(f), f.value_text()));
        }
        lines.push(l);
    }
}

fn drift_lines(r: &ferry_data::DriftReport, lines: &mut Vec<String>) {
    lines.push(format!(
        "drift {} vs {}: {} of {} columns drifted ({}; dataset drift at {}): {}",
        r.current,
        r.reference,
        r.drifted,
        r.columns.len(),
        ferry_data::show::share(r.drifted_share),
        ferry_data::show::share(r.drift_share_threshold),
        if r.dataset_drift {
            "DATASET DRIFT"
        } else {
            "no dataset drift"
        }
    ));
    for c in &r.columns {
        let note = r.rows_note(c);
        if !c.drifted && note.is_none() {
            continue;
        }
        let mut l = format!(
            "  {} {}: {} = {:.4} (threshold {}), on {}",
            if c.drifted { "DRIFT" } else { "ok" },
            c.column,
            c.method_label,
            c.value,
            c.threshold,
            r.rows_used(c)
        );
        if let Some(n) = note {
            l.push_str(&format!(" ({n})"));
        }
        lines.push(l);
    }
}

/// A check stage's report as flat `key -> value` pairs for gates:
/// top-level figures (`passed`, `failed`, `rows`; `drifted`,
/// `drifted_share`, `dataset_drift`), then per expectation
/// (`price.between.unexpected_count`) or per column (`f00.value`).
pub(crate) fn flatten(report: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    if let Some(m) = report.as_object() {
        for (k, v) in m {
            if !v.is_array() && !v.is_object() {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    for r in report["results"].as_array().into_iter().flatten() {
        let Some(id) = r["id"].as_str() else { continue };
        for f in [
            "success",
            "observed",
            "unexpected_count",
            "unexpected_share",
            "element_count",
        ] {
            if let Some(v) = r
                .get(f)
                .filter(|v| !v.is_array() && !v.is_object() && !v.is_null())
            {
                out.insert(format!("{id}.{f}"), v.clone());
            }
        }
    }
    for c in report["columns"].as_array().into_iter().flatten() {
        let Some(col) = c["column"].as_str() else {
            continue;
        };
        for f in ["value", "drifted", "effect_size", "statistic", "threshold"] {
            if let Some(v) = c.get(f).filter(|v| !v.is_null()) {
                out.insert(format!("{col}.{f}"), v.clone());
            }
        }
    }
    out
}

/// The implicit gate of a check stage that is not `warn_only`.
pub(crate) fn gate_source(stage: &str, check: &Check) -> String {
    match check.kind {
        CheckKind::Data { .. } => format!("checks.{stage}.passed == true"),
        CheckKind::Drift { .. } => format!("checks.{stage}.dataset_drift == false"),
    }
}
