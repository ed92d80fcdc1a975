//! # fourf-hw — latency and energy models
//!
//! This crate holds the [`trace::Trace`] that networks emit, and (issue 5) the
//! optical-machine timing and energy model and the GPU roofline baselines. It
//! depends on no other workspace crate.

#![warn(missing_docs)]

pub mod gpu;
pub mod layers;
pub mod optical;
pub mod trace;

pub use gpu::{estimate, gpu_preset, GpuError, GpuEstimate, GpuMeasurements, GpuModel, GpuSpec, Precision, GPU_NAMES};
pub use layers::{LayerTable, LayerTableError, LayerTableSummary};
pub use trace::{ConvMode, ConvSpec, Engine, Gemm, OpKind, OpticalUse, Trace, TraceOp, TraceTotals};
