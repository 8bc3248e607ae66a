//! The `unique` expectation: the one rule that needs state per row. Each
//! value is kept as a 128-bit hash with its row number and its text. Up to
//! [`IN_MEMORY`] rows that lives in memory; beyond, everything goes to
//! [`PARTITIONS`] temporary files by hash, and each file is then read and
//! sorted alone, so memory stays near `rows / PARTITIONS` entries.

use crate::check::Failing;
use crate::{DataError, Result};
use std::io::{BufReader, BufWriter, Read, Write};

pub const IN_MEMORY: usize = 1_000_000;
pub const PARTITIONS: usize = 64;

type Entry = (u128, u64, String);

#[derive(Default)]
pub struct UniqueState {
    mem: Vec<Entry>,
    spill: Option<Spill>,
    error: Option<std::io::Error>,
}

struct Spill {
    _dir: tempfile::TempDir,
    paths: Vec<std::path::PathBuf>,
    writers: Vec<BufWriter<std::fs::File>>,
}

fn write_entry(w: &mut impl Write, (h, row, v): &Entry) -> std::io::Result<()> {
    w.write_all(&h.to_le_bytes())?;
    w.write_all(&row.to_le_bytes())?;
    w.write_all(&(v.len() as u32).to_le_bytes())?;
    w.write_all(v.as_bytes())
}

fn read_entries(path: &std::path::Path) -> std::io::Result<Vec<Entry>> {
    let mut r = BufReader::new(std::fs::File::open(path)?);
    let mut out = Vec::new();
    let mut h = [0u8; 16];
    loop {
        match r.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(out),
            Err(e) => return Err(e),
        }
        let mut row = [0u8; 8];
        r.read_exact(&mut row)?;
        let mut len = [0u8; 4];
        r.read_exact(&mut len)?;
        let mut v = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut v)?;
        out.push((
            u128::from_le_bytes(h),
            u64::from_le_bytes(row),
            String::from_utf8_lossy(&v).into_owned(),
        ));
    }
}

impl UniqueState {
    #[inline]
    pub fn add(&mut self, hash: u128, row: u64, value: impl FnOnce() -> serde_json::Value) {
        let e = (hash, row, value().to_string());
        match &mut self.spill {
            None => {
                self.mem.push(e);
                if self.mem.len() >= IN_MEMORY {
                    self.start_spill();
                }
            }
            Some(s) => {
                let p = (hash >> 122) as usize % PARTITIONS;
                if let Err(err) = write_entry(&mut s.writers[p], &e) {
                    self.error.get_or_insert(err);
                }
            }
        }
    }

    fn start_spill(&mut self) {
        let result = (|| -> std::io::Result<Spill> {
            let dir = tempfile::Builder::new().prefix("ferry-unique-").tempdir()?;
            let mut paths = Vec::with_capacity(PARTITIONS);
            let mut writers = Vec::with_capacity(PARTITIONS);
            for i in 0..PARTITIONS {
                let p = dir.path().join(format!("{i:02}"));
                writers.push(BufWriter::with_capacity(
                    64 * 1024,
                    std::fs::File::create(&p)?,
                ));
                paths.push(p);
            }
            let mut s = Spill {
                _dir: dir,
                paths,
                writers,
            };
            for e in self.mem.drain(..) {
                let p = (e.0 >> 122) as usize % PARTITIONS;
                write_entry(&mut s.writers[p], &e)?;
            }
            Ok(s)
        })();
        self.mem = Vec::new();
        match result {
            Ok(s) => self.spill = Some(s),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    /// Rows whose value occurs more than once, and a sample of them (by row).
    pub fn finish(self, sample: usize) -> Result<(u64, Vec<Failing>)> {
        let io = |e: std::io::Error| DataError::Internal(format!("unique: temporary files: {e}"));
        if let Some(e) = self.error {
            return Err(io(e));
        }
        let mut bad = 0u64;
        let mut rows: Vec<(u64, String)> = Vec::new();
        let mut scan = |mut part: Vec<Entry>| {
            part.sort_unstable_by_key(|e| (e.0, e.1));
            let mut i = 0;
            while i < part.len() {
                let mut j = i + 1;
                while j < part.len() && part[j].0 == part[i].0 {
                    j += 1;
                }
                if j - i > 1 {
                    bad += (j - i) as u64;
                    for e in &part[i..j] {
                        rows.push((e.1, e.2.clone()));
                    }
                    // Keep only the earliest rows for the sample.
                    if rows.len() > sample * 4 {
                        rows.sort_unstable();
                        rows.truncate(sample);
                    }
                }
                i = j;
            }
        };
        match self.spill {
            None => scan(self.mem),
            Some(mut s) => {
                for w in &mut s.writers {
                    w.flush().map_err(io)?;
                }
                for p in &s.paths {
                    scan(read_entries(p).map_err(io)?);
                }
            }
        }
        rows.sort_unstable();
        rows.truncate(sample);
        let failing = rows
            .into_iter()
            .map(|(row, v)| Failing {
                row,
                value: serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v)),
            })
            .collect();
        Ok((bad, failing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: u64, dups: &[(u64, u64)]) -> (u64, Vec<u64>) {
        let mut u = UniqueState::default();
        for row in 0..n {
            let v = dups
                .iter()
                .find(|(r, _)| *r == row)
                .map_or(row, |(_, of)| *of);
            u.add(xxhash_rust::xxh3::xxh3_128(&v.to_le_bytes()), row, || {
                v.into()
            });
        }
        let (bad, sample) = u.finish(5).unwrap();
        (bad, sample.iter().map(|f| f.row).collect())
    }

    #[test]
    fn duplicates_in_memory_and_spilled_agree() {
        let dups = [(10, 3), (20, 3), (30, 7)];
        assert_eq!(run(100, &dups), (5, vec![3, 7, 10, 20, 30]));
        // Past the in-memory limit the same answer comes from the partitions.
        let n = IN_MEMORY as u64 + 5000;
        let dups = [(n - 1, 0), (n - 2, 5)];
        assert_eq!(run(n, &dups), (4, vec![0, 5, n - 2, n - 1]));
    }
}
