//! Layer normalisation over the last axis (Ba, Kiros & Hinton 2016), with the
//! ViT/DeiT default `eps = 1e-6` (timm `partial(nn.LayerNorm, eps=1e-6)`).

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};
use serde::{Deserialize, Serialize};

use super::{cast, require_positive, LayerError, Real};

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
pub struct LayerNorm<T = f32> {
    /// Scale `[dim]`.
    pub weight: Array1<T>,
    /// Shift `[dim]`.
    pub bias: Array1<T>,
    /// Added to the variance.
    pub eps: T,
}

/// What [`LayerNorm::backward`] needs of a forward pass: the normalised input
/// `x̂ = (x − mean)·rstd` and `rstd = 1/√(var + eps)` of every row.
#[derive(Debug, Clone)]
pub struct LayerNormCache<T = f32> {
    /// `x̂` `[rows, dim]`.
    pub xhat: Array2<T>,
    /// `1/√(var + eps)` `[rows]`.
    pub rstd: Array1<T>,
}

impl<T: Real> LayerNorm<T> {
    /// Normalises each row of `x` (`[tokens, dim]`).
    ///
    /// # Panics
    /// If `x` does not have `dim` columns.
    pub fn forward(&self, x: ArrayView2<T>) -> Array2<T> {
        self.forward_train(x).0
    }

    /// [`LayerNorm::forward`] and the cache of its backward pass.
    ///
    /// # Panics
    /// If `x` does not have `dim` columns.
    pub fn forward_train(&self, x: ArrayView2<T>) -> (Array2<T>, LayerNormCache<T>) {
        assert_eq!(
            x.ncols(),
            self.weight.len(),
            "LayerNorm::forward: input {:?} does not match dim {}",
            x.dim(),
            self.weight.len()
        );
        let n = T::of(x.ncols() as f64);
        let mut xhat = x.to_owned();
        let mut rstd = Array1::zeros(x.nrows());
        for (mut row, r) in xhat.axis_iter_mut(Axis(0)).zip(rstd.iter_mut()) {
            // Two passes: the one-pass E[x²] − E[x]² loses precision for large means.
            let mean = row.sum() / n;
            let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() / n;
            let inv = T::one() / (var + self.eps).sqrt();
            row.mapv_inplace(|v| (v - mean) * inv);
            *r = inv;
        }
        let mut y = xhat.clone();
        for mut row in y.axis_iter_mut(Axis(0)) {
            Zip::from(&mut row)
                .and(&self.weight)
                .and(&self.bias)
                .for_each(|v, &w, &b| *v = *v * w + b);
        }
        (y, LayerNormCache { xhat, rstd })
    }

    /// The backward pass: adds `∂L/∂weight = Σ g·x̂` and `∂L/∂bias = Σ g` to
    /// `grad` and returns `∂L/∂x = rstd/n · (n·ĝ − Σĝ − x̂·Σ(ĝ·x̂))` with
    /// `ĝ = g·weight`, per row.
    ///
    /// # Panics
    /// If `g` does not have the cache's shape.
    pub fn backward(&self, cache: &LayerNormCache<T>, g: ArrayView2<T>, grad: &mut LayerNorm<T>) -> Array2<T> {
        assert_eq!(g.dim(), cache.xhat.dim(), "LayerNorm::backward: gradient vs cache");
        let n = T::of(g.ncols() as f64);
        let mut dx = Array2::zeros(g.dim());
        for ((gr, xr), (mut dr, &r)) in g
            .axis_iter(Axis(0))
            .zip(cache.xhat.axis_iter(Axis(0)))
            .zip(dx.axis_iter_mut(Axis(0)).zip(cache.rstd.iter()))
        {
            let mut sum_g = T::zero();
            let mut sum_gx = T::zero();
            for (((&gi, &xi), &w), (gw, gb)) in gr
                .iter()
                .zip(xr)
                .zip(&self.weight)
                .zip(grad.weight.iter_mut().zip(grad.bias.iter_mut()))
            {
                *gw += gi * xi;
                *gb += gi;
                let gh = gi * w;
                sum_g += gh;
                sum_gx += gh * xi;
            }
            let k = r / n;
            for (((d, &gi), &xi), &w) in dr.iter_mut().zip(gr).zip(xr).zip(&self.weight) {
                *d = k * (n * gi * w - sum_g - xi * sum_gx);
            }
        }
        dx
    }

    /// The layer converted to another element type.
    pub fn cast<U: Real>(&self) -> LayerNorm<U> {
        LayerNorm {
            weight: cast(&self.weight),
            bias: cast(&self.bias),
            eps: U::of(self.eps.as_f64()),
        }
    }
}
