//! # fourf-nn — networks on the optics (not yet built)
//!
//! This crate will hold the layers and models (ViT/DeiT, ConvShareViT, GFNet,
//! SpectFormer, FNet), the `Digital` and `Optical` backends and the `Trace` of
//! every operation (issue 4). It is part of the workspace now so that the
//! dependency direction of DESIGN.md §2 (`nn` → `sim`) is fixed from the start.
pub mod layers;
pub mod data;
