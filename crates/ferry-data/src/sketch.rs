//! Bounded state for statistics over any number of rows.
//!
//! - [`Quantiles`]: exact (every value kept) up to [`EXACT_VALUES`] values
//!   per column, then a merging t-digest of bounded size (rank error well
//!   under 1% in the middle, smaller at the tails).
//! - [`Distinct`]: exact (128-bit hashes) up to [`EXACT_DISTINCT`] distinct
//!   values, then a HyperLogLog (2^14 registers, ~0.8% standard error).
//! - [`Moments`]: count, mean and variance by Welford's method.

/// Values kept exactly per column before switching to the t-digest.
pub const EXACT_VALUES: usize = 4_000_000;
/// Distinct values kept exactly before switching to HyperLogLog.
pub const EXACT_DISTINCT: usize = 2_000_000;

#[derive(Debug, Clone, Default)]
pub struct Moments {
    pub n: u64,
    mean: f64,
    m2: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub sum: f64,
}

impl Moments {
    #[inline]
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        self.sum += x;
        self.min = Some(self.min.map_or(x, |m| m.min(x)));
        self.max = Some(self.max.map_or(x, |m| m.max(x)));
    }
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }
    /// Sample standard deviation (n - 1), as pandas and Great Expectations.
    pub fn stdev(&self) -> Option<f64> {
        (self.n > 1).then(|| (self.m2 / (self.n - 1) as f64).sqrt())
    }
    /// Population standard deviation (n), as numpy's default.
    pub fn pstdev(&self) -> Option<f64> {
        (self.n > 0).then(|| (self.m2 / self.n as f64).sqrt())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Quantiles {
    exact: Vec<f64>,
    digest: Option<TDigest>,
}

impl Quantiles {
    #[inline]
    pub fn add(&mut self, x: f64) {
        match &mut self.digest {
            Some(d) => d.add(x),
            None => {
                self.exact.push(x);
                if self.exact.len() >= EXACT_VALUES {
                    let mut d = TDigest::new(500.0);
                    for v in self.exact.drain(..) {
                        d.add(v);
                    }
                    self.exact = Vec::new();
                    self.digest = Some(d);
                }
            }
        }
    }

    /// Whether the answers are exact.
    pub fn is_exact(&self) -> bool {
        self.digest.is_none()
    }

    /// The `q` quantile with linear interpolation between order statistics
    /// (numpy's and pandas' default), or the digest's estimate.
    pub fn quantile(&mut self, q: f64) -> Option<f64> {
        if let Some(d) = &mut self.digest {
            return d.quantile(q);
        }
        if self.exact.is_empty() {
            return None;
        }
        self.exact.sort_unstable_by(f64::total_cmp);
        Some(interpolate(&self.exact, q))
    }
}

/// The `q` quantile of sorted values, linear interpolation (numpy's default).
pub fn interpolate(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// A merging t-digest (Dunning): centroids sized by the k1 scale function.
#[derive(Debug, Clone)]
pub struct TDigest {
    compression: f64,
    centroids: Vec<(f64, f64)>,
    buffer: Vec<f64>,
    count: f64,
    min: f64,
    max: f64,
}

impl TDigest {
    pub fn new(compression: f64) -> Self {
        TDigest {
            compression,
            centroids: Vec::new(),
            buffer: Vec::with_capacity(8192),
            count: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    pub fn add(&mut self, x: f64) {
        self.buffer.push(x);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        if self.buffer.len() == self.buffer.capacity() {
            self.merge();
        }
    }

    fn k(&self, q: f64) -> f64 {
        self.compression / (2.0 * std::f64::consts::PI) * (2.0 * q - 1.0).clamp(-1.0, 1.0).asin()
    }

    fn merge(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let mut all: Vec<(f64, f64)> = self.buffer.drain(..).map(|x| (x, 1.0)).collect();
        all.append(&mut self.centroids);
        all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = all.iter().map(|c| c.1).sum();
        self.count = total;
        let mut out: Vec<(f64, f64)> = Vec::with_capacity(self.compression as usize * 2);
        let mut seen = 0.0;
        let mut cur = all[0];
        let mut k_lo = self.k(0.0);
        for &(m, w) in &all[1..] {
            let q = (seen + cur.1 + w) / total;
            if self.k(q) - k_lo <= 1.0 {
                cur.0 += (m - cur.0) * w / (cur.1 + w);
                cur.1 += w;
            } else {
                seen += cur.1;
                out.push(cur);
                k_lo = self.k(seen / total);
                cur = (m, w);
            }
        }
        out.push(cur);
        self.centroids = out;
    }

    pub fn quantile(&mut self, q: f64) -> Option<f64> {
        self.merge();
        if self.centroids.is_empty() {
            return None;
        }
        let target = q.clamp(0.0, 1.0) * self.count;
        let mut seen = 0.0;
        for (i, &(m, w)) in self.centroids.iter().enumerate() {
            if seen + w >= target {
                // Interpolate between this centroid's neighbours.
                let frac = (target - seen) / w;
                let left = if i == 0 {
                    self.min
                } else {
                    (self.centroids[i - 1].0 + m) / 2.0
                };
                let right = if i + 1 == self.centroids.len() {
                    self.max
                } else {
                    (m + self.centroids[i + 1].0) / 2.0
                };
                return Some(left + frac * (right - left));
            }
            seen += w;
        }
        Some(self.max)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Distinct {
    exact: PreHashedSet,
    hll: Option<Box<[u8]>>,
}

const HLL_BITS: u32 = 14;

impl Distinct {
    #[inline]
    pub fn add(&mut self, h: u128) {
        match &mut self.hll {
            Some(regs) => hll_add(regs, h),
            None => {
                self.exact.insert(h);
                if self.exact.len() > EXACT_DISTINCT {
                    let mut regs = vec![0u8; 1 << HLL_BITS].into_boxed_slice();
                    for h in self.exact.drain() {
                        hll_add(&mut regs, h);
                    }
                    self.exact = Default::default();
                    self.hll = Some(regs);
                }
            }
        }
    }

    pub fn is_exact(&self) -> bool {
        self.hll.is_none()
    }

    pub fn count(&self) -> u64 {
        match &self.hll {
            None => self.exact.len() as u64,
            Some(regs) => {
                let m = regs.len() as f64;
                let sum: f64 = regs.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
                let alpha = 0.7213 / (1.0 + 1.079 / m);
                let est = alpha * m * m / sum;
                let zeros = regs.iter().filter(|&&r| r == 0).count();
                if est <= 2.5 * m && zeros > 0 {
                    (m * (m / zeros as f64).ln()).round() as u64
                } else {
                    est.round() as u64
                }
            }
        }
    }
}

fn hll_add(regs: &mut [u8], h: u128) {
    let h = (h as u64) ^ ((h >> 64) as u64);
    let idx = (h >> (64 - HLL_BITS)) as usize;
    let rest = h << HLL_BITS;
    let rank = (rest.leading_zeros() + 1).min(64 - HLL_BITS + 1) as u8;
    if rank > regs[idx] {
        regs[idx] = rank;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_quantiles_match_numpy_linear() {
        let mut q = Quantiles::default();
        for v in [1.0, 2.0, 3.0, 4.0] {
            q.add(v);
        }
        assert_eq!(q.quantile(0.5), Some(2.5));
        assert_eq!(q.quantile(0.9), Some(1.0 + 0.9 * 3.0));
        assert_eq!(q.quantile(0.0), Some(1.0));
    }

    #[test]
    fn the_digest_is_close() {
        let mut d = TDigest::new(500.0);
        let n = 1_000_000;
        for i in 0..n {
            // A fixed permutation of 0..n.
            d.add(((i as u64 * 7_919) % n as u64) as f64);
        }
        for q in [0.01, 0.25, 0.5, 0.75, 0.99] {
            let got = d.quantile(q).unwrap();
            let want = q * (n - 1) as f64;
            assert!(
                (got - want).abs() / n as f64 <= 0.002,
                "q {q}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn hyperloglog_is_within_a_few_percent() {
        let mut regs = vec![0u8; 1 << HLL_BITS].into_boxed_slice();
        for i in 0u64..500_000 {
            hll_add(&mut regs, xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes()));
        }
        let d = Distinct {
            exact: Default::default(),
            hll: Some(regs),
        };
        let c = d.count() as f64;
        assert!((c - 500_000.0).abs() / 500_000.0 < 0.03, "{c}");
    }

    #[test]
    fn moments() {
        let mut m = Moments::default();
        for v in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            m.add(v);
        }
        assert_eq!(m.mean(), Some(5.0));
        assert_eq!(m.pstdev(), Some(2.0));
        assert!((m.stdev().unwrap() - 2.138089935299395).abs() < 1e-12);
    }
}

/// Hashing for keys that are already hashes (the 128-bit value hashes):
/// the low 64 bits as they are, instead of SipHash over them again.
#[derive(Default, Clone, Copy)]
pub struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

pub type PreHashedSet = std::collections::HashSet<u128, std::hash::BuildHasherDefault<PreHashed>>;

/// A fast hasher for text keys (xxh3).
pub type TextHasher = xxhash_rust::xxh3::Xxh3DefaultBuilder;
