//! [`Field`]: complex samples of a scalar optical field on a regular grid, with
//! the bookkeeping that gives them physical meaning (sample pitch, wavelength).

use ndarray::Array2;
use num_complex::Complex64 as C64;

/// A sampled monochromatic scalar field.
///
/// Samples are `[y, x]`, row-major. The optical axis passes through sample
/// `(ny/2, nx/2)` (integer division), so sample `(i, j)` sits at
/// `((i − ny/2)·pitch_m[0], (j − nx/2)·pitch_m[1])`. Power is
/// `Σ|u|²·pitch_y·pitch_x` (field amplitude in √W/m²).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Complex samples, `[y, x]`.
    pub data: Array2<C64>,
    /// Sample pitch `[y, x]` in metres.
    pub pitch_m: [f64; 2],
    /// Vacuum wavelength in metres.
    pub wavelength_m: f64,
}

impl Field {
    /// Wraps samples with their pitch `[y, x]` and wavelength.
    ///
    /// # Panics
    /// If a pitch or the wavelength is not finite and positive.
    pub fn new(data: Array2<C64>, pitch_m: [f64; 2], wavelength_m: f64) -> Self {
        assert!(
            pitch_m.iter().all(|p| p.is_finite() && *p > 0.0),
            "Field::new: pitch {pitch_m:?} m must be finite and positive"
        );
        assert!(
            wavelength_m.is_finite() && wavelength_m > 0.0,
            "Field::new: wavelength {wavelength_m} m must be finite and positive"
        );
        Self {
            data,
            pitch_m,
            wavelength_m,
        }
    }

    /// A dark field of `ny × nx` samples.
    pub fn zeros(ny: usize, nx: usize, pitch_m: [f64; 2], wavelength_m: f64) -> Self {
        Self::new(Array2::zeros((ny, nx)), pitch_m, wavelength_m)
    }

    /// `(ny, nx)`.
    pub fn shape(&self) -> (usize, usize) {
        self.data.dim()
    }

    /// Optical power `Σ|u|²·Δy·Δx`.
    pub fn power(&self) -> f64 {
        self.data.iter().map(|v| v.norm_sqr()).sum::<f64>() * self.pitch_m[0] * self.pitch_m[1]
    }

    /// Intensity `|u|²` of every sample.
    pub fn intensity(&self) -> Array2<f64> {
        self.data.mapv(|v| v.norm_sqr())
    }

    /// Physical coordinate in metres of row `i` (`axis = 0`) or column `j` (`axis = 1`).
    pub fn coord_m(&self, axis: usize, index: usize) -> f64 {
        let n = self.data.shape()[axis];
        (index as f64 - (n / 2) as f64) * self.pitch_m[axis]
    }

    /// Full width `[y, x]` of the sampled window in metres.
    pub fn extent_m(&self) -> [f64; 2] {
        let (ny, nx) = self.shape();
        [ny as f64 * self.pitch_m[0], nx as f64 * self.pitch_m[1]]
    }
}
