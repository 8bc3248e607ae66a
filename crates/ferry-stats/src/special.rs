//! Special functions: the normal distribution (a port of cephes `ndtr`,
//! `erf` and `erfc` as shipped in scipy's xsf), the chi-square survival
//! function, and the float helpers (`ldexp`, `frexp`) the ports need.

// Constants are copied digit for digit from cephes; some have more digits
// than a double holds.
#![allow(clippy::excessive_precision)]

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// `log(DBL_MAX)`, cephes `MAXLOG`.
const MAXLOG: f64 = 7.097827128933839730962063185871E2;

// The rational approximations of cephes `ndtr.c`, digit for digit.
const NDTR_P: [f64; 9] = [
    2.46196981473530512524E-10,
    5.64189564831068821977E-1,
    7.46321056442269912687E0,
    4.86371970985681366614E1,
    1.96520832956077098242E2,
    5.26445194995477358631E2,
    9.34528527171957607540E2,
    1.02755188689515710272E3,
    5.57535335369399327526E2,
];
const NDTR_Q: [f64; 8] = [
    1.32281951154744992508E1,
    8.67072140885989742329E1,
    3.54937778887819891062E2,
    9.75708501743205489753E2,
    1.82390916687909736289E3,
    2.24633760818710981792E3,
    1.65666309194161350182E3,
    5.57535340817727675546E2,
];
const NDTR_R: [f64; 6] = [
    5.64189583547755073984E-1,
    1.27536670759978104416E0,
    5.01905042251180477414E0,
    6.16021097993053585195E0,
    7.40974269950448939160E0,
    2.97886665372100240670E0,
];
const NDTR_S: [f64; 6] = [
    2.26052863220117276590E0,
    9.39603524938001434673E0,
    1.20489539808096656605E1,
    1.70814450747565897222E1,
    9.60896809063285878198E0,
    3.36907645100081516050E0,
];
const NDTR_T: [f64; 5] = [
    9.60497373987051638749E0,
    9.00260197203842689217E1,
    2.23200534594684319226E3,
    7.00332514112805075473E3,
    5.55923013010394962768E4,
];
const NDTR_U: [f64; 5] = [
    3.35617141647503099647E1,
    5.21357949780152679795E2,
    4.59432382970980127987E3,
    2.26290000613890934246E4,
    4.92673942608635921086E4,
];

/// Polynomial with the coefficients highest degree first.
fn polevl(x: f64, coef: &[f64]) -> f64 {
    let mut it = coef.iter();
    let mut ans = it.next().copied().unwrap_or(0.0);
    for &c in it {
        ans = ans * x + c;
    }
    ans
}

/// As [`polevl`] with an implicit leading coefficient 1.
fn p1evl(x: f64, coef: &[f64]) -> f64 {
    let mut it = coef.iter();
    let mut ans = x + it.next().copied().unwrap_or(0.0);
    for &c in it {
        ans = ans * x + c;
    }
    ans
}

pub(crate) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return -erf(-x);
    }
    if x.abs() > 1.0 {
        return 1.0 - erfc(x);
    }
    let z = x * x;
    x * polevl(z, &NDTR_T) / p1evl(z, &NDTR_U)
}

pub(crate) fn erfc(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    let x = a.abs();
    if x < 1.0 {
        return 1.0 - erf(a);
    }
    let z = -a * a;
    let underflow = if a < 0.0 { 2.0 } else { 0.0 };
    if z < -MAXLOG {
        return underflow;
    }
    let z = z.exp();
    let (p, q) = if x < 8.0 {
        (polevl(x, &NDTR_P), p1evl(x, &NDTR_Q))
    } else {
        (polevl(x, &NDTR_R), p1evl(x, &NDTR_S))
    };
    let mut y = (z * p) / q;
    if a < 0.0 {
        y = 2.0 - y;
    }
    if y != 0.0 { y } else { underflow }
}

/// The standard normal CDF, cephes `ndtr`.
pub(crate) fn ndtr(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    let x = a * FRAC_1_SQRT_2;
    let z = x.abs();
    if z < 1.0 {
        0.5 + 0.5 * erf(x)
    } else {
        let y = 0.5 * erfc(z);
        if x > 0.0 { 1.0 - y } else { y }
    }
}

/// `ln(1 + d) - d`, accurate for small `d` too (`d > -1`).
pub(crate) fn log1pmx(d: f64) -> f64 {
    if !(-0.5..=1.0).contains(&d) {
        return d.ln_1p() - d;
    }
    // ln(1 + d) = 2 atanh(r) with r = d / (2 + d), and 2r - d = -d r.
    let r = d / (2.0 + d);
    let r2 = r * r;
    let mut pow = r * r2;
    let mut series = 0.0;
    let mut k = 3.0;
    loop {
        let term = pow / k;
        series += term;
        if term.abs() <= f64::EPSILON * 1e-3 * series.abs() || k > 400.0 {
            break;
        }
        pow *= r2;
        k += 2.0;
    }
    -d * r + 2.0 * series
}

/// `ln Γ(s + 1) - [(s + ½) ln s - s + ½ ln 2π]`, the remainder of Stirling's
/// formula, for `s` a positive multiple of ½.
fn stirling_remainder(s: f64) -> f64 {
    if s >= 10.0 {
        // Bernoulli terms B_2k / (2k (2k - 1) s^(2k - 1)).
        const C: [f64; 7] = [
            1.0 / 12.0,
            -1.0 / 360.0,
            1.0 / 1260.0,
            -1.0 / 1680.0,
            1.0 / 1188.0,
            -691.0 / 360_360.0,
            1.0 / 156.0,
        ];
        let inv2 = 1.0 / (s * s);
        let mut acc = 0.0;
        for &c in C.iter().rev() {
            acc = acc * inv2 + c;
        }
        return acc / s;
    }
    // Γ(s + 1) exactly enough: a product of at most 20 factors.
    let mut gamma = if s.fract() == 0.0 { 1.0 } else { PI.sqrt() };
    let mut f = if s.fract() == 0.0 { 1.0 } else { 0.5 };
    while f <= s {
        gamma *= f;
        f += 1.0;
    }
    gamma.ln() - ((s + 0.5) * s.ln() - s + 0.5 * (2.0 * PI).ln())
}

/// `ln(y^s e^-y / Γ(s + 1))` for `s > 0` a multiple of ½ and `y > 0`,
/// written as `s (ln r - (r - 1)) - ½ ln(2π s) - remainder(s)` with
/// `r = y / s`, and with `log1pmx` for `r` near 1, so that it keeps full
/// relative accuracy near its peak (`y ≈ s`) even for huge `s`.
fn ln_poisson_term(s: f64, y: f64) -> f64 {
    let r = y / s;
    let core = if (0.5..=2.0).contains(&r) {
        s * log1pmx((y - s) / s)
    } else {
        s * r.ln() - (y - s)
    };
    core - 0.5 * (2.0 * PI * s).ln() - stirling_remainder(s)
}

/// The chi-square survival function `Q(df/2, x/2)` (scipy `chdtrc`).
///
/// For integer and half-integer `a = df/2` the regularized upper incomplete
/// gamma function is a finite sum of positive terms:
/// `Q(m, y) = Σ_{k<m} e^-y y^k / k!` and
/// `Q(m + ½, y) = erfc(√y) + Σ_{k<m} e^-y y^(k+½) / Γ(k + 3/2)`.
/// The largest term is computed in log space with Stirling's formula around
/// its peak and the others from it by ratios, so the result keeps ~1e-14
/// relative accuracy down to the smallest normal doubles, with no
/// cancellation anywhere.
pub(crate) fn chi2_sf(df: u64, x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    let y = x / 2.0;
    let m = df / 2;
    let half = df % 2 == 1;
    let f = if half { 0.5 } else { 0.0 };
    let head = if half { erfc(y.sqrt()) } else { 0.0 };
    if m == 0 {
        return head;
    }
    // Terms t_k for s = k + f, k in [0, m); ratio t_k / t_(k-1) = y / s.
    let last = (m - 1) as f64;
    let peak = (y - f).floor().clamp(0.0, last);
    let s_peak = peak + f;
    let ln_peak = if s_peak == 0.0 {
        -y
    } else {
        ln_poisson_term(s_peak, y)
    };
    // Sum t_k / t_peak outward from the peak until the terms are negligible.
    let tiny = f64::EPSILON * 1e-3;
    let mut rel = 1.0;
    // Downward: t_(k-1) = t_k * s_k / y.
    let mut t = 1.0;
    let mut k = peak;
    while k > 0.0 {
        t *= (k + f) / y;
        rel += t;
        if t < tiny * rel {
            break;
        }
        k -= 1.0;
    }
    // Upward: t_(k+1) = t_k * y / s_(k+1).
    let mut t = 1.0;
    let mut k = peak;
    while k < last {
        k += 1.0;
        t *= y / (k + f);
        rel += t;
        if t < tiny * rel {
            break;
        }
    }
    (ln_peak + rel.ln()).exp() + head
}

/// `x * 2^n` rounded once (musl's `scalbn`).
pub(crate) fn ldexp(x: f64, n: i64) -> f64 {
    let two_1023 = f64::from_bits(0x7fe0_0000_0000_0000);
    // 2^-1022 * 2^53: keeps the scaling exact until the final multiply.
    let two_m969 = f64::from_bits(0x0360_0000_0000_0000);
    let mut y = x;
    let mut n = n;
    if n > 1023 {
        y *= two_1023;
        n -= 1023;
        if n > 1023 {
            y *= two_1023;
            n -= 1023;
            n = n.min(1023);
        }
    } else if n < -1022 {
        y *= two_m969;
        n += 1022 - 53;
        if n < -1022 {
            y *= two_m969;
            n += 1022 - 53;
            n = n.max(-1022);
        }
    }
    // In range now: -1022 <= n <= 1023.
    let bits = u64::try_from(0x3ff + n).unwrap_or(0x3ff) << 52;
    y * f64::from_bits(bits)
}

/// `(m, e)` with `x = m * 2^e` and `0.5 <= |m| < 1` (C `frexp`); zero,
/// infinities and NaN come back unchanged with `e = 0`.
pub(crate) fn frexp(x: f64) -> (f64, i64) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64;
    if exp == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(x * f64::from_bits(0x43f0_0000_0000_0000)); // 2^64
        return (m, e - 64);
    }
    let m = f64::from_bits((bits & !(0x7ff << 52)) | (0x3fe << 52));
    (m, exp - 0x3fe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldexp_and_frexp_round_trip() {
        for &x in &[1.0, -3.5, 1e-310, 6.02e23, f64::MAX, f64::MIN_POSITIVE] {
            let (m, e) = frexp(x);
            assert!((0.5..1.0).contains(&m.abs()), "{x}: {m}");
            assert_eq!(ldexp(m, e), x);
        }
        assert_eq!(ldexp(1.0, -1074), f64::from_bits(1));
        assert_eq!(ldexp(1.0, -1080), 0.0);
        assert_eq!(ldexp(1.0, 1024), f64::INFINITY);
        assert_eq!(ldexp(0.75, 2), 3.0);
    }

    #[test]
    fn log1pmx_matches_the_direct_formula_where_that_is_accurate() {
        for &d in &[-0.4, -0.1, 0.3, 0.9] {
            let direct = f64::ln_1p(d) - d;
            assert!((log1pmx(d) - direct).abs() < 1e-15, "{d}");
        }
        let d: f64 = 1e-8;
        assert!((log1pmx(d) - (-d * d / 2.0 + d * d * d / 3.0)).abs() < 1e-30);
    }

    #[test]
    fn chi2_sf_closed_forms() {
        // df = 2: e^(-x/2).
        for &x in &[0.1, 1.0, 10.0, 300.0, 1400.0] {
            let want = (-x / 2.0_f64).exp();
            let got = chi2_sf(2, x);
            assert!(
                ((got - want) / want).abs() < 1e-14,
                "x={x}: {got} vs {want}"
            );
        }
        // df = 1: erfc(sqrt(x/2)).
        assert_eq!(chi2_sf(1, 3.0), erfc(1.5_f64.sqrt()));
        assert_eq!(chi2_sf(5, 0.0), 1.0);
        assert_eq!(chi2_sf(5, f64::INFINITY), 0.0);
    }
}
