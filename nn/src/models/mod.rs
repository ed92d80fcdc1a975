//! Models, their configurations and presets.
//!
//! A model file is TOML with a `kind` key — `vit`, `gfnet`, `spectformer`, `fnet`
//! or `conv_share_vit` — and the fields of [`TransformerConfig`] or
//! [`ConvShareVitConfig`]:
//!
//! ```toml
//! kind = "gfnet"
//! image_size = 28
//! patch = 4
//! dim = 64
//! depth = 4
//! classes = 10
//! ```
//!
//! Presets ([`preset`], [`PRESETS`]) give the published sizes (for latency
//! projection without weights) and small variants sized for 28×28 Fashion-MNIST.

pub mod conv_share_vit;
pub mod transformer;

use std::path::Path;

use fourf_hw::Trace;
use ndarray::{Array1, Array3, ArrayView3, ArrayViewMutD};
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use conv_share_vit::{ConvShareEmbed, ConvShareMlp, ConvSharePadding, ConvShareVit, ConvShareVitConfig};
pub use transformer::{Transformer, TransformerConfig, TransformerKind};

use crate::backend::{split_seed, Backend, Forward, ForwardError};
use crate::layers::LayerError;
use crate::params::Parameters;

/// A model configuration: the `kind` and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// ViT / DeiT.
    Vit(TransformerConfig),
    /// GFNet (isotropic).
    Gfnet(TransformerConfig),
    /// SpectFormer-style hybrid.
    Spectformer(TransformerConfig),
    /// FNet-style network.
    Fnet(TransformerConfig),
    /// ConvShareViT.
    ConvShareVit(ConvShareVitConfig),
}

/// A model file or preset that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not a preset name and not a readable file.
    #[error("unknown model `{0}`: not a preset ({presets}) and not a file", presets = preset_names().join(", "))]
    Unknown(String),
    /// The file cannot be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid model description.
    #[error("model file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with the key.
        message: String,
    },
    /// A setting is out of range.
    #[error("model `{model}`: {source}")]
    Invalid {
        /// Preset name or file.
        model: String,
        /// Which key.
        source: LayerError,
    },
}

/// A preset: name, description, configuration.
pub struct Preset {
    /// Name for `--model`.
    pub name: &'static str,
    /// One line: size and source.
    pub description: &'static str,
    /// The configuration.
    pub config: fn() -> ModelConfig,
}

fn tf(
    image: usize,
    channels: usize,
    patch: usize,
    dim: usize,
    depth: usize,
    heads: usize,
    classes: usize,
) -> TransformerConfig {
    TransformerConfig {
        image_size: image,
        in_channels: channels,
        patch,
        dim,
        depth,
        heads,
        mlp_ratio: 4.0,
        classes,
        spectral_blocks: 4,
        qkv_bias: true,
    }
}

/// A small network for 28×28 Fashion-MNIST: patch 4 (49 tokens), 64 × 4, MLP
/// ratio 2.
fn fmnist(heads: usize) -> TransformerConfig {
    TransformerConfig {
        mlp_ratio: 2.0,
        ..tf(28, 1, 4, 64, 4, heads, 10)
    }
}

/// Every preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "deit-ti",
        description: "DeiT-Ti: 224², patch 16, 192 × 12, 3 heads, 1000 classes (Touvron et al. 2021)",
        config: || ModelConfig::Vit(tf(224, 3, 16, 192, 12, 3, 1000)),
    },
    Preset {
        name: "deit-s",
        description: "DeiT-S: 224², patch 16, 384 × 12, 6 heads",
        config: || ModelConfig::Vit(tf(224, 3, 16, 384, 12, 6, 1000)),
    },
    Preset {
        name: "deit-b",
        description: "DeiT-B: 224², patch 16, 768 × 12, 12 heads",
        config: || ModelConfig::Vit(tf(224, 3, 16, 768, 12, 12, 1000)),
    },
    Preset {
        name: "gfnet-ti",
        description: "GFNet-Ti: 224², patch 16, 256 × 12, filter 14×8 (Rao et al. 2021)",
        config: || ModelConfig::Gfnet(tf(224, 3, 16, 256, 12, 1, 1000)),
    },
    Preset {
        name: "gfnet-xs",
        description: "GFNet-XS: 384 × 12",
        config: || ModelConfig::Gfnet(tf(224, 3, 16, 384, 12, 1, 1000)),
    },
    Preset {
        name: "gfnet-s",
        description: "GFNet-S: 384 × 19",
        config: || ModelConfig::Gfnet(tf(224, 3, 16, 384, 19, 1, 1000)),
    },
    Preset {
        name: "gfnet-b",
        description: "GFNet-B: 512 × 19",
        config: || ModelConfig::Gfnet(tf(224, 3, 16, 512, 19, 1, 1000)),
    },
    Preset {
        name: "spectformer-t",
        description: "SpectFormer-T: 256 × 12, α = 4 spectral blocks; heads = dim/64 (reconstructed) (Patro et al. 2023)",
        config: || ModelConfig::Spectformer(tf(224, 3, 16, 256, 12, 4, 1000)),
    },
    Preset {
        name: "spectformer-xs",
        description: "SpectFormer-XS: 384 × 12, α = 4, 6 heads (reconstructed)",
        config: || ModelConfig::Spectformer(tf(224, 3, 16, 384, 12, 6, 1000)),
    },
    Preset {
        name: "spectformer-s",
        description: "SpectFormer-S: 384 × 19, α = 4, 6 heads (reconstructed)",
        config: || ModelConfig::Spectformer(tf(224, 3, 16, 384, 19, 6, 1000)),
    },
    Preset {
        name: "spectformer-b",
        description: "SpectFormer-B: 512 × 19, α = 4, 8 heads (reconstructed)",
        config: || ModelConfig::Spectformer(tf(224, 3, 16, 512, 19, 8, 1000)),
    },
    Preset {
        name: "convsharevit-cifar",
        description: "ConvShareViT as reconstructed from the authors' prototype: 72² input, 25×25 transposed conv → 96², 144 tokens of 8×8, depth 8, 4 heads, 7×7 kernels, valid, 100 classes",
        config: || {
            ModelConfig::ConvShareVit(ConvShareVitConfig {
                image_size: 72,
                in_channels: 3,
                embed: ConvShareEmbed::TransposedConv { kernel: 25 },
                token_size: 8,
                depth: 8,
                heads: 4,
                kernel_size: 7,
                padding: ConvSharePadding::Valid,
                mlp: ConvShareMlp::SharedConv { ratio: 2 },
                classes: 100,
            })
        },
    },
    Preset {
        name: "vit-fmnist",
        description: "small ViT for 28×28 Fashion-MNIST: patch 4 (49 tokens), 64 × 4, 4 heads, MLP ratio 2",
        config: || ModelConfig::Vit(fmnist(4)),
    },
    Preset {
        name: "gfnet-fmnist",
        description: "small GFNet for Fashion-MNIST: patch 4 (7×7 grid, filter 7×4), 64 × 4, MLP ratio 2",
        config: || ModelConfig::Gfnet(fmnist(1)),
    },
    Preset {
        name: "spectformer-fmnist",
        description: "small SpectFormer for Fashion-MNIST: 64 × 4, 2 spectral then 2 attention blocks (4 heads)",
        config: || {
            ModelConfig::Spectformer(TransformerConfig {
                spectral_blocks: 2,
                ..fmnist(4)
            })
        },
    },
    Preset {
        name: "fnet-fmnist",
        description: "small FNet for Fashion-MNIST: patch 4, 64 × 4, MLP ratio 2",
        config: || ModelConfig::Fnet(fmnist(1)),
    },
    Preset {
        name: "convsharevit-fmnist",
        description: "small ConvShareViT for Fashion-MNIST: 5×5 transposed conv 28 → 32, 16+1 tokens of 8×8, depth 4, 2 heads, 3×3 kernels, valid",
        config: || ModelConfig::ConvShareVit(ConvShareVitConfig::default()),
    },
];

/// Preset names in order.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// The preset called `name`.
pub fn preset(name: &str) -> Option<ModelConfig> {
    PRESETS.iter().find(|p| p.name == name).map(|p| (p.config)())
}

/// The directory of the trained reference models shipped with fourf (`models/`
/// at the top of the repository), found by the path of the source tree this crate
/// was built from.
pub const SHIPPED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");

/// A trained model shipped under [`SHIPPED_DIR`]: `models/<name>/` with the
/// training config (`config.toml` as resolved by `fourf train`, whose `model` key
/// is the architecture), `weights.safetensors` and `log.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipped {
    /// Its name (the directory).
    pub name: String,
    /// The architecture: a preset name or a model file.
    pub model: String,
    /// The weights.
    pub weights: std::path::PathBuf,
}

/// The shipped model called `name`, if there is one with weights.
pub fn shipped(name: &str) -> Option<Shipped> {
    if name.is_empty() || name.contains(['/', '\\', '.']) {
        return None;
    }
    let dir = Path::new(SHIPPED_DIR).join(name);
    let weights = dir.join("weights.safetensors");
    let text = std::fs::read_to_string(dir.join("config.toml")).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let model = table.get("model")?.as_str()?.to_string();
    weights.is_file().then(|| Shipped {
        name: name.to_string(),
        model,
        weights,
    })
}

/// The names of the shipped models, sorted.
pub fn shipped_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(SHIPPED_DIR)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| shipped(n).is_some())
        .collect();
    names.sort();
    names
}

impl ModelConfig {
    /// A preset name, a shipped trained model's name (its architecture), or a TOML
    /// model file.
    pub fn load(spec: &str) -> Result<Self, ModelError> {
        if let Some(c) = preset(spec) {
            return Ok(c);
        }
        if let Some(s) = shipped(spec) {
            if s.model != spec {
                return Self::load(&s.model);
            }
        }
        let path = Path::new(spec);
        if !path.exists() {
            return Err(ModelError::Unknown(spec.to_string()));
        }
        let text = crate::weights::read_text_limited(path, crate::weights::MAX_CONFIG_BYTES).map_err(|source| {
            ModelError::Io {
                path: spec.to_string(),
                source,
            }
        })?;
        let config: ModelConfig = toml::from_str(&text).map_err(|e| ModelError::Parse {
            path: spec.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        config.validate().map_err(|source| ModelError::Invalid {
            model: spec.to_string(),
            source,
        })?;
        Ok(config)
    }

    /// `Err` naming the first invalid setting.
    pub fn validate(&self) -> Result<(), LayerError> {
        match self {
            ModelConfig::ConvShareVit(c) => c.validate(),
            other => {
                let (kind, c) = other.transformer().expect("transformer kinds");
                c.validate(kind)
            }
        }
    }

    fn transformer(&self) -> Option<(TransformerKind, &TransformerConfig)> {
        match self {
            ModelConfig::Vit(c) => Some((TransformerKind::Vit, c)),
            ModelConfig::Gfnet(c) => Some((TransformerKind::Gfnet, c)),
            ModelConfig::Spectformer(c) => Some((TransformerKind::Spectformer, c)),
            ModelConfig::Fnet(c) => Some((TransformerKind::Fnet, c)),
            ModelConfig::ConvShareVit(_) => None,
        }
    }

    /// `kind` as written in a model file.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Vit(_) => "vit",
            ModelConfig::Gfnet(_) => "gfnet",
            ModelConfig::Spectformer(_) => "spectformer",
            ModelConfig::Fnet(_) => "fnet",
            ModelConfig::ConvShareVit(_) => "conv_share_vit",
        }
    }

    /// The image the model takes, `[channels, size, size]`.
    pub fn input_shape(&self) -> [usize; 3] {
        match self {
            ModelConfig::ConvShareVit(c) => [c.in_channels, c.image_size, c.image_size],
            other => {
                let c = other.transformer().expect("transformer kinds").1;
                [c.in_channels, c.image_size, c.image_size]
            }
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        match self {
            ModelConfig::ConvShareVit(c) => c.classes,
            other => other.transformer().expect("transformer kinds").1.classes,
        }
    }

    /// The model with seeded weights.
    pub fn init<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Model, LayerError> {
        Ok(match self {
            ModelConfig::ConvShareVit(c) => Model::ConvShareVit(c.init(rng)?),
            other => {
                let (kind, c) = other.transformer().expect("transformer kinds");
                Model::Transformer(c.init(kind, rng)?)
            }
        })
    }
}

/// A network.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// ViT, GFNet, SpectFormer or FNet.
    Transformer(Transformer),
    /// ConvShareViT.
    ConvShareVit(ConvShareVit),
}

/// The logits and trace of one image.
#[derive(Debug, Clone)]
pub struct Inference {
    /// Logits `[classes]`.
    pub logits: Array1<f32>,
    /// Every op of the forward pass.
    pub trace: Trace,
}

impl Model {
    /// The image shape `[channels, size, size]` the model takes.
    pub fn input_shape(&self) -> [usize; 3] {
        match self {
            Model::Transformer(t) => {
                let c = t.config();
                [c.in_channels, c.image_size, c.image_size]
            }
            Model::ConvShareVit(m) => {
                let c = m.config();
                [c.in_channels, c.image_size, c.image_size]
            }
        }
    }

    /// Logits for one image, recording every op in `fwd`.
    ///
    /// # Panics
    /// If the image shape differs from [`Model::input_shape`].
    pub fn forward(&self, fwd: &mut Forward, image: ArrayView3<f32>) -> Result<Array1<f32>, ForwardError> {
        match self {
            Model::Transformer(t) => t.forward(fwd, image),
            Model::ConvShareVit(m) => m.forward(fwd, image),
        }
    }

    /// One image on `backend` with noise seed `seed`.
    pub fn infer(&self, backend: &Backend, image: ArrayView3<f32>, seed: u64) -> Result<Inference, ForwardError> {
        let mut fwd = Forward::new(backend, seed);
        let logits = self.forward(&mut fwd, image)?;
        Ok(Inference {
            logits,
            trace: fwd.into_trace(),
        })
    }

    /// Images in parallel; image `i` uses the seed `split_seed(seed, first + i)`, so
    /// results do not depend on batching or thread count. `done` is called after
    /// each image (from any thread).
    pub fn infer_batch(
        &self,
        backend: &Backend,
        images: &[Array3<f32>],
        seed: u64,
        first: usize,
        done: &(dyn Fn() + Sync),
    ) -> Result<Vec<Inference>, ForwardError> {
        images
            .par_iter()
            .enumerate()
            .map(|(i, img)| {
                let r = self.infer(backend, img.view(), split_seed(seed, (first + i) as u64));
                done();
                r
            })
            .collect()
    }
}

impl Parameters for Model {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, f32>)) {
        match self {
            Model::Transformer(t) => t.visit_params(prefix, f),
            Model::ConvShareVit(m) => m.visit_params(prefix, f),
        }
    }
}
