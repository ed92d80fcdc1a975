//! Multi-head self-attention as in ViT (Dosovitskiy et al. 2021) / timm `Attention`:
//! one fused `qkv` [`Linear`] `d → 3d`, per head `softmax(q kᵀ / √d_h) v`, heads
//! concatenated and mixed by the `proj` [`Linear`] `d → d`.
//!
//! The `3d` outputs of `qkv` are ordered `(q|k|v, head, j)` as timm's
//! `reshape(B, N, 3, heads, d_h)`, so timm checkpoints load without permutation.

use ndarray::{s, Array2, ArrayView2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{require_positive, softmax_in_place, LayerError, Linear, LinearConfig, WeightInit};

fn default_true() -> bool {
    true
}

/// Configuration of a [`MultiHeadSelfAttention`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiHeadSelfAttentionConfig {
    /// Token width `d` (≥ 1, divisible by `heads`).
    pub dim: usize,
    /// Number of heads (≥ 1).
    pub heads: usize,
    /// Whether `qkv` has a bias (default `true`, as ViT/DeiT).
    #[serde(default = "default_true")]
    pub qkv_bias: bool,
    /// Weight initialisation of both linear layers (default
    /// [`WeightInit::PytorchUniform`]).
    #[serde(default)]
    pub init: WeightInit,
}

impl MultiHeadSelfAttentionConfig {
    /// `heads` heads over tokens of width `dim`, `qkv` with bias, PyTorch init.
    pub fn new(dim: usize, heads: usize) -> Self {
        Self {
            dim,
            heads,
            qkv_bias: true,
            init: WeightInit::default(),
        }
    }

    /// With or without a `qkv` bias.
    pub fn with_qkv_bias(mut self, qkv_bias: bool) -> Self {
        self.qkv_bias = qkv_bias;
        self
    }

    /// With another weight initialisation.
    pub fn with_init(mut self, init: WeightInit) -> Self {
        self.init = init;
        self
    }

    /// `Err` if a size is zero, `dim` is not a multiple of `heads`, or the
    /// initialisation is invalid.
    pub fn validate(&self) -> Result<(), LayerError> {
        require_positive("attention.dim", self.dim)?;
        require_positive("attention.heads", self.heads)?;
        if !self.dim.is_multiple_of(self.heads) {
            return Err(LayerError::InvalidConfig {
                key: "attention.heads".into(),
                value: self.heads.to_string(),
                valid: format!("must divide dim = {}", self.dim),
            });
        }
        self.init.validate("attention.init")
    }

    /// The layer with weights drawn from `rng` (`qkv` first, then `proj`).
    pub fn init<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<MultiHeadSelfAttention, LayerError> {
        self.validate()?;
        let qkv = LinearConfig::new(self.dim, 3 * self.dim)
            .with_bias(self.qkv_bias)
            .with_init(self.init)
            .init(rng)?;
        let proj = LinearConfig::new(self.dim, self.dim).with_init(self.init).init(rng)?;
        Ok(MultiHeadSelfAttention {
            qkv,
            proj,
            heads: self.heads,
        })
    }
}

/// Multi-head self-attention.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiHeadSelfAttention {
    /// Fused projection `d → 3d` (weight `[3d, d]`).
    pub qkv: Linear,
    /// Output projection `d → d`.
    pub proj: Linear,
    /// Number of heads.
    pub heads: usize,
}

impl MultiHeadSelfAttention {
    /// A layer from given projections (e.g. loaded from a file).
    pub fn from_parts(qkv: Linear, proj: Linear, heads: usize) -> Result<Self, LayerError> {
        let d = proj.in_features();
        MultiHeadSelfAttentionConfig::new(d, heads).validate()?;
        let expect = |tensor: &str, got: &Linear, out: usize| {
            if got.weight.dim() != (out, d) {
                return Err(LayerError::WeightShape {
                    tensor: tensor.into(),
                    got: got.weight.shape().to_vec(),
                    expected: vec![out, d],
                });
            }
            Ok(())
        };
        expect("qkv.weight", &qkv, 3 * d)?;
        expect("proj.weight", &proj, d)?;
        Ok(Self { qkv, proj, heads })
    }

    /// Token width `d`.
    pub fn dim(&self) -> usize {
        self.proj.out_features()
    }

    /// Width of one head `d / heads`.
    pub fn head_dim(&self) -> usize {
        self.dim() / self.heads
    }

    /// The attention probabilities `[heads, tokens, tokens]` and the output
    /// `[tokens, d]` for one sequence `x` of shape `[tokens, d]`.
    ///
    /// # Panics
    /// If `x` does not have `d` columns.
    pub fn forward_with_attention(&self, x: ArrayView2<f32>) -> (ndarray::Array3<f32>, Array2<f32>) {
        let d = self.dim();
        assert_eq!(
            x.ncols(),
            d,
            "MultiHeadSelfAttention::forward: input {:?} does not match dim {d}",
            x.dim()
        );
        let t = x.nrows();
        let hd = self.head_dim();
        let scale = 1.0 / (hd as f32).sqrt();
        let qkv = self.qkv.forward(x);
        let mut attn = ndarray::Array3::zeros((self.heads, t, t));
        let mut heads_out = Array2::zeros((t, d));
        for h in 0..self.heads {
            let cols = h * hd..(h + 1) * hd;
            let q = qkv.slice(s![.., cols.clone()]);
            let k = qkv.slice(s![.., d + cols.start..d + cols.end]);
            let v = qkv.slice(s![.., 2 * d + cols.start..2 * d + cols.end]);
            let mut a = attn.index_axis_mut(ndarray::Axis(0), h);
            a.assign(&q.dot(&k.t()));
            a *= scale;
            softmax_in_place(&mut a);
            heads_out.slice_mut(s![.., cols]).assign(&a.dot(&v));
        }
        (attn, self.proj.forward(heads_out.view()))
    }

    /// The output `[tokens, d]` for one sequence `x` of shape `[tokens, d]`.
    ///
    /// # Panics
    /// If `x` does not have `d` columns.
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        self.forward_with_attention(x).1
    }
}
