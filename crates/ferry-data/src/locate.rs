//! Where a row is in its file. The checks count rows (0-based, across the
//! files of a table) and never look at lines on the hot path; the few rows
//! a report shows are placed afterwards by reading the files again, up to
//! the last row asked for, with the same rules as arrow's readers: a CSV
//! record starts on the line after the previous one ends, blank lines
//! between records are skipped and a quoted field may span lines; a JSON
//! lines row is one top-level value, blank lines skipped.
//!
//! Reading errors are placed the same way: a CSV error's record and a
//! JSON lines error's row become the file's own 1-based line.

use crate::dialect::CsvOptions;
use arrow_schema::{ArrowError, SchemaRef};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// The 1-based line each record in `records` starts on (0-based record
/// indices in the file, a header being record 0; ascending). Records past
/// the end get no line.
pub fn csv_record_lines(
    path: &Path,
    opts: &CsvOptions,
    records: &[u64],
) -> std::io::Result<Vec<Option<u64>>> {
    let mut out = vec![None; records.len()];
    let Some(&last) = records.last() else {
        return Ok(out);
    };
    let mut next = 0;
    csv_records(path, opts, |record, line, _| {
        while next < records.len() && records[next] == record {
            out[next] = Some(line);
            next += 1;
        }
        record < last
    })?;
    Ok(out)
}

/// The first record of a CSV file whose number of fields differs from the
/// first record's: its 1-based line, the fields expected and found.
pub fn csv_ragged_record(
    path: &Path,
    opts: &CsvOptions,
) -> std::io::Result<Option<(u64, usize, usize)>> {
    let mut want = None;
    let mut found = None;
    csv_records(path, opts, |_, line, fields| match want {
        None => {
            want = Some(fields);
            true
        }
        Some(w) if w != fields => {
            found = Some((line, w, fields));
            false
        }
        Some(_) => true,
    })?;
    Ok(found)
}

/// Reads a CSV file's records as arrow does (csv_core with the same
/// options), calling `each(record index, line it starts on, fields)` until
/// it returns false or the file ends. A whole line with no quote and no
/// lone carriage return is one record, whose fields are its delimiters
/// plus one: such lines are counted with `memchr` and only the others go
/// through csv_core, so reading up to a row near the end of a big file
/// stays a small part of the check.
fn csv_records(
    path: &Path,
    opts: &CsvOptions,
    mut each: impl FnMut(u64, u64, usize) -> bool,
) -> std::io::Result<()> {
    let mut b = csv_core::ReaderBuilder::new();
    b.delimiter(opts.delimiter)
        .quote(opts.quote)
        .escape(opts.escape);
    let mut rdr = b.build();
    let mut file = BufReader::with_capacity(1 << 16, File::open(path)?);
    // The field bytes are not needed: scratch space, overwritten.
    let mut scratch = vec![0u8; 1 << 14];
    let mut ends = vec![0usize; 1 << 10];
    let (mut line, mut record, mut fields) = (1u64, 0u64, 0usize);
    let (mut between, mut start) = (true, 1u64);
    loop {
        let buf = file.fill_buf()?;
        if buf.is_empty() {
            // The end: a last record without a line terminator.
            if !between {
                let (res, _, _, n) = rdr.read_record(&[], &mut scratch, &mut ends);
                if res == csv_core::ReadRecordResult::Record {
                    each(record, start, fields + n);
                }
            }
            return Ok(());
        }
        let mut pos = 0;
        while pos < buf.len() {
            if between && let Some(end) = memchr::memchr(b'\n', &buf[pos..]) {
                let text = &buf[pos..pos + end];
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if text.is_empty() {
                    // A blank line, which csv_core skips too.
                    line += 1;
                    pos += end + 1;
                    continue;
                }
                if memchr::memchr2(opts.quote, b'\r', text).is_none() {
                    let fields = memchr::memchr_iter(opts.delimiter, text).count() + 1;
                    if !each(record, line, fields) {
                        return Ok(());
                    }
                    record += 1;
                    line += 1;
                    pos += end + 1;
                    continue;
                }
            }
            if between {
                // Blank lines between records, which csv_core skips too.
                match buf[pos] {
                    b'\n' => {
                        line += 1;
                        pos += 1;
                        continue;
                    }
                    b'\r' => {
                        pos += 1;
                        continue;
                    }
                    _ => {
                        between = false;
                        start = line;
                        fields = 0;
                    }
                }
            }
            let (res, nin, _, n) = rdr.read_record(&buf[pos..], &mut scratch, &mut ends);
            line += buf[pos..pos + nin].iter().filter(|&&c| c == b'\n').count() as u64;
            pos += nin;
            fields += n;
            match res {
                csv_core::ReadRecordResult::Record => {
                    between = true;
                    if !each(record, start, fields) {
                        return Ok(());
                    }
                    record += 1;
                }
                csv_core::ReadRecordResult::InputEmpty => break,
                csv_core::ReadRecordResult::OutputFull
                | csv_core::ReadRecordResult::OutputEndsFull => {}
                csv_core::ReadRecordResult::End => return Ok(()),
            }
        }
        file.consume(pos);
    }
}

/// Bytes that matter inside a JSON string, and inside an object or array:
/// the scan below skips the others a byte at a time without branching on
/// its state.
const IN_STRING: [bool; 256] = bytes_of(b"\"\\\n");
const NESTED: [bool; 256] = bytes_of(b"\"{}[]\n");
const EVERY: [bool; 256] = [true; 256];

const fn bytes_of(set: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < set.len() {
        t[set[i] as usize] = true;
        i += 1;
    }
    t
}

/// The 1-based line each row in `rows` (0-based, ascending) of a JSON
/// lines file starts on: a row is a top-level value; whitespace and blank
/// lines between values are skipped.
pub fn json_row_lines(path: &Path, rows: &[u64]) -> std::io::Result<Vec<Option<u64>>> {
    let mut out = vec![None; rows.len()];
    let Some(&last) = rows.last() else {
        return Ok(out);
    };
    let mut file = BufReader::with_capacity(1 << 16, File::open(path)?);
    let (mut line, mut row, mut next) = (1u64, 0u64, 0usize);
    let (mut depth, mut in_str, mut escaped, mut between) = (0usize, false, false, true);
    loop {
        let buf = file.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        let mut i = 0;
        while i < n {
            if escaped {
                // The byte after a backslash in a string.
                escaped = false;
                line += u64::from(buf[i] == b'\n');
                i += 1;
                continue;
            }
            let skip = if in_str {
                &IN_STRING
            } else if depth > 0 {
                &NESTED
            } else {
                // Between and in top-level values every byte counts.
                &EVERY
            };
            while i < n && !skip[buf[i] as usize] {
                i += 1;
            }
            let Some(&c) = buf.get(i) else { break };
            i += 1;
            if c == b'\n' {
                line += 1;
            }
            if in_str {
                match c {
                    b'\\' => escaped = true,
                    b'"' => in_str = false,
                    _ => {}
                }
                continue;
            }
            if depth == 0 {
                if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                    // A top-level scalar ends at whitespace.
                    between = true;
                    continue;
                }
                if between {
                    between = false;
                    while next < rows.len() && rows[next] == row {
                        out[next] = Some(line);
                        next += 1;
                    }
                    if row >= last {
                        return Ok(out);
                    }
                    row += 1;
                }
            }
            match c {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        between = true;
                    }
                }
                _ => {}
            }
        }
        file.consume(n);
    }
    Ok(out)
}

/// Where a JSON lines file goes wrong for arrow's reader.
#[derive(Debug)]
pub struct JsonBadLine {
    /// The line the failing row starts on.
    pub line: u64,
    /// The line the error was found on, when the row started on an
    /// earlier one (a row not closed on its own line).
    pub found_on: Option<u64>,
    pub error: ArrowError,
}

/// The line of a JSON lines file that arrow's reader fails on, and its
/// error: the rows are decoded again one at a time, so that a value of the
/// wrong type is found as well as malformed JSON. `None` when every line
/// decodes (or the file cannot be read again).
pub fn json_bad_line(path: &Path, schema: &SchemaRef) -> Option<JsonBadLine> {
    let mut dec = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(1)
        .build_decoder()
        .ok()?;
    let mut file = BufReader::new(File::open(path).ok()?);
    let mut text = Vec::new();
    let mut line = 0;
    // The line the row being decoded started on.
    let mut started = None;
    let bad = |line: u64, started: Option<u64>, error: ArrowError| {
        let from = started.filter(|&s| s < line);
        Some(JsonBadLine {
            line: from.unwrap_or(line),
            found_on: from.map(|_| line),
            error,
        })
    };
    loop {
        text.clear();
        if file.read_until(b'\n', &mut text).ok()? == 0 {
            return match dec.flush() {
                Ok(_) => None,
                Err(e) => bad(line.max(1), started, e),
            };
        }
        line += 1;
        let mut rest = &text[..];
        loop {
            let used = match dec.decode(rest) {
                Ok(n) => n,
                Err(e) => return bad(line, started, e),
            };
            rest = &rest[used..];
            if !dec.is_empty() && !dec.has_partial_record() {
                if let Err(e) = dec.flush() {
                    return bad(line, started, e);
                }
                started = None;
            } else if used == 0 || rest.is_empty() {
                break;
            }
        }
        if dec.has_partial_record() {
            started.get_or_insert(line);
        }
    }
}

/// The line of a JSON lines file whose record makes arrow's schema
/// inference (over the first `max` records) fail, the blank characters it
/// starts with (arrow parses it trimmed) and that record's error.
/// Inference reads one record per non-blank line and fails from the first
/// bad one on, so the shortest failing prefix ends on it.
pub fn json_infer_bad_line(path: &Path, max: usize) -> Option<(u64, u64, ArrowError)> {
    let infer = |k: usize| -> Option<ArrowError> {
        let f = BufReader::new(File::open(path).ok()?);
        arrow_json::reader::infer_json_schema(f, Some(k)).err()
    };
    let (mut lo, mut hi) = (1usize, max.max(1));
    let mut err = infer(hi)?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match infer(mid) {
            Some(e) => {
                hi = mid;
                err = e;
            }
            None => lo = mid + 1,
        }
    }
    // The hi-th non-blank line.
    let mut file = BufReader::new(File::open(path).ok()?);
    let (mut text, mut line, mut records) = (String::new(), 0u64, 0usize);
    loop {
        text.clear();
        if file.read_line(&mut text).ok()? == 0 {
            return None;
        }
        line += 1;
        if !text.trim().is_empty() {
            records += 1;
            if records == hi {
                let indent = text.len() - text.trim_start().len();
                return Some((line, indent as u64, err));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = d.path().join("t");
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        (d, p)
    }

    #[test]
    fn csv_records_start_on_their_own_lines() {
        // Header (1), a blank line, a field spanning two lines, CRLF, no
        // terminator at the end.
        let (_d, p) = file("a,b\n1,2\n\n3,\"x\ny\"\r\n4,5\r\n6,7");
        let got = csv_record_lines(&p, &CsvOptions::default(), &[0, 1, 2, 3, 4, 9])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, vec![Some(1), Some(2), Some(4), Some(6), Some(7), None]);
        // A lone carriage return ends a record too, as in csv_core.
        let (_d2, p2) = file("a,b\r1,2\n3,4\n");
        let got = csv_record_lines(&p2, &CsvOptions::default(), &[0, 1, 2])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, vec![Some(1), Some(1), Some(2)]);
        let ragged =
            csv_ragged_record(&p, &CsvOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ragged, None);
        let (_d, p) = file("a,b\n1,2\n\n\"3\n\"\n4,5\n");
        let ragged =
            csv_ragged_record(&p, &CsvOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ragged, Some((4, 2, 1)));
    }

    #[test]
    fn json_rows_start_on_their_own_lines() {
        let (_d, p) =
            file("{\"a\": 1}\n\n  {\"a\": \"}{\\\"\"}\n{\"a\":\n 2}\n{\"a\": [1, {\"b\": 2}]}\n");
        let got = json_row_lines(&p, &[0, 1, 2, 3, 4]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, vec![Some(1), Some(3), Some(4), Some(6), None]);
    }
}
