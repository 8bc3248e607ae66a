//! The tensors that cross the crate's API: plain row-major vectors with a
//! shape, in the element types scikit-learn exports use.

use std::fmt;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I64,
    I32,
    Bool,
    Str,
}

impl DType {
    /// The Open Inference Protocol (KServe v2) datatype name: `FP32`, `FP64`,
    /// `INT64`, `INT32`, `BOOL`, `BYTES`.
    pub fn v2_name(self) -> &'static str {
        match self {
            DType::F32 => "FP32",
            DType::F64 => "FP64",
            DType::I64 => "INT64",
            DType::I32 => "INT32",
            DType::Bool => "BOOL",
            DType::Str => "BYTES",
        }
    }

    /// The inverse of [`DType::v2_name`] (exact, upper case).
    pub fn from_v2_name(name: &str) -> Option<DType> {
        match name {
            "FP32" => Some(DType::F32),
            "FP64" => Some(DType::F64),
            "INT64" => Some(DType::I64),
            "INT32" => Some(DType::I32),
            "BOOL" => Some(DType::Bool),
            "BYTES" => Some(DType::Str),
            _ => None,
        }
    }

    /// The ONNX name of the type (`tensor(float)` has `float`).
    pub fn onnx_name(self) -> &'static str {
        match self {
            DType::F32 => "float",
            DType::F64 => "double",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::Bool => "bool",
            DType::Str => "string",
        }
    }

    /// From an ONNX `TensorProto.DataType` code, for the types served here.
    pub(crate) fn from_onnx_code(code: i32) -> Option<DType> {
        match code {
            1 => Some(DType::F32),
            11 => Some(DType::F64),
            7 => Some(DType::I64),
            6 => Some(DType::I32),
            9 => Some(DType::Bool),
            8 => Some(DType::Str),
            _ => None,
        }
    }
}

/// Displays the v2 name (`FP32`), which is what API users see.
impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.v2_name())
    }
}

/// The values of a tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::I64(_) => DType::I64,
            TensorData::I32(_) => DType::I32,
            TensorData::Bool(_) => DType::Bool,
            TensorData::Str(_) => DType::Str,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<&[f64]> {
        match self {
            TensorData::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<&[i64]> {
        match self {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i32(&self) -> Option<&[i32]> {
        match self {
            TensorData::I32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<&[bool]> {
        match self {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&[String]> {
        match self {
            TensorData::Str(v) => Some(v),
            _ => None,
        }
    }
}

/// A named tensor: an input given to [`crate::OnnxModel::run`] or an output
/// it returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: TensorData) -> Tensor {
        Tensor {
            name: name.into(),
            shape,
            data,
        }
    }
}

/// An input or output of a model as the model declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    pub name: String,
    pub dtype: DType,
    /// `None` is a dynamic dimension (the batch, for scikit-learn exports).
    pub shape: Vec<Option<usize>>,
}

impl IoSpec {
    /// The shape as text, `[?, 4]`, for messages.
    pub fn shape_text(&self) -> String {
        shape_text(&self.shape)
    }
}

pub(crate) fn shape_text(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or_else(|| "?".to_owned(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_names_round_trip() {
        for dt in [
            DType::F32,
            DType::F64,
            DType::I64,
            DType::I32,
            DType::Bool,
            DType::Str,
        ] {
            assert_eq!(DType::from_v2_name(dt.v2_name()), Some(dt));
        }
        assert_eq!(DType::F32.v2_name(), "FP32");
        assert_eq!(DType::Str.v2_name(), "BYTES");
        assert_eq!(DType::from_v2_name("fp32"), None);
        assert_eq!(DType::from_v2_name("FP16"), None);
        assert_eq!(DType::I64.to_string(), "INT64");
    }

    #[test]
    fn tensor_data_len_and_dtype() {
        let d = TensorData::Str(vec!["a".into(), "b".into()]);
        assert_eq!(d.len(), 2);
        assert_eq!(d.dtype(), DType::Str);
        assert!(TensorData::F32(vec![]).is_empty());
        assert_eq!(shape_text(&[None, Some(4)]), "[?, 4]");
    }
}
