//! The `unique` expectation: the one rule that needs state per distinct
//! value. Up to [`IN_MEMORY`] distinct values live in a hash map (128-bit
//! value hash -> first row, count: about 40 bytes each), which finds a
//! duplicate the moment it is read; beyond, every value (hash, row, text)
//! goes to [`PARTITIONS`] temporary files by hash, and each file is then
//! read and sorted alone, so memory stays near `rows / PARTITIONS` entries.

use crate::failing::Failing;
use crate::{DataError, Result};
use std::io::{BufReader, BufWriter, Read, Write};

pub const IN_MEMORY: usize = 2_000_000;
pub const PARTITIONS: usize = 64;

/// (value hash, row, occurrences it stands for, value as JSON text or "")
type Entry = (u128, u64, u32, String);

#[derive(Default)]
pub struct UniqueState {
    /// hash -> (first row, occurrences) while in memory.
    map: std::collections::HashMap<
        u128,
        (u64, u32),
        std::hash::BuildHasherDefault<crate::sketch::PreHashed>,
    >,
    /// Rows of duplicates seen in memory, with their values (bounded).
    samples: Vec<(u64, String)>,
    spill: Option<Spill>,
    error: Option<std::io::Error>,
}

/// Duplicate rows remembered while in memory, at most.
const SAMPLE_CAP: usize = 200;

struct Spill {
    _dir: tempfile::TempDir,
    paths: Vec<std::path::PathBuf>,
    writers: Vec<BufWriter<std::fs::File>>,
}

fn write_entry(w: &mut impl Write, (h, row, count, v): &Entry) -> std::io::Result<()> {
    w.write_all(&h.to_le_bytes())?;
    w.write_all(&row.to_le_bytes())?;
    w.write_all(&count.to_le_bytes())?;
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
        let mut count = [0u8; 4];
        r.read_exact(&mut count)?;
        let mut len = [0u8; 4];
        r.read_exact(&mut len)?;
        let mut v = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut v)?;
        out.push((
            u128::from_le_bytes(h),
            u64::from_le_bytes(row),
            u32::from_le_bytes(count),
            String::from_utf8_lossy(&v).into_owned(),
        ));
    }
}

impl UniqueState {
    #[inline]
    pub fn add(&mut self, hash: u128, row: u64, value: impl FnOnce() -> serde_json::Value) {
        if let Some(s) = &mut self.spill {
            let p = (hash >> 122) as usize % PARTITIONS;
            if let Err(err) = write_entry(&mut s.writers[p], &(hash, row, 1, value().to_string())) {
                self.error.get_or_insert(err);
            }
            return;
        }
        match self.map.entry(hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((row, 1));
                if self.map.len() >= IN_MEMORY {
                    self.start_spill();
                }
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let (first, count) = o.get_mut();
                *count += 1;
                if self.samples.len() < SAMPLE_CAP {
                    let v = value().to_string();
                    if *count == 2 {
                        self.samples.push((*first, v.clone()));
                    }
                    self.samples.push((row, v));
                }
            }
        }
    }

    /// Moves the map to the partition files: one entry per occurrence
    /// (their values are not known here; a group's value comes from a
    /// member read later, and groups complete in memory are in `samples`).
    fn start_spill(&mut self) {
        let map = std::mem::take(&mut self.map);
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
            for (h, (first, count)) in map {
                let p = (h >> 122) as usize % PARTITIONS;
                // One entry stands for every occurrence seen so far (the
                // other rows of duplicates found in memory are in `samples`).
                write_entry(&mut s.writers[p], &(h, first, count, String::new()))?;
            }
            Ok(s)
        })();
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
        let mut rows: Vec<(u64, String)> = self.samples;
        let mut bad: u64 = 0;
        match self.spill {
            None => {
                bad = self
                    .map
                    .values()
                    .filter(|(_, c)| *c > 1)
                    .map(|(_, c)| u64::from(*c))
                    .sum();
            }
            Some(mut s) => {
                for w in &mut s.writers {
                    w.flush().map_err(io)?;
                }
                for p in &s.paths {
                    let mut part = read_entries(p).map_err(io)?;
                    part.sort_unstable_by_key(|e| (e.0, e.1));
                    let mut i = 0;
                    while i < part.len() {
                        let mut j = i + 1;
                        while j < part.len() && part[j].0 == part[i].0 {
                            j += 1;
                        }
                        let total: u64 = part[i..j].iter().map(|e| u64::from(e.2)).sum();
                        if total > 1 {
                            bad += total;
                            // A group read only from memory is in `samples` already.
                            if let Some(value) =
                                part[i..j].iter().map(|e| &e.3).find(|v| !v.is_empty())
                            {
                                for e in &part[i..j] {
                                    rows.push((e.1, value.clone()));
                                }
                            }
                            if rows.len() > sample * 4 {
                                rows.sort_unstable();
                                rows.dedup_by_key(|r| r.0);
                                rows.truncate(sample.max(SAMPLE_CAP));
                            }
                        }
                        i = j;
                    }
                }
            }
        }
        rows.sort_unstable();
        rows.dedup_by_key(|r| r.0);
        rows.truncate(sample);
        let failing = rows
            .into_iter()
            .map(|(row, v)| {
                Failing::at(
                    row,
                    if v.is_empty() {
                        serde_json::Value::Null
                    } else {
                        serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v))
                    },
                )
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
        // Duplicates found in memory keep their rows and values past the spill.
        let n = IN_MEMORY as u64 + 10;
        let mut u = UniqueState::default();
        for row in 0..n {
            let v = match row {
                1 => 0,
                r if r == n - 1 => 5,
                r => r,
            };
            u.add(xxhash_rust::xxh3::xxh3_128(&v.to_le_bytes()), row, || {
                v.into()
            });
        }
        let (bad, sample) = u.finish(10).unwrap();
        assert_eq!(bad, 4);
        let got: Vec<(u64, serde_json::Value)> =
            sample.into_iter().map(|f| (f.row, f.value)).collect();
        assert_eq!(
            got,
            vec![
                (0, 0.into()),
                (1, 0.into()),
                (5, 5.into()),
                (n - 1, 5.into())
            ]
        );
    }
}
