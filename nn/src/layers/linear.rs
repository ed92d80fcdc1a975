//! Fully connected layer `y = x Wᵀ + b` with the PyTorch weight layout `[out, in]`,
//! and its backward pass: `∂L/∂x = g W`, `∂L/∂W += gᵀ x`, `∂L/∂b += Σ_rows g` for
//! the upstream gradient `g = ∂L/∂y`. A batch is folded into the rows of `x`, so
//! one GEMM serves every token of every image.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{cast, require_positive, LayerError, Real, WeightInit};

fn default_bias() -> bool {
    true
}

/// Configuration of a [`Linear`] layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearConfig {
    /// Input features (≥ 1).
    pub in_features: usize,
    /// Output features (≥ 1).
    pub out_features: usize,
    /// Whether the layer has a bias (default `true`).
    #[serde(default = "default_bias")]
    pub bias: bool,
    /// Weight initialisation (default [`WeightInit::PytorchUniform`]).
    #[serde(default)]
    pub init: WeightInit,
}

impl LinearConfig {
    /// `in_features → out_features` with a bias and PyTorch initialisation.
    pub fn new(in_features: usize, out_features: usize) -> Self {
        Self {
            in_features,
            out_features,
            bias: true,
            init: WeightInit::default(),
        }
    }

    /// With or without a bias.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// With another weight initialisation.
    pub fn with_init(mut self, init: WeightInit) -> Self {
        self.init = init;
        self
    }

    /// `Err` if a size is zero or the initialisation is invalid.
    pub fn validate(&self) -> Result<(), LayerError> {
        require_positive("linear.in_features", self.in_features)?;
        require_positive("linear.out_features", self.out_features)?;
        self.init.validate("linear.init")
    }

    /// A layer with weights drawn from `rng`.
    pub fn init<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Linear, LayerError> {
        self.validate()?;
        let weight = self
            .init
            .weight((self.out_features, self.in_features), self.in_features, rng);
        let bias = self
            .bias
            .then(|| self.init.bias(self.out_features, self.in_features, rng));
        Ok(Linear { weight, bias })
    }
}

/// A fully connected layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear<T = f32> {
    /// Weight `[out, in]` (PyTorch layout).
    pub weight: Array2<T>,
    /// Bias `[out]`, if any.
    pub bias: Option<Array1<T>>,
}

impl Linear {
    /// A layer from given weights (e.g. loaded from a file).
    pub fn from_weights(weight: Array2<f32>, bias: Option<Array1<f32>>) -> Result<Self, LayerError> {
        let (out, inp) = weight.dim();
        if out == 0 || inp == 0 {
            return Err(LayerError::WeightShape {
                tensor: "weight".into(),
                got: vec![out, inp],
                expected: vec![out.max(1), inp.max(1)],
            });
        }
        if let Some(b) = &bias {
            if b.len() != out {
                return Err(LayerError::WeightShape {
                    tensor: "bias".into(),
                    got: vec![b.len()],
                    expected: vec![out],
                });
            }
        }
        Ok(Self { weight, bias })
    }
}

impl<T: Real> Linear<T> {
    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.ncols()
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.nrows()
    }

    /// `x Wᵀ + b` for `x` of shape `[tokens, in]`, giving `[tokens, out]`.
    ///
    /// # Panics
    /// If `x` does not have `in_features` columns.
    pub fn forward(&self, x: ArrayView2<T>) -> Array2<T> {
        assert_eq!(
            x.ncols(),
            self.in_features(),
            "Linear::forward: input {:?} does not match weight [out, in] = {:?}",
            x.dim(),
            self.weight.dim()
        );
        let mut y = x.dot(&self.weight.t());
        if let Some(b) = &self.bias {
            y += &b.view().insert_axis(Axis(0));
        }
        y
    }

    /// Adds `∂L/∂W = gᵀ x` and `∂L/∂b = Σ_rows g` to `grad` for the input `x`
    /// `[rows, in]` of [`Linear::forward`] and the upstream gradient `g` `[rows, out]`.
    ///
    /// # Panics
    /// If the shapes do not match the layer or `grad` lacks a bias this layer has.
    pub fn accumulate_grad(&self, x: ArrayView2<T>, g: ArrayView2<T>, grad: &mut Linear<T>) {
        assert!(
            x.nrows() == g.nrows() && g.ncols() == self.out_features() && grad.weight.dim() == self.weight.dim(),
            "Linear::accumulate_grad: input {:?}, gradient {:?}, weight {:?}, grad weight {:?}",
            x.dim(),
            g.dim(),
            self.weight.dim(),
            grad.weight.dim()
        );
        general_mat_mul(T::one(), &g.t(), &x, T::one(), &mut grad.weight);
        if let Some(gb) = &mut grad.bias {
            *gb += &g.sum_axis(Axis(0));
        }
    }

    /// The backward pass: adds the parameter gradients to `grad` (see
    /// [`Linear::accumulate_grad`]) and returns `∂L/∂x = g W` `[rows, in]`.
    ///
    /// # Panics
    /// As [`Linear::accumulate_grad`].
    pub fn backward(&self, x: ArrayView2<T>, g: ArrayView2<T>, grad: &mut Linear<T>) -> Array2<T> {
        self.accumulate_grad(x, g, grad);
        g.dot(&self.weight)
    }

    /// The layer with its weights converted to another element type.
    pub fn cast<U: Real>(&self) -> Linear<U> {
        Linear {
            weight: cast(&self.weight),
            bias: self.bias.as_ref().map(cast),
        }
    }
}
