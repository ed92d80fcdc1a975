//! The lens as an optical Fourier transform between its front and back focal
//! planes (Goodman, *Introduction to Fourier Optics*, 4th ed., §5.2):
//!
//! `U_F(u) = 1/(iλf) ∬ U(x) exp(−i2π x·u/(λf)) dx`.
//!
//! Discretised with `N` samples of pitch `Δx`, the back-focal-plane pitch is
//! `λf/(NΔx)`; power is conserved exactly (discrete Parseval).

use num_complex::Complex64 as C64;

use crate::fft::{shift_half, Fft2, Fft2Scratch};
use crate::field::Field;

/// Fourier-plane sample pitch `[y, x]` of a lens of focal length `f` for a field of
/// `shape` samples at `pitch_m`: `λf/(NΔx)` per axis.
pub fn fourier_pitch_m(shape: (usize, usize), pitch_m: [f64; 2], wavelength_m: f64, focal_length_m: f64) -> [f64; 2] {
    [
        wavelength_m * focal_length_m / (shape.0 as f64 * pitch_m[0]),
        wavelength_m * focal_length_m / (shape.1 as f64 * pitch_m[1]),
    ]
}

/// Centred discrete Fourier transform `fftshift(FFT(ifftshift(u)))` in place,
/// unnormalised, for even sides.
///
/// # Panics
/// If a side is odd or the plan's shape differs from `data`'s.
pub fn centred_fft(plan: &Fft2, data: &mut [C64], scratch: &mut Fft2Scratch, inverse: bool) {
    let (ny, nx) = plan.shape();
    assert!(ny % 2 == 0 && nx % 2 == 0, "centred_fft: sides {ny}×{nx} must be even");
    let mut tmp = vec![C64::new(0.0, 0.0); data.len()];
    shift_half(data, &mut tmp, ny, nx);
    if inverse {
        plan.inverse(&mut tmp, scratch);
    } else {
        plan.forward(&mut tmp, scratch);
    }
    shift_half(&tmp, data, ny, nx);
}

/// Propagates `field` from the front to the back focal plane of a thin lens of
/// focal length `focal_length_m` (the optical Fourier transform, with its
/// `1/(iλf)` factor and the output pitch `λf/(NΔx)`).
///
/// # Panics
/// If the field's sides are odd or differ from the plan's.
pub fn lens_transform(field: &Field, focal_length_m: f64, plan: &Fft2, scratch: &mut Fft2Scratch) -> Field {
    let shape = field.shape();
    assert_eq!(plan.shape(), shape, "lens_transform: plan shape");
    let mut data = field.data.as_standard_layout().into_owned();
    centred_fft(plan, data.as_slice_mut().expect("standard layout"), scratch, false);
    let scale = field.pitch_m[0] * field.pitch_m[1] / (C64::i() * field.wavelength_m * focal_length_m);
    data.mapv_inplace(|v| v * scale);
    Field::new(
        data,
        fourier_pitch_m(shape, field.pitch_m, field.wavelength_m, focal_length_m),
        field.wavelength_m,
    )
}
