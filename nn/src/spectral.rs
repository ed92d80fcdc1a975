//! Spectral token mixers: the GFNet global filter and FNet Fourier mixing, computed
//! exactly in the digital domain, and the mapping of the global filter onto a 4f
//! machine (which convolves *linearly*, not circularly).
//!
//! ## Global filter (GFNet, Rao et al. 2021)
//!
//! Tokens `x` of shape `[N, C]` with `N = a·b` lie on a row-major `a × b` grid
//! (token index `y·b + x`). Per channel, GFNet's `GlobalFilter` computes
//!
//! ```text
//! y = irfft2(rfft2(x, norm='ortho') ⊙ W, s=(a, b), norm='ortho')
//! ```
//!
//! with a learned complex filter `W` of `a × (b/2+1)` bins per channel, stored as
//! `complex_weight` `[a, b/2+1, C, 2]` (real, imaginary). `irfft2` follows PyTorch's
//! C2R semantics: a complex inverse along the grid rows (axis 0), then a real inverse
//! along axis 1 that reads only the real part of the self-conjugate columns (column 0
//! and, for even `b`, column `b/2`). Because the input is real this is exactly a
//! circular convolution over the grid, `y_c = x_c ⊛ k_c`, with the real kernel
//! `k_c = irfft2(W_c)` under the standard `1/(a·b)` backward normalisation
//! ([`GlobalFilter::kernels`]).
//!
//! ## On a 4f machine
//!
//! A 4f system multiplies spectra of the *zero-padded* tile, i.e. it computes linear
//! convolution. [`emulation_job`] turns one channel into a linear convolution that
//! [`fourf_sim::direct_conv`] (or the optical machine) runs:
//! [`SpectralEmulation::Circular`] reproduces GFNet exactly by wrap-extending the
//! input, [`SpectralEmulation::ZeroPadded`] is what a lens does to the bare tile and
//! loses the wrapped-around contributions.
//!
//! ## FNet (Lee-Thorp et al. 2021)
//!
//! [`fourier_mix`] is `Re(fft2(x))` over `[tokens, hidden]`, unnormalised
//! (`jnp.fft.fftn(x).real`).

use std::sync::Arc;

use fourf_sim::fft::Fft2;
use fourf_sim::Mode;
use ndarray::{Array2, Array3, Array4, ArrayView2, ArrayViewMutD};
use num_complex::Complex64 as C64;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use rustfft::FftDirection;
use serde::{Deserialize, Serialize};

use crate::layers::{LayerError, Real};
use crate::params::{join, Parameters};

fn default_init_std() -> f32 {
    0.02
}

/// Configuration of a [`GlobalFilter`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalFilterConfig {
    /// Channels `C` (≥ 1).
    pub dim: usize,
    /// Grid height `a`, tokens per column (≥ 1).
    pub grid_h: usize,
    /// Grid width `b`, tokens per row (≥ 1); the filter has `b/2 + 1` columns.
    pub grid_w: usize,
    /// Standard deviation of the normal initialisation of the filter's real and
    /// imaginary parts (default `0.02`, as GFNet's `torch.randn(...) * 0.02`).
    #[serde(default = "default_init_std")]
    pub init_std: f32,
}

impl GlobalFilterConfig {
    /// `dim` channels on an `grid_h × grid_w` grid, initialisation std `0.02`.
    pub fn new(dim: usize, grid_h: usize, grid_w: usize) -> Self {
        Self {
            dim,
            grid_h,
            grid_w,
            init_std: default_init_std(),
        }
    }

    /// With another initialisation standard deviation.
    pub fn with_init_std(mut self, init_std: f32) -> Self {
        self.init_std = init_std;
        self
    }

    /// `Err` if a size is zero or `init_std` is not finite and positive.
    pub fn validate(&self) -> Result<(), LayerError> {
        crate::layers::require_positive("global_filter.dim", self.dim)?;
        crate::layers::require_positive("global_filter.grid_h", self.grid_h)?;
        crate::layers::require_positive("global_filter.grid_w", self.grid_w)?;
        if !(self.init_std.is_finite() && self.init_std > 0.0) {
            return Err(LayerError::InvalidConfig {
                key: "global_filter.init_std".into(),
                value: self.init_std.to_string(),
                valid: "must be finite and > 0".into(),
            });
        }
        Ok(())
    }

    /// A filter whose real and imaginary parts are drawn from `N(0, init_std²)`
    /// (not truncated, as GFNet).
    pub fn init<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<GlobalFilter, LayerError> {
        self.validate()?;
        let normal = Normal::new(0.0f32, self.init_std).expect("init_std validated > 0");
        let complex_weight =
            Array4::from_shape_simple_fn((self.grid_h, self.grid_w / 2 + 1, self.dim, 2), || normal.sample(rng));
        Ok(GlobalFilter {
            complex_weight,
            grid_w: self.grid_w,
        })
    }
}

/// GFNet's global filter: a learned complex filter per channel applied in the 2-D
/// Fourier domain of the token grid (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalFilter<T = f32> {
    /// The filter `[a, b/2+1, C, 2]`: real and imaginary part of bin `(u, v)` of
    /// channel `c` at `[u, v, c, 0]` and `[u, v, c, 1]` (GFNet's layout).
    pub complex_weight: Array4<T>,
    /// Grid width `b` (not recoverable from `b/2 + 1`).
    grid_w: usize,
}

impl GlobalFilter {
    /// A filter from a given `complex_weight` `[a, b/2+1, C, 2]` for a grid `grid_w`
    /// wide (e.g. loaded from a file).
    pub fn from_weights(complex_weight: Array4<f32>, grid_w: usize) -> Result<Self, LayerError> {
        let (a, w, c, two) = complex_weight.dim();
        let expected = vec![a.max(1), grid_w / 2 + 1, c.max(1), 2];
        if a == 0 || c == 0 || grid_w == 0 || w != grid_w / 2 + 1 || two != 2 {
            return Err(LayerError::WeightShape {
                tensor: "complex_weight".into(),
                got: vec![a, w, c, two],
                expected,
            });
        }
        Ok(Self { complex_weight, grid_w })
    }
}

impl<T: Real> GlobalFilter<T> {
    /// Channels `C`.
    pub fn dim(&self) -> usize {
        self.complex_weight.dim().2
    }

    /// The token grid `(a, b)`.
    pub fn grid(&self) -> (usize, usize) {
        (self.complex_weight.dim().0, self.grid_w)
    }

    /// Panics unless `complex_weight` still has the shape of the grid.
    fn check_weight(&self) {
        let (a, b) = self.grid();
        let d = self.complex_weight.dim();
        assert!(
            d.1 == b / 2 + 1 && d.3 == 2,
            "GlobalFilter: complex_weight {:?} does not fit grid {a}×{b} (expected [{a}, {}, C, 2])",
            d,
            b / 2 + 1
        );
    }

    /// Bin `(u, v)` of channel `c` as a complex number.
    fn bin(&self, u: usize, v: usize, c: usize) -> C64 {
        let w = &self.complex_weight;
        C64::new(w[[u, v, c, 0]].as_f64(), w[[u, v, c, 1]].as_f64())
    }

    /// Filters tokens `x` `[a·b, C]` (row-major grid) exactly as GFNet:
    /// `irfft2(rfft2(x, norm='ortho') ⊙ W, s=(a, b), norm='ortho')` per channel,
    /// computed in `f64`.
    ///
    /// # Panics
    /// If `x` is not `[a·b, C]`.
    pub fn forward(&self, x: ArrayView2<T>) -> Array2<T> {
        self.check_weight();
        let (a, b) = self.grid();
        let c_dim = self.dim();
        assert!(
            x.dim() == (a * b, c_dim),
            "GlobalFilter::forward: input {:?} does not match [a·b, C] = [{}, {c_dim}] (grid {a}×{b})",
            x.dim(),
            a * b
        );
        let mut plans = Plans::new(a, b);
        let h = b / 2 + 1;
        let scale = 1.0 / (a * b) as f64; // ortho forward and inverse: 1/√(ab) each
        let mut grid = vec![C64::new(0.0, 0.0); a * b];
        let mut half = vec![C64::new(0.0, 0.0); h * a];
        let mut y = Array2::<T>::zeros((a * b, c_dim));
        for c in 0..c_dim {
            for (g, &v) in grid.iter_mut().zip(x.column(c)) {
                *g = C64::new(v.as_f64(), 0.0);
            }
            plans.run(Pass::RowForward, &mut grid);
            // Keep columns 0..=b/2 (the rfft2 half), transposed: half[v·a + u].
            for v in 0..h {
                for u in 0..a {
                    half[v * a + u] = grid[u * b + v];
                }
            }
            plans.run(Pass::ColForward, &mut half);
            for v in 0..h {
                for u in 0..a {
                    half[v * a + u] *= self.bin(u, v, c) * scale;
                }
            }
            plans.c2r(&mut half, &mut grid);
            for (o, g) in y.column_mut(c).iter_mut().zip(&grid) {
                *o = T::of(g.re);
            }
        }
        y
    }

    /// [`GlobalFilter::forward`] over a batch of token grids folded into the rows of
    /// `x` `[B·a·b, C]`, and the cache of its backward pass (the half spectra of the
    /// input, in `f64`).
    ///
    /// # Panics
    /// If `x` does not have `C` columns and a multiple of `a·b` rows.
    pub fn forward_train(&self, x: ArrayView2<T>) -> (Array2<T>, GlobalFilterCache) {
        self.check_weight();
        let (a, b) = self.grid();
        let (n, c_dim) = (a * b, self.dim());
        assert!(
            x.ncols() == c_dim && x.nrows().is_multiple_of(n),
            "GlobalFilter::forward_train: input {:?} is not [B·{n}, {c_dim}] (grid {a}×{b})",
            x.dim()
        );
        let mut plans = Plans::new(a, b);
        let h = b / 2 + 1;
        let scale = 1.0 / n as f64;
        let mut grid = vec![C64::new(0.0, 0.0); n];
        let mut y = Array2::<T>::zeros(x.dim());
        let mut spectra = Vec::with_capacity(x.nrows() / n * c_dim);
        for img in 0..x.nrows() / n {
            let rows = img * n..(img + 1) * n;
            for c in 0..c_dim {
                let spec = plans.rfft2(
                    x.slice(ndarray::s![rows.clone(), c]).iter().map(|v| v.as_f64()),
                    &mut grid,
                );
                let mut half = spec.clone();
                for v in 0..h {
                    for u in 0..a {
                        half[v * a + u] *= self.bin(u, v, c) * scale;
                    }
                }
                plans.c2r(&mut half, &mut grid);
                for (o, g) in y.slice_mut(ndarray::s![rows.clone(), c]).iter_mut().zip(&grid) {
                    *o = T::of(g.re);
                }
                spectra.push(spec);
            }
        }
        (y, GlobalFilterCache { spectra })
    }

    /// The backward pass: adds `∂L/∂complex_weight` to `grad` and returns `∂L/∂x`
    /// `[B·a·b, C]`.
    ///
    /// The filter is a real circulant operator per channel, so its adjoint is the same
    /// filter with the conjugate weights: `∂L/∂x = irfft2(rfft2(g) ⊙ W̄)` (ortho).
    /// With `X` and `D` the ortho half spectra of the input and of `g`, a bin of a
    /// column that `irfft2` Hermitian-completes counts twice (it and its mirror):
    /// `∂L/∂Re W = f·Re(X D̄)`, `∂L/∂Im W = f·Im(X̄ D)`, `f = 2`, and `f = 1` for the
    /// self-conjugate columns 0 and (even `b`) `b/2`.
    ///
    /// # Panics
    /// If `g` does not match the cache.
    pub fn backward(&self, cache: &GlobalFilterCache, g: ArrayView2<T>, grad: &mut GlobalFilter<T>) -> Array2<T> {
        let (a, b) = self.grid();
        let (n, c_dim) = (a * b, self.dim());
        assert!(
            g.ncols() == c_dim && g.nrows() / n * c_dim == cache.spectra.len(),
            "GlobalFilter::backward: gradient {:?} does not match the cache",
            g.dim()
        );
        let mut plans = Plans::new(a, b);
        let h = b / 2 + 1;
        let scale = 1.0 / n as f64;
        let mut grid = vec![C64::new(0.0, 0.0); n];
        let mut dx = Array2::<T>::zeros(g.dim());
        for img in 0..g.nrows() / n {
            let rows = img * n..(img + 1) * n;
            for c in 0..c_dim {
                let xs = &cache.spectra[img * c_dim + c];
                let mut d = plans.rfft2(
                    g.slice(ndarray::s![rows.clone(), c]).iter().map(|v| v.as_f64()),
                    &mut grid,
                );
                for v in 0..h {
                    let f = if v == 0 || 2 * v == b { scale } else { 2.0 * scale };
                    for u in 0..a {
                        let (xv, dv) = (xs[v * a + u], d[v * a + u]);
                        let gw = &mut grad.complex_weight;
                        gw[[u, v, c, 0]] += T::of(f * (xv * dv.conj()).re);
                        gw[[u, v, c, 1]] += T::of(f * (xv.conj() * dv).im);
                        d[v * a + u] = dv * self.bin(u, v, c).conj() * scale;
                    }
                }
                plans.c2r(&mut d, &mut grid);
                for (o, g) in dx.slice_mut(ndarray::s![rows.clone(), c]).iter_mut().zip(&grid) {
                    *o = T::of(g.re);
                }
            }
        }
        dx
    }

    /// Adds to `y`, the output of [`GlobalFilter::forward_train`] for `x`
    /// `[B·a·b, C]`, the perturbation of op `name` as a 4f machine runs it: every
    /// channel of every image one convolution laid out by the noise's spectral
    /// emulation (the images' jobs submitted as one batched op).
    pub fn perturb(&self, name: &str, x: ArrayView2<T>, y: &mut Array2<T>, noise: &mut crate::surrogate::OpticsNoise) {
        let (a, b) = self.grid();
        let (n, c_dim) = (a * b, self.dim());
        let kernels = self.kernels();
        let emulation = noise.spectral;
        let mut mode = Mode::Valid;
        let images: Vec<crate::surrogate::ImageJobs> = (0..x.nrows() / n)
            .map(|img| {
                let mut jobs = crate::surrogate::ImageJobs {
                    image: img,
                    inputs: Vec::with_capacity(c_dim),
                    kernels: Vec::with_capacity(c_dim),
                    pairs: (0..c_dim).map(|c| (c, c)).collect(),
                    exact: Vec::with_capacity(c_dim),
                };
                for c in 0..c_dim {
                    let xc = Array2::from_shape_fn((a, b), |(i, j)| x[[img * n + i * b + j, c]].as_f64());
                    let (input, kernel, m) =
                        emulation_job(xc.view(), kernels.index_axis(ndarray::Axis(0), c), emulation);
                    mode = m;
                    jobs.inputs.push(input);
                    jobs.kernels.push(kernel);
                    jobs.exact.push(Array2::from_shape_fn((a, b), |(i, j)| {
                        y[[img * n + i * b + j, c]].as_f64()
                    }));
                }
                jobs
            })
            .collect();
        let deltas = noise.delta_batch(name, &images, mode, fourf_sim::Op::Convolution);
        for (img, d) in deltas.iter().enumerate() {
            for (c, dc) in d.iter().enumerate() {
                for ((i, j), &v) in dc.indexed_iter() {
                    y[[img * n + i * b + j, c]] += T::of(v);
                }
            }
        }
    }

    /// The filter converted to another element type.
    pub fn cast<U: Real>(&self) -> GlobalFilter<U> {
        GlobalFilter {
            complex_weight: crate::layers::cast(&self.complex_weight),
            grid_w: self.grid_w,
        }
    }

    /// The real circular kernels `[C, a, b]`: `k_c = irfft2(W_c)` with PyTorch's C2R
    /// semantics and the backward `1/(a·b)` normalisation, so that
    /// `forward(x)_c = x_c ⊛ k_c` (circular convolution over the grid,
    /// `y[n] = Σ_m x[m]·k[(n − m) mod (a, b)]`).
    pub fn kernels(&self) -> Array3<f64> {
        self.check_weight();
        let (a, b) = self.grid();
        let c_dim = self.dim();
        let mut plans = Plans::new(a, b);
        let h = b / 2 + 1;
        let scale = 1.0 / (a * b) as f64;
        let mut grid = vec![C64::new(0.0, 0.0); a * b];
        let mut half = vec![C64::new(0.0, 0.0); h * a];
        let mut k = Array3::<f64>::zeros((c_dim, a, b));
        for c in 0..c_dim {
            for v in 0..h {
                for u in 0..a {
                    half[v * a + u] = self.bin(u, v, c) * scale;
                }
            }
            plans.c2r(&mut half, &mut grid);
            for (o, g) in k.index_axis_mut(ndarray::Axis(0), c).iter_mut().zip(&grid) {
                *o = g.re;
            }
        }
        k
    }
}

/// What [`GlobalFilter::backward`] needs of a forward pass: the unnormalised half
/// spectrum of every (image, channel), image-major, stored transposed
/// (`[v·a + u]`).
#[derive(Debug, Clone)]
pub struct GlobalFilterCache {
    spectra: Vec<Vec<C64>>,
}

impl<T: Real> Parameters<T> for GlobalFilter<T> {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>)) {
        f(
            &join(prefix, "complex_weight"),
            self.complex_weight.view_mut().into_dyn(),
        );
    }
}

/// Which 1-D pass of an `a × b` transform to run.
#[derive(Clone, Copy)]
enum Pass {
    /// Forward FFTs of length `b` over contiguous rows.
    RowForward,
    /// Inverse FFTs of length `b` over contiguous rows.
    RowInverse,
    /// Forward FFTs of length `a` over contiguous (transposed) columns.
    ColForward,
    /// Inverse FFTs of length `a` over contiguous (transposed) columns.
    ColInverse,
}

/// The 1-D plans of an `a × b` grid (planned once per shape for the whole process,
/// [`Fft2::cached`]) and this call's scratch.
struct Plans {
    a: usize,
    b: usize,
    fft: Arc<Fft2>,
    scratch: Vec<C64>,
}

impl Plans {
    fn new(a: usize, b: usize) -> Self {
        let fft = Fft2::cached(a, b);
        let len = [(true, FftDirection::Forward), (true, FftDirection::Inverse)]
            .into_iter()
            .chain([(false, FftDirection::Forward), (false, FftDirection::Inverse)])
            .map(|(rows, dir)| fft.plan_1d(rows, dir).get_inplace_scratch_len())
            .max()
            .unwrap_or(0);
        Self {
            a,
            b,
            fft,
            scratch: vec![C64::new(0.0, 0.0); len],
        }
    }

    /// Runs `pass` over every chunk of `data` (whose length is a multiple of the
    /// transform length), unnormalised.
    fn run(&mut self, pass: Pass, data: &mut [C64]) {
        let (rows, dir) = match pass {
            Pass::RowForward => (true, FftDirection::Forward),
            Pass::RowInverse => (true, FftDirection::Inverse),
            Pass::ColForward => (false, FftDirection::Forward),
            Pass::ColInverse => (false, FftDirection::Inverse),
        };
        self.fft
            .plan_1d(rows, dir)
            .process_with_scratch(data, &mut self.scratch);
    }

    /// The unnormalised `rfft2` of the row-major `a × b` real grid `x`, as the
    /// transposed half spectrum (`[v·a + u]`, `v < b/2 + 1`); `grid` is scratch.
    fn rfft2(&mut self, x: impl Iterator<Item = f64>, grid: &mut [C64]) -> Vec<C64> {
        let (a, b) = (self.a, self.b);
        let h = b / 2 + 1;
        for (g, v) in grid.iter_mut().zip(x) {
            *g = C64::new(v, 0.0);
        }
        self.run(Pass::RowForward, grid);
        let mut half = vec![C64::new(0.0, 0.0); h * a];
        for v in 0..h {
            for u in 0..a {
                half[v * a + u] = grid[u * b + v];
            }
        }
        self.run(Pass::ColForward, &mut half);
        half
    }

    /// PyTorch's `irfft2` (unnormalised) of the half spectrum `half`, stored
    /// transposed (`half[v·a + u]`, `v < b/2 + 1`; overwritten), into the row-major
    /// `a × b` `grid` (real result in `.re`): complex inverse along axis 0, then the
    /// real inverse along axis 1, which takes only the real part of column 0 and, for
    /// even `b`, of column `b/2`, and Hermitian-completes the other columns.
    fn c2r(&mut self, half: &mut [C64], grid: &mut [C64]) {
        let (a, b) = (self.a, self.b);
        let h = b / 2 + 1;
        self.run(Pass::ColInverse, half);
        for u in 0..a {
            let row = &mut grid[u * b..(u + 1) * b];
            row[0] = C64::new(half[u].re, 0.0);
            for v in 1..h {
                let g = half[v * a + u];
                if 2 * v == b {
                    row[v] = C64::new(g.re, 0.0);
                } else {
                    row[v] = g;
                    row[b - v] = g.conj();
                }
            }
        }
        self.run(Pass::RowInverse, grid);
    }
}

/// How one channel of a [`GlobalFilter`] is laid out for a machine that convolves
/// linearly (a 4f system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum SpectralEmulation {
    /// Exact GFNet semantics on linear optics: the `a × b` input is wrap-extended to
    /// `(2a−1) × (2b−1)` (periodic continuation) and the `valid` convolution with the
    /// circular kernel `k` gives the `a × b` circular convolution.
    #[default]
    Circular,
    /// What a lens does to a zero-padded tile: the kernel is circularly shifted so
    /// its origin sits at index `((a−1)/2, (b−1)/2)`, then the `same` convolution is
    /// taken. Every offset of the circular kernel is applied once, but contributions
    /// that would wrap around the grid are lost.
    ZeroPadded,
}

/// The linear convolution that emulates the circular filtering of one channel `x`
/// (`a × b`) by its kernel (`a × b`, from [`GlobalFilter::kernels`]):
/// `direct_conv(input, kernel, mode, Op::Convolution)` returns the `a × b` result.
///
/// # Panics
/// If `x` and `kernel` differ in shape or are empty.
pub fn emulation_job(
    x: ArrayView2<f64>,
    kernel: ArrayView2<f64>,
    emulation: SpectralEmulation,
) -> (Array2<f64>, Array2<f64>, Mode) {
    let (a, b) = x.dim();
    assert!(
        a > 0 && b > 0 && kernel.dim() == (a, b),
        "emulation_job: input {:?} and kernel {:?} must be the same non-empty shape",
        x.dim(),
        kernel.dim()
    );
    match emulation {
        SpectralEmulation::Circular => {
            // valid output o reads ext[o + a−1 − m] for kernel tap m, which must be
            // x[(o − m) mod a]: ext[i] = x[(i − (a−1)) mod a].
            let input = Array2::from_shape_fn((2 * a - 1, 2 * b - 1), |(i, j)| {
                x[[(i + 1) % a, (j + 1) % b]] // (i − (a−1)) mod a = (i + 1) mod a
            });
            (input, kernel.to_owned(), Mode::Valid)
        }
        SpectralEmulation::ZeroPadded => {
            let (cy, cx) = ((a - 1) / 2, (b - 1) / 2);
            // shifted[i, j] = k[(i − cy) mod a, (j − cx) mod b]
            let shifted = Array2::from_shape_fn((a, b), |(i, j)| kernel[[(i + a - cy) % a, (j + b - cx) % b]]);
            (x.to_owned(), shifted, Mode::Same)
        }
    }
}

/// FNet token mixing: `Re(DFT₂(x))` over both axes of `x` `[tokens, hidden]`,
/// unnormalised (`jnp.fft.fftn(x).real`), computed in `f64`.
///
/// # Panics
/// If `x` is empty.
pub fn fourier_mix<T: Real>(x: ArrayView2<T>) -> Array2<T> {
    assert!(x.nrows() > 0 && x.ncols() > 0, "fourier_mix: empty input {:?}", x.dim());
    dft2(x.mapv(|v| v.as_f64()).view()).mapv(|v| T::of(v.re))
}

/// The unnormalised 2-D DFT of `x` over both axes (`numpy.fft.fft2`), in `f64`.
///
/// # Panics
/// If `x` is empty.
pub fn dft2(x: ArrayView2<f64>) -> Array2<C64> {
    let (n, d) = x.dim();
    assert!(n > 0 && d > 0, "dft2: empty input {:?}", x.dim());
    let mut plans = Plans::new(n, d);
    let mut grid: Vec<C64> = x.iter().map(|&v| C64::new(v, 0.0)).collect();
    plans.run(Pass::RowForward, &mut grid);
    let mut t = vec![C64::new(0.0, 0.0); n * d];
    for (i, row) in grid.chunks_exact(d).enumerate() {
        for (j, &g) in row.iter().enumerate() {
            t[j * n + i] = g;
        }
    }
    plans.run(Pass::ColForward, &mut t);
    Array2::from_shape_fn((n, d), |(i, j)| t[j * n + i])
}

/// [`fourier_mix`] of every sequence of `tokens` rows of `x` `[B·tokens, d]`.
///
/// Its backward pass is itself: `y = Re(A x)` with `A = F_T ⊗ F_d` symmetric
/// (DFT matrices are), so `∂L/∂x = Re(Aᵀ g) = Re(A g)`.
///
/// # Panics
/// If the rows are not a multiple of `tokens`.
pub fn fourier_mix_batch<T: Real>(x: ArrayView2<T>, tokens: usize) -> Array2<T> {
    assert!(
        tokens > 0 && x.nrows().is_multiple_of(tokens),
        "fourier_mix_batch: {:?} is not [B·{tokens}, d]",
        x.dim()
    );
    let mut y = Array2::zeros(x.dim());
    for i in 0..x.nrows() / tokens {
        let r = ndarray::s![i * tokens..(i + 1) * tokens, ..];
        y.slice_mut(r).assign(&fourier_mix(x.slice(r)));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use fourf_sim::{direct_conv, Op};
    use ndarray::{Array1, Axis};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use std::f64::consts::PI;

    fn uniform(shape: (usize, usize), rng: &mut StdRng) -> Array2<f32> {
        Array2::from_shape_simple_fn(shape, || 2.0 * rng.random::<f32>() - 1.0)
    }

    /// A filter with every bin (self-conjugate ones included) of order one.
    fn random_filter(dim: usize, a: usize, b: usize, rng: &mut StdRng) -> GlobalFilter {
        let w = Array4::from_shape_simple_fn((a, b / 2 + 1, dim, 2), || 2.0 * rng.random::<f32>() - 1.0);
        GlobalFilter::from_weights(w, b).unwrap()
    }

    fn rel_err<'a>(got: impl IntoIterator<Item = &'a f64>, want: impl IntoIterator<Item = &'a f64>) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for (g, w) in got.into_iter().zip(want) {
            num += (g - w) * (g - w);
            den += w * w;
        }
        (num / den).sqrt()
    }

    fn to64(x: &Array2<f32>) -> Array2<f64> {
        x.mapv(|v| v as f64)
    }

    /// Direct 2-D DFT, `X[u, v] = Σ x[m, n] exp(sign·2πi (um/a + vn/b))`, unnormalised.
    fn dft2(x: &Array2<C64>, sign: f64) -> Array2<C64> {
        let (a, b) = x.dim();
        Array2::from_shape_fn((a, b), |(u, v)| {
            let mut acc = C64::new(0.0, 0.0);
            for m in 0..a {
                for n in 0..b {
                    let phase = sign * 2.0 * PI * (((u * m) % a) as f64 / a as f64 + ((v * n) % b) as f64 / b as f64);
                    acc += x[[m, n]] * C64::from_polar(1.0, phase);
                }
            }
            acc
        })
    }

    /// GFNet's forward from the definition, one channel: `x` `a × b` real, `w` the
    /// `a × (b/2+1)` half filter.
    ///
    /// `torch.fft.irfft2(Y, s=(a, b))` runs a complex inverse along axis 0 and then a
    /// C2R inverse along axis 1. The C2R step treats its input as the non-negative
    /// half of a Hermitian sequence: columns `1 ≤ v < b/2` are mirrored as
    /// `Z[·, b−v] = conj`, while for the self-conjugate columns (`v = 0`, and
    /// `v = b/2` when `b` is even) it reads only the real part of the axis-0 inverse
    /// `g = IDFT_a(Y[:, v])`. Since `Re g[n] = IDFT_a((Y[u] + conj Y[−u]) / 2)[n]`,
    /// this equals a full 2-D inverse of the Hermitian completion `Z` with
    /// `Z[u, v] = (Y[u, v] + conj Y[−u mod a, v]) / 2` on the self-conjugate columns
    /// and `Z[u, v] = Y[u, v]`, `Z[−u mod a, b−v] = conj Y[u, v]` elsewhere; the
    /// result of that inverse is real.
    fn reference_global_filter(x: &Array2<f64>, w: &Array2<C64>) -> Array2<f64> {
        let (a, b) = x.dim();
        let norm = ((a * b) as f64).sqrt();
        let xs = dft2(&x.mapv(|v| C64::new(v, 0.0)), -1.0).mapv(|v| v / norm);
        let mut z = Array2::<C64>::zeros((a, b));
        for u in 0..a {
            for v in 0..b / 2 + 1 {
                let y = xs[[u, v]] * w[[u, v]];
                if v == 0 || 2 * v == b {
                    let mirror = xs[[(a - u) % a, v]] * w[[(a - u) % a, v]];
                    z[[u, v]] = (y + mirror.conj()) / 2.0;
                } else {
                    z[[u, v]] = y;
                    z[[(a - u) % a, b - v]] = y.conj();
                }
            }
        }
        let out = dft2(&z, 1.0).mapv(|v| v / norm);
        let scale = out.iter().map(|v| v.norm()).fold(1e-12, f64::max);
        assert!(
            out.iter().all(|v| v.im.abs() < 1e-9 * scale),
            "completion not Hermitian"
        );
        out.mapv(|v| v.re)
    }

    fn channel_filter(f: &GlobalFilter, c: usize) -> Array2<C64> {
        let (a, b) = f.grid();
        Array2::from_shape_fn((a, b / 2 + 1), |(u, v)| f.bin(u, v, c))
    }

    /// Channel `c` of tokens `[a·b, C]` as an `a × b` grid in f64.
    fn channel(x: &Array2<f32>, c: usize, a: usize, b: usize) -> Array2<f64> {
        x.column(c).mapv(|v| v as f64).into_shape_with_order((a, b)).unwrap()
    }

    /// `y[n] = Σ_m x[m]·k[(n − m) mod (a, b)]` by plain loops.
    fn circular_conv(x: &Array2<f64>, k: ArrayView2<f64>) -> Array2<f64> {
        let (a, b) = x.dim();
        Array2::from_shape_fn((a, b), |(ny, nx)| {
            let mut acc = 0.0;
            for my in 0..a {
                for mx in 0..b {
                    acc += x[[my, mx]] * k[[(ny + a - my) % a, (nx + b - mx) % b]];
                }
            }
            acc
        })
    }

    /// Circular filtering without the wrap-around: offsets `d` in
    /// `[−(a−1)/2, a−1−(a−1)/2]` (per axis), tap `k[d mod a]`, input `x[n − d]` only
    /// where it exists.
    fn no_wrap_conv(x: &Array2<f64>, k: ArrayView2<f64>) -> Array2<f64> {
        let (a, b) = x.dim();
        let (cy, cx) = (((a - 1) / 2) as isize, ((b - 1) / 2) as isize);
        let (ai, bi) = (a as isize, b as isize);
        Array2::from_shape_fn((a, b), |(ny, nx)| {
            let mut acc = 0.0;
            for dy in -cy..ai - cy {
                for dx in -cx..bi - cx {
                    let (my, mx) = (ny as isize - dy, nx as isize - dx);
                    if (0..ai).contains(&my) && (0..bi).contains(&mx) {
                        acc +=
                            x[[my as usize, mx as usize]] * k[[dy.rem_euclid(ai) as usize, dx.rem_euclid(bi) as usize]];
                    }
                }
            }
            acc
        })
    }

    const GRIDS: [(usize, usize); 7] = [(7, 7), (4, 6), (5, 8), (1, 3), (6, 1), (2, 2), (3, 4)];

    #[test]
    fn forward_matches_direct_dft_reference() {
        let mut rng = StdRng::seed_from_u64(11);
        for &(a, b) in &GRIDS {
            let dim = 3;
            let f = random_filter(dim, a, b, &mut rng);
            let x = uniform((a * b, dim), &mut rng);
            let y = f.forward(x.view());
            assert_eq!(y.dim(), (a * b, dim));
            for c in 0..dim {
                let want = reference_global_filter(&channel(&x, c, a, b), &channel_filter(&f, c));
                let got = channel(&y, c, a, b);
                let e = rel_err(&got, &want);
                assert!(e < 1e-6, "grid {a}×{b} channel {c}: relative error {e}");
            }
        }
    }

    #[test]
    fn forward_known_filters() {
        let mut rng = StdRng::seed_from_u64(12);
        let (a, b, dim) = (4, 5, 2);
        let x = uniform((a * b, dim), &mut rng);
        // W = 1: irfft2(rfft2(x)) = x.
        let mut w = Array4::<f32>::zeros((a, b / 2 + 1, dim, 2));
        w.index_axis_mut(Axis(3), 0).fill(1.0);
        let f = GlobalFilter::from_weights(w, b).unwrap();
        let e = rel_err(&to64(&f.forward(x.view())), &to64(&x));
        assert!(e < 1e-6, "identity: {e}");
        // Only the DC bin, real 1: every token becomes its channel's mean. An
        // imaginary part at DC is ignored (self-conjugate bin).
        let mut w = Array4::<f32>::zeros((a, b / 2 + 1, dim, 2));
        w[[0, 0, 0, 0]] = 1.0;
        w[[0, 0, 0, 1]] = 5.0;
        w[[0, 0, 1, 1]] = 5.0;
        let f = GlobalFilter::from_weights(w, b).unwrap();
        let y = f.forward(x.view());
        let mean: Array1<f32> = x.mean_axis(Axis(0)).unwrap();
        for t in 0..a * b {
            assert!(
                (y[[t, 0]] - mean[0]).abs() < 1e-6,
                "token {t}: {} vs {}",
                y[[t, 0]],
                mean[0]
            );
            assert!(y[[t, 1]].abs() < 1e-6, "imaginary DC not ignored: {}", y[[t, 1]]);
        }
    }

    #[test]
    fn circular_conv_with_kernels_equals_forward() {
        let mut rng = StdRng::seed_from_u64(13);
        for &(a, b) in &GRIDS {
            let dim = 2;
            let f = random_filter(dim, a, b, &mut rng);
            let x = uniform((a * b, dim), &mut rng);
            let y = f.forward(x.view());
            let k = f.kernels();
            assert_eq!(k.dim(), (dim, a, b));
            for c in 0..dim {
                let want = circular_conv(&channel(&x, c, a, b), k.index_axis(Axis(0), c));
                let e = rel_err(&channel(&y, c, a, b), &want);
                assert!(e < 1e-6, "grid {a}×{b} channel {c}: relative error {e}");
            }
        }
    }

    #[test]
    fn kernels_match_direct_inverse() {
        // The forward of a unit impulse is its kernel: the ortho rfft2 of the impulse is
        // 1/√(ab) everywhere, and the ortho irfft2 of W/√(ab) is the backward-normalised
        // irfft2 of W.
        let mut rng = StdRng::seed_from_u64(14);
        for &(a, b) in &GRIDS {
            let f = random_filter(1, a, b, &mut rng);
            let mut delta = Array2::<f64>::zeros((a, b));
            delta[[0, 0]] = 1.0;
            let want = reference_global_filter(&delta, &channel_filter(&f, 0));
            let k = f.kernels();
            let e = rel_err(k.index_axis(Axis(0), 0), &want);
            assert!(e < 1e-9, "grid {a}×{b}: relative error {e}");
        }
        // W = 1 is the unit impulse at the origin.
        let mut w = Array4::<f32>::zeros((3, 3, 1, 2));
        w.index_axis_mut(Axis(3), 0).fill(1.0);
        let k = GlobalFilter::from_weights(w, 4).unwrap().kernels();
        for ((_, i, j), &v) in k.indexed_iter() {
            let want = if (i, j) == (0, 0) { 1.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-12, "k[{i}, {j}] = {v}");
        }
    }

    #[test]
    fn circular_emulation_equals_forward() {
        let mut rng = StdRng::seed_from_u64(15);
        for &(a, b) in &GRIDS {
            let dim = 2;
            let f = random_filter(dim, a, b, &mut rng);
            let x = uniform((a * b, dim), &mut rng);
            let y = f.forward(x.view());
            let k = f.kernels();
            for c in 0..dim {
                let xc = channel(&x, c, a, b);
                let (input, kernel, mode) =
                    emulation_job(xc.view(), k.index_axis(Axis(0), c), SpectralEmulation::Circular);
                assert_eq!((input.dim(), mode), ((2 * a - 1, 2 * b - 1), Mode::Valid));
                let got = direct_conv(input.view(), kernel.view(), mode, Op::Convolution);
                assert_eq!(got.dim(), (a, b));
                let e = rel_err(&got, &channel(&y, c, a, b));
                assert!(e < 1e-5, "grid {a}×{b} channel {c}: relative error {e}");
            }
        }
    }

    #[test]
    fn zero_padded_emulation_is_no_wrap_filtering() {
        let mut rng = StdRng::seed_from_u64(16);
        for &(a, b) in &GRIDS {
            let x = to64(&uniform((a, b), &mut rng));
            let k = to64(&uniform((a, b), &mut rng));
            let (input, kernel, mode) = emulation_job(x.view(), k.view(), SpectralEmulation::ZeroPadded);
            assert_eq!(mode, Mode::Same);
            let got = direct_conv(input.view(), kernel.view(), mode, Op::Convolution);
            let want = no_wrap_conv(&x, k.view());
            assert_eq!(got.dim(), (a, b));
            let e = rel_err(&got, &want);
            assert!(e < 1e-12, "grid {a}×{b}: relative error {e}");
        }
        // A kernel at the origin only never wraps: both emulations agree.
        let x = to64(&uniform((5, 6), &mut rng));
        let mut k = Array2::<f64>::zeros((5, 6));
        k[[0, 0]] = 2.0;
        for emulation in [SpectralEmulation::Circular, SpectralEmulation::ZeroPadded] {
            let (input, kernel, mode) = emulation_job(x.view(), k.view(), emulation);
            let got = direct_conv(input.view(), kernel.view(), mode, Op::Convolution);
            assert!(rel_err(&got, &x.mapv(|v| 2.0 * v)) < 1e-12, "{emulation:?}");
        }
    }

    #[test]
    fn zero_padded_differs_from_circular() {
        let mut rng = StdRng::seed_from_u64(17);
        for &(a, b) in &[(14, 14), (7, 7), (4, 6), (5, 8)] {
            let dim = 8;
            let f = GlobalFilterConfig::new(dim, a, b).init(&mut rng).unwrap();
            let x = uniform((a * b, dim), &mut rng);
            let k = f.kernels();
            let (mut num, mut den) = (0.0, 0.0);
            for c in 0..dim {
                let xc = channel(&x, c, a, b);
                let kc = k.index_axis(Axis(0), c);
                let run = |e| {
                    let (input, kernel, mode) = emulation_job(xc.view(), kc, e);
                    direct_conv(input.view(), kernel.view(), mode, Op::Convolution)
                };
                let (circ, zp) = (run(SpectralEmulation::Circular), run(SpectralEmulation::ZeroPadded));
                num += (&zp - &circ).mapv(|v| v * v).sum();
                den += circ.mapv(|v| v * v).sum();
            }
            let d = (num / den).sqrt();
            println!("ZeroPadded vs Circular, grid {a}×{b}, GFNet init, {dim} channels: ‖ZP − C‖/‖C‖ = {d:.4}");
            assert!(d.is_finite() && d > 1e-3, "grid {a}×{b}: {d}");
        }
    }

    #[test]
    fn fourier_mix_matches_direct_dft() {
        let mut rng = StdRng::seed_from_u64(18);
        for &(n, d) in &[(7, 5), (4, 6), (1, 3), (8, 1), (16, 12)] {
            let x = uniform((n, d), &mut rng);
            let want = dft2(&x.mapv(|v| C64::new(v as f64, 0.0)), -1.0).mapv(|v| v.re);
            let got = to64(&fourier_mix(x.view()));
            let e = rel_err(&got, &want);
            assert!(e < 1e-6, "{n}×{d}: relative error {e}");
        }
        // Constant input: all energy in the DC bin, n·d.
        let y = fourier_mix(Array2::<f32>::ones((3, 4)).view());
        assert!((y[[0, 0]] - 12.0).abs() < 1e-5);
        assert!(y.iter().skip(1).all(|v| v.abs() < 1e-5));
    }

    #[test]
    fn config_init_and_parameters() {
        let mut rng = StdRng::seed_from_u64(19);
        let cfg = GlobalFilterConfig::new(16, 14, 14);
        let mut f = cfg.init(&mut rng).unwrap();
        assert_eq!(f.complex_weight.dim(), (14, 8, 16, 2));
        assert_eq!((f.dim(), f.grid()), (16, (14, 14)));
        let std = (f.complex_weight.mapv(|v| v * v).mean().unwrap()).sqrt();
        assert!((std - 0.02).abs() < 0.001, "std {std}");
        let mut names = Vec::new();
        f.visit_params("blocks.0.filter", &mut |n, t| {
            names.push((n.to_string(), t.shape().to_vec()))
        });
        assert_eq!(
            names,
            vec![("blocks.0.filter.complex_weight".to_string(), vec![14, 8, 16, 2])]
        );
        assert_eq!(f.parameter_count(), 14 * 8 * 16 * 2);
        assert_eq!(
            GlobalFilterConfig::new(4, 3, 5)
                .init(&mut rng)
                .unwrap()
                .complex_weight
                .dim(),
            (3, 3, 4, 2)
        );

        for bad in [
            GlobalFilterConfig::new(0, 2, 2),
            GlobalFilterConfig::new(2, 0, 2),
            GlobalFilterConfig::new(2, 2, 0),
            GlobalFilterConfig::new(2, 2, 2).with_init_std(0.0),
            GlobalFilterConfig::new(2, 2, 2).with_init_std(f32::NAN),
        ] {
            assert!(
                matches!(bad.init(&mut rng), Err(LayerError::InvalidConfig { .. })),
                "{bad:?}"
            );
        }
        assert!(GlobalFilter::from_weights(Array4::zeros((3, 3, 2, 2)), 6).is_err());
        assert!(GlobalFilter::from_weights(Array4::zeros((3, 3, 2, 1)), 4).is_err());
        assert!(GlobalFilter::from_weights(Array4::zeros((3, 3, 2, 2)), 5).is_ok());
        assert_eq!(SpectralEmulation::default(), SpectralEmulation::Circular);
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn forward_rejects_wrong_token_count() {
        let f = GlobalFilterConfig::new(2, 3, 3)
            .init(&mut StdRng::seed_from_u64(0))
            .unwrap();
        f.forward(Array2::<f32>::zeros((8, 2)).view());
    }
}
