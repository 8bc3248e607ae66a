//! The three request shapes, turned into the model's input tensors, and the
//! outputs turned back: MLflow scoring (`/invocations`), the Open Inference
//! Protocol (KServe V2) and KServe V1. Pure: bytes and signatures in,
//! tensors or JSON out; every error names the field it is about.

use crate::predictor::{label_output, probability_output};
use ferry_mlmodel::Signature;
use ferry_onnx::{DType, IoSpec, Tensor, TensorData};
use serde_json::{Map, Value, json};

/// A request the client got wrong (answered 4xx in the protocol's shape).
#[derive(Debug, Clone, PartialEq)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad<T>(m: impl Into<String>) -> Result<T, BadInput> {
    Err(BadInput(m.into()))
}

/// Rows of named or positional values, before they meet a signature.
#[derive(Debug)]
enum Frame {
    /// A row-major table; `columns` names them when the request did;
    /// `field` is where in the request it came from (for messages).
    Table {
        field: Field,
        columns: Option<Vec<String>>,
        rows: Vec<Vec<Value>>,
    },
    /// Named tensors (`inputs: {"name": [...]}`).
    Named(Vec<(String, Value)>),
}

/// Where a table came from in the request, so that a message about one of
/// its values names the field the client wrote it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Split,
    Records,
    Instances,
    Inputs,
    Csv,
}

impl Field {
    /// The request's key (`instances[3]`).
    fn key(self) -> &'static str {
        match self {
            Field::Split => "dataframe_split",
            Field::Records => "dataframe_records",
            Field::Instances => "instances",
            Field::Inputs => "inputs",
            Field::Csv => "CSV",
        }
    }

    /// Where the values are.
    fn rows(self) -> &'static str {
        match self {
            Field::Split => "`dataframe_split.data`",
            Field::Records => "`dataframe_records`",
            Field::Instances => "`instances`",
            Field::Inputs => "`inputs`",
            Field::Csv => "the CSV body",
        }
    }

    /// Where the column names are.
    fn columns(self) -> &'static str {
        match self {
            Field::Split => "`dataframe_split.columns`",
            Field::Records => "the keys of `dataframe_records`",
            Field::Instances => "the keys of `instances`",
            Field::Inputs => "the keys of `inputs`",
            Field::Csv => "the CSV header",
        }
    }
}

/// Parses an MLflow scoring body (JSON) into input tensors for `inputs`.
pub fn mlflow_json(
    body: &[u8],
    inputs: &[IoSpec],
    sig: Option<&Signature>,
) -> Result<Vec<Tensor>, BadInput> {
    mlflow_json_named(body, inputs, sig).map(|(t, _)| t)
}

/// [`mlflow_json`], and the column names the request gave (dataframe shapes).
pub fn mlflow_json_named(
    body: &[u8],
    inputs: &[IoSpec],
    sig: Option<&Signature>,
) -> Result<(Vec<Tensor>, Option<Vec<String>>), BadInput> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| BadInput(format!("the body is not valid JSON: {e}")))?;
    mlflow_value(v, inputs, sig)
}

/// The request most clients send, read without a JSON value tree: a
/// `dataframe_split` of numbers only (no `params`), its `columns` the
/// signature's in its order, for a model of one float input taking rows.
/// `None` for any other body, which [`mlflow_value`] then reads (and words
/// the error of, if it has one); when `Some`, the tensors and columns are
/// the ones [`mlflow_value`] makes of the same body (a test holds them equal).
pub fn mlflow_numeric_split(
    body: &[u8],
    inputs: &[IoSpec],
    sig: Option<&Signature>,
) -> Option<(Vec<Tensor>, Option<Vec<String>>)> {
    let ([spec], Some(sig)) = (inputs, sig) else {
        return None;
    };
    if !matches!(spec.dtype, DType::F32 | DType::F64) || spec.shape.len() != 2 {
        return None;
    }
    let parsed: fast::SplitBody<'_> = serde_json::from_slice(body).ok()?;
    let (cols, rows) = (parsed.dataframe_split.columns, parsed.dataframe_split.data);
    let named_in_order =
        cols.len() == sig.inputs.len() && cols.iter().zip(&sig.inputs).all(|(c, s)| *c == s.name);
    // A column named twice is refused by the general reader (a signature
    // read from a foreign MLmodel may name one twice).
    let unique = || cols.iter().enumerate().all(|(i, c)| !cols[..i].contains(c));
    if !named_in_order || rows.count == 0 || rows.width != cols.len() || !unique() {
        return None;
    }
    let shape = vec![rows.count, rows.width];
    check_shape(spec, &shape, "").ok()?;
    let data = match spec.dtype {
        DType::F32 => TensorData::F32(rows.values.iter().map(|&x| x as f32).collect()),
        _ => TensorData::F64(rows.values),
    };
    let tensor = Tensor {
        name: spec.name.clone(),
        shape,
        data,
    };
    let columns = sig.inputs.iter().map(|c| c.name.clone()).collect();
    Some((vec![tensor], Some(columns)))
}

/// The typed reading of [`mlflow_numeric_split`]: rows of numbers go
/// straight into one flat buffer.
mod fast {
    use serde::Deserialize;
    use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
    use std::fmt;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct SplitBody<'a> {
        #[serde(borrow)]
        pub dataframe_split: Split<'a>,
    }

    /// Unknown keys (pandas' `index`) are passed over, as [`super::split`] does.
    #[derive(Deserialize)]
    pub(super) struct Split<'a> {
        #[serde(borrow)]
        pub columns: Vec<&'a str>,
        pub data: Rows,
    }

    /// Equal-width rows, row-major; a ragged or non-numeric row fails the read.
    pub(super) struct Rows {
        pub values: Vec<f64>,
        pub width: usize,
        pub count: usize,
    }

    impl<'de> Deserialize<'de> for Rows {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rows, D::Error> {
            d.deserialize_seq(RowsVisitor)
        }
    }

    struct RowsVisitor;

    impl<'de> Visitor<'de> for RowsVisitor {
        type Value = Rows;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of rows of numbers")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rows, A::Error> {
            let mut rows = Rows {
                values: Vec::new(),
                width: 0,
                count: 0,
            };
            while seq.next_element_seed(Row(&mut rows.values))?.is_some() {
                let width = rows.values.len() - rows.width * rows.count;
                if rows.count == 0 {
                    rows.width = width;
                    rows.values.reserve(width * seq.size_hint().unwrap_or(0));
                } else if width != rows.width {
                    return Err(serde::de::Error::custom("ragged rows"));
                }
                rows.count += 1;
            }
            Ok(rows)
        }
    }

    /// One row, appended to the buffer.
    struct Row<'v>(&'v mut Vec<f64>);

    impl<'de> DeserializeSeed<'de> for Row<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Row<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a row of numbers")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(x) = seq.next_element::<f64>()? {
                self.0.push(x);
            }
            Ok(())
        }
    }
}

/// [`mlflow_json_named`] on a body already parsed.
pub fn mlflow_value(
    v: Value,
    inputs: &[IoSpec],
    sig: Option<&Signature>,
) -> Result<(Vec<Tensor>, Option<Vec<String>>), BadInput> {
    let Value::Object(mut obj) = v else {
        return bad(
            "the body must be a JSON object with one of the keys `dataframe_split`, `dataframe_records`, `instances`, `inputs`",
        );
    };
    obj.remove("params");
    const KEYS: [&str; 4] = [
        "dataframe_split",
        "dataframe_records",
        "instances",
        "inputs",
    ];
    let present: Vec<&str> = KEYS
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect();
    let unknown: Vec<&String> = obj.keys().filter(|k| !KEYS.contains(&k.as_str())).collect();
    if let Some(k) = unknown.first() {
        return bad(format!(
            "unknown key `{k}`; the body must have exactly one of `dataframe_split`, `dataframe_records`, `instances`, `inputs` (and optionally `params`)"
        ));
    }
    let frame = match present.as_slice() {
        [one] => {
            let v = obj.remove(*one).unwrap_or(Value::Null);
            match *one {
                "dataframe_split" => split(v)?,
                "dataframe_records" => records(v, Field::Records)?,
                "instances" => instances(v, Field::Instances)?,
                _ => named_columns(tensor_inputs(v)?, inputs, sig)?,
            }
        }
        [] => {
            return bad(
                "the body has none of `dataframe_split`, `dataframe_records`, `instances`, `inputs`",
            );
        }
        many => {
            return bad(format!(
                "the body must have exactly one of `dataframe_split`, `dataframe_records`, `instances`, `inputs`; it has {}",
                many.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    let frame = by_name(frame, inputs, sig)?;
    let columns = match &frame {
        Frame::Table { columns, .. } => columns.clone(),
        Frame::Named(_) => None,
    };
    Ok((frame_to_tensors(frame, inputs)?, columns))
}

/// Parses a CSV body (RFC 4180: a header row, then one row per instance;
/// a quoted value may hold commas, doubled quotes and line breaks). CSV has
/// no types: a value is read as the model's input takes it, so a column that
/// goes to a text input keeps its text as written (`5`, ` spaced `), and one
/// that goes to a numeric input is parsed as a number (empty: missing).
pub fn mlflow_csv(
    body: &[u8],
    inputs: &[IoSpec],
    sig: Option<&Signature>,
) -> Result<(Vec<Tensor>, Option<Vec<String>>), BadInput> {
    let text =
        std::str::from_utf8(body).map_err(|_| BadInput("the CSV body is not UTF-8".into()))?;
    let mut records = csv_records(text)?.into_iter();
    let header: Vec<String> = records
        .next()
        .ok_or_else(|| BadInput("the CSV body is empty (a header row is required)".into()))?
        .1
        .into_iter()
        .map(|c| c.trim().to_owned())
        .collect();
    unique_columns(&header, Field::Csv.columns())?;
    let types: Vec<DType> = header.iter().map(|h| column_dtype(h, inputs)).collect();
    let mut rows = Vec::new();
    for (line, cells) in records {
        if cells.len() != header.len() {
            return bad(format!(
                "CSV line {line}: {} values for {} columns",
                cells.len(),
                header.len()
            ));
        }
        rows.push(
            cells
                .into_iter()
                .zip(&types)
                .map(|(c, t)| csv_value(c, *t))
                .collect(),
        );
    }
    let frame = by_name(
        Frame::Table {
            field: Field::Csv,
            columns: Some(header),
            rows,
        },
        inputs,
        sig,
    )?;
    let columns = match &frame {
        Frame::Table { columns, .. } => columns.clone(),
        Frame::Named(_) => None,
    };
    Ok((frame_to_tensors(frame, inputs)?, columns))
}

/// The type the model takes a named column in: its one input's, or that
/// of the input of the same name (one input per column).
fn column_dtype(column: &str, inputs: &[IoSpec]) -> DType {
    match inputs {
        [one] => one.dtype,
        many => many
            .iter()
            .find(|i| i.name == column)
            .map_or(DType::F64, |i| i.dtype),
    }
}

/// A CSV value as the model's input takes it (see [`mlflow_csv`]).
fn csv_value(cell: std::borrow::Cow<'_, str>, dtype: DType) -> Value {
    if dtype == DType::Str {
        return Value::String(cell.into_owned());
    }
    let c = cell.trim();
    if c.is_empty() {
        return Value::Null;
    }
    if dtype == DType::Bool {
        if c.eq_ignore_ascii_case("true") {
            return Value::Bool(true);
        }
        if c.eq_ignore_ascii_case("false") {
            return Value::Bool(false);
        }
    }
    match c.parse::<f64>() {
        Ok(n) => json!(n),
        Err(_) => Value::String(c.to_owned()),
    }
}

/// The records of a CSV text (RFC 4180), each with the line it starts on
/// (1-based); blank lines are skipped. Values are borrowed from `text`
/// unless a doubled quote had to be undone.
#[allow(clippy::type_complexity)]
fn csv_records(text: &str) -> Result<Vec<(usize, Vec<std::borrow::Cow<'_, str>>)>, BadInput> {
    use std::borrow::Cow;
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0usize, 1usize);
    while i < b.len() {
        let start_line = line;
        let mut cells: Vec<Cow<'_, str>> = Vec::new();
        let mut quoted = false;
        loop {
            // One value, from `i` to its comma or the record's end.
            let mut j = i;
            while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                quoted = true;
                let open = j;
                j += 1;
                let mut value = String::new();
                let mut from = j;
                let mut doubled = false;
                loop {
                    match b.get(j) {
                        None => {
                            return bad(format!(
                                "CSV line {start_line}: the quoted value that starts there is not closed"
                            ));
                        }
                        Some(b'"') if b.get(j + 1) == Some(&b'"') => {
                            value.push_str(&text[from..=j]);
                            doubled = true;
                            j += 2;
                            from = j;
                        }
                        Some(b'"') => break,
                        Some(c) => {
                            if *c == b'\n' {
                                line += 1;
                            }
                            j += 1;
                        }
                    }
                }
                let cell = if doubled {
                    value.push_str(&text[from..j]);
                    Cow::Owned(value)
                } else {
                    Cow::Borrowed(&text[open + 1..j])
                };
                j += 1;
                while j < b.len() && (b[j] == b' ' || b[j] == b'\t' || b[j] == b'\r') {
                    j += 1;
                }
                if j < b.len() && b[j] != b',' && b[j] != b'\n' {
                    return bad(format!(
                        "CSV line {line}: text after a closing quote (a quote inside a quoted value is written twice: `\"\"`)"
                    ));
                }
                cells.push(cell);
            } else {
                while j < b.len() && b[j] != b',' && b[j] != b'\n' {
                    j += 1;
                }
                cells.push(Cow::Borrowed(text[i..j].trim_end_matches('\r')));
            }
            i = j;
            match b.get(i) {
                Some(b',') => i += 1,
                Some(_) => {
                    // The newline ending the record.
                    i += 1;
                    line += 1;
                    break;
                }
                None => break,
            }
        }
        let blank = !quoted && cells.len() == 1 && cells[0].trim().is_empty();
        if !blank {
            out.push((start_line, cells));
        }
    }
    Ok(out)
}

/// Matches a table's named columns to what the model takes, by name, never
/// by position: with a signature they are put in its order (a missing or
/// unexpected column is an error naming them); without one, names that
/// cannot be matched to the model's inputs are an error rather than a
/// guess. Unnamed rows (`instances` as lists) are positional by nature.
fn by_name(frame: Frame, inputs: &[IoSpec], sig: Option<&Signature>) -> Result<Frame, BadInput> {
    let (field, columns, rows) = match frame {
        Frame::Table {
            field,
            columns: Some(columns),
            rows,
        } => (field, columns, rows),
        // Unnamed rows for a model of one input per column (text beside
        // numbers): in the signature's order, as unnamed rows always are.
        Frame::Table {
            field,
            columns: None,
            rows,
        } if inputs.len() > 1
            && sig.is_some_and(|s| rows.iter().all(|r| r.len() == s.inputs.len())) =>
        {
            let names = sig.map(|s| s.names()).unwrap_or_default();
            (field, names.into_iter().map(str::to_owned).collect(), rows)
        }
        frame => return Ok(frame),
    };
    let Some(sig) = sig else {
        let matched = |c: &String| inputs.iter().any(|i| &i.name == c);
        if inputs.len() > 1 || (columns.len() == 1 && matched(&columns[0])) {
            // One input per column, matched by name downstream.
            return Ok(Frame::Table {
                field,
                columns: Some(columns),
                rows,
            });
        }
        return bad(format!(
            "this model version has no signature, so the columns {} cannot be matched to its input by name; send `instances` as lists of values in the model's order, or register the version with a signature (`register.signature` in ferry.yaml)",
            list(&columns)
        ));
    };
    let want = sig.names();
    let missing: Vec<String> = want
        .iter()
        .filter(|w| !columns.iter().any(|c| c == *w))
        .map(|w| (*w).to_owned())
        .collect();
    let unexpected: Vec<String> = columns
        .iter()
        .filter(|c| !want.contains(&c.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", list(&missing)));
        }
        if !unexpected.is_empty() {
            parts.push(format!("unexpected {}", list(&unexpected)));
        }
        return bad(format!(
            "{}: the columns do not match the model's signature ({}): {}",
            field.columns(),
            list(&want.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>()),
            parts.join("; ")
        ));
    }
    let order: Vec<usize> = want
        .iter()
        .filter_map(|w| columns.iter().position(|c| c == w))
        .collect();
    // Already in the signature's order (as clients mostly send them): the
    // rows stay as they are.
    let rows = if order.iter().enumerate().all(|(i, &j)| i == j) {
        rows
    } else {
        rows.into_iter()
            .map(|mut r| {
                if r.len() == order.len() {
                    order.iter().map(|&j| std::mem::take(&mut r[j])).collect()
                } else {
                    r
                }
            })
            .collect()
    };
    Ok(Frame::Table {
        field,
        columns: Some(want.iter().map(|w| (*w).to_owned()).collect()),
        rows,
    })
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a column named twice (which of the two would the model get?).
fn unique_columns(columns: &[String], what: &str) -> Result<(), BadInput> {
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            return bad(format!("{what} names the column `{c}` twice"));
        }
    }
    Ok(())
}

fn split(v: Value) -> Result<Frame, BadInput> {
    let Value::Object(mut o) = v else {
        return bad("`dataframe_split` must be an object with `columns` and `data`");
    };
    let columns = match o.remove("columns") {
        None | Some(Value::Null) => None,
        Some(Value::Array(c)) => Some(
            c.into_iter()
                .enumerate()
                .map(|(i, c)| match c {
                    Value::String(s) => Ok(s),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => bad(format!("`dataframe_split.columns[{i}]` must be a string")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return bad("`dataframe_split.columns` must be a list"),
    };
    let rows = match o.remove("data") {
        Some(Value::Array(rows)) => rows
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Value::Array(cells) => Ok(cells),
                scalar if columns.as_ref().is_some_and(|c| c.len() == 1) => Ok(vec![scalar]),
                _ => bad(format!("`dataframe_split.data[{i}]` must be a list")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return bad("`dataframe_split.data` must be a list of rows"),
    };
    if let Some(c) = &columns {
        unique_columns(c, Field::Split.columns())?;
        for (i, r) in rows.iter().enumerate() {
            if r.len() != c.len() {
                return bad(format!(
                    "`dataframe_split.data[{i}]` has {} values for {} columns",
                    r.len(),
                    c.len()
                ));
            }
        }
    }
    Ok(Frame::Table {
        field: Field::Split,
        columns,
        rows,
    })
}

fn records(v: Value, field: Field) -> Result<Frame, BadInput> {
    let key = field.key();
    let Value::Array(recs) = v else {
        return bad(format!("`{key}` must be a list of records"));
    };
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::with_capacity(recs.len());
    for (i, r) in recs.into_iter().enumerate() {
        let Value::Object(m) = r else {
            return bad(format!("`{key}[{i}]` must be an object"));
        };
        if i == 0 {
            columns = m.keys().cloned().collect();
        }
        let mut m = m;
        let mut row = Vec::with_capacity(columns.len());
        for c in &columns {
            row.push(
                m.remove(c)
                    .ok_or_else(|| BadInput(format!("`{key}[{i}]` has no `{c}`")))?,
            );
        }
        if let Some(extra) = m.keys().next() {
            return bad(format!(
                "`{key}[{i}]` has `{extra}`, which the first record does not"
            ));
        }
        rows.push(row);
    }
    Ok(Frame::Table {
        field,
        columns: Some(columns),
        rows,
    })
}

/// `instances` (or `inputs` as a list): rows as lists, records, or one
/// value per row (`["great product", "awful"]` for a one-column model).
fn instances(v: Value, field: Field) -> Result<Frame, BadInput> {
    let Value::Array(items) = v else {
        return bad(format!("`{}` must be a list", field.key()));
    };
    if items.first().is_some_and(Value::is_object) {
        return records(Value::Array(items), field);
    }
    let rows = items
        .into_iter()
        .map(|r| match r {
            Value::Array(cells) => cells,
            scalar => vec![scalar],
        })
        .collect();
    Ok(Frame::Table {
        field,
        columns: None,
        rows,
    })
}

fn tensor_inputs(v: Value) -> Result<Frame, BadInput> {
    match v {
        Value::Object(m) => Ok(Frame::Named(m.into_iter().collect())),
        Value::Array(_) => instances(v, Field::Inputs),
        _ => bad("`inputs` must be a list (a tensor) or an object of named tensors"),
    }
}

/// `inputs` as an object is named tensors when it names the model's
/// inputs; when it names the signature's columns instead (as MLflow takes
/// a dict of columns: `{"text": ["great", "awful"]}`), it is a table of
/// those columns, one list of values each.
fn named_columns(
    frame: Frame,
    inputs: &[IoSpec],
    sig: Option<&Signature>,
) -> Result<Frame, BadInput> {
    let (Frame::Named(named), Some(sig)) = (&frame, sig) else {
        return Ok(frame);
    };
    let tensors = inputs
        .iter()
        .all(|i| named.iter().any(|(n, _)| n == &i.name));
    if tensors
        || !named
            .iter()
            .all(|(n, _)| sig.inputs.iter().any(|c| &c.name == n))
    {
        return Ok(frame);
    }
    let Frame::Named(named) = frame else {
        return Ok(frame);
    };
    let mut names = Vec::with_capacity(named.len());
    let mut values: Vec<Vec<Value>> = Vec::with_capacity(named.len());
    for (n, v) in named {
        let col: Vec<Value> = match v {
            // A column as a `[N, 1]` tensor: its values.
            Value::Array(items) => items
                .into_iter()
                .map(|x| match x {
                    Value::Array(mut one) if one.len() == 1 => one.pop().unwrap_or_default(),
                    x => x,
                })
                .collect(),
            scalar => vec![scalar],
        };
        if let (Some(first), Some(len)) = (names.first(), values.first().map(Vec::len))
            && col.len() != len
        {
            return bad(format!(
                "`inputs.{n}` has {} values, `inputs.{first}` has {len}: the columns must be as long",
                col.len()
            ));
        }
        names.push(n);
        values.push(col);
    }
    let n = values.first().map_or(0, Vec::len);
    let mut rows = vec![Vec::with_capacity(values.len()); n];
    for col in values {
        for (r, v) in rows.iter_mut().zip(col) {
            r.push(v);
        }
    }
    Ok(Frame::Table {
        field: Field::Inputs,
        columns: Some(names),
        rows,
    })
}

fn frame_to_tensors(frame: Frame, inputs: &[IoSpec]) -> Result<Vec<Tensor>, BadInput> {
    match frame {
        Frame::Named(mut named) => {
            let mut out = Vec::new();
            let only = inputs.len() == 1 && named.len() == 1;
            for spec in inputs {
                let v = named
                    .iter_mut()
                    .find(|(n, _)| n == &spec.name)
                    .map(|(_, v)| std::mem::take(v))
                    .or_else(|| only.then(|| std::mem::take(&mut named[0].1)))
                    .ok_or_else(|| BadInput(format!("`inputs` has no tensor `{}`", spec.name)))?;
                let what = format!("`inputs.{}`", spec.name);
                let mut flat = Vec::new();
                let mut shape = Vec::new();
                flatten(v, &mut flat, &mut shape, 0, &what)?;
                out.push(tensor_from(spec, shape, flat, &what, None)?);
            }
            Ok(out)
        }
        Frame::Table {
            field,
            columns,
            rows,
        } => {
            if rows.is_empty() {
                return bad(format!("no rows to predict in {}", field.rows()));
            }
            // One input per column (skl2onnx's column-wise inputs, or text
            // and numbers side by side), matched by name.
            if inputs.len() > 1 {
                let Some(columns) = columns else {
                    return bad(format!(
                        "the model takes {} named inputs ({}); send `dataframe_split` or `dataframe_records` with those columns",
                        inputs.len(),
                        names(inputs)
                    ));
                };
                let mut out = Vec::new();
                for spec in inputs {
                    let Some(j) = columns.iter().position(|c| c == &spec.name) else {
                        return bad(format!(
                            "{}: no column `{}` (the model's inputs are {})",
                            field.columns(),
                            spec.name,
                            names(inputs)
                        ));
                    };
                    let flat: Vec<Value> = rows
                        .iter()
                        .map(|r| r.get(j).cloned().unwrap_or(Value::Null))
                        .collect();
                    let width = spec.shape.get(1).copied().flatten().unwrap_or(1);
                    let shape = if spec.shape.len() >= 2 {
                        vec![rows.len(), width]
                    } else {
                        vec![rows.len()]
                    };
                    out.push(tensor_from(
                        spec,
                        shape,
                        flat,
                        field.rows(),
                        Some(std::slice::from_ref(&spec.name)),
                    )?);
                }
                return Ok(out);
            }
            let spec = inputs
                .first()
                .ok_or_else(|| BadInput("the model has no inputs".into()))?;
            let width = rows[0].len();
            let mut flat = Vec::with_capacity(rows.len() * width);
            for (i, r) in rows.into_iter().enumerate() {
                if r.len() != width {
                    return bad(format!(
                        "{} row {i} has {} values, row 0 has {width}",
                        field.rows(),
                        r.len()
                    ));
                }
                flat.extend(r);
            }
            let n = flat.len() / width.max(1);
            let shape = if spec.shape.len() == 1 {
                // A model taking one value per row: one column only.
                if width != 1 {
                    return bad(format!(
                        "the model's `{}` takes one value per row; the rows of {} have {width}",
                        spec.name,
                        field.rows()
                    ));
                }
                vec![flat.len()]
            } else {
                vec![n, width]
            };
            Ok(vec![tensor_from(
                spec,
                shape,
                flat,
                field.rows(),
                columns.as_deref(),
            )?])
        }
    }
}

fn names(inputs: &[IoSpec]) -> String {
    inputs
        .iter()
        .map(|i| format!("`{}`", i.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Flattens nested lists row-major, recording the shape.
fn flatten(
    v: Value,
    out: &mut Vec<Value>,
    shape: &mut Vec<usize>,
    depth: usize,
    what: &str,
) -> Result<(), BadInput> {
    match v {
        Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            } else if shape[depth] != items.len() {
                return bad(format!("{what} is ragged: its lists differ in length"));
            }
            for it in items {
                flatten(it, out, shape, depth + 1, what)?;
            }
            Ok(())
        }
        scalar => {
            if shape.len() != depth {
                return bad(format!("{what} is ragged: lists and values mixed"));
            }
            out.push(scalar);
            Ok(())
        }
    }
}

/// Checks `shape` against the signature and converts the values; `columns`
/// names the values of a row, for messages.
fn tensor_from(
    spec: &IoSpec,
    shape: Vec<usize>,
    flat: Vec<Value>,
    what: &str,
    columns: Option<&[String]>,
) -> Result<Tensor, BadInput> {
    let shape = fit_rank(spec, shape);
    check_shape(spec, &shape, what)?;
    let at = Place::new(what, &shape, columns);
    let data = convert(spec, flat, &at)?;
    check_finite(&data, &at)?;
    Ok(Tensor {
        name: spec.name.clone(),
        shape,
        data,
    })
}

/// Names the place of a tensor's `i`-th value for a message: its row (the
/// first dimension) and its column (by name when the request named them).
struct Place<'a> {
    what: &'a str,
    per_row: usize,
    columns: Option<&'a [String]>,
}

impl<'a> Place<'a> {
    fn new(what: &'a str, shape: &[usize], columns: Option<&'a [String]>) -> Self {
        let per_row = shape.iter().skip(1).product::<usize>().max(1);
        Place {
            what,
            per_row,
            columns,
        }
    }

    fn at(&self, i: usize) -> String {
        let (row, col) = (i / self.per_row, i % self.per_row);
        match self.columns {
            Some(cs) if cs.len() == self.per_row => {
                format!("{}, row {row}, column `{}`", self.what, cs[col])
            }
            Some([one]) => format!("{}, row {row}, column `{one}`", self.what),
            _ if self.per_row == 1 => format!("{}, row {row}", self.what),
            _ => format!("{}, row {row}, column {col}", self.what),
        }
    }
}

/// Refuses a NaN among float inputs (a missing value the model would turn
/// into an answer of no meaning).
fn check_finite(data: &TensorData, at: &Place<'_>) -> Result<(), BadInput> {
    let nan = match data {
        TensorData::F32(v) => v.iter().position(|x| x.is_nan()),
        TensorData::F64(v) => v.iter().position(|x| x.is_nan()),
        _ => None,
    };
    match nan {
        Some(i) => bad(format!(
            "{}: the value is NaN; fill or drop missing values before predicting",
            at.at(i)
        )),
        None => Ok(()),
    }
}

fn check_shape(spec: &IoSpec, shape: &[usize], what: &str) -> Result<(), BadInput> {
    let want = |s: &[Option<usize>]| {
        format!(
            "[{}]",
            s.iter()
                .map(|d| d.map_or("-1".to_owned(), |d| d.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if !spec.shape.is_empty() && spec.shape.len() != shape.len() {
        return bad(format!(
            "{what} has shape {shape:?}; the model's `{}` takes {}",
            spec.name,
            want(&spec.shape)
        ));
    }
    for (i, (got, w)) in shape.iter().zip(&spec.shape).enumerate() {
        if let Some(w) = w
            && got != w
        {
            return bad(format!(
                "{what} has {got} values in dimension {i}; the model's `{}` takes {} ({})",
                spec.name,
                w,
                want(&spec.shape)
            ));
        }
    }
    if shape.first() == Some(&0) {
        return bad(format!("{what} is empty"));
    }
    Ok(())
}

/// One value per row given for an input that takes `[N, 1]` (a text
/// model's `[None, 1]` fed `["great", "awful"]`): the same values, as a column.
fn fit_rank(spec: &IoSpec, mut shape: Vec<usize>) -> Vec<usize> {
    if !shape.is_empty()
        && spec.shape.len() == shape.len() + 1
        && spec.shape.last() == Some(&Some(1))
    {
        shape.push(1);
    }
    shape
}

/// What a JSON value is, for a message about one the model cannot take.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A request's JSON value, shortened for a message (a long text is not
/// echoed whole).
fn shown(v: &Value) -> String {
    const MAX: usize = 60;
    let s = v.to_string();
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

fn convert(spec: &IoSpec, flat: Vec<Value>, at: &Place<'_>) -> Result<TensorData, BadInput> {
    let dtype = spec.dtype;
    let missing = |i: usize| {
        BadInput(format!(
            "{}: the value is missing (null); fill or drop missing values before predicting",
            at.at(i)
        ))
    };
    let num = |i: usize, v: &Value| -> Result<f64, BadInput> {
        match v {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| BadInput(format!("{}: {n} is not a number", at.at(i)))),
            Value::Bool(b) => Ok(f64::from(u8::from(*b))),
            Value::String(s) if s.eq_ignore_ascii_case("nan") => Ok(f64::NAN),
            Value::Null => Err(missing(i)),
            other => bad(format!(
                "{}: {} is not a number (it is {}); the model's `{}` takes numbers ({})",
                at.at(i),
                shown(other),
                kind_of(other),
                spec.name,
                dtype.v2_name()
            )),
        }
    };
    let int = |i: usize, v: &Value| -> Result<i64, BadInput> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .ok_or_else(|| BadInput(format!("{}: {n} is not an integer", at.at(i)))),
            Value::Bool(b) => Ok(i64::from(*b)),
            Value::Null => Err(missing(i)),
            other => bad(format!(
                "{}: {} is not an integer (it is {}); the model's `{}` takes {}",
                at.at(i),
                shown(other),
                kind_of(other),
                spec.name,
                dtype.v2_name()
            )),
        }
    };
    Ok(match dtype {
        DType::F32 => TensorData::F32(
            flat.iter()
                .enumerate()
                .map(|(i, v)| num(i, v).map(|x| x as f32))
                .collect::<Result<_, _>>()?,
        ),
        DType::F64 => TensorData::F64(
            flat.iter()
                .enumerate()
                .map(|(i, v)| num(i, v))
                .collect::<Result<_, _>>()?,
        ),
        DType::I64 => TensorData::I64(
            flat.iter()
                .enumerate()
                .map(|(i, v)| int(i, v))
                .collect::<Result<_, _>>()?,
        ),
        DType::I32 => TensorData::I32(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    int(i, v).and_then(|x| {
                        i32::try_from(x)
                            .map_err(|_| BadInput(format!("{}: {x} does not fit INT32", at.at(i))))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        DType::Bool => TensorData::Bool(
            flat.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Bool(b) => Ok(*b),
                    Value::Number(n) => Ok(n.as_f64() != Some(0.0)),
                    Value::Null => Err(missing(i)),
                    other => bad(format!(
                        "{}: {} is not a boolean (it is {}); the model's `{}` takes BOOL",
                        at.at(i),
                        shown(other),
                        kind_of(other),
                        spec.name
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        // Text is taken as text only: a number where a text model wants
        // text is a client's mistake (a column sent to the wrong model, or
        // shifted), not something to stringify behind its back.
        DType::Str => TensorData::Str(
            flat.into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s),
                    Value::Null => Err(missing(i)),
                    other => bad(format!(
                        "{}: {} is not text (it is {}); the model's `{}` takes text (BYTES): send it as a JSON string",
                        at.at(i),
                        shown(&other),
                        kind_of(&other),
                        spec.name
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// One value of a tensor as JSON.
/// (`null` past the end: an output whose first dimension is not the batch,
/// such as a constant list of classes, has fewer rows than the others.)
fn cell(t: &TensorData, i: usize) -> Value {
    match t {
        TensorData::F32(v) => v.get(i).map_or(Value::Null, |x| num_json(f64::from(*x))),
        TensorData::F64(v) => v.get(i).map_or(Value::Null, |x| num_json(*x)),
        TensorData::I64(v) => v.get(i).map_or(Value::Null, |x| json!(x)),
        TensorData::I32(v) => v.get(i).map_or(Value::Null, |x| json!(x)),
        TensorData::Bool(v) => v.get(i).map_or(Value::Null, |x| json!(x)),
        TensorData::Str(v) => v.get(i).map_or(Value::Null, |x| json!(x)),
    }
}

fn num_json(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Row `r` of a tensor whose first dimension is the batch: a value, or a
/// list for the rest of the dimensions.
pub fn row(t: &Tensor, r: usize) -> Value {
    let per: usize = t.shape.iter().skip(1).product();
    if t.shape.len() <= 1 {
        return cell(&t.data, r);
    }
    if t.shape.len() == 2 && t.shape[1] == 1 {
        return cell(&t.data, r);
    }
    Value::Array((0..per).map(|j| cell(&t.data, r * per + j)).collect())
}

/// The rows of a batch of tensors: their longest first dimension (0 when
/// none has one).
pub(crate) fn batch(tensors: &[Tensor]) -> usize {
    tensors
        .iter()
        .filter_map(|t| t.shape.first().copied())
        .max()
        .unwrap_or(0)
}

/// What MLflow scoring and KServe V1 answer with. By default what
/// `mlflow models serve` and KServe's scikit-learn server answer: a
/// classifier's labels, a regressor's numbers. A request asks for more in
/// its `params` (MLflow) or `parameters` (V1): `predict_method:
/// predict_proba` (the probability rows, as MLflow's scikit-learn flavour
/// answers it) or `outputs: all` (a record per row with every output, the
/// probabilities keyed by class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerShape {
    #[default]
    Predict,
    Proba,
    All,
}

impl AnswerShape {
    /// The shape a request's `params` (or `parameters`) object asks for.
    pub fn from_params(params: Option<&Value>, field: &str) -> Result<AnswerShape, BadInput> {
        let o = match params {
            None | Some(Value::Null) => return Ok(AnswerShape::Predict),
            Some(Value::Object(o)) => o,
            Some(_) => return bad(format!("`{field}` must be an object")),
        };
        let method = match o.get("predict_method") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) if m == "predict" => Some(AnswerShape::Predict),
            Some(Value::String(m)) if m == "predict_proba" => Some(AnswerShape::Proba),
            Some(other) => {
                return bad(format!(
                    "`{field}.predict_method` {other} is not supported; use `predict` or `predict_proba`"
                ));
            }
        };
        let all = match o.get("outputs") {
            None | Some(Value::Null) => false,
            Some(Value::String(a)) if a == "all" => true,
            Some(other) => {
                return bad(format!(
                    "`{field}.outputs` {other} is not supported; use `all` for every output"
                ));
            }
        };
        match (method, all) {
            (Some(AnswerShape::Proba), true) => bad(format!(
                "`{field}` asks for both `predict_method: predict_proba` and `outputs: all`; choose one"
            )),
            (_, true) => Ok(AnswerShape::All),
            (m, false) => Ok(m.unwrap_or_default()),
        }
    }
}

/// MLflow's `{"predictions": ...}` in the shape asked for (see
/// [`AnswerShape`]); `classes` names a classifier's probability columns.
pub fn mlflow_answer(
    outputs: &[Tensor],
    shape: AnswerShape,
    classes: Option<&[Value]>,
) -> Result<Value, BadInput> {
    let n = batch(outputs);
    let column = |t: &Tensor| Value::Array((0..n).map(|r| row(t, r)).collect());
    let preds = match shape {
        AnswerShape::Predict => match label_output(outputs) {
            Some(l) => column(&outputs[l]),
            None if outputs.len() == 1 => column(&outputs[0]),
            None => return Ok(mlflow_predictions(outputs)),
        },
        AnswerShape::Proba => match probability_output(outputs) {
            Some(p) => column(&outputs[p]),
            None => {
                return bad(
                    "this model gives no probabilities: `predict_method: predict_proba` needs a classifier with a probability output",
                );
            }
        },
        AnswerShape::All => {
            let prob = probability_output(outputs);
            Value::Array(
                (0..n)
                    .map(|r| {
                        let mut m = Map::new();
                        for (i, t) in outputs.iter().enumerate() {
                            let mut v = row(t, r);
                            if Some(i) == prob
                                && let (Some(cs), Value::Array(ps)) = (classes, &v)
                                && cs.len() == ps.len()
                            {
                                v = Value::Object(
                                    cs.iter()
                                        .zip(ps)
                                        .map(|(c, p)| {
                                            let k = c
                                                .as_str()
                                                .map_or_else(|| c.to_string(), str::to_owned);
                                            (k, p.clone())
                                        })
                                        .collect(),
                                );
                            }
                            m.insert(t.name.clone(), v);
                        }
                        Value::Object(m)
                    })
                    .collect(),
            )
        }
    };
    Ok(json!({ "predictions": preds }))
}

/// MLflow's `{"predictions": ...}`: a list for one output; records
/// (`[{"label": ..., "probabilities": [...]}]`) for several.
pub fn mlflow_predictions(outputs: &[Tensor]) -> Value {
    let n = batch(outputs);
    let preds = if outputs.len() == 1 {
        Value::Array((0..n).map(|r| row(&outputs[0], r)).collect())
    } else {
        Value::Array(
            (0..n)
                .map(|r| {
                    let mut m = Map::new();
                    for t in outputs {
                        m.insert(t.name.clone(), row(t, r));
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    };
    json!({ "predictions": preds })
}

/// A parsed Open Inference Protocol request.
#[derive(Debug)]
pub struct V2Request {
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// The outputs asked for (all when empty).
    pub outputs: Vec<String>,
    /// Outputs to return as binary tensor data (Triton's extension).
    pub binary_outputs: Vec<String>,
    /// `parameters.binary_data_output`: every output in binary.
    pub all_binary: bool,
}

/// Raw little-endian tensor bytes (the binary tensor data extension that
/// Triton's clients use by default) to values of `dtype`.
fn decode_binary(dtype: DType, raw: &[u8], what: &str) -> Result<TensorData, BadInput> {
    fn chunks<const N: usize, T>(
        raw: &[u8],
        what: &str,
        f: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, BadInput> {
        if !raw.len().is_multiple_of(N) {
            return bad(format!(
                "{what}: {} bytes is not a whole number of {N}-byte values",
                raw.len()
            ));
        }
        Ok(raw
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect())
    }
    Ok(match dtype {
        DType::F32 => TensorData::F32(chunks(raw, what, f32::from_le_bytes)?),
        DType::F64 => TensorData::F64(chunks(raw, what, f64::from_le_bytes)?),
        DType::I64 => TensorData::I64(chunks(raw, what, i64::from_le_bytes)?),
        DType::I32 => TensorData::I32(chunks(raw, what, i32::from_le_bytes)?),
        DType::Bool => TensorData::Bool(raw.iter().map(|b| *b != 0).collect()),
        DType::Str => {
            let mut out = Vec::new();
            let mut i = 0;
            while i < raw.len() {
                let len = raw
                    .get(i..i + 4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                    .ok_or_else(|| BadInput(format!("{what}: a BYTES element is cut short")))?;
                let s = raw
                    .get(i + 4..i + 4 + len)
                    .ok_or_else(|| BadInput(format!("{what}: a BYTES element is cut short")))?;
                // The model takes text: bytes that are not UTF-8 are refused,
                // never replaced (the answer would be for other text).
                let s = std::str::from_utf8(s).map_err(|e| {
                    BadInput(format!(
                        "{what}, element {}: its bytes are not UTF-8 (from byte {}); the model takes BYTES as UTF-8 text",
                        out.len(),
                        e.valid_up_to()
                    ))
                })?;
                out.push(s.to_owned());
                i += 4 + len;
            }
            TensorData::Str(out)
        }
    })
}

/// A tensor's values as raw little-endian bytes (BYTES: 4-byte length, then the bytes).
pub fn encode_binary(t: &TensorData) -> Vec<u8> {
    let mut out = Vec::new();
    match t {
        TensorData::F32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::F64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::I64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::I32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::Bool(v) => v.iter().for_each(|x| out.push(u8::from(*x))),
        TensorData::Str(v) => v.iter().for_each(|s| {
            out.extend((s.len() as u32).to_le_bytes());
            out.extend(s.as_bytes());
        }),
    }
    out
}

/// An inference request's input as it came: its place in `inputs`, name,
/// shape, datatype, and the data (JSON values, or binary data already
/// decoded).
struct V2Input {
    index: usize,
    name: String,
    shape: Vec<usize>,
    datatype: String,
    data: Result<Value, TensorData>,
}

/// Parses an inference request. With `header_len` (the
/// `Inference-Header-Content-Length` header) the JSON is that many bytes,
/// followed by the inputs' binary data.
pub fn v2_request(
    body: &[u8],
    header_len: Option<usize>,
    inputs: &[IoSpec],
) -> Result<V2Request, BadInput> {
    let (head, mut binary) = match header_len {
        None => (body, &body[body.len()..]),
        Some(l) if l <= body.len() => body.split_at(l),
        Some(l) => {
            return bad(format!(
                "Inference-Header-Content-Length is {l}, but the body has {} bytes",
                body.len()
            ));
        }
    };
    let v: Value = serde_json::from_slice(head)
        .map_err(|e| BadInput(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut o) = v else {
        return bad("the body must be a JSON object with `inputs`");
    };
    let id = match o.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return bad("`id` must be a string"),
    };
    let Some(Value::Array(ins)) = o.remove("inputs") else {
        return bad("`inputs` must be a list of tensors");
    };
    let all_binary = o
        .get("parameters")
        .and_then(|p| p.get("binary_data_output"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut by_name: Vec<V2Input> = Vec::new();
    for (i, t) in ins.into_iter().enumerate() {
        by_name.push(v2_input(i, t, &mut binary)?);
    }
    let mut tensors = Vec::new();
    for spec in inputs {
        let pos = by_name
            .iter()
            .position(|t| t.name == spec.name)
            .or_else(|| (inputs.len() == 1 && by_name.len() == 1).then_some(0))
            .ok_or_else(|| {
                BadInput(format!(
                    "no input `{}` (the model's inputs are {})",
                    spec.name,
                    names(inputs)
                ))
            })?;
        tensors.push(v2_tensor_for(spec, by_name.swap_remove(pos))?);
    }
    if let Some(extra) = by_name.first() {
        return bad(format!(
            "unknown input `{}` (`inputs[{}].name`; the model's inputs are {})",
            extra.name,
            extra.index,
            names(inputs)
        ));
    }
    let (outputs, binary_outputs) = v2_outputs_asked(o.remove("outputs"))?;
    if !binary.is_empty() {
        return bad(format!(
            "{} bytes of binary data follow the header that no input claims",
            binary.len()
        ));
    }
    Ok(V2Request {
        id,
        inputs: tensors,
        outputs,
        binary_outputs,
        all_binary,
    })
}

/// `inputs[i]` of an inference request; binary data is taken from the
/// front of `binary`.
fn v2_input(i: usize, t: Value, binary: &mut &[u8]) -> Result<V2Input, BadInput> {
    let Value::Object(mut t) = t else {
        return bad(format!("`inputs[{i}]` must be an object"));
    };
    let name = match t.remove("name") {
        Some(Value::String(s)) => s,
        _ => return bad(format!("`inputs[{i}].name` must be a string")),
    };
    let shape = match t.remove("shape") {
        Some(Value::Array(s)) => s
            .iter()
            .map(|d| {
                d.as_u64().map(|d| d as usize).ok_or_else(|| {
                    BadInput(format!(
                        "`inputs[{i}].shape` must hold non-negative integers"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return bad(format!("`inputs[{i}].shape` must be a list")),
    };
    let datatype = match t.remove("datatype") {
        Some(Value::String(s)) => s,
        _ => return bad(format!("`inputs[{i}].datatype` must be a string")),
    };
    let size = t
        .get("parameters")
        .and_then(|p| p.get("binary_data_size"))
        .map(|n| {
            n.as_u64().map(|n| n as usize).ok_or_else(|| {
                BadInput(format!(
                    "`inputs[{i}].parameters.binary_data_size` must be a count"
                ))
            })
        })
        .transpose()?;
    let data = match size {
        Some(n) => {
            if n > binary.len() {
                return bad(format!(
                    "`inputs[{i}]` has {n} bytes of binary data, only {} follow the header",
                    binary.len()
                ));
            }
            let (raw, rest) = binary.split_at(n);
            *binary = rest;
            let dt = DType::from_v2_name(&datatype).ok_or_else(|| {
                BadInput(format!(
                    "`inputs[{i}].datatype` {datatype} is not supported"
                ))
            })?;
            Err(decode_binary(
                dt,
                raw,
                &format!("input `{name}` (`inputs[{i}]`, binary data)"),
            )?)
        }
        None => Ok(t
            .remove("data")
            .ok_or_else(|| BadInput(format!("`inputs[{i}].data` is missing")))?),
    };
    Ok(V2Input {
        index: i,
        name,
        shape,
        datatype,
        data,
    })
}

/// The tensor for the model's input `spec` from the request's input.
fn v2_tensor_for(spec: &IoSpec, input: V2Input) -> Result<Tensor, BadInput> {
    let V2Input {
        index,
        name,
        shape,
        datatype,
        data,
    } = input;
    match DType::from_v2_name(&datatype) {
        Some(d) if d == spec.dtype => {}
        Some(_) | None => {
            return bad(format!(
                "input `{name}` has datatype {datatype} (`inputs[{index}].datatype`); the model's `{}` takes {}",
                spec.name,
                spec.dtype.v2_name()
            ));
        }
    }
    let count = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
    let data = match data {
        Ok(v) => v,
        Err(raw) => {
            let what = format!("input `{name}` (`inputs[{index}]`, binary data)");
            let count = count
                .ok_or_else(|| BadInput(format!("{what} has an impossible shape {shape:?}")))?;
            if raw.len() != count {
                return bad(format!(
                    "{what} has {} values for shape {shape:?} ({count} expected)",
                    raw.len()
                ));
            }
            let shape = fit_rank(spec, shape);
            check_shape(spec, &shape, &what)?;
            check_finite(&raw, &Place::new(&what, &shape, None))?;
            return Ok(Tensor {
                name: spec.name.clone(),
                shape,
                data: raw,
            });
        }
    };
    let what = format!("input `{name}` (`inputs[{index}].data`)");
    let count =
        count.ok_or_else(|| BadInput(format!("{what} has an impossible shape {shape:?}")))?;
    let mut flat = Vec::new();
    let mut nested = Vec::new();
    match data {
        Value::Array(_) => flatten(data, &mut flat, &mut nested, 0, &what)?,
        scalar => flat.push(scalar),
    }
    if flat.len() != count {
        return bad(format!(
            "{what} has {} values for shape {shape:?} ({count} expected)",
            flat.len()
        ));
    }
    tensor_from(spec, shape, flat, &what, None)
}

/// The outputs an inference request asks for (all when none), and those of
/// them it wants as binary data.
fn v2_outputs_asked(outputs: Option<Value>) -> Result<(Vec<String>, Vec<String>), BadInput> {
    let mut binary_outputs = Vec::new();
    let outputs = match outputs {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(outs)) => outs
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let name = x
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| BadInput(format!("`outputs[{i}].name` must be a string")))?;
                if x.get("parameters")
                    .and_then(|p| p.get("binary_data"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                {
                    binary_outputs.push(name.clone());
                }
                Ok(name)
            })
            .collect::<Result<_, BadInput>>()?,
        Some(_) => return bad("`outputs` must be a list"),
    };
    Ok((outputs, binary_outputs))
}

/// An output tensor with its data in binary: the JSON entry, and the bytes
/// that follow the JSON header.
pub fn v2_tensor_binary(t: &Tensor) -> (Value, Vec<u8>) {
    let raw = encode_binary(&t.data);
    (
        json!({
            "name": t.name,
            "shape": t.shape,
            "datatype": t.data.dtype().v2_name(),
            "parameters": {"binary_data_size": raw.len()},
        }),
        raw,
    )
}

pub fn v2_tensor(t: &Tensor) -> Value {
    json!({
        "name": t.name,
        "shape": t.shape,
        "datatype": t.data.dtype().v2_name(),
        "data": (0..t.data.len()).map(|i| cell(&t.data, i)).collect::<Vec<_>>(),
    })
}

/// Signature entries as the V2 metadata shows them (`-1` for the batch).
pub fn v2_io(specs: &[IoSpec]) -> Value {
    Value::Array(
        specs
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "datatype": s.dtype.v2_name(),
                    "shape": s.shape.iter().map(|d| d.map_or(-1, |d| d as i64)).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// [`v2_io`] of a model's inputs; with a signature, the single input that
/// takes the table's columns names them (`parameters.columns`, in order).
pub fn v2_inputs(specs: &[IoSpec], sig: Option<&Signature>) -> Value {
    let mut v = v2_io(specs);
    if let (Some(sig), Value::Array(items), [_]) = (sig, &mut v, specs)
        && let Some(Value::Object(first)) = items.first_mut()
    {
        first.insert("parameters".into(), json!({ "columns": sig.names() }));
    }
    v
}

/// [`v2_io`] of a model's outputs; a classifier's probability output names
/// its classes in column order (`parameters.classes`).
pub fn v2_outputs(specs: &[IoSpec], classes: Option<&[Value]>) -> Value {
    let mut v = v2_io(specs);
    if let (Some(cs), Some(i), Value::Array(items)) = (classes, probability_output(specs), &mut v)
        && let Some(Value::Object(o)) = items.get_mut(i)
    {
        o.insert("parameters".into(), json!({ "classes": cs }));
    }
    v
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn spec4() -> Vec<IoSpec> {
        vec![IoSpec {
            name: "X".into(),
            dtype: DType::F32,
            shape: vec![None, Some(4)],
        }]
    }

    fn f32s(t: &Tensor) -> Vec<f32> {
        match &t.data {
            TensorData::F32(v) => v.clone(),
            d => panic!("{:?}", d.dtype()),
        }
    }

    #[test]
    fn every_mlflow_shape_gives_the_same_tensor() {
        let bodies = [
            r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[5.1,3.5,1.4,0.2]]}}"#,
            r#"{"dataframe_records": [{"a":5.1,"b":3.5,"c":1.4,"d":0.2}]}"#,
            r#"{"instances": [[5.1,3.5,1.4,0.2]]}"#,
            r#"{"instances": [{"a":5.1,"b":3.5,"c":1.4,"d":0.2}]}"#,
            r#"{"inputs": [[5.1,3.5,1.4,0.2]]}"#,
            r#"{"inputs": {"X": [[5.1,3.5,1.4,0.2]]}}"#,
            r#"{"inputs": [[5.1,3.5,1.4,0.2]], "params": {"x": 1}}"#,
        ];
        let sig = abcd();
        for b in bodies {
            let t = mlflow_json(b.as_bytes(), &spec4(), Some(&sig))
                .unwrap_or_else(|e| panic!("{b}: {e}"));
            assert_eq!(t[0].shape, vec![1, 4], "{b}");
            assert_eq!(f32s(&t[0]), vec![5.1, 3.5, 1.4, 0.2], "{b}");
        }
        let (t, cols) =
            mlflow_csv(b"a,b,c,d\n5.1,3.5,1.4,0.2\n6,3,4,1\n", &spec4(), Some(&sig)).unwrap();
        assert_eq!(t[0].shape, vec![2, 4]);
        assert_eq!(
            cols,
            Some(vec!["a".into(), "b".into(), "c".into(), "d".into()])
        );
    }

    /// The typed reading of a numeric `dataframe_split` makes exactly what
    /// the general one makes, and leaves every other body to it.
    #[test]
    fn the_numeric_split_reading_agrees_with_the_general_one() {
        let sig = abcd();
        let taken = [
            r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[5.1,3.5,1.4,0.2]]}}"#,
            r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[5,3,1,0],[6.5,-3e2,1.25,1e-3]]}}"#,
            r#"{"dataframe_split": {"index": [0], "columns": ["a","b","c","d"], "data": [[1,2,3,4]]}}"#,
            r#" { "dataframe_split" : { "data" : [ [ 1 , 2 , 3 , 4 ] ] , "columns" : [ "a" , "b" , "c" , "d" ] } } "#,
        ];
        let left = [
            // Reordered columns, params, a value that is not a number, a
            // ragged row, no rows, other shapes, broken JSON.
            r#"{"dataframe_split": {"columns": ["d","c","b","a"], "data": [[0.2,1.4,3.5,5.1]]}}"#,
            r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[1,2,3,4]]}, "params": {"predict_method": "predict_proba"}}"#,
            r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[1,2,null,4]]}}"#,
            r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[1,2,true,4]]}}"#,
            r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[1,2,3,4],[1,2,3]]}}"#,
            r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[1,2,3]]}}"#,
            r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": []}}"#,
            r#"{"dataframe_split": {"columns": ["a","b","c","d","e"], "data": [[1,2,3,4,5]]}}"#,
            r#"{"dataframe_split": {"data": [[1,2,3,4]]}}"#,
            r#"{"instances": [[5.1,3.5,1.4,0.2]]}"#,
            r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[1,2,3,4]]"#,
        ];
        for b in taken {
            let fast = mlflow_numeric_split(b.as_bytes(), &spec4(), Some(&sig))
                .unwrap_or_else(|| panic!("not taken: {b}"));
            let general = mlflow_json_named(b.as_bytes(), &spec4(), Some(&sig)).unwrap();
            assert_eq!(fast, general, "{b}");
        }
        for b in left {
            assert_eq!(
                mlflow_numeric_split(b.as_bytes(), &spec4(), Some(&sig)),
                None,
                "{b}"
            );
        }
        // A signature naming a column twice (a foreign MLmodel's).
        let mut twice = abcd();
        twice.inputs[1].name = "a".into();
        let body = br#"{"dataframe_split": {"columns": ["a","a","c","d"], "data": [[1,2,3,4]]}}"#;
        assert_eq!(mlflow_numeric_split(body, &spec4(), Some(&twice)), None);
        assert!(mlflow_json_named(body, &spec4(), Some(&twice)).is_err());
        // Only for a model of one float input taking rows, with a signature.
        let body = taken[0].as_bytes();
        assert_eq!(mlflow_numeric_split(body, &spec4(), None), None);
        let mut ints = spec4();
        ints[0].dtype = DType::I64;
        assert_eq!(mlflow_numeric_split(body, &ints, Some(&sig)), None);
        let mut f64s = spec4();
        f64s[0].dtype = DType::F64;
        assert_eq!(
            mlflow_numeric_split(body, &f64s, Some(&sig)),
            Some(mlflow_json_named(body, &f64s, Some(&sig)).unwrap())
        );
    }

    /// The signature `a, b, c, d` (doubles).
    fn abcd() -> Signature {
        Signature {
            inputs: ["a", "b", "c", "d"]
                .map(|n| ferry_mlmodel::Column {
                    name: n.into(),
                    ty: ferry_mlmodel::ColType::Double,
                    required: true,
                })
                .to_vec(),
        }
    }

    /// The same flower with its columns in any order, in every named shape,
    /// is the same tensor; columns that do not match the signature, or named
    /// columns without one, are refused, never fed by position.
    #[test]
    fn columns_are_matched_by_name_never_by_position() {
        let sig = abcd();
        let want = vec![5.1f32, 3.5, 1.4, 0.2];
        for b in [
            r#"{"dataframe_split": {"columns": ["d","c","b","a"], "data": [[0.2,1.4,3.5,5.1]]}}"#,
            r#"{"dataframe_records": [{"c":1.4,"a":5.1,"d":0.2,"b":3.5}]}"#,
            r#"{"instances": [{"b":3.5,"d":0.2,"a":5.1,"c":1.4}]}"#,
        ] {
            let t = mlflow_json(b.as_bytes(), &spec4(), Some(&sig))
                .unwrap_or_else(|e| panic!("{b}: {e}"));
            assert_eq!(f32s(&t[0]), want, "{b}");
        }
        let (t, _) = mlflow_csv(b"d,a,c,b\n0.2,5.1,1.4,3.5\n", &spec4(), Some(&sig)).unwrap();
        assert_eq!(f32s(&t[0]), want);
        let err = |b: &str, sig: Option<&Signature>| {
            mlflow_json(b.as_bytes(), &spec4(), sig)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        insta::assert_snapshot!(
            [
                err(r#"{"dataframe_split": {"columns": ["w","x","y","z"], "data": [[1,2,3,4]]}}"#, Some(&sig)),
                err(r#"{"dataframe_records": [{"a":1,"b":2,"c":3,"e":4}]}"#, Some(&sig)),
                err(r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[1,2,3,4]]}}"#, None),
            ]
            .join("\n"),
            @r"
        `dataframe_split.columns`: the columns do not match the model's signature (`a`, `b`, `c`, `d`): missing `a`, `b`, `c`, `d`; unexpected `w`, `x`, `y`, `z`
        the keys of `dataframe_records`: the columns do not match the model's signature (`a`, `b`, `c`, `d`): missing `d`; unexpected `e`
        this model version has no signature, so the columns `a`, `b`, `c`, `d` cannot be matched to its input by name; send `instances` as lists of values in the model's order, or register the version with a signature (`register.signature` in ferry.yaml)
        "
        );
        // Unnamed rows stay positional, with or without a signature.
        assert!(mlflow_json(br#"{"instances": [[1,2,3,4]]}"#, &spec4(), None).is_ok());
        assert!(mlflow_json(br#"{"instances": [[1,2,3,4]]}"#, &spec4(), Some(&sig)).is_ok());
    }

    #[test]
    fn missing_values_and_duplicate_columns_are_refused_by_place() {
        let sig = abcd();
        let err = |body: &str| {
            mlflow_json(body.as_bytes(), &spec4(), Some(&sig))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        insta::assert_snapshot!(
            [
                err(r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[1,2,3,4],[5,null,7,8]]}}"#),
                err(r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[1,2,3,"NaN"]]}}"#),
                err(r#"{"dataframe_records": [{"a":1,"b":2,"c":3,"d":4},{"a":1,"b":2,"c":null,"d":4}]}"#),
                err(r#"{"instances": [[1,2,3,4],[5,6,7,null]]}"#),
                err(r#"{"dataframe_split": {"columns": ["a","a","c","d"], "data": [[1,2,3,4]]}}"#),
                mlflow_csv(b"a,b,b,d\n1,2,3,4\n", &spec4(), Some(&sig)).err().map(|e| e.to_string()).unwrap_or_default(),
                mlflow_csv(b"a,b,c,d\n1,2,3,4\n1,nan,3,4\n", &spec4(), Some(&sig)).err().map(|e| e.to_string()).unwrap_or_default(),
            ]
            .join("\n"),
            @r"
        `dataframe_split.data`, row 1, column `b`: the value is missing (null); fill or drop missing values before predicting
        `dataframe_split.data`, row 0, column `d`: the value is NaN; fill or drop missing values before predicting
        `dataframe_records`, row 1, column `c`: the value is missing (null); fill or drop missing values before predicting
        `instances`, row 1, column 3: the value is missing (null); fill or drop missing values before predicting
        `dataframe_split.columns` names the column `a` twice
        the CSV header names the column `b` twice
        the CSV body, row 1, column `b`: the value is missing (null); fill or drop missing values before predicting
        "
        );
        // Binary V2 data: NaN bytes are refused too.
        let mut raw = Vec::new();
        for x in [1.0f32, f32::NAN, 3.0, 4.0] {
            raw.extend_from_slice(&x.to_le_bytes());
        }
        let header = br#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}"#;
        let mut body = header.to_vec();
        body.extend_from_slice(&raw);
        let e = v2_request(&body, Some(header.len()), &spec4())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("row 0, column 1: the value is NaN"), "{e}");
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let cases = [
            ("[1,2]", "must be a JSON object"),
            ("{}", "has none of"),
            (
                r#"{"instances": [[1,2,3,4]], "inputs": [[1,2,3,4]]}"#,
                "exactly one of",
            ),
            (r#"{"instance": [[1,2,3,4]]}"#, "unknown key `instance`"),
            (r#"{"instances": [[1,2,3]]}"#, "3 values in dimension 1"),
            (r#"{"instances": [[1,2,3,4],[1,2]]}"#, "row 1 has 2 values"),
            (r#"{"instances": [["a",2,3,4]]}"#, "\"a\" is not a number"),
            (r#"{"instances": []}"#, "no rows"),
            (
                r#"{"dataframe_split": {"columns": ["a"], "data": [[1,2]]}}"#,
                "data[0]` has 2 values for 1 columns",
            ),
            (r#"{"dataframe_records": [{"a":1},{"b":2}]}"#, "has no `a`"),
            ("not json", "not valid JSON"),
        ];
        for (b, want) in cases {
            let e = mlflow_json(b.as_bytes(), &spec4(), Some(&abcd())).unwrap_err();
            assert!(e.0.contains(want), "{b}: {e}");
        }
    }

    #[test]
    fn v2_requests_are_checked_against_the_signature() {
        let ok = r#"{"id":"r1","inputs":[{"name":"X","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}],"outputs":[{"name":"label"}]}"#;
        let r = v2_request(ok.as_bytes(), None, &spec4()).unwrap();
        assert_eq!(r.id.as_deref(), Some("r1"));
        assert_eq!(r.inputs[0].shape, vec![2, 4]);
        assert_eq!(r.outputs, vec!["label"]);
        let nested =
            r#"{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[[1,2,3,4]]}]}"#;
        assert!(v2_request(nested.as_bytes(), None, &spec4()).is_ok());
        let cases = [
            (
                r#"{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}"#,
                "datatype FP64",
            ),
            (
                r#"{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]}"#,
                "3 values for shape [1, 4]",
            ),
            (
                r#"{"inputs":[{"name":"X","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#,
                "dimension 1",
            ),
            (
                r#"{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},{"name":"Y","shape":[1],"datatype":"BOOL","data":[true]}]}"#,
                "unknown input `Y`",
            ),
            (
                r#"{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32"}]}"#,
                "data` is missing",
            ),
            (r#"{"inputs":{}}"#, "must be a list"),
            (
                r#"{"inputs":[{"name":"X","shape":[1,4],"datatype":"NOPE","data":[1,2,3,4]}]}"#,
                "datatype NOPE",
            ),
        ];
        for (b, want) in cases {
            let e = v2_request(b.as_bytes(), None, &spec4()).unwrap_err();
            assert!(e.0.contains(want), "{b}: {e}");
        }
    }

    #[test]
    fn absurd_shapes_are_errors_not_overflows() {
        let b = r#"{"inputs":[{"name":"X","shape":[18446744073709551615, 4],"datatype":"FP32","data":[1,2,3,4]}]}"#;
        let e = v2_request(b.as_bytes(), None, &spec4()).unwrap_err();
        assert!(e.0.contains("impossible shape"), "{e}");
    }

    #[test]
    fn binary_tensor_data_round_trips() {
        let head = r#"{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"outputs":[{"name":"label","parameters":{"binary_data":true}}]}"#;
        let mut body = head.as_bytes().to_vec();
        for x in [5.1f32, 3.5, 1.4, 0.2] {
            body.extend(x.to_le_bytes());
        }
        let r = v2_request(&body, Some(head.len()), &spec4()).unwrap();
        assert_eq!(f32s(&r.inputs[0]), vec![5.1, 3.5, 1.4, 0.2]);
        assert_eq!(r.binary_outputs, vec!["label"]);
        // Too few bytes, a wrong header length, bytes nobody claims.
        assert!(v2_request(&body[..body.len() - 4], Some(head.len()), &spec4()).is_err());
        assert!(v2_request(&body, Some(body.len() + 1), &spec4()).is_err());
        let mut extra = body.clone();
        extra.push(0);
        assert!(
            v2_request(&extra, Some(head.len()), &spec4())
                .unwrap_err()
                .0
                .contains("no input claims")
        );
        let t = TensorData::Str(vec!["ab".into(), "c".into()]);
        assert_eq!(
            decode_binary(DType::Str, &encode_binary(&t), "x").unwrap(),
            t
        );
    }

    /// A text model's input: one string per row, `[None, 1]` (skl2onnx's
    /// `StringTensorType([None, 1])`), and its signature `text: string`.
    fn text_spec(name: &str) -> Vec<IoSpec> {
        vec![IoSpec {
            name: name.into(),
            dtype: DType::Str,
            shape: vec![None, Some(1)],
        }]
    }

    /// A signature of required columns (also the process runtime's tests').
    pub(crate) fn sig_of(cols: &[(&str, ferry_mlmodel::ColType)]) -> Signature {
        Signature {
            inputs: cols
                .iter()
                .map(|(n, t)| ferry_mlmodel::Column {
                    name: (*n).into(),
                    ty: *t,
                    required: true,
                })
                .collect(),
        }
    }

    fn strs(t: &Tensor) -> Vec<String> {
        match &t.data {
            TensorData::Str(v) => v.clone(),
            d => panic!("{:?}", d.dtype()),
        }
    }

    /// Every MLflow and V1 shape, and CSV, give a text model the same
    /// `[2, 1]` string tensor, texts untouched (commas, quotes, spaces,
    /// digits, emoji); with the model's input named otherwise than the
    /// signature's column too.
    #[test]
    fn text_in_every_mlflow_shape_is_one_string_column() {
        use ferry_mlmodel::ColType::String as Text;
        let sig = sig_of(&[("text", Text)]);
        let want = vec!["great, \"really\" 5/5 😀".to_owned(), " 42 ".to_owned()];
        let bodies = [
            r#"{"dataframe_split": {"columns": ["text"], "data": [["great, \"really\" 5/5 😀"], [" 42 "]]}}"#,
            r#"{"dataframe_split": {"columns": ["text"], "data": ["great, \"really\" 5/5 😀", " 42 "], "index": [0, 1]}}"#,
            r#"{"dataframe_split": {"data": [["great, \"really\" 5/5 😀"], [" 42 "]]}}"#,
            r#"{"dataframe_records": [{"text": "great, \"really\" 5/5 😀"}, {"text": " 42 "}]}"#,
            r#"{"instances": ["great, \"really\" 5/5 😀", " 42 "]}"#,
            r#"{"instances": [["great, \"really\" 5/5 😀"], [" 42 "]]}"#,
            r#"{"instances": [{"text": "great, \"really\" 5/5 😀"}, {"text": " 42 "}]}"#,
            r#"{"inputs": ["great, \"really\" 5/5 😀", " 42 "]}"#,
            r#"{"inputs": {"text": ["great, \"really\" 5/5 😀", " 42 "]}}"#,
            r#"{"inputs": {"text": [["great, \"really\" 5/5 😀"], [" 42 "]]}}"#,
            r#"{"inputs": [{"text": "great, \"really\" 5/5 😀"}, {"text": " 42 "}], "params": {}}"#,
        ];
        for name in ["text", "input"] {
            for b in bodies {
                let (t, cols) = mlflow_json_named(b.as_bytes(), &text_spec(name), Some(&sig))
                    .unwrap_or_else(|e| panic!("{name}: {b}: {e}"));
                assert_eq!(t[0].shape, vec![2, 1], "{b}");
                assert_eq!(t[0].name, name, "{b}");
                assert_eq!(strs(&t[0]), want, "{b}");
                if b.contains("\"text\"") && !b.starts_with(r#"{"inputs": {"#) {
                    assert_eq!(cols, Some(vec!["text".to_owned()]), "{b}");
                }
            }
            let csv = "text\r\n\"great, \"\"really\"\" 5/5 😀\"\r\n 42 \r\n";
            let (t, cols) = mlflow_csv(csv.as_bytes(), &text_spec(name), Some(&sig))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (t[0].shape.clone(), strs(&t[0])),
                (vec![2, 1], want.clone())
            );
            assert_eq!(cols, Some(vec!["text".to_owned()]));
        }
        // Without a signature, the column must be the input's own name.
        assert!(
            mlflow_json(
                br#"{"dataframe_records": [{"text": "a"}]}"#,
                &text_spec("text"),
                None
            )
            .is_ok()
        );
        assert!(mlflow_json(br#"{"instances": ["a"]}"#, &text_spec("input"), None).is_ok());
    }

    /// A model taking text beside numbers, one input per column: each
    /// column goes to its own input, by name, as its own type (CSV's `5`
    /// stays the text "5" in the text column).
    #[test]
    fn text_and_numbers_side_by_side_go_to_their_own_inputs() {
        use ferry_mlmodel::ColType::{Double, String as Text};
        let specs = vec![
            IoSpec {
                name: "text".into(),
                dtype: DType::Str,
                shape: vec![None, Some(1)],
            },
            IoSpec {
                name: "stars".into(),
                dtype: DType::F32,
                shape: vec![None, Some(1)],
            },
        ];
        let sig = sig_of(&[("text", Text), ("stars", Double)]);
        for b in [
            r#"{"dataframe_split": {"columns": ["stars", "text"], "data": [[5, "5"], [1.5, "meh, ok"]]}}"#,
            r#"{"dataframe_records": [{"stars": 5, "text": "5"}, {"text": "meh, ok", "stars": 1.5}]}"#,
            r#"{"instances": [{"stars": 5, "text": "5"}, {"text": "meh, ok", "stars": 1.5}]}"#,
            r#"{"inputs": {"text": ["5", "meh, ok"], "stars": [5, 1.5]}}"#,
        ] {
            let t = mlflow_json(b.as_bytes(), &specs, Some(&sig))
                .unwrap_or_else(|e| panic!("{b}: {e}"));
            assert_eq!(strs(&t[0]), ["5", "meh, ok"], "{b}");
            assert_eq!(f32s(&t[1]), [5.0, 1.5], "{b}");
            assert_eq!(
                (t[0].shape.clone(), t[1].shape.clone()),
                (vec![2, 1], vec![2, 1])
            );
        }
        // Unnamed rows are in the signature's order.
        let t = mlflow_json(
            br#"{"instances": [["5", 5], ["meh, ok", 1.5]]}"#,
            &specs,
            Some(&sig),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (strs(&t[0]), f32s(&t[1])),
            (vec!["5".to_owned(), "meh, ok".to_owned()], vec![5.0, 1.5])
        );
        let (t, _) = mlflow_csv(b"stars,text\n5,5\n1.5,\"meh, ok\"\n", &specs, Some(&sig)).unwrap();
        assert_eq!(strs(&t[0]), ["5", "meh, ok"]);
        assert_eq!(f32s(&t[1]), [5.0, 1.5]);
        let e = mlflow_json(
            br#"{"dataframe_records": [{"stars": "five", "text": "x"}]}"#,
            &specs,
            Some(&sig),
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            r#"`dataframe_records`, row 0, column `stars`: "five" is not a number (it is text); the model's `stars` takes numbers (FP32)"#
        );
        let e = mlflow_csv(b"text,stars\nok,\n", &specs, Some(&sig)).unwrap_err();
        assert!(
            e.0.contains("row 0, column `stars`: the value is missing"),
            "{e}"
        );
    }

    /// A number where the model takes text, text where it takes numbers,
    /// a missing column, bytes that are not UTF-8: each a message naming
    /// the field of the request, the row, the column and what was wanted.
    #[test]
    fn wrong_types_and_missing_columns_name_the_field() {
        use ferry_mlmodel::ColType::String as Text;
        let sig = sig_of(&[("text", Text)]);
        let text = |b: &str| {
            mlflow_json(b.as_bytes(), &text_spec("text"), Some(&sig))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let iris = |b: &str| {
            mlflow_json(b.as_bytes(), &spec4(), Some(&abcd()))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let v2 = |b: &str, specs: &[IoSpec]| {
            v2_request(b.as_bytes(), None, specs)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let long = "x".repeat(500);
        insta::assert_snapshot!(
            [
                text(r#"{"dataframe_split": {"columns": ["text"], "data": [["fine"], [5]]}}"#),
                text(r#"{"dataframe_records": [{"text": true}]}"#),
                text(r#"{"instances": ["fine", {"a": 1}]}"#),
                text(r#"{"instances": ["fine", null]}"#),
                text(r#"{"inputs": {"text": [["fine"], [2.5]]}}"#),
                text(r#"{"dataframe_split": {"columns": ["review"], "data": [["fine"]]}}"#),
                text(r#"{"dataframe_records": [{"review": "fine"}]}"#),
                iris(r#"{"dataframe_split": {"columns": ["a","b","c","d"], "data": [[1, "great", 3, 4]]}}"#),
                iris(&format!(r#"{{"instances": [[1, 2, 3, "{long}"]]}}"#)),
                v2(r#"{"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": ["fine", 5]}]}"#, &text_spec("text")),
                v2(r#"{"inputs": [{"name": "text", "shape": [1, 1], "datatype": "FP32", "data": [5]}]}"#, &text_spec("text")),
                v2(r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]}"#, &spec4()),
                v2(r#"{"inputs": [{"name": "review", "shape": [1, 1], "datatype": "BYTES", "data": ["a"]}, {"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": ["a"]}]}"#, &text_spec("text")),
                mlflow_csv(b"text\n\"fine\nno end\n", &text_spec("text"), Some(&sig)).err().map(|e| e.to_string()).unwrap_or_default(),
                mlflow_csv(b"text\n\"fine\" then\n", &text_spec("text"), Some(&sig)).err().map(|e| e.to_string()).unwrap_or_default(),
            ]
            .join("\n"),
            @r#"
        `dataframe_split.data`, row 1, column `text`: 5 is not text (it is a number); the model's `text` takes text (BYTES): send it as a JSON string
        `dataframe_records`, row 0, column `text`: true is not text (it is a boolean); the model's `text` takes text (BYTES): send it as a JSON string
        `instances`, row 1: {"a":1} is not text (it is an object); the model's `text` takes text (BYTES): send it as a JSON string
        `instances`, row 1: the value is missing (null); fill or drop missing values before predicting
        `inputs.text`, row 1: 2.5 is not text (it is a number); the model's `text` takes text (BYTES): send it as a JSON string
        `dataframe_split.columns`: the columns do not match the model's signature (`text`): missing `text`; unexpected `review`
        the keys of `dataframe_records`: the columns do not match the model's signature (`text`): missing `text`; unexpected `review`
        `dataframe_split.data`, row 0, column `b`: "great" is not a number (it is text); the model's `X` takes numbers (FP32)
        `instances`, row 0, column 3: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... is not a number (it is text); the model's `X` takes numbers (FP32)
        input `text` (`inputs[0].data`), row 1: 5 is not text (it is a number); the model's `text` takes text (BYTES): send it as a JSON string
        input `text` has datatype FP32 (`inputs[0].datatype`); the model's `text` takes BYTES
        input `X` has datatype BYTES (`inputs[0].datatype`); the model's `X` takes FP32
        unknown input `review` (`inputs[0].name`; the model's inputs are `text`)
        CSV line 2: the quoted value that starts there is not closed
        CSV line 2: text after a closing quote (a quote inside a quoted value is written twice: `""`)
        "#
        );
        // Non-UTF-8 bytes in a binary BYTES element.
        let head = r#"{"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "parameters": {"binary_data_size": 15}}]}"#;
        let mut body = head.as_bytes().to_vec();
        for s in [&b"fine"[..], &b"o\xffk"[..]] {
            body.extend((s.len() as u32).to_le_bytes());
            body.extend(s);
        }
        assert_eq!(body.len(), head.len() + 15);
        let e = v2_request(&body, Some(head.len()), &text_spec("text")).unwrap_err();
        assert_eq!(
            e.0,
            "input `text` (`inputs[0]`, binary data), element 1: its bytes are not UTF-8 (from byte 1); the model takes BYTES as UTF-8 text"
        );
    }

    /// BYTES in JSON and in Triton's binary layout (4-byte little-endian
    /// lengths) are the same tensor; `[N]` is taken for a `[None, 1]` input;
    /// string outputs go back in either form.
    #[test]
    fn v2_bytes_in_json_and_binary_are_the_same_tensor() {
        let texts = ["great product", "", "naïve, \"quoted\"\n😀"];
        let json_body = json!({"inputs": [{"name": "text", "shape": [3, 1], "datatype": "BYTES", "data": texts}]}).to_string();
        let flat =
            json!({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": texts}]})
                .to_string();
        let nested = json!({"inputs": [{"name": "text", "shape": [3, 1], "datatype": "BYTES", "data": [[texts[0]], [texts[1]], [texts[2]]]}]}).to_string();
        let raw = encode_binary(&TensorData::Str(texts.map(str::to_owned).to_vec()));
        let head = json!({
            "inputs": [{"name": "text", "shape": [3, 1], "datatype": "BYTES", "parameters": {"binary_data_size": raw.len()}}],
            "outputs": [{"name": "label", "parameters": {"binary_data": true}}],
        })
        .to_string();
        let mut bin = head.as_bytes().to_vec();
        bin.extend(&raw);
        let reqs = [
            v2_request(json_body.as_bytes(), None, &text_spec("text")),
            v2_request(flat.as_bytes(), None, &text_spec("text")),
            v2_request(nested.as_bytes(), None, &text_spec("text")),
            v2_request(&bin, Some(head.len()), &text_spec("text")),
        ];
        for r in reqs {
            let r = r.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.inputs[0].shape, vec![3, 1]);
            assert_eq!(strs(&r.inputs[0]), texts);
        }
        // Triton's layout: length, then the bytes, element after element.
        assert_eq!(&raw[..4], &13u32.to_le_bytes());
        assert_eq!(&raw[4..17], b"great product");
        assert_eq!(&raw[17..21], &0u32.to_le_bytes());
        // A count that does not fit the shape.
        let two = json!({"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "parameters": {"binary_data_size": raw.len()}}]}).to_string();
        let mut b = two.as_bytes().to_vec();
        b.extend(&raw);
        assert!(
            v2_request(&b, Some(two.len()), &text_spec("text"))
                .unwrap_err()
                .0
                .contains("3 values for shape [2, 1]")
        );
        // Outputs: labels as JSON strings, or binary.
        let label = Tensor {
            name: "label".into(),
            shape: vec![2],
            data: TensorData::Str(vec!["positive".into(), "négatif".into()]),
        };
        assert_eq!(
            v2_tensor(&label),
            json!({"name": "label", "shape": [2], "datatype": "BYTES", "data": ["positive", "négatif"]})
        );
        let (entry, bytes) = v2_tensor_binary(&label);
        assert_eq!(entry["parameters"]["binary_data_size"], 4 + 8 + 4 + 8);
        assert_eq!(decode_binary(DType::Str, &bytes, "x").unwrap(), label.data);
        // The metadata says BYTES, with the signature's column.
        let sig = sig_of(&[("text", ferry_mlmodel::ColType::String)]);
        assert_eq!(
            v2_inputs(&text_spec("text"), Some(&sig)),
            json!([{"name": "text", "datatype": "BYTES", "shape": [-1, 1], "parameters": {"columns": ["text"]}}])
        );
    }

    /// RFC 4180: quoted commas, doubled quotes and line breaks; CRLF; blank
    /// lines skipped; `""` is an empty text, not a blank line.
    #[test]
    fn csv_reads_quoted_values() {
        let recs = |t: &str| -> Vec<(usize, Vec<String>)> {
            csv_records(t)
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|(l, c)| (l, c.into_iter().map(|c| c.into_owned()).collect()))
                .collect()
        };
        assert_eq!(
            recs("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\n\"two\nlines\",2\n\"\"\nlast,1"),
            vec![
                (1, vec!["a".into(), "b".into()]),
                (2, vec!["x, y".into(), "say \"hi\"".into()]),
                (4, vec!["two\nlines".into(), "2".into()]),
                (6, vec![String::new()]),
                (7, vec!["last".into(), "1".into()]),
            ]
        );
        assert_eq!(
            recs("a,,b\n"),
            vec![(1, vec!["a".into(), String::new(), "b".into()])]
        );
        let e = mlflow_csv(b"text\n\"a\nb\",x\n", &text_spec("text"), None).unwrap_err();
        assert_eq!(e.0, "CSV line 2: 2 values for 1 columns");
    }

    #[test]
    fn outputs_of_other_lengths_do_not_panic() {
        let label = Tensor {
            name: "label".into(),
            shape: vec![2],
            data: TensorData::Str(vec!["a".into(), "b".into()]),
        };
        let classes = Tensor {
            name: "classes".into(),
            shape: vec![1],
            data: TensorData::Str(vec!["a".into()]),
        };
        let v = mlflow_predictions(&[label, classes]);
        assert_eq!(v["predictions"][1]["classes"], Value::Null);
    }

    #[test]
    fn predictions_are_lists_or_records() {
        let label = Tensor {
            name: "label".into(),
            shape: vec![2],
            data: TensorData::Str(vec!["a".into(), "b".into()]),
        };
        let probs = Tensor {
            name: "probabilities".into(),
            shape: vec![2, 2],
            data: TensorData::F32(vec![0.75, 0.25, 0.5, 0.5]),
        };
        assert_eq!(
            mlflow_predictions(std::slice::from_ref(&label)),
            json!({"predictions": ["a", "b"]})
        );
        assert_eq!(
            mlflow_predictions(&[label, probs]),
            json!({"predictions": [
                {"label": "a", "probabilities": [0.75, 0.25]},
                {"label": "b", "probabilities": [0.5, 0.5]}
            ]})
        );
    }
}
