//! Exact Poisson draws, fast: the camera's shot noise.
//!
//! - Means below 10: the multiplication method (Knuth, *TAOCP* vol. 2, §3.4.1):
//!   count uniforms until their product drops below `e^−μ`.
//! - Means from 10: the transformed rejection method with squeeze, PTRS
//!   (W. Hörmann, "The transformed rejection method for generating Poisson random
//!   variables", *Insurance: Mathematics and Economics* 12, 1993, 39–45), the
//!   method NumPy uses. About 1.1 pairs of uniforms per draw, and most draws are
//!   accepted by the squeeze without a logarithm.
//! - Means from 2^52, where `f64` no longer holds every count: the normal
//!   approximation `N(μ, μ)`, rounded (relative skewness `μ^−½ < 1.5e-8`).
//!
//! Both methods are exact: the draws follow the Poisson law to the precision of
//! the arithmetic. PTRS's acceptance test compares `ln V` with the log-probability
//! `ln p(k) + ln μ!`-style terms; written naively (`−μ + k ln μ − ln k!`) it loses
//! absolute precision ~`ε·μ ln μ`, so here it is written as
//! `k·(ln(1 + δ) − δ) − ½ ln(2πk) − c(k)` with `δ = (μ − k)/k` and `c` the
//! Stirling series' remainder, which keeps it to ~`ε·|μ − k|` at any mean.
//!
//! Checked in the tests by a χ² goodness-of-fit test against the probabilities
//! computed by direct summation of `ln i`, at means from 0.5 to 10^6.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

/// Above this mean a draw is `N(μ, μ)`, rounded: 2^52.
pub const NORMAL_ABOVE: f64 = 4_503_599_627_370_496.0;

/// Below this mean, the multiplication method.
const SMALL: f64 = 10.0;

/// A Poisson draw with mean `mu` (0 for `mu ≤ 0`).
#[inline]
pub fn poisson<R: Rng + ?Sized>(mu: f64, rng: &mut R) -> f64 {
    if mu <= 0.0 {
        0.0
    } else if mu < SMALL {
        multiplication(mu, rng)
    } else if mu < NORMAL_ABOVE {
        ptrs(mu, rng)
    } else {
        let z: f64 = StandardNormal.sample(rng);
        (mu + mu.sqrt() * z).round()
    }
}

fn multiplication<R: Rng + ?Sized>(mu: f64, rng: &mut R) -> f64 {
    let limit = (-mu).exp();
    let (mut k, mut prod) = (0.0, 1.0);
    loop {
        prod *= rng.random::<f64>();
        if prod <= limit {
            return k;
        }
        k += 1.0;
    }
}

#[inline]
fn ptrs<R: Rng + ?Sized>(mu: f64, rng: &mut R) -> f64 {
    let b = 0.931 + 2.53 * mu.sqrt();
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let v_r = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.random::<f64>() - 0.5;
        let v = rng.random::<f64>();
        let us = 0.5 - u.abs();
        let k = crate::fastmath::floor((2.0 * a / us + b) * u + mu + 0.43);
        if us >= 0.07 && v <= v_r {
            return k;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        // ln(V·α⁻¹/(a/us² + b)) in one logarithm (the squeeze took most draws).
        if (v * inv_alpha / (a / (us * us) + b)).ln() <= ln_pmf(k, mu) {
            return k;
        }
    }
}

/// `ln(k!)` for `k < 10`.
const LN_FACTORIAL: [f64; 10] = [
    0.0,
    0.0,
    std::f64::consts::LN_2,
    1.791_759_469_228_055,
    3.178_053_830_347_146,
    4.787_491_742_782_046,
    6.579_251_212_010_101,
    8.525_161_361_065_415,
    10.604_602_902_745_25,
    12.801_827_480_081_469,
];

/// `ln p(k) = −μ + k ln μ − ln k!` of Poisson(μ), written so that it keeps its
/// absolute precision at large means (module docs).
pub(crate) fn ln_pmf(k: f64, mu: f64) -> f64 {
    if k < 10.0 {
        return -mu + k * mu.ln() - LN_FACTORIAL[k as usize];
    }
    // ln k! = k ln k − k + ½ ln(2πk) + c(k), c(k) = 1/(12k) − 1/(360k³) + 1/(1260k⁵)
    // − 1/(1680k⁷) + …, the next term below 1/(1188·10⁹) for k ≥ 10.
    let r = 1.0 / k;
    let r2 = r * r;
    let c = r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 * (1.0 / 1260.0 - r2 / 1680.0)));
    let d = (mu - k) / k;
    k * (d.ln_1p() - d) - 0.5 * (std::f64::consts::TAU * k).ln() - c
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::SeedableRng;

    /// `ln p(k)` by direct summation of `ln i`: independent of the Stirling series.
    fn ln_pmf_direct(k: u64, mu: f64) -> f64 {
        -mu + k as f64 * mu.ln() - (1..=k).map(|i| (i as f64).ln()).sum::<f64>()
    }

    #[test]
    fn log_pmf_matches_direct_summation() {
        for mu in [10.0, 37.5, 1e3, 1e5] {
            let lo = (mu - 6.0 * f64::sqrt(mu)).max(0.0) as u64;
            let hi = (mu + 6.0 * f64::sqrt(mu)) as u64;
            for k in lo..=hi {
                let (a, b) = (ln_pmf(k as f64, mu), ln_pmf_direct(k, mu));
                // The direct sum itself carries ~ε·k·ln k.
                let tol = 1e-12 * (1.0 + k as f64 * (k as f64 + 1.0).ln());
                assert!((a - b).abs() <= tol, "μ={mu} k={k}: {a} vs {b}");
            }
        }
    }

    /// χ² goodness of fit of 200 000 draws against the Poisson probabilities, bins
    /// merged until each expects ≥ 20 counts, tails in the end bins. The bound is
    /// the χ² quantile at p = 1e-6 (Wilson–Hilferty), so a correct sampler fails
    /// once in a million seeds; a biased one (e.g. a normal approximation at μ = 30)
    /// fails.
    fn chi_square(mu: f64, draw: impl Fn(&mut Xoshiro256PlusPlus) -> f64) -> (f64, f64) {
        let n = 200_000usize;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(mu.to_bits());
        let hi = (mu + 12.0 * mu.sqrt() + 20.0) as u64;
        let mut counts = vec![0u64; hi as usize + 1];
        for _ in 0..n {
            let k = draw(&mut rng);
            assert!(k >= 0.0 && k == k.floor(), "a count: {k}");
            counts[(k as u64).min(hi) as usize] += 1;
        }
        // ln k! summed as k grows: the direct sum, in one pass.
        let mut ln_fact = 0.0;
        let p: Vec<f64> = (0..=hi)
            .map(|k| {
                if k > 0 {
                    ln_fact += (k as f64).ln();
                }
                (-mu + k as f64 * mu.ln() - ln_fact).exp()
            })
            .collect();
        // Bins [lo, k] merged until expected ≥ 20; first and last take the tails.
        let (mut stat, mut bins) = (0.0, 0usize);
        let (mut e, mut o) = (0.0, 0.0);
        let mut cum: f64 = 0.0;
        for k in 0..=hi as usize {
            let pk = if k == hi as usize { (1.0 - cum).max(0.0) } else { p[k] };
            cum += pk;
            e += pk * n as f64;
            o += counts[k] as f64;
            if e >= 20.0 && (1.0 - cum) * n as f64 >= 20.0 || k == hi as usize {
                stat += (o - e) * (o - e) / e.max(1e-300);
                bins += 1;
                e = 0.0;
                o = 0.0;
            }
        }
        let dof = (bins - 1) as f64;
        // Wilson–Hilferty: χ²_q ≈ dof·(1 − 2/(9 dof) + z·√(2/(9 dof)))³, z(1e-6) = 4.753.
        let t = 2.0 / (9.0 * dof);
        let bound = dof * (1.0 - t + 4.753 * t.sqrt()).powi(3);
        (stat, bound)
    }

    #[test]
    fn draws_follow_the_poisson_law() {
        for mu in [0.5, 3.0, 9.99, 10.0, 30.0, 1e3, 6e3, 1e6] {
            let (stat, bound) = chi_square(mu, |r| poisson(mu, r));
            eprintln!("μ={mu}: χ²={stat:.1} ≤ {bound:.1}");
            assert!(stat <= bound, "μ={mu}: χ² {stat} above {bound}");
        }
    }

    #[test]
    fn the_test_rejects_a_normal_approximation() {
        let mu = 30.0;
        let (stat, bound) = chi_square(mu, |r| {
            let z: f64 = StandardNormal.sample(r);
            (mu + mu.sqrt() * z).round().max(0.0)
        });
        assert!(stat > bound, "χ² {stat} should exceed {bound}");
    }

    #[test]
    fn non_positive_means_give_zero() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        assert_eq!(poisson(0.0, &mut rng), 0.0);
        assert_eq!(poisson(-1.0, &mut rng), 0.0);
    }
}
