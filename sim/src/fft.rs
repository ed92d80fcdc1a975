//! Two-dimensional FFT plans with caller-owned scratch.
//!
//! A [`Fft2`] is planned once for a frame shape and applied many times. A 2-D
//! transform is a pass of 1-D FFTs over the rows, a blocked transpose, a pass over
//! the rows of the transposed array (the original columns) and a transpose back.
//! Each pass splits the rows into chunks that rayon runs in parallel; every chunk
//! owns its slice of the caller's [`Fft2Scratch`], so the hot path allocates
//! nothing. The lower-level passes ([`Fft2::row_pass`], [`transpose`]) are public so
//! that the 4f frame executor can fuse element-wise work (encoding, the Fourier
//! mask, the read-out) into them.
//!
//! Conventions: forward is `X[k] = Σ x[n] exp(−2πi nk/N)`, inverse uses `+i`;
//! neither is normalised (an inverse after a forward multiplies by `ny·nx`).

use std::sync::Arc;

use num_complex::Complex64 as C64;
use rayon::prelude::*;
use rustfft::{Fft, FftDirection, FftPlanner};

/// Side of the square blocks the transpose copies at a time.
const TRANSPOSE_BLOCK: usize = 32;

/// A planned 2-D FFT of a `ny × nx` row-major complex array.
#[derive(Clone)]
pub struct Fft2 {
    ny: usize,
    nx: usize,
    row_fwd: Arc<dyn Fft<f64>>,
    row_inv: Arc<dyn Fft<f64>>,
    col_fwd: Arc<dyn Fft<f64>>,
    col_inv: Arc<dyn Fft<f64>>,
    scratch_len: usize,
}

impl std::fmt::Debug for Fft2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fft2")
            .field("ny", &self.ny)
            .field("nx", &self.nx)
            .finish()
    }
}

/// Caller-owned working memory of a [`Fft2`]: the transposed copy and one FFT
/// scratch slice per parallel chunk.
#[derive(Debug, Clone)]
pub struct Fft2Scratch {
    /// The transposed array (`nx × ny`).
    pub transposed: Vec<C64>,
    fft: Vec<C64>,
    chunks: usize,
    scratch_len: usize,
}

impl Fft2Scratch {
    /// Number of parallel chunks a pass is split into.
    pub fn chunks(&self) -> usize {
        self.chunks
    }
}

impl Fft2 {
    /// Plans forward and inverse transforms for `ny × nx` arrays.
    ///
    /// # Panics
    /// If either side is zero.
    pub fn new(ny: usize, nx: usize) -> Self {
        assert!(ny > 0 && nx > 0, "Fft2::new: empty shape {ny}×{nx}");
        let mut planner = FftPlanner::<f64>::new();
        let row_fwd = planner.plan_fft(nx, FftDirection::Forward);
        let row_inv = planner.plan_fft(nx, FftDirection::Inverse);
        let col_fwd = planner.plan_fft(ny, FftDirection::Forward);
        let col_inv = planner.plan_fft(ny, FftDirection::Inverse);
        let scratch_len = [&row_fwd, &row_inv, &col_fwd, &col_inv]
            .iter()
            .map(|f| f.get_inplace_scratch_len())
            .max()
            .unwrap_or(0);
        Self {
            ny,
            nx,
            row_fwd,
            row_inv,
            col_fwd,
            col_inv,
            scratch_len,
        }
    }

    /// The plan of `ny × nx` arrays, planned on first use and shared by every later
    /// caller in the process (a layer that transforms each image's channels asks for
    /// it per call; planning costs far more than a small transform).
    ///
    /// # Panics
    /// If either side is zero.
    pub fn cached(ny: usize, nx: usize) -> Arc<Fft2> {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        type Cache = Mutex<HashMap<(usize, usize), Arc<Fft2>>>;
        static PLANS: OnceLock<Cache> = OnceLock::new();
        let plans = PLANS.get_or_init(|| Mutex::new(HashMap::new()));
        let mut plans = plans.lock().unwrap_or_else(|e| e.into_inner());
        plans
            .entry((ny, nx))
            .or_insert_with(|| Arc::new(Fft2::new(ny, nx)))
            .clone()
    }

    /// Shape `(ny, nx)` this plan transforms.
    pub fn shape(&self) -> (usize, usize) {
        (self.ny, self.nx)
    }

    /// Scratch for this plan. `parallel` splits every pass into chunks for rayon
    /// (a few per thread); without it each pass runs on the calling thread, which is
    /// what callers that already parallelise over frames want.
    pub fn make_scratch(&self, parallel: bool) -> Fft2Scratch {
        let chunks = if parallel {
            (rayon::current_num_threads() * 4).min(self.ny.min(self.nx)).max(1)
        } else {
            1
        };
        Fft2Scratch {
            transposed: vec![C64::new(0.0, 0.0); self.ny * self.nx],
            fft: vec![C64::new(0.0, 0.0); chunks * self.scratch_len.max(1)],
            chunks,
            scratch_len: self.scratch_len.max(1),
        }
    }

    /// The 1-D plan along rows (length `nx`) or columns (length `ny`).
    pub fn plan_1d(&self, along_rows: bool, direction: FftDirection) -> &Arc<dyn Fft<f64>> {
        match (along_rows, direction) {
            (true, FftDirection::Forward) => &self.row_fwd,
            (true, FftDirection::Inverse) => &self.row_inv,
            (false, FftDirection::Forward) => &self.col_fwd,
            (false, FftDirection::Inverse) => &self.col_inv,
        }
    }

    /// Runs, for every row of `data` (rows of length `nx` when `along_rows`, else of
    /// length `ny`): `before(row_index, row)`, the 1-D FFT in `direction`, then
    /// `after(row_index, row)`. Rows are processed in parallel chunks.
    ///
    /// # Panics
    /// If `data` is not `ny·nx` long.
    pub fn row_pass<B, A>(
        &self,
        data: &mut [C64],
        along_rows: bool,
        direction: FftDirection,
        scratch: &mut Fft2Scratch,
        before: B,
        after: A,
    ) where
        B: Fn(usize, &mut [C64]) + Sync,
        A: Fn(usize, &mut [C64]) + Sync,
    {
        let fft = self.plan_1d(along_rows, direction);
        self.row_pass_with(data, along_rows, scratch, |r, row, s| {
            before(r, row);
            fft.process_with_scratch(row, s);
            after(r, row);
        });
    }

    /// Runs `f(row_index, row, fft_scratch)` for every row (of length `nx` when
    /// `along_rows`, else `ny`), in parallel chunks; `f` calls the 1-D plans of
    /// [`Fft2::plan_1d`] itself with the scratch slice it is given.
    ///
    /// # Panics
    /// If `data` is not `ny·nx` long.
    pub fn row_pass_with<F>(&self, data: &mut [C64], along_rows: bool, scratch: &mut Fft2Scratch, f: F)
    where
        F: Fn(usize, &mut [C64], &mut [C64]) + Sync,
    {
        let len = if along_rows { self.nx } else { self.ny };
        let rows = self.ny * self.nx / len;
        assert_eq!(
            data.len(),
            self.ny * self.nx,
            "row_pass: data has {} samples, plan is {}×{}",
            data.len(),
            self.ny,
            self.nx
        );
        let rows_per_chunk = rows.div_ceil(scratch.chunks);
        let run_chunk = |chunk_index: usize, chunk: &mut [C64], fft_scratch: &mut [C64]| {
            for (i, row) in chunk.chunks_exact_mut(len).enumerate() {
                f(chunk_index * rows_per_chunk + i, row, fft_scratch);
            }
        };
        let sl = scratch.scratch_len;
        if scratch.chunks == 1 {
            run_chunk(0, data, &mut scratch.fft[..sl]);
        } else {
            data.par_chunks_mut(rows_per_chunk * len)
                .zip(scratch.fft.par_chunks_mut(sl))
                .enumerate()
                .for_each(|(ci, (chunk, s))| run_chunk(ci, chunk, s));
        }
    }

    /// In-place 2-D FFT of a row-major `ny × nx` array (natural order in and out).
    pub fn process(&self, data: &mut [C64], direction: FftDirection, scratch: &mut Fft2Scratch) {
        let noop = |_: usize, _: &mut [C64]| {};
        self.row_pass(data, true, direction, scratch, noop, noop);
        let parallel = scratch.chunks > 1;
        let mut t = std::mem::take(&mut scratch.transposed);
        transpose(data, &mut t, self.ny, self.nx, parallel);
        self.row_pass(&mut t, false, direction, scratch, noop, noop);
        transpose(&t, data, self.nx, self.ny, parallel);
        scratch.transposed = t;
    }

    /// Forward 2-D FFT in place.
    pub fn forward(&self, data: &mut [C64], scratch: &mut Fft2Scratch) {
        self.process(data, FftDirection::Forward, scratch);
    }

    /// Unnormalised inverse 2-D FFT in place.
    pub fn inverse(&self, data: &mut [C64], scratch: &mut Fft2Scratch) {
        self.process(data, FftDirection::Inverse, scratch);
    }
}

/// Blocked transpose of the row-major `rows × cols` array `src` into `dst`
/// (`cols × rows`), in parallel over blocks of destination rows when `parallel`.
///
/// # Panics
/// If either slice is not `rows·cols` long.
pub fn transpose(src: &[C64], dst: &mut [C64], rows: usize, cols: usize, parallel: bool) {
    assert_eq!(src.len(), rows * cols, "transpose: src length");
    assert_eq!(dst.len(), rows * cols, "transpose: dst length");
    let b = TRANSPOSE_BLOCK;
    // One chunk = `b` destination rows = `b` source columns.
    let do_block = |bi: usize, dchunk: &mut [C64]| {
        let c0 = bi * b;
        let nc = dchunk.len() / rows;
        for r0 in (0..rows).step_by(b) {
            let r1 = (r0 + b).min(rows);
            for dc in 0..nc {
                let c = c0 + dc;
                let drow = &mut dchunk[dc * rows..(dc + 1) * rows];
                for r in r0..r1 {
                    drow[r] = src[r * cols + c];
                }
            }
        }
    };
    if parallel {
        dst.par_chunks_mut(b * rows)
            .enumerate()
            .for_each(|(bi, d)| do_block(bi, d));
    } else {
        dst.chunks_mut(b * rows).enumerate().for_each(|(bi, d)| do_block(bi, d));
    }
}

/// Signed index of FFT-order index `k` of `n` (numpy's `fftfreq` times `n`):
/// `k` for `k < ⌈n/2⌉`, else `k − n`.
pub fn signed_index(k: usize, n: usize) -> f64 {
    if k < n.div_ceil(2) {
        k as f64
    } else {
        k as f64 - n as f64
    }
}

/// Circular shift moving index `n/2` to 0 on both axes (numpy's `ifftshift`), which
/// for even sides is its own inverse (`fftshift`).
///
/// # Panics
/// If `src`/`dst` are not `ny·nx` long.
pub fn shift_half(src: &[C64], dst: &mut [C64], ny: usize, nx: usize) {
    assert_eq!(src.len(), ny * nx, "shift_half: src length");
    assert_eq!(dst.len(), ny * nx, "shift_half: dst length");
    let (hy, hx) = (ny / 2, nx / 2);
    for r in 0..ny {
        let s = &src[((r + hy) % ny) * nx..][..nx];
        let d = &mut dst[r * nx..][..nx];
        d[..nx - hx].copy_from_slice(&s[hx..]);
        d[nx - hx..].copy_from_slice(&s[..hx]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive 2-D DFT, the independent reference.
    fn naive_dft(x: &[C64], ny: usize, nx: usize, sign: f64) -> Vec<C64> {
        let mut out = vec![C64::new(0.0, 0.0); ny * nx];
        for ky in 0..ny {
            for kx in 0..nx {
                let mut acc = C64::new(0.0, 0.0);
                for y in 0..ny {
                    for xx in 0..nx {
                        let ph = sign
                            * 2.0
                            * std::f64::consts::PI
                            * ((ky * y) as f64 / ny as f64 + (kx * xx) as f64 / nx as f64);
                        acc += x[y * nx + xx] * C64::from_polar(1.0, ph);
                    }
                }
                out[ky * nx + kx] = acc;
            }
        }
        out
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<C64> {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        (0..n).map(|_| C64::new(next(), next())).collect()
    }

    #[test]
    fn matches_naive_dft_both_directions_with_dirty_scratch() {
        for &(ny, nx) in &[(1, 1), (2, 6), (5, 3), (8, 8), (12, 20), (33, 7)] {
            let plan = Fft2::new(ny, nx);
            for parallel in [false, true] {
                let mut scratch = plan.make_scratch(parallel);
                // Dirty scratch: results must not depend on its contents.
                scratch.transposed.iter_mut().for_each(|v| *v = C64::new(9.0, -7.0));
                scratch.fft.iter_mut().for_each(|v| *v = C64::new(3.0, 1.0));
                for (direction, sign) in [(FftDirection::Forward, -1.0), (FftDirection::Inverse, 1.0)] {
                    let x = pseudo_random(ny * nx, (ny * 31 + nx) as u64);
                    let want = naive_dft(&x, ny, nx, sign);
                    let mut got = x.clone();
                    plan.process(&mut got, direction, &mut scratch);
                    let err = got.iter().zip(&want).map(|(a, b)| (a - b).norm()).fold(0.0, f64::max);
                    assert!(err < 1e-10, "{ny}×{nx} {direction:?}: max error {err}");
                }
            }
        }
    }

    #[test]
    fn transpose_round_trip() {
        let (r, c) = (37, 70);
        let x = pseudo_random(r * c, 4);
        let mut t = vec![C64::default(); r * c];
        let mut back = vec![C64::default(); r * c];
        transpose(&x, &mut t, r, c, true);
        assert_eq!(t[5 * r + 3], x[3 * c + 5]);
        transpose(&t, &mut back, c, r, false);
        assert_eq!(x, back);
    }

    #[test]
    fn shift_half_is_an_involution_for_even_sides() {
        let (ny, nx) = (6, 8);
        let x = pseudo_random(ny * nx, 9);
        let mut a = vec![C64::default(); ny * nx];
        let mut b = vec![C64::default(); ny * nx];
        shift_half(&x, &mut a, ny, nx);
        assert_eq!(a[0], x[3 * nx + 4]);
        shift_half(&a, &mut b, ny, nx);
        assert_eq!(x, b);
    }
}
