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
    // Gather: y[a] = Σ_j x[a − j]·k[j] over the taps j that keep a − j inside x.
    for (ay, out) in (y0..y1).zip(y.chunks_exact_mut(ow)) {
        let (jy0, jy1) = ((ay + 1).saturating_sub(h), kh.min(ay + 1));
        for (ax, o) in (x0..x1).zip(out.iter_mut()) {
            let (jx0, jx1) = ((ax + 1).saturating_sub(w), kw.min(ax + 1));
            let mut acc = T::zero();
            for jy in jy0..jy1 {
                let xr = &xs[(ay - jy) * w..(ay - jy + 1) * w];
                let kr = &ks[jy * kw..(jy + 1) * kw];
                for jx in jx0..jx1 {
                    acc += xr[ax - jx] * kr[jx];
                }
            }
            *o = acc;
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
    let (h, w) = x.dim();
    let (kh, kw) = k.dim();
    let (y0, y1) = mode.window(h, kh);
    let (x0, x1) = mode.window(w, kw);
    assert_eq!(g.dim(), (y1 - y0, x1 - x0), "conv2d_backward: gradient vs output shape");
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
    let mut dx = vec![T::zero(); h * w];
    let mut dk = vec![T::zero(); kh * kw];
    for iy in 0..h {
        let xr = &xs[iy * w..(iy + 1) * w];
        let dxr = &mut dx[iy * w..(iy + 1) * w];
        for jy in 0..kh {
            let fr = &full[(iy + jy) * fw..(iy + jy + 1) * fw];
            let kr = &ks[jy * kw..(jy + 1) * kw];
            let dkr = &mut dk[jy * kw..(jy + 1) * kw];
            for ix in 0..w {
                let (xv, f) = (xr[ix], &fr[ix..ix + kw]);
                let mut acc = T::zero();
                for ((&gv, &kv), d) in f.iter().zip(kr).zip(dkr.iter_mut()) {
                    acc += gv * kv;
                    *d += gv * xv;
                }
                dxr[ix] += acc;
            }
        }
    }
    (
        Array2::from_shape_vec((h, w), dx).expect("input-sized"),
        Array2::from_shape_vec((kh, kw), dk).expect("kernel-sized"),
    )
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
