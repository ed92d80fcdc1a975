//! Single-channel 2-D convolution in any [`Real`] type, for the training path of
//! the convolutional models, and its backward pass.
//!
//! `conv2d(x, k, mode)` is the window `mode.window` of the full convolution
//! `y[a] = Σ_i x[i]·k[a − i]` (the convention of [`fourf_sim::direct_conv`]).
//! Backward, with `ḡ` the upstream gradient placed at its window in a zero
//! full-size map: `∂L/∂x[i] = Σ_a ḡ[a]·k[a − i]` and `∂L/∂k[j] = Σ_a ḡ[a]·x[a − j]`,
//! the `valid` correlations of `ḡ` with `k` and with `x`.

use fourf_sim::Mode;
use ndarray::{Array2, ArrayView2};

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
    let (xs, ks) = (x.as_standard_layout(), k.as_standard_layout());
    let (xs, ks) = (
        xs.as_slice().expect("standard layout"),
        ks.as_slice().expect("standard layout"),
    );
    let ow = x1 - x0;
    let mut y = vec![T::zero(); (y1 - y0) * ow];
    // y[a] = Σ_j x[a − j]·k[j] over the taps j that keep a − j inside x, as one
    // contiguous multiply–add per (output row, tap): the row's outputs ax with
    // 0 ≤ ax − jx < w take k[jy, jx]·x[ay − jy, ax − jx].
    for (ay, out) in (y0..y1).zip(y.chunks_exact_mut(ow)) {
        for jy in (ay + 1).saturating_sub(h)..kh.min(ay + 1) {
            let xr = &xs[(ay - jy) * w..(ay - jy + 1) * w];
            for (jx, &kv) in ks[jy * kw..(jy + 1) * kw].iter().enumerate() {
                let (a0, a1) = (x0.max(jx), x1.min(w + jx));
                if a0 < a1 {
                    axpy(&mut out[a0 - x0..a1 - x0], kv, &xr[a0 - jx..a1 - jx]);
                }
            }
        }
    }
    Array2::from_shape_vec((y1 - y0, ow), y).expect("window-sized")
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
    let mut dx = Array2::zeros(x.dim());
    let mut dk = Array2::zeros(k.dim());
    conv2d_backward_add(x, k, mode, g, &mut dx, &mut dk);
    (dx, dk)
}

/// [`conv2d_backward`] added to `dx` and `dk` (which a layer sums over many
/// convolutions), without allocating the two results.
///
/// # Panics
/// If `g` does not have the output's shape, or `dx`, `dk` those of `x`, `k`.
pub fn conv2d_backward_add<T: Real>(
    x: ArrayView2<T>,
    k: ArrayView2<T>,
    mode: Mode,
    g: ArrayView2<T>,
    dx: &mut Array2<T>,
    dk: &mut Array2<T>,
) {
    let (h, w) = x.dim();
    let (kh, kw) = k.dim();
    let (y0, y1) = mode.window(h, kh);
    let (x0, x1) = mode.window(w, kw);
    assert_eq!(g.dim(), (y1 - y0, x1 - x0), "conv2d_backward: gradient vs output shape");
    assert_eq!(
        (dx.dim(), dk.dim()),
        (x.dim(), k.dim()),
        "conv2d_backward: result shapes"
    );
    let fw = w + kw - 1;
    let mut full = vec![T::zero(); (h + kh - 1) * fw];
    for (gy, row) in g.outer_iter().enumerate() {
        let dst = &mut full[(y0 + gy) * fw + x0..(y0 + gy) * fw + x1];
        dst.iter_mut().zip(row.iter()).for_each(|(d, &v)| *d = v);
    }
    let (xs, ks) = (x.as_standard_layout(), k.as_standard_layout());
    let (xs, ks) = (
        xs.as_slice().expect("standard layout"),
        ks.as_slice().expect("standard layout"),
    );
    let dx = dx.as_slice_mut().expect("a new or standard-layout array");
    let dk = dk.as_slice_mut().expect("a new or standard-layout array");
    // ∂L/∂x[i] = Σ_j ḡ[i + j]·k[j] (one multiply–add per input row and tap) and
    // ∂L/∂k[j] = Σ_i ḡ[i + j]·x[i] (one dot product per tap and input row).
    for iy in 0..h {
        let xr = &xs[iy * w..(iy + 1) * w];
        let dxr = &mut dx[iy * w..(iy + 1) * w];
        for jy in 0..kh {
            let fr = &full[(iy + jy) * fw..(iy + jy + 1) * fw];
            for jx in 0..kw {
                let f = &fr[jx..jx + w];
                axpy(dxr, ks[jy * kw + jx], f);
                dk[jy * kw + jx] += dot(f, xr);
            }
        }
    }
}

/// `y += a·x` for maps of one shape (`ArrayBase::scaled_add` without its
/// per-call overhead on small maps).
///
/// # Panics
/// If the shapes differ.
pub fn map_axpy<T: Real>(y: &mut Array2<T>, a: T, x: ArrayView2<T>) {
    assert_eq!(y.dim(), x.dim(), "map_axpy: shapes differ");
    match (y.as_slice_mut(), x.as_slice()) {
        (Some(y), Some(x)) => axpy(y, a, x),
        _ => y.scaled_add(a, &x),
    }
}

/// `Σ a ⊙ b`: the `valid` correlation of two maps of one shape (one number).
///
/// # Panics
/// If the shapes differ.
pub fn map_dot<T: Real>(a: ArrayView2<T>, b: ArrayView2<T>) -> T {
    assert_eq!(a.dim(), b.dim(), "map_dot: shapes differ");
    match (a.as_slice(), b.as_slice()) {
        (Some(a), Some(b)) => dot(a, b),
        _ => a.iter().zip(b).fold(T::zero(), |s, (&x, &y)| s + x * y),
    }
}

/// `y += a·x` over two slices of one length.
fn axpy<T: Real>(y: &mut [T], a: T, x: &[T]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += a * v;
    }
}

/// `Σ a·b` over two slices of one length, in four interleaved partial sums (which
/// the compiler keeps in vector registers) added at the end.
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(T::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
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

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(2);
        for (h, w, kh, kw) in [(6, 5, 3, 3), (5, 8, 2, 4), (3, 3, 3, 3)] {
            let x = Array2::from_shape_simple_fn((h, w), || rng.random::<f64>() - 0.5);
            let k = Array2::from_shape_simple_fn((kh, kw), || rng.random::<f64>() - 0.5);
            for mode in [Mode::Valid, Mode::Same, Mode::Full] {
                let out = conv2d(x.view(), k.view(), mode);
                let g = out.mapv(|_| rng.random::<f64>() - 0.5);
                let loss = |x: &Array2<f64>, k: &Array2<f64>| (conv2d(x.view(), k.view(), mode) * &g).sum();
                let (dx, dk) = conv2d_backward(x.view(), k.view(), mode, g.view());
                let eps = 1e-6;
                for (arr, grad, is_x) in [(&x, &dx, true), (&k, &dk, false)] {
                    for idx in 0..arr.len() {
                        let (mut p, mut m) = (arr.clone(), arr.clone());
                        let i = (idx / arr.ncols(), idx % arr.ncols());
                        p[i] += eps;
                        m[i] -= eps;
                        let fd = if is_x {
                            (loss(&p, &k) - loss(&m, &k)) / (2.0 * eps)
                        } else {
                            (loss(&x, &p) - loss(&x, &m)) / (2.0 * eps)
                        };
                        assert!(
                            (fd - grad[i]).abs() <= 1e-8 * (1.0 + fd.abs()),
                            "{mode:?} {is_x} {i:?}: {fd} vs {}",
                            grad[i]
                        );
                    }
                }
            }
        }
    }
}
