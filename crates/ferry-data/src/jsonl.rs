//! A fast path for JSON lines whose rows are flat objects of plain values,
//! the prediction log's shape: the columns a comparison needs, read on
//! every core straight from the bytes, without building Arrow arrays.
//!
//! It takes exactly what the general reader (arrow-json, [`crate::Table`])
//! would give for such lines, and checks what that reader checks: every
//! value is valid JSON (strings UTF-8, escapes whole, nesting balanced) and
//! every column of the table's schema holds its type, wanted or not: a number column's numbers, a text column's
//! strings, a boolean column's `true`/`false`, `null` or an absent key as
//! missing, unknown keys ignored, blank lines skipped. Any line outside that
//! shape (a string where a number was inferred, nesting or an escaped key in
//! a wanted place, a line that is not one JSON object, a duplicate key)
//! makes it give up, and the caller reads the table the general way, whose
//! errors name the line. Invariant: when it returns values, they are the
//! general reader's, in the same order.
//!
//! [`fold_rows`] is the same scan for a reader that wants rows, not
//! columns: each line's raw values for some keys (the prediction log's
//! model, version and prediction, counted per version by the monitor).

use memchr::{memchr, memchr2};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// How a wanted column's values are read (its type in the table's schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Any JSON number, as `f64`.
    Float,
    /// Integers only (a fraction or exponent is the general reader's to
    /// refuse), as `f64`.
    Int,
    /// Strings, counted by level.
    Text,
    /// `true` and `false`, counted by level.
    Bool,
    /// Any value, kept as its JSON text for the line's visitor
    /// ([`fold_rows`]).
    Raw,
}

/// One wanted column's values: numbers (non-finite ones count as missing)
/// or level counts, and how many were missing.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Taken {
    pub nums: Vec<f64>,
    pub levels: HashMap<String, u64>,
    pub missing: u64,
}

/// What the lines held of the wanted columns.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Read {
    pub rows: u64,
    pub cols: Vec<Taken>,
}

/// Bytes per piece of work: big enough that a thread's setup is noise,
/// small enough that two cores finish together.
const CHUNK: u64 = 8 << 20;

/// The columns (`names[k]` read as `wants[k]`) of every line of `files`,
/// their values taken where `keep[k]` and only checked elsewhere; `None`
/// when a line is not in the fast path's shape, a name repeats or a file
/// cannot be read (the general reader then says why).
pub(crate) fn read(files: &[&Path], names: &[&str], wants: &[Want], keep: &[bool]) -> Option<Read> {
    let plan = Plan::new(names, wants, keep)?;
    let columns = |chunk: &[u8], scan: &mut Scan<'_>| {
        let mut out = Read {
            rows: 0,
            cols: (0..wants.len()).map(|_| Taken::default()).collect(),
        };
        for line in lines(chunk) {
            scan.line(line, &mut out.cols)?;
            out.rows += 1;
        }
        Some(out)
    };
    let mut parts = each_chunk(files, &plan, columns)?;
    Some(merge(&mut parts, wants.len()))
}

/// Every line of `files` through `row`, with the raw JSON text of each of
/// `keys` on it (`None`: absent), folded into one `A` per piece of the
/// files, in the files' order; `None` when a line is not a flat object
/// (the caller then reads the lines its own way).
pub fn fold_rows<A: Send>(
    files: &[&Path],
    keys: &[&str],
    init: impl Fn() -> A + Sync,
    row: impl Fn(&mut A, &[Option<&[u8]>]) + Sync,
) -> Option<Vec<A>> {
    let plan = Plan::new(keys, &vec![Want::Raw; keys.len()], &vec![true; keys.len()])?;
    let rows = |chunk: &[u8], scan: &mut Scan<'_>| {
        let mut acc = init();
        let mut unused: Vec<Taken> = (0..keys.len()).map(|_| Taken::default()).collect();
        let mut values: Vec<Option<&[u8]>> = vec![None; keys.len()];
        for line in lines(chunk) {
            scan.line(line, &mut unused)?;
            for (v, span) in values.iter_mut().zip(&scan.raw) {
                *v = span.map(|(a, b)| &line[a..b]);
            }
            row(&mut acc, &values);
        }
        Some(acc)
    };
    each_chunk(files, &plan, rows)
}

/// The non-blank lines of a piece.
fn lines(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    chunk
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(|b| is_json_space(*b)))
}

/// JSON's whitespace (not a form feed, which `u8::is_ascii_whitespace`
/// counts).
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `files` cut into pieces of about [`CHUNK`] bytes at line ends, each read
/// and given to `work` on one of a few threads; the results in the pieces'
/// order, or `None` as soon as one piece gives none.
fn each_chunk<T: Send>(
    files: &[&Path],
    plan: &Plan,
    work: impl Fn(&[u8], &mut Scan<'_>) -> Option<T> + Sync,
) -> Option<Vec<T>> {
    let mut chunks = Vec::new();
    for path in files {
        let file = File::open(path).ok()?;
        // The log's newest file grows while it is read: what it held when
        // looked at is what is read.
        let len = file.metadata().ok()?.len();
        let mut start = 0;
        while start < len {
            let end = line_end_after(&file, (start + CHUNK).min(len), len)?;
            chunks.push((*path, start, end));
            start = end;
        }
    }
    let gave_up = AtomicBool::new(false);
    let threads = ferry_core::par::threads();
    let parts = ferry_core::par::map(&chunks, threads, Vec::new, |&(path, start, end), buf| {
        if gave_up.load(Ordering::Relaxed) {
            return None;
        }
        let part = read_piece(path, start, end, buf).and_then(|()| work(buf, &mut Scan::new(plan)));
        if part.is_none() {
            gave_up.store(true, Ordering::Relaxed);
        }
        part
    });
    parts.into_iter().collect()
}

/// The offset just past the first newline at or after `at` (or `len`).
fn line_end_after(file: &File, at: u64, len: u64) -> Option<u64> {
    let mut pos = at;
    let mut buf = vec![0u8; 64 << 10];
    while pos < len {
        let want = buf.len().min((len - pos) as usize);
        let n = file.read_at(&mut buf[..want], pos).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(i) = memchr(b'\n', &buf[..n]) {
            return Some(pos + i as u64 + 1);
        }
        pos += n as u64;
    }
    Some(len)
}

/// Bytes `start..end` of `path` into `buf`.
fn read_piece(path: &Path, start: u64, end: u64, buf: &mut Vec<u8>) -> Option<()> {
    let file = File::open(path).ok()?;
    buf.resize((end - start) as usize, 0);
    file.read_exact_at(buf, start).ok()
}

/// The parts' columns end to end, in the parts' order.
fn merge(parts: &mut [Read], n: usize) -> Read {
    let mut out = Read {
        rows: parts.iter().map(|p| p.rows).sum(),
        cols: Vec::with_capacity(n),
    };
    for k in 0..n {
        let total = parts.iter().map(|p| p.cols[k].nums.len()).sum();
        let mut t = Taken {
            nums: Vec::with_capacity(total),
            ..Taken::default()
        };
        for p in parts.iter_mut() {
            let c = std::mem::take(&mut p.cols[k]);
            t.nums.extend_from_slice(&c.nums);
            t.missing += c.missing;
            if t.levels.is_empty() {
                t.levels = c.levels;
            } else {
                for (level, count) in c.levels {
                    *t.levels.entry(level).or_default() += count;
                }
            }
        }
        out.cols.push(t);
    }
    out
}

/// The wanted keys.
struct Plan {
    wants: Vec<Want>,
    keep: Vec<bool>,
    index: HashMap<Vec<u8>, usize>,
}

impl Plan {
    /// `None` when a name repeats (the general reader keeps both).
    fn new(names: &[&str], wants: &[Want], keep: &[bool]) -> Option<Plan> {
        let index: HashMap<Vec<u8>, usize> = names
            .iter()
            .enumerate()
            .map(|(k, n)| (n.as_bytes().to_vec(), k))
            .collect();
        (index.len() == names.len()).then(|| Plan {
            wants: wants.to_vec(),
            keep: keep.to_vec(),
            index,
        })
    }
}

/// A reader of lines that remembers which wanted column (if any) each
/// position's key was, since a log's lines repeat their keys in order.
struct Scan<'p> {
    plan: &'p Plan,
    by_position: Vec<(Vec<u8>, Option<usize>)>,
    seen: Vec<bool>,
    /// Where each [`Want::Raw`] key's value is on the last line.
    raw: Vec<Option<(usize, usize)>>,
}

impl<'p> Scan<'p> {
    fn new(plan: &'p Plan) -> Self {
        Scan {
            plan,
            by_position: Vec::new(),
            seen: vec![false; plan.wants.len()],
            raw: vec![None; plan.wants.len()],
        }
    }

    fn column(&mut self, position: usize, key: &[u8]) -> Option<usize> {
        if let Some((k, c)) = self.by_position.get(position)
            && k == key
        {
            return *c;
        }
        let c = self.plan.index.get(key).copied();
        if position < self.by_position.len() {
            self.by_position[position] = (key.to_vec(), c);
        } else {
            self.by_position.push((key.to_vec(), c));
        }
        c
    }

    /// One line into `cols`; `None` when it is not a flat object of plain
    /// values in the wanted places.
    fn line(&mut self, line: &[u8], cols: &mut [Taken]) -> Option<()> {
        self.seen.iter_mut().for_each(|s| *s = false);
        self.raw.iter_mut().for_each(|r| *r = None);
        let mut b = Bytes { b: line, i: 0 };
        b.ws();
        b.eat(b'{')?;
        b.ws();
        if b.peek() == Some(b'}') {
            b.i += 1;
        } else {
            let mut position = 0;
            loop {
                b.eat(b'"')?;
                let (key, escaped) = b.string_rest()?;
                if escaped {
                    return None;
                }
                b.ws();
                b.eat(b':')?;
                b.ws();
                match self.column(position, key) {
                    Some(k) if self.seen[k] => return None,
                    Some(k) if self.plan.wants[k] == Want::Raw => {
                        self.seen[k] = true;
                        let from = b.i;
                        b.skip_value()?;
                        self.raw[k] = Some((from, b.i));
                    }
                    Some(k) => {
                        self.seen[k] = true;
                        let col = self.plan.keep[k].then(|| &mut cols[k]);
                        b.value_into(self.plan.wants[k], col)?;
                    }
                    None => b.skip_value()?,
                }
                position += 1;
                b.ws();
                match b.next()? {
                    b',' => b.ws(),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        b.ws();
        if b.i != line.len() {
            return None;
        }
        for (k, seen) in self.seen.iter().enumerate() {
            if !seen {
                cols[k].missing += 1;
            }
        }
        Some(())
    }
}

/// A cursor over one line's bytes.
struct Bytes<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Bytes<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(is_json_space) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// The rest of a string whose opening quote was read: its raw bytes
    /// and whether it holds an escape.
    /// A string that is not valid JSON (a raw control character, invalid
    /// UTF-8, a bad escape) is `None`.
    fn string_rest(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.i;
        let mut escaped = false;
        loop {
            let at = self.i + memchr2(b'"', b'\\', &self.b[self.i..])?;
            if self.b[at] == b'"' {
                self.i = at + 1;
                let raw = &self.b[start..at];
                if raw.iter().any(|&c| c < 0x20) || std::str::from_utf8(raw).is_err() {
                    return None;
                }
                if escaped {
                    serde_json::from_slice::<String>(&self.b[start - 1..self.i]).ok()?;
                }
                return Some((raw, escaped));
            }
            escaped = true;
            self.i = at + 2;
            if self.i > self.b.len() {
                return None;
            }
        }
    }

    /// A JSON number (its grammar, not Rust's): its text and whether it is
    /// an integer.
    fn number(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.i;
        let digits = |s: &mut Self| {
            let from = s.i;
            while matches!(s.peek(), Some(b'0'..=b'9')) {
                s.i += 1;
            }
            (s.i > from).then_some(())
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else {
            digits(self)?;
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            digits(self)?;
            integer = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            digits(self)?;
            integer = false;
        }
        Some((&self.b[start..self.i], integer))
    }

    /// One value of a column of type `want`, into `col` (checked only
    /// when there is none).
    fn value_into(&mut self, want: Want, col: Option<&mut Taken>) -> Option<()> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            if let Some(col) = col {
                col.missing += 1;
            }
            return Some(());
        }
        match want {
            Want::Float | Want::Int => {
                let (text, integer) = self.number()?;
                let x = if want == Want::Int {
                    if !integer {
                        return None;
                    }
                    lexical_core::parse::<i64>(text).ok()? as f64
                } else {
                    // Correctly rounded, as Rust's and arrow's parsers are.
                    lexical_core::parse::<f64>(text).ok()?
                };
                // Infinities are dropped, as the general path drops them.
                match col {
                    Some(col) if x.is_finite() => col.nums.push(x),
                    Some(col) => col.missing += 1,
                    None => {}
                }
            }
            Want::Text => {
                let open = self.i;
                self.eat(b'"')?;
                let (raw, escaped) = self.string_rest()?;
                let Some(col) = col else {
                    return Some(());
                };
                if escaped {
                    let s: String = serde_json::from_slice(&self.b[open..self.i]).ok()?;
                    *col.levels.entry(s).or_default() += 1;
                } else {
                    let s = std::str::from_utf8(raw).ok()?;
                    match col.levels.get_mut(s) {
                        Some(n) => *n += 1,
                        None => {
                            col.levels.insert(s.to_owned(), 1);
                        }
                    }
                }
            }
            // Kept by the line's reader instead.
            Want::Raw => self.skip_value()?,
            Want::Bool => {
                let level = if self.peek() == Some(b't') {
                    self.literal(b"true")?;
                    "true"
                } else {
                    self.literal(b"false")?;
                    "false"
                };
                if let Some(col) = col {
                    *col.levels.entry(level.to_owned()).or_default() += 1;
                }
            }
        }
        Some(())
    }

    /// Past one value of any kind (nested ones by their brackets).
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string_rest().map(drop)
            }
            b'{' | b'[' => {
                // Found by its brackets, then checked whole (rare in a log).
                let start = self.i;
                let mut depth = 0usize;
                loop {
                    match self.next()? {
                        b'"' => {
                            self.string_rest()?;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                let nested = &self.b[start..self.i];
                                return serde_json::from_slice::<serde::de::IgnoredAny>(nested)
                                    .ok()
                                    .map(drop);
                            }
                        }
                        _ => {}
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str, names: &[&str], wants: &[Want]) -> Option<Read> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, text).unwrap();
        read(&[path.as_path()], names, wants, &vec![true; names.len()])
    }

    #[test]
    fn takes_the_wanted_columns_of_flat_lines() {
        let text = "{\"ts\":1,\"x\":1.5,\"c\":\"a\",\"nested\":{\"y\":[1,\"}\"]},\"b\":true}\n\
                    \n\
                    {\"x\":null,\"c\":\"a\\u0062\",\"b\":false,\"i\":-3}\r\n\
                    { \"c\" : \"a\" , \"x\" : -2e3 }";
        let r = scan(
            text,
            &["x", "c", "b", "i"],
            &[Want::Float, Want::Text, Want::Bool, Want::Int],
        )
        .unwrap();
        assert_eq!(r.rows, 3);
        assert_eq!(r.cols[0].nums, vec![1.5, -2000.0]);
        assert_eq!(r.cols[0].missing, 1);
        assert_eq!(
            r.cols[1].levels,
            HashMap::from([("a".into(), 2), ("ab".into(), 1)])
        );
        assert_eq!(r.cols[2].levels.len(), 2);
        assert_eq!(r.cols[2].missing, 1);
        assert_eq!((r.cols[3].nums.clone(), r.cols[3].missing), (vec![-3.0], 2));
    }

    #[test]
    fn gives_up_on_what_the_general_reader_must_judge() {
        for bad in [
            "{\"x\":\"1.5\"}",
            "{\"x\":1.}",
            "{\"x\":01}",
            "{\"x\":1,\"x\":2}",
            "{\"x\":1",
            "{\"x\":1} 2",
            "[1]",
            "{\"x\":[1]}",
            "{\"\\u0078\":1}",
            "{\"y\":tru}",
            "{\"x\":1,}",
        ] {
            assert_eq!(scan(bad, &["x"], &[Want::Float]), None, "{bad}");
        }
        assert_eq!(scan("{\"i\":1.5}", &["i"], &[Want::Int]), None);
        // What arrow-json refuses anywhere on a line, wanted or not.
        for bad in [
            "{\"x\":1,\"o\":[}}",
            "{\"x\":1,\"o\":[1 2]}",
            "{\"x\":1,\"s\":\"\\q\"}",
            "{\"x\":1,\"s\":\"\\ud800\"}",
            "{\"x\":1,\"s\":\"a\tb\"}",
            "\u{c}",
        ] {
            assert_eq!(scan(bad, &["x"], &[Want::Float]), None, "{bad:?}");
        }
        assert_eq!(
            scan("{\"x\":1}", &["x", "x"], &[Want::Float, Want::Float]),
            None
        );
        // A column only checked: its type holds, its values are not kept.
        let checked = |text: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.jsonl");
            std::fs::write(&path, text).unwrap();
            read(
                &[path.as_path()],
                &["x", "ts"],
                &[Want::Float, Want::Int],
                &[true, false],
            )
        };
        let r = checked("{\"x\":1.5,\"ts\":1}").unwrap();
        assert!(r.cols[1].nums.is_empty());
        assert_eq!(checked("{\"x\":1.5,\"ts\":\"noon\"}"), None);
        assert_eq!(scan("{\"c\":1}", &["c"], &[Want::Text]), None);
    }

    #[test]
    fn rows_give_their_raw_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let text = r#"{"v":1,"p":"a\"b","x":2}
{"p":[0.1, {"q":1}]}

{"v":null}
"#;
        std::fs::write(&path, text).unwrap();
        type Row = (Option<String>, Option<String>);
        let rows = fold_rows(
            &[path.as_path()],
            &["v", "p"],
            Vec::new,
            |acc: &mut Vec<Row>, v| {
                let text = |x: Option<&[u8]>| x.map(|b| String::from_utf8_lossy(b).into_owned());
                acc.push((text(v[0]), text(v[1])));
            },
        )
        .unwrap()
        .concat();
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(
            rows,
            vec![
                (s("1"), s(r#""a\"b""#)),
                (None, s(r#"[0.1, {"q":1}]"#)),
                (s("null"), None),
            ]
        );
        std::fs::write(&path, "{\"v\":1}\n{\"v\":").unwrap();
        assert!(fold_rows(&[path.as_path()], &["v"], || (), |(), _| ()).is_none());
    }

    #[test]
    fn pieces_of_work_meet_at_line_ends_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        // A line longer than the search buffer, across a chunk's end.
        let long = "z".repeat(100 << 10);
        let mut text = String::new();
        let mut want = Vec::new();
        let mut i = 0;
        while text.len() < (2 * CHUNK + 1000) as usize {
            text.push_str(&format!("{{\"pad\":\"{long}\",\"x\":{i}}}\n"));
            want.push(i as f64);
            i += 1;
        }
        std::fs::write(&path, &text).unwrap();
        let r = read(
            &[path.as_path(), path.as_path()],
            &["x"],
            &[Want::Int],
            &[true],
        )
        .unwrap();
        assert_eq!(r.rows, 2 * want.len() as u64);
        assert_eq!(r.cols[0].nums, [want.clone(), want].concat());
    }
}
