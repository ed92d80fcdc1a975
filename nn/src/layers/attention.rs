//! Multi-head self-attention as in ViT (Dosovitskiy et al. 2021) / timm `Attention`:
//! one fused `qkv` [`Linear`] `d → 3d`, per head `softmax(q kᵀ / √d_h) v`, heads
//! concatenated and mixed by the `proj` [`Linear`] `d → d`.
//!
//! The `3d` outputs of `qkv` are ordered `(q|k|v, head, j)` as timm's
//! `reshape(B, N, 3, heads, d_h)`, so timm checkpoints load without permutation.

use ndarray::{s, Array2, ArrayView2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{require_positive, softmax_in_place, LayerError, Linear, LinearConfig, Real, WeightInit};

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
pub struct MultiHeadSelfAttention<T = f32> {
    /// Fused projection `d → 3d` (weight `[3d, d]`).
    pub qkv: Linear<T>,
    /// Output projection `d → d`.
    pub proj: Linear<T>,
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

/// What [`MultiHeadSelfAttention::backward`] needs of a forward pass over a batch.
#[derive(Debug, Clone)]
pub struct AttentionCache<T = f32> {
    /// Tokens per sequence.
    pub tokens: usize,
    /// The input `[B·T, d]`.
    pub x: Array2<T>,
    /// `qkv(x)` `[B·T, 3d]`.
    pub qkv: Array2<T>,
    /// Attention probabilities, one `[T, T]` per (sequence, head), sequence-major.
    pub attn: Vec<Array2<T>>,
    /// Heads concatenated before `proj` `[B·T, d]`.
    pub mixed: Array2<T>,
}

impl<T: Real> MultiHeadSelfAttention<T> {
    /// Self-attention over a batch of sequences of `tokens` tokens each, folded into
    /// the rows of `x` `[B·tokens, d]`, and the cache of its backward pass.
    ///
    /// # Panics
    /// If `x` does not have `d` columns or a multiple of `tokens` rows.
    pub fn forward_train(&self, x: ArrayView2<T>, tokens: usize) -> (Array2<T>, AttentionCache<T>) {
        let d = self.proj.out_features();
        assert!(
            x.ncols() == d && tokens > 0 && x.nrows().is_multiple_of(tokens),
            "MultiHeadSelfAttention::forward_train: input {:?} is not [B·{tokens}, {d}]",
            x.dim()
        );
        let hd = d / self.heads;
        let scale = T::one() / T::of(hd as f64).sqrt();
        let qkv = self.qkv.forward(x);
        let mut mixed = Array2::zeros((x.nrows(), d));
        let mut attn = Vec::with_capacity(x.nrows() / tokens * self.heads);
        for b in 0..x.nrows() / tokens {
            let rows = b * tokens..(b + 1) * tokens;
            for h in 0..self.heads {
                let c = h * hd;
                let q = qkv.slice(s![rows.clone(), c..c + hd]);
                let k = qkv.slice(s![rows.clone(), d + c..d + c + hd]);
                let v = qkv.slice(s![rows.clone(), 2 * d + c..2 * d + c + hd]);
                let scores = q.dot(&k.t()) * scale;
                let a = super::softmax::softmax_rows(scores.view());
                mixed.slice_mut(s![rows.clone(), c..c + hd]).assign(&a.dot(&v));
                attn.push(a);
            }
        }
        let y = self.proj.forward(mixed.view());
        let cache = AttentionCache {
            tokens,
            x: x.to_owned(),
            qkv,
            attn,
            mixed,
        };
        (y, cache)
    }

    /// The backward pass: adds the parameter gradients to `grad` and returns
    /// `∂L/∂x` `[B·T, d]`.
    pub fn backward(
        &self,
        cache: &AttentionCache<T>,
        g: ArrayView2<T>,
        grad: &mut MultiHeadSelfAttention<T>,
    ) -> Array2<T> {
        let d = self.proj.out_features();
        let hd = d / self.heads;
        let t = cache.tokens;
        let scale = T::one() / T::of(hd as f64).sqrt();
        let dmixed = self.proj.backward(cache.mixed.view(), g, &mut grad.proj);
        let mut dqkv = Array2::zeros(cache.qkv.dim());
        for b in 0..cache.x.nrows() / t {
            let rows = b * t..(b + 1) * t;
            for h in 0..self.heads {
                let c = h * hd;
                let a = &cache.attn[b * self.heads + h];
                let q = cache.qkv.slice(s![rows.clone(), c..c + hd]);
                let k = cache.qkv.slice(s![rows.clone(), d + c..d + c + hd]);
                let v = cache.qkv.slice(s![rows.clone(), 2 * d + c..2 * d + c + hd]);
                let dm = dmixed.slice(s![rows.clone(), c..c + hd]);
                // mixed = A v: dA = dm vᵀ, dv = Aᵀ dm.
                let da = dm.dot(&v.t());
                dqkv.slice_mut(s![rows.clone(), 2 * d + c..2 * d + c + hd])
                    .assign(&a.t().dot(&dm));
                // A = softmax(S), S = scale · q kᵀ.
                let ds = super::softmax::softmax_backward(a.view(), da.view()) * scale;
                dqkv.slice_mut(s![rows.clone(), c..c + hd]).assign(&ds.dot(&k));
                dqkv.slice_mut(s![rows.clone(), d + c..d + c + hd])
                    .assign(&ds.t().dot(&q));
            }
        }
        self.qkv.backward(cache.x.view(), dqkv.view(), &mut grad.qkv)
    }

    /// The layer converted to another element type.
    pub fn cast<U: Real>(&self) -> MultiHeadSelfAttention<U> {
        MultiHeadSelfAttention {
            qkv: self.qkv.cast(),
            proj: self.proj.cast(),
            heads: self.heads,
        }
    }
}
