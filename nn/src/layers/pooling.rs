//! Pooling of a token sequence `[tokens, d]` into one feature vector `[d]`.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::Real;
use serde::{Deserialize, Serialize};

/// How the classifier head sees the tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean over all tokens (GFNet, timm `global_pool='avg'`).
    Mean,
    /// The first token, the class token (ViT/DeiT; default).
    #[default]
    ClassToken,
}

impl Pooling {
    /// The pooled `[d]` vector of `x` (`[tokens, d]`).
    ///
    /// # Panics
    /// If `x` has no tokens.
    pub fn apply(self, x: ArrayView2<f32>) -> Array1<f32> {
        assert!(x.nrows() > 0, "Pooling::apply: no tokens in input {:?}", x.dim());
        match self {
            Pooling::Mean => x.mean_axis(Axis(0)).expect("at least one token"),
            Pooling::ClassToken => x.row(0).to_owned(),
        }
    }

    /// Pools each sequence of `tokens` rows of `x` `[B·tokens, d]`: `[B, d]`.
    pub fn forward_batch<T: Real>(self, x: ArrayView2<T>, tokens: usize) -> Array2<T> {
        let b = x.nrows() / tokens;
        let mut y = Array2::zeros((b, x.ncols()));
        for (i, mut row) in y.rows_mut().into_iter().enumerate() {
            let seq = x.slice(ndarray::s![i * tokens..(i + 1) * tokens, ..]);
            match self {
                Pooling::Mean => row.assign(&seq.mean_axis(Axis(0)).expect("at least one token")),
                Pooling::ClassToken => row.assign(&seq.row(0)),
            }
        }
        y
    }

    /// The backward pass of [`Pooling::forward_batch`]: the gradient `[B·tokens, d]`
    /// of the tokens for the gradient `g` `[B, d]` of the pooled vectors.
    pub fn backward<T: Real>(self, g: ArrayView2<T>, tokens: usize) -> Array2<T> {
        let mut dx = Array2::zeros((g.nrows() * tokens, g.ncols()));
        let inv = T::one() / T::of(tokens as f64);
        for (i, gr) in g.rows().into_iter().enumerate() {
            match self {
                Pooling::Mean => {
                    for mut r in dx.slice_mut(ndarray::s![i * tokens..(i + 1) * tokens, ..]).rows_mut() {
                        r.assign(&gr.mapv(|v| v * inv));
                    }
                }
                Pooling::ClassToken => dx.row_mut(i * tokens).assign(&gr),
            }
        }
        dx
    }
}
