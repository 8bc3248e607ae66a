//! Terminal output: plain lines when piped, colour and a live status line on
//! a terminal.

use ferry_executor::{OutputSink, Stream};
use ferry_runner::{Event, Reporter};
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

/// The first `n` bytes of an id or digest (all of it when shorter or when
/// `n` is not a character boundary): ids from MLflow clients can be anything.
pub fn short(s: &str, n: usize) -> &str {
    s.get(..n).unwrap_or(s)
}

pub fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

pub fn bytes(n: i64) -> String {
    let n = n as f64;
    if n < 1024.0 * 1024.0 {
        format!("{:.0}KiB", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.0}MiB", n / 1024.0 / 1024.0)
    } else {
        format!("{:.1}GiB", n / 1024.0 / 1024.0 / 1024.0)
    }
}

pub use ferry_cost::money;

/// Text from the store (a tag, a param, a name an MLflow client chose) as
/// it may reach a terminal: control characters (escape sequences, carriage
/// returns, newlines, C1 codes) shown as `\u{..}` escapes, so a stored
/// string cannot move the cursor, retitle the window or hide a line.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\t') {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// A param or metric value, printed the same by every command: text as
/// itself (no quotes), a number in its shortest form (`1`, `0.95`, whether
/// it was kept as `1` or `1.0`), `true` / `false`, `-` for none, anything
/// else (a list, a map) as JSON.
pub fn value(v: &serde_json::Value) -> String {
    use serde_json::Value as V;
    match v {
        V::String(s) => printable(s).into_owned(),
        V::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => number(f),
            (None, None) => n.to_string(),
        },
        V::Bool(b) => b.to_string(),
        V::Null => "-".to_owned(),
        // JSON escapes control characters itself.
        other => other.to_string(),
    }
}

/// A number as [`value`] prints it: `1` for 1.0, `0.95`, `NaN`.
pub fn number(f: f64) -> String {
    f.to_string()
}

/// A metric value as printed: as the run records it (a number; `true` is
/// 1, as the store keeps it), else as [`value`] prints it.
pub fn metric(v: &serde_json::Value) -> String {
    match ferry_runner::metric_number(v) {
        Some(f) => number(f),
        None => value(v),
    }
}

/// A table with a header: each column as wide as its widest cell, two
/// spaces apart, every line after `indent`; no trailing spaces.
pub fn table(indent: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    // Cells from the store are made printable once, before widths are taken.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c).into_owned()).collect())
        .collect();
    let cell = |r: &[String], i: usize| r.get(i).map_or(0, |c| c.chars().count());
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            rows.iter()
                .map(|r| cell(r, i))
                .chain([head[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let head: Vec<String> = head.iter().map(|h| (*h).to_owned()).collect();
    let mut out = String::new();
    for r in std::iter::once(&head).chain(&rows) {
        let mut line = indent.to_owned();
        for (i, w) in widths.iter().enumerate() {
            let c = r.get(i).map_or("", String::as_str);
            line.push_str(c);
            line.push_str(&" ".repeat(w - cell(r, i) + 2));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn time(ms: i64) -> String {
    // UTC, to the second: 2026-11-26 10:01:58
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = ferry_core::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

struct Live {
    running: Vec<(String, Instant)>,
    drawn: bool,
}

/// Prints stage output prefixed with the stage's name, and progress events.
/// Everything goes to stderr, so `--json` keeps stdout clean.
pub struct Terminal {
    style: Style,
    live: Option<Mutex<Live>>,
    out: Mutex<()>,
}

impl Terminal {
    pub fn new(style: Style, tty: bool) -> Self {
        Self {
            style,
            live: tty.then(|| {
                Mutex::new(Live {
                    running: Vec::new(),
                    drawn: false,
                })
            }),
            out: Mutex::new(()),
        }
    }

    fn print(&self, line: &str) {
        let _g = self.out.lock();
        let mut err = std::io::stderr().lock();
        if let Some(live) = &self.live
            && let Ok(mut l) = live.lock()
        {
            if l.drawn {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = writeln!(err, "{line}");
            l.drawn = false;
            Self::draw(&mut l, &mut err, &self.style);
            return;
        }
        let _ = writeln!(err, "{line}");
    }

    fn draw(l: &mut Live, err: &mut impl Write, style: &Style) {
        if l.running.is_empty() {
            return;
        }
        let parts: Vec<String> = l
            .running
            .iter()
            .map(|(s, t)| format!("{s} {}", duration(t.elapsed().as_millis() as i64)))
            .collect();
        let _ = write!(
            err,
            "{}",
            style.dim(&format!("  running: {}", parts.join(", ")))
        );
        let _ = err.flush();
        l.drawn = true;
    }

    /// Redraws the live line (called by a ticker while stages run).
    pub fn tick(&self) {
        let Some(live) = &self.live else { return };
        let _g = self.out.lock();
        if let Ok(mut l) = live.lock() {
            let mut err = std::io::stderr().lock();
            if l.drawn {
                let _ = write!(err, "\r\x1b[2K");
            }
            l.drawn = false;
            Self::draw(&mut l, &mut err, &self.style);
        }
    }

    pub fn finish(&self) {
        if let Some(live) = &self.live
            && let Ok(mut l) = live.lock()
            && l.drawn
        {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            l.drawn = false;
        }
    }

    fn set_running(&self, stage: &str, on: bool) {
        if let Some(live) = &self.live
            && let Ok(mut l) = live.lock()
        {
            l.running.retain(|(s, _)| s != stage);
            if on {
                l.running.push((stage.to_owned(), Instant::now()));
            }
        }
    }
}

impl OutputSink for Terminal {
    fn line(&self, stage: &str, stream: Stream, line: &str) {
        let prefix = format!("{stage} |");
        let prefix = match stream {
            Stream::Stdout => self.style.dim(&prefix),
            Stream::Stderr => self.style.yellow(&prefix),
        };
        self.print(&format!("{prefix} {line}"));
    }
}

impl Reporter for Terminal {
    fn event(&self, e: Event<'_>) {
        let s = &self.style;
        use ferry_metadata::StageStatus as S;
        match e {
            Event::EnvBuilding { requirements } => self.print(&format!(
                "{} environment from {requirements}",
                s.cyan("building")
            )),
            Event::EnvReady { fingerprint, built } => {
                if built {
                    self.print(&format!("{} environment {fingerprint}", s.green("built")));
                }
            }
            Event::StageStarted {
                stage,
                reason,
                attempt,
            } => {
                self.set_running(stage, true);
                if attempt > 1 {
                    self.print(&format!(
                        "{} {stage} (attempt {attempt}: {reason})",
                        s.yellow("retrying")
                    ));
                } else {
                    self.print(&format!(
                        "{} {} {}",
                        s.cyan("running"),
                        s.bold(stage),
                        s.dim(&format!("({reason})"))
                    ));
                }
            }
            Event::StageFinished(o) => {
                self.set_running(&o.stage, false);
                let line = match o.status {
                    S::Ran => format!(
                        "{} {} in {}{}",
                        s.green("ran"),
                        s.bold(&o.stage),
                        duration(o.wall_ms.unwrap_or(0)),
                        s.dim(&format!(
                            " (cpu {}, peak mem {})",
                            duration(o.user_cpu_ms.unwrap_or(0) + o.sys_cpu_ms.unwrap_or(0)),
                            bytes(o.max_rss_bytes.unwrap_or(0))
                        ))
                    ),
                    S::Restored => format!(
                        "{} {} {}",
                        s.green("restored"),
                        s.bold(&o.stage),
                        s.dim(&format!("({})", o.reason.as_deref().unwrap_or_default()))
                    ),
                    S::UpToDate => format!("{} {}", s.dim("up to date"), o.stage),
                    S::Failed => format!(
                        "{} {}: {}{}",
                        s.red("failed"),
                        s.bold(&o.stage),
                        o.error.clone().unwrap_or_default(),
                        o.log
                            .as_ref()
                            .map(|l| format!(" (log: {l})"))
                            .unwrap_or_default()
                    ),
                    S::Cancelled => format!("{} {}", s.yellow("cancelled"), o.stage),
                    S::Skipped => format!(
                        "{} {} ({})",
                        s.yellow("skipped"),
                        o.stage,
                        o.reason.as_deref().unwrap_or_default()
                    ),
                };
                self.print(&line);
            }
            Event::Gate(g) => {
                let mark = match (g.passed, g.skipped) {
                    (true, true) => s.yellow("gate skipped"),
                    (true, false) => s.green("gate passed"),
                    (false, _) => s.red("gate FAILED"),
                };
                let message = if g.skipped {
                    g.message.strip_prefix("skipped: ").unwrap_or(&g.message)
                } else {
                    &g.message
                };
                if g.name == g.expr && g.skipped {
                    self.print(&format!("{mark}: {}: {message}", g.expr));
                } else if g.name == g.expr {
                    self.print(&format!("{mark}: {message}"));
                } else {
                    self.print(&format!("{mark} {}: {message}", g.name));
                }
            }
            Event::Registered(v) => {
                let alias = if v.aliases.is_empty() {
                    String::new()
                } else {
                    format!(" @{}", v.aliases.join(" @"))
                };
                self.print(&format!(
                    "{} {}/{}{alias} ({})",
                    s.green("registered"),
                    v.model,
                    v.version,
                    crate::ui::short(&v.artifact_digest, 12)
                ));
            }
            Event::ModelUnchanged(v) => {
                self.print(&format!(
                    "{} the model equals {v}; no new version",
                    s.dim("unchanged")
                ));
            }
            Event::ModelRejected(v, why) => {
                self.print(&format!(
                    "{} the model equals {v}, which was rejected ({why}); nothing registered, no alias moved",
                    s.yellow("unchanged")
                ));
            }
            Event::Shared {
                stage,
                outcome: Ok(remote),
            } => self.print(&format!("{} {stage} to remote `{remote}`", s.dim("pushed"))),
            Event::Shared {
                stage,
                outcome: Err(why),
            } => self.print(&format!(
                "{} {stage}: the remote's run cache: {}",
                s.yellow("warning"),
                printable(why)
            )),
            Event::Budget(b) => {
                for st in &b.held.standings {
                    self.print(&format!(
                        "{} {}: {} of {} spent in {}, {} held; this run estimated at {} ({})",
                        s.dim("budget"),
                        st.budget.scope,
                        money(st.spent_usd),
                        money(st.budget.monthly_usd),
                        st.period,
                        money(st.reserved_usd),
                        money(b.estimate.usd()),
                        ferry_cost::budget::explain(&b.estimate),
                    ));
                }
                if !b.held.short.is_empty() {
                    self.print(&format!(
                        "{} over budget ({}), let run by --over-budget (audited)",
                        s.yellow("warning"),
                        b.held
                            .short
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            Event::BudgetAlert { alert, delivered } => {
                let sent = match delivered {
                    None => String::new(),
                    Some(Ok(())) => " (webhook sent)".to_owned(),
                    Some(Err(why)) => format!(" (webhook failed: {})", printable(why)),
                };
                self.print(&format!(
                    "{} budget {} reached {}% of {} in {}: {} spent{sent}",
                    s.yellow("alert"),
                    alert.budget,
                    alert.threshold_percent,
                    money(alert.monthly_usd),
                    alert.period,
                    money(alert.spent_usd),
                ));
            }
        }
    }
}

/// `v` as pretty JSON on stdout, for `--json`.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    use std::io::Write;
    std::io::stdout().lock().write_all(s.as_bytes())?;
    Ok(())
}

/// Logs of the long-running commands (`server`, `serve`) go through a
/// bounded queue to a writer thread, so a slow or blocked stderr never
/// holds up a request (lines are dropped when the queue is full); colour
/// only when stderr is a terminal. The writer lives as long as the process.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    std::mem::forget(guard);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(writer)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(writer)
            .init();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stored_text_cannot_drive_the_terminal() {
        assert_eq!(super::printable("plain\ttext"), "plain\ttext");
        assert_eq!(
            super::printable("a\u{1b}]0;pwned\u{7}b\r\nc\u{9b}2J"),
            "a\\u{1b}]0;pwned\\u{7}b\\u{d}\\u{a}c\\u{9b}2J"
        );
        let v = serde_json::json!("x\u{1b}[31my");
        assert_eq!(super::value(&v), "x\\u{1b}[31my");
        let t = super::table("", &["K"], &[vec!["\u{1b}[2Jk".into()]]);
        assert!(!t.contains('\u{1b}'), "{t}");
    }
}
