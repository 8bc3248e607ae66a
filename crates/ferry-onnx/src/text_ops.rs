//! The text operators of scikit-learn's text pipelines, added to tract's ONNX
//! front end: `StringNormalizer`, `Tokenizer` (com.microsoft),
//! `TfIdfVectorizer`, and the `ai.onnx.ml` `Normalizer` (in place of
//! tract's, which differs from onnxruntime), plus a `Flatten` that accepts
//! the two unknown dimensions of a tokenized batch (rows and tokens).
//!
//! The evaluators (`strings.rs`, `tokenizer.rs`, `tfidf.rs`,
//! `normalizer.rs`) know nothing of tract; this module wires them. The
//! operators whose output size depends on the data (a Tokenizer's tokens per
//! row, a StringNormalizer with stop words) give tract a fresh symbol for it,
//! which tract resolves from the value at run time.

use std::sync::Arc;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::{AxisOp, to_axis_ops_with_tf_rules};
use tract_onnx::tract_hir::internal::*;

use crate::normalizer::{Norm, normalize};
use crate::ops::{attr, equal_when_shared, ints, string, strings};
use crate::strings::{CaseAction, StringNormalizer};
use crate::tfidf::{Pool, TfIdf, TfIdfAttributes, Weighting};
use crate::tokenizer::Tokenizer;

pub(crate) fn register(reg: &mut OnnxOpRegister) {
    reg.insert("StringNormalizer", string_normalizer);
    reg.insert("Tokenizer", tokenizer);
    reg.insert("TfIdfVectorizer", tfidf_vectorizer);
    reg.insert("Normalizer", normalizer);
    reg.insert("Flatten", flatten);
}

fn int_attr(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

fn required_int(node: &NodeProto, name: &str) -> Result<i64, String> {
    int_attr(node, name).ok_or_else(|| format!("attribute `{name}` is not set"))
}

fn string_tensor(shape: &[usize], values: Vec<String>) -> TractResult<Tensor> {
    Ok(tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(shape), values)?.into_tensor())
}

// --- parsing (also used at load to report a bad node by name) ------------------

pub(crate) fn parse_string_normalizer(node: &NodeProto) -> Result<StringNormalizer, String> {
    let action = match string(node, "case_change_action")? {
        Some(s) => CaseAction::parse(&s)?,
        None => CaseAction::None,
    };
    let case_sensitive = int_attr(node, "is_case_sensitive").unwrap_or(0) != 0;
    let locale = string(node, "locale")?;
    let stopwords = strings(node, "stopwords")?.unwrap_or_default();
    StringNormalizer::new(action, case_sensitive, locale.as_deref(), stopwords)
}

pub(crate) fn parse_tokenizer(node: &NodeProto) -> Result<Tokenizer, String> {
    let mark = required_int(node, "mark")? != 0;
    let pad = string(node, "pad_value")?.ok_or("attribute `pad_value` is not set")?;
    let mincharnum = required_int(node, "mincharnum")?;
    Tokenizer::new(
        mark,
        pad,
        mincharnum,
        strings(node, "separators")?,
        string(node, "tokenexp")?,
    )
}

pub(crate) fn parse_tfidf(node: &NodeProto) -> Result<TfIdf, String> {
    let mode = string(node, "mode")?.ok_or("attribute `mode` is not set")?;
    let pool = match strings(node, "pool_strings")? {
        Some(s) => Pool::Strings(s),
        None => Pool::Ints(ints(node, "pool_int64s")),
    };
    TfIdf::new(TfIdfAttributes {
        mode: Weighting::parse(&mode)?,
        min_gram_length: required_int(node, "min_gram_length")?,
        max_gram_length: required_int(node, "max_gram_length")?,
        max_skip_count: required_int(node, "max_skip_count")?,
        ngram_counts: ints(node, "ngram_counts"),
        ngram_indexes: ints(node, "ngram_indexes"),
        weights: attr(node, "weights").map(|a| a.floats.clone()),
        pool,
    })
}

pub(crate) fn parse_normalizer(node: &NodeProto) -> Result<Norm, String> {
    match string(node, "norm")? {
        Some(s) => Norm::parse(&s),
        None => Ok(Norm::Max),
    }
}

// --- StringNormalizer ----------------------------------------------------------

fn string_normalizer(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let spec = parse_string_normalizer(node).map_err(|e| format_err!("{e}"))?;
    let count = ctx.template.symbols.new_with_prefix("kept");
    Ok((
        expand(StringNormalizerOp {
            spec: Arc::new(spec),
            count,
        }),
        vec![],
    ))
}

#[derive(Debug, Clone)]
struct StringNormalizerOp {
    spec: Arc<StringNormalizer>,
    /// The number of strings kept, with stop words.
    count: Symbol,
}

equal_when_shared!(StringNormalizerOp, spec);

impl Expansion for StringNormalizerOp {
    fn name(&self) -> StaticName {
        "StringNormalizer".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, DatumType::String)?;
        s.equals(&outputs[0].datum_type, DatumType::String)?;
        s.equals(&inputs[0].rank, &outputs[0].rank)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for StringNormalizerOp {
    fn name(&self) -> StaticName {
        "StringNormalizer".into()
    }

    op_as_typed_op!();
}

impl EvalOp for StringNormalizerOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Some(x) = inputs.first() else {
            bail!("StringNormalizer takes one input")
        };
        StringNormalizer::check_shape(x.shape()).map_err(|e| format_err!("{e}"))?;
        let plain = x.try_as_plain_ram()?;
        let out = self.spec.normalize(plain.as_slice::<String>()?);
        let shape = if x.rank() == 2 {
            vec![1, out.len()]
        } else {
            vec![out.len()]
        };
        Ok(tvec!(string_tensor(&shape, out)?.into_tvalue()))
    }
}

impl TypedOp for StringNormalizerOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let Some(input) = inputs.first() else {
            bail!("StringNormalizer takes one input")
        };
        if !self.spec.has_stopwords() {
            return Ok(tvec!(DatumType::String.fact(input.shape.clone())));
        }
        let kept = self.count.to_dim();
        Ok(tvec!(match input.rank() {
            1 => DatumType::String.fact([kept]),
            2 => DatumType::String.fact([1.to_dim(), kept]),
            r => bail!("StringNormalizer takes [C] or [1, C] strings, got rank {r}"),
        }))
    }

    as_op!();
}

// --- Tokenizer -----------------------------------------------------------------

fn tokenizer(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let spec = parse_tokenizer(node).map_err(|e| format_err!("{e}"))?;
    let tokens = ctx.template.symbols.new_with_prefix("tokens");
    Ok((
        expand(TokenizerOp {
            spec: Arc::new(spec),
            tokens,
        }),
        vec![],
    ))
}

#[derive(Debug, Clone)]
struct TokenizerOp {
    spec: Arc<Tokenizer>,
    /// The length of the token axis.
    tokens: Symbol,
}

equal_when_shared!(TokenizerOp, spec);

impl Expansion for TokenizerOp {
    fn name(&self) -> StaticName {
        "Tokenizer".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, DatumType::String)?;
        s.equals(&outputs[0].datum_type, DatumType::String)?;
        s.equals(&outputs[0].rank, inputs[0].rank.bex() + 1)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for TokenizerOp {
    fn name(&self) -> StaticName {
        "Tokenizer".into()
    }

    op_as_typed_op!();
}

impl EvalOp for TokenizerOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Some(x) = inputs.first() else {
            bail!("Tokenizer takes one input")
        };
        let plain = x.try_as_plain_ram()?;
        let tokens = self
            .spec
            .tokenize(x.shape(), plain.as_slice::<String>()?)
            .map_err(|e| format_err!("{e}"))?;
        Ok(tvec!(
            string_tensor(&tokens.shape, tokens.values)?.into_tvalue()
        ))
    }
}

impl TypedOp for TokenizerOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let Some(input) = inputs.first() else {
            bail!("Tokenizer takes one input")
        };
        let mut shape: TVec<TDim> = input.shape.to_tvec();
        shape.push(self.tokens.to_dim());
        Ok(tvec!(DatumType::String.fact(shape)))
    }

    as_op!();
}

// --- TfIdfVectorizer -----------------------------------------------------------

fn tfidf_vectorizer(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let spec = parse_tfidf(node).map_err(|e| format_err!("{e}"))?;
    Ok((
        expand(TfIdfOp {
            spec: Arc::new(spec),
        }),
        vec![],
    ))
}

#[derive(Debug, Clone)]
struct TfIdfOp {
    spec: Arc<TfIdf>,
}

equal_when_shared!(TfIdfOp, spec);

impl Expansion for TfIdfOp {
    fn name(&self) -> StaticName {
        "TfIdfVectorizer".into()
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
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for TfIdfOp {
    fn name(&self) -> StaticName {
        "TfIdfVectorizer".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} output columns (ferry-onnx evaluator)",
            self.spec.n_columns()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for TfIdfOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Some(x) = inputs.first() else {
            bail!("TfIdfVectorizer takes one input")
        };
        let t = &self.spec;
        let (shape, rows, width) = t.output_shape(x.shape()).map_err(|e| format_err!("{e}"))?;
        let n = t.n_columns();
        let mut out = vec![0f32; rows * n];
        let mut ids: Vec<u32> = Vec::with_capacity(width);
        let plain = x.try_as_plain_ram()?;
        for (r, row_out) in out.chunks_mut(n).enumerate() {
            ids.clear();
            let range = r * width..(r + 1) * width;
            match x.datum_type() {
                DatumType::String => ids.extend(
                    plain.as_slice::<String>()?[range]
                        .iter()
                        .map(|s| t.string_id(s)),
                ),
                DatumType::I64 => {
                    ids.extend(plain.as_slice::<i64>()?[range].iter().map(|&v| t.int_id(v)))
                }
                DatumType::I32 => ids.extend(
                    plain.as_slice::<i32>()?[range]
                        .iter()
                        .map(|&v| t.int_id(i64::from(v))),
                ),
                other => bail!("TfIdfVectorizer takes strings, int64 or int32, got {other:?}"),
            }
            t.row(&ids, row_out);
        }
        Ok(tvec!(Tensor::from_shape(&shape, &out)?.into_tvalue()))
    }
}

impl TypedOp for TfIdfOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let Some(input) = inputs.first() else {
            bail!("TfIdfVectorizer takes one input")
        };
        let n = self.spec.n_columns().to_dim();
        Ok(tvec!(match input.rank() {
            0 | 1 => f32::fact([n]),
            2 => f32::fact([input.shape[0].clone(), n]),
            r => bail!("TfIdfVectorizer takes [C] or [B, C], got rank {r}"),
        }))
    }

    as_op!();
}

// --- Normalizer ----------------------------------------------------------------

fn normalizer(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let norm = parse_normalizer(node).map_err(|e| format_err!("{e}"))?;
    Ok((expand(NormalizerOp { norm }), vec![]))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NormalizerOp {
    norm: Norm,
}

impl Expansion for NormalizerOp {
    fn name(&self) -> StaticName {
        "Normalizer".into()
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
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for NormalizerOp {
    fn name(&self) -> StaticName {
        "Normalizer".into()
    }

    op_as_typed_op!();
}

impl EvalOp for NormalizerOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Some(x) = inputs.first() else {
            bail!("Normalizer takes one input")
        };
        let width = match *x.shape() {
            [c] | [_, c] => c,
            ref other => bail!("Normalizer takes [C] or [N, C] values, got shape {other:?}"),
        };
        let mut out = vec![0f32; x.len()];
        let plain = x.try_as_plain_ram()?;
        match x.datum_type() {
            DatumType::F32 => normalize(self.norm, plain.as_slice::<f32>()?, width, &mut out),
            DatumType::F64 => normalize(self.norm, plain.as_slice::<f64>()?, width, &mut out),
            DatumType::I64 => normalize(self.norm, plain.as_slice::<i64>()?, width, &mut out),
            DatumType::I32 => normalize(self.norm, plain.as_slice::<i32>()?, width, &mut out),
            other => bail!("Normalizer takes float, double, int64 or int32 values, got {other:?}"),
        }
        Ok(tvec!(Tensor::from_shape(x.shape(), &out)?.into_tvalue()))
    }
}

impl TypedOp for NormalizerOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let Some(input) = inputs.first() else {
            bail!("Normalizer takes one input")
        };
        Ok(tvec!(f32::fact(input.shape.clone())))
    }

    as_op!();
}

// --- Flatten -------------------------------------------------------------------

fn flatten(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let axis = int_attr(node, "axis").unwrap_or(1);
    Ok((expand(Flatten { axis }), vec![]))
}

/// ONNX `Flatten`, as tract's but for inputs with several unknown
/// dimensions (tract's refuses a tokenized batch, `[N, 1, tokens]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Flatten {
    axis: i64,
}

impl Flatten {
    fn output_shape(&self, shape: &[TDim]) -> TractResult<[TDim; 2]> {
        let rank = shape.len() as i64;
        let axis = if self.axis < 0 {
            self.axis + rank
        } else {
            self.axis
        };
        if !(0..=rank).contains(&axis) {
            bail!("Flatten axis {} out of range for rank {rank}", self.axis);
        }
        let axis = axis as usize;
        Ok([
            shape[..axis].iter().cloned().product(),
            shape[axis..].iter().cloned().product(),
        ])
    }
}

impl Expansion for Flatten {
    fn name(&self) -> StaticName {
        "Flatten".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].rank, 2)?;
        s.given(&inputs[0].shape, move |s, shape| {
            let [a, b] = self.output_shape(&shape)?;
            s.equals(&outputs[0].shape, ShapeFactoid::from(vec![a, b]))
        })
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let shape = model.outlet_fact(inputs[0])?.shape.to_tvec();
        let target = self.output_shape(&shape)?;
        let ops = to_axis_ops_with_tf_rules(&shape, &target).unwrap_or_else(|_| {
            tvec!(AxisOp::Reshape(
                0,
                shape.clone(),
                target.iter().cloned().collect()
            ))
        });
        let mut wire = tvec!(inputs[0]);
        for (ix, op) in ops.into_iter().enumerate() {
            wire = model.wire_node(format!("{prefix}.{ix}"), op, &wire)?;
        }
        Ok(wire)
    }
}
