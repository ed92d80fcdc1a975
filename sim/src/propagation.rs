//! Free-space propagation by the band-limited angular spectrum method
//! (K. Matsushima and T. Shimobaba, "Band-limited angular spectrum method for
//! numerical simulation of free-space propagation in far and near fields",
//! Opt. Express 17, 19662 (2009)).
//!
//! `U(z) = F⁻¹[ F[U(0)] · H(ν) ]`, `H = exp(i2πz·√(1/λ² − |ν|²))`, evanescent
//! components decaying as `exp(−2π|z|·√(|ν|² − 1/λ²))`. The transfer function is
//! zeroed beyond `ν_lim = 1/(λ·√((2Δν·z)² + 1))` per axis, where `Δν` is the
//! frequency step of the (zero-padded) window: beyond it the sampled chirp aliases.
//! Zero padding to twice the window keeps the circular convolution of the FFT from
//! wrapping light back in from the opposite edge.

use ndarray::{s, Array2};
use num_complex::Complex64 as C64;

use crate::fft::{signed_index, Fft2, Fft2Scratch};
use crate::field::Field;

/// Angular-spectrum transfer function at spatial frequency `(ν_y, ν_x)` (1/m) for
/// distance `z_m`, zero beyond the band limits `nu_limit` `[y, x]`.
pub fn transfer(nu_y: f64, nu_x: f64, wavelength_m: f64, z_m: f64, nu_limit: [f64; 2]) -> C64 {
    if nu_y.abs() > nu_limit[0] || nu_x.abs() > nu_limit[1] {
        return C64::new(0.0, 0.0);
    }
    let k2 = 1.0 / (wavelength_m * wavelength_m) - nu_y * nu_y - nu_x * nu_x;
    let two_pi = 2.0 * std::f64::consts::PI;
    if k2 >= 0.0 {
        C64::from_polar(1.0, two_pi * z_m * k2.sqrt())
    } else {
        C64::new((-two_pi * z_m.abs() * (-k2).sqrt()).exp(), 0.0)
    }
}

/// Matsushima–Shimobaba band limit `[y, x]` for a window of `extent_m` `[y, x]`.
pub fn band_limit(extent_m: [f64; 2], wavelength_m: f64, z_m: f64) -> [f64; 2] {
    extent_m.map(|w| {
        let dnu = 1.0 / w;
        1.0 / (wavelength_m * ((2.0 * dnu * z_m).powi(2) + 1.0).sqrt())
    })
}

/// Signed frequency of FFT bin `k` of `n` at sample pitch `pitch_m`.
pub fn fft_frequency(k: usize, n: usize, pitch_m: f64) -> f64 {
    signed_index(k, n) / (n as f64 * pitch_m)
}

/// A planned propagation over a fixed distance for fields of one shape and pitch.
#[derive(Debug, Clone)]
pub struct AngularSpectrum {
    shape: (usize, usize),
    padded: (usize, usize),
    pitch_m: [f64; 2],
    wavelength_m: f64,
    z_m: f64,
    plan: Fft2,
    /// Transfer function in FFT order, including the `1/(ny·nx)` of the inverse.
    transfer: Array2<C64>,
}

impl AngularSpectrum {
    /// Plans propagation by `z_m` of `shape` fields with `pitch_m` `[y, x]` at
    /// `wavelength_m`; `pad` doubles the window with zeros (recommended).
    pub fn new(shape: (usize, usize), pitch_m: [f64; 2], wavelength_m: f64, z_m: f64, pad: bool) -> Self {
        let f = if pad { 2 } else { 1 };
        let padded = (shape.0 * f, shape.1 * f);
        let extent = [padded.0 as f64 * pitch_m[0], padded.1 as f64 * pitch_m[1]];
        let lim = band_limit(extent, wavelength_m, z_m);
        let norm = 1.0 / (padded.0 * padded.1) as f64;
        let transfer = Array2::from_shape_fn(padded, |(ky, kx)| {
            let nu_y = fft_frequency(ky, padded.0, pitch_m[0]);
            let nu_x = fft_frequency(kx, padded.1, pitch_m[1]);
            transfer(nu_y, nu_x, wavelength_m, z_m, lim) * norm
        });
        Self {
            shape,
            padded,
            pitch_m,
            wavelength_m,
            z_m,
            plan: Fft2::new(padded.0, padded.1),
            transfer,
        }
    }

    /// Distance this plan propagates.
    pub fn distance_m(&self) -> f64 {
        self.z_m
    }

    /// Scratch for [`AngularSpectrum::apply`].
    pub fn make_scratch(&self) -> Fft2Scratch {
        self.plan.make_scratch(true)
    }

    /// Propagates `field` (same shape, pitch and wavelength as planned).
    ///
    /// # Panics
    /// If the field does not match the plan.
    pub fn apply(&self, field: &Field, scratch: &mut Fft2Scratch) -> Field {
        assert_eq!(field.shape(), self.shape, "AngularSpectrum::apply: shape");
        assert_eq!(field.pitch_m, self.pitch_m, "AngularSpectrum::apply: pitch");
        assert_eq!(
            field.wavelength_m, self.wavelength_m,
            "AngularSpectrum::apply: wavelength"
        );
        let (ny, nx) = self.shape;
        // The field sits in the centre of the padded window, keeping the optical
        // axis at (N/2, N/2) of both grids.
        let (oy, ox) = ((self.padded.0 - ny) / 2, (self.padded.1 - nx) / 2);
        let mut work = Array2::<C64>::zeros(self.padded);
        work.slice_mut(s![oy..oy + ny, ox..ox + nx]).assign(&field.data);
        let buf = work.as_slice_mut().expect("standard layout");
        self.plan.forward(buf, scratch);
        buf.iter_mut().zip(self.transfer.iter()).for_each(|(v, h)| *v *= h);
        self.plan.inverse(buf, scratch);
        Field::new(
            work.slice(s![oy..oy + ny, ox..ox + nx]).to_owned(),
            self.pitch_m,
            self.wavelength_m,
        )
    }
}
