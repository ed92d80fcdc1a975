//! GELU (Hendrycks & Gimpel 2016, arXiv 1606.08415) and the error function.
//!
//! - Exact: `gelu(x) = x/2 · (1 + erf(x/√2))` (PyTorch `approximate='none'`, used by
//!   ViT/DeiT, GFNet).
//! - Tanh: `x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³)))` (PyTorch
//!   `approximate='tanh'`).
//!
//! `erf` is computed in `f64`: for `|x| < 3` by the series with positive terms
//! `erf(x) = 2/√π · e^{−x²} Σₙ 2ⁿ x^{2n+1} / (1·3···(2n+1))` (Abramowitz & Stegun
//! 7.1.6; no cancellation), beyond by the continued fraction of `erfc`
//! (A&S 7.1.14). Both are accurate to a few ulp of `f64`, far below `f32` rounding.

use ndarray::{Array2, ArrayBase, ArrayView2, DataMut, Dimension};

use super::Real;
use serde::{Deserialize, Serialize};

/// Which GELU formula to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeluMode {
    /// `x Φ(x)` with the exact `erf` (default; ViT/DeiT).
    #[default]
    Exact,
    /// The tanh approximation.
    Tanh,
}

impl GeluMode {
    /// The activation of `x` in this mode.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            GeluMode::Exact => gelu(x),
            GeluMode::Tanh => gelu_tanh(x),
        }
    }
}

const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

/// The error function in `f64`.
fn erf_f64(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let a = x.abs();
    let r = if a < 3.0 {
        let x2 = a * a;
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        // Terms grow until 2n+1 > 2x² (n ≈ 9 at x = 3) and then fall geometrically;
        // 100 terms reach 1e-17 relative everywhere below 3.
        for _ in 0..100 {
            n += 1.0;
            term *= 2.0 * x2 / (2.0 * n + 1.0);
            sum += term;
            if term < 1e-17 * sum {
                break;
            }
        }
        FRAC_2_SQRT_PI * (-x2).exp() * sum
    } else if a < 6.0 {
        // erfc(a) = e^{−a²}/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …)))), evaluated
        // from the tail; 60 levels converge to f64 precision for a ≥ 3.
        let mut t = a;
        for k in (1..=60).rev() {
            t = a + 0.5 * k as f64 / t;
        }
        1.0 - FRAC_2_SQRT_PI / 2.0 * (-a * a).exp() / t
    } else {
        // erfc(6) ≈ 2e-17: below half an ulp of 1.
        1.0
    };
    r.copysign(x)
}

/// The error function `erf(x) = 2/√π ∫₀ˣ e^{−t²} dt`, computed in `f64` and rounded
/// to `f32` (within one `f32` ulp).
pub fn erf(x: f32) -> f32 {
    erf_f64(x as f64) as f32
}

/// Exact GELU `x/2 · (1 + erf(x/√2))`.
pub fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf_f64(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

/// Tanh-approximated GELU `x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh())
}

/// Applies GELU in `mode` to every element of `x`.
pub fn gelu_in_place<S, D>(x: &mut ArrayBase<S, D>, mode: GeluMode)
where
    S: DataMut<Elem = f32>,
    D: Dimension,
{
    x.mapv_inplace(|v| mode.apply(v));
}

/// GELU in `mode` of `x` in any [`Real`] type, with libm's `erf` (training path).
pub fn gelu_real<T: Real>(x: T, mode: GeluMode) -> T {
    let half = T::of(0.5);
    match mode {
        GeluMode::Exact => half * x * (T::one() + (x * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf()),
        GeluMode::Tanh => half * x * (T::one() + (T::of(SQRT_2_OVER_PI) * (x + T::of(0.044715) * x * x * x)).tanh()),
    }
}

/// `d gelu / dx` in `mode`: exact `Φ(x) + x·φ(x)`; tanh
/// `½(1 + tanh u) + ½x(1 − tanh² u)·√(2/π)(1 + 3·0.044715 x²)` with
/// `u = √(2/π)(x + 0.044715 x³)`.
pub fn gelu_derivative<T: Real>(x: T, mode: GeluMode) -> T {
    let half = T::of(0.5);
    match mode {
        GeluMode::Exact => {
            let cdf = half * (T::one() + (x * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf());
            let pdf =
                T::of(0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2) * (-half * x * x).exp();
            cdf + x * pdf
        }
        GeluMode::Tanh => {
            let c = T::of(SQRT_2_OVER_PI);
            let a = T::of(0.044715);
            let t = (c * (x + a * x * x * x)).tanh();
            half * (T::one() + t) + half * x * (T::one() - t * t) * c * (T::one() + T::of(3.0) * a * x * x)
        }
    }
}

/// GELU of every element of the pre-activation `x` (training path).
pub fn gelu_forward<T: Real>(x: ArrayView2<T>, mode: GeluMode) -> Array2<T> {
    x.mapv(|v| gelu_real(v, mode))
}

/// The backward pass of GELU: `∂L/∂x = g · gelu'(x)` for the pre-activation `x`.
///
/// # Panics
/// If `x` and `g` differ in shape.
pub fn gelu_backward<T: Real>(x: ArrayView2<T>, g: ArrayView2<T>, mode: GeluMode) -> Array2<T> {
    assert_eq!(x.dim(), g.dim(), "gelu_backward: input vs gradient");
    let mut d = g.to_owned();
    ndarray::Zip::from(&mut d)
        .and(&x)
        .for_each(|d, &x| *d *= gelu_derivative(x, mode));
    d
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values: Python 3 `math.erf` / `math.erfc` (the platform libm):
    //   python3 -c "import math; print(math.erf(0.5), math.erf(1), math.erfc(3))"
    #[test]
    fn erf_f64_matches_libm_values() {
        let cases = [
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.9, 0.9999589021219005),
            (3.0, 0.9999779095030014),
            (4.0, 0.9999999845827421),
        ];
        for (x, want) in cases {
            let got = erf_f64(x);
            assert!((got - want).abs() < 1e-14, "erf({x}) = {got}, want {want}");
            assert!((erf_f64(-x) + want).abs() < 1e-14);
        }
        // erfc(3) = 2.2090496998585438e-05: the continued fraction branch keeps
        // relative accuracy in the tail.
        let erfc3 = 1.0 - erf_f64(3.0000000001);
        assert!((erfc3 / 2.2090496998585438e-05 - 1.0).abs() < 1e-5, "{erfc3}");
        assert_eq!(erf_f64(0.0), 0.0);
        assert!(erf_f64(f64::NAN).is_nan());
        assert!((erf_f64(f64::INFINITY) - 1.0).abs() < 1e-300);
    }

    #[test]
    fn erf_is_continuous_at_branch_points() {
        for b in [3.0f64, 6.0] {
            let lo = erf_f64(b - 1e-12);
            let hi = erf_f64(b + 1e-12);
            assert!((hi - lo).abs() < 1e-14, "jump at {b}: {lo} vs {hi}");
        }
    }
}
