//! The token-vector networks: a ViT/DeiT baseline, GFNet, a SpectFormer-style
//! hybrid and an FNet-style network. They share the patch embedding, the MLP and
//! the head and differ in the token mixer of each block:
//!
//! | kind | block | pooling |
//! |---|---|---|
//! | `vit` (DeiT) | `x += attn(LN(x)); x += MLP(LN(x))` | class token |
//! | `gfnet` | `x += MLP(LN(filter(LN(x))))` (one residual, as GFNet) | mean |
//! | `spectformer` | the first `spectral_blocks` as GFNet, the rest as ViT | mean |
//! | `fnet` | `x = LN(x + Re(DFT₂ x)); x = LN(x + MLP(x))` (post-norm, as FNet) | mean |
//!
//! A final LayerNorm precedes pooling in every kind. On the optical backend the
//! global filters run on the 4f machine, one convolution per channel (see
//! [`crate::spectral::SpectralEmulation`] for circular versus zero-padded tiles),
//! and FNet's Fourier mixing on its 2f read-out, one frame per `[tokens, hidden]`
//! map (`fourf_sim::lens_dft`, [`Forward::fourier_mix`]); attention and MLPs stay
//! electronic.

use fourf_hw::layers::FilterEmulation;
use fourf_hw::{ConvSpec, OpKind, TraceOp};
use fourf_sim::Op;
use ndarray::{Array1, Array2, ArrayView2, ArrayView3, ArrayView4, ArrayViewMutD};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, ConvBatch, Forward, ForwardError};
use crate::layers::attention::AttentionCache;
use crate::layers::layer_norm::LayerNormCache;
use crate::layers::mlp::MlpCache;
use crate::layers::{
    LayerError, LayerNorm, LayerNormConfig, Linear, LinearConfig, Mlp, MlpConfig, MultiHeadSelfAttention,
    MultiHeadSelfAttentionConfig, PatchEmbedding, PatchEmbeddingConfig, Pooling, Real, TokenEmbedding,
    TokenEmbeddingConfig, WeightInit,
};
use crate::params::{join, Parameters};
use crate::spectral::{
    emulation_job, fourier_mix_batch, GlobalFilter, GlobalFilterCache, GlobalFilterConfig, SpectralEmulation,
};
use crate::surrogate::OpticsNoise;

/// Which token mixer the blocks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransformerKind {
    /// ViT/DeiT: multi-head self-attention, class token.
    Vit,
    /// GFNet: global filters.
    Gfnet,
    /// SpectFormer: global filters first, attention after.
    Spectformer,
    /// FNet: parameter-free Fourier mixing.
    Fnet,
}

fn d_one() -> usize {
    1
}
fn d_ratio() -> f64 {
    4.0
}
fn d_spectral() -> usize {
    4
}
fn d_true() -> bool {
    true
}

/// The most parameters a model may have: 2^32 (16 GiB as f32; ViT-H has 6.3e8).
pub const MAX_PARAMETERS: f64 = 4_294_967_296.0;

/// Configuration of a [`Transformer`] (without its kind, which the model file's
/// `kind` key gives).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Side of the square input image.
    pub image_size: usize,
    /// Image channels (default 1).
    #[serde(default = "d_one")]
    pub in_channels: usize,
    /// Patch side (must divide `image_size`).
    pub patch: usize,
    /// Token width.
    pub dim: usize,
    /// Blocks.
    pub depth: usize,
    /// Attention heads (default 1; must divide `dim`; unused by GFNet and FNet).
    #[serde(default = "d_one")]
    pub heads: usize,
    /// MLP hidden width over `dim` (default 4).
    #[serde(default = "d_ratio")]
    pub mlp_ratio: f64,
    /// Classes.
    pub classes: usize,
    /// SpectFormer: how many of the first blocks are spectral (default 4, the
    /// released SpectFormer's α).
    #[serde(default = "d_spectral")]
    pub spectral_blocks: usize,
    /// Whether the attention `qkv` has a bias (default true).
    #[serde(default = "d_true")]
    pub qkv_bias: bool,
}

impl TransformerConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch.max(1)
    }

    /// MLP hidden width.
    pub fn hidden(&self) -> usize {
        (self.dim as f64 * self.mlp_ratio).round() as usize
    }

    /// `Err` naming the first invalid setting of a model of `kind`.
    pub fn validate(&self, kind: TransformerKind) -> Result<(), LayerError> {
        let invalid = |key: &str, value: String, valid: String| LayerError::InvalidConfig {
            key: key.into(),
            value,
            valid,
        };
        for (key, v) in [
            ("image_size", self.image_size),
            ("in_channels", self.in_channels),
            ("patch", self.patch),
            ("dim", self.dim),
            ("depth", self.depth),
            ("heads", self.heads),
            ("classes", self.classes),
        ] {
            if v == 0 {
                return Err(invalid(key, "0".into(), "must be at least 1".into()));
            }
        }
        // Ranges far beyond any published model, so that sizes never overflow and
        // nothing absurd is allocated.
        for (key, v, max) in [
            ("image_size", self.image_size, 16384),
            ("in_channels", self.in_channels, 4096),
            ("dim", self.dim, 65536),
            ("depth", self.depth, 4096),
            ("heads", self.heads, 4096),
            ("classes", self.classes, 1_000_000),
        ] {
            if v > max {
                return Err(invalid(key, v.to_string(), format!("must be in 1..={max}")));
            }
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_ratio > 0.0 && self.mlp_ratio <= 256.0) {
            return Err(invalid(
                "mlp_ratio",
                self.mlp_ratio.to_string(),
                "must be in (0, 256]".into(),
            ));
        }
        if !self.image_size.is_multiple_of(self.patch) {
            return Err(invalid(
                "patch",
                self.patch.to_string(),
                format!("must divide image_size = {}", self.image_size),
            ));
        }
        if !(self.mlp_ratio.is_finite() && self.hidden() >= 1) {
            return Err(invalid(
                "mlp_ratio",
                self.mlp_ratio.to_string(),
                "must give at least one hidden unit".into(),
            ));
        }
        let attention = matches!(kind, TransformerKind::Vit)
            || (kind == TransformerKind::Spectformer && self.spectral_blocks < self.depth);
        if attention && !self.dim.is_multiple_of(self.heads) {
            return Err(invalid(
                "heads",
                self.heads.to_string(),
                format!("must divide dim = {}", self.dim),
            ));
        }
        if kind == TransformerKind::Spectformer && self.spectral_blocks > self.depth {
            return Err(invalid(
                "spectral_blocks",
                self.spectral_blocks.to_string(),
                format!("must be at most depth = {}", self.depth),
            ));
        }
        let params = self.parameters_estimate();
        if params > MAX_PARAMETERS {
            return Err(invalid(
                "dim",
                self.dim.to_string(),
                format!(
                    "with depth = {}, mlp_ratio = {}, patch = {} and classes = {} the model has about {params:.3e} parameters \
                     ({:.0} GiB as f32); at most {MAX_PARAMETERS:e}",
                    self.depth,
                    self.mlp_ratio,
                    self.patch,
                    self.classes,
                    params * 4.0 / (1u64 << 30) as f64
                ),
            ));
        }
        Ok(())
    }

    /// About how many parameters the model has (the upper bound of the kinds:
    /// attention and a global filter in every block), in f64 so that it cannot
    /// overflow.
    pub fn parameters_estimate(&self) -> f64 {
        let (d, h) = (self.dim as f64, self.dim as f64 * self.mlp_ratio);
        let tokens = (self.grid() as f64).powi(2) + 1.0;
        let embed = self.in_channels as f64 * (self.patch as f64).powi(2) * d + tokens * d;
        let block = 4.0 * d * d + 2.0 * d * h + tokens * d;
        embed + self.depth as f64 * block + d * self.classes as f64
    }

    /// A model of `kind` with seeded weights (timm's ViT initialisation: truncated
    /// normal 0.02, zero biases; GFNet filters N(0, 0.02²)).
    pub fn init<R: Rng + ?Sized>(&self, kind: TransformerKind, rng: &mut R) -> Result<Transformer, LayerError> {
        self.validate(kind)?;
        let init = WeightInit::vit();
        let g = self.grid();
        let patch_embed = PatchEmbeddingConfig::new(self.in_channels, self.patch, self.dim)
            .with_init(init)
            .init(rng)?;
        let tokens = TokenEmbeddingConfig::new(self.dim, g * g)
            .with_class_token(kind == TransformerKind::Vit)
            .init(rng)?;
        let mut blocks = Vec::with_capacity(self.depth);
        for i in 0..self.depth {
            let norm1 = LayerNormConfig::new(self.dim).init()?;
            let mixer = match kind {
                TransformerKind::Vit => Mixer::Attention(self.attention(rng)?),
                TransformerKind::Gfnet => Mixer::Filter(GlobalFilterConfig::new(self.dim, g, g).init(rng)?),
                TransformerKind::Spectformer if i < self.spectral_blocks => {
                    Mixer::Filter(GlobalFilterConfig::new(self.dim, g, g).init(rng)?)
                }
                TransformerKind::Spectformer => Mixer::Attention(self.attention(rng)?),
                TransformerKind::Fnet => Mixer::Fourier,
            };
            let norm2 = LayerNormConfig::new(self.dim).init()?;
            let mlp = MlpConfig::new(self.dim, self.hidden()).with_init(init).init(rng)?;
            blocks.push(Block {
                norm1,
                mixer,
                norm2,
                mlp,
            });
        }
        Ok(Transformer {
            kind,
            config: self.clone(),
            patch_embed,
            tokens,
            blocks,
            norm: LayerNormConfig::new(self.dim).init()?,
            head: LinearConfig::new(self.dim, self.classes).with_init(init).init(rng)?,
        })
    }

    fn attention<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<MultiHeadSelfAttention, LayerError> {
        MultiHeadSelfAttentionConfig::new(self.dim, self.heads)
            .with_qkv_bias(self.qkv_bias)
            .with_init(WeightInit::vit())
            .init(rng)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Mixer<T = f32> {
    Attention(MultiHeadSelfAttention<T>),
    Filter(GlobalFilter<T>),
    Fourier,
}

#[derive(Debug, Clone, PartialEq)]
struct Block<T = f32> {
    norm1: LayerNorm<T>,
    mixer: Mixer<T>,
    norm2: LayerNorm<T>,
    mlp: Mlp<T>,
}

/// A ViT, GFNet, SpectFormer or FNet (see the module docs), with parameters of
/// element type `T` (`f32`; `f64` for gradient checks).
#[derive(Debug, Clone, PartialEq)]
pub struct Transformer<T = f32> {
    kind: TransformerKind,
    config: TransformerConfig,
    patch_embed: PatchEmbedding<T>,
    tokens: TokenEmbedding<T>,
    blocks: Vec<Block<T>>,
    norm: LayerNorm<T>,
    head: Linear<T>,
}

pub use fourf_hw::layers::global_filter_flops;

/// The convolutions of a global filter over `c` channels of an `a×b` grid on the
/// optics, laid out by `emulation` (see [`emulation_job`]).
pub fn global_filter_conv_spec(a: usize, b: usize, c: usize, emulation: SpectralEmulation) -> ConvSpec {
    fourf_hw::layers::global_filter_conv_spec(
        a,
        b,
        c,
        match emulation {
            SpectralEmulation::Circular => FilterEmulation::Circular,
            SpectralEmulation::ZeroPadded => FilterEmulation::ZeroPadded,
        },
    )
}

impl Forward<'_> {
    /// GFNet's global filter on tokens `x` `[a·b, C]`: exact FFT filtering on the
    /// digital backend; on the optical backend one convolution per channel laid out
    /// by the backend's [`crate::spectral::SpectralEmulation`]. The trace records
    /// the FFT FLOPs either way.
    pub fn global_filter(
        &mut self,
        name: &str,
        filter: &GlobalFilter,
        x: ArrayView2<f32>,
    ) -> Result<Array2<f32>, ForwardError> {
        let (a, b) = filter.grid();
        let c = filter.dim();
        let flops = global_filter_flops(a, b, c);
        let params = filter.complex_weight.len();
        let y = match self.backend() {
            Backend::Digital => {
                let y = filter.forward(x);
                let mut op = TraceOp::electronic(name, OpKind::GlobalFilter, &[a * b, c], &[a * b, c], flops)
                    .with_params(params);
                // What the optics would run: one convolution per channel, laid out
                // circularly (the digital result is circular).
                op.conv = Some(global_filter_conv_spec(a, b, c, SpectralEmulation::Circular));
                self.record(op);
                y
            }
            Backend::Optical(_) => {
                let emulation = self.backend().spectral_emulation();
                let kernels = filter.kernels();
                let mut inputs = Vec::with_capacity(c);
                let mut ks = Vec::with_capacity(c);
                let mut mode = fourf_sim::Mode::Valid;
                for ch in 0..c {
                    let xc = Array2::from_shape_fn((a, b), |(i, j)| f64::from(x[[i * b + j, ch]]));
                    let (input, kernel, m) =
                        emulation_job(xc.view(), kernels.index_axis(ndarray::Axis(0), ch), emulation);
                    inputs.push(input);
                    ks.push(kernel);
                    mode = m;
                }
                let batch = ConvBatch {
                    inputs: &inputs,
                    kernels: &ks,
                    pairs: (0..c).map(|i| (i, i)).collect(),
                    mode,
                    op: Op::Convolution,
                };
                let outs = self.convs(name, OpKind::GlobalFilter, &batch, params)?;
                self.set_last_flops(flops, [a * b, c]);
                let mut y = Array2::<f32>::zeros((a * b, c));
                for (ch, o) in outs.iter().enumerate() {
                    for ((i, j), &v) in o.indexed_iter() {
                        y[[i * b + j, ch]] = v as f32;
                    }
                }
                y
            }
        };
        Ok(y)
    }

    /// Overrides the FLOPs and shapes of the last recorded op (an op whose digital
    /// algorithm differs from the convolutions it runs as on the optics).
    fn set_last_flops(&mut self, flops: u64, shape: [usize; 2]) {
        if let Some(op) = self.trace_mut().ops.last_mut() {
            op.flops = flops;
            op.input_shape = shape.to_vec();
            op.output_shape = shape.to_vec();
            // The digital op's traffic: tokens in and out, and the filter.
            op.bytes = 4 * (2 * shape[0] * shape[1] + op.params) as u64;
        }
    }
}

/// Adds to `m`, FNet's exact mixing of the tokens `x` `[B·tokens, d]`, the
/// perturbation of op `name` as the machine's 2f read-out (or its surrogate) runs
/// it, one map per image.
fn perturb_fourier_mix<T: Real>(
    name: &str,
    x: ArrayView2<T>,
    m: &mut Array2<T>,
    tokens: usize,
    noise: &mut crate::surrogate::OpticsNoise,
) {
    let images = x.nrows() / tokens;
    let rows = |a: ArrayView2<T>, i: usize| {
        a.slice(ndarray::s![i * tokens..(i + 1) * tokens, ..])
            .mapv(|v| v.as_f64())
    };
    let maps: Vec<Array2<f64>> = (0..images).map(|i| rows(x, i)).collect();
    let exact: Vec<Array2<f64>> = (0..images).map(|i| rows(m.view(), i)).collect();
    let deltas = noise.lens_delta_batch(name, &maps, &exact);
    for (i, d) in deltas.iter().enumerate() {
        let mut block = m.slice_mut(ndarray::s![i * tokens..(i + 1) * tokens, ..]);
        block.zip_mut_with(d, |v, &e| *v += T::of(e));
    }
}

impl Transformer {
    /// The kind.
    pub fn kind(&self) -> TransformerKind {
        self.kind
    }

    /// The configuration.
    pub fn config(&self) -> &TransformerConfig {
        &self.config
    }

    /// Logits for one image `[channels, size, size]`.
    ///
    /// # Panics
    /// If the image shape differs from the configuration's.
    pub fn forward(&self, fwd: &mut Forward, image: ArrayView3<f32>) -> Result<Array1<f32>, ForwardError> {
        let cfg = &self.config;
        assert_eq!(
            image.dim(),
            (cfg.in_channels, cfg.image_size, cfg.image_size),
            "Transformer::forward: image [c, h, w]"
        );
        let patches = self.patch_embed.patches(image);
        let emb = fwd.linear("patch_embed.proj", &self.patch_embed.proj, patches.view());
        let mut x = self.tokens.forward(emb.view());
        // The class token's parameters are counted with the positions they join
        // (as the layer tables do).
        let cls = self.tokens.class_token.as_ref().map_or(0, |c| c.len());
        fwd.record_add("pos_embed", &[x.nrows(), x.ncols()], self.tokens.position.len() + cls);
        for (i, b) in self.blocks.iter().enumerate() {
            let pre = format!("blocks.{i}");
            match &b.mixer {
                Mixer::Attention(attn) => {
                    let h = fwd.layer_norm(&join(&pre, "norm1"), &b.norm1, x.view());
                    let h = fwd.attention(&join(&pre, "attn"), attn, h.view());
                    fwd.add_assign(&join(&pre, "residual1"), &mut x, h.view());
                    let h = fwd.layer_norm(&join(&pre, "norm2"), &b.norm2, x.view());
                    let h = fwd.mlp(&join(&pre, "mlp"), &b.mlp, h.view());
                    fwd.add_assign(&join(&pre, "residual2"), &mut x, h.view());
                }
                Mixer::Filter(filter) => {
                    let h = fwd.layer_norm(&join(&pre, "norm1"), &b.norm1, x.view());
                    let h = fwd.global_filter(&join(&pre, "filter"), filter, h.view())?;
                    let h = fwd.layer_norm(&join(&pre, "norm2"), &b.norm2, h.view());
                    let h = fwd.mlp(&join(&pre, "mlp"), &b.mlp, h.view());
                    fwd.add_assign(&join(&pre, "residual"), &mut x, h.view());
                }
                Mixer::Fourier => {
                    let m = fwd.fourier_mix(&join(&pre, "mix"), x.view())?;
                    fwd.add_assign(&join(&pre, "residual1"), &mut x, m.view());
                    x = fwd.layer_norm(&join(&pre, "norm1"), &b.norm1, x.view());
                    let h = fwd.mlp(&join(&pre, "mlp"), &b.mlp, x.view());
                    fwd.add_assign(&join(&pre, "residual2"), &mut x, h.view());
                    x = fwd.layer_norm(&join(&pre, "norm2"), &b.norm2, x.view());
                }
            }
        }
        let x = fwd.layer_norm("norm", &self.norm, x.view());
        let pooling = if self.tokens.class_token.is_some() {
            Pooling::ClassToken
        } else {
            Pooling::Mean
        };
        let pooled = pooling.apply(x.view());
        fwd.record(TraceOp::electronic(
            "pool",
            OpKind::Pool,
            &[x.nrows(), x.ncols()],
            &[x.ncols()],
            if pooling == Pooling::Mean { x.len() as u64 } else { 0 },
        ));
        let logits = fwd.linear("head", &self.head, pooled.view().insert_axis(ndarray::Axis(0)));
        Ok(logits.row(0).to_owned())
    }
}

impl<T: Real> Parameters<T> for Transformer<T> {
    /// timm names: `patch_embed.proj.*`, `cls_token`, `pos_embed`,
    /// `blocks.i.norm1.*`, `blocks.i.attn.{qkv,proj}.*` or
    /// `blocks.i.filter.complex_weight` (GFNet), `blocks.i.norm2.*`,
    /// `blocks.i.mlp.{fc1,fc2}.*`, `norm.*`, `head.*`.
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>)) {
        self.patch_embed.visit_params(&join(prefix, "patch_embed"), f);
        self.tokens.visit_params(prefix, f);
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let pre = join(prefix, &format!("blocks.{i}"));
            b.norm1.visit_params(&join(&pre, "norm1"), f);
            match &mut b.mixer {
                Mixer::Attention(a) => a.visit_params(&join(&pre, "attn"), f),
                Mixer::Filter(g) => g.visit_params(&join(&pre, "filter"), f),
                Mixer::Fourier => {}
            }
            b.norm2.visit_params(&join(&pre, "norm2"), f);
            b.mlp.visit_params(&join(&pre, "mlp"), f);
        }
        self.norm.visit_params(&join(prefix, "norm"), f);
        self.head.visit_params(&join(prefix, "head"), f);
    }
}

/// What [`Transformer::backward`] needs of [`Transformer::forward_train`].
#[derive(Debug, Clone)]
pub struct TransformerCache<T = f32> {
    patches: Array2<T>,
    blocks: Vec<BlockCache<T>>,
    norm: LayerNormCache<T>,
}

#[derive(Debug, Clone)]
enum BlockCache<T> {
    Attention {
        norm1: LayerNormCache<T>,
        attn: AttentionCache<T>,
        norm2: LayerNormCache<T>,
        mlp: MlpCache<T>,
    },
    Filter {
        norm1: LayerNormCache<T>,
        filter: GlobalFilterCache,
        norm2: LayerNormCache<T>,
        mlp: MlpCache<T>,
    },
    Fourier {
        norm1: LayerNormCache<T>,
        mlp: MlpCache<T>,
        norm2: LayerNormCache<T>,
    },
}

impl<T: Real> Transformer<T> {
    fn pooling(&self) -> Pooling {
        if self.tokens.class_token.is_some() {
            Pooling::ClassToken
        } else {
            Pooling::Mean
        }
    }

    /// Logits `[B, classes]` of a batch of images `[B, channels, size, size]`, every
    /// token of every image folded into the rows of one matrix per layer (the exact
    /// digital forward, as [`Transformer::forward`] on the digital backend), and the
    /// cache of the backward pass.
    ///
    /// # Panics
    /// If the image shape differs from the configuration's.
    pub fn forward_train(&self, images: ArrayView4<T>) -> (Array2<T>, TransformerCache<T>) {
        self.forward_optics_aware(images, None)
    }

    /// [`Transformer::forward_train`] with the ops a 4f machine runs (the global
    /// filters) perturbed by `noise`, the machine's surrogate, one generator per
    /// image; the cache is that of the exact ops (straight-through gradients).
    pub fn forward_optics_aware(
        &self,
        images: ArrayView4<T>,
        mut noise: Option<&mut OpticsNoise>,
    ) -> (Array2<T>, TransformerCache<T>) {
        let cfg = &self.config;
        let (_, c, h, w) = images.dim();
        assert_eq!(
            (c, h, w),
            (cfg.in_channels, cfg.image_size, cfg.image_size),
            "Transformer::forward_train: image [c, h, w]"
        );
        let t = self.tokens.tokens();
        let patches = self.patch_embed.patches_batch(images);
        let emb = self.patch_embed.proj.forward(patches.view());
        let mut x = self.tokens.forward_batch(emb.view());
        let mut caches = Vec::with_capacity(self.blocks.len());
        for (i, b) in self.blocks.iter().enumerate() {
            let cache = match &b.mixer {
                Mixer::Attention(attn) => {
                    let (h1, norm1) = b.norm1.forward_train(x.view());
                    let (h1, attn) = attn.forward_train(h1.view(), t);
                    x += &h1;
                    let (h2, norm2) = b.norm2.forward_train(x.view());
                    let (h2, mlp) = b.mlp.forward_train(h2.view());
                    x += &h2;
                    BlockCache::Attention {
                        norm1,
                        attn,
                        norm2,
                        mlp,
                    }
                }
                Mixer::Filter(filter) => {
                    let (h, norm1) = b.norm1.forward_train(x.view());
                    let (mut y, fc) = filter.forward_train(h.view());
                    if let Some(n) = noise.as_deref_mut() {
                        filter.perturb(&format!("blocks.{i}.filter"), h.view(), &mut y, n);
                    }
                    let (h, norm2) = b.norm2.forward_train(y.view());
                    let (h, mlp) = b.mlp.forward_train(h.view());
                    x += &h;
                    BlockCache::Filter {
                        norm1,
                        filter: fc,
                        norm2,
                        mlp,
                    }
                }
                Mixer::Fourier => {
                    let mut m = fourier_mix_batch(x.view(), t);
                    if let Some(n) = noise.as_deref_mut() {
                        perturb_fourier_mix(&format!("blocks.{i}.mix"), x.view(), &mut m, t, n);
                    }
                    x += &m;
                    let (x1, norm1) = b.norm1.forward_train(x.view());
                    let (h, mlp) = b.mlp.forward_train(x1.view());
                    let (x2, norm2) = b.norm2.forward_train((&x1 + &h).view());
                    x = x2;
                    BlockCache::Fourier { norm1, mlp, norm2 }
                }
            };
            caches.push(cache);
        }
        let (n, norm) = self.norm.forward_train(x.view());
        let pooled = self.pooling().forward_batch(n.view(), t);
        let logits = self.head.forward(pooled.view());
        // The head's input is recomputed in the backward pass from the final norm.
        let cache = TransformerCache {
            patches,
            blocks: caches,
            norm,
        };
        (logits, cache)
    }

    /// The backward pass of [`Transformer::forward_train`] for the gradient `g` of
    /// the logits `[B, classes]`: adds every parameter's gradient to `grad` (a model
    /// of the same shape, e.g. from [`crate::params::zeros_like`]).
    ///
    /// # Panics
    /// If `g` or `grad` do not match the cache or the model.
    pub fn backward(&self, cache: &TransformerCache<T>, g: ArrayView2<T>, grad: &mut Transformer<T>) {
        let t = self.tokens.tokens();
        let pooling = self.pooling();
        // The final norm's output, rebuilt from its cache (x̂·weight + bias).
        let n = &cache.norm.xhat * &self.norm.weight.view().insert_axis(ndarray::Axis(0))
            + self.norm.bias.view().insert_axis(ndarray::Axis(0));
        let pooled = pooling.forward_batch(n.view(), t);
        let dp = self.head.backward(pooled.view(), g, &mut grad.head);
        let dn = pooling.backward(dp.view(), t);
        let mut dx = self.norm.backward(&cache.norm, dn.view(), &mut grad.norm);
        for ((b, bc), gb) in self.blocks.iter().zip(&cache.blocks).zip(grad.blocks.iter_mut()).rev() {
            match (&b.mixer, bc, &mut gb.mixer) {
                (
                    Mixer::Attention(attn),
                    BlockCache::Attention {
                        norm1,
                        attn: ac,
                        norm2,
                        mlp,
                    },
                    Mixer::Attention(ga),
                ) => {
                    let d = b.mlp.backward(mlp, dx.view(), &mut gb.mlp);
                    dx += &b.norm2.backward(norm2, d.view(), &mut gb.norm2);
                    let d = attn.backward(ac, dx.view(), ga);
                    dx += &b.norm1.backward(norm1, d.view(), &mut gb.norm1);
                }
                (
                    Mixer::Filter(filter),
                    BlockCache::Filter {
                        norm1,
                        filter: fc,
                        norm2,
                        mlp,
                    },
                    Mixer::Filter(gf),
                ) => {
                    let d = b.mlp.backward(mlp, dx.view(), &mut gb.mlp);
                    let d = b.norm2.backward(norm2, d.view(), &mut gb.norm2);
                    let d = filter.backward(fc, d.view(), gf);
                    dx += &b.norm1.backward(norm1, d.view(), &mut gb.norm1);
                }
                (Mixer::Fourier, BlockCache::Fourier { norm1, mlp, norm2 }, Mixer::Fourier) => {
                    let da = b.norm2.backward(norm2, dx.view(), &mut gb.norm2);
                    let dx1 = &da + &b.mlp.backward(mlp, da.view(), &mut gb.mlp);
                    let db = b.norm1.backward(norm1, dx1.view(), &mut gb.norm1);
                    dx = &db + &fourier_mix_batch(db.view(), t);
                }
                _ => panic!("Transformer::backward: the cache or the gradient model does not match the model"),
            }
        }
        let de = self.tokens.backward(dx.view(), &mut grad.tokens);
        self.patch_embed
            .backward(cache.patches.view(), de.view(), &mut grad.patch_embed);
    }

    /// The model converted to another element type (e.g. `f64` for a gradient check).
    pub fn cast<U: Real>(&self) -> Transformer<U> {
        Transformer {
            kind: self.kind,
            config: self.config.clone(),
            patch_embed: self.patch_embed.cast(),
            tokens: self.tokens.cast(),
            blocks: self
                .blocks
                .iter()
                .map(|b| Block {
                    norm1: b.norm1.cast(),
                    mixer: match &b.mixer {
                        Mixer::Attention(a) => Mixer::Attention(a.cast()),
                        Mixer::Filter(f) => Mixer::Filter(f.cast()),
                        Mixer::Fourier => Mixer::Fourier,
                    },
                    norm2: b.norm2.cast(),
                    mlp: b.mlp.cast(),
                })
                .collect(),
            norm: self.norm.cast(),
            head: self.head.cast(),
        }
    }
}
