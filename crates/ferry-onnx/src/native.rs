//! The native engine: tract for the graph, with our operators registered
//! (`ops.rs`). Two plans are kept: one with a symbolic batch, and one
//! specialised to a single row (what a gateway runs for each request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use crate::error::OnnxError;
use crate::graph::node_label;
use crate::ops;
use crate::tensor::{DType, IoSpec, Tensor as FTensor, TensorData};
use crate::text_ops;

/// States kept per plan for reuse (more are made when more threads run at
/// once; at most this many are kept).
const MAX_IDLE_STATES: usize = 16;

/// A plan and the run states (tract's per-call scratch: one value slot per
/// node, op states) kept between calls, so that a call allocates only its
/// tensors.
struct Plan {
    plan: Arc<TypedRunnableModel>,
    idle: Mutex<Vec<TypedSimpleState>>,
}

impl Plan {
    fn new(plan: Arc<TypedRunnableModel>) -> Plan {
        Plan {
            plan,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut state = match idle {
            Some(state) => state,
            None => TypedSimpleState::new(&self.plan)?,
        };
        // A state that failed half-way is dropped, not reused.
        let outputs = state.run(inputs)?;
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_STATES {
            idle.push(state);
        }
        Ok(outputs)
    }
}

pub(crate) struct NativeModel {
    /// The plan for any batch size.
    general: Plan,
    /// The plan with the batch fixed to 1, when the batch is symbolic.
    single: Option<Plan>,
}

/// tract's ONNX front end with our operators.
fn framework() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    ops::register(&mut onnx.op_register);
    onnx
}

const DOMAINS: [&str; 3] = ["", "ai.onnx", "ai.onnx.ml"];

/// Operators of other domains that we implement: (domain, operator).
const CONTRIB_OPS: [(&str, &str); 1] = [("com.microsoft", "Tokenizer")];

fn load_error(e: TractError) -> OnnxError {
    OnnxError::Load {
        message: format!("{e:#}"),
    }
}

/// Every node must be an operator tract (with ours) implements; our own
/// operators are parsed here too, so that a bad one is reported with its
/// node's name.
fn check_ops(proto: &ModelProto, onnx: &tract_onnx::Onnx) -> Result<(), OnnxError> {
    let Some(graph) = &proto.graph else {
        return Ok(());
    };
    for (ix, node) in graph.node.iter().enumerate() {
        let known = onnx.op_register.0.contains_key(&node.op_type);
        let domain_ok = match CONTRIB_OPS.iter().find(|(_, op)| *op == node.op_type) {
            Some((domain, _)) => node.domain == *domain,
            None => DOMAINS.contains(&node.domain.as_str()),
        };
        if !known || !domain_ok {
            return Err(OnnxError::UnsupportedOp {
                op: node.op_type.clone(),
                domain: node.domain.clone(),
                node: node_label(ix, node),
            });
        }
        let parsed = match node.op_type.as_str() {
            "TreeEnsembleClassifier" => ops::parse_tree(node, true).map(drop),
            "TreeEnsembleRegressor" => ops::parse_tree(node, false).map(drop),
            "LinearClassifier" => ops::parse_linear(node).map(drop),
            "StringNormalizer" => text_ops::parse_string_normalizer(node).map(drop),
            "Tokenizer" => text_ops::parse_tokenizer(node).map(drop),
            "TfIdfVectorizer" => text_ops::parse_tfidf(node).map(drop),
            "Normalizer" => text_ops::parse_normalizer(node).map(drop),
            _ => Ok(()),
        };
        parsed.map_err(|message| OnnxError::InvalidNode {
            op: node.op_type.clone(),
            node: node_label(ix, node),
            message,
        })?;
    }
    Ok(())
}

fn datum_type(dt: DType) -> DatumType {
    match dt {
        DType::F32 => DatumType::F32,
        DType::F64 => DatumType::F64,
        DType::I64 => DatumType::I64,
        DType::I32 => DatumType::I32,
        DType::Bool => DatumType::Bool,
        DType::Str => DatumType::String,
    }
}

impl NativeModel {
    pub(crate) fn load(proto: &ModelProto, inputs: &[IoSpec]) -> Result<NativeModel, OnnxError> {
        let onnx = framework();
        check_ops(proto, &onnx)?;
        let mut model = onnx.model_for_proto_model(proto).map_err(load_error)?;

        // Input facts from the declared types: the first dynamic dimension
        // of every input is the batch `N`, shared by all inputs.
        let batch = model.sym("N");
        let mut uses_batch = false;
        let specs: HashMap<&str, &IoSpec> = inputs.iter().map(|s| (s.name.as_str(), s)).collect();
        for (ix, outlet) in model
            .input_outlets()
            .map_err(load_error)?
            .to_vec()
            .into_iter()
            .enumerate()
        {
            let name = model.node(outlet.node).name.clone();
            let Some(spec) = specs.get(name.as_str()) else {
                return Err(OnnxError::Load {
                    message: format!("tract sees an input `{name}` the graph does not declare"),
                });
            };
            let mut first_dynamic = true;
            let dims: TVec<TDim> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(k, d)| match d {
                    Some(d) => d.to_dim(),
                    None if first_dynamic => {
                        first_dynamic = false;
                        uses_batch = true;
                        batch.to_dim()
                    }
                    None => model.sym(&format!("{name}_{k}")).to_dim(),
                })
                .collect();
            model
                .set_input_fact(ix, InferenceFact::dt_shape(datum_type(spec.dtype), dims))
                .map_err(load_error)?;
        }
        let typed = model
            .into_typed()
            .map_err(load_error)?
            .into_decluttered()
            .map_err(load_error)?;
        let single = if uses_batch {
            let subs = HashMap::from([(batch.clone(), 1.to_dim())]);
            let one = typed.set_symbols(&subs).map_err(load_error)?;
            Some(Plan::new(
                one.into_optimized()
                    .map_err(load_error)?
                    .into_runnable()
                    .map_err(load_error)?,
            ))
        } else {
            None
        };
        let general = typed
            .into_optimized()
            .map_err(load_error)?
            .into_runnable()
            .map_err(load_error)?;
        Ok(NativeModel {
            general: Plan::new(general),
            single,
        })
    }

    /// Runs on inputs already checked and ordered as the model declares them.
    pub(crate) fn run(
        &self,
        inputs: Vec<FTensor>,
        batch: usize,
        outputs: &[IoSpec],
    ) -> Result<Vec<FTensor>, OnnxError> {
        let plan = match &self.single {
            Some(single) if batch == 1 => single,
            _ => &self.general,
        };
        let values = inputs
            .into_iter()
            .map(|t| to_tract(t).map(IntoTValue::into_tvalue))
            .collect::<Result<TVec<TValue>, _>>()
            .map_err(run_error)?;
        let results = plan.run(values).map_err(run_error)?;
        if results.len() != outputs.len() {
            return Err(OnnxError::Run {
                message: format!(
                    "the plan gave {} outputs, the graph declares {}",
                    results.len(),
                    outputs.len()
                ),
            });
        }
        results
            .into_iter()
            .zip(outputs)
            .map(|(value, spec)| from_tract(&value, spec).map_err(run_error))
            .collect()
    }
}

fn run_error(e: TractError) -> OnnxError {
    OnnxError::Run {
        message: format!("{e:#}"),
    }
}

fn to_tract(t: FTensor) -> TractResult<Tensor> {
    let shape = t.shape;
    Ok(match t.data {
        TensorData::F32(v) => Tensor::from_shape(&shape, &v)?,
        TensorData::F64(v) => Tensor::from_shape(&shape, &v)?,
        TensorData::I64(v) => Tensor::from_shape(&shape, &v)?,
        TensorData::I32(v) => Tensor::from_shape(&shape, &v)?,
        TensorData::Bool(v) => Tensor::from_shape(&shape, &v)?,
        TensorData::Str(v) => {
            tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(&shape), v)?.into_tensor()
        }
    })
}

/// An output value in the type the graph declares for it (tract may give an
/// integer label as `TDim`, say).
fn from_tract(value: &Tensor, spec: &IoSpec) -> TractResult<FTensor> {
    let dt = datum_type(spec.dtype);
    let value = value.cast_to_dt(dt)?;
    let plain = value.try_as_plain_ram()?;
    let data = match spec.dtype {
        DType::F32 => TensorData::F32(plain.as_slice::<f32>()?.to_vec()),
        DType::F64 => TensorData::F64(plain.as_slice::<f64>()?.to_vec()),
        DType::I64 => TensorData::I64(plain.as_slice::<i64>()?.to_vec()),
        DType::I32 => TensorData::I32(plain.as_slice::<i32>()?.to_vec()),
        DType::Bool => TensorData::Bool(plain.as_slice::<bool>()?.to_vec()),
        DType::Str => TensorData::Str(plain.as_slice::<String>()?.to_vec()),
    };
    Ok(FTensor {
        name: spec.name.clone(),
        shape: value.shape().to_vec(),
        data,
    })
}
