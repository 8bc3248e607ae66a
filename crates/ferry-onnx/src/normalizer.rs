//! `Normalizer` (ai.onnx.ml) evaluated as onnxruntime evaluates it
//! (`ml/normalizer.cc`), row by row of a `[N, C]` (or `[C]`) input, in
//! float32:
//!
//! - MAX divides by the row's largest *value* (not its largest magnitude: a
//!   row of negatives flips sign; NaNs are skipped when looking for it);
//! - L1 divides by the sum of magnitudes;
//! - L2 gives `±sqrt(x² / Σx²)`, the sign of `x`;
//!
//! and a row whose divisor is 0 is copied as it is. tract has a `Normalizer`
//! too, but it takes MAX as the largest magnitude and clamps divisors at
//! 1e-12, so this one replaces it.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Norm {
    Max,
    L1,
    L2,
}

impl Norm {
    pub fn parse(s: &str) -> Result<Norm, String> {
        match s {
            "MAX" => Ok(Norm::Max),
            "L1" => Ok(Norm::L1),
            "L2" => Ok(Norm::L2),
            other => Err(format!("unknown norm `{other}` (expected MAX, L1 or L2)")),
        }
    }
}

/// Values a `Normalizer` takes, as onnxruntime widens them.
pub trait NormInput: Copy {
    fn to_f32(self) -> f32;
    /// `|x|` in the input's type, then as float32.
    fn abs_f32(self) -> f32;
    /// `x * x` in the input's type, then as float32.
    fn square_f32(self) -> f32;
    fn is_negative(self) -> bool;
}

impl NormInput for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn abs_f32(self) -> f32 {
        self.abs()
    }
    fn square_f32(self) -> f32 {
        self * self
    }
    fn is_negative(self) -> bool {
        self < 0.0
    }
}

impl NormInput for f64 {
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn abs_f32(self) -> f32 {
        self.abs() as f32
    }
    fn square_f32(self) -> f32 {
        (self * self) as f32
    }
    fn is_negative(self) -> bool {
        self < 0.0
    }
}

/// The integer inputs: one body for both widths.
macro_rules! int_norm_input {
    ($($t:ty),*) => {$(
        impl NormInput for $t {
            fn to_f32(self) -> f32 {
                self as f32
            }
            fn abs_f32(self) -> f32 {
                self.wrapping_abs() as f32
            }
            fn square_f32(self) -> f32 {
                self.wrapping_mul(self) as f32
            }
            fn is_negative(self) -> bool {
                self < 0
            }
        }
    )*};
}
int_norm_input!(i64, i32);

/// Normalizes rows of `width` values of `x` into `out` (as long as `x`).
pub fn normalize<T: NormInput>(norm: Norm, x: &[T], width: usize, out: &mut [f32]) {
    if width == 0 {
        return;
    }
    for (row, out) in x.chunks(width).zip(out.chunks_mut(width)) {
        match norm {
            Norm::Max => {
                let mut max = f32::MIN;
                for &v in row {
                    let v = v.to_f32();
                    if max < v {
                        max = v;
                    }
                }
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = if max != 0.0 {
                        v.to_f32() / max
                    } else {
                        v.to_f32()
                    };
                }
            }
            Norm::L1 => {
                let mut sum = 0f32;
                for &v in row {
                    sum += v.abs_f32();
                }
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = if sum != 0.0 {
                        v.to_f32() / sum
                    } else {
                        v.to_f32()
                    };
                }
            }
            Norm::L2 => {
                let mut sum = 0f32;
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = v.square_f32();
                    sum += *o;
                }
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = if sum != 0.0 {
                        let r = (*o / sum).sqrt();
                        if v.is_negative() { -r } else { r }
                    } else {
                        v.to_f32()
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T: NormInput>(norm: Norm, x: &[T], width: usize) -> Vec<f32> {
        let mut out = vec![f32::NAN; x.len()];
        normalize(norm, x, width, &mut out);
        out
    }

    #[test]
    fn max_is_the_largest_value_not_magnitude() {
        assert_eq!(
            run(Norm::Max, &[1f32, -2.0, 4.0, -1.0, -2.0, -4.0], 3),
            [0.25, -0.5, 1.0, 1.0, 2.0, 4.0]
        );
        assert_eq!(run(Norm::Max, &[f32::NAN, 2.0], 2)[1], 1.0);
    }

    #[test]
    fn l1_and_l2_and_zero_rows() {
        assert_eq!(
            run(Norm::L1, &[1f32, -3.0, 0.0, 0.0], 2),
            [0.25, -0.75, 0.0, 0.0]
        );
        assert_eq!(run(Norm::L2, &[3i64, -4, 0, 0], 2), [0.6, -0.8, 0.0, 0.0]);
        assert_eq!(run(Norm::L2, &[3f64, 4.0], 2), [0.6, 0.8]);
        assert_eq!(run(Norm::L1, &[2i32, 2], 2), [0.5, 0.5]);
        // Squares overflow float32: onnxruntime's NaN.
        assert!(run(Norm::L2, &[1e20f32, 1.0], 2)[0].is_nan());
        assert!(Norm::parse("l2").is_err());
    }
}
