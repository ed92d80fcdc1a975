//! The transformer MLP: `Linear(d → hidden) → GELU → Linear(hidden → d)` (timm
//! `Mlp`; dropout is an identity at inference and omitted).

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::gelu::{gelu_backward, gelu_forward};
use super::{gelu_in_place, require_positive, GeluMode, LayerError, Linear, LinearConfig, Real, WeightInit};

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
pub struct Mlp<T = f32> {
    /// `d → hidden`.
    pub fc1: Linear<T>,
    /// `hidden → d`.
    pub fc2: Linear<T>,
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

/// What [`Mlp::backward`] needs of a forward pass.
#[derive(Debug, Clone)]
pub struct MlpCache<T = f32> {
    /// The input `[rows, d]`.
    pub x: Array2<T>,
    /// `fc1(x)` before GELU `[rows, hidden]`.
    pub pre: Array2<T>,
    /// GELU of `pre`.
    pub act: Array2<T>,
}

impl<T: Real> Mlp<T> {
    /// `fc2(gelu(fc1(x)))` for `x` `[rows, d]` (the batch folded into rows), and the
    /// cache of its backward pass.
    pub fn forward_train(&self, x: ArrayView2<T>) -> (Array2<T>, MlpCache<T>) {
        let pre = self.fc1.forward(x);
        let act = gelu_forward(pre.view(), self.activation);
        let y = self.fc2.forward(act.view());
        (
            y,
            MlpCache {
                x: x.to_owned(),
                pre,
                act,
            },
        )
    }

    /// The backward pass: adds the parameter gradients to `grad` and returns
    /// `∂L/∂x`.
    pub fn backward(&self, cache: &MlpCache<T>, g: ArrayView2<T>, grad: &mut Mlp<T>) -> Array2<T> {
        let da = self.fc2.backward(cache.act.view(), g, &mut grad.fc2);
        let dp = gelu_backward(cache.pre.view(), da.view(), self.activation);
        self.fc1.backward(cache.x.view(), dp.view(), &mut grad.fc1)
    }

    /// The layer converted to another element type.
    pub fn cast<U: Real>(&self) -> Mlp<U> {
        Mlp {
            fc1: self.fc1.cast(),
            fc2: self.fc2.cast(),
            activation: self.activation,
        }
    }
}
