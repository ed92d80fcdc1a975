//! Pooling of a token sequence `[tokens, d]` into one feature vector `[d]`.

use ndarray::{Array1, ArrayView2, Axis};
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
}
