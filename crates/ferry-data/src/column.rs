//! One batch's column in a canonical form, so every rule has one loop per
//! kind of value instead of one per arrow type.

use crate::source::ColType;
use crate::{DataError, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, TimeUnit};

/// A column of one batch.
pub enum Col {
    /// Integers, exactly.
    Int(Int64Array),
    /// Floats; NaN counts as missing, as in pandas.
    Float(Float64Array),
    Str(StringArray),
    Bool(BooleanArray),
    /// Timestamps in microseconds since the epoch (dates at midnight UTC).
    Time(Int64Array),
}

fn cast(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    arrow_cast::cast(a, to)
        .map_err(|e| DataError::Internal(format!("cannot convert a column to {to}: {e}")))
}

impl Col {
    pub fn of(a: &ArrayRef) -> Result<Col> {
        let dt = a.data_type();
        let ty = ColType::of(dt).ok_or_else(|| {
            DataError::Internal(format!("columns of type {dt} are not supported"))
        })?;
        Ok(match ty {
            ColType::Int => Col::Int(match dt {
                DataType::Int64 => a.as_primitive::<Int64Type>().clone(),
                _ => cast(a, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            }),
            ColType::Float => Col::Float(match dt {
                DataType::Float64 => a.as_primitive::<Float64Type>().clone(),
                _ => cast(a, &DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            }),
            ColType::String => Col::Str(match dt {
                DataType::Utf8 => a.as_string::<i32>().clone(),
                _ => cast(a, &DataType::Utf8)?.as_string::<i32>().clone(),
            }),
            ColType::Bool => Col::Bool(a.as_boolean().clone()),
            ColType::Timestamp => {
                let micros = cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
                Col::Time(
                    cast(&micros, &DataType::Int64)?
                        .as_primitive::<Int64Type>()
                        .clone(),
                )
            }
            ColType::Date => {
                let micros = cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
                Col::Time(
                    cast(&micros, &DataType::Int64)?
                        .as_primitive::<Int64Type>()
                        .clone(),
                )
            }
        })
    }

    /// The column's array, for what every type answers alike (length, nulls).
    fn array(&self) -> &dyn Array {
        match self {
            Col::Int(a) | Col::Time(a) => a,
            Col::Float(a) => a,
            Col::Str(a) => a,
            Col::Bool(a) => a,
        }
    }

    pub fn len(&self) -> usize {
        self.array().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Missing: null, or NaN in a float column.
    #[inline]
    pub fn missing(&self, i: usize) -> bool {
        match self {
            Col::Int(a) | Col::Time(a) => a.is_null(i),
            Col::Float(a) => a.is_null(i) || a.value(i).is_nan(),
            Col::Str(a) => a.is_null(i),
            Col::Bool(a) => a.is_null(i),
        }
    }

    /// Whether any value is [`Col::missing`]: the array's null count, and
    /// for floats a scan for NaN. Lets a rule over a complete column (the
    /// common case) skip its per-row test.
    pub fn any_missing(&self) -> bool {
        self.array().null_count() > 0
            || matches!(self, Col::Float(a) if a.values().iter().any(|v| v.is_nan()))
    }

    /// The value as a number (ints, floats, timestamps in µs, bools as 0/1).
    #[inline]
    pub fn num(&self, i: usize) -> Option<f64> {
        if self.missing(i) {
            return None;
        }
        Some(match self {
            Col::Int(a) | Col::Time(a) => a.value(i) as f64,
            Col::Float(a) => a.value(i),
            Col::Bool(a) => f64::from(u8::from(a.value(i))),
            Col::Str(_) => return None,
        })
    }

    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Col::Int(_) | Col::Float(_) | Col::Time(_) | Col::Bool(_)
        )
    }

    /// A 128-bit hash of the value (for unique and distinct counts), equal
    /// for equal values of the same column.
    #[inline]
    pub fn hash(&self, i: usize) -> u128 {
        use xxhash_rust::xxh3::xxh3_128;
        match self {
            Col::Int(a) | Col::Time(a) => xxh3_128(&a.value(i).to_le_bytes()),
            Col::Float(a) => {
                let v = a.value(i);
                let v = if v == 0.0 { 0.0 } else { v };
                xxh3_128(&v.to_bits().to_le_bytes())
            }
            Col::Str(a) => xxh3_128(a.value(i).as_bytes()),
            Col::Bool(a) => u128::from(a.value(i)),
        }
    }

    /// The value as JSON (for samples of failing rows).
    pub fn json(&self, i: usize) -> serde_json::Value {
        if self.missing(i) {
            return match self {
                Col::Float(a) if !a.is_null(i) => serde_json::Value::String("NaN".into()),
                _ => serde_json::Value::Null,
            };
        }
        match self {
            Col::Int(a) => a.value(i).into(),
            Col::Float(a) => serde_json::Number::from_f64(a.value(i))
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Col::Str(a) => a.value(i).into(),
            Col::Bool(a) => a.value(i).into(),
            Col::Time(a) => crate::time::format_micros(a.value(i)).into(),
        }
    }

    /// The value as text (for sets of levels and reports).
    pub fn text(&self, i: usize) -> Option<String> {
        if self.missing(i) {
            return None;
        }
        Some(match self {
            Col::Int(a) => a.value(i).to_string(),
            Col::Float(a) => a.value(i).to_string(),
            Col::Str(a) => a.value(i).to_owned(),
            Col::Bool(a) => a.value(i).to_string(),
            Col::Time(a) => crate::time::format_micros(a.value(i)),
        })
    }

    pub fn str_at(&self, i: usize) -> Option<&str> {
        match self {
            Col::Str(a) if !a.is_null(i) => Some(a.value(i)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_missing_agrees_with_missing_per_value() {
        let cols = [
            Col::Float(Float64Array::from(vec![Some(1.0), Some(2.0)])),
            Col::Float(Float64Array::from(vec![Some(1.0), Some(f64::NAN)])),
            Col::Float(Float64Array::from(vec![Some(1.0), None])),
            Col::Int(Int64Array::from(vec![Some(1), None])),
            Col::Int(Int64Array::from(vec![1, 2])),
            Col::Str(StringArray::from(vec![Some("a"), None])),
            Col::Str(StringArray::from(vec!["a", ""])),
            Col::Bool(BooleanArray::from(vec![Some(true), None])),
            Col::Time(Int64Array::from(vec![5])),
        ];
        for (k, c) in cols.iter().enumerate() {
            let per_value = (0..c.len()).any(|i| c.missing(i));
            assert_eq!(c.any_missing(), per_value, "column {k}");
        }
    }
}
