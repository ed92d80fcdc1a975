//! The Fourier-plane pupil: a circular stop (the limiting lens aperture) and
//! wavefront aberrations written as Zernike polynomials.
//!
//! Zernike terms follow Noll's numbering and normalisation (R. J. Noll, "Zernike
//! polynomials and atmospheric turbulence", JOSA 66, 207 (1976)): each polynomial has
//! unit RMS over the unit disk, so a coefficient is the RMS wavefront error it adds,
//! in waves. The radial coordinate is normalised by the pupil radius.

use serde::{Deserialize, Serialize};

/// Zernike coefficients in waves RMS (Noll normalisation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZernikeConfig {
    /// Z4, `√3(2ρ²−1)`.
    pub defocus: f64,
    /// Z6, `√6 ρ² cos 2θ` (astigmatism at 0°).
    pub astigmatism_0: f64,
    /// Z5, `√6 ρ² sin 2θ` (astigmatism at 45°).
    pub astigmatism_45: f64,
    /// Z8, `√8 (3ρ³−2ρ) cos θ` (coma along x).
    pub coma_x: f64,
    /// Z7, `√8 (3ρ³−2ρ) sin θ` (coma along y).
    pub coma_y: f64,
    /// Z11, `√5 (6ρ⁴−6ρ²+1)` (primary spherical).
    pub spherical: f64,
}

impl ZernikeConfig {
    /// `(key, value)` of every coefficient, for validation and reports.
    pub fn terms(&self) -> [(&'static str, f64); 6] {
        [
            ("defocus", self.defocus),
            ("astigmatism_0", self.astigmatism_0),
            ("astigmatism_45", self.astigmatism_45),
            ("coma_x", self.coma_x),
            ("coma_y", self.coma_y),
            ("spherical", self.spherical),
        ]
    }

    /// True when every coefficient is zero.
    pub fn is_zero(&self) -> bool {
        self.terms().iter().all(|(_, c)| *c == 0.0)
    }

    /// RMS wavefront error over the unit disk, waves: `√Σc²` by orthonormality.
    pub fn rms_waves(&self) -> f64 {
        self.terms().iter().map(|(_, c)| c * c).sum::<f64>().sqrt()
    }

    /// Wavefront `W(x, y)` in waves at pupil coordinates normalised by the pupil
    /// radius (`x = ρ cos θ`, `y = ρ sin θ`).
    pub fn wavefront_waves(&self, x: f64, y: f64) -> f64 {
        let r2 = x * x + y * y;
        let (s6, s8, s3, s5) = (6f64.sqrt(), 8f64.sqrt(), 3f64.sqrt(), 5f64.sqrt());
        // ρ² cos 2θ = x² − y², ρ² sin 2θ = 2xy, ρ cos θ = x, ρ sin θ = y.
        let coma_radial = 3.0 * r2 - 2.0; // (3ρ³ − 2ρ)/ρ
        self.defocus * s3 * (2.0 * r2 - 1.0)
            + self.astigmatism_0 * s6 * (x * x - y * y)
            + self.astigmatism_45 * s6 * 2.0 * x * y
            + self.coma_x * s8 * coma_radial * x
            + self.coma_y * s8 * coma_radial * y
            + self.spherical * s5 * (6.0 * r2 * r2 - 6.0 * r2 + 1.0)
    }
}

/// Fraction of the rectangular cell centred at `(cy, cx)` with sides `(hy, hx)`
/// that lies inside the circle of `radius` about the origin: 1 or 0 away from the
/// edge, estimated on a 16 × 16 sub-grid for cells the edge crosses. This
/// anti-aliases the stop so that its discretisation error falls with the grid.
pub fn circle_coverage(cy: f64, cx: f64, hy: f64, hx: f64, radius: f64) -> f64 {
    let (ay, ax) = (cy.abs(), cx.abs());
    let far = ((ay + hy / 2.0).powi(2) + (ax + hx / 2.0).powi(2)).sqrt();
    if far <= radius {
        return 1.0;
    }
    let near_y = (ay - hy / 2.0).max(0.0);
    let near_x = (ax - hx / 2.0).max(0.0);
    if (near_y * near_y + near_x * near_x).sqrt() >= radius {
        return 0.0;
    }
    const S: usize = 16;
    let mut inside = 0usize;
    for i in 0..S {
        let y = cy - hy / 2.0 + (i as f64 + 0.5) * hy / S as f64;
        for j in 0..S {
            let x = cx - hx / 2.0 + (j as f64 + 0.5) * hx / S as f64;
            if x * x + y * y <= radius * radius {
                inside += 1;
            }
        }
    }
    inside as f64 / (S * S) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Averages over a fine polar-area grid of the unit disk.
    fn disk_mean(f: impl Fn(f64, f64) -> f64) -> f64 {
        let n = 600;
        let (mut acc, mut count) = (0.0, 0.0);
        for i in 0..n {
            for j in 0..n {
                let x = -1.0 + (j as f64 + 0.5) * 2.0 / n as f64;
                let y = -1.0 + (i as f64 + 0.5) * 2.0 / n as f64;
                if x * x + y * y <= 1.0 {
                    acc += f(x, y);
                    count += 1.0;
                }
            }
        }
        acc / count
    }

    #[test]
    fn each_term_has_zero_mean_and_unit_rms() {
        for k in 0..6 {
            let mut z = ZernikeConfig::default();
            match k {
                0 => z.defocus = 1.0,
                1 => z.astigmatism_0 = 1.0,
                2 => z.astigmatism_45 = 1.0,
                3 => z.coma_x = 1.0,
                4 => z.coma_y = 1.0,
                _ => z.spherical = 1.0,
            }
            let mean = disk_mean(|x, y| z.wavefront_waves(x, y));
            let rms = disk_mean(|x, y| z.wavefront_waves(x, y).powi(2)).sqrt();
            assert!(mean.abs() < 5e-3, "term {k}: mean {mean}");
            assert!((rms - 1.0).abs() < 5e-3, "term {k}: rms {rms}");
        }
    }

    #[test]
    fn terms_are_orthogonal() {
        let z = ZernikeConfig {
            defocus: 0.3,
            astigmatism_0: -0.2,
            astigmatism_45: 0.1,
            coma_x: 0.05,
            coma_y: -0.07,
            spherical: 0.12,
        };
        let rms = disk_mean(|x, y| z.wavefront_waves(x, y).powi(2)).sqrt();
        assert!(
            (rms - z.rms_waves()).abs() < 2e-3 * z.rms_waves(),
            "{rms} vs {}",
            z.rms_waves()
        );
    }

    #[test]
    fn coverage_sums_to_the_disk_area() {
        let (n, h, r) = (200, 0.01, 0.7);
        let mut area = 0.0;
        for i in 0..n {
            for j in 0..n {
                let cy = (i as f64 - n as f64 / 2.0) * h;
                let cx = (j as f64 - n as f64 / 2.0) * h;
                area += circle_coverage(cy, cx, h, h, r) * h * h;
            }
        }
        let want = std::f64::consts::PI * r * r;
        assert!((area - want).abs() < 1e-4 * want, "{area} vs {want}");
    }
}
