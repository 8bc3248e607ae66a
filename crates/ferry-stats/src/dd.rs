//! Double-double arithmetic (a value `hi + lo` with about 106 bits), the
//! subset of the qd package that scipy's `smirnov` uses, with the same
//! operation order so that results round alike.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::special::{frexp as frexp_f64, ldexp as ldexp_f64};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Dd {
    pub hi: f64,
    pub lo: f64,
}

/// `fl(a + b)` and its error, assuming `|a| >= |b|`.
fn quick_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let c = s - a;
    (s, b - c)
}

/// `fl(a + b)` and its error.
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let c = s - a;
    let d = b - c;
    let e = s - c;
    (s, (a - e) + d)
}

/// `fl(a * b)` and its error.
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

impl Dd {
    pub(crate) const fn new(hi: f64) -> Dd {
        Dd { hi, lo: 0.0 }
    }

    pub(crate) fn is_zero(self) -> bool {
        self.hi == 0.0 && self.lo == 0.0
    }

    pub(crate) fn is_finite(self) -> bool {
        self.hi.is_finite()
    }

    pub(crate) fn floor(self) -> Dd {
        let hi = self.hi.floor();
        if hi == self.hi {
            let (hi, lo) = quick_two_sum(hi, self.lo.floor());
            Dd { hi, lo }
        } else {
            Dd { hi, lo: 0.0 }
        }
    }

    /// `self * 2^e`.
    pub(crate) fn ldexp(self, e: i64) -> Dd {
        Dd {
            hi: ldexp_f64(self.hi, e),
            lo: ldexp_f64(self.lo, e),
        }
    }

    /// `(b, e)` with `b * 2^e == self` and `0.5 <= |b.hi| < 1` (or
    /// `|b.hi| == 1` with `b.lo` of the other sign).
    pub(crate) fn frexp(self) -> (Dd, i64) {
        let (mut man, mut e) = frexp_f64(self.hi);
        let mut lo = ldexp_f64(self.lo, -e);
        if man.abs() == 0.5 && man * lo < 0.0 {
            man *= 2.0;
            lo *= 2.0;
            e -= 1;
        }
        (Dd { hi: man, lo }, e)
    }
}

impl Neg for Dd {
    type Output = Dd;
    fn neg(self) -> Dd {
        Dd {
            hi: -self.hi,
            lo: -self.lo,
        }
    }
}

impl Add for Dd {
    type Output = Dd;
    fn add(self, rhs: Dd) -> Dd {
        let (s1, s2) = two_sum(self.hi, rhs.hi);
        let (t1, t2) = two_sum(self.lo, rhs.lo);
        let (s1, s2) = quick_two_sum(s1, s2 + t1);
        let (hi, lo) = quick_two_sum(s1, s2 + t2);
        Dd { hi, lo }
    }
}

impl Add<f64> for Dd {
    type Output = Dd;
    fn add(self, rhs: f64) -> Dd {
        let (s1, s2) = two_sum(self.hi, rhs);
        let (hi, lo) = quick_two_sum(s1, s2 + self.lo);
        Dd { hi, lo }
    }
}

impl Add<Dd> for f64 {
    type Output = Dd;
    fn add(self, rhs: Dd) -> Dd {
        let (s1, s2) = two_sum(self, rhs.hi);
        let (hi, lo) = quick_two_sum(s1, s2 + rhs.lo);
        Dd { hi, lo }
    }
}

impl Sub for Dd {
    type Output = Dd;
    fn sub(self, rhs: Dd) -> Dd {
        self + (-rhs)
    }
}

impl Sub<f64> for Dd {
    type Output = Dd;
    fn sub(self, rhs: f64) -> Dd {
        let (s1, s2) = two_sum(self.hi, -rhs);
        let (hi, lo) = quick_two_sum(s1, s2 + self.lo);
        Dd { hi, lo }
    }
}

impl Sub<Dd> for f64 {
    type Output = Dd;
    fn sub(self, rhs: Dd) -> Dd {
        let (s1, s2) = two_sum(self, -rhs.hi);
        let (hi, lo) = quick_two_sum(s1, s2 - rhs.lo);
        Dd { hi, lo }
    }
}

impl Mul for Dd {
    type Output = Dd;
    fn mul(self, rhs: Dd) -> Dd {
        let (p1, p2) = two_prod(self.hi, rhs.hi);
        let p2 = p2 + (self.hi * rhs.lo + self.lo * rhs.hi);
        let (hi, lo) = quick_two_sum(p1, p2);
        Dd { hi, lo }
    }
}

impl Mul<f64> for Dd {
    type Output = Dd;
    fn mul(self, rhs: f64) -> Dd {
        let (p1, e1) = two_prod(self.hi, rhs);
        let (p2, e2) = two_prod(self.lo, rhs);
        let (hi, lo) = quick_two_sum(p1, e2 + p2 + e1);
        Dd { hi, lo }
    }
}

impl Mul<Dd> for f64 {
    type Output = Dd;
    fn mul(self, rhs: Dd) -> Dd {
        let (p1, e1) = two_prod(self, rhs.hi);
        let (p2, e2) = two_prod(self, rhs.lo);
        let (hi, lo) = quick_two_sum(p1, e2 + p2 + e1);
        Dd { hi, lo }
    }
}

impl Div for Dd {
    type Output = Dd;
    fn div(self, rhs: Dd) -> Dd {
        let q1 = self.hi / rhs.hi;
        let r = self - rhs * q1;
        let q2 = r.hi / rhs.hi;
        let r = r - rhs * q2;
        let q3 = r.hi / rhs.hi;
        let (q1, q2) = quick_two_sum(q1, q2);
        Dd { hi: q1, lo: q2 } + q3
    }
}

impl Div<f64> for Dd {
    type Output = Dd;
    fn div(self, rhs: f64) -> Dd {
        self / Dd::new(rhs)
    }
}

impl Div<Dd> for f64 {
    type Output = Dd;
    fn div(self, rhs: Dd) -> Dd {
        Dd::new(self) / rhs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_more_than_double_precision() {
        let third = Dd::new(1.0) / 3.0;
        let back = third * 3.0 - 1.0;
        assert!(back.hi.abs() < 1e-31, "{back:?}");
        let x = Dd::new(1.0) + 1e-20;
        assert_eq!(x.hi, 1.0);
        assert_eq!(x.lo, 1e-20);
        assert_eq!((x - 1.0).hi, 1e-20);
    }

    #[test]
    fn floor_frexp_ldexp() {
        let x = Dd {
            hi: 5.0,
            lo: -1e-20,
        };
        assert_eq!(x.floor(), Dd { hi: 4.0, lo: 0.0 });
        let (m, e) = Dd::new(12.0).frexp();
        assert_eq!((m.hi, e), (0.75, 4));
        assert_eq!(m.ldexp(e).hi, 12.0);
    }
}
