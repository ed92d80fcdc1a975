//! # fourf-hw — latency and energy models
//!
//! A network is a [`trace::Trace`]: every op with its shapes, FLOPs, bytes, the
//! matrix products it is on a GPU and the 2-D convolutions it is on the optics.
//! `fourf-nn` emits one per forward pass; [`layers::LayerTable`] builds one from a
//! TOML description of any network. This crate depends on no other workspace
//! crate.
//!
//! ## Files
//! - [`trace`]: the trace types.
//! - [`layers`]: layer tables (TOML) → traces.
//! - [`optical`]: frames in closed form (the planner's tiling and guard bands),
//!   pass period, filter changes, co-processor roofline, energy, break-even rates.
//! - [`gpu`]: GPU presets and the per-op roofline, precision and batch, and
//!   measured throughputs that replace the model.

#![warn(missing_docs)]

pub mod gpu;
pub mod layers;
pub mod optical;
pub mod trace;

pub use gpu::{estimate, gpu_preset, GpuError, GpuEstimate, GpuMeasurements, GpuModel, GpuSpec, Precision, GPU_NAMES};
pub use layers::{LayerTable, LayerTableError, LayerTableSummary};
pub use optical::{frames_for, lens_frames, FrameUse, OpticalEstimate, OpticalTiming, RateKnob, Tiling};
pub use trace::{ConvMode, ConvSpec, Engine, Gemm, LensSpec, OpKind, OpticalUse, Trace, TraceOp, TraceTotals};
