//! Convolution jobs and the direct (naive) reference.
//!
//! `full` convolution of an `H×W` input with a `K×L` kernel is
//! `y[n] = Σ_m x[m]·k[n − m]`, of size `(H+K−1)×(W+L−1)`. `same` keeps the `H×W`
//! window starting at `⌊(K−1)/2⌋` (as `scipy.signal.fftconvolve`), `valid` the
//! `(H−K+1)×(W−L+1)` window starting at `K−1` where the kernel overlaps the input
//! entirely. Correlation is convolution with the kernel flipped on both axes:
//! `y[n] = Σ_m x[n + m]·k[m]` for `valid`.

use ndarray::{s, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// Which part of the full convolution to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Mode {
    /// Only outputs where the kernel lies entirely inside the input.
    Valid,
    /// The input's size, centred on the full output.
    Same,
    /// Every output the kernel touches.
    Full,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Valid => "valid",
            Mode::Same => "same",
            Mode::Full => "full",
        })
    }
}

/// Convolution or correlation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `Σ x[m]·k[n − m]`.
    Convolution,
    /// `Σ x[n + m]·k[m]` (convolution with the flipped kernel).
    Correlation,
}

impl Mode {
    /// The kept window of the full output along one axis, `[start, end)`, for an
    /// input of `n` and a kernel of `k` samples (`valid` needs `n ≥ k`).
    pub fn window(self, n: usize, k: usize) -> (usize, usize) {
        match self {
            Mode::Full => (0, n + k - 1),
            Mode::Same => {
                let s = (k - 1) / 2;
                (s, s + n)
            }
            Mode::Valid => (k - 1, n),
        }
    }

    /// Output shape for an input of `input` and a kernel of `kernel` samples.
    pub fn output_shape(self, input: (usize, usize), kernel: (usize, usize)) -> (usize, usize) {
        let (a, b) = self.window(input.0, kernel.0);
        let (c, d) = self.window(input.1, kernel.1);
        (b - a, d - c)
    }
}

/// One 2-D convolution to run: borrowed input and kernel.
#[derive(Debug, Clone)]
pub struct ConvJob<'a> {
    /// Input map `[y, x]`.
    pub input: ArrayView2<'a, f64>,
    /// Kernel `[y, x]`.
    pub kernel: ArrayView2<'a, f64>,
    /// Which outputs to keep.
    pub mode: Mode,
    /// Convolution or correlation.
    pub op: Op,
}

impl<'a> ConvJob<'a> {
    /// A job.
    pub fn new(input: ArrayView2<'a, f64>, kernel: ArrayView2<'a, f64>, mode: Mode, op: Op) -> Self {
        Self {
            input,
            kernel,
            mode,
            op,
        }
    }

    /// The kernel the convolution actually uses (flipped for correlation).
    pub fn effective_kernel(&self) -> Array2<f64> {
        match self.op {
            Op::Convolution => self.kernel.to_owned(),
            Op::Correlation => self.kernel.slice(s![..;-1, ..;-1]).to_owned(),
        }
    }

    /// [`ConvJob::effective_kernel`] as a view (no copy).
    pub fn effective_kernel_view(&self) -> ArrayView2<'a, f64> {
        match self.op {
            Op::Convolution => self.kernel,
            Op::Correlation => self.kernel.slice_move(s![..;-1, ..;-1]),
        }
    }

    /// Shape of the result.
    pub fn output_shape(&self) -> (usize, usize) {
        self.mode.output_shape(self.input.dim(), self.kernel.dim())
    }
}

/// Direct convolution or correlation, `O(H·W·K·L)`: the independent reference.
///
/// # Panics
/// If `valid` is asked of an input smaller than the kernel, or an array is empty.
pub fn direct_conv(input: ArrayView2<f64>, kernel: ArrayView2<f64>, mode: Mode, op: Op) -> Array2<f64> {
    let (h, w) = input.dim();
    let (kh, kw) = kernel.dim();
    assert!(h > 0 && w > 0 && kh > 0 && kw > 0, "direct_conv: empty input or kernel");
    assert!(
        mode != Mode::Valid || (h >= kh && w >= kw),
        "direct_conv: valid mode needs input {h}×{w} ≥ kernel {kh}×{kw}"
    );
    let k = ConvJob::new(input, kernel, mode, op).effective_kernel();
    let (y0, y1) = mode.window(h, kh);
    let (x0, x1) = mode.window(w, kw);
    Array2::from_shape_fn((y1 - y0, x1 - x0), |(oy, ox)| {
        let (ny, nx) = (oy + y0, ox + x0);
        let mut acc = 0.0;
        // Input rows m with 0 ≤ n − m < kh.
        let my_lo = (ny + 1).saturating_sub(kh);
        let mx_lo = (nx + 1).saturating_sub(kw);
        for my in my_lo..=ny.min(h - 1) {
            for mx in mx_lo..=nx.min(w - 1) {
                acc += input[[my, mx]] * k[[ny - my, nx - mx]];
            }
        }
        acc
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn known_small_cases() {
        let x = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let k = array![[1.0, -1.0]];
        // Full: [x0, x1−x0, x2−x1, −x2] per row.
        let full = direct_conv(x.view(), k.view(), Mode::Full, Op::Convolution);
        assert_eq!(full, array![[1.0, 1.0, 1.0, -3.0], [4.0, 1.0, 1.0, -6.0]]);
        let valid = direct_conv(x.view(), k.view(), Mode::Valid, Op::Convolution);
        assert_eq!(valid, array![[1.0, 1.0], [1.0, 1.0]]);
        let corr = direct_conv(x.view(), k.view(), Mode::Valid, Op::Correlation);
        assert_eq!(corr, array![[-1.0, -1.0], [-1.0, -1.0]]);
        let same = direct_conv(x.view(), k.view(), Mode::Same, Op::Convolution);
        assert_eq!(same, array![[1.0, 1.0, 1.0], [4.0, 1.0, 1.0]]);
    }

    #[test]
    fn shapes() {
        assert_eq!(Mode::Valid.output_shape((16, 16), (5, 5)), (12, 12));
        assert_eq!(Mode::Same.output_shape((16, 9), (4, 5)), (16, 9));
        assert_eq!(Mode::Full.output_shape((16, 9), (4, 5)), (19, 13));
    }
}
