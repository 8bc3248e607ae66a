//! A [`Review`] as text: for a terminal ([`text`]) or a pull-request
//! comment ([`markdown`], GitHub's and GitLab's flavour, which both read
//! tables and HTML comments).

use crate::{CheckLine, Figure, GateLine, Review, RunLine};
use ferry_records::{RunStatus, StageStatus};
use std::fmt::Write as _;

/// The longest a value from a run is written in a comment.
const CELL_CHARS: usize = 200;

/// The line that marks a pipeline's comment, so posting again updates it
/// instead of adding another: an HTML comment, invisible once rendered.
pub fn marker(pipeline: &str) -> String {
    format!("<!-- ferry-report: {} -->", plain_name(pipeline))
}

/// A pipeline's name with only the characters a name is made of.
fn plain_name(pipeline: &str) -> String {
    pipeline
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .collect()
}

/// `s` as one table cell of a comment: on one line, at most
/// [`CELL_CHARS`], with nothing Markdown or HTML would read as markup, a
/// link or a mention. A bare address (`https://...`, `www.`) would be made
/// a link by GitHub's and GitLab's autolinking, so a word joiner (U+2060,
/// invisible) goes inside its scheme or `www`.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if i == CELL_CHARS {
            out.push('…');
            break;
        }
        let next = |k: usize| chars.get(i + k).copied();
        let autolinked = (c == ':' && next(1) == Some('/') && next(2) == Some('/'))
            || (c == '.' && i >= 3 && chars[i - 3..i].iter().all(|w| w.eq_ignore_ascii_case(&'w')));
        if autolinked {
            out.push('\u{2060}');
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' => out.push_str("&#64;"),
            '\n' | '\r' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '~' | '!' | '|' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A number as a report shows it: whole numbers without decimals, others
/// to four.
pub fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.is_finite() && v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A delta with its sign, and relative to the base when it can be.
fn delta(f: &Figure) -> String {
    let Some(d) = f.delta else {
        return String::new();
    };
    if d == 0.0 {
        return "=".to_owned();
    }
    let sign = if d > 0.0 { "+" } else { "" };
    match f.relative() {
        Some(r) => format!("{sign}{} ({sign}{:.1}%)", number(d), r * 100.0),
        None => format!("{sign}{}", number(d)),
    }
}

/// A gate's result in one of three words: a gate that could not compare
/// (no such model yet) passes, but is not shown as having passed.
fn gate_result<'a>(g: &GateLine, passed: &'a str, failed: &'a str, skipped: &'a str) -> &'a str {
    match (g.passed, g.message.starts_with("skipped:")) {
        (false, _) => failed,
        (true, true) => skipped,
        (true, false) => passed,
    }
}

/// What a gate compared, or why it could not (its result says skipped).
fn gate_values(g: &GateLine) -> &str {
    g.message.strip_prefix("skipped: ").unwrap_or(&g.message)
}

/// US dollars: cents, or `<$0.01` for what costs less.
fn money(v: f64) -> String {
    if v > 0.0 && v < 0.01 {
        "<$0.01".to_owned()
    } else {
        format!("${v:.2}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(number).unwrap_or_else(|| "-".to_owned())
}

/// A commit as a report names it: its first 7 hex digits (a run's commit
/// is a tag any client could set: nothing else of it is shown).
fn short(commit: Option<&str>) -> String {
    match commit {
        Some(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_hexdigit()) => {
            c[..c.len().min(7)].to_owned()
        }
        Some(_) => "?".to_owned(),
        None => "-".to_owned(),
    }
}

/// A run id as a report names it: its first 8 letters or digits.
fn short_id(run_id: &str) -> String {
    run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect()
}

/// Text for a terminal: the lines without control characters, so no
/// value from a run (a param, a reason) writes an escape sequence.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .collect()
}

fn status_words(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::GateFailed => "held back by a gate",
        RunStatus::Cancelled => "cancelled",
        RunStatus::Crashed => "crashed",
    }
}

fn stage_words(s: StageStatus) -> &'static str {
    match s {
        StageStatus::Ran => "ran",
        StageStatus::Restored => "restored",
        StageStatus::UpToDate => "up to date",
        StageStatus::Failed => "failed",
        StageStatus::Cancelled => "cancelled",
        StageStatus::Skipped => "skipped",
    }
}

/// A check's verdict in words (`passed`, `failed`, `drifted`).
fn verdict(c: &CheckLine) -> &'static str {
    match (c.passed, c.drift) {
        (Some(false), Some(true)) => "drifted, failed",
        (Some(false), _) => "failed",
        (_, Some(true)) => "drifted",
        (Some(true), _) => "passed",
        (None, _) => "no verdict",
    }
}

/// A check's figures, each name written by `name` (escaped for a comment).
fn check_figures(c: &CheckLine, name: fn(&str) -> String) -> String {
    c.figures
        .iter()
        .map(|f| match f.delta {
            Some(d) if d != 0.0 => format!("{} {} ({})", name(&f.key), opt(f.value), delta(f)),
            _ => format!("{} {}", name(&f.key), opt(f.value)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The line that says which run this is and what it is compared with.
fn headline(run: &RunLine) -> String {
    format!(
        "run {} at {}",
        short_id(&run.run_id),
        short(run.git_commit.as_deref())
    )
}

/// The review as a pull-request comment: a summary line, then a table for
/// each part that has something to say, then the stages folded away.
pub fn markdown(r: &Review) -> String {
    let mut m = String::new();
    let mut line = |s: &str| {
        let _ = writeln!(m, "{s}");
    };
    line(&marker(&r.pipeline));
    let mark = if r.holds_back() { "❌" } else { "✅" };
    line(&format!(
        "### {mark} ferry: `{}` {}",
        plain_name(&r.pipeline),
        status_words(r.run.status)
    ));
    line("");
    match &r.base {
        Some(b) => line(&format!(
            "This change: {}, compared with {} ({}).",
            code_run(&r.run),
            code_run(&b.run),
            cell(&b.chosen)
        )),
        None => line(&format!(
            "This change: {}; no run to compare it with.",
            code_run(&r.run)
        )),
    }
    if let Some(msg) = &r.run.message {
        line(&format!("\n> {}", cell(msg)));
    }
    if r.base.is_some() {
        line("");
        if r.params.is_empty() {
            line("**Params**: unchanged.");
        } else {
            line("**Params**");
            line("");
            line("| param | base | this change |");
            line("|---|---|---|");
            for p in &r.params {
                line(&format!(
                    "| {} | {} | {} |",
                    cell(&p.key),
                    p.base.as_deref().map_or("(not set)".into(), cell),
                    p.value.as_deref().map_or("(not set)".into(), cell)
                ));
            }
        }
    }
    if !r.metrics.is_empty() {
        line("");
        line("**Metrics**");
        line("");
        line("| metric | base | this change | change |");
        line("|---|--:|--:|--:|");
        for f in &r.metrics {
            line(&format!(
                "| {} | {} | {} | {} |",
                cell(&f.key),
                opt(f.base),
                opt(f.value),
                delta(f)
            ));
        }
    }
    if !r.gates.is_empty() {
        line("");
        line("**Gates**");
        line("");
        line("| gate | result | values | on the base |");
        line("|---|---|---|---|");
        for g in &r.gates {
            line(&format!(
                "| {} | {} | {} | {} |",
                cell(&g.name),
                gate_result(g, "✅ passed", "❌ failed", "➖ skipped"),
                cell(gate_values(g)),
                match g.base_passed {
                    Some(true) => "passed",
                    Some(false) => "failed",
                    None => "-",
                }
            ));
        }
    }
    if !r.checks.is_empty() {
        line("");
        line("**Data checks and drift**");
        line("");
        line("| check | result | figures |");
        line("|---|---|---|");
        for c in &r.checks {
            let mark = match (c.passed, c.drift) {
                (Some(false), _) => "❌",
                (_, Some(true)) => "⚠️",
                (Some(true), _) => "✅",
                (None, _) => "",
            };
            let was = match (c.base_passed, c.passed) {
                (Some(b), Some(n)) if b != n => {
                    format!(" (base: {})", if b { "passed" } else { "failed" })
                }
                _ => String::new(),
            };
            line(&format!(
                "| {} | {mark} {}{was} | {} |",
                cell(&c.stage),
                verdict(c),
                check_figures(c, cell)
            ));
        }
    }
    line("");
    let moved: Vec<_> = r
        .stages
        .iter()
        .filter(|s| s.status != StageStatus::UpToDate)
        .collect();
    line(&format!(
        "**Stages**: {}",
        if moved.is_empty() {
            "all up to date, nothing ran.".to_owned()
        } else {
            summary_of_stages(r)
        }
    ));
    if !moved.is_empty() {
        line("");
        line("| stage | did | why |");
        line("|---|---|---|");
        for s in &moved {
            line(&format!(
                "| {} | {} | {} |",
                cell(&s.stage),
                stage_words(s.status),
                s.reason.as_deref().map(cell).unwrap_or_default()
            ));
        }
    }
    if let Some(c) = &r.cost {
        line("");
        line(&format!(
            "**Cost**: {}{}",
            money(c.charged),
            c.base
                .map(|b| format!(" (base {})", money(b)))
                .unwrap_or_default()
        ));
    }
    m
}

fn code_run(run: &RunLine) -> String {
    format!(
        "run `{}` at `{}`",
        short_id(&run.run_id),
        short(run.git_commit.as_deref())
    )
}

/// `2 ran, 1 restored, 3 up to date`.
fn summary_of_stages(r: &Review) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for s in &r.stages {
        let w = stage_words(s.status);
        match counts.iter_mut().find(|(k, _)| *k == w) {
            Some((_, n)) => *n += 1,
            None => counts.push((w, 1)),
        }
    }
    counts
        .iter()
        .map(|(w, n)| format!("{n} {w}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The review for a terminal: a column of names, then what changed.
pub fn text(r: &Review) -> String {
    let mut t = String::new();
    let mut line = |s: &str| {
        let _ = writeln!(t, "{s}");
    };
    line(&format!(
        "{}: {}, {}",
        r.pipeline,
        headline(&r.run),
        status_words(r.run.status)
    ));
    match &r.base {
        Some(b) => line(&format!(
            "  compared with {} ({})",
            headline(&b.run),
            b.chosen
        )),
        None => line("  nothing to compare it with"),
    }
    if r.base.is_some() {
        line("params");
        if r.params.is_empty() {
            line("  unchanged");
        }
        for p in &r.params {
            line(&format!(
                "  {:<24} {} -> {}",
                p.key,
                p.base.as_deref().unwrap_or("(not set)"),
                p.value.as_deref().unwrap_or("(not set)")
            ));
        }
    }
    if !r.metrics.is_empty() {
        line("metrics");
        for f in &r.metrics {
            line(
                format!(
                    "  {:<24} {:>10} -> {:<10} {}",
                    f.key,
                    opt(f.base),
                    opt(f.value),
                    delta(f)
                )
                .trim_end(),
            );
        }
    }
    if !r.gates.is_empty() {
        line("gates");
        for g in &r.gates {
            line(&format!(
                "  {:<24} {:<6} {}",
                g.name,
                gate_result(g, "passed", "FAILED", "skipped"),
                gate_values(g)
            ));
        }
    }
    if !r.checks.is_empty() {
        line("checks");
        for c in &r.checks {
            line(
                format!(
                    "  {:<24} {:<15} {}",
                    c.stage,
                    verdict(c),
                    check_figures(c, str::to_owned)
                )
                .trim_end(),
            );
        }
    }
    line("stages");
    for s in &r.stages {
        line(
            format!(
                "  {:<24} {:<10} {}",
                s.stage,
                stage_words(s.status),
                match s.status {
                    StageStatus::UpToDate => "",
                    _ => s.reason.as_deref().unwrap_or_default(),
                }
            )
            .trim_end(),
        );
    }
    if let Some(c) = &r.cost {
        line(&format!(
            "cost {}{}",
            money(c.charged),
            c.base
                .map(|b| format!(" (base {})", money(b)))
                .unwrap_or_default()
        ));
    }
    printable(&t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Base;
    use crate::fixtures::*;

    fn base() -> ferry_records::RunDetail {
        run("b1a2c3d4e5f6", "1111111aaaaaaa")
    }

    #[test]
    fn a_cell_holds_no_markup_link_or_mention() {
        assert_eq!(cell("a|b *c* @team"), "a\\|b \\*c\\* &#64;team");
        assert_eq!(cell("line\none"), "line one");
        // Addresses stay readable but are not autolinked.
        assert_eq!(
            cell("see https://x.example/a and WWW.x.example"),
            "see https\u{2060}://x.example/a and WWW\u{2060}.x.example"
        );
        assert_eq!(cell("a: b, www"), "a: b, www");
        let long = cell(&"x".repeat(CELL_CHARS + 5));
        assert_eq!(long.chars().count(), CELL_CHARS + 1);
    }

    fn review(head: &ferry_records::RunDetail) -> Review {
        let b = base();
        Review::new(
            head,
            Some(Base {
                run: &b,
                chosen: "the latest run on origin/main",
            }),
        )
    }

    #[test]
    fn a_param_change() {
        let mut head = run("a9f8e7d6c5b4", "2222222bbbbbbb");
        head.params[0].1 = serde_json::json!(0.1);
        set_stage(
            &mut head,
            "train",
            StageStatus::Ran,
            "params changed: train.C",
        );
        set_metric(&mut head, "accuracy", 0.9333);
        set_metric(&mut head, "f1_macro", 0.9331);
        let r = review(&head);
        insta::assert_snapshot!("param_change_md", markdown(&r));
        insta::assert_snapshot!("param_change_text", text(&r));
        insta::assert_json_snapshot!("param_change_json", r);
    }

    #[test]
    fn a_data_change() {
        let mut head = run("a9f8e7d6c5b4", "2222222bbbbbbb");
        for s in ["prepare", "validate", "drift", "train"] {
            set_stage(
                &mut head,
                s,
                StageStatus::Ran,
                if s == "prepare" {
                    "dep data/iris.csv changed"
                } else {
                    "dep work/train.csv changed"
                },
            );
        }
        set_metric(&mut head, "accuracy", 0.9733);
        set_metric(&mut head, "checks.drift.drifted", 1.0);
        set_metric(&mut head, "checks.drift.drifted_share", 0.2);
        head.stages[3].cost = Some(ferry_cost::StageCost {
            charged: 0.125,
            basis: ferry_cost::Basis::Requested,
            requested: Some(0.125),
            used: 0.1,
            machine: "gcp/n2-standard-4".into(),
        });
        insta::assert_snapshot!("data_change_md", markdown(&review(&head)));
    }

    #[test]
    fn a_failed_gate() {
        let mut head = run("a9f8e7d6c5b4", "2222222bbbbbbb");
        head.run.status = RunStatus::GateFailed;
        head.params[1].1 = serde_json::json!(2);
        set_stage(
            &mut head,
            "train",
            StageStatus::Ran,
            "params changed: train.max_iter",
        );
        set_metric(&mut head, "accuracy", 0.6);
        head.gates[0].passed = false;
        head.gates[0].message = "metrics.accuracy >= 0.9: 0.6 >= 0.9".into();
        head.gates.push(ferry_records::GateRecord {
            name: "no worse than production".into(),
            expr: "metrics.accuracy >= model(\"iris@production\").metrics.accuracy".into(),
            passed: true,
            message: "skipped: no model iris@production".into(),
        });
        let r = review(&head);
        insta::assert_snapshot!("failed_gate_md", markdown(&r));
        insta::assert_snapshot!("failed_gate_text", text(&r));
    }

    #[test]
    fn a_drifted_check() {
        let mut head = run("a9f8e7d6c5b4", "2222222bbbbbbb");
        head.run.status = RunStatus::GateFailed;
        set_stage(
            &mut head,
            "drift",
            StageStatus::Ran,
            "dep data/current.csv changed",
        );
        set_metric(&mut head, "checks.drift.passed", 0.0);
        set_metric(&mut head, "checks.drift.drifted", 3.0);
        set_metric(&mut head, "checks.drift.drifted_share", 0.75);
        set_metric(&mut head, "checks.drift.dataset_drift", 1.0);
        insta::assert_snapshot!("drifted_check_md", markdown(&review(&head)));
    }

    #[test]
    fn nothing_a_run_holds_becomes_markup_a_link_or_a_mention() {
        let mut head = run("a9f8e7d6c5b4", "2222222bbbbbbb");
        head.params[2].1 =
            serde_json::json!("@acme/admins [x](https://evil) <img src=x> --> | `rm` \n# h");
        let md = markdown(&review(&head));
        let row = md
            .lines()
            .find(|l| l.starts_with("| prepare.split"))
            .unwrap();
        for bad in ["@acme", "](", "<img", "-->", "`rm`", "\n#"] {
            assert!(!row.contains(bad), "{bad} in {row}");
        }
        // The `|` inside is escaped, so the row keeps its three columns.
        assert_eq!(row.matches(" | ").count(), 2, "{row}");
        assert_eq!(md.matches("-->").count(), 1, "only the marker's: {md}");
    }

    #[test]
    fn a_run_s_odd_commit_or_escape_sequence_is_shown_harmlessly() {
        let mut head = run("a9f8e7d6c5b4", "abcdef€");
        head.params[2].1 = serde_json::json!("\u{1b}[2J\u{1b}]0;owned\u{7}x");
        let r = review(&head);
        let t = text(&r);
        assert!(t.starts_with("iris: run a9f8e7d6 at ?,"), "{t}");
        assert!(!t.contains('\u{1b}') && !t.contains('\u{7}'), "{t:?}");
        assert!(markdown(&r).contains("at `?`"));
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(number(0.966_666_7), "0.9667");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(0.000_12), "1.200e-4");
        assert_eq!(number(f64::NAN), "NaN");
    }

    #[test]
    fn the_same_runs_write_the_same_bytes() {
        let head = run("a9f8e7d6c5b4", "2222222bbbbbbb");
        assert_eq!(markdown(&review(&head)), markdown(&review(&head)));
        assert_eq!(marker("iris"), "<!-- ferry-report: iris -->");
        assert_eq!(marker("a-->b<"), "<!-- ferry-report: a--b -->");
    }
}
