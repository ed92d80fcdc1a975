//! Patch embedding (ViT): a `Conv2d(c → d, kernel = stride = p)` computed as patch
//! extraction followed by a [`Linear`] whose weight is the convolution weight
//! `[d, c, p, p]` flattened to `[d, c·p·p]` (the same memory, row-major).
//!
//! Patches are numbered row-major over the patch grid (timm
//! `proj(x).flatten(2).transpose(1, 2)`); inside a patch the features are ordered
//! `(channel, ky, kx)` to match the flattened weight.

use ndarray::{Array1, Array2, Array4, ArrayView2, ArrayView3, ArrayView4};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{require_positive, LayerError, Linear, LinearConfig, Real, WeightInit};

/// Configuration of a [`PatchEmbedding`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchEmbeddingConfig {
    /// Image channels `c` (≥ 1).
    pub in_channels: usize,
    /// Patch side `p` in pixels (≥ 1), also the stride.
    pub patch: usize,
    /// Embedding width `d` (≥ 1).
    pub dim: usize,
    /// Weight initialisation, fan-in `c·p·p` (default
    /// [`WeightInit::PytorchUniform`], the `Conv2d` default).
    #[serde(default)]
    pub init: WeightInit,
}

impl PatchEmbeddingConfig {
    /// `c` channels, patch `p`, width `d`, PyTorch init.
    pub fn new(in_channels: usize, patch: usize, dim: usize) -> Self {
        Self {
            in_channels,
            patch,
            dim,
            init: WeightInit::default(),
        }
    }

    /// With another weight initialisation.
    pub fn with_init(mut self, init: WeightInit) -> Self {
        self.init = init;
        self
    }

    /// `Err` if a size is zero or the initialisation is invalid.
    pub fn validate(&self) -> Result<(), LayerError> {
        require_positive("patch_embedding.in_channels", self.in_channels)?;
        require_positive("patch_embedding.patch", self.patch)?;
        require_positive("patch_embedding.dim", self.dim)?;
        self.init.validate("patch_embedding.init")
    }

    /// The layer with weights drawn from `rng`.
    pub fn init<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<PatchEmbedding, LayerError> {
        self.validate()?;
        let fan_in = self.in_channels * self.patch * self.patch;
        let proj = LinearConfig::new(fan_in, self.dim).with_init(self.init).init(rng)?;
        Ok(PatchEmbedding {
            proj,
            in_channels: self.in_channels,
            patch: self.patch,
        })
    }
}

/// Patch embedding by a strided convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchEmbedding<T = f32> {
    /// The convolution as a linear map `c·p·p → d`.
    pub proj: Linear<T>,
    /// Image channels `c`.
    pub in_channels: usize,
    /// Patch side `p`.
    pub patch: usize,
}

impl PatchEmbedding {
    /// A layer from a PyTorch `Conv2d` weight `[d, c, p, p]` (square kernel) and bias
    /// `[d]`.
    pub fn from_conv_weight(weight: Array4<f32>, bias: Option<Array1<f32>>) -> Result<Self, LayerError> {
        let (d, c, ph, pw) = weight.dim();
        if ph != pw || ph == 0 || c == 0 {
            return Err(LayerError::WeightShape {
                tensor: "patch_embed.proj.weight".into(),
                got: weight.shape().to_vec(),
                expected: vec![d, c.max(1), ph.max(1), ph.max(1)],
            });
        }
        let flat = weight
            .into_shape_clone((d, c * ph * pw))
            .expect("element count unchanged");
        Ok(Self {
            proj: Linear::from_weights(flat, bias)?,
            in_channels: c,
            patch: ph,
        })
    }
}

impl<T: Real> PatchEmbedding<T> {
    /// Embedding width `d`.
    pub fn dim(&self) -> usize {
        self.proj.out_features()
    }

    /// Number of patches of an `h × w` image.
    pub fn num_patches(&self, h: usize, w: usize) -> usize {
        (h / self.patch) * (w / self.patch)
    }

    /// The patch matrix `[patches, c·p·p]` of `image` (`[c, h, w]`).
    ///
    /// # Panics
    /// If `image` does not have `c` channels or `h`, `w` are not multiples of `p`.
    pub fn patches(&self, image: ArrayView3<T>) -> Array2<T> {
        let (c, h, w) = image.dim();
        let p = self.patch;
        assert!(
            c == self.in_channels && h.is_multiple_of(p) && w.is_multiple_of(p),
            "PatchEmbedding: image [c, h, w] = {:?} needs {} channels and sides divisible by patch {p}",
            image.dim(),
            self.in_channels
        );
        let (gh, gw) = (h / p, w / p);
        let mut out = Array2::zeros((gh * gw, c * p * p));
        for gy in 0..gh {
            for gx in 0..gw {
                let mut row = out.row_mut(gy * gw + gx);
                let block = image.slice(ndarray::s![.., gy * p..(gy + 1) * p, gx * p..(gx + 1) * p]);
                // Iteration order of a 3-D view is (c, ky, kx), the weight's order.
                row.iter_mut().zip(block.iter()).for_each(|(o, &v)| *o = v);
            }
        }
        out
    }

    /// The patch tokens `[patches, d]` of `image` (`[c, h, w]`).
    ///
    /// # Panics
    /// If `image` does not have `c` channels or `h`, `w` are not multiples of `p`.
    pub fn forward(&self, image: ArrayView3<T>) -> Array2<T> {
        self.proj.forward(self.patches(image).view())
    }

    /// The patches of every image of a batch `[B, c, h, w]`, image after image:
    /// `[B·patches, c·p·p]`, the input of `proj` for the whole batch.
    ///
    /// # Panics
    /// As [`PatchEmbedding::patches`].
    pub fn patches_batch(&self, images: ArrayView4<T>) -> Array2<T> {
        let per: Vec<Array2<T>> = images.outer_iter().map(|im| self.patches(im)).collect();
        let views: Vec<_> = per.iter().map(|p| p.view()).collect();
        ndarray::concatenate(ndarray::Axis(0), &views).expect("patches of one shape")
    }

    /// The backward pass (the image needs no gradient): adds `proj`'s gradients for
    /// the `patches` of [`PatchEmbedding::patches_batch`] and the upstream gradient
    /// `g` `[B·patches, d]` to `grad`.
    pub fn backward(&self, patches: ArrayView2<T>, g: ArrayView2<T>, grad: &mut PatchEmbedding<T>) {
        self.proj.accumulate_grad(patches, g, &mut grad.proj);
    }

    /// The layer converted to another element type.
    pub fn cast<U: Real>(&self) -> PatchEmbedding<U> {
        PatchEmbedding {
            proj: self.proj.cast(),
            in_channels: self.in_channels,
            patch: self.patch,
        }
    }
}
