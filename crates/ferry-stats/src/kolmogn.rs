//! The survival function of the two-sided one-sample Kolmogorov-Smirnov
//! statistic `D_n`, `Pr(D_n >= x)` (scipy's `kstwo.sf(x, n)`): a port of
//! `_kolmogn` from scipy's `stats/_ksstats.py`, with every method it picks
//! between following Simard and L'Ecuyer (2011):
//!
//! * Ruben-Gambino closed forms for `n x <= 1` and `n x >= n - 1`,
//! * `2 * smirnov(n, x)` (exact for `x >= 1/2`, Miller's approximation below),
//! * the Durbin matrix algorithm as sped up by Marsaglia, Tsang and Wang,
//! * Pomeranz's recursion,
//! * Pelz and Good's asymptotic series.

use std::f64::consts::PI;

use crate::smirnov::smirnov_sf;
use crate::special::ldexp;

const E128: i64 = 128;

fn ep128() -> f64 {
    ldexp(1.0, E128)
}

fn em128() -> f64 {
    ldexp(1.0, -E128)
}

/// `B_2j / (2j (2j - 1))` for `j = 8, ..., 1`: Stirling's series.
#[allow(clippy::excessive_precision)] // digit for digit from scipy
const STIRLING_COEFFS: [f64; 8] = [
    -2.955065359477124183e-2,
    6.4102564102564102564e-3,
    -1.9175269175269175269e-3,
    8.4175084175084175084e-4,
    -5.952380952380952381e-4,
    7.9365079365079365079e-4,
    -2.7777777777777777778e-3,
    8.3333333333333333333e-2,
];

fn polyval(coeffs: &[f64], x: f64) -> f64 {
    coeffs.iter().fold(0.0, |acc, &c| acc * x + c)
}

/// `ln(n! / n^n)` by Stirling's formula with `n ln n` removed up front.
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    let rn = 1.0 / n;
    n.ln() / 2.0 - n + (2.0 * PI).ln() / 2.0 + rn * polyval(&STIRLING_COEFFS, rn / n)
}

fn clip(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

/// A square matrix, row-major.
struct Matrix {
    m: usize,
    a: Vec<f64>,
}

impl Matrix {
    fn zeros(m: usize) -> Matrix {
        Matrix {
            m,
            a: vec![0.0; m * m],
        }
    }

    fn identity(m: usize) -> Matrix {
        let mut id = Matrix::zeros(m);
        for i in 0..m {
            id.a[i * m + i] = 1.0;
        }
        id
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.m + j]
    }

    fn set(&mut self, i: usize, j: usize, v: f64) {
        self.a[i * self.m + j] = v;
    }

    fn mul(&self, other: &Matrix) -> Matrix {
        let m = self.m;
        let mut out = Matrix::zeros(m);
        for i in 0..m {
            for k in 0..m {
                let aik = self.a[i * m + k];
                if aik == 0.0 {
                    continue;
                }
                let row = &other.a[k * m..(k + 1) * m];
                let dst = &mut out.a[i * m..(i + 1) * m];
                for (d, &b) in dst.iter_mut().zip(row) {
                    *d += aik * b;
                }
            }
        }
        out
    }
}

/// `Pr(D_n <= d)` by the Durbin matrix algorithm (Marsaglia, Tsang, Wang).
fn dmtw_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    // d = (k - h) / n with k a positive integer and 0 <= h < 1.
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;

    // v is the first column (and, reversed, the last row) of H.
    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powf(j as f64)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let mf = m as f64;
    let tt = (2.0 * h - 1.0).max(0.0).powf(mf) - 2.0 * h.powf(mf);
    v[m - 1] = (1.0 + tt) * fac;

    let mut hm = Matrix::zeros(m);
    for i in 1..m {
        for (row, &wv) in (i - 1..m).zip(&w) {
            hm.set(row, i, wv);
        }
    }
    for (row, &vv) in v.iter().enumerate() {
        hm.set(row, 0, vv);
    }
    for (col, &vv) in v.iter().rev().enumerate() {
        hm.set(m - 1, col, vv);
    }

    // The (k, k) entry of H^n, with the scaling kept as a binary exponent.
    let mut hpwr = Matrix::identity(m);
    let mut nn = n;
    let mut expnt: i64 = 0;
    let mut hexpnt: i64 = 0;
    while nn > 0 {
        if nn % 2 == 1 {
            hpwr = hpwr.mul(&hm);
            expnt += hexpnt;
        }
        hm = hm.mul(&hm);
        hexpnt *= 2;
        if hm.at(k - 1, k - 1).abs() > ep128() {
            for x in &mut hm.a {
                *x /= ep128();
            }
            hexpnt += E128;
        }
        nn /= 2;
    }
    let mut p = hpwr.at(k - 1, k - 1);

    // Multiply by n! / n^n.
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < em128() {
            p *= ep128();
            expnt -= E128;
        }
    }
    if expnt != 0 {
        p = ldexp(p, expnt);
    }
    clip(p)
}

/// The range of non-zero entries of row `i` in Pomeranz's recursion.
fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (half, odd) = ((i + 1) / 2, (i + 1) % 2);
        if odd == 0 {
            if half == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (half - 1 - ll - roundf - 1, half + ll - 1 + ceilf - 1)
            }
        } else {
            (half - 1 - ll - 1, half + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

fn idx(i: i64) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

/// `Pr(D_n <= x)` by Pomeranz's recursion (used for `n <= 140`).
fn pomeranz_cdf(n: u64, x: f64) -> f64 {
    let ni = n as i64;
    let nf = n as f64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = idx(2 * (ll + 1));
    // (g/n)^m/m!, (2g/n)^m/m!, ((1-2g)/n)^m/m!: Poisson probabilities
    // without their normalising factor.
    let mut gpower = vec![1.0; npwrs];
    let mut twogpower = vec![1.0; npwrs];
    let mut onem2gpower = vec![1.0; npwrs];
    let (g_n, two_g_n, one_m2g_n) = (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        let mf = m as f64;
        gpower[m] = gpower[m - 1] * g_n / mf;
        twogpower[m] = twogpower[m - 1] * two_g_n / mf;
        onem2gpower[m] = onem2gpower[m - 1] * one_m2g_n / mf;
    }

    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0_i64, 0_i64);
    let mut expnt: i64 = 0;
    let (mut j1, _) = pomeranz_j1j2(0, ni, ll, ceilf, roundf);
    for i in 1..(2 * ni + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.fill(0.0);
        let (nj1, j2) = pomeranz_j1j2(i, ni, ll, ceilf, roundf);
        j1 = nj1;
        let pwrs = if i == 1 || i == 2 * ni + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            // np.convolve(V0[k1 - V0s ..][..ln2], pwrs[..ln2]), entries
            // conv_start .. conv_start + conv_len.
            let lo = idx(k1 - v0s).min(npwrs);
            let a = &v0[lo..(lo + idx(ln2)).min(npwrs)];
            let b = &pwrs[..idx(ln2).min(npwrs)];
            let conv_start = j1 - k1;
            let conv_len = j2 - j1 + 1;
            for out in 0..conv_len.max(0) {
                let tpos = conv_start + out;
                let mut acc = 0.0;
                for (ai, &av) in a.iter().enumerate() {
                    let bi = tpos - ai as i64;
                    if bi < 0 {
                        break;
                    }
                    if let Some(&bv) = b.get(idx(bi)) {
                        acc += av * bv;
                    }
                }
                if let Some(slot) = v1.get_mut(idx(out)) {
                    *slot = acc;
                }
            }
            let max = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < max && max < em128() {
                for x in &mut v1 {
                    *x *= ep128();
                }
                expnt -= E128;
            }
            v1s = v0s + j1 - k1;
        }
    }

    // Multiply by n!.
    let mut ans = v1.get(idx(ni - v1s)).copied().unwrap_or(0.0);
    for m in 1..=n {
        if ans.abs() > ep128() {
            ans *= em128();
            expnt += E128;
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans = ldexp(ans, expnt);
    }
    clip(ans)
}

/// The Pelz-Good approximation of `Pr(D_n <= x)`.
fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let pi2 = PI.powf(2.0);
    let pi4 = PI.powf(4.0);
    let pi6 = PI.powf(6.0);
    let sqrt2pi = (2.0 * PI).sqrt();

    let z = nf.sqrt() * x;
    let (z2, z3, z4, z6) = (z.powf(2.0), z.powf(3.0), z.powf(4.0), z.powf(6.0));
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();

    // Coefficients of the terms of the sums for K1, K2 and K3.
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powf(8.0);

    // Horner's scheme for sum c_i q^(i^2) over odd i.
    let mut kk = [0.0_f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for k in (1..=maxk).rev() {
        let m = (2 * k - 1) as f64;
        let (m2, m4, m6) = (m * m, m * m * m * m, m * m * m * m * m * m);
        let qpower = q.powf((8 * k) as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (acc, c) in kk.iter_mut().zip(coeffs) {
            *acc *= qpower;
            *acc += c;
        }
    }
    let den = [z, 6.0 * z4, 72.0 * z.powf(7.0), 6480.0 * z.powf(10.0)];
    for (acc, d) in kk.iter_mut().zip(den) {
        *acc *= q;
        *acc *= sqrt2pi;
        *acc /= d;
    }

    // The other sum, over all integers k, for K2 and K3.
    let q = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3.0_f64.sqrt() * z;
    let mut k2terms = Vec::new();
    let mut k3terms = Vec::new();
    for k in (1..=maxk).rev() {
        let ksq = (k * k) as f64;
        let kspi = PI * k as f64;
        let qp = q.powf(ksq);
        k2terms.push(ksq * qp);
        k3terms.push((sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp);
    }
    let k2extra = crate::sum::np_sum(&k2terms) * (pi2 * sqrt2pi / (-36.0 * z3));
    kk[2] += k2extra;
    let k3extra = crate::sum::np_sum(&k3terms) * (pi2 * sqrt2pi / (216.0 * z6));
    kk[3] += k3extra;
    for (i, acc) in kk.iter_mut().enumerate() {
        *acc /= nf.powf(i as f64 / 2.0);
    }
    kk.iter().fold(0.0, |s, &t| s + t)
}

/// `Pr(D_n >= x)`, scipy's `kstwo.sf(x, n)` (`_kolmogn(n, x, cdf=False)`).
pub(crate) fn kolmogn_sf(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        // Ruben-Gambino: 1/2n <= x <= 1/n.
        if t <= 0.5 {
            return 1.0;
        }
        let prob = if n <= 140 {
            (1..=n).fold(1.0, |p, i| p * ((i as f64 * (1.0 / nf)) * (2.0 * t - 1.0)))
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip(1.0 - prob);
    }
    if t >= nf - 1.0 {
        // Ruben-Gambino.
        return clip(2.0 * (1.0 - x).powf(nf));
    }
    let ni = n as i64;
    if x >= 0.5 {
        // Exact: twice the one-sided probability.
        return clip(2.0 * smirnov_sf(ni, x));
    }
    let nxsquared = t * x;
    if n <= 140 {
        if nxsquared <= 0.754693 {
            return clip(1.0 - dmtw_cdf(n, x));
        }
        if nxsquared <= 4.0 {
            return clip(1.0 - pomeranz_cdf(n, x));
        }
        // Miller's approximation: 2 * smirnov.
        return clip(2.0 * smirnov_sf(ni, x));
    }
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return clip(2.0 * smirnov_sf(ni, x));
    }
    let cdf = if nxsquared >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        dmtw_cdf(n, x)
    } else {
        pelz_good_cdf(n, x)
    };
    clip(1.0 - cdf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert_eq!(kolmogn_sf(10, 1.0), 0.0);
        assert_eq!(kolmogn_sf(10, 0.0), 1.0);
        assert_eq!(kolmogn_sf(10, 0.04), 1.0);
        assert!(kolmogn_sf(0, 0.3).is_nan());
        // n = 1: D_1 = max(U, 1 - U) >= x with probability 2 (1 - x).
        assert!((kolmogn_sf(1, 0.75) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn methods_agree_where_they_overlap() {
        // Durbin's matrix and Pomeranz's recursion compute the same CDF.
        for &(n, x) in &[(20_u64, 0.15), (50, 0.1), (100, 0.12), (140, 0.07)] {
            let a = dmtw_cdf(n, x);
            let b = pomeranz_cdf(n, x);
            assert!(((a - b) / b).abs() < 1e-11, "n={n} x={x}: {a} vs {b}");
        }
    }
}
