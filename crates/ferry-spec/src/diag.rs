//! Diagnostics: every problem with where it is (file:line:column and key path).

use crate::node::Pos;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Pos,
    /// Where in the document, e.g. `stages.train.deps[1]`.
    pub key_path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.pos.line, self.pos.column)?;
        if !self.key_path.is_empty() {
            write!(f, "{}: ", self.key_path)?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// All problems found in one pass over a spec, with the texts they point into.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
    sources: Vec<(String, String)>,
}

impl Diagnostics {
    pub(crate) fn new(items: Vec<Diagnostic>, sources: Vec<(String, String)>) -> Self {
        let mut items = items;
        items.sort_by(|a, b| {
            (a.file.as_str(), a.pos.line, a.pos.column).cmp(&(
                b.file.as_str(),
                b.pos.line,
                b.pos.column,
            ))
        });
        items.dedup();
        Self { items, sources }
    }

    /// Each diagnostic with the source line it points at and a caret under it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            out.push_str(&format!(
                "error: {}:{}:{}: ",
                d.file, d.pos.line, d.pos.column
            ));
            if !d.key_path.is_empty() {
                out.push_str(&format!("{}: ", d.key_path));
            }
            out.push_str(&d.message);
            out.push('\n');
            let line = self
                .sources
                .iter()
                .find(|(f, _)| *f == d.file)
                .and_then(|(_, text)| text.lines().nth(d.pos.line.saturating_sub(1) as usize));
            if let Some(line) = line {
                let n = d.pos.line.to_string();
                let pad = " ".repeat(n.len());
                let (shown, col) = excerpt(line, d.pos.column.saturating_sub(1) as usize);
                out.push_str(&format!("{pad} |\n{n} | {shown}\n{pad} | "));
                let prefix: String = shown
                    .chars()
                    .take(col)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                out.push_str(&prefix);
                out.push_str("^\n");
            }
            if let Some(h) = &d.hint {
                out.push_str(&format!("  = hint: {h}\n"));
            }
        }
        let n = self.items.len();
        out.push_str(&format!(
            "{n} error{} in the pipeline spec\n",
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

/// The longest source line shown whole, in characters; a longer one is cut
/// to this many around the column, with `…` where text was left out.
pub const SNIPPET_WIDTH: usize = 120;

/// `line` cut to [`SNIPPET_WIDTH`] around the character `col`, and `col`
/// within what is shown.
fn excerpt(line: &str, col: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= SNIPPET_WIDTH {
        return (line.to_owned(), col);
    }
    // Keep the column in view, a third of the way in when it is far right.
    let start = col
        .saturating_sub(SNIPPET_WIDTH / 3)
        .min(chars.len() - SNIPPET_WIDTH);
    let end = start + SNIPPET_WIDTH;
    let mut shown = String::new();
    let mut col = col - start.min(col);
    if start > 0 {
        shown.push('…');
        col += 1;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    (shown, col)
}

/// The text of a spec file from its bytes: UTF-8 without control characters
/// (but tab, line feed and carriage return), as YAML requires. Anything else
/// (a binary file, another encoding) is a diagnostic at the first offending
/// byte, with its offset.
pub fn spec_text(file: &str, bytes: &[u8]) -> Result<String, Diagnostics> {
    let (offset, message) = match std::str::from_utf8(bytes) {
        Ok(text) => match text
            .char_indices()
            .find(|(_, c)| c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            None => return Ok(text.to_owned()),
            Some((i, c)) => (
                i,
                format!(
                    "control character 0x{:02x} at byte offset {i}: a spec is text",
                    c as u32
                ),
            ),
        },
        Err(e) => {
            let i = e.valid_up_to();
            (
                i,
                format!(
                    "byte 0x{:02x} at byte offset {i} is not UTF-8: a spec is UTF-8 text",
                    bytes[i]
                ),
            )
        }
    };
    let before = String::from_utf8_lossy(&bytes[..offset]);
    let line = before.matches('\n').count() as u64 + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
    let d = Diagnostic {
        file: file.to_owned(),
        pos: Pos { line, column },
        key_path: String::new(),
        message,
        hint: Some(format!(
            "save `{file}` as UTF-8 text (is it a binary file?)"
        )),
    };
    Err(Diagnostics::new(
        vec![d],
        vec![(file.to_owned(), String::from_utf8_lossy(bytes).into_owned())],
    ))
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics for one file.
pub(crate) struct Sink<'a> {
    pub file: &'a str,
    pub items: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub fn new(file: &'a str) -> Self {
        Self {
            file,
            items: Vec::new(),
        }
    }
    pub fn err(&mut self, pos: Pos, key_path: &str, message: impl Into<String>) {
        self.push(pos, key_path, message, None);
    }
    pub fn err_hint(
        &mut self,
        pos: Pos,
        key_path: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(pos, key_path, message, Some(hint.into()));
    }
    fn push(&mut self, pos: Pos, key_path: &str, message: impl Into<String>, hint: Option<String>) {
        self.items.push(Diagnostic {
            file: self.file.to_owned(),
            pos,
            key_path: key_path.to_owned(),
            message: message.into(),
            hint,
        });
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a typo.
pub(crate) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_around_the_column() {
        let long = format!("cmd: {}", "x".repeat(400));
        let d = |column| {
            Diagnostics::new(
                vec![Diagnostic {
                    file: "ferry.yaml".into(),
                    pos: Pos { line: 1, column },
                    key_path: String::new(),
                    message: "bad".into(),
                    hint: None,
                }],
                vec![("ferry.yaml".into(), long.clone())],
            )
            .render()
        };
        let near = d(3);
        let shown = near.lines().nth(2).unwrap();
        assert_eq!(shown, format!("1 | cmd: {}…", "x".repeat(115)));
        assert_eq!(near.lines().nth(3).unwrap(), "  |   ^");
        let far = d(300);
        let shown = far.lines().nth(2).unwrap();
        assert!(
            shown.starts_with("1 | …x") && shown.ends_with("x…"),
            "{far}"
        );
        assert_eq!(shown.chars().count(), 4 + 122);
        // The caret still points at column 300: 40 characters into the cut.
        let caret = far.lines().nth(3).unwrap();
        assert_eq!(caret.find('^').unwrap() - 4, 1 + 40);
        // A short line is shown whole.
        assert!(d(1).contains("1 | cmd: "));
    }

    #[test]
    fn binary_bytes_are_a_diagnostic_with_the_offset() {
        let e = spec_text("ferry.yaml", b"stages:\n  s:\n    cmd: echo \xff\xfe\n").unwrap_err();
        let r = e.render();
        assert!(
            r.starts_with("error: ferry.yaml:3:15: byte 0xff at byte offset 27 is not UTF-8"),
            "{r}"
        );
        let e = spec_text("ferry.yaml", b"name: a\0b\n").unwrap_err();
        assert!(
            e.render()
                .starts_with("error: ferry.yaml:1:8: control character 0x00 at byte offset 7"),
            "{}",
            e.render()
        );
        assert_eq!(
            spec_text("f", "tab\tok: é\r\n".as_bytes()).unwrap(),
            "tab\tok: é\r\n"
        );
    }
}
