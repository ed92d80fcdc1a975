//! # fourf-nn — networks on the optics (being built)
//!
//! Layers and models (ViT/DeiT, ConvShareViT, GFNet, SpectFormer, FNet), the
//! `Digital` and `Optical` backends and the `Trace` of every operation (issue 4).
//!
//! ## Files
//! - [`data`]: IDX reader (MNIST / Fashion-MNIST, raw or gzip), normalisation,
//!   batching.
//! - [`layers`]: the electronic layers in f32 — linear, LayerNorm, GELU, softmax,
//!   multi-head self-attention, MLP, patch and token embedding, pooling — each an
//!   `XxxConfig` that `init`s an `Xxx` from an explicit generator.
//!
//! Still to come: the optically mapped layers (ConvShareViT shared convolution,
//! correlation scores, GFNet global filter, FNet mixing), the backends, models,
//! the trace, safetensors weights and `fourf eval`.

#![warn(missing_docs)]

pub mod backend;
pub mod data;
pub mod layers;
pub mod models;
pub mod ops;
pub mod params;
pub mod spectral;
pub mod weights;
