//! Self-contained HTML reports (inline CSS and SVG; no scripts, no CDN).

use crate::check::CheckReport;
use crate::drift::{ColumnDrift, DriftReport, TextDrift};

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2328;padding:0 1rem}\
h1{font-size:1.4rem;margin:0 0 .3rem}.sub{color:#59636e;margin-bottom:1.2rem}\
.badge{display:inline-block;padding:.1rem .55rem;border-radius:1rem;font-weight:600;font-size:.85rem}\
.ok{background:#dafbe1;color:#1a7f37}.bad{background:#ffebe9;color:#cf222e}.warn{color:#9a6700;font-weight:600}\
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #d1d9e0;vertical-align:top}\
th{background:#f6f8fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}\
code{background:#f6f8fa;padding:.05rem .3rem;border-radius:4px;font-size:.85em}\
details summary{cursor:pointer;color:#0969da}.card{border:1px solid #d1d9e0;border-radius:8px;padding:.8rem 1rem;margin:0 0 1rem}\
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem;vertical-align:-1px}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        esc(title)
    )
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e6 || v.abs() < 1e-4 {
        format!("{v:.4e}")
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), fmt_num),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The validation report as one HTML page.
pub fn check_html(r: &CheckReport) -> String {
    let mut b = String::new();
    let verdict = if r.passed {
        "<span class=\"badge ok\">passed</span>".to_owned()
    } else {
        format!(
            "<span class=\"badge bad\">{} of {} failed</span>",
            r.failed, r.expectations
        )
    };
    b.push_str(&format!(
        "<h1>Data check: {} {verdict}</h1><div class=\"sub\">{} · {} expectations · files: {}</div>",
        esc(&r.source),
        crate::show::rows(r.rows),
        r.expectations,
        esc(&r.files.join(", "))
    ));
    b.push_str("<table><tr><th>expectation</th><th>expected</th><th>observed</th><th class=\"num\">failing rows</th><th>result</th></tr>");
    let mut results: Vec<_> = r.results.iter().collect();
    results.sort_by_key(|x| x.success);
    for x in results {
        let failing = x.failing_text().unwrap_or_default();
        let mut detail = String::new();
        if !x.sample.is_empty() {
            let rows: Vec<String> = x
                .sample
                .iter()
                .map(|f| {
                    format!(
                        "<tr><td>{}</td><td><code>{}</code></td></tr>",
                        esc(&r.place(f)),
                        esc(&json_text(&f.value))
                    )
                })
                .collect();
            detail.push_str(&format!(
                "<details><summary>{} failing (first {})</summary><table><tr><th>where</th><th>value</th></tr>{}</table></details>",
                crate::show::rows(x.unexpected_count.unwrap_or(0)),
                x.sample.len(),
                rows.join("")
            ));
        }
        if !x.unexpected_values.is_empty() {
            let vals: Vec<String> = x
                .unexpected_values
                .iter()
                .map(|(v, c)| format!("<code>{}</code> ×{c}", esc(v)))
                .collect();
            detail.push_str(&format!(
                "<div>unexpected values: {}</div>",
                vals.join(", ")
            ));
        }
        if let Some(n) = &x.note {
            detail.push_str(&format!("<div class=\"sub\">{}</div>", esc(n)));
        }
        b.push_str(&format!(
            "<tr><td><code>{}</code>{detail}</td><td>{}</td><td>{}</td><td class=\"num\">{failing}</td><td>{}</td></tr>",
            esc(&x.id),
            esc(&x.expected),
            esc(&x.observed_text()),
            if x.success { "<span class=\"badge ok\">pass</span>" } else { "<span class=\"badge bad\">fail</span>" }
        ));
    }
    b.push_str("</table>");
    page(&format!("Data check: {}", r.source), &b)
}

const REF: &str = "#57606a";
const CUR: &str = "#0969da";

/// Overlaid bars: reference and current share per bin or level.
fn chart(c: &ColumnDrift) -> String {
    let h = &c.histogram;
    let n = h.reference.len().max(1);
    let (w, ht, pad) = (640.0, 160.0, 24.0);
    let max = h
        .reference
        .iter()
        .chain(&h.current)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let bw = (w - 2.0 * pad) / n as f64;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {}\" width=\"100%\" role=\"img\" aria-label=\"{} distribution\">",
        ht + 40.0,
        esc(&c.column)
    );
    let shown = n.min(60);
    for i in 0..n.min(shown) {
        let x = pad + i as f64 * bw;
        for (k, (vals, color)) in [(&h.reference, REF), (&h.current, CUR)].iter().enumerate() {
            let v = vals.get(i).copied().unwrap_or(0.0);
            let bh = v / max * ht;
            let (bx, bwid) = (x + k as f64 * bw * 0.45 + bw * 0.05, bw * 0.45);
            s.push_str(&format!(
                "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{bwid:.1}\" height=\"{bh:.1}\" fill=\"{color}\" opacity=\".85\"><title>{}: {}</title></rect>",
                pad + ht - bh,
                if h.levels.is_empty() {
                    format!("[{}, {})", fmt_num(h.edges.get(i).copied().unwrap_or(0.0)), fmt_num(h.edges.get(i + 1).copied().unwrap_or(0.0)))
                } else {
                    esc(&h.levels[i])
                },
                fmt_num(v)
            ));
        }
    }
    s.push_str(&format!(
        "<line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#8c959f\"/>",
        pad + ht,
        w - pad
    ));
    // Axis labels: first and last edge, or a few levels.
    if h.levels.is_empty() {
        if let (Some(a), Some(z)) = (h.edges.first(), h.edges.last()) {
            s.push_str(&format!(
                "<text x=\"{pad}\" y=\"{}\" font-size=\"11\" fill=\"#59636e\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#59636e\" text-anchor=\"end\">{}</text>",
                pad + ht + 14.0,
                fmt_num(*a),
                w - pad,
                pad + ht + 14.0,
                fmt_num(*z)
            ));
        }
    } else {
        for (i, l) in h.levels.iter().enumerate().take(shown) {
            if n <= 12 || i % (n / 12 + 1) == 0 {
                s.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" fill=\"#59636e\" text-anchor=\"middle\">{}</text>",
                    pad + (i as f64 + 0.5) * bw,
                    pad + ht + 14.0,
                    esc(&l.chars().take(12).collect::<String>())
                ));
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// [`DriftReport::rows_note`], marked, or nothing.
fn rows_note(r: &DriftReport, c: &ColumnDrift) -> String {
    r.rows_note(c)
        .map(|n| format!(" <span class=\"warn\">({})</span>", esc(&n)))
        .unwrap_or_default()
}

/// The drift report as one HTML page, with a chart per column.
pub fn drift_html(r: &DriftReport) -> String {
    let mut b = String::new();
    let verdict = if r.dataset_drift {
        "<span class=\"badge bad\">dataset drift</span>"
    } else {
        "<span class=\"badge ok\">no dataset drift</span>"
    };
    b.push_str(&format!(
        "<h1>Drift: {} vs {} {verdict}</h1><div class=\"sub\">{} of {} columns drifted ({}; the dataset drifts at {}) · current {} · reference {}</div>",
        esc(&r.current),
        esc(&r.reference),
        r.drifted,
        r.columns.len(),
        crate::show::share(r.drifted_share),
        crate::show::share(r.drift_share_threshold),
        crate::show::rows(r.current_rows),
        crate::show::rows(r.reference_rows)
    ));
    b.push_str(&format!(
        "<div class=\"legend\"><span style=\"background:{REF}\"></span>reference<span style=\"background:{CUR}\"></span>current</div>"
    ));
    b.push_str("<table><tr><th>column</th><th>kind</th><th>method</th><th class=\"num\">value</th><th class=\"num\">threshold</th><th class=\"num\">effect size</th><th class=\"num\">rows used (current / reference)</th><th>drift</th></tr>");
    let mut cols: Vec<&ColumnDrift> = r.columns.iter().collect();
    cols.sort_by_key(|c| !c.drifted);
    for c in &cols {
        b.push_str(&format!(
            "<tr><td><a href=\"#c-{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{} <span class=\"sub\">{}</span></td><td class=\"num\">{}{}</td><td>{}</td></tr>",
            esc(&c.column),
            esc(&c.column),
            c.kind,
            c.method_label,
            fmt_num(c.value),
            fmt_num(c.threshold),
            fmt_num(c.effect_size),
            c.effect_label,
            esc(&r.rows_used(c)),
            rows_note(r, c),
            if c.drifted { "<span class=\"badge bad\">drift</span>" } else { "<span class=\"badge ok\">no</span>" }
        ));
    }
    b.push_str("</table>");
    for c in cols {
        b.push_str(&format!(
            "<div class=\"card\" id=\"c-{}\"><b>{}</b> · {} · {} = {} (drift when {}) · on {}{} {}{}",
            esc(&c.column),
            esc(&c.column),
            c.kind,
            c.method_label,
            fmt_num(c.value),
            c.rule.replace("threshold", &fmt_num(c.threshold)),
            esc(&r.rows_used(c)),
            rows_note(r, c),
            if c.drifted {
                "<span class=\"badge bad\">drift</span>"
            } else {
                "<span class=\"badge ok\">no drift</span>"
            },
            c.note
                .as_deref()
                .map(|n| format!("<div class=\"sub\">{}</div>", esc(n)))
                .unwrap_or_default()
        ));
        if let Some(t) = &c.text {
            b.push_str(&text_html(t));
        }
        if c.method == crate::drift::Method::DomainClassifier {
            b.push_str("<div class=\"sub\">length of the texts in characters</div>");
        }
        b.push_str(&chart(c));
        b.push_str("</div>");
    }
    page(&format!("Drift: {} vs {}", r.current, r.reference), &b)
}

/// A text column's findings: the words (and texts) most telling of each
/// table, and its descriptors side by side.
fn text_html(t: &TextDrift) -> String {
    let mut b = String::new();
    if let Some(k) = &t.classifier {
        let words = |w: &[String]| {
            if w.is_empty() {
                "none".to_owned()
            } else {
                w.iter()
                    .map(|w| format!("<code>{}</code>", esc(w)))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        b.push_str(&format!(
            "<div class=\"sub\">threshold: {} · trained on {} reference and {} current texts, tested on {} and {} · {} words</div>",
            match k.threshold_from {
                "random_classifier" => "a random classifier's 95th percentile ROC AUC on the same texts",
                "absolute" => "fixed for references of more than 1000 texts",
                _ => "given",
            },
            k.train_reference,
            k.train_current,
            k.test_reference,
            k.test_current,
            k.vocabulary
        ));
        b.push_str(&format!(
            "<div>typical words in current: {}</div><div>typical words in reference: {}</div>",
            words(&k.typical_words_current),
            words(&k.typical_words_reference)
        ));
        let examples = |e: &[String]| {
            e.iter()
                .map(|x| format!("<li>{}</li>", esc(x)))
                .collect::<String>()
        };
        if !k.typical_examples_current.is_empty() || !k.typical_examples_reference.is_empty() {
            b.push_str(&format!(
                "<details><summary>typical texts</summary><b>current</b><ul>{}</ul><b>reference</b><ul>{}</ul></details>",
                examples(&k.typical_examples_current),
                examples(&k.typical_examples_reference)
            ));
        }
    }
    b.push_str("<table><tr><th>descriptor</th><th class=\"num\">reference</th><th class=\"num\">current</th></tr>");
    for d in &t.descriptors {
        let shown = |v: f64| {
            if d.name.ends_with("_share") {
                crate::show::share(v)
            } else {
                fmt_num((v * 100.0).round() / 100.0)
            }
        };
        b.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(d.label),
            shown(d.reference),
            shown(d.current)
        ));
    }
    b.push_str("</table>");
    b
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaping() {
        assert_eq!(
            super::esc("<a href='x'>&"),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
    }
}
