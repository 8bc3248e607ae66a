//! The operators we add to tract's ONNX front end: our tree ensembles (in
//! place of tract's classifier, which is two orders of magnitude slower than
//! onnxruntime, and for the regressor tract lacks), our `LinearClassifier`
//! (tract's cannot give string labels) and `Scaler` (which tract lacks),
//! wired as tract's own `Sub` and `Mul`; the text operators are registered
//! from `text_ops.rs`.
//!
//! These two are the only modules besides `native.rs` that name tract types;
//! the evaluators themselves (`tree.rs`, `linear.rs`, `strings.rs`,
//! `tokenizer.rs`, `tfidf.rs`, `normalizer.rs`) know nothing of tract.

use std::sync::Arc;

/// `PartialEq` and `Eq` for an op that holds its parsed attributes behind an
/// `Arc`: two ops are equal when they share them (tract compares ops when it
/// deduplicates nodes; parsed attributes are never compared by value).
macro_rules! equal_when_shared {
    ($op:ty, $($field:ident).+) => {
        impl PartialEq for $op {
            fn eq(&self, other: &Self) -> bool {
                std::sync::Arc::ptr_eq(&self.$($field).+, &other.$($field).+)
            }
        }

        impl Eq for $op {}
    };
}
pub(crate) use equal_when_shared;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::{AttributeProto, NodeProto, TensorProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::linear::LinearClassifier;
use crate::tree::{Aggregate, Ensemble, Kind, PostTransform, Precision, Rows, TreeAttributes};

pub(crate) fn register(reg: &mut OnnxOpRegister) {
    reg.insert("LinearClassifier", linear_classifier);
    reg.insert("TreeEnsembleClassifier", tree_classifier);
    reg.insert("TreeEnsembleRegressor", tree_regressor);
    reg.insert("Scaler", scaler);
    crate::text_ops::register(reg);
}

// --- attributes ----------------------------------------------------------------

pub(crate) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(crate) fn ints(node: &NodeProto, name: &str) -> Vec<i64> {
    attr(node, name).map(|a| a.ints.clone()).unwrap_or_default()
}

fn floats(node: &NodeProto, name: &str) -> Option<Vec<f64>> {
    attr(node, name).map(|a| a.floats.iter().map(|&f| f64::from(f)).collect())
}

pub(crate) fn strings(node: &NodeProto, name: &str) -> Result<Option<Vec<String>>, String> {
    let Some(a) = attr(node, name) else {
        return Ok(None);
    };
    a.strings
        .iter()
        .map(|s| {
            String::from_utf8(s.clone()).map_err(|_| format!("attribute `{name}` is not UTF-8"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

pub(crate) fn string(node: &NodeProto, name: &str) -> Result<Option<String>, String> {
    let Some(a) = attr(node, name) else {
        return Ok(None);
    };
    String::from_utf8(a.s.clone())
        .map(Some)
        .map_err(|_| format!("attribute `{name}` is not UTF-8"))
}

/// A `*_as_tensor` attribute: doubles (or floats) in `double_data`,
/// `float_data` or little-endian `raw_data`.
fn tensor_values(node: &NodeProto, name: &str) -> Result<Option<Vec<f64>>, String> {
    let Some(t) = attr(node, name).and_then(|a| a.t.as_ref()) else {
        return Ok(None);
    };
    tensor_proto_values(t)
        .map(Some)
        .map_err(|e| format!("attribute `{name}`: {e}"))
}

fn tensor_proto_values(t: &TensorProto) -> Result<Vec<f64>, String> {
    match t.data_type {
        11 => {
            if !t.double_data.is_empty() {
                Ok(t.double_data.clone())
            } else if t.raw_data.len().is_multiple_of(8) {
                Ok(t.raw_data
                    .chunks_exact(8)
                    .map(|c| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(c);
                        f64::from_le_bytes(b)
                    })
                    .collect())
            } else {
                Err("raw data is not a whole number of doubles".to_owned())
            }
        }
        1 => {
            if !t.float_data.is_empty() {
                Ok(t.float_data.iter().map(|&f| f64::from(f)).collect())
            } else if t.raw_data.len().is_multiple_of(4) {
                Ok(t.raw_data
                    .chunks_exact(4)
                    .map(|c| {
                        let mut b = [0u8; 4];
                        b.copy_from_slice(c);
                        f64::from(f32::from_le_bytes(b))
                    })
                    .collect())
            } else {
                Err("raw data is not a whole number of floats".to_owned())
            }
        }
        other => Err(format!(
            "tensor of element type {other}, expected float or double"
        )),
    }
}

/// The class labels of a classifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Labels {
    I64(Vec<i64>),
    Str(Vec<String>),
}

impl Labels {
    fn len(&self) -> usize {
        match self {
            Labels::I64(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }

    fn datum_type(&self) -> DatumType {
        match self {
            Labels::I64(_) => DatumType::I64,
            Labels::Str(_) => DatumType::String,
        }
    }

    /// The labels of the winning class indexes. With `literal`, an index is
    /// itself the label (`1`/`0`, or `"1"`/`"0"`), as onnxruntime answers for
    /// a one-column linear classifier without exactly two labels.
    fn tensor(&self, winners: &[usize], literal: bool) -> TractResult<Tensor> {
        let n = winners.len();
        Ok(match self {
            Labels::I64(l) => {
                let v: Vec<i64> = winners
                    .iter()
                    .map(|&w| {
                        if literal {
                            w as i64
                        } else {
                            l.get(w).copied().unwrap_or_default()
                        }
                    })
                    .collect();
                Tensor::from_shape(&[n], &v)?
            }
            Labels::Str(l) => {
                let v: Vec<String> = winners
                    .iter()
                    .map(|&w| {
                        if literal {
                            w.to_string()
                        } else {
                            l.get(w).cloned().unwrap_or_default()
                        }
                    })
                    .collect();
                tract_ndarray::Array1::from(v).into_tensor()
            }
        })
    }
}

/// The classes a classifier's probabilities are in the order of: the labels
/// of its first classifier operator (scikit-learn exports have one).
pub(crate) fn classifier_classes(proto: &tract_onnx::pb::ModelProto) -> Option<crate::Classes> {
    let graph = proto.graph.as_ref()?;
    graph.node.iter().find_map(|n| {
        let ints_name = match n.op_type.as_str() {
            "LinearClassifier" | "SVMClassifier" => "classlabels_ints",
            "TreeEnsembleClassifier" => "classlabels_int64s",
            _ => return None,
        };
        match parse_labels(n, ints_name).ok()? {
            Labels::I64(v) => Some(crate::Classes::Int(v)),
            Labels::Str(v) => Some(crate::Classes::Str(v)),
        }
    })
}

fn parse_labels(node: &NodeProto, ints_name: &str) -> Result<Labels, String> {
    let ints = attr(node, ints_name).map(|a| a.ints.clone());
    let strs = strings(node, "classlabels_strings")?;
    match (ints, strs) {
        (Some(i), None) => Ok(Labels::I64(i)),
        (None, Some(s)) => Ok(Labels::Str(s)),
        (Some(i), Some(s)) if s.is_empty() => Ok(Labels::I64(i)),
        (Some(i), Some(s)) if i.is_empty() => Ok(Labels::Str(s)),
        (Some(_), Some(_)) => Err(format!(
            "both `{ints_name}` and `classlabels_strings` are set"
        )),
        (None, None) => Err(format!(
            "neither `{ints_name}` nor `classlabels_strings` is set"
        )),
    }
}

fn post_transform(node: &NodeProto) -> Result<PostTransform, String> {
    match string(node, "post_transform")? {
        Some(s) => PostTransform::parse(&s).map_err(|e| e.0),
        None => Ok(PostTransform::None),
    }
}

/// A tree-ensemble node, parsed and checked.
#[derive(Debug, Clone)]
pub(crate) struct TreeSpec {
    pub ensemble: Arc<Ensemble>,
    pub labels: Option<Arc<Labels>>,
}

/// Reads a `TreeEnsembleClassifier` (`classifier`) or `TreeEnsembleRegressor`
/// node. The error is a message to attach to the node's name.
pub(crate) fn parse_tree(node: &NodeProto, classifier: bool) -> Result<TreeSpec, String> {
    let prefix = if classifier { "class" } else { "target" };
    let mut attrs = TreeAttributes {
        nodes_treeids: ints(node, "nodes_treeids"),
        nodes_nodeids: ints(node, "nodes_nodeids"),
        nodes_featureids: ints(node, "nodes_featureids"),
        nodes_modes: strings(node, "nodes_modes")?.unwrap_or_default(),
        nodes_truenodeids: ints(node, "nodes_truenodeids"),
        nodes_falsenodeids: ints(node, "nodes_falsenodeids"),
        nodes_missing_value_tracks_true: ints(node, "nodes_missing_value_tracks_true"),
        leaf_treeids: ints(node, &format!("{prefix}_treeids")),
        leaf_nodeids: ints(node, &format!("{prefix}_nodeids")),
        leaf_ids: ints(node, &format!("{prefix}_ids")),
        ..TreeAttributes::default()
    };
    let mut any_double = false;
    let mut pick = |plain: &str| -> Result<Vec<f64>, String> {
        let as_tensor = format!("{plain}_as_tensor");
        match (floats(node, plain), tensor_values(node, &as_tensor)?) {
            (Some(_), Some(_)) => Err(format!("both `{plain}` and `{as_tensor}` are set")),
            (Some(v), None) => Ok(v),
            (None, Some(v)) => {
                any_double = true;
                Ok(v)
            }
            (None, None) => Ok(Vec::new()),
        }
    };
    attrs.nodes_values = pick("nodes_values")?;
    attrs.leaf_weights = pick(&format!("{prefix}_weights"))?;
    attrs.base_values = pick("base_values")?;
    attrs.precision = Some(if any_double {
        Precision::F64
    } else {
        Precision::F32
    });
    attrs.post_transform = post_transform(node)?;

    let (kind, labels) = if classifier {
        let labels = parse_labels(node, "classlabels_int64s")?;
        attrs.n_outputs = labels.len();
        (
            Kind::Classifier {
                binary_case: false,
                weights_all_positive: true,
            },
            Some(Arc::new(labels)),
        )
    } else {
        let n_targets = attr(node, "n_targets").map_or(0, |a| a.i);
        attrs.n_outputs =
            usize::try_from(n_targets).map_err(|_| format!("`n_targets` is {n_targets}"))?;
        attrs.aggregate = Some(match string(node, "aggregate_function")? {
            Some(s) => Aggregate::parse(&s).map_err(|e| e.0)?,
            None => Aggregate::Sum,
        });
        (Kind::Regressor, None)
    };
    let ensemble = Ensemble::build(&attrs, kind).map_err(|e| e.0)?;
    Ok(TreeSpec {
        ensemble: Arc::new(ensemble),
        labels,
    })
}

// --- tree ensembles in tract -------------------------------------------------

fn tree_classifier(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let spec = parse_tree(node, true).map_err(|e| format_err!("{e}"))?;
    Ok((expand(TreeExpansion(TreeOp { spec })), vec![]))
}

fn tree_regressor(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let spec = parse_tree(node, false).map_err(|e| format_err!("{e}"))?;
    Ok((expand(TreeExpansion(TreeOp { spec })), vec![]))
}

/// The inference-time face of a tree ensemble (shape and type rules); it
/// wires one [`TreeOp`].
#[derive(Debug, Clone)]
struct TreeExpansion(TreeOp);

impl Expansion for TreeExpansion {
    fn name(&self) -> StaticName {
        self.0.name()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(if self.0.spec.labels.is_some() { 2 } else { 1 })
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        let n_outputs = self.0.spec.ensemble.n_outputs();
        s.equals(&inputs[0].rank, 2)?;
        match &self.0.spec.labels {
            Some(labels) => {
                check_output_arity(outputs, 2)?;
                s.equals(&outputs[0].datum_type, labels.datum_type())?;
                s.equals(&outputs[0].rank, 1)?;
                s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
                s.equals(&outputs[1].datum_type, DatumType::F32)?;
                s.equals(&outputs[1].rank, 2)?;
                s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
                s.equals(&outputs[1].shape[1], n_outputs.to_dim())?;
            }
            None => {
                check_output_arity(outputs, 1)?;
                s.equals(&outputs[0].datum_type, DatumType::F32)?;
                s.equals(&outputs[0].rank, 2)?;
                s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
                s.equals(&outputs[0].shape[1], n_outputs.to_dim())?;
            }
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.0.clone(), inputs)
    }
}

/// A tree ensemble as a typed tract op: one input (rows of features), the
/// label and score outputs of a classifier or the one output of a regressor.
#[derive(Debug, Clone)]
pub(crate) struct TreeOp {
    spec: TreeSpec,
}

equal_when_shared!(TreeOp, spec.ensemble);

impl Op for TreeOp {
    fn name(&self) -> StaticName {
        if self.spec.labels.is_some() {
            "TreeEnsembleClassifier".into()
        } else {
            "TreeEnsembleRegressor".into()
        }
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} trees over {} features, {} outputs (ferry-onnx evaluator)",
            self.spec.ensemble.n_trees(),
            self.spec.ensemble.n_features(),
            self.spec.ensemble.n_outputs()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for TreeOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Some(x) = inputs.first() else {
            bail!("a tree ensemble takes one input")
        };
        let (n_rows, width) = match *x.shape() {
            [n, w] => (n, w),
            [w] => (1, w),
            ref other => bail!("a tree ensemble takes rows of features, got shape {other:?}"),
        };
        let plain = x.try_as_plain_ram()?;
        let rows = match x.datum_type() {
            DatumType::F32 => Rows::F32(plain.as_slice::<f32>()?),
            DatumType::F64 => Rows::F64(plain.as_slice::<f64>()?),
            DatumType::I64 => Rows::I64(plain.as_slice::<i64>()?),
            DatumType::I32 => Rows::I32(plain.as_slice::<i32>()?),
            other => {
                bail!("a tree ensemble takes float, double, int64 or int32 values, got {other:?}")
            }
        };
        let ensemble = &self.spec.ensemble;
        let n_out = ensemble.n_outputs();
        let mut scores = vec![0f32; n_rows * n_out];
        match &self.spec.labels {
            None => {
                ensemble
                    .eval(rows, n_rows, width, &mut scores, None)
                    .map_err(|e| format_err!("{e}"))?;
                let scores = Tensor::from_shape(&[n_rows, n_out], &scores)?;
                Ok(tvec!(scores.into_tvalue()))
            }
            Some(labels) => {
                let mut winners = vec![0usize; n_rows];
                ensemble
                    .eval(rows, n_rows, width, &mut scores, Some(&mut winners))
                    .map_err(|e| format_err!("{e}"))?;
                let labels = labels.tensor(&winners, false)?;
                let scores = Tensor::from_shape(&[n_rows, n_out], &scores)?;
                Ok(tvec!(labels.into_tvalue(), scores.into_tvalue()))
            }
        }
    }
}

impl TypedOp for TreeOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let Some(input) = inputs.first() else {
            bail!("a tree ensemble takes one input")
        };
        let n = if input.shape.rank() == 2 {
            input.shape[0].clone()
        } else {
            1.to_dim()
        };
        let n_out = self.spec.ensemble.n_outputs().to_dim();
        let scores = f32::fact([n.clone(), n_out]);
        Ok(match &self.spec.labels {
            None => tvec!(scores),
            Some(labels) => tvec!(labels.datum_type().fact([n]), scores),
        })
    }

    as_op!();
}

// --- LinearClassifier -----------------------------------------------------------

/// A `LinearClassifier` node, parsed and checked.
#[derive(Debug, Clone)]
pub(crate) struct LinearSpec {
    classifier: Arc<LinearClassifier>,
    labels: Arc<Labels>,
}

pub(crate) fn parse_linear(node: &NodeProto) -> Result<LinearSpec, String> {
    let labels = parse_labels(node, "classlabels_ints")?;
    let coefficients = attr(node, "coefficients")
        .map(|a| a.floats.clone())
        .unwrap_or_default();
    let intercepts = attr(node, "intercepts").map(|a| a.floats.clone());
    let classifier = LinearClassifier::new(
        coefficients,
        intercepts,
        labels.len(),
        post_transform(node)?,
    )?;
    Ok(LinearSpec {
        classifier: Arc::new(classifier),
        labels: Arc::new(labels),
    })
}

fn linear_classifier(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let spec = parse_linear(node).map_err(|e| format_err!("{e}"))?;
    Ok((expand(LinearExpansion(LinearOp { spec })), vec![]))
}

#[derive(Debug, Clone)]
struct LinearExpansion(LinearOp);

impl Expansion for LinearExpansion {
    fn name(&self) -> StaticName {
        "LinearClassifier".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, self.0.spec.labels.datum_type())?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].datum_type, DatumType::F32)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(
            &outputs[1].shape[1],
            self.0.spec.classifier.n_scores().to_dim(),
        )?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut x = inputs[0];
        if model.outlet_fact(x)?.datum_type != DatumType::F32 {
            x = model.wire_node(
                format!("{prefix}.to_f32"),
                tract_onnx::tract_core::ops::cast::cast(DatumType::F32),
                &[x],
            )?[0];
        }
        model.wire_node(prefix, self.0.clone(), &[x])
    }
}

/// A linear classifier as a typed tract op: rows of float32 in, labels and
/// scores out.
#[derive(Debug, Clone)]
pub(crate) struct LinearOp {
    spec: LinearSpec,
}

equal_when_shared!(LinearOp, spec.classifier);

impl Op for LinearOp {
    fn name(&self) -> StaticName {
        "LinearClassifier".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let c = &self.spec.classifier;
        Ok(vec![format!(
            "{} features, {} score columns (ferry-onnx evaluator)",
            c.n_features(),
            c.n_scores()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for LinearOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Some(x) = inputs.first() else {
            bail!("a linear classifier takes one input")
        };
        let n_rows = match *x.shape() {
            [n, _] => n,
            [_] => 1,
            ref other => bail!("a linear classifier takes rows of features, got shape {other:?}"),
        };
        let c = &self.spec.classifier;
        let plain = x.try_as_plain_ram()?;
        let values = plain.as_slice::<f32>()?;
        let mut scores = vec![0f32; n_rows * c.n_scores()];
        let mut winners = vec![0usize; n_rows];
        c.eval(values, n_rows, &mut scores, &mut winners)
            .map_err(|e| format_err!("{e}"))?;
        let literal = c.n_scores() == 1;
        let labels = self.spec.labels.tensor(&winners, literal)?;
        let scores = Tensor::from_shape(&[n_rows, c.n_scores()], &scores)?;
        Ok(tvec!(labels.into_tvalue(), scores.into_tvalue()))
    }
}

impl TypedOp for LinearOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let Some(input) = inputs.first() else {
            bail!("a linear classifier takes one input")
        };
        let n = if input.shape.rank() == 2 {
            input.shape[0].clone()
        } else {
            1.to_dim()
        };
        let n_scores = self.spec.classifier.n_scores().to_dim();
        Ok(tvec!(
            self.spec.labels.datum_type().fact([n.clone()]),
            f32::fact([n, n_scores])
        ))
    }

    as_op!();
}

// --- Scaler ------------------------------------------------------------------

/// `Scaler`: `y = (x - offset) * scale` per column, as float.
#[derive(Debug, Clone)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

fn scaler(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let get = |name: &str| -> Vec<f32> {
        attr(node, name)
            .map(|a| a.floats.clone())
            .unwrap_or_default()
    };
    let (mut offset, mut scale) = (get("offset"), get("scale"));
    if offset.is_empty() {
        offset = vec![0.0];
    }
    if scale.is_empty() {
        scale = vec![1.0];
    }
    Ok((expand(Scaler { offset, scale }), vec![]))
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut x = inputs[0];
        let fact = model.outlet_fact(x)?.clone();
        let rank = fact.rank();
        if rank == 0 {
            bail!("Scaler takes a tensor of rank 1 or more");
        }
        let width = &fact.shape[rank - 1];
        for (name, values) in [("offset", &self.offset), ("scale", &self.scale)] {
            if values.len() != 1
                && let Ok(w) = width.to_usize()
                && w != values.len()
            {
                bail!(
                    "`{name}` has {} values but the input has {w} columns",
                    values.len()
                );
            }
        }
        if fact.datum_type != DatumType::F32 {
            x = model.wire_node(
                format!("{prefix}.to_f32"),
                tract_onnx::tract_core::ops::cast::cast(DatumType::F32),
                &[x],
            )?[0];
        }
        let konst = |v: &[f32]| -> TractResult<Arc<Tensor>> {
            let mut shape = vec![1usize; rank];
            shape[rank - 1] = v.len();
            Ok(Tensor::from_shape(&shape, v)?.into_arc_tensor())
        };
        let offset = model.add_const(format!("{prefix}.offset"), konst(&self.offset)?)?;
        let scale = model.add_const(format!("{prefix}.scale"), konst(&self.scale)?)?;
        let centered = model.wire_node(
            format!("{prefix}.sub"),
            tract_onnx::tract_core::ops::math::sub(),
            &[x, offset],
        )?;
        model.wire_node(
            format!("{prefix}.mul"),
            tract_onnx::tract_core::ops::math::mul(),
            &[centered[0], scale],
        )
    }
}
