//! Class token and learned positional embedding (ViT/DeiT; GFNet has no class
//! token). Initialised as timm: positional embedding truncated normal std 0.02,
//! class token normal std 1e-6.

use ndarray::{concatenate, Array1, Array2, ArrayView2, Axis};
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::{require_positive, LayerError, WeightInit};

fn default_true() -> bool {
    true
}

/// Configuration of a [`TokenEmbedding`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEmbeddingConfig {
    /// Token width `d` (≥ 1).
    pub dim: usize,
    /// Number of patch tokens (≥ 1).
    pub num_patches: usize,
    /// Whether a class token is prepended (default `true`).
    #[serde(default = "default_true")]
    pub class_token: bool,
}

impl TokenEmbeddingConfig {
    /// `num_patches` tokens of width `dim` plus a class token.
    pub fn new(dim: usize, num_patches: usize) -> Self {
        Self {
            dim,
            num_patches,
            class_token: true,
        }
    }

    /// With or without a class token.
    pub fn with_class_token(mut self, class_token: bool) -> Self {
        self.class_token = class_token;
        self
    }

    /// `Err` if a size is zero.
    pub fn validate(&self) -> Result<(), LayerError> {
        require_positive("token_embedding.dim", self.dim)?;
        require_positive("token_embedding.num_patches", self.num_patches)
    }

    /// The parameters drawn from `rng` (positional embedding first).
    pub fn init<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<TokenEmbedding, LayerError> {
        self.validate()?;
        let tokens = self.num_patches + usize::from(self.class_token);
        let position = WeightInit::vit().weight((tokens, self.dim), self.dim, rng);
        let class_token = self.class_token.then(|| {
            let normal = Normal::new(0.0f32, 1e-6).expect("positive std");
            Array1::from_shape_simple_fn(self.dim, || normal.sample(rng))
        });
        Ok(TokenEmbedding { class_token, position })
    }
}

/// Class token and positional embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEmbedding {
    /// The class token `[d]`, if any.
    pub class_token: Option<Array1<f32>>,
    /// Positional embedding `[tokens, d]`, tokens counting the class token.
    pub position: Array2<f32>,
}

impl TokenEmbedding {
    /// Prepends the class token (if any) to `patches` (`[patches, d]`) and adds the
    /// positional embedding, giving `[tokens, d]`.
    ///
    /// # Panics
    /// If the resulting token count or width differs from the positional embedding.
    pub fn forward(&self, patches: ArrayView2<f32>) -> Array2<f32> {
        let mut x = match &self.class_token {
            Some(c) => concatenate(Axis(0), &[c.view().insert_axis(Axis(0)), patches]).unwrap_or_else(|_| {
                panic!(
                    "TokenEmbedding: patches {:?} do not match class token [{}]",
                    patches.dim(),
                    c.len()
                )
            }),
            None => patches.to_owned(),
        };
        assert_eq!(
            x.dim(),
            self.position.dim(),
            "TokenEmbedding: tokens {:?} (with class token: {}) do not match positional embedding {:?}",
            x.dim(),
            self.class_token.is_some(),
            self.position.dim()
        );
        x += &self.position;
        x
    }
}
