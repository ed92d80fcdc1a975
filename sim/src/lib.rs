//! # fourf-sim — wave optics of the 4f machine
//!
//! A 4f machine (input SLM → lens → Fourier-plane filter → lens → output plane)
//! computes a convolution in one frame of light. This crate simulates it and packs
//! convolution jobs into frames.
//!
//! ## Files
//! - [`field`]: [`Field`], sampled complex field with pitch and wavelength.
//! - [`fastmath`]: rounding and `atan2` for per-sample hot paths.
//! - [`fft`]: 2-D FFT plans with caller-owned scratch, transposes, shifts.
//! - [`lens`]: the lens as an optical Fourier transform.
//! - [`lens_dft`]: FNet's mixing on a lens, a 2f transform read at its Fourier
//!   plane.
//! - [`propagation`]: band-limited angular-spectrum propagation.
//! - [`pupil`]: circular stop and Zernike aberrations.
//! - [`machine`]: [`MachineConfig`] and the planned machine [`FourF`].
//! - [`conv`]: [`ConvJob`], modes, and the direct reference convolution.
//! - [`readout`]: one frame through the devices: signed-input passes, the input
//!   SLM, the optics, the camera and the detection scheme.
//! - [`devices`]: SLM, camera, laser and detection models.
//! - [`cache`]: filters and plans a machine keeps between calls.
//! - [`planner`]: packs jobs into frames with guard bands and unpacks outputs.
//! - [`presets`]: named machines.
//!
//! ## Conventions (each one tested)
//! - SI units in `f64`, the unit in the name (`pitch_m`, `wavelength_m`). Arrays are
//!   `[y, x]`, row-major. The optical axis is at sample `(ny/2, nx/2)`; frame sides
//!   are even.
//! - Lens: `U_F(u) = 1/(iλf) ∬ U(x) exp(−i2π x·u/(λf)) dx`; with `N` samples of pitch
//!   `Δx` the Fourier pitch is `λf/(NΔx)` (same-pitch condition `Δx² = λf/N`). Power
//!   is conserved (Parseval).
//! - A 4f system with an all-pass filter returns the input point-reflected,
//!   magnified by `−f2/f1`, power conserved. The flip is kept in the simulated field
//!   and undone only when a convolution result is read out.
//! - A filter SLM whose pitch or position differs from the Fourier grid is
//!   resampled onto it (area-weighted overlap of 100 %-fill pixels).
//! - Pupil of radius `a` passes `|ν| ≤ a/(λf)` (coherent cutoff).
//! - Linear convolution needs guard bands between tiles; how much depends on which
//!   outputs are kept (`full` K−1, `same` ⌈(K−1)/2⌉, `valid` none); the planner
//!   computes them, and a circular (GFNet-style) filter is not what it computes.
//! - The frame is periodic: light leaving one edge of the simulated window enters
//!   at the other, as the pixelated filter's sampling of the spectrum makes the
//!   physical output periodic with the window's width.

#![warn(missing_docs)]

pub mod cache;
pub mod channels;
pub mod conv;
pub mod devices;
pub mod error;
pub mod fastmath;
pub mod fft;
pub mod field;
pub mod files;
pub mod lens;
pub mod lens_dft;
pub mod machine;
pub mod planner;
pub mod presets;
pub mod propagation;
pub mod pupil;
pub mod readout;
pub mod rng;

pub use channels::{channel_layout, ChannelLayout, ChannelPlan, ChannelShape};
pub use conv::{direct_conv, ConvJob, Mode, Op};
pub use error::SimError;
pub use field::Field;
pub use machine::{CacheCounts, FourF, FrameScratch, MachineConfig, Mask};
pub use planner::{Execution, Plan, Planner, PlannerConfig};
