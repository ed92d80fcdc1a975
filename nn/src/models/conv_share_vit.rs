//! ConvShareViT (Ibadulla et al., arXiv 2504.11517; IEEE TNNLS 2026): a vision
//! transformer whose linear layers are depthwise convolutions with one kernel
//! shared by all token maps, so that one Fourier-plane mask per kernel serves a
//! whole layer on a 4f machine.
//!
//! ## What follows the paper, what follows the prototype, what is ours
//! The paper states the idea but not every dimension; the authors' public 2023
//! prototype (`riadibadulla/FCSA`) fills gaps. Each choice is a config option:
//!
//! | choice | source | option |
//! |---|---|---|
//! | Q, K, V, projection and MLP are shared depthwise convolutions | paper | — |
//! | `valid` (attention-like) or `same` (CNN-like) padding | paper | `padding` |
//! | patch embedding by transposed convolution | paper, prototype (25×25 kernel, 72 → 96) | `embed` |
//! | tokens are P×P maps; class token and positional embedding are P×P maps | prototype | `token_size` |
//! | scores: `valid` correlation of q_i with k_j (one number), softmax over j | prototype | — |
//! | scores divided by the side of the query map (√ of its area, like ViT's 1/√d_h) | prototype divides by P | — |
//! | head outputs summed, not concatenated | prototype | — |
//! | the classifier is a correlation of the class-token map with one P×P kernel per class | paper ("convolutional classifier") | — |
//! | with `valid` padding the projection is a `full` convolution, restoring P×P maps for the residual | ours (the paper does not say how maps regain their size) | `padding` |
//! | MLP as `ratio` shared kernels, GELU, `ratio` shared kernels summed | ours | `mlp` |
//! | LayerNorm over each token's P·P values, pre-norm blocks | ours (ViT's placement) | — |
//!
//! ## On a 4f machine
//! Q/K/V of all heads are one batch of shared-kernel convolutions (one mask per
//! kernel, token maps tiled on the input SLM); the scores are T² valid
//! correlations per head (the queries tiled, k_j as the mask: one frame gives a
//! column of QKᵀ); the projection, MLP convolutions, transposed-convolution
//! embedding and classifier are convolutions too. Softmax, the attention-weighted
//! sum of values, LayerNorm, GELU and residuals are electronic.

use fourf_hw::{Gemm, OpKind, TraceOp};
use fourf_sim::{Mode, Op};
use ndarray::{s, Array1, Array2, Array3, Array4, ArrayView2, ArrayView3, ArrayView4, ArrayViewMutD, Axis};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::backend::{ConvBatch, Forward, ForwardError};
use crate::layers::conv::{conv2d, conv2d_backward, conv2d_backward_add, map_axpy, map_dot};
use crate::layers::layer_norm::LayerNormCache;
use crate::layers::mlp::MlpCache;
use crate::layers::{cast, gelu_backward, gelu_forward, softmax_backward, softmax_rows, GeluMode};
use crate::layers::{LayerError, LayerNorm, LayerNormConfig, Mlp, MlpConfig, PatchEmbedding, Real};
use crate::layers::{PatchEmbeddingConfig, WeightInit};
use crate::params::{join, visit_as, Parameters};
use crate::surrogate::{ImageJobs, OpticsNoise};

/// How images become P×P token maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "kind")]
pub enum ConvShareEmbed {
    /// Transposed convolution (stride 1, one output channel) of the image with a
    /// `kernel`×`kernel` kernel per input channel — a `full` convolution, run on the
    /// optics — giving a map of side `image_size + kernel − 1`, unfolded into P×P
    /// tokens (paper, prototype).
    TransposedConv {
        /// Kernel side (the prototype uses 25).
        kernel: usize,
    },
    /// A ViT patch embedding: `patch`×`patch` image patches projected linearly to
    /// P·P values each (electronic).
    Patch {
        /// Image patch side.
        patch: usize,
    },
}

/// Padding of the shared convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvSharePadding {
    /// Q/K/V maps shrink to (P−K+1)²; the projection is a `full` convolution back to
    /// P×P. The paper reports attention comparable to a ViT with this setting.
    Valid,
    /// Every map stays P×P; CNN-like behaviour in the paper.
    Same,
}

/// The MLP of a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "kind")]
pub enum ConvShareMlp {
    /// `ratio` shared K×K kernels (`same`) each applied to every token map, GELU,
    /// then per hidden group a shared kernel, the groups summed: the convolutional
    /// analogue of Linear(d, ratio·d)–GELU–Linear(ratio·d, d). Optical.
    SharedConv {
        /// Hidden maps per token (the prototype's MLP ratio is 2).
        ratio: usize,
    },
    /// A ViT MLP on each token's flattened P·P values (electronic).
    Linear {
        /// Hidden width over P·P.
        ratio: usize,
    },
}

/// Configuration of a [`ConvShareVit`]. Defaults fit 28×28 Fashion-MNIST.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvShareVitConfig {
    /// Side of the (square) input image (default 28).
    #[serde(default = "d_image")]
    pub image_size: usize,
    /// Image channels (default 1).
    #[serde(default = "d_one")]
    pub in_channels: usize,
    /// Embedding (default a 5×5 transposed convolution: 28 → 32, 16 tokens of 8×8).
    #[serde(default = "d_embed")]
    pub embed: ConvShareEmbed,
    /// Side P of a token map (default 8).
    #[serde(default = "d_token")]
    pub token_size: usize,
    /// Blocks (default 4).
    #[serde(default = "d_depth")]
    pub depth: usize,
    /// Heads (default 2).
    #[serde(default = "d_heads")]
    pub heads: usize,
    /// Side K of the shared kernels (default 3).
    #[serde(default = "d_kernel")]
    pub kernel_size: usize,
    /// Padding of the shared convolutions (default `valid`).
    #[serde(default = "d_padding")]
    pub padding: ConvSharePadding,
    /// MLP (default shared convolutions, ratio 2).
    #[serde(default = "d_mlp")]
    pub mlp: ConvShareMlp,
    /// Classes (default 10).
    #[serde(default = "d_classes")]
    pub classes: usize,
}

fn d_image() -> usize {
    28
}
fn d_one() -> usize {
    1
}
fn d_embed() -> ConvShareEmbed {
    ConvShareEmbed::TransposedConv { kernel: 5 }
}
fn d_token() -> usize {
    8
}
fn d_depth() -> usize {
    4
}
fn d_heads() -> usize {
    2
}
fn d_kernel() -> usize {
    3
}
fn d_padding() -> ConvSharePadding {
    ConvSharePadding::Valid
}
fn d_mlp() -> ConvShareMlp {
    ConvShareMlp::SharedConv { ratio: 2 }
}
fn d_classes() -> usize {
    10
}

impl Default for ConvShareVitConfig {
    fn default() -> Self {
        Self {
            image_size: d_image(),
            in_channels: d_one(),
            embed: d_embed(),
            token_size: d_token(),
            depth: d_depth(),
            heads: d_heads(),
            kernel_size: d_kernel(),
            padding: d_padding(),
            mlp: d_mlp(),
            classes: d_classes(),
        }
    }
}

/// The most token maps a ConvShareViT may have (the attention scores are their square).
pub const MAX_TOKENS: usize = 16384;

fn invalid(key: &str, value: impl ToString, valid: impl Into<String>) -> LayerError {
    LayerError::InvalidConfig {
        key: key.into(),
        value: value.to_string(),
        valid: valid.into(),
    }
}

impl ConvShareVitConfig {
    /// Side of the embedded map that is cut into tokens.
    pub fn embedded_side(&self) -> usize {
        match self.embed {
            ConvShareEmbed::TransposedConv { kernel } => self.image_size + kernel.max(1) - 1,
            ConvShareEmbed::Patch { patch } => self.image_size / patch.max(1) * self.token_size,
        }
    }

    /// Image tokens (without the class token).
    pub fn num_patches(&self) -> usize {
        match self.embed {
            ConvShareEmbed::TransposedConv { .. } => (self.embedded_side() / self.token_size.max(1)).pow(2),
            ConvShareEmbed::Patch { patch } => (self.image_size / patch.max(1)).pow(2),
        }
    }

    /// Side of the Q/K/V maps.
    pub fn qkv_side(&self) -> usize {
        match self.padding {
            ConvSharePadding::Valid => self.token_size + 1 - self.kernel_size.min(self.token_size),
            ConvSharePadding::Same => self.token_size,
        }
    }

    /// `Err` naming the first invalid setting.
    pub fn validate(&self) -> Result<(), LayerError> {
        for (key, v) in [
            ("image_size", self.image_size),
            ("in_channels", self.in_channels),
            ("token_size", self.token_size),
            ("depth", self.depth),
            ("heads", self.heads),
            ("kernel_size", self.kernel_size),
            ("classes", self.classes),
        ] {
            if v == 0 {
                return Err(invalid(key, v, "must be at least 1"));
            }
        }
        // Ranges far beyond any published model, so that no size overflows.
        let (kernel, ratio) = match (&self.embed, &self.mlp) {
            (
                ConvShareEmbed::TransposedConv { kernel } | ConvShareEmbed::Patch { patch: kernel },
                ConvShareMlp::SharedConv { ratio } | ConvShareMlp::Linear { ratio },
            ) => (*kernel, *ratio),
        };
        for (key, v, max) in [
            ("image_size", self.image_size, 16384),
            ("in_channels", self.in_channels, 4096),
            ("token_size", self.token_size, 1024),
            ("depth", self.depth, 4096),
            ("heads", self.heads, 4096),
            ("kernel_size", self.kernel_size, 1024),
            ("classes", self.classes, 1_000_000),
            ("embed.kernel", kernel, 4096),
            ("mlp.ratio", ratio, 256),
        ] {
            if v > max {
                let key = if key == "embed.kernel" && matches!(self.embed, ConvShareEmbed::Patch { .. }) {
                    "embed.patch"
                } else {
                    key
                };
                return Err(invalid(key, v, format!("must be in 1..={max}")));
            }
        }
        match self.embed {
            ConvShareEmbed::TransposedConv { kernel } => {
                if kernel == 0 {
                    return Err(invalid("embed.kernel", kernel, "must be at least 1"));
                }
                let side = self.embedded_side();
                if !side.is_multiple_of(self.token_size) {
                    return Err(invalid(
                        "embed.kernel",
                        kernel,
                        format!(
                            "image_size + kernel − 1 = {side} must be a multiple of token_size = {} \
                             (e.g. kernel = {})",
                            self.token_size,
                            (self.image_size / self.token_size + 1) * self.token_size + 1 - self.image_size
                        ),
                    ));
                }
            }
            ConvShareEmbed::Patch { patch } => {
                if patch == 0 || !self.image_size.is_multiple_of(patch) {
                    return Err(invalid(
                        "embed.patch",
                        patch,
                        format!("must divide image_size = {}", self.image_size),
                    ));
                }
            }
        }
        if self.padding == ConvSharePadding::Valid && self.kernel_size > self.token_size {
            return Err(invalid(
                "kernel_size",
                self.kernel_size,
                format!("`valid` padding needs kernel_size ≤ token_size = {}", self.token_size),
            ));
        }
        let ratio = match self.mlp {
            ConvShareMlp::SharedConv { ratio } | ConvShareMlp::Linear { ratio } => ratio,
        };
        if ratio == 0 {
            return Err(invalid("mlp.ratio", ratio, "must be at least 1"));
        }
        // Attention scores are tokens² per head: bound the tokens.
        let per_side = match self.embed {
            ConvShareEmbed::TransposedConv { .. } => self.embedded_side() / self.token_size,
            ConvShareEmbed::Patch { patch } => self.image_size / patch,
        };
        if per_side * per_side > MAX_TOKENS {
            return Err(invalid(
                "image_size",
                self.image_size,
                format!(
                    "gives {per_side}² = {} tokens; at most {MAX_TOKENS} (raise token_size or the patch)",
                    per_side * per_side
                ),
            ));
        }
        Ok(())
    }

    /// The model with seeded weights: PyTorch-uniform kernels (fan-in K², or r·K²
    /// for the summing MLP stage), truncated-normal (0.02) class token and
    /// positional embedding, unit LayerNorms.
    pub fn init<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<ConvShareVit, LayerError> {
        self.validate()?;
        let (p, k, h) = (self.token_size, self.kernel_size, self.heads);
        let unif = WeightInit::PytorchUniform;
        let kernels = |n: usize, fan: usize, rng: &mut R| -> Array3<f32> { unif.weight((n, k, k), fan, rng) };
        let embed = match self.embed {
            ConvShareEmbed::TransposedConv { kernel } => Embed::Transposed {
                // PyTorch's ConvTranspose2d fan-in is out_channels·K² = K².
                weight: unif.weight((self.in_channels, 1, kernel, kernel), kernel * kernel, rng),
                bias: unif.bias(1, kernel * kernel, rng),
            },
            ConvShareEmbed::Patch { patch } => Embed::Patch(
                PatchEmbeddingConfig::new(self.in_channels, patch, p * p)
                    .with_init(unif)
                    .init(rng)?,
            ),
        };
        let tokens = self.num_patches() + 1;
        let cls_token = WeightInit::vit().weight((p, p), p * p, rng);
        let pos_embed = WeightInit::vit().weight((tokens, p, p), p * p, rng);
        let mut blocks = Vec::with_capacity(self.depth);
        for _ in 0..self.depth {
            let norm1 = LayerNormConfig::new(p * p).init()?;
            let mut qkv = Vec::with_capacity(3);
            for _ in 0..3 {
                qkv.push((kernels(h, k * k, rng), unif.bias(h, k * k, rng)));
            }
            let proj = (kernels(1, k * k, rng), unif.bias(1, k * k, rng));
            let norm2 = LayerNormConfig::new(p * p).init()?;
            let mlp = match self.mlp {
                ConvShareMlp::SharedConv { ratio } => BlockMlp::Conv {
                    fc1: (kernels(ratio, k * k, rng), unif.bias(ratio, k * k, rng)),
                    fc2: (kernels(ratio, ratio * k * k, rng), unif.bias(1, ratio * k * k, rng)),
                },
                ConvShareMlp::Linear { ratio } => BlockMlp::Linear(MlpConfig::new(p * p, ratio * p * p).init(rng)?),
            };
            let [q, kk, v]: [(Array3<f32>, Array1<f32>); 3] = qkv.try_into().expect("three projections");
            blocks.push(Block {
                norm1,
                q,
                k: kk,
                v,
                proj,
                norm2,
                mlp,
            });
        }
        Ok(ConvShareVit {
            config: self.clone(),
            embed,
            cls_token,
            pos_embed,
            blocks,
            norm: LayerNormConfig::new(p * p).init()?,
            head_weight: unif.weight((self.classes, p, p), p * p, rng),
            head_bias: unif.bias(self.classes, p * p, rng),
        })
    }
}

/// Kernels `[n, K, K]` and one bias per kernel.
type Kernels<T = f32> = (Array3<T>, Array1<T>);

#[derive(Debug, Clone, PartialEq)]
enum Embed<T = f32> {
    Transposed { weight: Array4<T>, bias: Array1<T> },
    Patch(PatchEmbedding<T>),
}

#[derive(Debug, Clone, PartialEq)]
enum BlockMlp<T = f32> {
    Conv { fc1: Kernels<T>, fc2: Kernels<T> },
    Linear(Mlp<T>),
}

#[derive(Debug, Clone, PartialEq)]
struct Block<T = f32> {
    norm1: LayerNorm<T>,
    q: Kernels<T>,
    k: Kernels<T>,
    v: Kernels<T>,
    proj: Kernels<T>,
    norm2: LayerNorm<T>,
    mlp: BlockMlp<T>,
}

/// A ConvShareViT (see the module docs), with parameters of element type `T`
/// (`f32`; `f64` for gradient checks).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvShareVit<T = f32> {
    config: ConvShareVitConfig,
    embed: Embed<T>,
    cls_token: Array2<T>,
    pos_embed: Array3<T>,
    blocks: Vec<Block<T>>,
    norm: LayerNorm<T>,
    head_weight: Array3<T>,
    head_bias: Array1<T>,
}

fn to_f64(a: ArrayView2<f32>) -> Array2<f64> {
    a.mapv(f64::from)
}

/// Row `t` of `[T, P·P]` as a P×P map in f64.
fn token_maps(x: ArrayView2<f32>, p: usize) -> Vec<Array2<f64>> {
    x.outer_iter()
        .map(|row| Array2::from_shape_fn((p, p), |(i, j)| f64::from(row[i * p + j])))
        .collect()
}

fn kernel_list(k: &Array3<f32>) -> Vec<Array2<f64>> {
    k.outer_iter().map(|m| to_f64(m)).collect()
}

impl<T: Real> ConvShareVit<T> {
    /// The configuration.
    pub fn config(&self) -> &ConvShareVitConfig {
        &self.config
    }

    /// Tokens including the class token.
    pub fn tokens(&self) -> usize {
        self.pos_embed.dim().0
    }
}

impl ConvShareVit {
    /// Shared convolution of every map with every kernel of `kernels` (plus its
    /// bias), as one op. Returns `[kernel][map]` outputs.
    fn shared_conv(
        fwd: &mut Forward,
        name: &str,
        maps: &[Array2<f64>],
        kernels: &Kernels,
        mode: Mode,
    ) -> Result<Vec<Vec<Array2<f64>>>, ForwardError> {
        let ks = kernel_list(&kernels.0);
        let t = maps.len();
        let pairs = (0..ks.len()).flat_map(|k| (0..t).map(move |i| (i, k))).collect();
        let batch = ConvBatch {
            inputs: maps,
            kernels: &ks,
            pairs,
            mode,
            op: Op::Convolution,
        };
        let params = kernels.0.len() + kernels.1.len();
        let mut out = fwd.convs(name, OpKind::SharedConv, &batch, params)?.into_iter();
        let mut grouped = Vec::with_capacity(ks.len());
        for b in kernels.1.iter() {
            let g: Vec<Array2<f64>> = (&mut out).take(t).map(|m| m + f64::from(*b)).collect();
            grouped.push(g);
        }
        Ok(grouped)
    }

    fn embed(&self, fwd: &mut Forward, image: ArrayView3<f32>) -> Result<Array2<f32>, ForwardError> {
        let p = self.config.token_size;
        match &self.embed {
            Embed::Patch(pe) => {
                let patches = pe.patches(image);
                Ok(fwd.linear("patch_embed.proj", &pe.proj, patches.view()))
            }
            Embed::Transposed { weight, bias } => {
                let c = image.dim().0;
                let inputs: Vec<Array2<f64>> = image.outer_iter().map(to_f64).collect();
                let kernels: Vec<Array2<f64>> = (0..c).map(|i| to_f64(weight.slice(s![i, 0, .., ..]))).collect();
                let batch = ConvBatch {
                    inputs: &inputs,
                    kernels: &kernels,
                    pairs: (0..c).map(|i| (i, i)).collect(),
                    mode: Mode::Full,
                    op: Op::Convolution,
                };
                let outs = fwd.convs("embed", OpKind::Embedding, &batch, weight.len() + bias.len())?;
                let mut map = outs.into_iter().reduce(|a, b| a + b).expect("at least one channel");
                map += f64::from(bias[0]);
                let side = map.nrows();
                fwd.record_add("embed.bias", &[side, side], 1);
                let g = side / p;
                let mut tokens = Array2::<f32>::zeros((g * g, p * p));
                for gy in 0..g {
                    for gx in 0..g {
                        let block = map.slice(s![gy * p..(gy + 1) * p, gx * p..(gx + 1) * p]);
                        let mut row = tokens.row_mut(gy * g + gx);
                        row.iter_mut().zip(block.iter()).for_each(|(o, &v)| *o = v as f32);
                    }
                }
                Ok(tokens)
            }
        }
    }

    /// Attention of block `i` on normalised tokens `x` `[T, P·P]`: shared Q/K/V
    /// convolutions, valid-correlation scores, electronic softmax and value mixing
    /// summed over heads, shared projection.
    fn attention(&self, fwd: &mut Forward, i: usize, x: ArrayView2<f32>) -> Result<Array2<f32>, ForwardError> {
        let cfg = &self.config;
        let (p, heads, t) = (cfg.token_size, cfg.heads, x.nrows());
        let b = &self.blocks[i];
        let pre = format!("blocks.{i}");
        let (qkv_mode, proj_mode) = match cfg.padding {
            ConvSharePadding::Valid => (Mode::Valid, Mode::Full),
            ConvSharePadding::Same => (Mode::Same, Mode::Same),
        };
        let side = cfg.qkv_side();
        let maps = token_maps(x, p);
        // Q, K and V of all heads: one batch of 3·heads shared kernels.
        let stacked: Kernels = (
            ndarray::concatenate(Axis(0), &[b.q.0.view(), b.k.0.view(), b.v.0.view()]).expect("same K"),
            ndarray::concatenate(Axis(0), &[b.q.1.view(), b.k.1.view(), b.v.1.view()]).expect("same len"),
        );
        let qkv = Self::shared_conv(fwd, &join(&pre, "attn.qkv"), &maps, &stacked, qkv_mode)?;
        let (q, rest) = qkv.split_at(heads);
        let (k, v) = rest.split_at(heads);
        // Scores: valid correlation of q_i (input) with k_j (kernel), all heads.
        let qs: Vec<Array2<f64>> = q.iter().flatten().cloned().collect();
        let ks: Vec<Array2<f64>> = k.iter().flatten().cloned().collect();
        let pairs = (0..heads)
            .flat_map(|h| (0..t).flat_map(move |qi| (0..t).map(move |kj| (h * t + qi, h * t + kj))))
            .collect();
        let batch = ConvBatch {
            inputs: &qs,
            kernels: &ks,
            pairs,
            mode: Mode::Valid,
            op: Op::Correlation,
        };
        let raw = fwd.convs(&join(&pre, "attn.scores"), OpKind::AttentionScores, &batch, 0)?;
        // On a GPU the scores are a matrix product per head: [T, P'²] · [P'², T].
        fwd.set_last_gemm(Gemm {
            count: heads,
            m: t,
            n: t,
            k: side * side,
            shared_weights: false,
        });
        let scale = 1.0 / side as f32;
        let mut attn = ndarray::Array3::<f32>::zeros((heads, t, t));
        for (a, r) in attn.iter_mut().zip(&raw) {
            *a = r[[0, 0]] as f32 * scale;
        }
        for h in 0..heads {
            fwd.softmax(
                &join(&pre, &format!("attn.softmax.{h}")),
                &mut attn.index_axis_mut(Axis(0), h),
            );
        }
        // Attention-weighted sum of the value maps, summed over heads (electronic).
        let mut mixed = vec![Array2::<f64>::zeros((side, side)); t];
        for h in 0..heads {
            for (qi, m) in mixed.iter_mut().enumerate() {
                for (kj, vm) in v[h].iter().enumerate() {
                    map_axpy(m, f64::from(attn[[h, qi, kj]]), vm.view());
                }
            }
        }
        fwd.record(
            TraceOp::electronic(
                join(&pre, "attn.mix"),
                OpKind::AttentionMix,
                &[heads, t, side * side],
                &[t, side * side],
                2 * (heads * t * t * side * side) as u64,
            )
            .with_gemm(Gemm {
                count: heads,
                m: t,
                n: side * side,
                k: t,
                shared_weights: false,
            }),
        );
        let proj = Self::shared_conv(fwd, &join(&pre, "attn.proj"), &mixed, &b.proj, proj_mode)?;
        Ok(maps_to_rows(&proj[0], p))
    }

    /// MLP of block `i` on normalised tokens `x` `[T, P·P]`.
    fn mlp(&self, fwd: &mut Forward, i: usize, x: ArrayView2<f32>) -> Result<Array2<f32>, ForwardError> {
        let (p, t) = (self.config.token_size, x.nrows());
        let d = p * p;
        let b = &self.blocks[i];
        let pre = format!("blocks.{i}");
        Ok(match &b.mlp {
            BlockMlp::Linear(m) => fwd.mlp(&join(&pre, "mlp"), m, x),
            BlockMlp::Conv { fc1, fc2 } => {
                let maps = token_maps(x, p);
                let hidden = Self::shared_conv(fwd, &join(&pre, "mlp.fc1"), &maps, fc1, Mode::Same)?;
                let r = hidden.len();
                let mut flat: Vec<Array2<f64>> = hidden.into_iter().flatten().collect();
                for m in &mut flat {
                    m.mapv_inplace(|v| f64::from(crate::layers::gelu(v as f32)));
                }
                fwd.record(TraceOp::electronic(
                    join(&pre, "mlp.act"),
                    OpKind::Activation,
                    &[r * t, p, p],
                    &[r * t, p, p],
                    crate::ops::GELU_FLOPS * (r * t * d) as u64,
                ));
                let ks = kernel_list(&fc2.0);
                let batch = ConvBatch {
                    inputs: &flat,
                    kernels: &ks,
                    pairs: (0..r).flat_map(|g| (0..t).map(move |i| (g * t + i, g))).collect(),
                    mode: Mode::Same,
                    op: Op::Convolution,
                };
                let outs = fwd.convs(
                    &join(&pre, "mlp.fc2"),
                    OpKind::SharedConv,
                    &batch,
                    fc2.0.len() + fc2.1.len(),
                )?;
                let mut sum = vec![Array2::<f64>::from_elem((p, p), f64::from(fc2.1[0])); t];
                for (j, o) in outs.iter().enumerate() {
                    sum[j % t] += o;
                }
                fwd.record_add(&join(&pre, "mlp.sum"), &[r, t, p, p], 1);
                maps_to_rows(&sum, p)
            }
        })
    }

    /// Logits for one image `[channels, size, size]`, every shared convolution,
    /// correlation, the embedding (transposed convolution) and the classifier on
    /// `fwd`'s backend.
    ///
    /// # Panics
    /// If the image shape differs from the configuration's.
    pub fn forward(&self, fwd: &mut Forward, image: ArrayView3<f32>) -> Result<Array1<f32>, ForwardError> {
        let cfg = &self.config;
        assert_eq!(
            image.dim(),
            (cfg.in_channels, cfg.image_size, cfg.image_size),
            "ConvShareVit::forward: image [c, h, w]"
        );
        let p = cfg.token_size;
        let d = p * p;
        let patches = self.embed(fwd, image)?;
        let t = self.tokens();
        let mut x = Array2::<f32>::zeros((t, d));
        x.row_mut(0)
            .iter_mut()
            .zip(self.cls_token.iter())
            .for_each(|(o, &v)| *o = v);
        x.slice_mut(s![1.., ..]).assign(&patches);
        let pos = self.pos_embed.view().into_shape_with_order((t, d)).expect("contiguous");
        x += &pos;
        fwd.record_add("pos_embed", &[t, d], self.pos_embed.len() + self.cls_token.len());
        for (i, b) in self.blocks.iter().enumerate() {
            let pre = format!("blocks.{i}");
            let n1 = fwd.layer_norm(&join(&pre, "norm1"), &b.norm1, x.view());
            let attn_out = self.attention(fwd, i, n1.view())?;
            fwd.add_assign(&join(&pre, "residual1"), &mut x, attn_out.view());
            let n2 = fwd.layer_norm(&join(&pre, "norm2"), &b.norm2, x.view());
            let mlp_out = self.mlp(fwd, i, n2.view())?;
            fwd.add_assign(&join(&pre, "residual2"), &mut x, mlp_out.view());
        }
        let xn = fwd.layer_norm("norm", &self.norm, x.view());
        // Classifier: the class-token map correlated (valid) with one P×P kernel per
        // class — a dot product per class.
        let cls = token_maps(xn.slice(s![0..1, ..]), p);
        let ks = kernel_list(&self.head_weight);
        let batch = ConvBatch {
            inputs: &cls,
            kernels: &ks,
            pairs: (0..ks.len()).map(|c| (0, c)).collect(),
            mode: Mode::Valid,
            op: Op::Correlation,
        };
        let params = self.head_weight.len() + self.head_bias.len();
        let outs = fwd.convs("head", OpKind::Linear, &batch, params)?;
        fwd.set_last_gemm(Gemm {
            count: 1,
            m: 1,
            n: ks.len(),
            k: p * p,
            shared_weights: true,
        });
        Ok(Array1::from_iter(
            outs.iter().zip(&self.head_bias).map(|(o, &b)| o[[0, 0]] as f32 + b),
        ))
    }
}

/// P×P maps back to rows `[T, P·P]`.
fn maps_to_rows(maps: &[Array2<f64>], p: usize) -> Array2<f32> {
    let mut x = Array2::<f32>::zeros((maps.len(), p * p));
    for (mut row, m) in x.outer_iter_mut().zip(maps) {
        assert_eq!(m.dim(), (p, p), "token map shape");
        row.iter_mut().zip(m.iter()).for_each(|(o, &v)| *o = v as f32);
    }
    x
}

fn visit_kernels<T: Real>(
    f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>),
    prefix: &str,
    kernels: &mut Kernels<T>,
    conv_shape: [usize; 2],
) {
    let (n, k, _) = kernels.0.dim();
    visit_as(
        f,
        prefix,
        "weight",
        &mut kernels.0,
        &[conv_shape[0], conv_shape[1], k, k],
    );
    let nb = kernels.1.len();
    visit_as(f, prefix, "bias", &mut kernels.1, &[nb]);
    debug_assert_eq!(conv_shape[0] * conv_shape[1], n);
}

impl<T: Real> Parameters<T> for ConvShareVit<T> {
    /// Names: `embed.{weight,bias}` (ConvTranspose2d `[in, 1, K, K]`) or
    /// `patch_embed.proj.*`, `cls_token` `[1, 1, P, P]`, `pos_embed` `[1, T, P, P]`,
    /// `blocks.i.{norm1,norm2}.*` (over P·P), `blocks.i.attn.{q,k,v}.weight`
    /// `[heads, 1, K, K]` with `bias` `[heads]`, `blocks.i.attn.proj.*`
    /// `[1, 1, K, K]`, `blocks.i.mlp.fc1.weight` `[r, 1, K, K]`,
    /// `blocks.i.mlp.fc2.weight` `[1, r, K, K]` (or a linear `mlp.fc1/fc2`),
    /// `norm.*`, `head.weight` `[classes, 1, P, P]`, `head.bias`.
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>)) {
        let p = self.config.token_size;
        match &mut self.embed {
            Embed::Transposed { weight, bias } => {
                let shape = weight.shape().to_vec();
                visit_as(f, prefix, "embed.weight", weight, &shape);
                visit_as(f, prefix, "embed.bias", bias, &[1]);
            }
            Embed::Patch(pe) => pe.visit_params(&join(prefix, "patch_embed"), f),
        }
        visit_as(f, prefix, "cls_token", &mut self.cls_token, &[1, 1, p, p]);
        let t = self.pos_embed.dim().0;
        visit_as(f, prefix, "pos_embed", &mut self.pos_embed, &[1, t, p, p]);
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let pre = join(prefix, &format!("blocks.{i}"));
            b.norm1.visit_params(&join(&pre, "norm1"), f);
            let h = b.q.0.dim().0;
            visit_kernels(f, &join(&pre, "attn.q"), &mut b.q, [h, 1]);
            visit_kernels(f, &join(&pre, "attn.k"), &mut b.k, [h, 1]);
            visit_kernels(f, &join(&pre, "attn.v"), &mut b.v, [h, 1]);
            visit_kernels(f, &join(&pre, "attn.proj"), &mut b.proj, [1, 1]);
            b.norm2.visit_params(&join(&pre, "norm2"), f);
            match &mut b.mlp {
                BlockMlp::Linear(m) => m.visit_params(&join(&pre, "mlp"), f),
                BlockMlp::Conv { fc1, fc2 } => {
                    let r = fc1.0.dim().0;
                    visit_kernels(f, &join(&pre, "mlp.fc1"), fc1, [r, 1]);
                    visit_kernels(f, &join(&pre, "mlp.fc2"), fc2, [1, r]);
                }
            }
        }
        self.norm.visit_params(&join(prefix, "norm"), f);
        let c = self.head_weight.dim().0;
        visit_as(f, prefix, "head.weight", &mut self.head_weight, &[c, 1, p, p]);
        visit_as(f, prefix, "head.bias", &mut self.head_bias, &[c]);
    }
}

// ---------------------------------------------------------------------------
// Training path: the exact digital forward over a batch, in any `Real` type, with
// the cache of its backward pass, and the backward pass itself.

/// What [`ConvShareVit::backward`] needs of one image's forward pass.
#[derive(Debug, Clone)]
struct ImageCache<T> {
    embed: EmbedCache<T>,
    blocks: Vec<BlockCache<T>>,
    norm: LayerNormCache<T>,
    /// The class-token map after the final norm.
    cls: Array2<T>,
}

#[derive(Debug, Clone)]
enum EmbedCache<T> {
    /// The image (the transposed convolution's input).
    Transposed(Array3<T>),
    /// The patches (the linear projection's input).
    Patch(Array2<T>),
}

#[derive(Debug, Clone)]
struct BlockCache<T> {
    norm1: LayerNormCache<T>,
    /// Normalised token maps, the input of Q/K/V.
    maps: Vec<Array2<T>>,
    /// `[q|k|v][head][token]` maps, bias included.
    qkv: [Vec<Vec<Array2<T>>>; 3],
    /// Attention probabilities `[head]` `T×T`.
    attn: Vec<Array2<T>>,
    /// Value maps mixed and summed over heads `[token]`.
    mixed: Vec<Array2<T>>,
    norm2: LayerNormCache<T>,
    mlp: MlpCacheKind<T>,
}

#[derive(Debug, Clone)]
enum MlpCacheKind<T> {
    Conv {
        /// Normalised token maps, the input of `fc1`.
        maps: Vec<Array2<T>>,
        /// `fc1` outputs before GELU `[group][token]`.
        pre: Vec<Vec<Array2<T>>>,
    },
    Linear(MlpCache<T>),
}

/// What [`ConvShareVit::backward`] needs of [`ConvShareVit::forward_train`].
#[derive(Debug, Clone)]
pub struct ConvShareVitCache<T = f32> {
    images: Vec<ImageCache<T>>,
}

fn rows_to_maps<T: Real>(x: ArrayView2<T>, p: usize) -> Vec<Array2<T>> {
    x.outer_iter()
        .map(|r| {
            r.to_owned()
                .into_shape_with_order((p, p))
                .expect("P·P values per token")
        })
        .collect()
}

fn maps_into_rows<T: Real>(maps: &[Array2<T>], p: usize) -> Array2<T> {
    let mut x = Array2::zeros((maps.len(), p * p));
    for (mut row, m) in x.outer_iter_mut().zip(maps) {
        row.iter_mut().zip(m.iter()).for_each(|(o, &v)| *o = v);
    }
    x
}

/// The outputs of the jobs `pairs` of `(input, kernel)` indices.
fn convs<T: Real>(
    inputs: &[Array2<T>],
    kernels: &[ArrayView2<T>],
    pairs: &[(usize, usize)],
    mode: Mode,
) -> Vec<Array2<T>> {
    pairs
        .iter()
        .map(|&(i, k)| conv2d(inputs[i].view(), kernels[k], mode))
        .collect()
}

/// Adds the perturbation of op `name` to the exact outputs `outs[image][job]`: the
/// jobs `pairs` of `(input, kernel)` indices of every image, submitted at once.
#[allow(clippy::too_many_arguments)]
fn perturb<T: Real>(
    noise: &mut Option<&mut OpticsNoise>,
    name: &str,
    inputs: &[Vec<Array2<T>>],
    kernels: &[Vec<ArrayView2<T>>],
    pairs: &[(usize, usize)],
    mode: Mode,
    op: Op,
    outs: &mut [Vec<Array2<T>>],
) {
    let Some(n) = noise.as_deref_mut() else {
        return;
    };
    let f = |a: ArrayView2<T>| a.mapv(|v| v.as_f64());
    let jobs: Vec<ImageJobs> = (0..inputs.len())
        .map(|img| ImageJobs {
            image: img,
            inputs: inputs[img].iter().map(|x| f(x.view())).collect(),
            kernels: kernels[img].iter().map(|k| f(*k)).collect(),
            pairs: pairs.to_vec(),
            exact: outs[img].iter().map(|o| f(o.view())).collect(),
        })
        .collect();
    for (o, d) in outs.iter_mut().zip(n.delta_batch(name, &jobs, mode, op)) {
        for (a, b) in o.iter_mut().zip(d) {
            a.zip_mut_with(&b, |x, &y| *x += T::of(y));
        }
    }
}

fn add_kernel_grad<T: Real>(grad: &mut Kernels<T>, n: usize, dk: &Array2<T>, db: T) {
    let mut g = grad.0.index_axis_mut(Axis(0), n);
    g += dk;
    grad.1[n] += db;
}

impl<T: Real> ConvShareVit<T> {
    fn modes(&self) -> (Mode, Mode) {
        match self.config.padding {
            ConvSharePadding::Valid => (Mode::Valid, Mode::Full),
            ConvSharePadding::Same => (Mode::Same, Mode::Same),
        }
    }

    /// Logits `[B, classes]` of a batch of images `[B, channels, size, size]` on the
    /// exact digital path (as [`ConvShareVit::forward`] on the digital backend), and
    /// the cache of the backward pass.
    ///
    /// # Panics
    /// If the image shape differs from the configuration's.
    pub fn forward_train(&self, images: ArrayView4<T>) -> (Array2<T>, ConvShareVitCache<T>) {
        self.forward_optics_aware(images, None)
    }

    /// [`ConvShareVit::forward_train`] with every op a 4f machine runs (embedding,
    /// Q/K/V, scores, projection, convolutional MLP, classifier) perturbed by
    /// `noise`, one generator per image; the cache is that of the exact ops
    /// (straight-through gradients). The batch runs layer by layer, so each optical
    /// op submits the jobs of every image at once (on the full simulation, images
    /// share frames).
    pub fn forward_optics_aware(
        &self,
        images: ArrayView4<T>,
        mut noise: Option<&mut OpticsNoise>,
    ) -> (Array2<T>, ConvShareVitCache<T>) {
        let cfg = &self.config;
        let (nb, c, h, w) = images.dim();
        assert_eq!(
            (c, h, w),
            (cfg.in_channels, cfg.image_size, cfg.image_size),
            "ConvShareVit::forward_train: image [c, h, w]"
        );
        let noise = &mut noise;
        let p = cfg.token_size;
        let d = p * p;
        let t = self.tokens();
        // Embedding.
        let (patches, embeds): (Vec<Array2<T>>, Vec<EmbedCache<T>>) = match &self.embed {
            Embed::Patch(pe) => images
                .outer_iter()
                .map(|image| {
                    let patches = pe.patches(image);
                    (pe.proj.forward(patches.view()), EmbedCache::Patch(patches))
                })
                .unzip(),
            Embed::Transposed { weight, bias } => {
                let kernels: Vec<ArrayView2<T>> = (0..c).map(|ch| weight.slice(s![ch, 0, .., ..])).collect();
                let pairs: Vec<(usize, usize)> = (0..c).map(|ch| (ch, ch)).collect();
                let inputs: Vec<Vec<Array2<T>>> = images
                    .outer_iter()
                    .map(|im| im.outer_iter().map(|x| x.to_owned()).collect())
                    .collect();
                let mut outs: Vec<Vec<Array2<T>>> =
                    inputs.iter().map(|i| convs(i, &kernels, &pairs, Mode::Full)).collect();
                let shared = vec![kernels; nb];
                perturb(
                    noise,
                    "embed",
                    &inputs,
                    &shared,
                    &pairs,
                    Mode::Full,
                    Op::Convolution,
                    &mut outs,
                );
                outs.into_iter()
                    .zip(images.outer_iter())
                    .map(|(outs, image)| {
                        let map = outs.into_iter().reduce(|a, b| a + &b).expect("at least one channel") + bias[0];
                        let g = map.nrows() / p;
                        let mut tokens = Array2::zeros((g * g, d));
                        for gy in 0..g {
                            for gx in 0..g {
                                let block = map.slice(s![gy * p..(gy + 1) * p, gx * p..(gx + 1) * p]);
                                tokens
                                    .row_mut(gy * g + gx)
                                    .iter_mut()
                                    .zip(block.iter())
                                    .for_each(|(o, &v)| *o = v);
                            }
                        }
                        (tokens, EmbedCache::Transposed(image.to_owned()))
                    })
                    .unzip()
            }
        };
        let pos = self.pos_embed.view().into_shape_with_order((t, d)).expect("contiguous");
        let mut xs: Vec<Array2<T>> = patches
            .iter()
            .map(|patches| {
                let mut x = Array2::zeros((t, d));
                x.row_mut(0)
                    .iter_mut()
                    .zip(self.cls_token.iter())
                    .for_each(|(o, &v)| *o = v);
                x.slice_mut(s![1.., ..]).assign(patches);
                x + pos
            })
            .collect();
        let mut blocks: Vec<Vec<BlockCache<T>>> = (0..nb).map(|_| Vec::with_capacity(self.blocks.len())).collect();
        for (bi, b) in self.blocks.iter().enumerate() {
            let name = |what: &str| format!("blocks.{bi}.{what}");
            let caches = self.block_forward(b, &mut xs, noise, &name);
            for (all, cache) in blocks.iter_mut().zip(caches) {
                all.push(cache);
            }
        }
        // Classifier: the class-token map correlated (valid) with one map per class.
        let heads_k: Vec<ArrayView2<T>> = self.head_weight.outer_iter().collect();
        let head_pairs: Vec<(usize, usize)> = (0..heads_k.len()).map(|k| (0, k)).collect();
        let (norms, cls_in): (Vec<LayerNormCache<T>>, Vec<Vec<Array2<T>>>) = xs
            .iter()
            .map(|x| {
                let (xn, norm) = self.norm.forward_train(x.view());
                let cls = xn.row(0).to_owned().into_shape_with_order((p, p)).expect("P·P values");
                (norm, vec![cls])
            })
            .unzip();
        let mut raw: Vec<Vec<Array2<T>>> = cls_in
            .iter()
            .map(|cls| {
                heads_k
                    .iter()
                    .map(|k| Array2::from_elem((1, 1), map_dot(cls[0].view(), *k)))
                    .collect()
            })
            .collect();
        let shared = vec![heads_k; nb];
        perturb(
            noise,
            "head",
            &cls_in,
            &shared,
            &head_pairs,
            Mode::Valid,
            Op::Correlation,
            &mut raw,
        );
        let mut logits = Array2::zeros((nb, cfg.classes));
        let mut images_cache = Vec::with_capacity(nb);
        let parts = raw.into_iter().zip(embeds).zip(blocks).zip(norms).zip(cls_in);
        for (img, ((((raw, embed), blocks), norm), mut cls)) in parts.enumerate() {
            for (o, (r, &bias)) in logits.row_mut(img).iter_mut().zip(raw.iter().zip(&self.head_bias)) {
                *o = r[[0, 0]] + bias;
            }
            images_cache.push(ImageCache {
                embed,
                blocks,
                norm,
                cls: cls.pop().expect("one class map"),
            });
        }
        (logits, ConvShareVitCache { images: images_cache })
    }

    /// One block over every image's tokens `xs` (updated in place), each optical op
    /// submitted for all images at once; the caches of the backward pass.
    // Indices follow the formulas (head h, query i, key j).
    #[allow(clippy::needless_range_loop)]
    fn block_forward(
        &self,
        b: &Block<T>,
        xs: &mut [Array2<T>],
        noise: &mut Option<&mut OpticsNoise>,
        name: &dyn Fn(&str) -> String,
    ) -> Vec<BlockCache<T>> {
        let cfg = &self.config;
        let (p, heads) = (cfg.token_size, cfg.heads);
        let (qkv_mode, proj_mode) = self.modes();
        let scale = T::one() / T::of(cfg.qkv_side() as f64);
        let (nb, t) = (xs.len(), self.tokens());
        // Attention: Q, K and V of all heads as one op of 3·heads kernels.
        let (norm1, maps): (Vec<LayerNormCache<T>>, Vec<Vec<Array2<T>>>) = xs
            .iter()
            .map(|x| {
                let (n1, norm1) = b.norm1.forward_train(x.view());
                (norm1, rows_to_maps(n1.view(), p))
            })
            .unzip();
        let stacked: Vec<(ArrayView2<T>, T)> = [&b.q, &b.k, &b.v]
            .iter()
            .flat_map(|k| (0..heads).map(move |h| (k.0.index_axis(Axis(0), h), k.1[h])))
            .collect();
        let kernels: Vec<ArrayView2<T>> = stacked.iter().map(|(k, _)| *k).collect();
        let pairs: Vec<(usize, usize)> = (0..kernels.len()).flat_map(|k| (0..t).map(move |i| (i, k))).collect();
        let mut outs: Vec<Vec<Array2<T>>> = maps.iter().map(|m| convs(m, &kernels, &pairs, qkv_mode)).collect();
        perturb(
            noise,
            &name("attn.qkv"),
            &maps,
            &vec![kernels; nb],
            &pairs,
            qkv_mode,
            Op::Convolution,
            &mut outs,
        );
        let qkv: Vec<[Vec<Vec<Array2<T>>>; 3]> = outs
            .into_iter()
            .map(|outs| {
                let mut it = outs.into_iter();
                std::array::from_fn(|which| {
                    (0..heads)
                        .map(|h| (&mut it).take(t).map(|m| m + stacked[which * heads + h].1).collect())
                        .collect()
                })
            })
            .collect();
        let side = qkv[0][0][0][0].nrows();
        // Scores: valid correlations q_i ⋆ k_j (one number each), all heads.
        let qs: Vec<Vec<Array2<T>>> = qkv.iter().map(|q| q[0].iter().flatten().cloned().collect()).collect();
        let ks: Vec<Vec<ArrayView2<T>>> = qkv
            .iter()
            .map(|q| q[1].iter().flatten().map(|m| m.view()).collect())
            .collect();
        let score_pairs: Vec<(usize, usize)> = (0..heads)
            .flat_map(|h| (0..t).flat_map(move |i| (0..t).map(move |j| (h * t + i, h * t + j))))
            .collect();
        let mut raw: Vec<Vec<Array2<T>>> = qs
            .iter()
            .zip(&ks)
            .map(|(qs, ks)| {
                score_pairs
                    .iter()
                    .map(|&(i, j)| Array2::from_elem((1, 1), map_dot(qs[i].view(), ks[j])))
                    .collect()
            })
            .collect();
        perturb(
            noise,
            &name("attn.scores"),
            &qs,
            &ks,
            &score_pairs,
            Mode::Valid,
            Op::Correlation,
            &mut raw,
        );
        let mut attn: Vec<Vec<Array2<T>>> = Vec::with_capacity(nb);
        let mut mixed: Vec<Vec<Array2<T>>> = Vec::with_capacity(nb);
        for (raw, qkv) in raw.iter().zip(&qkv) {
            let mut a_img = Vec::with_capacity(heads);
            let mut m_img = vec![Array2::<T>::zeros((side, side)); t];
            for h in 0..heads {
                let scores = Array2::from_shape_fn((t, t), |(i, j)| raw[(h * t + i) * t + j][[0, 0]] * scale);
                let a = softmax_rows(scores.view());
                for (i, m) in m_img.iter_mut().enumerate() {
                    for (j, vm) in qkv[2][h].iter().enumerate() {
                        map_axpy(m, a[[i, j]], vm.view());
                    }
                }
                a_img.push(a);
            }
            attn.push(a_img);
            mixed.push(m_img);
        }
        let kp = vec![b.proj.0.index_axis(Axis(0), 0)];
        let proj_pairs: Vec<(usize, usize)> = (0..t).map(|i| (i, 0)).collect();
        let mut proj: Vec<Vec<Array2<T>>> = mixed.iter().map(|m| convs(m, &kp, &proj_pairs, proj_mode)).collect();
        perturb(
            noise,
            &name("attn.proj"),
            &mixed,
            &vec![kp; nb],
            &proj_pairs,
            proj_mode,
            Op::Convolution,
            &mut proj,
        );
        let mut norm2 = Vec::with_capacity(nb);
        let mut n2s = Vec::with_capacity(nb);
        for (x, proj) in xs.iter_mut().zip(proj.iter_mut()) {
            proj.iter_mut().for_each(|m| *m += b.proj.1[0]);
            *x += &maps_into_rows(proj, p);
            let (n2, c) = b.norm2.forward_train(x.view());
            n2s.push(n2);
            norm2.push(c);
        }
        // MLP.
        let mlps: Vec<MlpCacheKind<T>> = match &b.mlp {
            BlockMlp::Linear(m) => xs
                .iter_mut()
                .zip(&n2s)
                .map(|(x, n2)| {
                    let (o, c) = m.forward_train(n2.view());
                    *x += &o;
                    MlpCacheKind::Linear(c)
                })
                .collect(),
            BlockMlp::Conv { fc1, fc2 } => {
                let maps2: Vec<Vec<Array2<T>>> = n2s.iter().map(|n2| rows_to_maps(n2.view(), p)).collect();
                let r = fc1.0.dim().0;
                let k1: Vec<ArrayView2<T>> = fc1.0.outer_iter().collect();
                let pairs1: Vec<(usize, usize)> = (0..r).flat_map(|g| (0..t).map(move |i| (i, g))).collect();
                let mut h1: Vec<Vec<Array2<T>>> = maps2.iter().map(|m| convs(m, &k1, &pairs1, Mode::Same)).collect();
                perturb(
                    noise,
                    &name("mlp.fc1"),
                    &maps2,
                    &vec![k1; nb],
                    &pairs1,
                    Mode::Same,
                    Op::Convolution,
                    &mut h1,
                );
                let pre: Vec<Vec<Vec<Array2<T>>>> = h1
                    .into_iter()
                    .map(|h1| {
                        let mut it = h1.into_iter();
                        (0..r)
                            .map(|g| (&mut it).take(t).map(|m| m + fc1.1[g]).collect())
                            .collect()
                    })
                    .collect();
                let acts: Vec<Vec<Array2<T>>> = pre
                    .iter()
                    .map(|pre| {
                        pre.iter()
                            .flatten()
                            .map(|m| gelu_forward(m.view(), GeluMode::Exact))
                            .collect()
                    })
                    .collect();
                let k2: Vec<ArrayView2<T>> = fc2.0.outer_iter().collect();
                let pairs2: Vec<(usize, usize)> = (0..r).flat_map(|g| (0..t).map(move |i| (g * t + i, g))).collect();
                let mut h2: Vec<Vec<Array2<T>>> = acts.iter().map(|a| convs(a, &k2, &pairs2, Mode::Same)).collect();
                perturb(
                    noise,
                    &name("mlp.fc2"),
                    &acts,
                    &vec![k2; nb],
                    &pairs2,
                    Mode::Same,
                    Op::Convolution,
                    &mut h2,
                );
                xs.iter_mut()
                    .zip(h2)
                    .zip(maps2.into_iter().zip(pre))
                    .map(|((x, h2), (maps, pre))| {
                        let mut sum = vec![Array2::<T>::from_elem((p, p), fc2.1[0]); t];
                        for (j, o) in h2.iter().enumerate() {
                            sum[j % t] += o;
                        }
                        *x += &maps_into_rows(&sum, p);
                        MlpCacheKind::Conv { maps, pre }
                    })
                    .collect()
            }
        };
        norm1
            .into_iter()
            .zip(maps)
            .zip(qkv)
            .zip(attn.into_iter().zip(mixed))
            .zip(norm2.into_iter().zip(mlps))
            .map(|((((norm1, maps), qkv), (attn, mixed)), (norm2, mlp))| BlockCache {
                norm1,
                maps,
                qkv,
                attn,
                mixed,
                norm2,
                mlp,
            })
            .collect()
    }

    /// The backward pass of [`ConvShareVit::forward_train`] for the gradient `g` of
    /// the logits `[B, classes]`: adds every parameter's gradient to `grad` (a model
    /// of the same shape, e.g. from [`crate::params::zeros_like`]).
    ///
    /// # Panics
    /// If `g` or `grad` do not match the cache or the model.
    pub fn backward(&self, cache: &ConvShareVitCache<T>, g: ArrayView2<T>, grad: &mut ConvShareVit<T>) {
        assert_eq!(
            g.nrows(),
            cache.images.len(),
            "ConvShareVit::backward: gradient rows vs images"
        );
        for (gi, ic) in g.outer_iter().zip(&cache.images) {
            self.backward_image(ic, gi, grad);
        }
    }

    #[allow(clippy::needless_range_loop)]
    fn backward_image(&self, c: &ImageCache<T>, g: ndarray::ArrayView1<T>, grad: &mut ConvShareVit<T>) {
        let cfg = &self.config;
        let (p, heads) = (cfg.token_size, cfg.heads);
        let d = p * p;
        let t = self.tokens();
        let (qkv_mode, proj_mode) = self.modes();
        let scale = T::one() / T::of(cfg.qkv_side() as f64);
        // Classifier: logit_c = Σ cls ⊙ w_c + b_c.
        let mut dcls = Array2::<T>::zeros((p, p));
        for ((w, &gc), (mut gw, gb)) in self
            .head_weight
            .outer_iter()
            .zip(g.iter())
            .zip(grad.head_weight.outer_iter_mut().zip(grad.head_bias.iter_mut()))
        {
            gw.scaled_add(gc, &c.cls);
            *gb += gc;
            dcls.scaled_add(gc, &w);
        }
        let mut dxn = Array2::<T>::zeros((t, d));
        dxn.row_mut(0).iter_mut().zip(dcls.iter()).for_each(|(o, &v)| *o = v);
        let mut dx = self.norm.backward(&c.norm, dxn.view(), &mut grad.norm);
        for ((b, bc), gb) in self.blocks.iter().zip(&c.blocks).zip(grad.blocks.iter_mut()).rev() {
            // MLP (residual: dx flows on unchanged and into the branch).
            let dn2 = match (&b.mlp, &bc.mlp, &mut gb.mlp) {
                (BlockMlp::Linear(m), MlpCacheKind::Linear(mc), BlockMlp::Linear(gm)) => m.backward(mc, dx.view(), gm),
                (
                    BlockMlp::Conv { fc1, fc2 },
                    MlpCacheKind::Conv { maps, pre },
                    BlockMlp::Conv { fc1: g1, fc2: g2 },
                ) => {
                    let dout = rows_to_maps(dx.view(), p);
                    g2.1[0] += dout.iter().map(|m| m.sum()).fold(T::zero(), |a, b| a + b);
                    let mut dmaps = vec![Array2::<T>::zeros((p, p)); t];
                    for (gi, pre_g) in pre.iter().enumerate() {
                        let mut dk1 = Array2::<T>::zeros(fc1.0.index_axis(Axis(0), gi).dim());
                        let mut dk2 = Array2::<T>::zeros(dk1.dim());
                        let mut db1 = T::zero();
                        for ((pm, dm), (m, dmap)) in pre_g.iter().zip(&dout).zip(maps.iter().zip(dmaps.iter_mut())) {
                            let a = gelu_forward(pm.view(), GeluMode::Exact);
                            let mut da = Array2::zeros(a.dim());
                            let k2 = fc2.0.index_axis(Axis(0), gi);
                            conv2d_backward_add(a.view(), k2, Mode::Same, dm.view(), &mut da, &mut dk2);
                            let dpre = gelu_backward(pm.view(), da.view(), GeluMode::Exact);
                            db1 += dpre.sum();
                            let k1 = fc1.0.index_axis(Axis(0), gi);
                            conv2d_backward_add(m.view(), k1, Mode::Same, dpre.view(), dmap, &mut dk1);
                        }
                        add_kernel_grad(g1, gi, &dk1, db1);
                        let mut k2 = g2.0.index_axis_mut(Axis(0), gi);
                        k2 += &dk2;
                    }
                    maps_into_rows(&dmaps, p)
                }
                _ => panic!("ConvShareVit::backward: the cache or the gradient model does not match the model"),
            };
            dx += &b.norm2.backward(&bc.norm2, dn2.view(), &mut gb.norm2);
            // Attention.
            let dproj = rows_to_maps(dx.view(), p);
            let side = bc.mixed[0].nrows();
            let mut dkp = Array2::<T>::zeros(b.proj.0.index_axis(Axis(0), 0).dim());
            let mut dbp = T::zero();
            let mut dmixed = Vec::with_capacity(t);
            for (m, dp) in bc.mixed.iter().zip(&dproj) {
                let mut dm = Array2::zeros(m.dim());
                let kp = b.proj.0.index_axis(Axis(0), 0);
                conv2d_backward_add(m.view(), kp, proj_mode, dp.view(), &mut dm, &mut dkp);
                dbp += dp.sum();
                dmixed.push(dm);
            }
            add_kernel_grad(&mut gb.proj, 0, &dkp, dbp);
            let mut dqkv: [Vec<Vec<Array2<T>>>; 3] =
                std::array::from_fn(|_| vec![vec![Array2::<T>::zeros((side, side)); t]; heads]);
            for h in 0..heads {
                let (q, k, v) = (&bc.qkv[0][h], &bc.qkv[1][h], &bc.qkv[2][h]);
                let a = &bc.attn[h];
                // mixed_i = Σ_j a_ij v_j.
                let da = Array2::from_shape_fn((t, t), |(i, j)| map_dot(dmixed[i].view(), v[j].view()));
                for j in 0..t {
                    for i in 0..t {
                        map_axpy(&mut dqkv[2][h][j], a[[i, j]], dmixed[i].view());
                    }
                }
                // s_ij = scale · q_i · k_j.
                let ds = softmax_backward(a.view(), da.view()) * scale;
                for i in 0..t {
                    for j in 0..t {
                        map_axpy(&mut dqkv[0][h][i], ds[[i, j]], k[j].view());
                        map_axpy(&mut dqkv[1][h][j], ds[[i, j]], q[i].view());
                    }
                }
            }
            let mut dmaps = vec![Array2::<T>::zeros((p, p)); t];
            for (which, (kernels, gk)) in [(&b.q, &mut gb.q), (&b.k, &mut gb.k), (&b.v, &mut gb.v)]
                .into_iter()
                .enumerate()
            {
                for h in 0..heads {
                    let mut dk = Array2::<T>::zeros(kernels.0.index_axis(Axis(0), h).dim());
                    let mut db = T::zero();
                    for ((m, dy), dmap) in bc.maps.iter().zip(&dqkv[which][h]).zip(dmaps.iter_mut()) {
                        let kk = kernels.0.index_axis(Axis(0), h);
                        conv2d_backward_add(m.view(), kk, qkv_mode, dy.view(), dmap, &mut dk);
                        db += dy.sum();
                    }
                    add_kernel_grad(gk, h, &dk, db);
                }
            }
            dx += &b
                .norm1
                .backward(&bc.norm1, maps_into_rows(&dmaps, p).view(), &mut gb.norm1);
        }
        // Class token, positional embedding, embedding.
        let mut gpos = grad
            .pos_embed
            .view_mut()
            .into_shape_with_order((t, d))
            .expect("contiguous");
        gpos += &dx;
        grad.cls_token.iter_mut().zip(dx.row(0)).for_each(|(o, &v)| *o += v);
        let dpatches = dx.slice(s![1.., ..]);
        match (&self.embed, &c.embed, &mut grad.embed) {
            (Embed::Patch(pe), EmbedCache::Patch(patches), Embed::Patch(gp)) => {
                pe.backward(patches.view(), dpatches, gp)
            }
            (
                Embed::Transposed { weight, .. },
                EmbedCache::Transposed(image),
                Embed::Transposed {
                    weight: gw,
                    bias: gbias,
                },
            ) => {
                let side = cfg.embedded_side();
                let g = side / p;
                let mut dmap = Array2::<T>::zeros((side, side));
                for gy in 0..g {
                    for gx in 0..g {
                        let mut block = dmap.slice_mut(s![gy * p..(gy + 1) * p, gx * p..(gx + 1) * p]);
                        block
                            .iter_mut()
                            .zip(dpatches.row(gy * g + gx))
                            .for_each(|(o, &v)| *o = v);
                    }
                }
                gbias[0] += dmap.sum();
                for (ch, x) in image.outer_iter().enumerate() {
                    let (_, dk) = conv2d_backward(x, weight.slice(s![ch, 0, .., ..]), Mode::Full, dmap.view());
                    let mut gk = gw.slice_mut(s![ch, 0, .., ..]);
                    gk += &dk;
                }
            }
            _ => panic!("ConvShareVit::backward: the cache or the gradient model does not match the model"),
        }
    }

    /// The model converted to another element type (e.g. `f64` for a gradient check).
    pub fn cast<U: Real>(&self) -> ConvShareVit<U> {
        let k = |k: &Kernels<T>| -> Kernels<U> { (cast(&k.0), cast(&k.1)) };
        ConvShareVit {
            config: self.config.clone(),
            embed: match &self.embed {
                Embed::Transposed { weight, bias } => Embed::Transposed {
                    weight: cast(weight),
                    bias: cast(bias),
                },
                Embed::Patch(pe) => Embed::Patch(pe.cast()),
            },
            cls_token: cast(&self.cls_token),
            pos_embed: cast(&self.pos_embed),
            blocks: self
                .blocks
                .iter()
                .map(|b| Block {
                    norm1: b.norm1.cast(),
                    q: k(&b.q),
                    k: k(&b.k),
                    v: k(&b.v),
                    proj: k(&b.proj),
                    norm2: b.norm2.cast(),
                    mlp: match &b.mlp {
                        BlockMlp::Conv { fc1, fc2 } => BlockMlp::Conv {
                            fc1: k(fc1),
                            fc2: k(fc2),
                        },
                        BlockMlp::Linear(m) => BlockMlp::Linear(m.cast()),
                    },
                })
                .collect(),
            norm: self.norm.cast(),
            head_weight: cast(&self.head_weight),
            head_bias: cast(&self.head_bias),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// Full convolution by its definition `y[a] = Σ_i x[i]·k[a − i]`.
    fn full(x: &Array2<f64>, k: ArrayView2<f32>) -> Array2<f64> {
        let (n, kk) = (x.nrows(), k.nrows());
        let mut y = Array2::zeros((n + kk - 1, n + kk - 1));
        for a in 0..n {
            for b in 0..n {
                for i in 0..kk {
                    for j in 0..kk {
                        y[[a + i, b + j]] += x[[a, b]] * f64::from(k[[i, j]]);
                    }
                }
            }
        }
        y
    }

    /// `valid` or `same` window of [`full`].
    fn window(y: &Array2<f64>, start: usize, len: usize) -> Array2<f64> {
        y.slice(s![start..start + len, start..start + len]).to_owned()
    }

    /// Block 0's attention written out with loops: Q/K/V by the definition of
    /// convolution, scores as dot products of q_i and k_j, softmax, value mixing
    /// summed over heads, projection.
    fn reference_attention(m: &ConvShareVit, x: &Array2<f32>) -> Array2<f64> {
        let cfg = &m.config;
        let (p, kk, t) = (cfg.token_size, cfg.kernel_size, x.nrows());
        let b = &m.blocks[0];
        let maps: Vec<Array2<f64>> = (0..t)
            .map(|i| Array2::from_shape_fn((p, p), |(y, z)| f64::from(x[[i, y * p + z]])))
            .collect();
        let (start, side) = match cfg.padding {
            ConvSharePadding::Valid => (kk - 1, p - kk + 1),
            ConvSharePadding::Same => ((kk - 1) / 2, p),
        };
        let proj_of = |m: &Array2<f64>| match cfg.padding {
            ConvSharePadding::Valid => full(m, b.proj.0.index_axis(Axis(0), 0)),
            ConvSharePadding::Same => window(&full(m, b.proj.0.index_axis(Axis(0), 0)), (kk - 1) / 2, p),
        };
        let conv = |w: &Kernels, h: usize, m: &Array2<f64>| {
            window(&full(m, w.0.index_axis(Axis(0), h)), start, side) + f64::from(w.1[h])
        };
        let mut mixed = vec![Array2::<f64>::zeros((side, side)); t];
        for h in 0..cfg.heads {
            let q: Vec<_> = maps.iter().map(|m| conv(&b.q, h, m)).collect();
            let k: Vec<_> = maps.iter().map(|m| conv(&b.k, h, m)).collect();
            let v: Vec<_> = maps.iter().map(|m| conv(&b.v, h, m)).collect();
            for i in 0..t {
                let s: Vec<f64> = (0..t).map(|j| (&q[i] * &k[j]).sum() / side as f64).collect();
                let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for j in 0..t {
                    mixed[i].scaled_add(e[j] / z, &v[j]);
                }
            }
        }
        let mut out = Array2::zeros((t, p * p));
        for (i, m) in mixed.iter().enumerate() {
            let y = proj_of(m) + f64::from(b.proj.1[0]);
            for (o, v) in out.row_mut(i).iter_mut().zip(y.iter()) {
                *o = *v;
            }
        }
        out
    }

    #[test]
    fn attention_matches_loops_for_both_paddings() {
        for padding in [ConvSharePadding::Valid, ConvSharePadding::Same] {
            let cfg = ConvShareVitConfig {
                padding,
                heads: 3,
                kernel_size: 3,
                ..Default::default()
            };
            let mut rng = StdRng::seed_from_u64(9);
            let model = cfg.init(&mut rng).unwrap();
            let x = Array2::from_shape_simple_fn((model.tokens(), 64), || rng.random::<f32>() * 2.0 - 1.0);
            let backend = Backend::Digital;
            let mut fwd = Forward::new(&backend, 0);
            let got = model.attention(&mut fwd, 0, x.view()).unwrap();
            let want = reference_attention(&model, &x);
            let err = got
                .iter()
                .zip(&want)
                .fold(0.0f64, |e, (g, w)| e.max((f64::from(*g) - w).abs()));
            let scale = want.iter().fold(0.0f64, |e, w| e.max(w.abs()));
            assert!(err <= 1e-5 * scale, "{padding:?}: max error {err} of {scale}");
        }
    }

    #[test]
    fn conv_mlp_matches_loops() {
        let mut rng = StdRng::seed_from_u64(10);
        let model = ConvShareVitConfig::default().init(&mut rng).unwrap();
        let t = model.tokens();
        let x = Array2::from_shape_simple_fn((t, 64), || rng.random::<f32>() * 2.0 - 1.0);
        let backend = Backend::Digital;
        let got = model.mlp(&mut Forward::new(&backend, 0), 0, x.view()).unwrap();
        let BlockMlp::Conv { fc1, fc2 } = &model.blocks[0].mlp else {
            panic!("default MLP is convolutional")
        };
        for i in 0..t {
            let m = Array2::from_shape_fn((8, 8), |(y, z)| f64::from(x[[i, y * 8 + z]]));
            let mut sum = Array2::from_elem((8, 8), f64::from(fc2.1[0]));
            for g in 0..fc1.0.dim().0 {
                let hidden = window(&full(&m, fc1.0.index_axis(Axis(0), g)), 1, 8) + f64::from(fc1.1[g]);
                let act = hidden.mapv(|v| f64::from(crate::layers::gelu(v as f32)));
                sum += &window(&full(&act, fc2.0.index_axis(Axis(0), g)), 1, 8);
            }
            for (g, w) in got.row(i).iter().zip(sum.iter()) {
                assert!((f64::from(*g) - w).abs() < 1e-5, "token {i}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn invalid_settings_name_their_key() {
        let bad = ConvShareVitConfig {
            embed: ConvShareEmbed::TransposedConv { kernel: 4 },
            ..Default::default()
        };
        let msg = bad.validate().unwrap_err().to_string();
        assert!(msg.contains("embed.kernel") && msg.contains("kernel = 5"), "{msg}");
        let bad = ConvShareVitConfig {
            kernel_size: 9,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("kernel_size"));
    }
}
