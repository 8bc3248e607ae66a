//! Tree ensembles (`ai.onnx.ml` `TreeEnsembleClassifier` and
//! `TreeEnsembleRegressor`) evaluated the way onnxruntime evaluates them.
//!
//! The trees are flattened into one array of nodes; a split node holds its
//! feature, threshold, mode and the indexes of its two children, a leaf the
//! range of its weights in one array of `(output, weight)` pairs. Evaluating a
//! row walks each tree from its root to a leaf and adds (or takes the min or
//! max of) the leaf's weights into one score per output, then finishes the
//! scores as onnxruntime does: base values, the average, the binary-classifier
//! layouts and the post transform.
//!
//! Being equal to onnxruntime (and not only close) matters for classifiers: a
//! random forest's class scores often tie, and which class wins a tie then
//! depends on the last bit of a float sum. So this follows onnxruntime
//! (`tree_ensemble_common.h`, `tree_ensemble_aggregator.h`, `ml_common.h`)
//! exactly:
//!
//! - Scores are summed in the precision of the thresholds (float32 unless the
//!   model gives them as `*_as_tensor` doubles), tree by tree in the order the
//!   trees first appear, and within a leaf in the order of the weight
//!   attributes; post transforms are computed in float32.
//! - A comparison is made in the type C++ would promote the pair to: the
//!   thresholds are kept as `f64` (exact for float32 ones) and an input value
//!   is widened to `f64`, except integers compared with float32 thresholds,
//!   which go through `f32` first.
//! - A tree's root is the first node listed for it; `nodes_hitrates` is
//!   ignored; weights attached to a split node are ignored.
//! - An output that no visited leaf has a weight for counts as 0 when the
//!   scores are written, and a classifier picks its label only among classes
//!   with a score (the first on ties).
//! - Binary classifiers with one weight column (random forests: all weights
//!   positive, the column is the positive class's probability; gradient
//!   boosting: one raw score, `LOGISTIC`) are expanded to two columns.
//!
//! One deliberate difference: where onnxruntime answers the literal integer
//! label 1 or 0 for a two-class classifier whose weights name both classes, we
//! answer `classlabels[1]` or `classlabels[0]` (the same thing for labels
//! `[0, 1]`, which is what scikit-learn exports give).

use std::collections::HashMap;

/// Why a tree-ensemble node cannot be loaded (reported with the node's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError(pub String);

impl std::fmt::Display for TreeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! tree_err {
    ($($arg:tt)*) => { TreeError(format!($($arg)*)) };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

impl Aggregate {
    pub fn parse(s: &str) -> Result<Aggregate, TreeError> {
        match s {
            "SUM" => Ok(Aggregate::Sum),
            "AVERAGE" => Ok(Aggregate::Average),
            "MIN" => Ok(Aggregate::Min),
            "MAX" => Ok(Aggregate::Max),
            other => Err(tree_err!(
                "unknown aggregate_function `{other}` (expected SUM, AVERAGE, MIN or MAX)"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PostTransform {
    #[default]
    None,
    Softmax,
    Logistic,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub fn parse(s: &str) -> Result<PostTransform, TreeError> {
        match s {
            "NONE" => Ok(PostTransform::None),
            "SOFTMAX" => Ok(PostTransform::Softmax),
            "LOGISTIC" => Ok(PostTransform::Logistic),
            "SOFTMAX_ZERO" => Ok(PostTransform::SoftmaxZero),
            "PROBIT" => Ok(PostTransform::Probit),
            other => Err(tree_err!(
                "unknown post_transform `{other}` (expected NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO or PROBIT)"
            )),
        }
    }
}

/// How a split node compares `x[feature]` with its threshold (true: go to the
/// true child).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, TreeError> {
        match s {
            "BRANCH_LEQ" => Ok(Mode::Leq),
            "BRANCH_LT" => Ok(Mode::Lt),
            "BRANCH_GTE" => Ok(Mode::Gte),
            "BRANCH_GT" => Ok(Mode::Gt),
            "BRANCH_EQ" => Ok(Mode::Eq),
            "BRANCH_NEQ" => Ok(Mode::Neq),
            "LEAF" => Ok(Mode::Leaf),
            other => Err(tree_err!(
                "unknown node mode `{other}` (expected BRANCH_LEQ, BRANCH_LT, BRANCH_GTE, BRANCH_GT, BRANCH_EQ, BRANCH_NEQ or LEAF)"
            )),
        }
    }
}

/// Whether the ensemble's values are float32 (`nodes_values`, weights and
/// base values as float attributes) or float64 (`*_as_tensor`); scores are
/// summed in this precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F64,
}

/// The attributes of a tree-ensemble node, as read from the model. Weights,
/// thresholds and base values are widened to `f64` (exactly, for float32
/// ones); `precision` says which they were.
#[derive(Debug, Clone, Default)]
pub struct TreeAttributes {
    pub nodes_treeids: Vec<i64>,
    pub nodes_nodeids: Vec<i64>,
    pub nodes_featureids: Vec<i64>,
    pub nodes_modes: Vec<String>,
    pub nodes_values: Vec<f64>,
    pub nodes_truenodeids: Vec<i64>,
    pub nodes_falsenodeids: Vec<i64>,
    pub nodes_missing_value_tracks_true: Vec<i64>,
    /// `class_*` for a classifier, `target_*` for a regressor.
    pub leaf_treeids: Vec<i64>,
    pub leaf_nodeids: Vec<i64>,
    pub leaf_ids: Vec<i64>,
    pub leaf_weights: Vec<f64>,
    pub base_values: Vec<f64>,
    pub aggregate: Option<Aggregate>,
    pub post_transform: PostTransform,
    /// Number of classes (classifier) or targets (regressor).
    pub n_outputs: usize,
    pub precision: Option<Precision>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f64,
    feature: u32,
    /// Split: index of the true child. Leaf: index of the first weight.
    a: u32,
    /// Split: index of the false child. Leaf: number of weights.
    b: u32,
    mode: Mode,
    missing_tracks_true: bool,
}

/// Rows walked down a tree together in batches.
const LANES: usize = 8;

/// Float types scores are summed in (`f32` or `f64`, as onnxruntime's
/// `ThresholdType`).
pub trait Score: Copy + PartialOrd + std::fmt::Debug + Send + Sync + 'static {
    const ZERO: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f32(self) -> f32;
    fn add(self, o: Self) -> Self;
    fn div_count(self, n: usize) -> Self;
    fn neg(self) -> Self;
    fn one_minus(self) -> Self;
    /// The input value as onnxruntime compares it with a threshold of this type.
    fn widen_i64(v: i64) -> f64;
    fn greater_than(self, v: f64) -> bool;
}

impl Score for f32 {
    const ZERO: f32 = 0.0;
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn add(self, o: f32) -> f32 {
        self + o
    }
    fn div_count(self, n: usize) -> f32 {
        self / n as f32
    }
    fn neg(self) -> f32 {
        -self
    }
    fn one_minus(self) -> f32 {
        1.0 - self
    }
    fn widen_i64(v: i64) -> f64 {
        f64::from(v as f32)
    }
    fn greater_than(self, v: f64) -> bool {
        f64::from(self) > v
    }
}

impl Score for f64 {
    const ZERO: f64 = 0.0;
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn add(self, o: f64) -> f64 {
        self + o
    }
    fn div_count(self, n: usize) -> f64 {
        self / n as f64
    }
    fn neg(self) -> f64 {
        -self
    }
    fn one_minus(self) -> f64 {
        1.0 - self
    }
    fn widen_i64(v: i64) -> f64 {
        v as f64
    }
    fn greater_than(self, v: f64) -> bool {
        self > v
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot<S> {
    score: S,
    has: bool,
}

impl<S: Score> Slot<S> {
    const EMPTY: Slot<S> = Slot {
        score: S::ZERO,
        has: false,
    };
    /// The value onnxruntime writes for a slot (`ScoreValue::operator T`).
    fn value(self) -> S {
        if self.has { self.score } else { S::ZERO }
    }
}

/// What the ensemble computes: regression targets, or class scores and the
/// index of the winning class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Regressor,
    Classifier {
        /// Exactly one class has weights and there are two classes: the
        /// one-column binary layout.
        binary_case: bool,
        weights_all_positive: bool,
    },
}

/// A flattened tree ensemble, ready to evaluate.
#[derive(Debug, Clone)]
pub struct TreeEnsemble<S> {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    weights: Vec<(u32, S)>,
    /// For one-output ensembles, the first weight of each leaf (by node).
    base_values: Vec<S>,
    aggregate: Aggregate,
    post_transform: PostTransform,
    n_outputs: usize,
    n_features: usize,
    kind: Kind,
    /// Every split is `BRANCH_LEQ` and no node tracks missing values.
    all_leq: bool,
}

/// A tree ensemble in either precision.
#[derive(Debug, Clone)]
pub enum Ensemble {
    F32(TreeEnsemble<f32>),
    F64(TreeEnsemble<f64>),
}

/// Input rows, in the element type the model was given.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I64(&'a [i64]),
    I32(&'a [i32]),
}

impl Rows<'_> {
    pub fn len(&self) -> usize {
        match self {
            Rows::F32(v) => v.len(),
            Rows::F64(v) => v.len(),
            Rows::I64(v) => v.len(),
            Rows::I32(v) => v.len(),
        }
    }
}

impl Ensemble {
    /// Builds an ensemble from a node's attributes, checking them all.
    pub fn build(attrs: &TreeAttributes, kind: Kind) -> Result<Ensemble, TreeError> {
        match attrs.precision.unwrap_or(Precision::F32) {
            Precision::F32 => TreeEnsemble::<f32>::build(attrs, kind).map(Ensemble::F32),
            Precision::F64 => TreeEnsemble::<f64>::build(attrs, kind).map(Ensemble::F64),
        }
    }

    pub fn n_outputs(&self) -> usize {
        match self {
            Ensemble::F32(e) => e.n_outputs,
            Ensemble::F64(e) => e.n_outputs,
        }
    }

    /// The number of input columns the trees read (the largest feature id + 1).
    pub fn n_features(&self) -> usize {
        match self {
            Ensemble::F32(e) => e.n_features,
            Ensemble::F64(e) => e.n_features,
        }
    }

    pub fn n_trees(&self) -> usize {
        match self {
            Ensemble::F32(e) => e.roots.len(),
            Ensemble::F64(e) => e.roots.len(),
        }
    }

    /// Evaluates `n_rows` rows of `width` values each. `scores` receives
    /// `n_rows * n_outputs` values; `labels` (classifiers) one class index
    /// per row.
    pub fn eval(
        &self,
        rows: Rows<'_>,
        n_rows: usize,
        width: usize,
        scores: &mut [f32],
        labels: Option<&mut [usize]>,
    ) -> Result<(), TreeError> {
        match self {
            Ensemble::F32(e) => e.eval(rows, n_rows, width, scores, labels),
            Ensemble::F64(e) => e.eval(rows, n_rows, width, scores, labels),
        }
    }
}

fn check_len<T>(name: &str, v: &[T], n: usize) -> Result<(), TreeError> {
    if v.len() != n {
        return Err(tree_err!(
            "`{name}` has {} entries, `nodes_nodeids` has {n}",
            v.len()
        ));
    }
    Ok(())
}

fn to_u32(what: &str, v: i64) -> Result<u32, TreeError> {
    u32::try_from(v).map_err(|_| tree_err!("{what} {v} is out of range"))
}

impl<S: Score> TreeEnsemble<S> {
    fn build(attrs: &TreeAttributes, kind: Kind) -> Result<TreeEnsemble<S>, TreeError> {
        let n = attrs.nodes_nodeids.len();
        if n == 0 {
            return Err(tree_err!("the ensemble has no nodes"));
        }
        if u32::try_from(n).is_err() || u32::try_from(attrs.leaf_ids.len()).is_err() {
            return Err(tree_err!("the ensemble has too many nodes or weights"));
        }
        check_len("nodes_treeids", &attrs.nodes_treeids, n)?;
        check_len("nodes_featureids", &attrs.nodes_featureids, n)?;
        check_len("nodes_modes", &attrs.nodes_modes, n)?;
        check_len("nodes_values", &attrs.nodes_values, n)?;
        check_len("nodes_truenodeids", &attrs.nodes_truenodeids, n)?;
        check_len("nodes_falsenodeids", &attrs.nodes_falsenodeids, n)?;
        if !attrs.nodes_missing_value_tracks_true.is_empty() {
            check_len(
                "nodes_missing_value_tracks_true",
                &attrs.nodes_missing_value_tracks_true,
                n,
            )?;
        }
        let n_weights = attrs.leaf_ids.len();
        for (name, len) in [
            ("treeids", attrs.leaf_treeids.len()),
            ("nodeids", attrs.leaf_nodeids.len()),
            ("weights", attrs.leaf_weights.len()),
        ] {
            if len != n_weights {
                return Err(tree_err!(
                    "the leaf attributes disagree: `*_{name}` has {len} entries, `*_ids` has {n_weights}"
                ));
            }
        }
        let n_outputs = attrs.n_outputs;
        if n_outputs == 0 {
            return Err(tree_err!(
                "the ensemble has no outputs (no classes or `n_targets` = 0)"
            ));
        }
        if matches!(kind, Kind::Classifier { .. }) && n_outputs < 2 {
            return Err(tree_err!(
                "a classifier needs at least two class labels, this one has {n_outputs}"
            ));
        }
        let nb = attrs.base_values.len();
        if nb != 0 && nb != 1 && nb != n_outputs {
            return Err(tree_err!(
                "`base_values` has {nb} entries; expected 0, 1 or {n_outputs} (one per output)"
            ));
        }

        // Nodes, in the order given; (tree, node id) -> index.
        let mut index: HashMap<(i64, i64), u32> = HashMap::with_capacity(n);
        let mut nodes = Vec::with_capacity(n);
        let mut roots: Vec<u32> = Vec::new();
        let mut seen_trees: HashMap<i64, ()> = HashMap::new();
        let mut n_features = 0usize;
        for i in 0..n {
            let tree = attrs.nodes_treeids[i];
            let id = attrs.nodes_nodeids[i];
            let ix = i as u32; // n fits u32, checked above
            if roots.is_empty() || attrs.nodes_treeids[i - 1] != tree {
                if seen_trees.insert(tree, ()).is_some() {
                    return Err(tree_err!(
                        "the nodes of tree {tree} are not listed together (node {id} comes after another tree's)"
                    ));
                }
                roots.push(ix);
            }
            if index.insert((tree, id), ix).is_some() {
                return Err(tree_err!("node {id} of tree {tree} is listed twice"));
            }
            let mode = Mode::parse(&attrs.nodes_modes[i])?;
            let feature = attrs.nodes_featureids[i];
            let feature = if mode == Mode::Leaf {
                0
            } else {
                let f = to_u32("feature id", feature)?;
                n_features = n_features.max(f as usize + 1);
                f
            };
            nodes.push(Node {
                threshold: attrs.nodes_values[i],
                feature,
                a: 0,
                b: 0,
                mode,
                missing_tracks_true: attrs
                    .nodes_missing_value_tracks_true
                    .get(i)
                    .is_some_and(|&v| v == 1),
            });
        }
        // Children.
        for (i, node) in nodes.iter_mut().enumerate() {
            if node.mode == Mode::Leaf {
                continue;
            }
            let tree = attrs.nodes_treeids[i];
            let id = attrs.nodes_nodeids[i];
            let child = |which: &str, child: i64| -> Result<u32, TreeError> {
                let c = *index.get(&(tree, child)).ok_or_else(|| {
                    tree_err!(
                        "node {id} of tree {tree} names {which} child {child}, which does not exist"
                    )
                })?;
                if c as usize == i {
                    return Err(tree_err!(
                        "node {id} of tree {tree} is its own {which} child"
                    ));
                }
                Ok(c)
            };
            node.a = child("true", attrs.nodes_truenodeids[i])?;
            node.b = child("false", attrs.nodes_falsenodeids[i])?;
        }
        // Weights, sorted by (tree, node) and then by their order in the
        // attributes (onnxruntime's sort of (id, position) pairs).
        let mut order: Vec<usize> = (0..n_weights).collect();
        order.sort_by_key(|&k| (attrs.leaf_treeids[k], attrs.leaf_nodeids[k], k));
        let mut weights: Vec<(u32, S)> = Vec::with_capacity(n_weights);
        let mut weights_all_positive = true;
        let mut classes_with_weights: Vec<bool> = vec![false; n_outputs];
        for &k in &order {
            let (tree, id) = (attrs.leaf_treeids[k], attrs.leaf_nodeids[k]);
            let &ix = index.get(&(tree, id)).ok_or_else(|| {
                tree_err!("a weight is attached to node {id} of tree {tree}, which does not exist")
            })?;
            let target = attrs.leaf_ids[k];
            let target = usize::try_from(target)
                .ok()
                .filter(|&t| t < n_outputs)
                .ok_or_else(|| {
                    tree_err!(
                        "a weight of node {id} of tree {tree} is for output {target}; the ensemble has {n_outputs}"
                    )
                })?;
            let w = attrs.leaf_weights[k];
            // onnxruntime looks at every weight here, even those attached to
            // split nodes (which it then ignores).
            if w < 0.0 {
                weights_all_positive = false;
            }
            classes_with_weights[target] = true;
            let node = &mut nodes[ix as usize];
            if node.mode != Mode::Leaf {
                continue;
            }
            if node.b == 0 {
                node.a = weights.len() as u32;
            }
            node.b += 1;
            weights.push((target as u32, S::from_f64(w)));
        }
        for (i, node) in nodes.iter().enumerate() {
            if node.mode == Mode::Leaf && node.b == 0 {
                return Err(tree_err!(
                    "leaf {} of tree {} has no weight",
                    attrs.nodes_nodeids[i],
                    attrs.nodes_treeids[i]
                ));
            }
        }
        check_acyclic(&nodes, &roots, attrs)?;

        let kind = match kind {
            Kind::Regressor => Kind::Regressor,
            Kind::Classifier { .. } => Kind::Classifier {
                binary_case: n_outputs == 2
                    && classes_with_weights.iter().filter(|&&c| c).count() == 1,
                weights_all_positive,
            },
        };
        let all_leq = nodes
            .iter()
            .all(|n| n.mode == Mode::Leaf || (n.mode == Mode::Leq && !n.missing_tracks_true));
        Ok(TreeEnsemble {
            all_leq,
            nodes,
            roots,
            weights,
            base_values: attrs.base_values.iter().map(|&v| S::from_f64(v)).collect(),
            aggregate: attrs.aggregate.unwrap_or(Aggregate::Sum),
            post_transform: attrs.post_transform,
            n_outputs,
            n_features,
            kind,
        })
    }

    #[inline]
    fn leaf(&self, root: u32, x: &[f64]) -> &Node {
        let mut node = &self.nodes[root as usize];
        if self.all_leq {
            // What scikit-learn exports: every split `x <= t`, no missing
            // values tracked.
            while node.mode != Mode::Leaf {
                let go_true = x[node.feature as usize] <= node.threshold;
                node = &self.nodes[if go_true { node.a } else { node.b } as usize];
            }
            return node;
        }
        while node.mode != Mode::Leaf {
            let v = x[node.feature as usize];
            let t = node.threshold;
            let go_true = match node.mode {
                Mode::Leq => v <= t,
                Mode::Lt => v < t,
                Mode::Gte => v >= t,
                Mode::Gt => v > t,
                Mode::Eq => v == t,
                Mode::Neq => v != t,
                Mode::Leaf => false,
            } || (node.missing_tracks_true && v.is_nan());
            node = &self.nodes[if go_true { node.a } else { node.b } as usize];
        }
        node
    }

    fn eval(
        &self,
        rows: Rows<'_>,
        n_rows: usize,
        width: usize,
        scores: &mut [f32],
        mut labels: Option<&mut [usize]>,
    ) -> Result<(), TreeError> {
        if width < self.n_features {
            return Err(tree_err!(
                "the trees read feature {} but the input has {width} columns",
                self.n_features.saturating_sub(1)
            ));
        }
        let n_out = self.n_outputs;
        if rows.len() != n_rows * width || scores.len() != n_rows * n_out {
            return Err(tree_err!("inconsistent buffer sizes"));
        }
        if let Some(l) = &labels
            && l.len() != n_rows
        {
            return Err(tree_err!("inconsistent buffer sizes"));
        }
        // Every value widened once, as it is compared with the thresholds.
        let x: Vec<f64> = match rows {
            Rows::F32(v) => v.iter().map(|&v| f64::from(v)).collect(),
            Rows::F64(v) => v.to_vec(),
            Rows::I64(v) => v.iter().map(|&v| S::widen_i64(v)).collect(),
            Rows::I32(v) => v.iter().map(|&v| S::widen_i64(i64::from(v))).collect(),
        };
        // Trees outside, rows inside (one tree stays in cache for all the
        // rows); each row still adds its trees in order, so the sums are
        // those of onnxruntime's row-by-row loop.
        let mut acc = vec![Slot::<S>::EMPTY; n_rows * n_out];
        for &root in &self.roots {
            let mut r = 0;
            if self.all_leq {
                // Several rows down the same tree at once: their walks are
                // independent, so the processor overlaps their loads.
                while r + LANES <= n_rows {
                    let leaves = self.leaves_leq(root, &x[r * width..(r + LANES) * width], width);
                    for (k, &leaf) in leaves.iter().enumerate() {
                        let slots = &mut acc[(r + k) * n_out..(r + k + 1) * n_out];
                        self.add_leaf(slots, &self.nodes[leaf as usize]);
                    }
                    r += LANES;
                }
            }
            for r in r..n_rows {
                let leaf = self.leaf(root, &x[r * width..(r + 1) * width]);
                self.add_leaf(&mut acc[r * n_out..(r + 1) * n_out], leaf);
            }
        }
        for (r, (slots, out)) in acc
            .chunks_exact_mut(n_out)
            .zip(scores.chunks_exact_mut(n_out))
            .enumerate()
        {
            let label = if n_out == 1 {
                self.finish_one(slots[0], out);
                0
            } else {
                self.finish(slots, out)
            };
            if let Some(l) = labels.as_deref_mut() {
                l[r] = label;
            }
        }
        Ok(())
    }

    /// The leaves `LANES` rows reach in one tree whose splits are all
    /// `BRANCH_LEQ` without missing values (`x` holds the rows).
    #[inline]
    fn leaves_leq(&self, root: u32, x: &[f64], width: usize) -> [u32; LANES] {
        let mut at = [root; LANES];
        loop {
            let mut moved = false;
            for (k, ix) in at.iter_mut().enumerate() {
                let node = &self.nodes[*ix as usize];
                if node.mode != Mode::Leaf {
                    let go_true = x[k * width + node.feature as usize] <= node.threshold;
                    *ix = if go_true { node.a } else { node.b };
                    moved = true;
                }
            }
            if !moved {
                return at;
            }
        }
    }

    #[inline]
    fn add_leaf(&self, slots: &mut [Slot<S>], leaf: &Node) {
        if self.n_outputs == 1 {
            self.add_one(&mut slots[0], leaf);
        } else {
            self.add(slots, leaf);
        }
    }

    /// onnxruntime's one-output path: one score, the leaf's first weight.
    #[inline]
    fn add_one(&self, s: &mut Slot<S>, leaf: &Node) {
        let w = self.weights[leaf.a as usize].1;
        match self.aggregate {
            Aggregate::Sum | Aggregate::Average => s.score = s.score.add(w),
            Aggregate::Min => {
                if !s.has || w < s.score {
                    s.score = w;
                }
                s.has = true;
            }
            Aggregate::Max => {
                if !s.has || w > s.score {
                    s.score = w;
                }
                s.has = true;
            }
        }
    }

    #[inline]
    fn add(&self, slots: &mut [Slot<S>], leaf: &Node) {
        let ws = &self.weights[leaf.a as usize..(leaf.a + leaf.b) as usize];
        for &(t, w) in ws {
            let slot = &mut slots[t as usize];
            match self.aggregate {
                Aggregate::Sum | Aggregate::Average => slot.score = slot.score.add(w),
                Aggregate::Min => {
                    if !slot.has || w < slot.score {
                        slot.score = w;
                    }
                }
                Aggregate::Max => {
                    if !slot.has || w > slot.score {
                        slot.score = w;
                    }
                }
            }
            slot.has = true;
        }
    }

    fn finish_one(&self, s: Slot<S>, out: &mut [f32]) {
        let origin = if self.base_values.len() == 1 {
            self.base_values[0]
        } else {
            S::ZERO
        };
        let v = match self.aggregate {
            Aggregate::Sum => s.score.add(origin),
            Aggregate::Average => s.score.div_count(self.roots.len()).add(origin),
            Aggregate::Min | Aggregate::Max => {
                if s.has {
                    s.score.add(origin)
                } else {
                    origin
                }
            }
        };
        out[0] = if self.post_transform == PostTransform::Probit {
            probit(v.to_f32())
        } else {
            v.to_f32()
        };
    }

    /// Base values, averages, the classifier's label and binary layouts, the
    /// post transform: fills `out` (n_outputs scores) from one row's sums and
    /// returns the class index (0 for regressors).
    fn finish(&self, slots: &mut [Slot<S>], out: &mut [f32]) -> usize {
        let n_out = self.n_outputs;
        let use_base = self.base_values.len() == n_out;
        match &self.kind {
            Kind::Regressor => {
                match self.aggregate {
                    Aggregate::Sum => {
                        if use_base {
                            for (s, &b) in slots.iter_mut().zip(&self.base_values) {
                                s.score = s.score.add(b);
                            }
                        }
                    }
                    Aggregate::Average => {
                        let n = self.roots.len();
                        for (j, s) in slots.iter_mut().enumerate() {
                            s.score = s.score.div_count(n);
                            if use_base {
                                s.score = s.score.add(self.base_values[j]);
                            }
                        }
                    }
                    Aggregate::Min | Aggregate::Max => {
                        for (j, s) in slots.iter_mut().enumerate() {
                            let base = if use_base {
                                self.base_values[j]
                            } else {
                                S::ZERO
                            };
                            s.score = base.add(s.value());
                        }
                    }
                }
                write_scores(slots, self.post_transform, out, None);
                0
            }
            Kind::Classifier {
                binary_case,
                weights_all_positive,
            } => {
                // Classifiers always sum (onnxruntime ignores their aggregate).
                if n_out > 2 {
                    for (s, &b) in slots.iter_mut().zip(&self.base_values) {
                        if s.has {
                            s.score = s.score.add(b);
                        } else {
                            s.has = true;
                            s.score = b;
                        }
                    }
                    let mut best: Option<(usize, S)> = None;
                    for (j, s) in slots.iter().enumerate() {
                        if s.has && best.is_none_or(|(_, m)| s.score > m) {
                            best = Some((j, s.score));
                        }
                    }
                    write_scores(slots, self.post_transform, out, None);
                    return best.map_or(0, |(j, _)| j);
                }
                // Two classes.
                let mut len = 2;
                let mut layout: Option<BinaryLayout> = None;
                match self.base_values.len() {
                    2 => {
                        if slots[1].has {
                            // onnxruntime uses class 0's score here (and
                            // assumes both base values are equal).
                            slots[1].score = self.base_values[1].add(slots[0].score);
                            slots[0].score = slots[1].score.neg();
                        } else {
                            slots[1].score = slots[1].score.add(self.base_values[1]);
                            slots[0].score = slots[0].score.add(self.base_values[0]);
                        }
                    }
                    1 => {
                        slots[0].score = slots[0].score.add(self.base_values[0]);
                        if !slots[1].has {
                            len = 1;
                        }
                    }
                    _ => {
                        layout = Some(BinaryLayout::MixedNegative);
                        if !slots[1].has {
                            len = 1;
                        }
                    }
                }
                let pos = if len == 2 && slots[1].has {
                    slots[1].score
                } else if slots[0].has {
                    slots[0].score
                } else {
                    S::ZERO
                };
                let label = if *binary_case {
                    let (l, label) = match (
                        weights_all_positive,
                        pos.greater_than(0.5),
                        pos.greater_than(0.0),
                    ) {
                        (true, true, _) => (BinaryLayout::PositivePositive, 1),
                        (true, false, _) => (BinaryLayout::PositiveNegative, 0),
                        (false, _, true) => (BinaryLayout::MixedPositive, 1),
                        (false, _, false) => (BinaryLayout::MixedNegative, 0),
                    };
                    layout = Some(l);
                    label
                } else {
                    usize::from(pos.greater_than(0.0))
                };
                write_scores(&mut slots[..len], self.post_transform, out, layout);
                label
            }
        }
    }
}

/// onnxruntime's `add_second_class` codes 0-3: how a one-column binary score
/// becomes two columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinaryLayout {
    /// All weights positive, positive class wins: `[1 - s, s]`.
    PositivePositive,
    /// All weights positive, negative class wins: `[1 - s, s]`.
    PositiveNegative,
    /// Mixed weights, positive class wins: `[-s, s]` or logistic of both.
    MixedPositive,
    /// Mixed weights, negative class wins: as `MixedPositive`.
    MixedNegative,
}

/// onnxruntime's `write_scores`: the post transform, in float32. Writes
/// `out.len()` values at most; values it leaves alone are set to 0.
fn write_scores<S: Score>(
    slots: &mut [Slot<S>],
    post: PostTransform,
    out: &mut [f32],
    layout: Option<BinaryLayout>,
) {
    out.fill(0.0);
    if slots.len() >= 2 {
        let n = slots.len().min(out.len());
        for (o, s) in out.iter_mut().zip(slots.iter()) {
            *o = s.value().to_f32();
        }
        let vals = &mut out[..n];
        match post {
            PostTransform::None => {}
            PostTransform::Probit => vals.iter_mut().for_each(|v| *v = probit(*v)),
            PostTransform::Logistic => vals.iter_mut().for_each(|v| *v = logistic(*v)),
            PostTransform::Softmax => softmax(vals),
            PostTransform::SoftmaxZero => softmax_zero(vals),
        }
        return;
    }
    let Some(first) = slots.first() else { return };
    let s = first.value();
    if post == PostTransform::Probit {
        out[0] = probit(s.to_f32());
        return;
    }
    let pair = match layout {
        Some(BinaryLayout::PositivePositive | BinaryLayout::PositiveNegative) => {
            Some([s.one_minus().to_f32(), s.to_f32()])
        }
        Some(BinaryLayout::MixedPositive | BinaryLayout::MixedNegative) => {
            if post == PostTransform::Logistic {
                Some([logistic(s.neg().to_f32()), logistic(s.to_f32())])
            } else {
                Some([s.neg().to_f32(), s.to_f32()])
            }
        }
        None => None,
    };
    match pair {
        Some(p) if out.len() >= 2 => out[..2].copy_from_slice(&p),
        _ => out[0] = s.to_f32(),
    }
}

pub(crate) fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - e } else { e }
}

/// onnxruntime's approximation of erf⁻¹ (Winitzki's, in float32).
pub(crate) fn erf_inv(x: f32) -> f32 {
    let sgn = if x < 0.0 { -1.0f32 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sgn * v3.sqrt()
}

pub(crate) fn probit(v: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * v - 1.0)
}

pub(crate) fn softmax(v: &mut [f32]) {
    let mut max = -f32::MAX;
    for &x in v.iter() {
        if x > max {
            max = x;
        }
    }
    let mut sum = 0f32;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

/// Softmax that leaves (near-)zero scores at zero.
pub(crate) fn softmax_zero(v: &mut [f32]) {
    let mut max = -f32::MAX;
    for &x in v.iter() {
        if x > max {
            max = x;
        }
    }
    let exp_neg_max = (-max).exp();
    let mut sum = 0f32;
    for x in v.iter_mut() {
        if *x > 0.000_000_1 || *x < -0.000_000_1 {
            *x = (*x - max).exp();
            sum += *x;
        } else {
            *x *= exp_neg_max;
        }
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

/// Every tree must be a tree: walking from its root never comes back to a
/// node on the current path (a cycle would make evaluation loop forever).
fn check_acyclic(nodes: &[Node], roots: &[u32], attrs: &TreeAttributes) -> Result<(), TreeError> {
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; nodes.len()];
    for &root in roots {
        let mut stack: Vec<(u32, u8)> = vec![(root, 0)];
        while let Some((ix, step)) = stack.pop() {
            let node = &nodes[ix as usize];
            if step == 0 {
                if state[ix as usize] == 1 {
                    return Err(tree_err!(
                        "tree {} has a cycle through node {}",
                        attrs.nodes_treeids[ix as usize],
                        attrs.nodes_nodeids[ix as usize]
                    ));
                }
                if state[ix as usize] == 2 {
                    continue;
                }
                state[ix as usize] = 1;
                stack.push((ix, 1));
                if node.mode != Mode::Leaf {
                    stack.push((node.b, 0));
                    stack.push((node.a, 0));
                }
            } else {
                state[ix as usize] = 2;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Nodes as `(tree, id, feature, mode, threshold, true id, false id)`.
    type NodeRow = (i64, i64, i64, &'static str, f64, i64, i64);

    fn attrs(
        nodes: &[NodeRow],
        weights: &[(i64, i64, i64, f64)],
        n_outputs: usize,
    ) -> TreeAttributes {
        TreeAttributes {
            nodes_treeids: nodes.iter().map(|n| n.0).collect(),
            nodes_nodeids: nodes.iter().map(|n| n.1).collect(),
            nodes_featureids: nodes.iter().map(|n| n.2).collect(),
            nodes_modes: nodes.iter().map(|n| n.3.to_owned()).collect(),
            nodes_values: nodes.iter().map(|n| n.4).collect(),
            nodes_truenodeids: nodes.iter().map(|n| n.5).collect(),
            nodes_falsenodeids: nodes.iter().map(|n| n.6).collect(),
            leaf_treeids: weights.iter().map(|w| w.0).collect(),
            leaf_nodeids: weights.iter().map(|w| w.1).collect(),
            leaf_ids: weights.iter().map(|w| w.2).collect(),
            leaf_weights: weights.iter().map(|w| w.3).collect(),
            n_outputs,
            ..TreeAttributes::default()
        }
    }

    /// One split on feature 0 at `t`: true leaf weighs 10, false leaf 20.
    fn stump(mode: &'static str, t: f64) -> TreeAttributes {
        attrs(
            &[
                (0, 0, 0, mode, t, 1, 2),
                (0, 1, 0, "LEAF", 0.0, 0, 0),
                (0, 2, 0, "LEAF", 0.0, 0, 0),
            ],
            &[(0, 1, 0, 10.0), (0, 2, 0, 20.0)],
            1,
        )
    }

    fn regress(a: &TreeAttributes, x: &[f32], width: usize) -> Vec<f32> {
        let e = Ensemble::build(a, Kind::Regressor).unwrap();
        let rows = x.len() / width;
        let mut out = vec![0f32; rows * e.n_outputs()];
        e.eval(Rows::F32(x), rows, width, &mut out, None).unwrap();
        out
    }

    fn classify(a: &TreeAttributes, x: &[f32], width: usize) -> (Vec<usize>, Vec<f32>) {
        let kind = Kind::Classifier {
            binary_case: false,
            weights_all_positive: true,
        };
        let e = Ensemble::build(a, kind).unwrap();
        let rows = x.len() / width;
        let mut out = vec![0f32; rows * e.n_outputs()];
        let mut labels = vec![99usize; rows];
        e.eval(Rows::F32(x), rows, width, &mut out, Some(&mut labels))
            .unwrap();
        (labels, out)
    }

    const NAN: f32 = f32::NAN;

    #[test]
    fn every_node_mode() {
        // x = 0.5, 1.0 (on the threshold), 1.5, NaN; 10 = true branch.
        let cases = [
            ("BRANCH_LEQ", [10.0, 10.0, 20.0, 20.0]),
            ("BRANCH_LT", [10.0, 20.0, 20.0, 20.0]),
            ("BRANCH_GTE", [20.0, 10.0, 10.0, 20.0]),
            ("BRANCH_GT", [20.0, 20.0, 10.0, 20.0]),
            ("BRANCH_EQ", [20.0, 10.0, 20.0, 20.0]),
            ("BRANCH_NEQ", [10.0, 20.0, 10.0, 10.0]),
        ];
        for (mode, expected) in cases {
            assert_eq!(
                regress(&stump(mode, 1.0), &[0.5, 1.0, 1.5, NAN], 1),
                expected,
                "{mode}"
            );
        }
    }

    #[test]
    fn missing_values_tracking_true() {
        for mode in [
            "BRANCH_LEQ",
            "BRANCH_LT",
            "BRANCH_GTE",
            "BRANCH_GT",
            "BRANCH_EQ",
            "BRANCH_NEQ",
        ] {
            let mut a = stump(mode, 1.0);
            a.nodes_missing_value_tracks_true = vec![1, 0, 0];
            let out = regress(&a, &[NAN, 1.0], 1);
            assert_eq!(out[0], 10.0, "{mode}: NaN goes to the true branch");
            assert_eq!(
                out[1],
                regress(&stump(mode, 1.0), &[1.0], 1)[0],
                "{mode}: values unchanged"
            );
        }
    }

    #[test]
    fn thresholds_compare_in_the_promoted_type() {
        // A float32 threshold of 0.1 is 0.1f32; a double one is 0.1.
        let x = [0.1f32];
        assert_eq!(
            regress(&stump("BRANCH_LEQ", f64::from(0.1f32)), &x, 1),
            [10.0]
        );
        let mut double = stump("BRANCH_LEQ", 0.1);
        double.precision = Some(Precision::F64);
        assert_eq!(regress(&double, &x, 1), [20.0], "0.1f32 > 0.1 in double");
        // int64 against float32 thresholds goes through float32 (2^24 + 1
        // rounds to 2^24), against doubles it does not.
        let big = [16_777_217i64];
        let eval = |a: &TreeAttributes| {
            let e = Ensemble::build(a, Kind::Regressor).unwrap();
            let mut out = [0f32];
            e.eval(Rows::I64(&big), 1, 1, &mut out, None).unwrap();
            out[0]
        };
        assert_eq!(eval(&stump("BRANCH_LEQ", 16_777_216.0)), 10.0);
        let mut double = stump("BRANCH_LEQ", 16_777_216.0);
        double.precision = Some(Precision::F64);
        assert_eq!(eval(&double), 20.0);
    }

    #[test]
    fn root_is_the_first_listed_node_and_ids_are_per_tree() {
        // Tree 7 listed root first with ids 5, 3, 4; tree 2 reuses the ids.
        let a = attrs(
            &[
                (7, 5, 1, "BRANCH_LEQ", 0.0, 3, 4),
                (7, 3, 0, "LEAF", 0.0, 0, 0),
                (7, 4, 0, "LEAF", 0.0, 0, 0),
                (2, 5, 0, "LEAF", 0.0, 0, 0),
            ],
            &[(7, 3, 0, 1.0), (7, 4, 0, 2.0), (2, 5, 0, 100.0)],
            1,
        );
        assert_eq!(regress(&a, &[9.0, -1.0, 9.0, 1.0], 2), [101.0, 102.0]);
    }

    fn two_trees(aggregate: Aggregate, base: &[f64]) -> TreeAttributes {
        let mut a = attrs(
            &[
                (0, 0, 0, "BRANCH_LEQ", 0.0, 1, 2),
                (0, 1, 0, "LEAF", 0.0, 0, 0),
                (0, 2, 0, "LEAF", 0.0, 0, 0),
                (1, 0, 0, "BRANCH_LEQ", 5.0, 1, 2),
                (1, 1, 0, "LEAF", 0.0, 0, 0),
                (1, 2, 0, "LEAF", 0.0, 0, 0),
            ],
            &[
                (0, 1, 0, 1.0),
                (0, 2, 0, 4.0),
                (1, 1, 0, 2.0),
                (1, 2, 0, 10.0),
            ],
            1,
        );
        a.aggregate = Some(aggregate);
        a.base_values = base.to_vec();
        a
    }

    #[test]
    fn aggregates_and_base_values() {
        // x = 1: leaves 4 and 2; x = 6: leaves 4 and 10.
        let x = [1.0, 6.0];
        assert_eq!(regress(&two_trees(Aggregate::Sum, &[]), &x, 1), [6.0, 14.0]);
        assert_eq!(
            regress(&two_trees(Aggregate::Average, &[]), &x, 1),
            [3.0, 7.0]
        );
        assert_eq!(regress(&two_trees(Aggregate::Min, &[]), &x, 1), [2.0, 4.0]);
        assert_eq!(regress(&two_trees(Aggregate::Max, &[]), &x, 1), [4.0, 10.0]);
        assert_eq!(
            regress(&two_trees(Aggregate::Sum, &[0.5]), &x, 1),
            [6.5, 14.5]
        );
        assert_eq!(
            regress(&two_trees(Aggregate::Average, &[0.5]), &x, 1),
            [3.5, 7.5]
        );
        assert_eq!(
            regress(&two_trees(Aggregate::Max, &[-1.0]), &x, 1),
            [3.0, 9.0]
        );
    }

    #[test]
    fn several_targets() {
        // Two targets; tree 0's left leaf has no weight for target 1.
        let mut a = attrs(
            &[
                (0, 0, 0, "BRANCH_LEQ", 0.0, 1, 2),
                (0, 1, 0, "LEAF", 0.0, 0, 0),
                (0, 2, 0, "LEAF", 0.0, 0, 0),
            ],
            &[(0, 1, 0, 1.0), (0, 2, 0, 2.0), (0, 2, 1, 3.0)],
            2,
        );
        assert_eq!(regress(&a, &[-1.0, 1.0], 1), [1.0, 0.0, 2.0, 3.0]);
        // An output no leaf scored stays 0 even with a base value (as in
        // onnxruntime, which writes only scored outputs' sums).
        a.base_values = vec![10.0, 20.0];
        assert_eq!(regress(&a, &[-1.0, 1.0], 1), [11.0, 0.0, 12.0, 23.0]);
        a.base_values.clear();
        a.post_transform = PostTransform::Softmax;
        let out = regress(&a, &[1.0], 1);
        assert!((out[0] - logistic(-1.0)).abs() < 1e-7 && (out[1] - logistic(1.0)).abs() < 1e-7);
    }

    /// A one-split forest for three classes: left leaf votes class 0, right
    /// leaf splits its vote between classes 1 and 2.
    fn three_classes(right: (f64, f64)) -> TreeAttributes {
        attrs(
            &[
                (0, 0, 0, "BRANCH_LEQ", 0.0, 1, 2),
                (0, 1, 0, "LEAF", 0.0, 0, 0),
                (0, 2, 0, "LEAF", 0.0, 0, 0),
            ],
            &[(0, 1, 0, 1.0), (0, 2, 1, right.0), (0, 2, 2, right.1)],
            3,
        )
    }

    #[test]
    fn multiclass_labels_ties_and_unscored_classes() {
        let (labels, scores) = classify(&three_classes((0.25, 0.75)), &[-1.0, 1.0], 1);
        assert_eq!(labels, [0, 2]);
        assert_eq!(scores, [1.0, 0.0, 0.0, 0.0, 0.25, 0.75]);
        // Ties go to the first class.
        let (labels, _) = classify(&three_classes((0.5, 0.5)), &[1.0], 1);
        assert_eq!(labels, [1]);
        // Only classes with a score compete: class 0 has none on the right,
        // so a negative score for class 1 still wins over it.
        let (labels, scores) = classify(&three_classes((-0.5, -0.75)), &[1.0], 1);
        assert_eq!(labels, [1]);
        assert_eq!(scores, [0.0, -0.5, -0.75]);
        // Base values give every class a score.
        let mut a = three_classes((-0.5, -0.75));
        a.base_values = vec![0.0, 0.0, 0.0];
        assert_eq!(classify(&a, &[1.0], 1).0, [0]);
        // SOFTMAX over all three (an unscored class counts as 0).
        let mut a = three_classes((1.0, 2.0));
        a.post_transform = PostTransform::Softmax;
        let (labels, scores) = classify(&a, &[1.0], 1);
        assert_eq!(labels, [2]);
        let e: Vec<f32> = [0f32, 1.0, 2.0].iter().map(|v| (v - 2.0).exp()).collect();
        let sum: f32 = e.iter().sum();
        for (s, e) in scores.iter().zip(&e) {
            assert!((s - e / sum).abs() < 1e-7, "{scores:?}");
        }
        // SOFTMAX_ZERO keeps a zero score at zero.
        a.post_transform = PostTransform::SoftmaxZero;
        let (_, scores) = classify(&a, &[1.0], 1);
        assert_eq!(scores[0], 0.0);
        assert!((scores[1] + scores[2] - 1.0).abs() < 1e-6);
    }

    fn binary(
        weights: &[(i64, i64, i64, f64)],
        base: &[f64],
        post: PostTransform,
    ) -> TreeAttributes {
        let mut a = attrs(
            &[
                (0, 0, 0, "BRANCH_LEQ", 0.0, 1, 2),
                (0, 1, 0, "LEAF", 0.0, 0, 0),
                (0, 2, 0, "LEAF", 0.0, 0, 0),
            ],
            weights,
            2,
        );
        a.base_values = base.to_vec();
        a.post_transform = post;
        a
    }

    #[test]
    fn binary_random_forest_layout() {
        // One weight column with the positive class's probability.
        let a = binary(&[(0, 1, 0, 0.5), (0, 2, 0, 0.7)], &[], PostTransform::None);
        let (labels, scores) = classify(&a, &[-1.0, 1.0], 1);
        assert_eq!(
            labels,
            [0, 1],
            "0.5 is not > 0.5: the negative class wins ties"
        );
        assert_eq!(scores, [0.5, 0.5, 1.0 - 0.7f32, 0.7]);
    }

    #[test]
    fn binary_gradient_boosting_layout() {
        // One raw score column with mixed signs, one base value, LOGISTIC.
        let a = binary(
            &[(0, 1, 0, -1.0), (0, 2, 0, 0.25)],
            &[0.5],
            PostTransform::Logistic,
        );
        let (labels, scores) = classify(&a, &[-1.0, 1.0], 1);
        assert_eq!(labels, [0, 1]);
        let (s0, s1) = (-0.5f32, 0.75f32);
        assert_eq!(
            scores,
            [logistic(-s0), logistic(s0), logistic(-s1), logistic(s1)]
        );
        // Without a transform: [-s, s].
        let a = binary(
            &[(0, 1, 0, -1.0), (0, 2, 0, 0.25)],
            &[0.5],
            PostTransform::None,
        );
        assert_eq!(classify(&a, &[1.0], 1).1, [-0.75, 0.75]);
    }

    #[test]
    fn binary_with_both_columns() {
        // Weights for both classes: not the one-column layout; the label is
        // the positive class when its score is > 0.
        let a = binary(
            &[
                (0, 1, 0, 0.9),
                (0, 1, 1, 0.1),
                (0, 2, 0, 0.2),
                (0, 2, 1, 0.8),
            ],
            &[],
            PostTransform::None,
        );
        let (labels, scores) = classify(&a, &[-1.0, 1.0], 1);
        assert_eq!(
            labels,
            [1, 1],
            "onnxruntime: positive whenever its score > 0"
        );
        assert_eq!(scores, [0.9, 0.1, 0.2, 0.8]);
    }

    #[test]
    fn probit_and_logistic_match_onnxruntime_formulas() {
        assert_eq!(probit(0.5), 0.0);
        assert!(
            (probit(0.975) - 1.959_964).abs() < 5e-3,
            "{}",
            probit(0.975)
        );
        assert!((probit(0.025) + 1.959_964).abs() < 5e-3);
        assert_eq!(logistic(0.0), 0.5);
        assert!((logistic(2.0) - 0.880_797_1).abs() < 1e-7);
        assert!((logistic(-2.0) - 0.119_202_9).abs() < 1e-7);
        let mut a = stump("BRANCH_LEQ", 0.0);
        a.post_transform = PostTransform::Probit;
        a.leaf_weights = vec![0.975, 0.5];
        assert_eq!(regress(&a, &[-1.0, 1.0], 1), [probit(0.975), 0.0]);
    }

    #[test]
    fn double_precision_sums() {
        let mut a = two_trees(Aggregate::Sum, &[]);
        a.leaf_weights = vec![0.1, 0.1, 0.2, 0.2];
        a.precision = Some(Precision::F64);
        let out = regress(&a, &[1.0], 1);
        assert_eq!(out[0], (0.1f64 + 0.2f64) as f32);
        a.precision = Some(Precision::F32);
        let out = regress(&a, &[1.0], 1);
        assert_eq!(out[0], 0.1f32 + 0.2f32);
    }

    #[test]
    fn other_input_types() {
        let e = Ensemble::build(&stump("BRANCH_LEQ", 1.0), Kind::Regressor).unwrap();
        let mut out = [0f32; 3];
        e.eval(Rows::F64(&[1.0, 1.0000001, f64::NAN]), 3, 1, &mut out, None)
            .unwrap();
        assert_eq!(out, [10.0, 20.0, 20.0]);
        e.eval(Rows::I32(&[0, 1, 2]), 3, 1, &mut out, None).unwrap();
        assert_eq!(out, [10.0, 10.0, 20.0]);
    }

    fn build_err(a: &TreeAttributes) -> String {
        Ensemble::build(a, Kind::Regressor).unwrap_err().0
    }

    #[test]
    fn malformed_ensembles_are_refused() {
        let ok = stump("BRANCH_LEQ", 1.0);
        let mut a = ok.clone();
        a.nodes_truenodeids[0] = 7;
        assert!(build_err(&a).contains("true child 7, which does not exist"));
        let mut a = ok.clone();
        a.nodes_falsenodeids[0] = 0;
        assert!(build_err(&a).contains("its own false child"));
        let mut a = ok.clone();
        a.leaf_nodeids = vec![1, 1];
        assert!(build_err(&a).contains("leaf 2 of tree 0 has no weight"));
        let mut a = ok.clone();
        a.leaf_ids[1] = 1;
        assert!(build_err(&a).contains("is for output 1"));
        let mut a = ok.clone();
        a.nodes_values.pop();
        assert!(build_err(&a).contains("`nodes_values` has 2 entries"));
        let mut a = ok.clone();
        a.nodes_modes[0] = "BRANCH_SOMETIMES".to_owned();
        assert!(build_err(&a).contains("unknown node mode `BRANCH_SOMETIMES`"));
        let mut a = ok.clone();
        a.base_values = vec![1.0, 2.0];
        assert!(build_err(&a).contains("`base_values` has 2 entries"));
        let mut a = ok.clone();
        a.nodes_featureids[0] = -1;
        assert!(build_err(&a).contains("feature id -1"));
        let mut a = ok.clone();
        a.nodes_nodeids[2] = 1;
        assert!(build_err(&a).contains("listed twice"));
        let mut a = ok.clone();
        a.n_outputs = 0;
        assert!(build_err(&a).contains("no outputs"));
        assert!(build_err(&TreeAttributes::default()).contains("no nodes"));
        // A cycle: 0 -> 1 -> 0.
        let a = attrs(
            &[
                (0, 0, 0, "BRANCH_LEQ", 0.0, 1, 2),
                (0, 1, 0, "BRANCH_LEQ", 0.0, 0, 2),
                (0, 2, 0, "LEAF", 0.0, 0, 0),
            ],
            &[(0, 2, 0, 1.0)],
            1,
        );
        assert!(build_err(&a).contains("cycle"));
        // Trees listed in pieces.
        let a = attrs(
            &[
                (0, 0, 0, "LEAF", 0.0, 0, 0),
                (1, 0, 0, "LEAF", 0.0, 0, 0),
                (0, 1, 0, "LEAF", 0.0, 0, 0),
            ],
            &[(0, 0, 0, 1.0), (1, 0, 0, 1.0), (0, 1, 0, 1.0)],
            1,
        );
        assert!(build_err(&a).contains("not listed together"));
        // A classifier needs two classes.
        let kind = Kind::Classifier {
            binary_case: false,
            weights_all_positive: true,
        };
        assert!(
            Ensemble::build(&ok, kind)
                .unwrap_err()
                .0
                .contains("two class labels")
        );
    }

    #[test]
    fn evaluation_checks_its_buffers() {
        let e = Ensemble::build(&two_trees(Aggregate::Sum, &[]), Kind::Regressor).unwrap();
        let mut out = [0f32; 1];
        // The trees read feature 0; zero columns is an error, not a panic.
        assert!(e.eval(Rows::F32(&[]), 1, 0, &mut out, None).is_err());
        assert!(
            e.eval(Rows::F32(&[1.0, 2.0]), 1, 1, &mut out, None)
                .is_err()
        );
        let mut two = [0f32; 2];
        assert!(e.eval(Rows::F32(&[1.0]), 1, 1, &mut two, None).is_err());
    }
}
