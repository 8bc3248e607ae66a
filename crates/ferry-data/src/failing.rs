//! A failing row as reports show it: its number, its file and line once
//! located (`locate.rs`), and its value. Shared by the checks and by
//! `unique`'s spill files, which sit below them.

use crate::show::trim;
use serde::Serialize;
use serde_json::Value;

/// One failing row and its value. `row` is the stable number (0-based,
/// data rows only, across all files of the table); `file` is the file it
/// is in and, for CSV and JSON lines, `line` the 1-based line of that file
/// it starts on (a CSV header is line 1). Reports show [`Failing::place`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failing {
    pub row: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The row's number within its file (0-based).
    #[serde(skip)]
    pub file_row: u64,
    pub value: Value,
}

impl Failing {
    /// A row not placed in a file yet (the checks count rows only).
    pub fn at(row: u64, value: Value) -> Failing {
        Failing {
            row,
            file: None,
            line: None,
            file_row: row,
            value,
        }
    }

    /// Where the row is, in words: `line 12` (CSV, JSON lines) or `row 12`
    /// (Parquet: the 1-based data row), preceded by the file when the table
    /// has several (`b.csv:12`, `b.parquet row 12`).
    pub fn place(&self, several_files: bool) -> String {
        let file = self.file.as_deref().filter(|_| several_files);
        match (file, self.line) {
            (Some(f), Some(l)) => format!("{f}:{l}"),
            (None, Some(l)) => format!("line {l}"),
            (Some(f), None) => format!("{f} row {}", self.file_row + 1),
            (None, None) => format!("row {}", self.row + 1),
        }
    }

    /// The value as it reads in a message: `250`, `zzz`, `null`.
    pub fn value_text(&self) -> String {
        match &self.value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), trim),
            other => other.to_string(),
        }
    }
}
