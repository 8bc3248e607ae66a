//! Reading the ONNX protobuf: the declared inputs and outputs, and the
//! checks every engine makes before loading (ZipMap is refused).

use std::collections::HashSet;

use tract_onnx::pb::{ModelProto, ValueInfoProto, tensor_shape_proto, type_proto};
use tract_onnx::prelude::Framework;

use crate::error::OnnxError;
use crate::tensor::{DType, IoSpec};

/// Decodes the protobuf.
pub(crate) fn decode(bytes: &[u8]) -> Result<ModelProto, OnnxError> {
    let mut reader = bytes;
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut reader)
        .map_err(|e| OnnxError::Parse {
            message: format!("{e:#}"),
        })?;
    if proto.graph.is_none() {
        return Err(OnnxError::Parse {
            message: "the model has no graph".to_owned(),
        });
    }
    Ok(proto)
}

/// The name to use for a node in messages: its name, else its first output.
pub(crate) fn node_label(ix: usize, node: &tract_onnx::pb::NodeProto) -> String {
    if !node.name.is_empty() {
        node.name.clone()
    } else if let Some(out) = node.output.first().filter(|o| !o.is_empty()) {
        format!("producing `{out}`")
    } else {
        format!("#{ix}")
    }
}

/// Refuses what no engine here can serve: a `ZipMap` (its output is a list
/// of maps, not a tensor).
pub(crate) fn refuse_zipmap(proto: &ModelProto) -> Result<(), OnnxError> {
    let Some(graph) = &proto.graph else {
        return Ok(());
    };
    if let Some((ix, node)) = graph
        .node
        .iter()
        .enumerate()
        .find(|(_, n)| n.op_type == "ZipMap")
    {
        return Err(OnnxError::ZipMap {
            node: node_label(ix, node),
        });
    }
    Ok(())
}

/// The graph's declared inputs (initializers excluded) and outputs.
pub(crate) fn io_specs(proto: &ModelProto) -> Result<(Vec<IoSpec>, Vec<IoSpec>), OnnxError> {
    let Some(graph) = &proto.graph else {
        return Err(OnnxError::Parse {
            message: "the model has no graph".to_owned(),
        });
    };
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs = graph
        .input
        .iter()
        .filter(|v| !initializers.contains(v.name.as_str()))
        .map(|v| spec("input", v))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = graph
        .output
        .iter()
        .map(|v| spec("output", v))
        .collect::<Result<Vec<_>, _>>()?;
    if inputs.is_empty() {
        return Err(OnnxError::Parse {
            message: "the graph has no inputs".to_owned(),
        });
    }
    if outputs.is_empty() {
        return Err(OnnxError::Parse {
            message: "the graph has no outputs".to_owned(),
        });
    }
    Ok((inputs, outputs))
}

fn spec(what: &'static str, v: &ValueInfoProto) -> Result<IoSpec, OnnxError> {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(OnnxError::UnsupportedType {
            what,
            name: v.name.clone(),
            ty: "a non-tensor type (or none)".to_owned(),
        });
    };
    let dtype = DType::from_onnx_code(t.elem_type).ok_or_else(|| OnnxError::UnsupportedType {
        what,
        name: v.name.clone(),
        ty: format!("tensor of ONNX element type {}", t.elem_type),
    })?;
    let shape = match &t.shape {
        Some(shape) => shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(tensor_shape_proto::dimension::Value::DimValue(n)) if n >= 0 => {
                    usize::try_from(n).ok()
                }
                _ => None,
            })
            .collect(),
        None => {
            return Err(OnnxError::UnsupportedType {
                what,
                name: v.name.clone(),
                ty: "a tensor of unknown rank".to_owned(),
            });
        }
    };
    Ok(IoSpec {
        name: v.name.clone(),
        dtype,
        shape,
    })
}
