//! Charts drawn on the server as SVG: no script draws them, so they show
//! as soon as the page does. Every text put in one is escaped; colours
//! come from the stylesheet (classes), and every bar carries its words
//! (`<title>`), so a chart reads without colour too.

use std::fmt::Write;

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// One bar of a timeline: a stage, when it ran, how it ended.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    /// Milliseconds from the timeline's start; `None` for a stage that did
    /// not run (restored, up to date, skipped): a tick at its place.
    pub span: Option<(i64, i64)>,
    /// `ran`, `restored`, `failed`, ... (a CSS class and the bar's words).
    pub status: String,
    /// What the bar's tooltip says.
    pub title: String,
}

const ROW: i64 = 22;
const LABEL: i64 = 140;
const WIDTH: i64 = 720;

/// A timeline of `bars` over `total_ms`, one row each.
pub fn timeline(bars: &[Bar], total_ms: i64) -> String {
    let total = total_ms.max(1) as f64;
    let plot = (WIDTH - LABEL - 10) as f64;
    let height = ROW * bars.len() as i64 + 20;
    let mut out = format!(
        "<svg class=\"timeline\" role=\"img\" aria-label=\"stages on a timeline\" viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, b) in bars.iter().enumerate() {
        let y = i as i64 * ROW + 4;
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\" class=\"label\">{}</text>",
            y + 14,
            escape(&b.label)
        );
        let (x, w) = match b.span {
            Some((from, to)) => (
                LABEL as f64 + plot * (from.max(0) as f64 / total),
                (plot * ((to - from).max(0) as f64 / total)).max(2.0),
            ),
            None => (LABEL as f64, 2.0),
        };
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" class=\"bar {}\"><title>{}</title></rect>",
            ROW - 6,
            escape(&b.status),
            escape(&b.title)
        );
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" class=\"status\">{}</text>",
            x + w + 4.0,
            y + 14,
            escape(&b.status)
        );
    }
    let _ = write!(
        out,
        "<text x=\"{LABEL}\" y=\"{}\" class=\"axis\">0</text><text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"end\">{}</text></svg>",
        height - 2,
        WIDTH - 10,
        height - 2,
        escape(&crate::pages::duration(total_ms))
    );
    out
}

/// A line of a chart: its name and its points (x, y), in x order.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const CHART_W: f64 = 720.0;
const CHART_H: f64 = 240.0;
const PAD_L: f64 = 64.0;
const PAD_B: f64 = 28.0;
/// Room at the top for the legend.
const PAD_T: f64 = 26.0;

/// `series` on one chart with shared axes; `x_name` labels the x axis. A
/// line with few points marks each (with its value as a tooltip); lines
/// differ by dash as well as by colour.
pub fn lines(series: &[Series], x_name: &str) -> String {
    lines_within(series, x_name, None)
}

/// [`lines`] with the y axis spanning at least `y` (a share: 0 to 100).
pub fn lines_within(series: &[Series], x_name: &str, y: Option<(f64, f64)>) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1) = (f64::MAX, f64::MIN);
    let (mut y0, mut y1) = y.unwrap_or((f64::MAX, f64::MIN));
    for &(x, y) in all() {
        if x.is_finite() && y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        return "<p class=\"muted\">No points.</p>".to_owned();
    }
    if x1 == x0 {
        x1 = x0 + 1.0;
    }
    if y1 == y0 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    let plot_w = CHART_W - PAD_L - 10.0;
    let plot_h = CHART_H - PAD_T - PAD_B;
    let px = |x: f64| PAD_L + plot_w * (x - x0) / (x1 - x0);
    let py = |y: f64| PAD_T + plot_h * (1.0 - (y - y0) / (y1 - y0));
    let mut out = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{} by {}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(
            &series
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        escape(x_name)
    );
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{PAD_L}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/><line class=\"axis\" x1=\"{PAD_L}\" y1=\"{PAD_T}\" x2=\"{PAD_L}\" y2=\"{b}\"/>\
         <text class=\"axis\" x=\"{l}\" y=\"{t}\" text-anchor=\"end\">{}</text><text class=\"axis\" x=\"{l}\" y=\"{b}\" text-anchor=\"end\">{}</text>\
         <text class=\"axis\" x=\"{PAD_L}\" y=\"{xb}\">{}</text><text class=\"axis\" x=\"{r}\" y=\"{xb}\" text-anchor=\"end\">{}</text><text class=\"axis\" x=\"{m}\" y=\"{xb}\" text-anchor=\"middle\">{}</text>",
        number(y1),
        number(y0),
        number(x0),
        number(x1),
        escape(x_name),
        b = PAD_T + plot_h,
        r = PAD_L + plot_w,
        l = PAD_L - 4.0,
        t = PAD_T + 10.0,
        xb = CHART_H - 6.0,
        m = PAD_L + plot_w / 2.0,
    );
    // The legend: each line's dash and colour, and its name.
    let mut lx = PAD_L;
    for (i, s) in series.iter().enumerate() {
        let _ = write!(
            out,
            "<line class=\"line s{}\" x1=\"{lx:.1}\" y1=\"9\" x2=\"{:.1}\" y2=\"9\"/><text class=\"legend\" x=\"{:.1}\" y=\"13\">{}</text>",
            i % 6,
            lx + 24.0,
            lx + 28.0,
            escape(&s.name)
        );
        lx += 40.0 + 7.0 * s.name.chars().count() as f64;
    }
    for (i, s) in series.iter().enumerate() {
        let pts = decimate(&s.points, plot_w as usize, x0, x1);
        let mut d = String::with_capacity(pts.len() * 14);
        for (j, &(x, y)) in pts.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if j == 0 { "" } else { " " },
                px(x),
                py(y)
            );
        }
        let _ = write!(
            out,
            "<polyline class=\"line s{}\" points=\"{d}\"><title>{}</title></polyline>",
            i % 6,
            escape(&s.name)
        );
        if s.points.len() <= 40 {
            for &(x, y) in &s.points {
                let _ = write!(
                    out,
                    "<circle class=\"dot s{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{}: {} = {}</title></circle>",
                    i % 6,
                    px(x),
                    py(y),
                    escape(&s.name),
                    number(x),
                    number(y)
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

/// A number as a chart label: integers plainly, others to 4 decimals (1
/// from 10 on, none from 1,000 on), trailing zeros dropped.
fn number(v: f64) -> String {
    let s = match v.abs() {
        a if a >= 1000.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.4}"),
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// At most four points per column of `width` columns: a column's first,
/// lowest, highest and last, in x order (what a line at this width shows
/// anyway), so 10,000 steps draw as fast as 600.
fn decimate(points: &[(f64, f64)], width: usize, x0: f64, x1: f64) -> Vec<(f64, f64)> {
    let points: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if points.len() <= 4 * width.max(1) {
        return points;
    }
    let col = |x: f64| (((x - x0) / (x1 - x0)) * width as f64) as usize;
    let mut out = Vec::with_capacity(4 * width);
    let mut start = 0;
    while start < points.len() {
        let c = col(points[start].0);
        let mut end = start;
        while end < points.len() && col(points[end].0) == c {
            end += 1;
        }
        let run = &points[start..end];
        let (mut lo, mut hi) = (0, 0);
        for (k, p) in run.iter().enumerate() {
            if p.1 < run[lo].1 {
                lo = k;
            }
            if p.1 > run[hi].1 {
                hi = k;
            }
        }
        let mut keep = vec![0, lo, hi, run.len() - 1];
        keep.sort_unstable();
        keep.dedup();
        out.extend(keep.into_iter().map(|k| run[k]));
        start = end;
    }
    out
}

/// A box of a lineage graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// `data`, `commit`, `environment`, `run`, `version` (a CSS class).
    pub kind: &'static str,
    pub label: String,
    /// A second, quieter line (a digest, a date).
    pub detail: String,
    pub href: Option<String>,
}

const NODE_W: f64 = 210.0;
const NODE_H: f64 = 44.0;
const GAP_X: f64 = 60.0;
const GAP_Y: f64 = 12.0;

/// A graph of columns, left to right: every box of a column points at
/// every box of the next (inputs -> the run -> the version). Boxes with an
/// address are links.
pub fn graph(columns: &[Vec<Node>]) -> String {
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0).max(1) as f64;
    let height = rows * (NODE_H + GAP_Y) + GAP_Y;
    let width = columns.len() as f64 * (NODE_W + GAP_X) - GAP_X + 2.0;
    let place = |c: usize, r: usize, n: usize| {
        let top = (height - n as f64 * (NODE_H + GAP_Y) + GAP_Y) / 2.0;
        (
            1.0 + c as f64 * (NODE_W + GAP_X),
            top + r as f64 * (NODE_H + GAP_Y),
        )
    };
    let mut out = format!(
        "<svg class=\"graph\" role=\"img\" aria-label=\"lineage\" viewBox=\"0 0 {width:.0} {height:.0}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>"
    );
    for (c, pair) in columns.windows(2).enumerate() {
        for r in 0..pair[0].len() {
            for t in 0..pair[1].len() {
                let (x, y) = place(c, r, pair[0].len());
                let (tx, ty) = place(c + 1, t, pair[1].len());
                let _ = write!(
                    out,
                    "<line class=\"edge\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" marker-end=\"url(#arrow)\"/>",
                    x + NODE_W,
                    y + NODE_H / 2.0,
                    tx,
                    ty + NODE_H / 2.0
                );
            }
        }
    }
    for (c, col) in columns.iter().enumerate() {
        for (r, n) in col.iter().enumerate() {
            let (x, y) = place(c, r, col.len());
            let body = format!(
                "<rect class=\"node {}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"4\"/>\
                 <text class=\"kind\" x=\"{:.1}\" y=\"{:.1}\">{}</text><text class=\"label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\
                 <text class=\"detail\" x=\"{:.1}\" y=\"{:.1}\">{}</text><title>{}: {} {}</title>",
                n.kind,
                x + 8.0,
                y + 13.0,
                n.kind,
                x + 8.0,
                y + 27.0,
                escape(&clip(&n.label, 28)),
                x + 8.0,
                y + 39.0,
                escape(&clip(&n.detail, 32)),
                n.kind,
                escape(&n.label),
                escape(&n.detail),
            );
            match &n.href {
                Some(h) => {
                    let _ = write!(out, "<a href=\"{}\">{body}</a>", escape(h));
                }
                None => out.push_str(&body),
            }
        }
    }
    out.push_str("</svg>");
    out
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut c: String = s.chars().take(n - 1).collect();
        c.push('…');
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_places_each_stage_and_escapes_its_words() {
        let svg = timeline(
            &[
                Bar {
                    label: "prepare".into(),
                    span: Some((0, 1000)),
                    status: "ran".into(),
                    title: "ran in 1.0s".into(),
                },
                Bar {
                    label: "<script>".into(),
                    span: None,
                    status: "restored".into(),
                    title: "restored \"cached\"".into(),
                },
            ],
            2000,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // Half the plot for the first second.
        assert!(svg.contains("x=\"140.0\" y=\"4\" width=\"285.0\""), "{svg}");
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
        assert!(svg.contains("restored &quot;cached&quot;"));
        assert!(svg.contains(">2.0s</text></svg>"), "{svg}");
    }

    #[test]
    fn a_long_line_is_drawn_with_at_most_four_points_a_column() {
        let points: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, (i % 97) as f64)).collect();
        let svg = lines(
            &[Series {
                name: "loss".into(),
                points,
            }],
            "step",
        );
        let drawn = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let n = drawn.split(' ').count();
        assert!(n <= 4 * 646 && n > 600, "{n}");
        // The extremes survive.
        assert!(
            svg.contains(">96</text>") && svg.contains(">0</text>"),
            "{svg}"
        );
        assert!(!svg.contains("<circle"), "no dots on a long line");
        assert_eq!(lines(&[], "step"), "<p class=\"muted\">No points.</p>");
    }

    #[test]
    fn a_graph_links_its_boxes_and_points_each_column_at_the_next() {
        let node = |kind, label: &str, href: Option<&str>| Node {
            kind,
            label: label.into(),
            detail: "d".into(),
            href: href.map(Into::into),
        };
        let svg = graph(&[
            vec![
                node("data", "data/iris.csv", None),
                node("commit", "<abc>", None),
            ],
            vec![node("run", "run 1", Some("/ui/runs/1"))],
            vec![node("version", "iris/1", None)],
        ]);
        assert_eq!(svg.matches("<line class=\"edge\"").count(), 3);
        assert!(svg.contains("<a href=\"/ui/runs/1\">"));
        assert!(svg.contains("&lt;abc&gt;") && !svg.contains("<abc>"));
    }
}
