//! Layer normalisation over the last axis (Ba, Kiros & Hinton 2016), with the
//! ViT/DeiT default `eps = 1e-6` (timm `partial(nn.LayerNorm, eps=1e-6)`).

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};
use serde::{Deserialize, Serialize};

use super::{require_positive, LayerError};

fn default_eps() -> f64 {
    1e-6
}

/// Configuration of a [`LayerNorm`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerNormConfig {
    /// Size of the normalised (last) axis (≥ 1).
    pub dim: usize,
    /// Added to the variance (default `1e-6`, as in ViT/DeiT; PyTorch's own default
    /// is `1e-5`).
    #[serde(default = "default_eps")]
    pub eps: f64,
}

impl LayerNormConfig {
    /// Over `dim` features with `eps = 1e-6`.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            eps: default_eps(),
        }
    }

    /// With another `eps`.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// `Err` if `dim` is zero or `eps` is negative or not finite.
    pub fn validate(&self) -> Result<(), LayerError> {
        require_positive("layer_norm.dim", self.dim)?;
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(LayerError::InvalidConfig {
                key: "layer_norm.eps".into(),
                value: self.eps.to_string(),
                valid: "must be finite and ≥ 0".into(),
            });
        }
        Ok(())
    }

    /// The layer with weight 1 and bias 0 (PyTorch's initialisation).
    pub fn init(&self) -> Result<LayerNorm, LayerError> {
        self.validate()?;
        Ok(LayerNorm {
            weight: Array1::ones(self.dim),
            bias: Array1::zeros(self.dim),
            eps: self.eps as f32,
        })
    }
}

/// `y = (x − mean) / √(var + eps) · weight + bias` per row, with the biased
/// variance (as PyTorch).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    /// Scale `[dim]`.
    pub weight: Array1<f32>,
    /// Shift `[dim]`.
    pub bias: Array1<f32>,
    /// Added to the variance.
    pub eps: f32,
}

impl LayerNorm {
    /// Normalises each row of `x` (`[tokens, dim]`).
    ///
    /// # Panics
    /// If `x` does not have `dim` columns.
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.weight.len(),
            "LayerNorm::forward: input {:?} does not match dim {}",
            x.dim(),
            self.weight.len()
        );
        let n = x.ncols() as f32;
        let mut y = x.to_owned();
        for mut row in y.axis_iter_mut(Axis(0)) {
            // Two passes: the one-pass E[x²] − E[x]² loses precision for large means.
            let mean = row.sum() / n;
            let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + self.eps).sqrt();
            Zip::from(&mut row)
                .and(&self.weight)
                .and(&self.bias)
                .for_each(|v, &w, &b| *v = (*v - mean) * inv * w + b);
        }
        y
    }
}
