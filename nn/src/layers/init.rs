//! Weight initialisation.
//!
//! - PyTorch `nn.Linear`/`nn.Conv2d` default (`kaiming_uniform_(a=√5)`): weight and
//!   bias uniform in `±1/√fan_in`.
//! - ViT/DeiT (timm `_init_weights`): weight truncated normal with std 0.02, bias 0.
//!   timm truncates at the absolute bounds ±2 (±100σ, i.e. effectively never); we
//!   truncate at ±2σ as the JAX/Flax `truncated_normal` initialiser does. Either way
//!   trained weights are loaded from files; the init only matters for untrained runs.

use ndarray::{Array, Dimension, ShapeBuilder};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::LayerError;

/// How the weights of a linear (or patch-embedding) layer are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "kind")]
pub enum WeightInit {
    /// PyTorch default: weight and bias uniform in `±1/√fan_in`.
    PytorchUniform,
    /// Weight normal with standard deviation `std`, resampled outside `±2·std`; bias
    /// zero (ViT/DeiT use `std = 0.02`).
    TruncatedNormal {
        /// Standard deviation before truncation (> 0).
        std: f32,
    },
}

impl Default for WeightInit {
    /// `PytorchUniform`.
    fn default() -> Self {
        WeightInit::PytorchUniform
    }
}

impl WeightInit {
    /// The ViT/DeiT initialisation: truncated normal, std 0.02.
    pub fn vit() -> Self {
        WeightInit::TruncatedNormal { std: 0.02 }
    }

    /// `Err` unless the parameters are valid; `key` names the setting in the error.
    pub fn validate(&self, key: &str) -> Result<(), LayerError> {
        if let WeightInit::TruncatedNormal { std } = *self {
            if !(std.is_finite() && std > 0.0) {
                return Err(LayerError::InvalidConfig {
                    key: format!("{key}.std"),
                    value: std.to_string(),
                    valid: "must be finite and > 0".to_string(),
                });
            }
        }
        Ok(())
    }

    /// A weight of `shape` for a layer with `fan_in` inputs per output.
    pub fn weight<Sh, D, R>(&self, shape: Sh, fan_in: usize, rng: &mut R) -> Array<f32, D>
    where
        Sh: ShapeBuilder<Dim = D>,
        D: Dimension,
        R: Rng + ?Sized,
    {
        match *self {
            WeightInit::PytorchUniform => uniform(shape, fan_in, rng),
            WeightInit::TruncatedNormal { std } => {
                let normal = Normal::new(0.0f32, std).expect("std validated > 0");
                Array::from_shape_simple_fn(shape, || loop {
                    let v = normal.sample(rng);
                    if v.abs() <= 2.0 * std {
                        break v;
                    }
                })
            }
        }
    }

    /// A bias of `len` for a layer with `fan_in` inputs per output.
    pub fn bias<R: Rng + ?Sized>(&self, len: usize, fan_in: usize, rng: &mut R) -> ndarray::Array1<f32> {
        match *self {
            WeightInit::PytorchUniform => uniform(len, fan_in, rng),
            WeightInit::TruncatedNormal { .. } => ndarray::Array1::zeros(len),
        }
    }
}

fn uniform<Sh, D, R>(shape: Sh, fan_in: usize, rng: &mut R) -> Array<f32, D>
where
    Sh: ShapeBuilder<Dim = D>,
    D: Dimension,
    R: Rng + ?Sized,
{
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    Array::from_shape_simple_fn(shape, || (2.0 * rng.random::<f32>() - 1.0) * bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn uniform_bounds_and_spread() {
        let mut rng = StdRng::seed_from_u64(1);
        let w: Array2<f32> = WeightInit::PytorchUniform.weight((64, 100), 100, &mut rng);
        assert!(w.iter().all(|v| v.abs() <= 0.1));
        // Uniform on ±b has variance b²/3.
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!((var - 0.01 / 3.0).abs() < 0.0005, "var {var}");
    }

    #[test]
    fn truncated_normal_bounds_and_zero_bias() {
        let mut rng = StdRng::seed_from_u64(2);
        let init = WeightInit::vit();
        let w: Array2<f32> = init.weight((100, 100), 100, &mut rng);
        assert!(w.iter().all(|v| v.abs() <= 0.04));
        let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
        // Truncation at 2σ shrinks the std to about 0.88σ.
        assert!((std - 0.88 * 0.02).abs() < 0.001, "std {std}");
        assert!(init.bias(10, 100, &mut rng).iter().all(|&b| b == 0.0));
        assert!(WeightInit::TruncatedNormal { std: 0.0 }.validate("x").is_err());
    }

    #[test]
    fn same_seed_same_weights() {
        let a: Array2<f32> = WeightInit::vit().weight((3, 4), 4, &mut StdRng::seed_from_u64(7));
        let b: Array2<f32> = WeightInit::vit().weight((3, 4), 4, &mut StdRng::seed_from_u64(7));
        assert_eq!(a, b);
    }
}
