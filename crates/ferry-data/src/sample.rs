//! A bounded, deterministic sample of a table, as CSV: what a registered
//! version keeps of its reference data, so its monitor compares traffic
//! with the data it was trained on even after the project's files move on.
//! Every `k`-th row is kept, `k` chosen so at most `max_rows` are.

use crate::{DataError, Result, Table};
use arrow_array::BooleanArray;

/// A table's sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The kept rows as CSV, with a header.
    pub csv: String,
    /// Rows the table has.
    pub rows: u64,
    /// Rows kept.
    pub kept: u64,
}

/// Every `ceil(rows / max_rows)`-th row of `table` (all when it has no more).
pub fn sample_csv(table: &Table, max_rows: u64) -> Result<Sample> {
    let mut rows = 0u64;
    for b in table.batches() {
        rows += b?.1.num_rows() as u64;
    }
    let stride = rows.div_ceil(max_rows.max(1)).max(1);
    let mut out = Vec::new();
    let mut kept = 0u64;
    let mut seen = 0u64;
    {
        let mut w = arrow_csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        for b in table.batches() {
            let (file, batch) = b?;
            let mask: BooleanArray = (0..batch.num_rows() as u64)
                .map(|i| Some((seen + i).is_multiple_of(stride)))
                .collect();
            seen += batch.num_rows() as u64;
            let picked = arrow_select::filter::filter_record_batch(&batch, &mask).map_err(|e| {
                DataError::Read {
                    path: table.files[file].0.clone(),
                    detail: e.to_string(),
                }
            })?;
            kept += picked.num_rows() as u64;
            w.write(&picked).map_err(|e| DataError::Read {
                path: table.files[file].0.clone(),
                detail: e.to_string(),
            })?;
        }
    }
    let csv = String::from_utf8(out).map_err(|e| DataError::Read {
        path: table.files.first().map(|f| f.0.clone()).unwrap_or_default(),
        detail: format!("the sample is not UTF-8: {e}"),
    })?;
    Ok(Sample { csv, rows, kept })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::TableSpec;

    #[test]
    fn every_kth_row_is_kept_with_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        let mut text = String::from("x,label\n");
        for i in 0..25 {
            text.push_str(&format!("{i}.5,c{}\n", i % 3));
        }
        std::fs::write(&p, text).unwrap();
        let t = Table::open(&TableSpec::new(p.to_string_lossy())).unwrap();
        let s = sample_csv(&t, 10).unwrap();
        assert_eq!((s.rows, s.kept), (25, 9));
        let lines: Vec<&str> = s.csv.lines().collect();
        assert_eq!(lines[..3], ["x,label", "0.5,c0", "3.5,c0"]);
        let all = sample_csv(&t, 100).unwrap();
        assert_eq!(all.kept, 25);
    }
}
