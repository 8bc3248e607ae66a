//! `ai.onnx.ml` `LinearClassifier` evaluated as onnxruntime does
//! (`linearclassifier.cc`): scores `X · Cᵀ + b` in float32, the label of
//! the best raw score (the first on ties; for a one-column model, the
//! positive label when the raw score is > 0), then the post transform.
//!
//! We evaluate it ourselves rather than through tract's, which cannot give
//! string labels (the ferry Iris example's labels are strings).

use crate::tree::{PostTransform, logistic, probit, softmax, softmax_zero};

#[derive(Debug, Clone, PartialEq)]
pub struct LinearClassifier {
    /// `[n_models, n_features]`, row-major.
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    n_models: usize,
    n_features: usize,
    n_labels: usize,
    post_transform: PostTransform,
}

impl LinearClassifier {
    /// `n_labels` is the number of class labels.
    pub fn new(
        coefficients: Vec<f32>,
        intercepts: Option<Vec<f32>>,
        n_labels: usize,
        post_transform: PostTransform,
    ) -> Result<LinearClassifier, String> {
        if coefficients.is_empty() {
            return Err("`coefficients` is empty".to_owned());
        }
        if n_labels == 0 {
            return Err("there are no class labels".to_owned());
        }
        let n_models = match &intercepts {
            Some(i) if !i.is_empty() => i.len(),
            _ if coefficients.len().is_multiple_of(n_labels) => n_labels,
            _ => 1,
        };
        if !coefficients.len().is_multiple_of(n_models) {
            return Err(format!(
                "{} coefficients do not split into {n_models} rows (one per intercept)",
                coefficients.len()
            ));
        }
        if n_models > 1 && n_models != n_labels {
            return Err(format!(
                "{n_models} score columns but {n_labels} class labels"
            ));
        }
        let intercepts = match intercepts {
            Some(i) if !i.is_empty() => i,
            _ => vec![0.0; n_models],
        };
        Ok(LinearClassifier {
            n_features: coefficients.len() / n_models,
            coefficients,
            intercepts,
            n_models,
            n_labels,
            post_transform,
        })
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Columns of the scores output: 2 for a one-column binary model (the
    /// second class is added), else one per model.
    pub fn n_scores(&self) -> usize {
        if self.binary_expanded() {
            2
        } else {
            self.n_models
        }
    }

    fn binary_expanded(&self) -> bool {
        self.n_models == 1 && self.n_labels == 2
    }

    /// Evaluates `n_rows` rows of `n_features` float32 values. `scores` gets
    /// `n_rows * n_scores()` values; `labels` the index of each row's class
    /// (for a one-column model without two labels, 1 or 0 to be taken
    /// literally).
    pub fn eval(
        &self,
        x: &[f32],
        n_rows: usize,
        scores: &mut [f32],
        labels: &mut [usize],
    ) -> Result<(), String> {
        let (nf, nm, ns) = (self.n_features, self.n_models, self.n_scores());
        if x.len() != n_rows * nf {
            return Err(format!(
                "the classifier takes rows of {nf} values, got {} values for {n_rows} rows",
                x.len()
            ));
        }
        if scores.len() != n_rows * ns || labels.len() != n_rows {
            return Err("inconsistent buffer sizes".to_owned());
        }
        let mut raw = vec![0f32; nm];
        for r in 0..n_rows {
            let row = &x[r * nf..(r + 1) * nf];
            for (m, s) in raw.iter_mut().enumerate() {
                let c = &self.coefficients[m * nf..(m + 1) * nf];
                let mut acc = 0f32;
                for (a, b) in row.iter().zip(c) {
                    acc += a * b;
                }
                *s = acc + self.intercepts[m];
            }
            labels[r] = if nm == 1 {
                usize::from(raw[0] > 0.0)
            } else {
                let mut best = 0;
                for m in 1..nm {
                    if raw[m] > raw[best] {
                        best = m;
                    }
                }
                best
            };
            let out = &mut scores[r * ns..(r + 1) * ns];
            if nm == 1 {
                let s = raw[0];
                out.fill(0.0);
                if self.post_transform == PostTransform::Probit {
                    out[0] = probit(s);
                } else if self.binary_expanded() {
                    // onnxruntime writes [1 - s, s] here, with no other transform.
                    out[0] = 1.0 - s;
                    out[1] = s;
                } else {
                    out[0] = s;
                }
                continue;
            }
            out.copy_from_slice(&raw);
            match self.post_transform {
                PostTransform::None => {}
                PostTransform::Probit => out.iter_mut().for_each(|v| *v = probit(*v)),
                PostTransform::Logistic => out.iter_mut().for_each(|v| *v = logistic(*v)),
                PostTransform::Softmax => softmax(out),
                PostTransform::SoftmaxZero => softmax_zero(out),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiclass_softmax_and_first_max_on_ties() {
        // Two features, three classes; class 1 and 2 tie on [1, 1].
        let c = LinearClassifier::new(
            vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0],
            Some(vec![0.0, 0.0, 0.0]),
            3,
            PostTransform::Softmax,
        )
        .unwrap();
        let mut scores = [0f32; 6];
        let mut labels = [9usize; 2];
        c.eval(&[2.0, 1.0, 1.0, 1.0], 2, &mut scores, &mut labels)
            .unwrap();
        assert_eq!(labels, [0, 0]);
        let sum: f32 = scores[..3].iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        assert!(scores[0] > scores[1] && scores[1] == scores[2]);
    }

    #[test]
    fn one_column_binary() {
        let c = LinearClassifier::new(vec![1.0, -1.0], Some(vec![0.5]), 2, PostTransform::Logistic)
            .unwrap();
        assert_eq!(c.n_scores(), 2);
        let mut scores = [0f32; 4];
        let mut labels = [9usize; 2];
        c.eval(&[1.0, 3.0, 3.0, 1.0], 2, &mut scores, &mut labels)
            .unwrap();
        // Raw scores -1.5 and 2.5: negative then positive; [1 - s, s].
        assert_eq!(labels, [0, 1]);
        assert_eq!(scores, [2.5, -1.5, -1.5, 2.5]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(LinearClassifier::new(vec![], None, 2, PostTransform::None).is_err());
        assert!(
            LinearClassifier::new(vec![1.0; 5], Some(vec![0.0, 0.0]), 2, PostTransform::None)
                .is_err()
        );
        assert!(
            LinearClassifier::new(vec![1.0; 6], Some(vec![0.0; 3]), 2, PostTransform::None)
                .is_err()
        );
        let c = LinearClassifier::new(vec![1.0; 6], Some(vec![0.0; 3]), 3, PostTransform::None)
            .unwrap();
        let mut s = [0f32; 3];
        let mut l = [0usize; 1];
        assert!(c.eval(&[1.0; 3], 1, &mut s, &mut l).is_err());
    }
}
