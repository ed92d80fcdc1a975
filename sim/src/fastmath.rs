//! Scalar maths for the per-sample hot paths, with results equal bit for bit to the
//! standard library's where they stand in for it.
//!
//! On baseline x86-64 (no SSE4.1) `f64::round` and `f64::floor` are library calls;
//! [`round`] and [`floor`] are casts and compares that return the same value,
//! signed zeros included. [`atan2_approx`] is a polynomial `atan2` within
//! [`ATAN2_APPROX_MAX_ERR`] of the true angle: callers that need the library's exact
//! decision use it only where the bound cannot change that decision (see
//! `Slm`'s phase quantiser) and call `f64::atan2` otherwise.

use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};

/// Below this magnitude every `f64` may have a fraction; from it on, every `f64` is
/// an integer (2^52).
const ALL_INTEGERS_FROM: f64 = 4_503_599_627_370_496.0;

/// `x` rounded to the nearest integer, halves up, for finite `0 ≤ x < 2^52`.
///
/// Without branches, and through `i64`, whose conversions are single instructions
/// (those of `u64` are not on x86-64).
#[inline]
pub(crate) fn round_nonneg(x: f64) -> usize {
    round_nonneg_i64(x) as usize
}

#[inline]
fn round_nonneg_i64(x: f64) -> i64 {
    let k = x as i64;
    k + i64::from(x - k as f64 >= 0.5)
}

/// `x.round()` (halves away from zero), the same value and sign for every `f64`.
#[inline]
pub fn round(x: f64) -> f64 {
    let a = x.abs();
    if a < ALL_INTEGERS_FROM {
        // `k` and `x − k` are exact below 2^52.
        (round_nonneg_i64(a) as f64).copysign(x)
    } else {
        // Integers, infinities and NaN round to themselves.
        x.round()
    }
}

/// `x.floor()`, the same value and sign for every `f64`.
#[inline]
pub fn floor(x: f64) -> f64 {
    if x.abs() < ALL_INTEGERS_FROM {
        // The cast truncates towards zero; one step down for negative fractions.
        // `floor(x)` has the sign of `x` (−0 included), which `copysign` restores
        // where the truncation gave +0.
        let t = (x as i64) as f64;
        let f = if t > x { t - 1.0 } else { t };
        f.copysign(x)
    } else {
        x.floor()
    }
}

/// `tan(π/8)`: above it, `atan a = π/4 + atan((a − 1)/(a + 1))`.
const TAN_PI_8: f64 = 0.414_213_562_373_095_1;

/// A bound on `|atan2_approx(y, x) − atan2(y, x)|` for finite `(y, x) ≠ (0, 0)`.
///
/// After the reductions `|z| ≤ tan(π/8)`, where the alternating Taylor series of
/// `atan z` stopped after `z^15/15` errs by at most the first omitted term,
/// `tan(π/8)^17/17 = 1.8e-8`; the reductions and the polynomial add rounding of a
/// few units in the last place of π. Tested against `f64::atan2`.
pub const ATAN2_APPROX_MAX_ERR: f64 = 2.0e-8;

/// `atan2(y, x)` in `[−π, π]` within [`ATAN2_APPROX_MAX_ERR`], for finite
/// `(y, x) ≠ (0, 0)`; `None` otherwise (use `f64::atan2` there). Signed zeros
/// follow `atan2`: `atan2_approx(−0, −1) = −π`.
///
/// One division and no data-dependent branches (the octant and the reduction are
/// selects), so that a frame of random phases costs no mispredictions.
#[inline]
pub fn atan2_approx(y: f64, x: f64) -> Option<f64> {
    if !(x.is_finite() && y.is_finite()) || (x == 0.0 && y == 0.0) {
        return None;
    }
    Some(atan2_approx_unchecked(y, x))
}

/// [`atan2_approx`] without the checks: within the bound for finite
/// `(y, x) ≠ (0, 0)`, NaN for `(0, 0)`, meaningless for non-finite input.
/// Straight-line code, so that loops over it vectorise.
#[inline(always)]
pub fn atan2_approx_unchecked(y: f64, x: f64) -> f64 {
    let (ax, ay) = (x.abs(), y.abs());
    // The first octant: atan(num/den), num ≤ den, den > 0.
    let swapped = ay > ax;
    let num = if swapped { ax } else { ay };
    let den = if swapped { ay } else { ax };
    // Above tan(π/8): atan(a) = π/4 + atan((a − 1)/(a + 1)) with a = num/den, i.e.
    // z = (num − den)/(num + den); either way |z| ≤ tan(π/8) (up to rounding).
    let big = num > TAN_PI_8 * den;
    let top = if big { num - den } else { num };
    let bottom = if big { num + den } else { den };
    let base = if big { FRAC_PI_4 } else { 0.0 };
    let z = top / bottom;
    // z·Σ_{j<8} (−1)^j w^j/(2j+1), w = z², by Estrin's scheme (a short
    // dependency chain; the rounding differs from Horner's by a few ulps).
    let w = z * z;
    let w2 = w * w;
    let w4 = w2 * w2;
    let p01 = 1.0 - w * (1.0 / 3.0);
    let p23 = 1.0 / 5.0 - w * (1.0 / 7.0);
    let p45 = 1.0 / 9.0 - w * (1.0 / 11.0);
    let p67 = 1.0 / 13.0 - w * (1.0 / 15.0);
    let p = z * ((p01 + w2 * p23) + w4 * (p45 + w2 * p67));
    let r = base + p;
    let r = if swapped { FRAC_PI_2 - r } else { r };
    let r = if x < 0.0 { PI - r } else { r };
    r.copysign(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    fn specials() -> Vec<f64> {
        let mut v = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            1.0 - f64::EPSILON,
            -(1.0 - f64::EPSILON),
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            ALL_INTEGERS_FROM - 0.5,
            -(ALL_INTEGERS_FROM - 0.5),
            ALL_INTEGERS_FROM,
            ALL_INTEGERS_FROM + 1.0,
            -ALL_INTEGERS_FROM - 1.0,
            9.3e18,
            -9.3e18,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for k in -4..=4 {
            let k = k as f64;
            v.extend([k, k + 0.5, k - 0.25, k + 0.75, k + 1e-12, k - 1e-12]);
        }
        v
    }

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn round_and_floor_equal_the_standard_library_bit_for_bit() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut xs = specials();
        xs.push(f64::NAN);
        for _ in 0..200_000 {
            let scale = 10f64.powi(rng.random_range(-3..17));
            xs.push((rng.random::<f64>() - 0.5) * scale);
            // Halves, where rounding decides.
            xs.push(((rng.random::<f64>() - 0.5) * scale).trunc() + 0.5);
        }
        for x in xs {
            assert!(
                same(round(x), x.round()),
                "round({x:e}) = {} vs {}",
                round(x),
                x.round()
            );
            assert!(
                same(floor(x), x.floor()),
                "floor({x:e}) = {} vs {}",
                floor(x),
                x.floor()
            );
        }
    }

    #[test]
    fn atan2_approx_is_within_its_bound() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(8);
        let mut worst = 0.0f64;
        let mut check = |y: f64, x: f64| {
            let a = atan2_approx(y, x).expect("finite, nonzero");
            let e = (a - y.atan2(x)).abs();
            worst = worst.max(e);
            assert!(e <= ATAN2_APPROX_MAX_ERR, "atan2({y}, {x}): error {e:e}");
        };
        // Dense on the circle (octant edges and the reduction at π/8 included), at
        // several radii, and random points.
        let n = 400_000;
        for i in 0..n {
            let th = -PI + 2.0 * PI * i as f64 / n as f64;
            for r in [1e-300, 1e-3, 1.0, 7.5e5] {
                check(r * th.sin(), r * th.cos());
            }
        }
        for k in 0..16 {
            let th = k as f64 * PI / 8.0 - PI;
            for d in [-1e-9, 0.0, 1e-9] {
                check((th + d).sin(), (th + d).cos());
            }
        }
        for _ in 0..400_000 {
            check(rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5);
        }
        for (y, x) in [
            (0.0, 1.0),
            (-0.0, 1.0),
            (0.0, -1.0),
            (-0.0, -1.0),
            (1.0, 0.0),
            (1.0, -0.0),
            (-1.0, 0.0),
            (1.0, 1.0),
            (5e-324, -1.0),
            (-5e-324, -1.0),
            (1e300, 1e-300),
        ] {
            check(y, x);
            assert_eq!(
                atan2_approx(y, x).unwrap().is_sign_negative(),
                y.atan2(x).is_sign_negative(),
                "sign of atan2({y}, {x})"
            );
        }
        // The series bound is the real error scale: a mistake in a coefficient
        // would show far above it, a missing term about 20× above.
        assert!(
            worst > 1e-9,
            "worst error {worst:e}: the bound is not tight, re-derive it"
        );
        assert_eq!(atan2_approx(0.0, 0.0), None);
        assert_eq!(atan2_approx(f64::NAN, 1.0), None);
        assert_eq!(atan2_approx(1.0, f64::INFINITY), None);
    }
}
