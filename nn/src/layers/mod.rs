//! Electronic (digital, `f32`) layers: the parts of a network that do not run on
//! the optics.
//!
//! Conventions follow PyTorch/timm so that ViT/DeiT weights load unchanged:
//! activations are `[tokens, features]`, a [`Linear`] weight is `[out, in]`, a patch
//! embedding weight is the `Conv2d` weight `[dim, channels, patch, patch]`, and the
//! fused attention projection orders its `3·dim` outputs as `(q|k|v, head, j)`.
//! Every layer is built from a serde `XxxConfig` (documented defaults, validated by
//! `init`) and an explicit random generator; shape errors in `forward` are
//! programmer errors and panic with the shapes.
//!
//! ## Files
//! - [`conv`]: single-channel 2-D convolution and its backward pass (training
//!   path of the convolutional models).
//! - [`init`]: [`WeightInit`], PyTorch-uniform or truncated-normal initialisation.
//! - [`linear`]: [`LinearConfig`] → [`Linear`], `y = x Wᵀ + b`.
//! - [`layer_norm`]: [`LayerNormConfig`] → [`LayerNorm`] over the last axis.
//! - [`mod@gelu`]: [`erf`], exact and tanh [`gelu()`] ([`GeluMode`]).
//! - [`mod@softmax`]: numerically stable [`softmax()`] over the last axis.
//! - [`attention`]: [`MultiHeadSelfAttentionConfig`] → [`MultiHeadSelfAttention`].
//! - [`mlp`]: [`MlpConfig`] → [`Mlp`], Linear–GELU–Linear.
//! - [`patch_embedding`]: [`PatchEmbeddingConfig`] → [`PatchEmbedding`], a strided
//!   convolution as patch extraction + [`Linear`].
//! - [`token_embedding`]: [`TokenEmbeddingConfig`] → [`TokenEmbedding`], class token
//!   and learned positional embedding.
//! - [`pooling`]: [`Pooling`] of tokens into one feature vector (mean or class token).

pub mod attention;
pub mod conv;
pub mod gelu;
pub mod init;
pub mod layer_norm;
pub mod linear;
pub mod mlp;
pub mod patch_embedding;
pub mod pooling;
pub mod softmax;
pub mod token_embedding;

pub use attention::{MultiHeadSelfAttention, MultiHeadSelfAttentionConfig};
pub use gelu::{
    erf, gelu, gelu_backward, gelu_derivative, gelu_forward, gelu_in_place, gelu_real, gelu_tanh, GeluMode,
};
pub use init::WeightInit;
pub use layer_norm::{LayerNorm, LayerNormConfig};
pub use linear::{Linear, LinearConfig};
pub use mlp::{Mlp, MlpConfig};
pub use patch_embedding::{PatchEmbedding, PatchEmbeddingConfig};
pub use pooling::Pooling;
pub use softmax::{softmax, softmax_backward, softmax_in_place, softmax_rows};
pub use token_embedding::{TokenEmbedding, TokenEmbeddingConfig};

use thiserror::Error;

/// The element type of a layer: `f32` for inference and training, `f64` for the
/// finite-difference gradient checks. Every layer struct takes it as a type
/// parameter that defaults to `f32`.
pub trait Real: ndarray::NdFloat + num_traits::FromPrimitive + std::iter::Sum {
    /// `x` rounded to this type.
    fn of(x: f64) -> Self;
    /// The value as `f64` (exact).
    fn as_f64(self) -> f64;
    /// The error function (libm's `erff` / `erf`).
    fn erf(self) -> Self;
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
}

/// `a` converted element by element to another [`Real`] type.
pub fn cast<T: Real, U: Real, D: ndarray::Dimension>(a: &ndarray::Array<T, D>) -> ndarray::Array<U, D> {
    a.mapv(|v| U::of(v.as_f64()))
}

/// A layer configuration that cannot be built.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum LayerError {
    /// A configuration value is out of its valid range.
    #[error("invalid setting `{key}` = {value}: {valid}")]
    InvalidConfig {
        /// Dotted path of the key, e.g. `attention.heads`.
        key: String,
        /// The offending value as written.
        value: String,
        /// What would be valid.
        valid: String,
    },
    /// Weights given to a `from_weights` constructor have inconsistent shapes.
    #[error("tensor `{tensor}` has shape {got:?}, expected {expected:?}")]
    WeightShape {
        /// Name of the tensor, e.g. `bias`.
        tensor: String,
        /// Its shape.
        got: Vec<usize>,
        /// The shape that would be valid.
        expected: Vec<usize>,
    },
}

/// `Err(InvalidConfig)` unless `value > 0`.
pub(crate) fn require_positive(key: &str, value: usize) -> Result<(), LayerError> {
    if value == 0 {
        return Err(LayerError::InvalidConfig {
            key: key.to_string(),
            value: value.to_string(),
            valid: "must be at least 1".to_string(),
        });
    }
    Ok(())
}
