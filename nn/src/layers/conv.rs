//! Single-channel 2-D convolution in any [`Real`] type, for the training path of
//! the convolutional models, and its backward pass.
//!
//! `conv2d(x, k, mode)` is the window `mode.window` of the full convolution
//! `y[a] = Σ_i x[i]·k[a − i]` (the convention of [`fourf_sim::direct_conv`]).
//! Backward, with `ḡ` the upstream gradient placed at its window in a zero
//! full-size map: `∂L/∂x[i] = Σ_a ḡ[a]·k[a − i]` and `∂L/∂k[j] = Σ_a ḡ[a]·x[a − j]`,
//! the `valid` correlations of `ḡ` with `k` and with `x`.

use fourf_sim::Mode;
use ndarray::{s, Array2, ArrayView2};

use super::Real;

/// `conv2d(x, k, mode)` (see the module docs).
///
/// # Panics
/// If an array is empty or `valid` is asked of an input smaller than the kernel.
pub fn conv2d<T: Real>(x: ArrayView2<T>, k: ArrayView2<T>, mode: Mode) -> Array2<T> {
    let (h, w) = x.dim();
    let (kh, kw) = k.dim();
    assert!(
        h > 0 && w > 0 && kh > 0 && kw > 0 && (mode != Mode::Valid || (h >= kh && w >= kw)),
        "conv2d: input {h}×{w}, kernel {kh}×{kw}, mode {mode:?}"
    );
    let (y0, y1) = mode.window(h, kh);
    let (x0, x1) = mode.window(w, kw);
    let mut y = Array2::zeros((y1 - y0, x1 - x0));
    // Scatter each input sample through the kernel: y[i + j] += x[i]·k[j], kept
    // where the output falls in the window.
    for ((iy, ix), &xv) in x.indexed_iter() {
        for ((jy, jx), &kv) in k.indexed_iter() {
            let (ay, ax) = (iy + jy, ix + jx);
            if ay >= y0 && ay < y1 && ax >= x0 && ax < x1 {
                y[[ay - y0, ax - x0]] += xv * kv;
            }
        }
    }
    y
}

/// The backward pass of [`conv2d`]: `(∂L/∂x, ∂L/∂k)` for the upstream gradient `g`
/// of the output.
///
/// # Panics
/// If `g` does not have the output's shape.
pub fn conv2d_backward<T: Real>(
    x: ArrayView2<T>,
    k: ArrayView2<T>,
    mode: Mode,
    g: ArrayView2<T>,
) -> (Array2<T>, Array2<T>) {
    let (h, w) = x.dim();
    let (kh, kw) = k.dim();
    let (y0, y1) = mode.window(h, kh);
    let (x0, x1) = mode.window(w, kw);
    assert_eq!(g.dim(), (y1 - y0, x1 - x0), "conv2d_backward: gradient vs output shape");
    let mut full = Array2::zeros((h + kh - 1, w + kw - 1));
    full.slice_mut(s![y0..y1, x0..x1]).assign(&g);
    let mut dx = Array2::zeros((h, w));
    let mut dk = Array2::zeros((kh, kw));
    for ((iy, ix), &xv) in x.indexed_iter() {
        let mut acc = T::zero();
        for ((jy, jx), &kv) in k.indexed_iter() {
            let gv = full[[iy + jy, ix + jx]];
            acc += gv * kv;
            dk[[jy, jx]] += gv * xv;
        }
        dx[[iy, ix]] = acc;
    }
    (dx, dk)
}

/// `Σ a ⊙ b`: the `valid` correlation of two maps of one shape (one number).
///
/// # Panics
/// If the shapes differ.
pub fn map_dot<T: Real>(a: ArrayView2<T>, b: ArrayView2<T>) -> T {
    assert_eq!(a.dim(), b.dim(), "map_dot: shapes differ");
    a.iter().zip(b).fold(T::zero(), |s, (&x, &y)| s + x * y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fourf_sim::{direct_conv, Op};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn equals_direct_conv_in_every_mode() {
        let mut rng = StdRng::seed_from_u64(1);
        for (h, w, kh, kw) in [(6, 5, 3, 3), (8, 8, 5, 2), (4, 7, 4, 1), (3, 3, 3, 3)] {
            let x = Array2::from_shape_simple_fn((h, w), || rng.random::<f64>() - 0.5);
            let k = Array2::from_shape_simple_fn((kh, kw), || rng.random::<f64>() - 0.5);
            for mode in [Mode::Valid, Mode::Same, Mode::Full] {
                let a = conv2d(x.view(), k.view(), mode);
                let b = direct_conv(x.view(), k.view(), mode, Op::Convolution);
                assert_eq!(a.dim(), b.dim());
                assert!((&a - &b).iter().all(|v| v.abs() < 1e-12), "{mode:?}");
            }
        }
    }
}
