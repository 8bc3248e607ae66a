//! Tables in: CSV, Parquet and JSON lines, from a file, a folder of files or
//! a glob, read in record batches by arrow-rs (no reader of our own).

use crate::dialect::CsvOptions;
use crate::{DataError, Result};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per record batch.
pub const BATCH_ROWS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Parquet,
    JsonLines,
}

impl Format {
    /// The format a file's extension names.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" | "tsv" | "txt" => Format::Csv,
            "parquet" | "pq" => Format::Parquet,
            "jsonl" | "ndjson" | "json" => Format::JsonLines,
            _ => return None,
        })
    }

    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "csv" => Format::Csv,
            "parquet" => Format::Parquet,
            "jsonl" | "ndjson" | "json" => Format::JsonLines,
            _ => return None,
        })
    }
}

/// A column type a user can name (in a suite, or to override inference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColType {
    Int,
    Float,
    String,
    Bool,
    Timestamp,
    Date,
}

impl ColType {
    pub fn parse(s: &str) -> Option<ColType> {
        Some(match s {
            "int" | "int64" | "integer" | "int32" => ColType::Int,
            "float" | "float64" | "double" | "float32" | "number" => ColType::Float,
            "string" | "str" | "utf8" | "text" | "category" => ColType::String,
            "bool" | "boolean" => ColType::Bool,
            "timestamp" | "datetime" => ColType::Timestamp,
            "date" => ColType::Date,
            _ => return None,
        })
    }

    pub const NAMES: &'static str = "int, float, string, bool, timestamp, date";

    pub fn name(self) -> &'static str {
        match self {
            ColType::Int => "int",
            ColType::Float => "float",
            ColType::String => "string",
            ColType::Bool => "bool",
            ColType::Timestamp => "timestamp",
            ColType::Date => "date",
        }
    }

    /// The type arrow reads this as.
    pub fn arrow(self) -> DataType {
        match self {
            ColType::Int => DataType::Int64,
            ColType::Float => DataType::Float64,
            ColType::String => DataType::Utf8,
            ColType::Bool => DataType::Boolean,
            ColType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColType::Date => DataType::Date32,
        }
    }

    /// The user-facing type of an arrow type (`None`: unsupported).
    pub fn of(dt: &DataType) -> Option<ColType> {
        Some(match dt {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => ColType::Int,
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(_, _)
            | DataType::Decimal64(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _) => ColType::Float,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColType::String,
            DataType::Dictionary(_, v) if ColType::of(v) == Some(ColType::String) => {
                ColType::String
            }
            DataType::Boolean => ColType::Bool,
            DataType::Timestamp(_, _) => ColType::Timestamp,
            DataType::Date32 | DataType::Date64 => ColType::Date,
            _ => return None,
        })
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, ColType::Int | ColType::Float)
    }
}

/// How to read a table.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// A file, a folder (every table file in it, recursively, in name
    /// order) or a glob (`data/2024-*.csv`).
    pub path: String,
    /// Forced format; by default each file's extension decides.
    pub format: Option<Format>,
    pub csv: CsvOptions,
    /// Column types that override inference (CSV and JSON lines).
    pub types: BTreeMap<String, ColType>,
}

impl TableSpec {
    pub fn new(path: impl Into<String>) -> Self {
        TableSpec {
            path: path.into(),
            format: None,
            csv: CsvOptions::default(),
            types: BTreeMap::new(),
        }
    }
}

/// An opened table: its files, format and schema. Reading happens in
/// [`Table::batches`], one batch at a time.
#[derive(Debug, Clone)]
pub struct Table {
    pub spec: TableSpec,
    pub files: Vec<(PathBuf, Format)>,
    pub schema: SchemaRef,
}

/// The files `path` names, in order.
fn resolve(path: &str) -> Result<Vec<PathBuf>> {
    let p = Path::new(path);
    if p.is_file() {
        return Ok(vec![p.to_owned()]);
    }
    if p.is_dir() {
        let mut out = Vec::new();
        let mut stack = vec![p.to_owned()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|source| DataError::Io {
                path: dir.clone(),
                source,
            })?;
            for e in entries {
                let e = e.map_err(|source| DataError::Io {
                    path: dir.clone(),
                    source,
                })?;
                let path = e.path();
                let name = e.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else if Format::of(&path).is_some() {
                    out.push(path);
                }
            }
        }
        out.sort();
        if out.is_empty() {
            return Err(DataError::NoFiles {
                pattern: path.to_owned(),
                why: "the folder holds no .csv, .parquet or .jsonl file".into(),
            });
        }
        return Ok(out);
    }
    if path.contains(['*', '?', '[']) {
        let paths = glob::glob(path).map_err(|e| DataError::NoFiles {
            pattern: path.to_owned(),
            why: format!("not a valid glob: {e}"),
        })?;
        let mut out: Vec<PathBuf> = paths
            .filter_map(|r| r.ok())
            .filter(|p| p.is_file())
            .collect();
        out.sort();
        if out.is_empty() {
            return Err(DataError::NoFiles {
                pattern: path.to_owned(),
                why: "no file matches".into(),
            });
        }
        return Ok(out);
    }
    Err(DataError::NoFiles {
        pattern: path.to_owned(),
        why: "no such file or folder".into(),
    })
}

fn open_file(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Read {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

impl Table {
    /// Finds the files and settles the schema: read from Parquet, inferred
    /// from the first rows of CSV and JSON lines (then overridden by
    /// `spec.types`). Every file must have the same columns.
    pub fn open(spec: &TableSpec) -> Result<Table> {
        Self::open_files(resolve(&spec.path)?, spec)
    }

    /// [`Table::open`] over these files (at least one), in this order:
    /// a window of the prediction log, say.
    pub fn open_files(paths: Vec<PathBuf>, spec: &TableSpec) -> Result<Table> {
        if paths.is_empty() {
            return Err(DataError::NoFiles {
                pattern: spec.path.clone(),
                why: "no file was given".into(),
            });
        }
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let f = match spec.format.or_else(|| Format::of(&p)) {
                Some(f) => f,
                None => {
                    return Err(DataError::Read {
                        path: p,
                        detail:
                            "unknown format: name it .csv, .parquet or .jsonl, or pass --format"
                                .into(),
                    });
                }
            };
            files.push((p, f));
        }
        let (first, fmt) = &files[0];
        let schema = schema_of(first, *fmt, spec)?;
        for (p, f) in &files[1..] {
            let other = schema_of(p, *f, spec)?;
            let names = |s: &Schema| {
                s.fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect::<Vec<_>>()
            };
            if names(&other) != names(&schema) {
                return Err(DataError::Read {
                    path: p.clone(),
                    detail: format!(
                        "its columns ({}) differ from those of {} ({})",
                        names(&other).join(", "),
                        first.display(),
                        names(&schema).join(", ")
                    ),
                });
            }
        }
        Ok(Table {
            spec: spec.clone(),
            files,
            schema,
        })
    }

    /// The table's record batches, file after file.
    pub fn batches(&self) -> Batches<'_> {
        Batches {
            table: self,
            next_file: 0,
            current: None,
        }
    }

    /// The same batches, read and decoded on a thread of their own (at most
    /// four batches ahead), so decoding overlaps the work on each batch.
    pub fn prefetched(&self) -> Prefetched {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let table = self.clone();
        let handle = std::thread::spawn(move || {
            for b in table.batches() {
                let stop = b.is_err();
                if tx.send(b).is_err() || stop {
                    return;
                }
            }
        });
        Prefetched {
            rx,
            handle: Some(handle),
        }
    }

    /// A label for messages: the path as given.
    pub fn label(&self) -> &str {
        &self.spec.path
    }
}

/// Column types to read with: inferred types, then the overrides. Integer
/// columns stay Int64 and floats Float64 (arrow infers nothing narrower).
fn with_overrides(schema: Schema, spec: &TableSpec) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match spec.types.get(f.name()) {
            Some(t) => Field::new(f.name(), t.arrow(), true),
            // No value in the rows inference read: read it as text.
            None if f.data_type() == &DataType::Null => Field::new(f.name(), DataType::Utf8, true),
            None => f.as_ref().clone().with_nullable(true),
        })
        .collect();
    Schema::new(fields)
}

fn schema_of(path: &Path, fmt: Format, spec: &TableSpec) -> Result<SchemaRef> {
    match fmt {
        Format::Parquet => {
            let f = open_file(path)?;
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| read_err(path, e))?;
            Ok(b.schema().clone())
        }
        Format::Csv => {
            let mut f = open_file(path)?;
            let format = arrow_csv::reader::Format::default()
                .with_header(spec.csv.header)
                .with_delimiter(spec.csv.delimiter)
                .with_quote(spec.csv.quote);
            let format = match spec.csv.escape {
                Some(e) => format.with_escape(e),
                None => format,
            };
            let (schema, _) = format
                .infer_schema(&mut f, Some(spec.csv.infer_rows))
                .map_err(|e| {
                    let text = e.to_string();
                    text.contains("unequal lengths")
                        .then(|| ragged_error(path, &spec.csv))
                        .flatten()
                        .unwrap_or_else(|| read_err(path, text))
                })?;
            Ok(Arc::new(with_overrides(schema, spec)))
        }
        Format::JsonLines => {
            let mut r = BufReader::new(open_file(path)?);
            let (schema, _) = arrow_json::reader::infer_json_schema_from_seekable(
                &mut r,
                Some(spec.csv.infer_rows),
            )
            .map_err(|e| {
                match crate::locate::json_infer_bad_line(path, spec.csv.infer_rows) {
                    Some((line, indent, e)) => json_error(path, line, indent, &e),
                    None => read_err(path, json_text(&e.to_string()).1),
                }
            })?;
            r.rewind().map_err(|source| DataError::Io {
                path: path.to_owned(),
                source,
            })?;
            Ok(Arc::new(with_overrides(schema, spec)))
        }
    }
}

/// Batches from [`Table::prefetched`].
pub struct Prefetched {
    rx: std::sync::mpsc::Receiver<Result<(usize, RecordBatch)>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Iterator for Prefetched {
    type Item = Result<(usize, RecordBatch)>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.rx.recv() {
            Ok(b) => Some(b),
            // The reader ended: normally, or by a panic, which must not
            // pass for the end of the table.
            Err(_) => match self.handle.take().map(|h| h.join()) {
                Some(Err(_)) => Some(Err(DataError::Internal("the table reader failed".into()))),
                _ => None,
            },
        }
    }
}

type BatchIter =
    Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>>>;

/// Batches of a [`Table`], with the file each came from.
pub struct Batches<'a> {
    table: &'a Table,
    next_file: usize,
    current: Option<(usize, BatchIter)>,
}

impl Batches<'_> {
    fn open_next(&mut self) -> Result<bool> {
        let Some((path, fmt)) = self.table.files.get(self.next_file) else {
            return Ok(false);
        };
        let idx = self.next_file;
        self.next_file += 1;
        let schema = self.table.schema.clone();
        let spec = &self.table.spec;
        let iter: BatchIter = match fmt {
            Format::Parquet => {
                let f = open_file(path)?;
                let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                    .map_err(|e| read_err(path, e))?
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| read_err(path, e))?;
                Box::new(r)
            }
            Format::Csv => {
                let f = open_file(path)?;
                let b = arrow_csv::ReaderBuilder::new(schema)
                    .with_header(spec.csv.header)
                    .with_delimiter(spec.csv.delimiter)
                    .with_quote(spec.csv.quote)
                    .with_batch_size(BATCH_ROWS);
                let b = match spec.csv.escape {
                    Some(e) => b.with_escape(e),
                    None => b,
                };
                Box::new(b.build(f).map_err(|e| read_err(path, e))?)
            }
            Format::JsonLines => {
                let f = BufReader::new(open_file(path)?);
                let r = arrow_json::ReaderBuilder::new(schema)
                    .with_batch_size(BATCH_ROWS)
                    .build(f)
                    .map_err(|e| read_err(path, e))?;
                Box::new(r)
            }
        };
        self.current = Some((idx, iter));
        Ok(true)
    }
}

impl Iterator for Batches<'_> {
    /// (index of the file in [`Table::files`], batch)
    type Item = Result<(usize, RecordBatch)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((idx, it)) = &mut self.current {
                match it.next() {
                    Some(Ok(b)) => return Some(Ok((*idx, b))),
                    Some(Err(e)) => {
                        let (path, fmt) = &self.table.files[*idx];
                        let e = match fmt {
                            Format::Csv => {
                                csv_error(path, &self.table.spec.csv, &self.table.schema, e)
                            }
                            Format::JsonLines => json_reader_error(path, &self.table.schema, e),
                            Format::Parquet => read_err(path, e),
                        };
                        self.current = None;
                        self.next_file = usize::MAX;
                        return Some(Err(e));
                    }
                    None => self.current = None,
                }
            }
            match self.open_next() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.next_file = usize::MAX;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// The number right after `marker` in `text` (`at line 12`).
fn number_after(text: &str, marker: &str) -> Option<u64> {
    text.split(marker)
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok())
}

/// A CSV reader error, with the column named when arrow gives its index
/// and the file's own line. arrow numbers records, not lines (a header is
/// record 0): `at line N` is record N, `for line N` record N - 1; the
/// record's line is found by reading the file again (a quoted field may
/// span lines, blank lines are skipped).
fn csv_error(
    path: &Path,
    csv: &CsvOptions,
    schema: &Schema,
    e: arrow_schema::ArrowError,
) -> DataError {
    let text = e.to_string();
    // arrow-csv: "... parsing value 'x' as type 'Float64' for column 3 at line 12 ..."
    let column = number_after(&text, "for column ")
        .and_then(|i| schema.fields().get(i as usize).map(|f| f.name().clone()));
    let found = [(" at line ", 0), ("for line ", 1)]
        .into_iter()
        .find_map(|(marker, base)| {
            let n = number_after(&text, marker)?;
            Some((marker, n, n.checked_sub(base)?))
        });
    let mut line = None;
    let mut text = text;
    if let Some((marker, n, record)) = found
        && let Ok(lines) = crate::locate::csv_record_lines(path, csv, &[record])
        && let Some(Some(l)) = lines.first()
    {
        line = Some(*l);
        text = text.replacen(&format!("{marker}{n}"), &format!("{marker}{l}"), 1);
    }
    match (column, line) {
        (Some(column), _) => DataError::Parse {
            path: path.to_owned(),
            column,
            line,
            detail: text,
        },
        (None, Some(line)) => DataError::Line {
            path: path.to_owned(),
            line,
            column: None,
            detail: text,
        },
        (None, None) => read_err(path, text),
    }
}

/// A CSV file whose rows do not all have the same number of fields, named
/// by the first such row's line (the `csv` crate's message, which schema
/// inference passes on, does not count the blank lines before it).
fn ragged_error(path: &Path, csv: &CsvOptions) -> Option<DataError> {
    let (line, want, got) = crate::locate::csv_ragged_record(path, csv).ok()??;
    Some(DataError::Line {
        path: path.to_owned(),
        line,
        column: None,
        detail: format!(
            "{got} {} where the {} has {want}",
            if got == 1 { "field" } else { "fields" },
            if csv.header { "header" } else { "first row" }
        ),
    })
}

/// arrow-json's message without its prefix, and the column serde_json
/// gives (`... at line 1 column 9`: arrow parses each line on its own, so
/// the line is always 1 and is dropped).
fn json_text(text: &str) -> (Option<u64>, String) {
    let text = text.strip_prefix("Json error: ").unwrap_or(text);
    let (text, column) = match text.rsplit_once(" at line 1 column ") {
        Some((head, col)) => (head, col.parse::<u64>().ok()),
        None => (text, None),
    };
    // "Not valid JSON" -> "not valid JSON" (messages are lower case).
    let text = match text.chars().next() {
        Some(c)
            if c.is_uppercase()
                && text[c.len_utf8()..]
                    .chars()
                    .next()
                    .is_some_and(char::is_lowercase) =>
        {
            format!("{}{}", c.to_lowercase(), &text[c.len_utf8()..])
        }
        _ => text.to_owned(),
    };
    (column, text)
}

/// A JSON lines reader error, placed on the line it is about by decoding
/// the file again row by row (arrow's reader names no line).
fn json_reader_error(path: &Path, schema: &SchemaRef, e: arrow_schema::ArrowError) -> DataError {
    let Some(bad) = crate::locate::json_bad_line(path, schema) else {
        return read_err(path, json_text(&e.to_string()).1);
    };
    match (bad.found_on, json_error(path, bad.line, 0, &bad.error)) {
        (
            Some(at),
            DataError::Line {
                path, line, detail, ..
            },
        ) => DataError::Line {
            path,
            line,
            column: None,
            detail: format!(
                "the row that starts here does not end on its line; at line {at}: {detail}"
            ),
        },
        (_, e) => e,
    }
}

/// A JSON lines error on the file's line `line` (whose first `indent`
/// characters are blank), with the column named when arrow names its field.
fn json_error(path: &Path, line: u64, indent: u64, e: &arrow_schema::ArrowError) -> DataError {
    let (at, text) = json_text(&e.to_string());
    // "whilst decoding field 'price': expected ..."
    if let Some(rest) = text.strip_prefix("whilst decoding field '")
        && let Some((field, detail)) = rest.split_once("': ")
    {
        return DataError::Parse {
            path: path.to_owned(),
            column: field.to_owned(),
            line: Some(line),
            detail: detail.to_owned(),
        };
    }
    DataError::Line {
        path: path.to_owned(),
        line,
        column: at.map(|c| c + indent),
        detail: text,
    }
}
