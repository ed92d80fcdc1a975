//! # fourf-nn — networks on the optics
//!
//! Layers and models (ViT/DeiT, ConvShareViT, GFNet, SpectFormer, FNet), the
//! `Digital` and `Optical` backends and the [`fourf_hw::Trace`] of every operation.
//!
//! A model runs one image at a time through a [`backend::Forward`] context:
//! electronic ops run in f32 and are recorded; every 2-D convolution, correlation
//! and spectral filter is submitted as a [`backend::ConvBatch`], which the digital
//! backend convolves exactly and the optical backend packs into frames of the
//! simulated 4f machine (`fourf_sim::Planner`), with its device and noise models.
//!
//! ## Files
//! - [`data`]: IDX reader (MNIST / Fashion-MNIST, raw or gzip), normalisation,
//!   batching.
//! - [`layers`]: the electronic layers in f32 — linear, LayerNorm, GELU, softmax,
//!   multi-head self-attention, MLP, patch and token embedding, pooling — each an
//!   `XxxConfig` that `init`s an `Xxx` from an explicit generator.
//! - [`spectral`]: GFNet's global filter and FNet's Fourier mixing (exact), and
//!   the layout of a circular filter on linear optics ([`spectral::SpectralEmulation`]).
//! - [`backend`]: [`backend::Backend`] (`Digital`, `Optical`), the per-image
//!   [`backend::Forward`] context and its convolution batches.
//! - [`ops`]: traced electronic ops (linear, LayerNorm, GELU, softmax, attention,
//!   MLP) and their FLOP conventions.
//! - [`models`]: [`models::ConvShareVit`], [`models::Transformer`] (ViT, GFNet,
//!   SpectFormer, FNet), model files and presets.
//! - [`params`]: the [`params::Parameters`] visitor with PyTorch-style names.
//! - [`weights`]: safetensors load and save ([`weights::TensorStore`]).

#![warn(missing_docs)]

pub mod backend;
pub mod data;
pub mod layers;
pub mod models;
pub mod ops;
pub mod params;
pub mod spectral;
pub mod surrogate;
pub mod train;
pub mod weights;
