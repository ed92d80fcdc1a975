//! Layer tables: a network described layer by layer in TOML, without weights, so
//! that any network — a CIFAR ResNet, a VGG, a DeiT — can be projected onto an
//! optical machine or a GPU from its shapes alone. [`LayerTable::to_trace`] turns a
//! table into the per-image [`Trace`] a real run of the network would record (an
//! op with [`TraceOp::conv`] set is one the latency model may place on the optics;
//! every op of the trace is marked [`Engine::Electronic`](crate::trace::Engine::Electronic), since nothing ran).
//!
//! # Format
//!
//! Top level: `name` (string, required), `description` (string, optional) and one
//! `[[layer]]` table per layer, in execution order. Each layer has a `name`
//! (string), a `kind` (below), an optional `repeat` (default 1: the layer appears
//! this many times in a row and its ops are named `name.0`, `name.1`, …) and the
//! keys of its kind. Layers do not pass shapes to each other: each states its own
//! input. Sizes are positive integers; unknown keys, missing keys, wrong types and
//! impossible shapes are errors that name the file, the line, the layer (its number,
//! counting `[[layer]]` tables from 1, and its name) and the key.
//!
//! | kind | keys (default) | ops |
//! |---|---|---|
//! | `conv2d` | `input = [C, H, W]`, `out_channels`, `kernel`, `stride` (1), `padding` (`same`), `groups` (1), `bias` (true), `optical` (true) | one [`OpKind::Conv2d`] |
//! | `linear` | `tokens` (1), `in_features`, `out_features`, `bias` (true) | one [`OpKind::Linear`] |
//! | `attention` | `tokens`, `dim`, `heads`, `qkv_bias` (true) | `qkv`, `scores`, `softmax`, `mix`, `proj` |
//! | `global_filter` | `grid = [a, b]`, `channels`, `emulation` (`circular`), `optical` (true) | one [`OpKind::GlobalFilter`] |
//! | `fourier_mix` | `tokens`, `dim`, `optical` (true) | one [`OpKind::FourierMix`] |
//! | `shared_conv` | `maps`, `size = [h, w]`, `kernel`, `kernels` (1), `padding` (`same`), `bias` (true), `optical` (true) | one [`OpKind::SharedConv`] |
//! | `layer_norm` | `shape`, `params` (2 × last axis) | one [`OpKind::LayerNorm`] |
//! | `batch_norm` | `shape = [C, …]`, `params` (2·C) | one [`OpKind::LayerNorm`] (inference: per-channel scale and shift) |
//! | `activation` | `shape`, `function` (`gelu`) | one [`OpKind::Activation`] |
//! | `softmax` | `shape` | one [`OpKind::Softmax`] |
//! | `add` | `shape`, `params` (0) | one [`OpKind::Add`] |
//! | `pool` | `shape`, `mode` (`mean`), `window`, `stride` (= `window`) | one [`OpKind::Pool`] |
//! | `block` | `[[layer.layers]]` sub-layers | the sub-layers', named `block.sub` |
//!
//! A `block` groups layers so that a whole residual block can be repeated in order:
//! with `repeat = 12` its sub-layers run as `blocks.0.norm1`, `blocks.0.attn.qkv`,
//! …, `blocks.11.residual2` (blocks nest).
//!
//! ## What each kind records
//!
//! FLOPs count a multiply–add as 2 and follow `fourf-nn`'s conventions
//! (`nn/src/ops.rs`): LayerNorm 8 per element, GELU 8, softmax 5, addition 1; this
//! module adds ReLU 1, batch norm 2 (inference: the normalisation is a per-channel
//! scale and shift) and pooling 1 per value read. `bytes` is the f32 traffic of the
//! op's input, output and parameters, as [`TraceOp::electronic`] computes it.
//!
//! - **`conv2d`**: `C_out` output channels from `C_in = C` input channels with a
//!   `K × K` kernel (`kernel = K`), `groups` g (each output channel sees `C/g`
//!   inputs). Output `[C_out, Ho, Wo]` with `Ho = ⌈H/stride⌉` for `same`,
//!   `(H − K)/stride + 1` for `valid`, `⌈(H + K − 1)/stride⌉` for `full`. FLOPs
//!   `2·(C/g)·C_out·K²·Ho·Wo` (the direct computation, zero padding included, as
//!   GPU counts do); params `C_out·(C/g)·K²` (+ `C_out` with `bias`); gemm
//!   `{count g, m Ho·Wo, n C_out/g, k (C/g)·K², shared weights}` (im2col).
//!   On the optics the layer is `(C/g)·C_out` single-channel convolutions
//!   ([`ConvSpec`] `{jobs (C/g)·C_out, inputs C, kernels (C/g)·C_out, input [H, W],
//!   kernel [K, K], mode = padding, accumulate C/g}`), the FatNet count: the optics
//!   compute every convolution **at full resolution** (a 4f system has no stride)
//!   and the electronics keep every `stride`-th output in each direction and sum the
//!   `C/g` convolutions of each output channel (and add the bias). `optical = false`
//!   leaves `conv` unset: the layer is electronic only.
//! - **`linear`**: as `fourf-nn`'s `Forward::linear`: `[tokens, in] → [tokens, out]`,
//!   FLOPs `2·tokens·in·out`, params `in·out` (+ `out`), gemm `{1, tokens, out, in}`.
//! - **`attention`**: the five ops of `fourf-nn`'s `Forward::attention`, electronic,
//!   with identical shapes, FLOPs, params and gemms: `name.qkv` (linear `dim → 3·dim`),
//!   `name.scores` (`2·heads·T²·d_h`, gemm `{heads, T, T, d_h}`), `name.softmax`
//!   (`5·heads·T²`), `name.mix` (`2·heads·T²·d_h`, gemm `{heads, T, d_h, T}`) and
//!   `name.proj` (linear `dim → dim`), with `d_h = dim/heads`.
//! - **`global_filter`**: GFNet's filter on `channels` maps of the `a × b` token
//!   grid: FLOPs of the FFT algorithm ([`global_filter_flops`]), params
//!   `a·(b/2 + 1)·channels·2` (the complex half-spectrum weight). On the optics one
//!   convolution per channel: `emulation = "circular"` (default, exact) is a valid
//!   convolution of the periodically extended `(2a − 1) × (2b − 1)` map with the
//!   `a × b` kernel; `"zero_padded"` a `same` convolution of the `a × b` map (see
//!   `fourf-nn`'s `SpectralEmulation`). `{jobs C, inputs C, kernels C, accumulate 1}`.
//! - **`fourier_mix`**: FNet's parameter-free `Re(DFT₂)` of a `[tokens, dim]` map,
//!   FLOPs `5·N·log₂N` with `N = tokens·dim` (as `fourf-nn`). On the optics a lens
//!   transform read at the Fourier plane, one frame per image ([`LensSpec`]
//!   `{maps 1, map [tokens, dim]}`; a map larger than the frame stays electronic).
//! - **`shared_conv`**: ConvShareViT: every one of `maps` `h × w` token maps
//!   convolved with each of `kernels` shared `K × K` kernels: [`ConvSpec`]
//!   `{jobs maps·kernels, inputs maps, kernels, input [h, w], kernel [K, K],
//!   mode = padding, accumulate 1}`; FLOPs [`ConvSpec::flops`] (the exact overlap
//!   count); params `kernels·K²` (+ `kernels`). Padding `same`, `valid` or `full`.
//! - **`layer_norm`**, **`batch_norm`**, **`activation`** (`function = "gelu"` 8
//!   FLOPs or `"relu"` 1 per element), **`softmax`**, **`add`**: element-wise on
//!   `shape` (output = input). `params` overrides the parameter count (e.g. a
//!   positional embedding added by an `add`).
//! - **`pool`**: with `window = s` a `s × s` pooling of `shape = [C, H, W]`
//!   (`mode = "max"` or `"mean"`, `stride` default `s`, no padding) to
//!   `[C, (H − s)/stride + 1, (W − s)/stride + 1]`; without `window` a global
//!   pooling to the channel vector: `[C, H, W] → [C]` or tokens `[T, D] → [D]`
//!   (`mode = "class_token"` takes the first token: 0 FLOPs, as `fourf-nn`).
//!
//! ## Example
//!
//! ```toml
//! name = "tiny"
//! description = "a small CNN and a transformer block, to show every key"
//!
//! [[layer]]
//! name = "conv1"
//! kind = "conv2d"
//! input = [3, 32, 32]   # [C, H, W]
//! out_channels = 16
//! kernel = 3
//! stride = 2            # default 1; the optics run at full resolution
//! padding = "same"      # same | valid | full (default same)
//! bias = false          # default true
//!
//! [[layer]]
//! name = "bn1"
//! kind = "batch_norm"
//! shape = [16, 16, 16]
//!
//! [[layer]]
//! name = "relu1"
//! kind = "activation"
//! function = "relu"     # gelu | relu (default gelu)
//! shape = [16, 16, 16]
//!
//! [[layer]]
//! name = "pool1"
//! kind = "pool"
//! mode = "max"          # mean | max | class_token (default mean)
//! window = 2
//! shape = [16, 16, 16]
//!
//! [[layer]]
//! name = "blocks"
//! kind = "block"
//! repeat = 2            # blocks.0.norm1, …, blocks.1.residual
//!
//!   [[layer.layers]]
//!   name = "norm1"
//!   kind = "layer_norm"
//!   shape = [64, 16]
//!
//!   [[layer.layers]]
//!   name = "attn"
//!   kind = "attention"
//!   tokens = 64
//!   dim = 16
//!   heads = 2
//!
//!   [[layer.layers]]
//!   name = "filter"
//!   kind = "global_filter"
//!   grid = [8, 8]
//!   channels = 16
//!
//!   [[layer.layers]]
//!   name = "residual"
//!   kind = "add"
//!   shape = [64, 16]
//!
//! [[layer]]
//! name = "pool"
//! kind = "pool"
//! shape = [64, 16]      # global: tokens [T, D] -> [D]
//!
//! [[layer]]
//! name = "head"
//! kind = "linear"
//! in_features = 16      # tokens default 1
//! out_features = 10
//! ```
//!
//! Example tables of published networks are in `experiments/layers/`
//! (`resnet18_cifar.toml`, `vgg16_cifar.toml`, `deit_ti.toml`).
//!
//! ```
//! let text = r#"
//! name = "one"
//! [[layer]]
//! name = "conv"
//! kind = "conv2d"
//! input = [2, 8, 8]
//! out_channels = 4
//! kernel = 3
//! "#;
//! let table = fourf_hw::LayerTable::parse(text, "one.toml").unwrap();
//! let trace = table.to_trace();
//! assert_eq!(trace.ops[0].conv.as_ref().unwrap().jobs, 8);
//! assert_eq!(trace.ops[0].flops, 2 * 2 * 4 * 9 * 64);
//! ```

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::trace::{ConvMode, ConvSpec, Gemm, LensSpec, OpKind, Trace, TraceOp};

/// FLOPs per element of LayerNorm (`fourf-nn` uses these constants too).
pub const LAYER_NORM_FLOPS: u64 = 8;
/// FLOPs per element of an inference batch norm (per-channel scale and shift).
pub const BATCH_NORM_FLOPS: u64 = 2;
/// FLOPs per element of GELU (as `fourf-nn`).
pub const GELU_FLOPS: u64 = 8;
/// FLOPs per element of ReLU.
pub const RELU_FLOPS: u64 = 1;
/// FLOPs per element of softmax (as `fourf-nn`).
pub const SOFTMAX_FLOPS: u64 = 5;
/// FLOPs per element of an addition.
pub const ADD_FLOPS: u64 = 1;

/// FLOPs of an FFT-based global filter on `c` channels of an `a×b` grid: a real
/// forward and inverse 2-D FFT (2.5·N·log₂N each, half a complex FFT) and a complex
/// multiply (6 FLOPs) per half-spectrum bin.
///
/// `fourf-nn` records its GFNet filters with this function too.
pub fn global_filter_flops(a: usize, b: usize, c: usize) -> u64 {
    let n = (a * b) as f64;
    let fft = 2.5 * n * n.log2().max(1.0);
    (c as f64 * (2.0 * fft + 6.0 * (a * (b / 2 + 1)) as f64)).round() as u64
}

/// FLOPs of FNet's Fourier mixing of `n` values: `5·n·log₂n` (as `fourf-nn`).
pub fn fourier_mix_flops(n: usize) -> u64 {
    let n = n as f64;
    (5.0 * n * n.log2().max(1.0)).round() as u64
}

/// A layer table that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LayerTableError {
    /// The file cannot be read.
    #[error("cannot read layer table {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("layer table {file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// A key is unknown, missing, of the wrong type or out of range.
    #[error("{file}:{line}: {place}: key `{key}`: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// Line of the key (or of the layer, for a missing key), from 1.
        line: usize,
        /// `top level`, or the layer: ``layer 3 `conv1` `` (its `[[layer]]` number,
        /// from 1, and name), nested layers as ``layer 5 `blocks` > layer 2 `attn` ``.
        place: String,
        /// The key.
        key: String,
        /// What is wrong and what is valid.
        message: String,
    },
    /// A layer's or the table's counts are beyond any network (see [`MAX_TOTAL`]).
    #[error("{file}:{line}: {place}: {message}")]
    TooLarge {
        /// The file.
        file: String,
        /// Line of the layer (or the top of the file, for the whole table).
        line: usize,
        /// The layer, as in [`LayerTableError::Invalid`], or `top level`.
        place: String,
        /// Which counts.
        message: String,
    },
}

/// Activation function of an `activation` layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// GELU ([`GELU_FLOPS`] per element).
    Gelu,
    /// ReLU ([`RELU_FLOPS`] per element).
    Relu,
}

/// Reduction of a `pool` layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// Average.
    Mean,
    /// Maximum.
    Max,
    /// The first token (ViT's class token): no arithmetic.
    ClassToken,
}

/// How a global filter is laid out as a convolution on the optics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterEmulation {
    /// Valid convolution of the periodically extended `(2a−1)×(2b−1)` map (exact).
    Circular,
    /// `same` convolution of the `a×b` map (zero padding instead of wrap-around).
    ZeroPadded,
}

/// A `conv2d` layer (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conv2d {
    /// Input `[C, H, W]`.
    pub input: [usize; 3],
    /// Output channels.
    pub out_channels: usize,
    /// Kernel side `K`.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding mode.
    pub padding: ConvMode,
    /// Groups (divides `C` and `out_channels`).
    pub groups: usize,
    /// Whether each output channel has a bias.
    pub bias: bool,
    /// Whether the optics may run it (`conv` is set).
    pub optical: bool,
}

impl Conv2d {
    /// Output `[C_out, Ho, Wo]`.
    pub fn output(&self) -> [usize; 3] {
        let [oh, ow] = self.full_resolution().output();
        [self.out_channels, oh.div_ceil(self.stride), ow.div_ceil(self.stride)]
    }

    /// The single-channel convolutions at full resolution (stride 1).
    pub fn full_resolution(&self) -> ConvSpec {
        let [c, h, w] = self.input;
        let per_group = c / self.groups;
        let jobs = per_group * self.out_channels;
        ConvSpec {
            jobs,
            inputs: c,
            kernels: jobs,
            input: [h, w],
            kernel: [self.kernel, self.kernel],
            mode: self.padding,
            accumulate: per_group,
        }
    }
}

/// What a layer is.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    /// Multi-channel 2-D convolution.
    Conv2d(Conv2d),
    /// Fully connected layer on `tokens` rows.
    Linear {
        /// Rows.
        tokens: usize,
        /// Input width.
        in_features: usize,
        /// Output width.
        out_features: usize,
        /// Whether it has a bias.
        bias: bool,
    },
    /// Multi-head self-attention (five ops).
    Attention {
        /// Tokens.
        tokens: usize,
        /// Token width.
        dim: usize,
        /// Heads (divides `dim`).
        heads: usize,
        /// Whether the `qkv` projection has a bias.
        qkv_bias: bool,
    },
    /// GFNet global filter.
    GlobalFilter {
        /// Token grid `[a, b]`.
        grid: [usize; 2],
        /// Channels.
        channels: usize,
        /// Layout on the optics.
        emulation: FilterEmulation,
        /// Whether the optics may run it.
        optical: bool,
    },
    /// FNet Fourier mixing.
    FourierMix {
        /// Tokens.
        tokens: usize,
        /// Token width.
        dim: usize,
        /// Whether the optics may run it.
        optical: bool,
    },
    /// ConvShareViT shared convolution.
    SharedConv {
        /// Token maps.
        maps: usize,
        /// Map `[h, w]`.
        size: [usize; 2],
        /// Kernel side.
        kernel: usize,
        /// Distinct kernels (each applied to every map).
        kernels: usize,
        /// Padding mode.
        padding: ConvMode,
        /// Whether each kernel has a bias.
        bias: bool,
        /// Whether the optics may run it.
        optical: bool,
    },
    /// Layer normalisation over the last axis.
    LayerNorm {
        /// Shape.
        shape: Vec<usize>,
        /// Parameters.
        params: usize,
    },
    /// Inference batch normalisation over the first axis (channels).
    BatchNorm {
        /// Shape.
        shape: Vec<usize>,
        /// Parameters.
        params: usize,
    },
    /// Element-wise activation.
    Activation {
        /// Shape.
        shape: Vec<usize>,
        /// Function.
        function: Activation,
    },
    /// Softmax over the last axis.
    Softmax {
        /// Shape.
        shape: Vec<usize>,
    },
    /// Element-wise addition.
    Add {
        /// Shape.
        shape: Vec<usize>,
        /// Parameters (a bias or positional embedding).
        params: usize,
    },
    /// Pooling.
    Pool {
        /// Input shape.
        shape: Vec<usize>,
        /// Reduction.
        mode: PoolMode,
        /// Window side, or `None` for global pooling.
        window: Option<usize>,
        /// Stride of a windowed pooling.
        stride: usize,
    },
    /// A group of layers.
    Block {
        /// The sub-layers, in order.
        layers: Vec<Layer>,
    },
}

/// One `[[layer]]` of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Name (ops are named after it).
    pub name: String,
    /// How many times it runs in a row.
    pub repeat: usize,
    /// What it is.
    pub kind: LayerKind,
}

/// A network described layer by layer (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTable {
    /// Name of the network.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Layers in execution order.
    pub layers: Vec<Layer>,
}

/// Totals of a layer table's trace.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTableSummary {
    /// Name of the network.
    pub name: String,
    /// Layers, with repeats and blocks expanded (an attention layer counts once).
    pub layers: usize,
    /// Trace ops.
    pub ops: usize,
    /// FLOPs per image.
    pub flops: u64,
    /// Learnable parameters.
    pub params: usize,
    /// f32 traffic per image.
    pub bytes: u64,
    /// Ops the optics may run (`conv` or `lens` set).
    pub optical_ops: usize,
    /// Single-channel 2-D convolutions of those ops (Σ `ConvSpec::jobs`).
    pub optical_jobs: usize,
    /// Lens transforms of those ops (Σ `LensSpec::maps`).
    pub lens_maps: usize,
    /// FLOPs of those ops.
    pub optical_flops: u64,
}

impl fmt::Display for LayerTableSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} layers, {} ops, {:.4} GFLOPs, {:.4} M params, {} optical ops ({} single-channel convolutions{}, \
             {:.1} % of FLOPs)",
            self.name,
            self.layers,
            self.ops,
            self.flops as f64 / 1e9,
            self.params as f64 / 1e6,
            self.optical_ops,
            self.optical_jobs,
            if self.lens_maps > 0 {
                format!(", {} lens transforms", self.lens_maps)
            } else {
                String::new()
            },
            if self.flops == 0 {
                0.0
            } else {
                100.0 * self.optical_flops as f64 / self.flops as f64
            }
        )
    }
}

impl LayerTable {
    /// Reads and validates the table in `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<LayerTable, LayerTableError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        // At most 16 MiB: a device or an endless stream is not read to the end.
        let mut bytes = Vec::new();
        let read = std::fs::File::open(path)
            .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 16 << 20), &mut bytes));
        read.map_err(|source| LayerTableError::Io {
            file: file.clone(),
            source,
        })?;
        if bytes.len() >= 16 << 20 {
            return Err(LayerTableError::Io {
                file,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "16 MiB or larger; not a layer table"),
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| LayerTableError::Io {
            file: file.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates TOML `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<LayerTable, LayerTableError> {
        let doc = DeTable::parse(text).map_err(|e| LayerTableError::Syntax {
            file: file.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let ctx = Ctx { file, text };
        let top = Fields {
            ctx: &ctx,
            place: "top level".into(),
            table: doc.get_ref(),
            span: doc.span(),
        };
        let TopKeys { name, description, .. } = top.keys("the top level", &[])?;
        let layers = top.layers("layer", "")?;
        let ops = layers.iter().map(leaf_count).fold(0usize, usize::saturating_add);
        if ops > MAX_OPS {
            return Err(top.error(
                &top.span,
                "layer",
                format!("the table expands to {ops} layers with its repeats; at most {MAX_OPS}"),
            ));
        }
        let cost = layers.iter().try_fold(0u64, |sum, l| sum.checked_add(layer_cost(l)?));
        if cost.is_none_or(|c| c > MAX_TOTAL) {
            return Err(top.error(
                &top.span,
                "layer",
                "the layers' FLOPs, f32 bytes and parameters per image together exceed 2^60",
            ));
        }
        Ok(LayerTable {
            name,
            description,
            layers,
        })
    }

    /// The per-image trace of the network (all ops electronic; see the module docs).
    pub fn to_trace(&self) -> Trace {
        let mut trace = Trace::new();
        for layer in &self.layers {
            emit(layer, "", &mut trace);
        }
        trace
    }

    /// Layers, FLOPs, parameters and optical jobs.
    pub fn summary(&self) -> LayerTableSummary {
        let trace = self.to_trace();
        let t = trace.totals();
        let optical: Vec<&TraceOp> = trace.ops.iter().filter(|o| o.maps_to_optics()).collect();
        LayerTableSummary {
            name: self.name.clone(),
            layers: self.layers.iter().map(leaf_count).sum(),
            ops: t.ops,
            flops: t.flops,
            params: trace.ops.iter().map(|o| o.params).sum(),
            bytes: t.bytes,
            optical_ops: optical.len(),
            optical_jobs: optical.iter().filter_map(|o| o.conv.as_ref()).map(|c| c.jobs).sum(),
            lens_maps: optical.iter().filter_map(|o| o.lens.as_ref()).map(|l| l.maps).sum(),
            optical_flops: optical.iter().map(|o| o.flops).sum(),
        }
    }
}

/// "an integer", "a string".
fn article(type_name: &str) -> String {
    let an = type_name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {type_name}", if an { "an" } else { "a" })
}

/// The most any count or size in a layer table may be: 2^24.
pub const MAX_COUNT: usize = 1 << 24;

/// The most layers a table may expand to, repeats included.
pub const MAX_OPS: usize = 1_000_000;

fn leaf_count(layer: &Layer) -> usize {
    layer.repeat.saturating_mul(match &layer.kind {
        LayerKind::Block { layers } => layers.iter().map(leaf_count).fold(0, usize::saturating_add),
        _ => 1,
    })
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn emit(layer: &Layer, prefix: &str, trace: &mut Trace) {
    let base = join(prefix, &layer.name);
    for i in 0..layer.repeat {
        let name = if layer.repeat == 1 {
            base.clone()
        } else {
            format!("{base}.{i}")
        };
        emit_once(&layer.kind, &name, trace);
    }
}

/// The convolutions of a global filter over `c` channels of an `a×b` grid on the
/// optics: one per channel, the input wrap-extended to `(2a−1)×(2b−1)` and
/// convolved `valid` (circular), or the bare `a×b` tile convolved `same`
/// (zero-padded). `fourf-nn` records its filters with this too.
pub fn global_filter_conv_spec(a: usize, b: usize, c: usize, emulation: FilterEmulation) -> ConvSpec {
    let (input, mode) = match emulation {
        FilterEmulation::Circular => ([2 * a - 1, 2 * b - 1], ConvMode::Valid),
        FilterEmulation::ZeroPadded => ([a, b], ConvMode::Same),
    };
    ConvSpec {
        jobs: c,
        inputs: c,
        kernels: c,
        input,
        kernel: [a, b],
        mode,
        accumulate: 1,
    }
}

/// The three electronic ops between the projections of multi-head attention over
/// `t` tokens of width `d` with `heads` heads, named `name.scores`, `name.softmax`
/// and `name.mix`: `Q·Kᵀ` and `A·V` per head as matrix products, and the softmax.
/// `fourf-nn` records its attention with these too.
pub fn attention_core_ops(name: &str, t: usize, d: usize, heads: usize) -> [TraceOp; 3] {
    let hd = d / heads;
    [
        TraceOp::electronic(
            join(name, "scores"),
            OpKind::AttentionScores,
            &[t, 2 * d],
            &[heads, t, t],
            saturating_product(&[2, heads, t, t, hd]),
        )
        .with_gemm(Gemm {
            count: heads,
            m: t,
            n: t,
            k: hd,
            shared_weights: false,
        }),
        TraceOp::electronic(
            join(name, "softmax"),
            OpKind::Softmax,
            &[heads, t, t],
            &[heads, t, t],
            saturating_product(&[SOFTMAX_FLOPS as usize, heads, t, t]),
        ),
        TraceOp::electronic(
            join(name, "mix"),
            OpKind::AttentionMix,
            &[heads, t, t],
            &[t, d],
            saturating_product(&[2, heads, t, t, hd]),
        )
        .with_gemm(Gemm {
            count: heads,
            m: t,
            n: hd,
            k: t,
            shared_weights: false,
        }),
    ]
}

/// A fully connected layer over `tokens` rows, `inf → outf`, with or without a
/// bias, as a GPU matrix product with shared weights. `fourf-nn` records its linear
/// layers with this too.
pub fn linear_op(name: String, tokens: usize, inf: usize, outf: usize, bias: bool) -> TraceOp {
    TraceOp::electronic(
        name,
        OpKind::Linear,
        &[tokens, inf],
        &[tokens, outf],
        saturating_product(&[2, tokens, inf, outf]),
    )
    .with_params((inf * outf).saturating_add(if bias { outf } else { 0 }))
    .with_gemm(Gemm {
        count: 1,
        m: tokens,
        n: outf,
        k: inf,
        shared_weights: true,
    })
}

/// The product of `factors` as a `u64`, saturating: a table whose counts do not fit
/// is refused when parsed (see [`MAX_TOTAL`]), and no product here wraps or panics.
pub fn saturating_product(factors: &[usize]) -> u64 {
    factors.iter().fold(1u64, |p, &f| p.saturating_mul(f as u64))
}

fn elementwise(name: &str, kind: OpKind, shape: &[usize], per_element: u64, params: usize) -> TraceOp {
    let flops = saturating_product(shape).saturating_mul(per_element);
    TraceOp::electronic(name, kind, shape, shape, flops).with_params(params)
}

fn emit_once(kind: &LayerKind, name: &str, trace: &mut Trace) {
    match kind {
        LayerKind::Conv2d(c) => {
            let [ci, _, _] = c.input;
            let out = c.output();
            let spec = c.full_resolution();
            let per_group = ci / c.groups;
            let k2 = c.kernel * c.kernel;
            let (ho, wo) = (out[1], out[2]);
            let mut op = TraceOp::electronic(
                name,
                OpKind::Conv2d,
                &c.input,
                &out,
                saturating_product(&[2, per_group, c.out_channels, k2, ho, wo]),
            )
            .with_params(
                (saturating_product(&[c.out_channels, per_group, k2]) as usize).saturating_add(if c.bias {
                    c.out_channels
                } else {
                    0
                }),
            )
            .with_gemm(Gemm {
                count: c.groups,
                m: ho * wo,
                n: c.out_channels / c.groups,
                k: per_group * k2,
                shared_weights: true,
            });
            op.conv = c.optical.then_some(spec);
            trace.push(op);
        }
        &LayerKind::Linear {
            tokens,
            in_features,
            out_features,
            bias,
        } => trace.push(linear_op(name.into(), tokens, in_features, out_features, bias)),
        &LayerKind::Attention {
            tokens: t,
            dim: d,
            heads,
            qkv_bias,
        } => {
            // The ops of fourf-nn's `Forward::attention` (nn/src/ops.rs).
            trace.push(linear_op(join(name, "qkv"), t, d, 3 * d, qkv_bias));
            trace.ops.extend(attention_core_ops(name, t, d, heads));
            trace.push(linear_op(join(name, "proj"), t, d, d, true));
        }
        &LayerKind::GlobalFilter {
            grid: [a, b],
            channels: c,
            emulation,
            optical,
        } => {
            let mut op = TraceOp::electronic(
                name,
                OpKind::GlobalFilter,
                &[a * b, c],
                &[a * b, c],
                global_filter_flops(a, b, c),
            )
            .with_params(saturating_product(&[a, b / 2 + 1, c, 2]) as usize);
            op.conv = optical.then(|| global_filter_conv_spec(a, b, c, emulation));
            trace.push(op);
        }
        &LayerKind::FourierMix { tokens, dim, optical } => {
            let mut op = TraceOp::electronic(
                name,
                OpKind::FourierMix,
                &[tokens, dim],
                &[tokens, dim],
                fourier_mix_flops(tokens * dim),
            );
            op.lens = optical.then_some(LensSpec {
                maps: 1,
                map: [tokens, dim],
            });
            trace.push(op);
        }
        &LayerKind::SharedConv {
            maps,
            size,
            kernel,
            kernels,
            padding,
            bias,
            optical,
        } => {
            let spec = ConvSpec {
                jobs: maps * kernels,
                inputs: maps,
                kernels,
                input: size,
                kernel: [kernel, kernel],
                mode: padding,
                accumulate: 1,
            };
            let [oh, ow] = spec.output();
            let mut op = TraceOp::electronic(
                name,
                OpKind::SharedConv,
                &[maps, size[0], size[1]],
                &[spec.jobs, oh, ow],
                spec.flops(),
            )
            .with_params(
                (saturating_product(&[kernels, kernel, kernel]) as usize).saturating_add(if bias {
                    kernels
                } else {
                    0
                }),
            );
            op.conv = optical.then_some(spec);
            trace.push(op);
        }
        LayerKind::LayerNorm { shape, params } => {
            trace.push(elementwise(name, OpKind::LayerNorm, shape, LAYER_NORM_FLOPS, *params))
        }
        LayerKind::BatchNorm { shape, params } => {
            trace.push(elementwise(name, OpKind::LayerNorm, shape, BATCH_NORM_FLOPS, *params))
        }
        LayerKind::Activation { shape, function } => {
            let per = match function {
                Activation::Gelu => GELU_FLOPS,
                Activation::Relu => RELU_FLOPS,
            };
            trace.push(elementwise(name, OpKind::Activation, shape, per, 0))
        }
        LayerKind::Softmax { shape } => trace.push(elementwise(name, OpKind::Softmax, shape, SOFTMAX_FLOPS, 0)),
        LayerKind::Add { shape, params } => trace.push(elementwise(name, OpKind::Add, shape, ADD_FLOPS, *params)),
        LayerKind::Pool {
            shape,
            mode,
            window,
            stride,
        } => {
            let n = saturating_product(shape);
            let (output, flops) = match (window, mode) {
                (Some(s), _) => {
                    let out = vec![shape[0], (shape[1] - s) / stride + 1, (shape[2] - s) / stride + 1];
                    let reads = saturating_product(&out).saturating_mul((s * s) as u64);
                    (out, reads)
                }
                (None, PoolMode::ClassToken) => (vec![shape[1]], 0),
                (None, _) if shape.len() == 2 => (vec![shape[1]], n),
                (None, _) => (vec![shape[0]], n),
            };
            trace.push(TraceOp::electronic(name, OpKind::Pool, shape, &output, flops));
        }
        LayerKind::Block { layers } => {
            for l in layers {
                emit(l, name, trace);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing
//
// The document's structure — the top level, the `[[layer]]` arrays, each layer's
// name and kind — is walked on toml's spanned tree, so that an error can name its
// layer. Each kind's keys are read with serde into the `*Keys` structs below (an
// unknown key, a missing one or a bad value is a serde error, mapped back to its
// key and line by its span); what serde cannot say (heads divide dim, a valid
// convolution's kernel fits) is checked after, on the spans serde kept.
// ---------------------------------------------------------------------------

const KINDS: &str = "conv2d, linear, attention, global_filter, fourier_mix, shared_conv, layer_norm, batch_norm, \
                     activation, softmax, add, pool, block";
/// The keys every layer has, read before its kind's keys.
const COMMON: &[&str] = &["name", "kind", "repeat"];

/// The most FLOPs, f32 bytes or parameters one layer (repeats included) and the
/// whole table may count per image: 2^60, far beyond any network, and small
/// enough that every sum of the trace fits in a `u64`.
pub const MAX_TOTAL: u64 = 1 << 60;

fn integer(v: &toml::Value, what: &str, min: i64) -> Result<usize, String> {
    match v {
        toml::Value::Integer(n) if (min..=MAX_COUNT as i64).contains(n) => Ok(*n as usize),
        toml::Value::Integer(n) if *n > MAX_COUNT as i64 => {
            Err(format!("must be {what} in {min}..={MAX_COUNT}, got {n}"))
        }
        toml::Value::Integer(n) => Err(format!("must be {what}, got {n}")),
        other => Err(format!("must be {what}, got {}", article(other.type_str()))),
    }
}

/// An integer in `MIN..=MAX_COUNT`.
#[derive(Debug, Clone, Copy)]
struct Int<const MIN: i64>(usize);

/// A positive integer, at most [`MAX_COUNT`]; 1 when absent.
type Count = Int<1>;
/// A non-negative integer, at most [`MAX_COUNT`].
type Amount = Int<0>;

impl Default for Count {
    fn default() -> Self {
        Int(1)
    }
}

impl<'de, const MIN: i64> Deserialize<'de> for Int<MIN> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let what = if MIN == 0 {
            "a non-negative integer"
        } else {
            "a positive integer"
        };
        integer(&toml::Value::deserialize(d)?, what, MIN)
            .map(Int)
            .map_err(de::Error::custom)
    }
}

/// `true` or `false`; `true` when absent.
#[derive(Debug, Clone, Copy)]
struct Flag(bool);

impl Default for Flag {
    fn default() -> Self {
        Flag(true)
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::Boolean(b) => Ok(Flag(b)),
            other => Err(de::Error::custom(format!(
                "must be true or false, got {}",
                article(other.type_str())
            ))),
        }
    }
}

/// What a list of sizes is, for its messages.
trait ShapeKind {
    /// `the input [C, H, W]`.
    const WHAT: &'static str;
    /// The number of sizes it must have, if fixed.
    const LEN: Option<usize>;
}

macro_rules! shape_kinds {
    ($($name:ident: $what:literal, $len:expr;)*) => {$(
        struct $name;
        impl ShapeKind for $name {
            const WHAT: &'static str = $what;
            const LEN: Option<usize> = $len;
        }
    )*};
}

shape_kinds! {
    AnyShape: "the shape", None;
    ChannelsFirst: "the shape [C, ...]", None;
    PoolInput: "the input shape", None;
    InputChw: "the input [C, H, W]", Some(3);
    TokenGrid: "the token grid [a, b]", Some(2);
    MapSize: "the map size [h, w]", Some(2);
}

/// A non-empty list of positive integers.
struct Shape<K>(Vec<usize>, std::marker::PhantomData<K>);

impl<K> Shape<K> {
    fn pair(&self) -> [usize; 2] {
        [self.0[0], self.0[1]]
    }
}

impl<'de, K: ShapeKind> Deserialize<'de> for Shape<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expected = format!("{} (a list of positive integers)", K::WHAT);
        match toml::Value::deserialize(d)? {
            toml::Value::Array(items) if !items.is_empty() && K::LEN.is_none_or(|n| n == items.len()) => items
                .iter()
                .map(|v| integer(v, &expected, 1))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| Shape(v, std::marker::PhantomData))
                .map_err(de::Error::custom),
            toml::Value::Array(items) => Err(de::Error::custom(format!(
                "must be {expected}, got {} values",
                items.len()
            ))),
            other => Err(de::Error::custom(format!(
                "must be {expected}, got {}",
                article(other.type_str())
            ))),
        }
    }
}

/// A string key with a fixed set of values; the first is the default.
trait Choices: Copy + 'static {
    const CHOICES: &'static [(&'static str, Self)];
}

impl Choices for ConvMode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("same", ConvMode::Same),
        ("valid", ConvMode::Valid),
        ("full", ConvMode::Full),
    ];
}

impl Choices for FilterEmulation {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("circular", FilterEmulation::Circular),
        ("zero_padded", FilterEmulation::ZeroPadded),
    ];
}

impl Choices for Activation {
    const CHOICES: &'static [(&'static str, Self)] = &[("gelu", Activation::Gelu), ("relu", Activation::Relu)];
}

impl Choices for PoolMode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("mean", PoolMode::Mean),
        ("max", PoolMode::Max),
        ("class_token", PoolMode::ClassToken),
    ];
}

struct Choice<T>(T);

impl<T: Choices> Default for Choice<T> {
    fn default() -> Self {
        Choice(T::CHOICES[0].1)
    }
}

impl<'de, T: Choices> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names: Vec<String> = T::CHOICES.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        let expected = format!("one of {}", names.join(", "));
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => T::CHOICES
                .iter()
                .find(|(n, _)| *n == s)
                .map(|&(_, t)| Choice(t))
                .ok_or_else(|| de::Error::custom(format!("must be {expected}, got \"{s}\""))),
            other => Err(de::Error::custom(format!(
                "must be {expected}, got {}",
                article(other.type_str())
            ))),
        }
    }
}

/// The top level's keys (`layer` is walked by hand).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopKeys {
    name: String,
    description: Option<String>,
    #[allow(dead_code)]
    layer: de::IgnoredAny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Conv2dKeys {
    input: Shape<InputChw>,
    out_channels: Count,
    kernel: Spanned<Count>,
    #[serde(default)]
    stride: Count,
    #[serde(default)]
    padding: Choice<ConvMode>,
    groups: Option<Spanned<Count>>,
    #[serde(default)]
    bias: Flag,
    #[serde(default)]
    optical: Flag,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinearKeys {
    #[serde(default)]
    tokens: Count,
    in_features: Count,
    out_features: Count,
    #[serde(default)]
    bias: Flag,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttentionKeys {
    tokens: Count,
    dim: Count,
    heads: Spanned<Count>,
    #[serde(default)]
    qkv_bias: Flag,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlobalFilterKeys {
    grid: Shape<TokenGrid>,
    channels: Count,
    #[serde(default)]
    emulation: Choice<FilterEmulation>,
    #[serde(default)]
    optical: Flag,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FourierMixKeys {
    tokens: Count,
    dim: Count,
    #[serde(default)]
    optical: Flag,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedConvKeys {
    maps: Count,
    size: Shape<MapSize>,
    kernel: Spanned<Count>,
    #[serde(default)]
    kernels: Count,
    #[serde(default)]
    padding: Choice<ConvMode>,
    #[serde(default)]
    bias: Flag,
    #[serde(default)]
    optical: Flag,
}

/// `layer_norm`, `batch_norm` and `add`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound = "K: ShapeKind")]
struct ShapeParamsKeys<K> {
    shape: Shape<K>,
    params: Option<Amount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivationKeys {
    shape: Shape<AnyShape>,
    #[serde(default)]
    function: Choice<Activation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftmaxKeys {
    shape: Shape<AnyShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolKeys {
    shape: Spanned<Shape<PoolInput>>,
    #[serde(default)]
    mode: Choice<PoolMode>,
    window: Option<Spanned<Count>>,
    stride: Option<Spanned<Count>>,
}

/// A block's keys (`layers` is walked by hand).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockKeys {
    #[allow(dead_code)]
    layers: de::IgnoredAny,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }
}

/// One TOML table being read: the top level or a layer.
struct Fields<'a, 'i> {
    ctx: &'a Ctx<'a>,
    place: String,
    table: &'a DeTable<'i>,
    span: Range<usize>,
}

type Value<'i> = Spanned<DeValue<'i>>;

impl<'a, 'i> Fields<'a, 'i> {
    fn error(&self, span: &Range<usize>, key: &str, message: impl Into<String>) -> LayerTableError {
        LayerTableError::Invalid {
            file: self.ctx.file.to_string(),
            line: self.ctx.line(span),
            place: self.place.clone(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn value(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }

    fn span_of(&self, key: &str) -> Range<usize> {
        self.value(key).map_or(self.span.clone(), |v| v.span())
    }

    /// `key`'s value read with serde, if present.
    fn read<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, LayerTableError> {
        let Some(v) = self.value(key) else {
            return Ok(None);
        };
        T::deserialize(ValueDeserializer::from(v.clone()))
            .map(Some)
            .map_err(|e| self.error(&v.span(), key, serde_message(e.message())))
    }

    /// The table's keys read with serde into `T`, those in `skip` left out (they
    /// were read by hand); `what` names the table in the list of valid keys.
    fn keys<T: DeserializeOwned>(&self, what: &str, skip: &[&str]) -> Result<T, LayerTableError> {
        let mut table = self.table.clone();
        for k in skip {
            table.remove(*k);
        }
        let value = Spanned::new(self.span.clone(), DeValue::Table(table));
        T::deserialize(ValueDeserializer::from(value)).map_err(|e| {
            let message = e.message();
            if let Some(rest) = message.strip_prefix("missing field `") {
                let key = rest.split('`').next().unwrap_or(rest);
                return self.error(&self.span, key, "missing (required)");
            }
            let span = e.span().unwrap_or_else(|| self.span.clone());
            if let Some(rest) = message.strip_prefix("unknown field `") {
                // serde: "unknown field `k`, expected one of `a`, `b`" (or "expected `a`").
                let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
                let valid: Vec<&str> = skip
                    .iter()
                    .copied()
                    .chain(expected.split('`').skip(1).step_by(2))
                    .collect();
                return self.error(
                    &span,
                    key,
                    format!("unknown key; valid keys for {what}: {}", valid.join(", ")),
                );
            }
            // Any other error is about a value: name the key that holds it.
            let key = self
                .table
                .iter()
                .find(|(k, v)| k.span().contains(&span.start) || v.span().contains(&span.start))
                .map_or("?", |(k, _)| k.get_ref().as_ref());
            self.error(&span, key, serde_message(message))
        })
    }

    /// The array of layer tables under `key`; `parent` is the enclosing place.
    fn layers(&self, key: &str, parent: &str) -> Result<Vec<Layer>, LayerTableError> {
        let v = self.value(key).expect("read by serde before");
        let expected = format!(
            "an array of tables (`[[{}]]`)",
            if parent.is_empty() { "layer" } else { "layer.layers" }
        );
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.error(
                &v.span(),
                key,
                format!("must be {expected}, got {}", article(v.get_ref().type_str())),
            ));
        };
        if items.is_empty() {
            return Err(self.error(&v.span(), key, "must hold at least one layer"));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let label = if parent.is_empty() {
                    format!("layer {}", i + 1)
                } else {
                    format!("{parent} > layer {}", i + 1)
                };
                let DeValue::Table(table) = item.get_ref() else {
                    return Err(self.error(
                        &item.span(),
                        key,
                        format!("{label} must be {expected}, got {}", article(item.get_ref().type_str())),
                    ));
                };
                let mut fields = Fields {
                    ctx: self.ctx,
                    place: label.clone(),
                    table,
                    span: item.span(),
                };
                let name: String = fields
                    .read("name")?
                    .ok_or_else(|| fields.error(&fields.span, "name", "missing (required)"))?;
                if name.is_empty() {
                    return Err(fields.error(&fields.span_of("name"), "name", "must not be empty"));
                }
                fields.place = format!("{label} `{name}`");
                fields.layer(name)
            })
            .collect()
    }

    /// The layer this table describes.
    fn layer(&self, name: String) -> Result<Layer, LayerTableError> {
        let kind_name: String = self
            .read("kind")?
            .ok_or_else(|| self.error(&self.span, "kind", format!("missing (required); valid kinds: {KINDS}")))?;
        let repeat = self.read::<Count>("repeat")?.unwrap_or_default().0;
        let what = format!("kind \"{kind_name}\"");
        let kind = match kind_name.as_str() {
            "conv2d" => LayerKind::Conv2d(self.conv2d(self.keys(&what, COMMON)?)?),
            "linear" => {
                let k: LinearKeys = self.keys(&what, COMMON)?;
                LayerKind::Linear {
                    tokens: k.tokens.0,
                    in_features: k.in_features.0,
                    out_features: k.out_features.0,
                    bias: k.bias.0,
                }
            }
            "attention" => {
                let k: AttentionKeys = self.keys(&what, COMMON)?;
                let (dim, heads) = (k.dim.0, k.heads.get_ref().0);
                if !dim.is_multiple_of(heads) {
                    return Err(self.error(
                        &k.heads.span(),
                        "heads",
                        format!("must divide dim = {dim}, got {heads}"),
                    ));
                }
                LayerKind::Attention {
                    tokens: k.tokens.0,
                    dim,
                    heads,
                    qkv_bias: k.qkv_bias.0,
                }
            }
            "global_filter" => {
                let k: GlobalFilterKeys = self.keys(&what, COMMON)?;
                LayerKind::GlobalFilter {
                    grid: k.grid.pair(),
                    channels: k.channels.0,
                    emulation: k.emulation.0,
                    optical: k.optical.0,
                }
            }
            "fourier_mix" => {
                let k: FourierMixKeys = self.keys(&what, COMMON)?;
                LayerKind::FourierMix {
                    tokens: k.tokens.0,
                    dim: k.dim.0,
                    optical: k.optical.0,
                }
            }
            "shared_conv" => {
                let k: SharedConvKeys = self.keys(&what, COMMON)?;
                let (size, kernel, padding) = (k.size.pair(), k.kernel.get_ref().0, k.padding.0);
                if padding == ConvMode::Valid && kernel > size[0].min(size[1]) {
                    return Err(self.error(
                        &k.kernel.span(),
                        "kernel",
                        format!("a valid convolution needs kernel ≤ the map size {size:?}, got {kernel}"),
                    ));
                }
                LayerKind::SharedConv {
                    maps: k.maps.0,
                    size,
                    kernel,
                    kernels: k.kernels.0,
                    padding,
                    bias: k.bias.0,
                    optical: k.optical.0,
                }
            }
            "layer_norm" => {
                let k: ShapeParamsKeys<AnyShape> = self.keys(&what, COMMON)?;
                let shape = k.shape.0;
                LayerKind::LayerNorm {
                    params: k.params.map_or(2 * shape[shape.len() - 1], |p| p.0),
                    shape,
                }
            }
            "batch_norm" => {
                let k: ShapeParamsKeys<ChannelsFirst> = self.keys(&what, COMMON)?;
                let shape = k.shape.0;
                LayerKind::BatchNorm {
                    params: k.params.map_or(2 * shape[0], |p| p.0),
                    shape,
                }
            }
            "add" => {
                let k: ShapeParamsKeys<AnyShape> = self.keys(&what, COMMON)?;
                LayerKind::Add {
                    shape: k.shape.0,
                    params: k.params.map_or(0, |p| p.0),
                }
            }
            "activation" => {
                let k: ActivationKeys = self.keys(&what, COMMON)?;
                LayerKind::Activation {
                    shape: k.shape.0,
                    function: k.function.0,
                }
            }
            "softmax" => {
                let k: SoftmaxKeys = self.keys(&what, COMMON)?;
                LayerKind::Softmax { shape: k.shape.0 }
            }
            "pool" => self.pool(self.keys(&what, COMMON)?)?,
            "block" => {
                let _: BlockKeys = self.keys(&what, COMMON)?;
                LayerKind::Block {
                    layers: self.layers("layers", &self.place)?,
                }
            }
            other => {
                return Err(self.error(
                    &self.span_of("kind"),
                    "kind",
                    format!("unknown kind \"{other}\"; valid kinds: {KINDS}"),
                ));
            }
        };
        let layer = Layer { name, repeat, kind };
        match layer_cost(&layer) {
            Some(cost) if cost <= MAX_TOTAL => Ok(layer),
            _ => Err(LayerTableError::TooLarge {
                file: self.ctx.file.to_string(),
                line: self.ctx.line(&self.span),
                place: self.place.clone(),
                message: format!(
                    "the layer's FLOPs, f32 bytes and parameters per image{} exceed 2^60; its sizes are out of \
                     any network's range",
                    if repeat > 1 {
                        format!(", × repeat = {repeat},")
                    } else {
                        String::new()
                    }
                ),
            }),
        }
    }

    fn conv2d(&self, k: Conv2dKeys) -> Result<Conv2d, LayerTableError> {
        let input = [k.input.0[0], k.input.0[1], k.input.0[2]];
        let (out_channels, kernel, padding) = (k.out_channels.0, k.kernel.get_ref().0, k.padding.0);
        if let Some(g) = &k.groups {
            let groups = g.get_ref().0;
            if !(input[0].is_multiple_of(groups) && out_channels.is_multiple_of(groups)) {
                return Err(self.error(
                    &g.span(),
                    "groups",
                    format!(
                        "must divide the input channels ({}) and out_channels ({out_channels}), got {groups}",
                        input[0]
                    ),
                ));
            }
        }
        if padding == ConvMode::Valid && kernel > input[1].min(input[2]) {
            return Err(self.error(
                &k.kernel.span(),
                "kernel",
                format!(
                    "a valid convolution needs kernel ≤ the input's H and W ({}, {}), got {kernel}",
                    input[1], input[2]
                ),
            ));
        }
        Ok(Conv2d {
            input,
            out_channels,
            kernel,
            stride: k.stride.0,
            padding,
            groups: k.groups.map_or(1, |g| g.get_ref().0),
            bias: k.bias.0,
            optical: k.optical.0,
        })
    }

    fn pool(&self, k: PoolKeys) -> Result<LayerKind, LayerTableError> {
        let shape_span = k.shape.span();
        let shape = k.shape.into_inner().0;
        let mode = k.mode.0;
        let window = k.window.as_ref().map(|w| w.get_ref().0);
        match &k.window {
            Some(w) => {
                let s = w.get_ref().0;
                if mode == PoolMode::ClassToken {
                    return Err(self.error(&w.span(), "window", "not valid with mode = \"class_token\""));
                }
                if shape.len() != 3 || s > shape[1].min(shape[2]) {
                    return Err(self.error(
                        &shape_span,
                        "shape",
                        format!("a windowed pool needs [C, H, W] with H, W ≥ window = {s}, got {shape:?}"),
                    ));
                }
            }
            None => {
                if let Some(s) = &k.stride {
                    return Err(self.error(&s.span(), "stride", "only valid with `window` (a windowed pool)"));
                }
                let ok = match mode {
                    PoolMode::ClassToken => shape.len() == 2,
                    _ => matches!(shape.len(), 2 | 3),
                };
                if !ok {
                    return Err(self.error(
                        &shape_span,
                        "shape",
                        format!(
                            "a global pool needs tokens [T, D]{}, got {shape:?}",
                            if mode == PoolMode::ClassToken {
                                ""
                            } else {
                                " or maps [C, H, W]"
                            }
                        ),
                    ));
                }
            }
        }
        Ok(LayerKind::Pool {
            shape,
            mode,
            stride: k.stride.map(|s| s.get_ref().0).or(window).unwrap_or(1),
            window,
        })
    }
}

/// serde's "invalid type: integer `3`, expected a string" as "must be a string, got
/// integer `3`", in the style of fourf's own messages; other messages unchanged.
fn serde_message(message: &str) -> String {
    // An integer beyond i64 reaches no integer type of ours (toml's values stop at i64).
    if let Some(n) = message
        .strip_prefix("invalid type: integer `")
        .filter(|rest| rest.ends_with("expected any valid TOML value"))
        .and_then(|rest| rest.split('`').next())
    {
        return format!("must be at most {MAX_COUNT}, got {n}");
    }
    match message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        Some((got, expected)) => format!("must be {expected}, got {got}"),
        None => message.to_string(),
    }
}

/// FLOPs + f32 bytes + parameters of `layer` per image, repeats included, or `None`
/// when they do not fit a `u64` (the trace's counts saturate; this sees it).
fn layer_cost(layer: &Layer) -> Option<u64> {
    let once = match &layer.kind {
        LayerKind::Block { layers } => layers.iter().try_fold(0u64, |sum, l| sum.checked_add(layer_cost(l)?))?,
        kind => {
            let mut scratch = Trace::new();
            emit_once(kind, "", &mut scratch);
            scratch.ops.iter().try_fold(0u64, |sum, op| {
                [op.flops, op.bytes, op.params as u64].iter().try_fold(sum, |s, &x| {
                    if x > MAX_TOTAL {
                        None
                    } else {
                        s.checked_add(x)
                    }
                })
            })?
        }
    };
    once.checked_mul(layer.repeat as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(layers: &str) -> Result<LayerTable, LayerTableError> {
        LayerTable::parse(&format!("name = \"t\"\n{layers}"), "t.toml")
    }

    fn one(layer: &str) -> Trace {
        table(&format!("[[layer]]\nname = \"x\"\n{layer}")).unwrap().to_trace()
    }

    fn err(text: &str) -> String {
        table(text).unwrap_err().to_string()
    }

    /// Reproducers from the hardening issue: `repeat = 1e7` ran out of memory and a
    /// `shared_conv` of size 10¹² hung `fourf latency`.
    #[test]
    fn counts_and_repeats_are_bounded() {
        let e = err("[[layer]]\nname = \"x\"\nkind = \"add\"\nshape = [10]\nrepeat = 10000000");
        assert!(e.contains("10000000 layers") && e.contains("at most 1000000"), "{e}");
        let e = err("[[layer]]\nname = \"x\"\nkind = \"add\"\nshape = [10]\nrepeat = 100000000");
        assert!(e.contains("repeat") && e.contains("1..=16777216"), "{e}");
        let e =
            err("[[layer]]\nname = \"x\"\nkind = \"shared_conv\"\nmaps = 10\nsize = [1000000000000, 8]\nkernel = 3");
        assert!(e.contains("size") && e.contains("1..=16777216"), "{e}");
        let e = err(
            "[[layer]]\nname = \"b\"\nkind = \"block\"\nrepeat = 2000\n[[layer.layers]]\nname = \"g\"\nkind = \"add\"\nshape = [4]\nrepeat = 1000",
        );
        assert!(e.contains("2000000 layers") && e.contains("at most 1000000"), "{e}");
    }

    /// The hardening issue asked for checked size arithmetic: sizes each within
    /// `MAX_COUNT` still multiply past `u64` (a 2^24-wide linear layer on 2^24
    /// tokens is 2^73 FLOPs), and a repeat can multiply a large layer past it.
    #[test]
    fn counts_that_overflow_are_refused() {
        let e = err("[[layer]]\nname = \"x\"\nkind = \"linear\"\nin_features = 16777216\nout_features = 16777216\ntokens = 16777216");
        assert!(
            e.starts_with("t.toml:2: layer 1 `x`: the layer's FLOPs") && e.contains("2^60"),
            "{e}"
        );
        let e = err("[[layer]]\nname = \"x\"\nkind = \"add\"\nshape = [16777216, 16777216, 16777216, 16777216]");
        assert!(e.contains("layer 1 `x`: the layer's FLOPs"), "{e}");
        let e = err("[[layer]]\nname = \"x\"\nkind = \"linear\"\nin_features = 16777216\nout_features = 16777216\ntokens = 16\nrepeat = 100000");
        assert!(e.contains("× repeat = 100000"), "{e}");
        // Each layer fits; together they do not.
        let big = "[[layer]]\nname = \"x\"\nkind = \"linear\"\nin_features = 16777216\nout_features = 16777216\ntokens = 1024\n";
        let e = err(&big.repeat(2));
        assert!(e.contains("top level") && e.contains("together exceed 2^60"), "{e}");
        // The largest layer that fits gives exact counts.
        let t = one("kind = \"linear\"\nin_features = 16777216\nout_features = 16777216\ntokens = 1024\nbias = false");
        assert_eq!(t.ops[0].flops, 1 << 59);
        let e = err("[[layer]]\nname = \"x\"\nkind = \"softmax\"\nshape = [2, 99999999999999999999]");
        assert!(
            e.contains("key `shape`: must be at most 16777216, got 99999999999999999999"),
            "{e}"
        );
    }

    /// Values of the wrong type name the key and what is valid, in serde's and in
    /// fourf's own wording alike.
    #[test]
    fn wrong_types_name_the_valid_values() {
        let conv = "[[layer]]\nname = \"x\"\nkind = \"conv2d\"\ninput = [3, 8, 8]\nout_channels = 4\nkernel = 3\n";
        let e = err(&format!("{conv}bias = \"yes\""));
        assert!(
            e.starts_with("t.toml:8: layer 1 `x`: key `bias`: must be true or false, got a string"),
            "{e}"
        );
        let e = err(&format!("{conv}padding = 3"));
        assert!(
            e.contains("key `padding`: must be one of \"same\", \"valid\", \"full\", got an integer"),
            "{e}"
        );
        let e = err(&format!("{conv}padding = \"circ\""));
        assert!(e.contains("got \"circ\""), "{e}");
        let e = LayerTable::parse(
            "name = 3\n[[layer]]\nname = \"x\"\nkind = \"add\"\nshape = [1]",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "t.toml:1: top level: key `name`: must be a string, got integer `3`");
        let e = err("[[layer]]\nname = \"x\"\nkind = \"block\"\nfoo = 1\n[[layer.layers]]\nname = \"a\"\nkind = \"softmax\"\nshape = [2]");
        assert!(
            e.contains("key `foo`: unknown key; valid keys for kind \"block\": name, kind, repeat, layers"),
            "{e}"
        );
        let e = err("[[layer]]\nname = \"x\"\nkind = \"softmax\"\nshape = [2]\nrepeat = 0");
        assert!(e.contains("key `repeat`: must be a positive integer, got 0"), "{e}");
    }

    #[test]
    fn conv2d_counts_and_stride() {
        let t = one("kind = \"conv2d\"\ninput = [4, 9, 9]\nout_channels = 6\nkernel = 3\nstride = 2");
        let op = &t.ops[0];
        assert_eq!(op.kind, OpKind::Conv2d);
        assert_eq!(op.output_shape, [6, 5, 5]);
        assert_eq!(op.flops, 2 * 4 * 6 * 9 * 25);
        assert_eq!(op.params, 6 * 4 * 9 + 6);
        assert_eq!(op.bytes, 4 * (4 * 81 + 6 * 25 + 6 * 4 * 9 + 6) as u64);
        assert_eq!(
            op.gemm,
            Some(Gemm {
                count: 1,
                m: 25,
                n: 6,
                k: 36,
                shared_weights: true
            })
        );
        let c = op.conv.as_ref().unwrap();
        assert_eq!((c.jobs, c.inputs, c.kernels, c.accumulate), (24, 4, 24, 4));
        assert_eq!((c.input, c.kernel, c.mode), ([9, 9], [3, 3], ConvMode::Same));
        // valid: (9 − 3)/2 + 1 = 4; full-resolution output 7 keeps 0, 2, 4, 6.
        let v = one("kind = \"conv2d\"\ninput = [4, 9, 9]\nout_channels = 6\nkernel = 3\nstride = 2\npadding = \"valid\"\nbias = false\noptical = false");
        assert_eq!(v.ops[0].output_shape, [6, 4, 4]);
        assert_eq!(v.ops[0].params, 6 * 4 * 9);
        assert!(v.ops[0].conv.is_none());
        // groups: depthwise.
        let d = one("kind = \"conv2d\"\ninput = [8, 5, 5]\nout_channels = 8\nkernel = 3\ngroups = 8");
        let c = d.ops[0].conv.as_ref().unwrap();
        assert_eq!((c.jobs, c.accumulate, d.ops[0].flops), (8, 1, 2 * 8 * 9 * 25));
        assert_eq!(d.ops[0].gemm.unwrap().count, 8);
    }

    #[test]
    fn attention_matches_nn_counts() {
        // The numbers of nn/src/ops.rs's test: T 5, dim 12, 3 heads.
        let t = one("kind = \"attention\"\ntokens = 5\ndim = 12\nheads = 3");
        let names: Vec<&str> = t.ops.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["x.qkv", "x.scores", "x.softmax", "x.mix", "x.proj"]);
        let flops: u64 = t.ops.iter().map(|o| o.flops).sum();
        assert_eq!(flops, 4320 + 600 + 375 + 600 + 1440);
        assert_eq!(t.ops[0].params, 12 * 36 + 36);
        assert_eq!(t.ops[4].params, 12 * 12 + 12);
        assert_eq!(t.ops.iter().filter(|o| o.gemm.is_some()).count(), 4);
    }

    #[test]
    fn spectral_and_shared_ops() {
        let t = one("kind = \"global_filter\"\ngrid = [14, 14]\nchannels = 256");
        let op = &t.ops[0];
        assert_eq!(op.params, 14 * 8 * 256 * 2);
        assert_eq!(op.flops, global_filter_flops(14, 14, 256));
        let c = op.conv.as_ref().unwrap();
        assert_eq!(
            (c.jobs, c.input, c.kernel, c.mode),
            (256, [27, 27], [14, 14], ConvMode::Valid)
        );
        assert_eq!(c.output(), [14, 14]);
        let z = one("kind = \"global_filter\"\ngrid = [4, 6]\nchannels = 2\nemulation = \"zero_padded\"");
        assert_eq!(z.ops[0].conv.as_ref().unwrap().output(), [4, 6]);

        let f = one("kind = \"fourier_mix\"\ntokens = 4\ndim = 8");
        assert_eq!(f.ops[0].flops, 5 * 32 * 5);

        let s = one("kind = \"shared_conv\"\nmaps = 10\nsize = [8, 8]\nkernel = 3\nkernels = 2\npadding = \"valid\"");
        let op = &s.ops[0];
        let c = op.conv.as_ref().unwrap();
        assert_eq!((c.jobs, c.inputs, c.kernels), (20, 10, 2));
        assert_eq!(op.flops, 2 * 20 * 36 * 9);
        assert_eq!(op.output_shape, [20, 6, 6]);
        assert_eq!(op.params, 2 * 9 + 2);
    }

    #[test]
    fn elementwise_pool_repeat_and_blocks() {
        let t = table(
            r#"
[[layer]]
name = "b"
kind = "block"
repeat = 2
  [[layer.layers]]
  name = "ln"
  kind = "layer_norm"
  shape = [3, 4]
  [[layer.layers]]
  name = "act"
  kind = "activation"
  shape = [3, 4]
  repeat = 2
[[layer]]
name = "pos"
kind = "add"
shape = [3, 4]
params = 12
[[layer]]
name = "mp"
kind = "pool"
mode = "max"
window = 2
shape = [2, 5, 5]
[[layer]]
name = "gap"
kind = "pool"
shape = [2, 5, 5]
[[layer]]
name = "cls"
kind = "pool"
mode = "class_token"
shape = [3, 4]
[[layer]]
name = "bn"
kind = "batch_norm"
shape = [2, 5, 5]
[[layer]]
name = "relu"
kind = "activation"
function = "relu"
shape = [2, 5, 5]
[[layer]]
name = "sm"
kind = "softmax"
shape = [3, 4]
"#,
        )
        .unwrap();
        let tr = t.to_trace();
        let names: Vec<&str> = tr.ops.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "b.0.ln",
                "b.0.act.0",
                "b.0.act.1",
                "b.1.ln",
                "b.1.act.0",
                "b.1.act.1",
                "pos",
                "mp",
                "gap",
                "cls",
                "bn",
                "relu",
                "sm"
            ]
        );
        let f: Vec<u64> = tr.ops.iter().map(|o| o.flops).collect();
        assert_eq!(f, [96, 96, 96, 96, 96, 96, 12, 32, 50, 0, 100, 50, 60]);
        assert_eq!(tr.ops[0].params, 8);
        assert_eq!(tr.ops[6].params, 12);
        assert_eq!(tr.ops[7].output_shape, [2, 2, 2]);
        assert_eq!(tr.ops[8].output_shape, [2]);
        assert_eq!(tr.ops[9].output_shape, [4]);
        assert_eq!(tr.ops[10].params, 4);
        let s = t.summary();
        assert_eq!((s.layers, s.ops, s.optical_ops, s.params), (13, 13, 0, 8 + 8 + 12 + 4));
        assert!(s.to_string().starts_with("t: 13 layers, 13 ops"), "{s}");
    }

    #[test]
    fn module_docs_example_parses() {
        let src = include_str!("layers.rs");
        let start = src.find("//! ```toml\n").unwrap() + "//! ```toml\n".len();
        let end = start + src[start..].find("//! ```\n").unwrap();
        let text: String = src[start..end]
            .lines()
            .map(|l| l.strip_prefix("//!").unwrap().strip_prefix(' ').unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let t = LayerTable::parse(&text, "docs").unwrap_or_else(|e| panic!("{e}"));
        let s = t.summary();
        // conv1 bn1 relu1 pool1, 2 × (norm1 attn filter residual), pool, head.
        assert_eq!((s.layers, s.ops), (14, 22));
        assert_eq!(s.optical_ops, 3);
        assert_eq!(s.optical_jobs, 3 * 16 + 2 * 16);
        let tr = t.to_trace();
        assert_eq!(tr.ops[0].output_shape, [16, 16, 16]);
        assert_eq!(tr.ops[3].output_shape, [16, 8, 8]);
        assert_eq!(tr.ops[5].name, "blocks.0.attn.qkv");
    }

    #[test]
    fn errors_name_file_line_layer_and_key() {
        let e = err("[[layer]]\nname = \"c\"\nkind = \"conv3d\"\n");
        assert!(e.starts_with("t.toml:4: layer 1 `c`: key `kind`"), "{e}");
        assert!(
            e.contains("unknown kind \"conv3d\"") && e.contains("conv2d, linear"),
            "{e}"
        );

        let e = err("[[layer]]\nname = \"c\"\nkind = \"linear\"\nin_features = 3\nout_features = 4\nstrid = 2\n");
        assert!(e.starts_with("t.toml:7: layer 1 `c`: key `strid`: unknown key"), "{e}");
        assert!(e.contains("tokens, in_features, out_features, bias"), "{e}");

        let e = err("[[layer]]\nname = \"a\"\nkind = \"softmax\"\nshape = [2]\n[[layer]]\nname = \"c\"\nkind = \"linear\"\nin_features = 3\n");
        assert!(e.contains("layer 2 `c`: key `out_features`: missing"), "{e}");

        let e = err("[[layer]]\nname = \"c\"\nkind = \"conv2d\"\ninput = [3, 32]\nout_channels = 4\nkernel = 3\n");
        assert!(
            e.contains("layer 1 `c`: key `input`: must be the input [C, H, W]"),
            "{e}"
        );
        assert!(e.contains("got 2 values"), "{e}");
        let e = err("[[layer]]\nname = \"c\"\nkind = \"add\"\nshape = [3, -1]\n");
        assert!(e.contains("key `shape`") && e.contains("got -1"), "{e}");
        let e = err("[[layer]]\nname = \"c\"\nkind = \"add\"\nshape = \"3x3\"\n");
        assert!(e.contains("key `shape`") && e.contains("got a string"), "{e}");

        let e = err("[[layer]]\nname = \"b\"\nkind = \"block\"\n[[layer.layers]]\nname = \"a\"\nkind = \"attention\"\ntokens = 4\ndim = 10\nheads = 3\n");
        assert!(
            e.starts_with("t.toml:10: layer 1 `b` > layer 1 `a`: key `heads`: must divide dim = 10"),
            "{e}"
        );

        let e = err("[[layer]]\nkind = \"add\"\n");
        assert!(e.contains("layer 1: key `name`: missing"), "{e}");
        let e = err("[[layer]]\nname = \"p\"\nkind = \"pool\"\nshape = [4, 4]\nwindow = 2\n");
        assert!(e.contains("key `shape`: a windowed pool needs [C, H, W]"), "{e}");
        let e = table("").unwrap_err().to_string();
        assert!(e.contains("top level: key `layer`: missing"), "{e}");
        let e = LayerTable::parse("name = \"t\"\nlayers = 3\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("top level: key `layers`: unknown key; valid keys for the top level: name, description, layer"),
            "{e}"
        );
        let e = LayerTable::parse("name = = 1\n", "t.toml").unwrap_err().to_string();
        assert!(e.starts_with("layer table t.toml:"), "{e}");
        let e = LayerTable::load("/nonexistent/x.toml").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/x.toml"), "{e}");
    }
}
