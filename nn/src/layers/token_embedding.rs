//! Class token and learned positional embedding (ViT/DeiT; GFNet has no class
//! token). Initialised as timm: positional embedding truncated normal std 0.02,
//! class token normal std 1e-6.

use ndarray::{concatenate, Array1, Array2, ArrayView2, Axis};
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::{cast, require_positive, LayerError, Real, WeightInit};

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
pub struct TokenEmbedding<T = f32> {
    /// The class token `[d]`, if any.
    pub class_token: Option<Array1<T>>,
    /// Positional embedding `[tokens, d]`, tokens counting the class token.
    pub position: Array2<T>,
}

impl<T: Real> TokenEmbedding<T> {
    /// Prepends the class token (if any) to `patches` (`[patches, d]`) and adds the
    /// positional embedding, giving `[tokens, d]`.
    ///
    /// # Panics
    /// If the resulting token count or width differs from the positional embedding.
    pub fn forward(&self, patches: ArrayView2<T>) -> Array2<T> {
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

    /// Tokens per sequence (with the class token, if any).
    pub fn tokens(&self) -> usize {
        self.position.nrows()
    }

    /// [`TokenEmbedding::forward`] for a batch: `patches` `[B·n, d]` (image after
    /// image) gives `[B·tokens, d]`.
    ///
    /// # Panics
    /// If the rows are not a multiple of the patch count.
    pub fn forward_batch(&self, patches: ArrayView2<T>) -> Array2<T> {
        let t = self.tokens();
        let n = t - usize::from(self.class_token.is_some());
        assert!(
            patches.nrows().is_multiple_of(n),
            "TokenEmbedding::forward_batch: {} rows are not a multiple of {n} patches",
            patches.nrows()
        );
        let b = patches.nrows() / n;
        let mut x = Array2::zeros((b * t, self.position.ncols()));
        for i in 0..b {
            let out = self.forward(patches.slice(ndarray::s![i * n..(i + 1) * n, ..]));
            x.slice_mut(ndarray::s![i * t..(i + 1) * t, ..]).assign(&out);
        }
        x
    }

    /// The backward pass of [`TokenEmbedding::forward_batch`]: adds the gradients of
    /// the positional embedding and class token to `grad` and returns the gradient
    /// of the patches `[B·n, d]`.
    pub fn backward(&self, g: ArrayView2<T>, grad: &mut TokenEmbedding<T>) -> Array2<T> {
        let t = self.tokens();
        let cls = usize::from(self.class_token.is_some());
        let b = g.nrows() / t;
        let mut dp = Array2::zeros((b * (t - cls), g.ncols()));
        for i in 0..b {
            let gi = g.slice(ndarray::s![i * t..(i + 1) * t, ..]);
            grad.position += &gi;
            if let Some(c) = &mut grad.class_token {
                *c += &gi.row(0);
            }
            dp.slice_mut(ndarray::s![i * (t - cls)..(i + 1) * (t - cls), ..])
                .assign(&gi.slice(ndarray::s![cls.., ..]));
        }
        dp
    }

    /// The layer converted to another element type.
    pub fn cast<U: Real>(&self) -> TokenEmbedding<U> {
        TokenEmbedding {
            class_token: self.class_token.as_ref().map(cast),
            position: cast(&self.position),
        }
    }
}
