//! `TfIdfVectorizer` (ai.onnx) evaluated as onnxruntime evaluates it
//! (`tfidfvectorizer.cc`).
//!
//! The pool (`pool_strings` or `pool_int64s`, cut into 1-grams, 2-grams, ...
//! by `ngram_counts`) becomes, at load, a trie over token ids: each pool
//! token gets a number, and each n-gram a path from the root whose last node
//! holds the n-gram's index (its output column is `ngram_indexes[index]`,
//! its weight `weights[index]`). Only the n-grams of `min_gram_length` to
//! `max_gram_length` tokens are loaded; a duplicate is an error. A row is
//! then scanned once per skip distance (1 to `max_skip_count + 1`): from each
//! token, the walk follows every `distance`-th token down the trie, and each
//! node with an n-gram of at least `min_gram_length` tokens is a hit (1-grams
//! are counted in the first pass only). A hit adds 1 to its column (TF),
//! sets it to the weight (IDF) or adds the weight (TFIDF); without
//! `weights`, the weight is 1.
//!
//! Input `[C]` (or a scalar) gives `[columns]`; `[B, C]` (B > 0) gives
//! `[B, columns]`, `columns` being the largest `ngram_indexes` plus one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    Tf,
    Idf,
    TfIdf,
}

impl Weighting {
    pub fn parse(s: &str) -> Result<Weighting, String> {
        match s {
            "TF" => Ok(Weighting::Tf),
            "IDF" => Ok(Weighting::Idf),
            "TFIDF" => Ok(Weighting::TfIdf),
            other => Err(format!(
                "unknown mode `{other}` (expected TF, IDF or TFIDF)"
            )),
        }
    }
}

/// The pool as given.
#[derive(Debug, Clone)]
pub enum Pool {
    Strings(Vec<String>),
    Ints(Vec<i64>),
}

impl Pool {
    fn len(&self) -> usize {
        match self {
            Pool::Strings(v) => v.len(),
            Pool::Ints(v) => v.len(),
        }
    }
}

/// The attributes of a `TfIdfVectorizer` node.
#[derive(Debug, Clone)]
pub struct TfIdfAttributes {
    pub mode: Weighting,
    pub min_gram_length: i64,
    pub max_gram_length: i64,
    pub max_skip_count: i64,
    pub ngram_counts: Vec<i64>,
    pub ngram_indexes: Vec<i64>,
    pub weights: Option<Vec<f32>>,
    pub pool: Pool,
}

/// FNV-1a: a fast hash for the short keys here (tokens, trie edges). The
/// maps are filled from the model only; requests merely look keys up.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        // One multiply-xorshift round per word.
        let h = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// A token no pool n-gram has.
pub const UNKNOWN: u32 = u32::MAX;
const NO_NGRAM: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub struct TfIdf {
    mode: Weighting,
    min_gram: usize,
    max_gram: usize,
    max_skip: usize,
    n_columns: usize,
    /// Token ids of the pool's tokens.
    string_ids: FastMap<String, u32>,
    int_ids: FastMap<i64, u32>,
    /// Trie edges: `(node << 32) | token` to the child node (the root is 0).
    edges: FastMap<u64, u32>,
    /// Per node: the index of the n-gram ending there, or `NO_NGRAM`.
    node_ngram: Vec<u32>,
    /// Per node: its depth (the n-gram's length).
    node_depth: Vec<u32>,
    /// Per n-gram index: the output column, the weight.
    columns: Vec<u32>,
    weights: Vec<f32>,
}

impl TfIdf {
    pub fn new(a: TfIdfAttributes) -> Result<TfIdf, String> {
        if a.min_gram_length <= 0 {
            return Err(format!(
                "`min_gram_length` is {}, it must be positive",
                a.min_gram_length
            ));
        }
        if a.max_gram_length < a.min_gram_length {
            return Err(format!(
                "`max_gram_length` ({}) is less than `min_gram_length` ({})",
                a.max_gram_length, a.min_gram_length
            ));
        }
        if a.max_skip_count < 0 {
            return Err(format!(
                "`max_skip_count` is {}, it must not be negative",
                a.max_skip_count
            ));
        }
        if a.ngram_counts.is_empty() {
            return Err("`ngram_counts` is empty".to_owned());
        }
        let too_long = |n: i64| usize::try_from(n).map_or(true, |n| n > a.ngram_counts.len());
        if too_long(a.max_gram_length) {
            return Err(format!(
                "`max_gram_length` is {} but `ngram_counts` has {} entries",
                a.max_gram_length,
                a.ngram_counts.len()
            ));
        }
        if a.ngram_indexes.is_empty() {
            return Err("`ngram_indexes` is empty".to_owned());
        }
        if a.ngram_indexes.iter().any(|&i| i < 0) {
            return Err("`ngram_indexes` has a negative index".to_owned());
        }
        let n_columns = a
            .ngram_indexes
            .iter()
            .map(|&i| usize::try_from(i).unwrap_or(usize::MAX))
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .filter(|&n| n <= u32::MAX as usize)
            .ok_or("`ngram_indexes` has an index too large")?;
        let weights = match a.weights {
            Some(w) if !w.is_empty() => {
                if w.len() != a.ngram_indexes.len() {
                    return Err(format!(
                        "`weights` has {} values but `ngram_indexes` has {}",
                        w.len(),
                        a.ngram_indexes.len()
                    ));
                }
                w
            }
            _ => Vec::new(),
        };
        if a.pool.len() == 0 {
            return Err("the pool (`pool_strings` or `pool_int64s`) is empty".to_owned());
        }
        // Lengths are now known to fit.
        let min_gram = a.min_gram_length as usize;
        let max_gram = a.max_gram_length as usize;
        let max_skip = usize::try_from(a.max_skip_count).unwrap_or(usize::MAX);

        let mut t = TfIdf {
            mode: a.mode,
            min_gram,
            max_gram,
            max_skip,
            n_columns,
            string_ids: FastMap::default(),
            int_ids: FastMap::default(),
            edges: FastMap::default(),
            node_ngram: vec![NO_NGRAM],
            node_depth: vec![0],
            columns: a.ngram_indexes.iter().map(|&i| i as u32).collect(),
            weights,
        };
        let total = a.pool.len();
        let mut ngram_index = 0usize;
        for (k, &start) in a.ngram_counts.iter().enumerate() {
            let size = k + 1;
            let end = a.ngram_counts.get(k + 1).copied().unwrap_or(total as i64);
            let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
                return Err(format!("`ngram_counts` is out of bounds for {size}-grams"));
            };
            if end < start || end > total {
                return Err(format!("`ngram_counts` is out of bounds for {size}-grams"));
            }
            let items = end - start;
            if items % size != 0 {
                return Err(format!(
                    "the pool's {size}-grams ({items} tokens) are not whole {size}-grams"
                ));
            }
            let count = items / size;
            if size < min_gram || size > max_gram {
                ngram_index += count;
                continue;
            }
            for g in 0..count {
                if ngram_index >= t.columns.len() {
                    return Err(format!(
                        "the pool has more n-grams than `ngram_indexes` has entries ({})",
                        t.columns.len()
                    ));
                }
                let from = start + g * size;
                let mut node = 0u32;
                for j in from..from + size {
                    let token = t.intern(&a.pool, j);
                    node = t.child_or_new(node, token);
                }
                let slot = &mut t.node_ngram[node as usize];
                if *slot != NO_NGRAM {
                    return Err(format!(
                        "the pool has the {size}-gram at {from} twice (n-gram {ngram_index})"
                    ));
                }
                *slot = ngram_index as u32;
                ngram_index += 1;
            }
        }
        Ok(t)
    }

    fn intern(&mut self, pool: &Pool, j: usize) -> u32 {
        let next = (self.string_ids.len() + self.int_ids.len()) as u32;
        match pool {
            Pool::Strings(v) => *self.string_ids.entry(v[j].clone()).or_insert(next),
            Pool::Ints(v) => *self.int_ids.entry(v[j]).or_insert(next),
        }
    }

    fn child_or_new(&mut self, node: u32, token: u32) -> u32 {
        let key = (u64::from(node) << 32) | u64::from(token);
        if let Some(&child) = self.edges.get(&key) {
            return child;
        }
        let child = self.node_ngram.len() as u32;
        self.node_ngram.push(NO_NGRAM);
        self.node_depth.push(self.node_depth[node as usize] + 1);
        self.edges.insert(key, child);
        child
    }

    pub fn n_columns(&self) -> usize {
        self.n_columns
    }

    /// The id of a string token (`UNKNOWN` if no n-gram has it).
    pub fn string_id(&self, s: &str) -> u32 {
        self.string_ids.get(s).copied().unwrap_or(UNKNOWN)
    }

    /// The id of an integer token.
    pub fn int_id(&self, v: i64) -> u32 {
        self.int_ids.get(&v).copied().unwrap_or(UNKNOWN)
    }

    /// The output shape for an input shape, and the number of rows and
    /// tokens per row.
    pub fn output_shape(&self, input: &[usize]) -> Result<(Vec<usize>, usize, usize), String> {
        match *input {
            [] => Ok((vec![self.n_columns], 1, 1)),
            [c] => Ok((vec![self.n_columns], 1, c)),
            [b, c] if b > 0 => Ok((vec![b, self.n_columns], b, c)),
            _ => Err(format!(
                "TfIdfVectorizer takes [C] or [B, C] with B > 0, got shape {input:?}"
            )),
        }
    }

    /// Scores one row of token ids into `out` (`n_columns()` values, zeroed
    /// here).
    pub fn row(&self, ids: &[u32], out: &mut [f32]) {
        out.fill(0.0);
        if self.node_ngram.len() == 1 {
            return;
        }
        let mut start_size = self.min_gram;
        for distance in 1..=self.max_skip.saturating_add(1) {
            for start in 0..ids.len() {
                // The shortest wanted n-gram must fit.
                if (start_size - 1)
                    .checked_mul(distance)
                    .and_then(|d| d.checked_add(start))
                    .is_none_or(|last| last >= ids.len())
                {
                    break;
                }
                let mut node = 0u32;
                let mut at = start;
                for size in 1..=self.max_gram {
                    let token = ids[at];
                    if token == UNKNOWN {
                        break;
                    }
                    let key = (u64::from(node) << 32) | u64::from(token);
                    let Some(&child) = self.edges.get(&key) else {
                        break;
                    };
                    node = child;
                    let ngram = self.node_ngram[node as usize];
                    if size >= start_size && ngram != NO_NGRAM {
                        self.hit(ngram as usize, out);
                    }
                    match at.checked_add(distance) {
                        Some(next) if next < ids.len() => at = next,
                        _ => break,
                    }
                }
            }
            // 1-grams are counted once, whatever the distance.
            if start_size == 1 {
                start_size = 2;
                if start_size > self.max_gram {
                    break;
                }
            }
        }
    }

    fn hit(&self, ngram: usize, out: &mut [f32]) {
        let column = self.columns[ngram] as usize;
        let weight = if self.weights.is_empty() {
            1.0
        } else {
            self.weights[ngram]
        };
        match self.mode {
            Weighting::Tf => out[column] += 1.0,
            Weighting::Idf => out[column] = weight,
            Weighting::TfIdf => out[column] += weight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(mode: Weighting, min: i64, max: i64, skip: i64) -> TfIdfAttributes {
        TfIdfAttributes {
            mode,
            min_gram_length: min,
            max_gram_length: max,
            max_skip_count: skip,
            ngram_counts: vec![0, 3],
            ngram_indexes: vec![4, 0, 1, 2, 3],
            weights: Some(vec![10.0, 20.0, 30.0, 40.0, 50.0]),
            pool: Pool::Strings(
                ["a", "b", "c", "a", "b", "b", "c"]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            ),
        }
    }

    fn run(t: &TfIdf, tokens: &[&str]) -> Vec<f32> {
        let ids: Vec<u32> = tokens.iter().map(|s| t.string_id(s)).collect();
        let mut out = vec![f32::NAN; t.n_columns()];
        t.row(&ids, &mut out);
        out
    }

    #[test]
    fn modes_and_weights_by_pool_index() {
        // onnxruntime 1.32's answers for these.
        let row = ["a", "b", "c", "a", "b", "#"];
        let t = TfIdf::new(attrs(Weighting::Tf, 1, 2, 0)).unwrap();
        assert_eq!(run(&t, &row), [2.0, 1.0, 2.0, 1.0, 2.0]);
        let t = TfIdf::new(attrs(Weighting::Idf, 1, 2, 0)).unwrap();
        assert_eq!(run(&t, &row), [20.0, 30.0, 40.0, 50.0, 10.0]);
        let t = TfIdf::new(attrs(Weighting::TfIdf, 1, 2, 0)).unwrap();
        assert_eq!(run(&t, &row), [40.0, 30.0, 80.0, 50.0, 20.0]);
        // Only the 2-grams loaded.
        let t = TfIdf::new(attrs(Weighting::Tf, 2, 2, 0)).unwrap();
        assert_eq!(run(&t, &row), [0.0, 0.0, 2.0, 1.0, 0.0]);
        assert_eq!(run(&t, &[]), [0.0; 5]);
    }

    #[test]
    fn skip_grams() {
        let t = TfIdf::new(TfIdfAttributes {
            mode: Weighting::Tf,
            min_gram_length: 2,
            max_gram_length: 3,
            max_skip_count: 2,
            ngram_counts: vec![0, 0, 4],
            ngram_indexes: vec![0, 1, 2],
            weights: None,
            pool: Pool::Ints(vec![1, 2, 1, 3, 1, 2, 3]),
        })
        .unwrap();
        let ids: Vec<u32> = [1, 2, 3, 1, 5, 3, 1, 2, 3]
            .iter()
            .map(|&v| t.int_id(v))
            .collect();
        let mut out = vec![0f32; 3];
        t.row(&ids, &mut out);
        assert_eq!(out, [2.0, 3.0, 2.0]);
        // Strings are no integers.
        assert_eq!(t.string_id("1"), UNKNOWN);
    }

    #[test]
    fn shapes() {
        let t = TfIdf::new(attrs(Weighting::Tf, 1, 2, 0)).unwrap();
        assert_eq!(t.output_shape(&[3]).unwrap().0, [5]);
        assert_eq!(t.output_shape(&[]).unwrap().0, [5]);
        assert_eq!(t.output_shape(&[2, 0]).unwrap(), (vec![2, 5], 2, 0));
        assert!(t.output_shape(&[0, 3]).is_err());
        assert!(t.output_shape(&[1, 1, 1]).is_err());
    }

    #[test]
    fn bad_attributes_are_errors() {
        let check = |f: &dyn Fn(&mut TfIdfAttributes), needle: &str| {
            let mut a = attrs(Weighting::Tf, 1, 2, 0);
            f(&mut a);
            let err = TfIdf::new(a).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        };
        check(&|a| a.min_gram_length = 0, "min_gram_length");
        check(&|a| a.max_gram_length = 3, "max_gram_length");
        check(&|a| a.max_skip_count = -1, "max_skip_count");
        check(&|a| a.ngram_indexes[0] = -1, "negative");
        check(&|a| a.weights = Some(vec![1.0]), "weights");
        check(&|a| a.ngram_counts = vec![0, 2], "whole 2-grams");
        check(&|a| a.ngram_counts = vec![0, 9], "out of bounds");
        check(
            &|a| {
                a.pool = Pool::Strings(
                    ["a", "a", "c", "a", "b", "b", "c"]
                        .map(String::from)
                        .to_vec(),
                )
            },
            "twice",
        );
        check(
            &|a| {
                a.ngram_indexes.truncate(2);
                a.weights = None;
            },
            "more n-grams",
        );
    }
}
