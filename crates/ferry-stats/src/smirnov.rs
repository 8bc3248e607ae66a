//! The one-sided Kolmogorov-Smirnov survival function `Pr(D_n^+ >= x)`, a
//! port of the `smirnov` function scipy ships (xsf `cephes/kolmogorov.h`,
//! after van Mulbregt): the Birnbaum-Tingey sum evaluated in double-double
//! arithmetic, from whichever end needs fewer terms. Only the survival
//! function is computed; the density that scipy carries along is not needed.

use std::f64::consts::LN_2;

use crate::dd::Dd;

/// `log(2^-1075)`, cephes `MINLOG`.
#[allow(clippy::excessive_precision)] // digit for digit from cephes
const MINLOG: f64 = -7.451332191019412076235245305675398106812E2;
/// Above this `n` scipy switches to an approximation.
const SMIRNOV_MAX_COMPUTE_N: i64 = 1_000_000;
const SM_UPPER_MAX_TERMS: i64 = 3;
const SM_UPPERSUM_MIN_N: i64 = 10;
const SM_MAX_EXPONENT: i64 = 960;

/// `floor(n * x)` and the fractional part, computed exactly; returns
/// `(alpha, floor, n * x)`.
fn mod_nx(n: i64, x: f64) -> (f64, i64, f64) {
    let nx = (n as f64) * Dd::new(x);
    let nx_floor = nx.floor();
    let alpha_d = nx - nx_floor;
    let mut alpha = alpha_d.hi;
    let mut floor = nx_floor.hi as i64;
    if alpha == 1.0 {
        floor += 1;
        alpha = 0.0;
    }
    (alpha, floor, nx.hi)
}

/// The binomial coefficient kept as mantissa and exponent:
/// `C(n, j + 1) = C(n, j) * (n - j) / (j + 1)`.
fn update_binomial(man: &mut Dd, expt: &mut i64, n: i64, j: i64) {
    let rat = Dd::new((n - j) as f64) / (j as f64 + 1.0);
    let (m, e) = (*man * rat).frexp();
    *expt += e;
    *man = m;
}

/// `a^m`, using `pow` on the high part and a correction for the low part.
fn pow_d(a: Dd, m: i64) -> Dd {
    if m <= 0 {
        if m == 0 {
            return Dd::new(1.0);
        }
        return 1.0 / pow_d(a, -m);
    }
    if a.is_zero() {
        return Dd::new(0.0);
    }
    let mf = m as f64;
    let ans = a.hi.powf(mf);
    let r = a.lo / a.hi;
    let mut adj = mf * r;
    if adj.abs() > 1e-8 {
        if adj.abs() < 1e-4 {
            // The first two terms of the Taylor series of (1 + r)^m.
            adj += (mf * r) * ((mf - 1.0) / 2.0 * r);
        } else {
            adj = (mf * r.ln_1p()).exp_m1();
        }
    }
    Dd::new(ans) + ans * adj
}

/// `(a + b)^m` rounded to a double.
fn pow2(a: f64, b: f64, m: i64) -> f64 {
    pow_d(Dd::new(a) + b, m).hi
}

/// scipy's `nextPowerOf2`, used to split a large exponentiation.
fn next_power_of_2(x: f64) -> f64 {
    let q = crate::special::ldexp(x, 1 - i64::from(f64::MANTISSA_DIGITS));
    let l = (q + x).abs();
    if l == 0.0 {
        return x.abs();
    }
    let li = l as i32;
    if f64::from(li) == l { f64::from(li) } else { l }
}

/// `a^m` as a mantissa and a binary exponent, so that it cannot underflow.
fn pow2_scaled_d(a: Dd, m: i64) -> (Dd, i64) {
    if m <= 0 {
        if m == 0 {
            return (Dd::new(1.0), 0);
        }
        let (ans, e1) = pow2_scaled_d(a, -m);
        let (ans, e2) = (1.0 / ans).frexp();
        return (ans, -e1 + e2);
    }
    let (y, y_e) = a.frexp();
    if m == 1 {
        return (y, y_e);
    }
    let mut max_expt = SM_MAX_EXPONENT;
    let mf = m as f64;
    if mf * (y.hi - 1.0) / y.hi < -(SM_MAX_EXPONENT as f64) * LN_2 {
        // Now do it carefully, with a logarithm.
        let lg2y = y.hi.ln() / LN_2;
        let lg_ans = mf * lg2y;
        if lg_ans <= -(SM_MAX_EXPONENT as f64) {
            max_expt = (next_power_of_2(-(SM_MAX_EXPONENT as f64) / lg2y + 1.0) / 2.0) as i64;
        }
    }
    if m <= max_expt {
        let (ans, mut ans_e) = pow_d(y, m).frexp();
        ans_e += m * y_e;
        return (ans, ans_e);
    }
    // y^m = (y^max_expt)^q * y^r
    let q = m / max_expt;
    let r = m % max_expt;
    let (y2r, y2r_e) = pow2_scaled_d(y, r);
    let (y2m, y2m_e) = pow2_scaled_d(y, max_expt);
    let (y2mq, mut y2mq_e) = pow2_scaled_d(y2m, q);
    let (ans, mut ans_e) = (y2r * y2mq).frexp();
    y2mq_e += y2m_e * q;
    ans_e += y2mq_e + y2r_e;
    ans_e += m * y_e;
    (ans, ans_e)
}

/// `((a + b) / (c + d))^m`.
fn pow4_d(a: f64, b: f64, c: f64, d: f64, m: i64) -> Dd {
    if m <= 0 {
        if m == 0 {
            return Dd::new(1.0);
        }
        return pow4_d(c, d, a, b, -m);
    }
    let num = Dd::new(a) + b;
    let den = Dd::new(c) + d;
    if num.is_zero() {
        return if den.is_zero() {
            Dd::new(f64::NAN)
        } else {
            Dd::new(0.0)
        };
    }
    if den.is_zero() {
        return Dd::new(if num.hi < 0.0 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    pow_d(num / den, m)
}

/// One term of the sum: `C(n, v) (1 - x - v/n)^(n - v) (x + v/n)^(v - 1)`,
/// with the binomial coefficient given as mantissa and exponent.
fn compute_av(n: i64, x: f64, v: i64, c_man: Dd, c_expt: i64) -> Dd {
    let nf = n as f64;
    let t2x = Dd::new((n - v) as f64) / nf - x;
    let (t2, t2_e) = pow2_scaled_d(t2x, n - v);
    let t1x = Dd::new(v as f64) / nf + x;
    let (t1, t1_e) = pow2_scaled_d(t1x, v - 1);
    let ans = t1 * t2 * c_man;
    ans.ldexp(c_expt + t1_e + t2_e)
}

/// `smirnov(n, x)`: `Pr(D_n^+ >= x)` for `n >= 1` and `0 <= x <= 1`.
pub(crate) fn smirnov_sf(n: i64, x: f64) -> f64 {
    if !(n > 0 && (0.0..=1.0).contains(&x)) {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let (alpha, nxfl, _nx) = mod_nx(n, x);
    let mut n1mxfl = n - nxfl - i64::from(alpha != 0.0);
    let mut n1mxceil = n - nxfl;
    // When alpha is 0 the last term belongs to neither sum.
    if alpha == 0.0 {
        n1mxfl -= 1;
        n1mxceil += 1;
    }
    // x <= 1/n
    if nxfl == 0 || (nxfl == 1 && alpha == 0.0) {
        let t = pow2(1.0, x, n - 1);
        return 1.0 - x * t;
    }
    // The survival function underflows.
    if -2.0 * nf * x * x < MINLOG {
        return 0.0;
    }
    // x >= 1 - 1/n
    if nxfl >= n - 1 {
        return pow2(1.0, -x, n);
    }
    if n > SMIRNOV_MAX_COMPUTE_N {
        let logp = -(6.0 * nf * x + 1.0).powf(2.0) / 18.0 / nf;
        return if logp < -LN_2 {
            logp.exp()
        } else {
            1.0 - (-logp.exp_m1())
        };
    }
    // Use the upper sum when it has few terms; otherwise the lower one.
    let n_upper_terms = n - n1mxceil + 1;
    let use_upper = (n_upper_terms <= 1 && x < 0.5)
        || (n >= SM_UPPERSUM_MIN_N && n_upper_terms <= SM_UPPER_MAX_TERMS && x <= 0.5 / nf.sqrt());

    let (start, step, n_terms, first) = if use_upper {
        (n, -1, n - n1mxceil + 1, pow4_d(1.0, x, 1.0, 0.0, n - 1))
    } else {
        let t2 = pow4_d(1.0, -x, 1.0, 0.0, n);
        (0, 1, n1mxfl + 1, t2 / x)
    };
    let vmid = n / 2;
    let mut c_man = Dd::new(1.0);
    let mut c_expt = 0;
    let mut sum = Dd::new(0.0) + first;
    update_binomial(&mut c_man, &mut c_expt, n, 0);
    for j in 1..n_terms {
        let v = start + j * step;
        let aj = compute_av(n, x, v, c_man, c_expt);
        if aj.is_finite() && !aj.is_zero() {
            sum = sum + aj;
        }
        // Safe to stop early?
        if !aj.is_zero() {
            if (4.0 * (n_terms - j) as f64 * aj.hi.abs()) < (f64::EPSILON * sum.hi)
                && j != n_terms - 1
            {
                break;
            }
        } else if j > vmid {
            break;
        }
        update_binomial(&mut c_man, &mut c_expt, n, j);
    }
    let prob = (x * sum).hi;
    let sf = if step < 0 { 1.0 - prob } else { prob };
    sf.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_cases() {
        assert_eq!(smirnov_sf(1, 0.3), 0.7);
        assert_eq!(smirnov_sf(5, 0.0), 1.0);
        assert_eq!(smirnov_sf(5, 1.0), 0.0);
        assert!(smirnov_sf(0, 0.5).is_nan());
        // Pr(D_n^+ >= x) = (1 - x)^n for x >= 1 - 1/n.
        let want = 0.1_f64.powi(3);
        assert!((smirnov_sf(3, 0.9) - want).abs() < 1e-17);
    }
}
