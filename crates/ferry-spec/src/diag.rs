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
                out.push_str(&format!("{pad} |\n{n} | {line}\n{pad} | "));
                let col = d.pos.column.saturating_sub(1) as usize;
                let prefix: String = line
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
