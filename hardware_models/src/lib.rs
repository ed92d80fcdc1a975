//! # fourf-hw — latency and energy models (not yet built)
//!
//! This crate will hold the optical-machine timing and energy model and the GPU
//! roofline baselines (issue 5). It depends on no other workspace crate.
