//! Real devices of the 4f machine and their non-idealities.
//!
//! ## Files
//! - [`slm`]: spatial light modulators — modulation kind, bit depth or a measured
//!   level table, fill factor (by oversampling), pixel crosstalk.
//! - [`laser`]: wavelength, power, relative intensity noise.
//! - [`detection`]: detection schemes and signed-input encodings, with their
//!   exposure counts.
//! - [`camera`]: the detector — photo-electrons, shot noise, dark current, read
//!   noise, full well, conversion gain, bias, ADC, fixed-pattern non-uniformity.
//! - [`poisson`]: exact, fast Poisson draws (the camera's shot noise).
//! - [`timing`]: the host link, pipelining, device powers and the electronic
//!   co-processor (for the latency and energy models; the simulation ignores it).
//!
//! Every random draw takes an explicit `&mut R where R: rand::Rng`; nothing here
//! owns a global generator.

pub mod camera;
pub mod detection;
pub mod laser;
pub mod poisson;
pub mod slm;
pub mod timing;
