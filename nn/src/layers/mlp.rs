//! The transformer MLP: `Linear(d → hidden) → GELU → Linear(hidden → d)` (timm
//! `Mlp`; dropout is an identity at inference and omitted).

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{gelu_in_place, require_positive, GeluMode, LayerError, Linear, LinearConfig, WeightInit};

/// Configuration of an [`Mlp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Input and output width `d` (≥ 1).
    pub dim: usize,
    /// Hidden width (≥ 1; ViT uses `4d`).
    pub hidden: usize,
    /// GELU formula (default [`GeluMode::Exact`]).
    #[serde(default)]
    pub activation: GeluMode,
    /// Weight initialisation of both layers (default [`WeightInit::PytorchUniform`]).
    #[serde(default)]
    pub init: WeightInit,
}

impl MlpConfig {
    /// `dim → hidden → dim` with exact GELU and PyTorch init.
    pub fn new(dim: usize, hidden: usize) -> Self {
        Self {
            dim,
            hidden,
            activation: GeluMode::default(),
            init: WeightInit::default(),
        }
    }

    /// With another GELU formula.
    pub fn with_activation(mut self, activation: GeluMode) -> Self {
        self.activation = activation;
        self
    }

    /// With another weight initialisation.
    pub fn with_init(mut self, init: WeightInit) -> Self {
        self.init = init;
        self
    }

    /// `Err` if a size is zero or the initialisation is invalid.
    pub fn validate(&self) -> Result<(), LayerError> {
        require_positive("mlp.dim", self.dim)?;
        require_positive("mlp.hidden", self.hidden)?;
        self.init.validate("mlp.init")
    }

    /// The layer with weights drawn from `rng` (`fc1` first).
    pub fn init<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Mlp, LayerError> {
        self.validate()?;
        let fc1 = LinearConfig::new(self.dim, self.hidden)
            .with_init(self.init)
            .init(rng)?;
        let fc2 = LinearConfig::new(self.hidden, self.dim)
            .with_init(self.init)
            .init(rng)?;
        Ok(Mlp {
            fc1,
            fc2,
            activation: self.activation,
        })
    }
}

/// Linear–GELU–Linear.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// `d → hidden`.
    pub fc1: Linear,
    /// `hidden → d`.
    pub fc2: Linear,
    /// GELU formula.
    pub activation: GeluMode,
}

impl Mlp {
    /// `fc2(gelu(fc1(x)))` for `x` of shape `[tokens, d]`.
    ///
    /// # Panics
    /// If `x` does not have `d` columns, or `fc1`'s outputs do not match `fc2`'s
    /// inputs.
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut h = self.fc1.forward(x);
        gelu_in_place(&mut h, self.activation);
        self.fc2.forward(h.view())
    }
}
