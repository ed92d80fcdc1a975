//! The camera: expected photons per pixel in, digital numbers (ADU) out.
//!
//! The model is the linear camera model of the EMVA Standard 1288 (Release 4.0,
//! 2021, "Standard for Characterization of Image Sensors and Cameras", §2), as in
//! J. R. Janesick, *Photon Transfer* (SPIE Press, 2007). Per pixel `(i, j)` and
//! exposure:
//!
//! ```text
//! μ_photo = QE · photons · PRNU(i,j)                    expected photo-electrons
//! e       = Poisson(μ_photo + dark_current·t)           shot noise on photo and dark charge
//!         + DSNU(i,j)                                   fixed offset, electrons (may be < 0)
//! e       = min(e, full_well)                           saturation
//! e      += N(0, read_noise²)                           read noise
//! adu     = e / gain + bias                             conversion gain (e⁻/ADU), offset
//! adu     = clamp(round(adu), 0, 2^bits − 1)            ADC, when `adc_bits` is set
//! ```
//!
//! Shot noise *replaces* the mean by a Poisson draw around it (the variance then
//! equals the mean, EMVA 1288 eq. 6); it is never added on top of the mean. The
//! EMVA system gain `K` (DN/e⁻) is `1 / gain_e_per_adu` here. The quantisation
//! noise of an ideal ADC is `Δ²/12` with `Δ = gain_e_per_adu` electrons.
//!
//! Fixed-pattern noise (EMVA 1288 §8): photo-response non-uniformity (PRNU, a
//! per-pixel gain `1 + prnu_rms·z`, clamped at 0) and dark-signal non-uniformity
//! (DSNU, a per-pixel offset `dsnu_rms_e·z'` electrons) are drawn once, in
//! [`Camera::new`], from `StdRng::seed_from_u64(fixed_pattern_seed)`: for every
//! pixel in row-major order the two standard normals `z`, `z'` are drawn in that
//! order, so each map is the same pattern scaled by its RMS whatever the other
//! one is set to. DSNU is modelled as an offset: it carries no shot noise.
//!
//! [`Camera::expose`] takes one `u64` from the caller's generator and derives one
//! `Xoshiro256PlusPlus` per row from it, so rows run in parallel (rayon) and the
//! result is bit-identical for the same seed whatever the thread count.

use ndarray::{Array2, ArrayView2, Zip};
use rand::rngs::{StdRng, Xoshiro256PlusPlus};
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// Configuration of the camera. The default is an ideal noiseless camera:
/// QE 1, gain 1 e⁻/ADU, no bias, no dark current, no read noise, no full well,
/// no ADC, no fixed-pattern noise (so `adu = photons`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    /// Pixel columns; unset: the machine covers the output frame.
    pub pixels_x: Option<usize>,
    /// Pixel rows; unset: the machine covers the output frame.
    pub pixels_y: Option<usize>,
    /// Pixel pitch in metres (square pixels); unset: the machine matches it to the
    /// image of one input-SLM pixel.
    pub pitch_m: Option<f64>,
    /// Quantum efficiency, photo-electrons per photon, in (0, 1]; default 1.
    pub quantum_efficiency: f64,
    /// Exposure time in seconds, > 0; default 1e-3.
    pub exposure_s: f64,
    /// Photo-electrons a pixel collects from a flat, full-scale field (the photon
    /// budget), > 0; unset (default): no budget, and the machine reads noiselessly
    /// unless the laser power gives one.
    pub full_scale_e: Option<f64>,
    /// Dark current in electrons per second per pixel, ≥ 0; default 0.
    pub dark_current_e_per_s: f64,
    /// Read noise, electrons RMS, ≥ 0; default 0.
    pub read_noise_e: f64,
    /// Full-well capacity (saturation) in electrons, > 0; unset (default): none.
    pub full_well_e: Option<f64>,
    /// Conversion gain in electrons per ADU, > 0; default 1.
    pub gain_e_per_adu: f64,
    /// Offset added to every read-out, ADU, ≥ 0 (and below the ADC ceiling);
    /// default 0.
    pub bias_adu: f64,
    /// ADC resolution in bits, 1..=24; unset (default): no quantisation, no clipping.
    pub adc_bits: Option<u32>,
    /// Read-out time per frame in seconds, ≥ 0, for the latency model; default 0.
    pub readout_s: f64,
    /// Largest frame rate in hertz, > 0, for the latency model; unset (default): none.
    pub max_frame_rate_hz: Option<f64>,
    /// Photo-response non-uniformity, relative RMS of the per-pixel gain, in [0, 1);
    /// default 0.
    pub prnu_rms: f64,
    /// Dark-signal non-uniformity, electrons RMS of the per-pixel offset, ≥ 0;
    /// default 0.
    pub dsnu_rms_e: f64,
    /// Seed of the PRNU and DSNU maps; default 0.
    pub fixed_pattern_seed: u64,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            pixels_x: None,
            pixels_y: None,
            pitch_m: None,
            quantum_efficiency: 1.0,
            exposure_s: 1e-3,
            full_scale_e: None,
            dark_current_e_per_s: 0.0,
            read_noise_e: 0.0,
            full_well_e: None,
            gain_e_per_adu: 1.0,
            bias_adu: 0.0,
            adc_bits: None,
            readout_s: 0.0,
            max_frame_rate_hz: None,
            prnu_rms: 0.0,
            dsnu_rms_e: 0.0,
            fixed_pattern_seed: 0,
        }
    }
}

/// Checks `v` is finite and inside the range `ok` describes as `valid`.
fn check(prefix: &str, key: &str, v: f64, ok: bool, valid: &str) -> Result<(), SimError> {
    if v.is_finite() && ok {
        Ok(())
    } else {
        Err(SimError::invalid(format!("{prefix}.{key}"), v, valid))
    }
}

impl CameraConfig {
    /// Checks every value; errors name `{prefix}.{key}` (e.g. `camera.read_noise_e`)
    /// and the valid range. NaN and infinities are rejected everywhere.
    pub fn validate(&self, prefix: &str) -> Result<(), SimError> {
        for (key, v) in [("pixels_x", self.pixels_x), ("pixels_y", self.pixels_y)] {
            if v == Some(0) {
                return Err(SimError::invalid(format!("{prefix}.{key}"), 0, "must be ≥ 1 pixel"));
            }
        }
        let positive = "must be a finite number > 0";
        let non_negative = "must be a finite number ≥ 0";
        let q = self.quantum_efficiency;
        check(
            prefix,
            "quantum_efficiency",
            q,
            q > 0.0 && q <= 1.0,
            "must be in (0, 1]",
        )?;
        check(prefix, "exposure_s", self.exposure_s, self.exposure_s > 0.0, positive)?;
        let d = self.dark_current_e_per_s;
        check(prefix, "dark_current_e_per_s", d, d >= 0.0, non_negative)?;
        check(
            prefix,
            "read_noise_e",
            self.read_noise_e,
            self.read_noise_e >= 0.0,
            non_negative,
        )?;
        let g = self.gain_e_per_adu;
        check(prefix, "gain_e_per_adu", g, g > 0.0, positive)?;
        check(prefix, "bias_adu", self.bias_adu, self.bias_adu >= 0.0, non_negative)?;
        check(prefix, "readout_s", self.readout_s, self.readout_s >= 0.0, non_negative)?;
        check(
            prefix,
            "prnu_rms",
            self.prnu_rms,
            (0.0..1.0).contains(&self.prnu_rms),
            "must be in [0, 1)",
        )?;
        check(
            prefix,
            "dsnu_rms_e",
            self.dsnu_rms_e,
            self.dsnu_rms_e >= 0.0,
            non_negative,
        )?;
        let optional = [
            ("pitch_m", self.pitch_m),
            ("full_scale_e", self.full_scale_e),
            ("full_well_e", self.full_well_e),
            ("max_frame_rate_hz", self.max_frame_rate_hz),
        ];
        for (key, v) in optional {
            if let Some(v) = v {
                check(prefix, key, v, v > 0.0, positive)?;
            }
        }
        if let Some(bits) = self.adc_bits {
            if !(1..=24).contains(&bits) {
                return Err(SimError::invalid(
                    format!("{prefix}.adc_bits"),
                    bits,
                    "must be in 1..=24",
                ));
            }
            let top = adc_top(bits);
            if self.bias_adu >= top {
                return Err(SimError::invalid(
                    format!("{prefix}.bias_adu"),
                    self.bias_adu,
                    format!("must be below the ADC ceiling 2^{bits} − 1 = {top}"),
                ));
            }
        }
        Ok(())
    }

    /// True when the read-out adds nothing but the linear map `QE·photons/gain + bias`:
    /// no read noise, dark current, ADC, full well, PRNU or DSNU. Shot noise is not
    /// decided here but by the photon budget (the `shot_noise` flag of
    /// [`Camera::expose`]).
    pub fn is_noiseless(&self) -> bool {
        self.read_noise_e == 0.0
            && self.dark_current_e_per_s == 0.0
            && self.adc_bits.is_none()
            && self.full_well_e.is_none()
            && self.prnu_rms == 0.0
            && self.dsnu_rms_e == 0.0
    }
}

/// Largest ADC code, `2^bits − 1`.
fn adc_top(bits: u32) -> f64 {
    ((1u64 << bits) - 1) as f64
}

use super::poisson::poisson;

/// SplitMix64's first output from state `x`, to spread row indices over the seed
/// space.
fn splitmix64(x: u64) -> u64 {
    crate::rng::split_seed(x, 0)
}

/// Which pixels an exposure reads ([`Camera::expose_electrons`]): per sensor row,
/// sorted disjoint column ranges `[a, b)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRegion {
    shape: (usize, usize),
    rows: Vec<Vec<(usize, usize)>>,
}

impl ReadRegion {
    /// The union of rectangles `[y, x, h, w]` on a sensor of `shape`, periodic:
    /// a rectangle past the last row or column goes on at the first (the frame's
    /// wrap). Rectangles larger than the sensor cover it.
    pub fn periodic(shape: (usize, usize), rects: &[[usize; 4]]) -> Self {
        let (ny, nx) = shape;
        let mut rows: Vec<Vec<(usize, usize)>> = vec![Vec::new(); ny];
        for &[y, x, h, w] in rects {
            let (h, w) = (h.min(ny), w.min(nx));
            if h == 0 || w == 0 {
                continue;
            }
            let x = x % nx;
            let spans: &[(usize, usize)] = if x + w <= nx {
                &[(x, x + w)]
            } else {
                &[(x, nx), (0, x + w - nx)]
            };
            for r in 0..h {
                rows[(y + r) % ny].extend_from_slice(spans);
            }
        }
        for row in &mut rows {
            row.sort_unstable();
            let mut merged: Vec<(usize, usize)> = Vec::with_capacity(row.len());
            for &(a, b) in row.iter() {
                match merged.last_mut() {
                    Some(last) if a <= last.1 => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            *row = merged;
        }
        Self { shape, rows }
    }

    /// The column ranges `[a, b)` read in row `i` (sorted, disjoint).
    ///
    /// # Panics
    /// If `i` is not a row of the sensor.
    pub fn row(&self, i: usize) -> &[(usize, usize)] {
        &self.rows[i]
    }

    /// Pixels read.
    pub fn pixels(&self) -> usize {
        self.rows.iter().flatten().map(|(a, b)| b - a).sum()
    }

    /// Whether pixel `(i, j)` is read.
    pub fn contains(&self, i: usize, j: usize) -> bool {
        self.rows
            .get(i)
            .is_some_and(|r| r.iter().any(|&(a, b)| (a..b).contains(&j)))
    }
}

/// A camera of a given sensor shape with its fixed-pattern maps drawn. Build with
/// [`Camera::new`], read with [`Camera::expose`].
#[derive(Debug, Clone)]
pub struct Camera {
    config: CameraConfig,
    shape: (usize, usize),
    /// PRNU gain per pixel; `None` when `prnu_rms == 0` (all ones).
    prnu: Option<Array2<f64>>,
    /// DSNU offset per pixel in electrons; `None` when `dsnu_rms_e == 0`.
    dsnu: Option<Array2<f64>>,
}

impl Camera {
    /// Validates `config` (errors name `{prefix}.{key}`) and draws the
    /// fixed-pattern maps for a sensor of `shape = (rows, cols)`: PRNU
    /// `1 + prnu_rms·z` clamped at 0, DSNU `dsnu_rms_e·z'` electrons, with `z, z'`
    /// standard normals from `StdRng::seed_from_u64(fixed_pattern_seed)` (see the
    /// module docs for the order). `shape` is authoritative: the machine resolves
    /// `pixels_x`/`pixels_y` into it.
    pub fn new(config: CameraConfig, shape: (usize, usize), prefix: &str) -> Result<Self, SimError> {
        config.validate(prefix)?;
        let (mut prnu, mut dsnu) = (None, None);
        if config.prnu_rms > 0.0 || config.dsnu_rms_e > 0.0 {
            let mut rng = StdRng::seed_from_u64(config.fixed_pattern_seed);
            let mut gain = Array2::<f64>::zeros(shape);
            let mut offset = Array2::<f64>::zeros(shape);
            for (g, o) in gain.iter_mut().zip(offset.iter_mut()) {
                let z: f64 = rng.sample(StandardNormal);
                let z2: f64 = rng.sample(StandardNormal);
                *g = (1.0 + config.prnu_rms * z).max(0.0);
                *o = config.dsnu_rms_e * z2;
            }
            prnu = (config.prnu_rms > 0.0).then_some(gain);
            dsnu = (config.dsnu_rms_e > 0.0).then_some(offset);
        }
        Ok(Camera {
            config,
            shape,
            prnu,
            dsnu,
        })
    }

    /// The configuration this camera was built from.
    pub fn config(&self) -> &CameraConfig {
        &self.config
    }

    /// Sensor shape `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        self.shape
    }

    /// PRNU gain of pixel `(i, j)` (row, column): 1 without PRNU.
    ///
    /// # Panics
    /// If `(i, j)` is outside the sensor while a PRNU map exists.
    pub fn prnu_gain(&self, i: usize, j: usize) -> f64 {
        self.prnu.as_ref().map_or(1.0, |m| m[[i, j]])
    }

    /// Expected dark electrons of pixel `(i, j)`: `dark_current·exposure + DSNU(i, j)`
    /// (uniform without DSNU).
    ///
    /// # Panics
    /// If `(i, j)` is outside the sensor while a DSNU map exists.
    pub fn dark_mean_e(&self, i: usize, j: usize) -> f64 {
        let dark = self.config.dark_current_e_per_s * self.config.exposure_s;
        dark + self.dsnu.as_ref().map_or(0.0, |m| m[[i, j]])
    }

    /// One exposure. `photons` are the expected photons arriving at each pixel
    /// (means, ≥ 0); returns digital numbers (ADU) as `f64`, following the chain in
    /// the module docs. With `shot_noise` the photo and dark charge is a Poisson
    /// draw around its mean (which it replaces); without, it is the mean itself.
    /// Means above 2^52 electrons use the normal approximation `N(μ, μ)`.
    ///
    /// Takes exactly one `u64` from `rng`, whatever the settings; rows draw from
    /// generators derived from it, so the output does not depend on the thread count.
    ///
    /// # Panics
    /// If `photons` differs in shape from the sensor, or holds a negative or
    /// non-finite value.
    pub fn expose<R: Rng + ?Sized>(&self, photons: ArrayView2<f64>, shot_noise: bool, rng: &mut R) -> Array2<f64> {
        self.read_pixels(photons, shot_noise, rng, None, false)
    }

    /// [`Camera::expose`] then [`Camera::signal_electrons`], on the pixels of
    /// `region` only (every pixel if `None`); pixels outside it are not read and
    /// come back 0. A read pixel's value has the distribution of the full read-out
    /// (its noise depends on no other pixel), so a caller that keeps only `region`
    /// loses nothing, and skips the draws of the rest.
    ///
    /// Takes exactly one `u64` from `rng`.
    ///
    /// # Panics
    /// As [`Camera::expose`], and if `region` was made for another sensor shape.
    pub fn expose_electrons<R: Rng + ?Sized>(
        &self,
        photons: ArrayView2<f64>,
        shot_noise: bool,
        rng: &mut R,
        region: Option<&ReadRegion>,
    ) -> Array2<f64> {
        if let Some(r) = region {
            assert_eq!(r.shape, self.shape, "camera: read region of another sensor shape");
        }
        self.read_pixels(photons, shot_noise, rng, region, true)
    }

    fn read_pixels<R: Rng + ?Sized>(
        &self,
        photons: ArrayView2<f64>,
        shot_noise: bool,
        rng: &mut R,
        region: Option<&ReadRegion>,
        calibrate: bool,
    ) -> Array2<f64> {
        assert_eq!(
            photons.dim(),
            self.shape,
            "camera: photon map of shape {:?} on a sensor of shape {:?}",
            photons.dim(),
            self.shape
        );
        let base: u64 = rng.random();
        let c = &self.config;
        let qe = c.quantum_efficiency;
        let dark = c.dark_current_e_per_s * c.exposure_s;
        let read_noise = c.read_noise_e;
        let inv_gain = 1.0 / c.gain_e_per_adu;
        let adc_max = c.adc_bits.map(adc_top);
        let (gain, bias) = (c.gain_e_per_adu, c.bias_adu);
        let cols = self.shape.1;
        let mut out = Array2::<f64>::zeros(self.shape);
        Zip::indexed(out.rows_mut())
            .and(photons.rows())
            .par_for_each(|i, mut out_row, photon_row| {
                let ranges: &[(usize, usize)] = match region {
                    Some(r) => &r.rows[i],
                    None => &[(0, cols)],
                };
                if ranges.is_empty() {
                    return;
                }
                let mut row_rng = Xoshiro256PlusPlus::seed_from_u64(base ^ splitmix64(i as u64));
                let prnu_row = self.prnu.as_ref().map(|m| m.row(i));
                let dsnu_row = self.dsnu.as_ref().map(|m| m.row(i));
                for &(a, b) in ranges {
                    for j in a..b {
                        let p = photon_row[j];
                        assert!(
                            p.is_finite() && p >= 0.0,
                            "camera: photons[[{i}, {j}]] = {p}, expected a finite mean ≥ 0"
                        );
                        let mut mu = qe * p;
                        if let Some(r) = &prnu_row {
                            mu *= r[j];
                        }
                        mu += dark;
                        let mut e = if shot_noise { poisson(mu, &mut row_rng) } else { mu };
                        if let Some(d) = &dsnu_row {
                            e += d[j];
                        }
                        if let Some(fw) = c.full_well_e {
                            e = e.min(fw);
                        }
                        if read_noise > 0.0 {
                            let z: f64 = row_rng.sample(StandardNormal);
                            e += read_noise * z;
                        }
                        let mut adu = e * inv_gain + c.bias_adu;
                        if let Some(top) = adc_max {
                            adu = crate::fastmath::round(adu).clamp(0.0, top);
                        }
                        out_row[j] = if calibrate {
                            (adu - bias) * gain - self.dark_mean_e(i, j)
                        } else {
                            adu
                        };
                    }
                }
            });
        out
    }

    /// Calibrated read-out back to signal electrons: `(adu − bias)·gain − dark_mean_e(i, j)`,
    /// i.e. dark-frame subtraction with the known mean. PRNU is not flat-fielded.
    ///
    /// # Panics
    /// If `adu` differs in shape from the sensor.
    pub fn signal_electrons(&self, adu: ArrayView2<f64>) -> Array2<f64> {
        assert_eq!(
            adu.dim(),
            self.shape,
            "camera: ADU frame of shape {:?} on a sensor of shape {:?}",
            adu.dim(),
            self.shape
        );
        let (gain, bias) = (self.config.gain_e_per_adu, self.config.bias_adu);
        Array2::from_shape_fn(self.shape, |(i, j)| {
            (adu[[i, j]] - bias) * gain - self.dark_mean_e(i, j)
        })
    }

    /// One ADU step in electrons (= `gain_e_per_adu`), for reports.
    pub fn adc_step_e(&self) -> f64 {
        self.config.gain_e_per_adu
    }

    /// Largest representable signal in electrons, for reports: the smaller of the
    /// full well and the ADC ceiling `(2^bits − 1 − bias)·gain`; infinite when
    /// neither is set.
    pub fn ceiling_e(&self) -> f64 {
        let c = &self.config;
        let adc = c
            .adc_bits
            .map_or(f64::INFINITY, |b| (adc_top(b) - c.bias_adu) * c.gain_e_per_adu);
        adc.min(c.full_well_e.unwrap_or(f64::INFINITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn err_key(c: &CameraConfig) -> String {
        match c.validate("camera") {
            Err(SimError::InvalidConfig { key, .. }) => key,
            other => panic!("expected an InvalidConfig error, got {other:?}"),
        }
    }

    #[test]
    fn default_is_valid_and_noiseless() {
        let c = CameraConfig::default();
        c.validate("camera").unwrap();
        assert!(c.is_noiseless());
        let noisy = CameraConfig {
            read_noise_e: 1.0,
            ..c.clone()
        };
        assert!(!noisy.is_noiseless());
        let quantised = CameraConfig {
            adc_bits: Some(12),
            ..c
        };
        assert!(!quantised.is_noiseless());
    }

    #[test]
    fn validate_names_the_key() {
        let d = CameraConfig::default();
        let cases: Vec<(CameraConfig, &str)> = vec![
            (
                CameraConfig {
                    read_noise_e: -1.0,
                    ..d.clone()
                },
                "camera.read_noise_e",
            ),
            (
                CameraConfig {
                    quantum_efficiency: 1.2,
                    ..d.clone()
                },
                "camera.quantum_efficiency",
            ),
            (
                CameraConfig {
                    quantum_efficiency: 0.0,
                    ..d.clone()
                },
                "camera.quantum_efficiency",
            ),
            (
                CameraConfig {
                    gain_e_per_adu: 0.0,
                    ..d.clone()
                },
                "camera.gain_e_per_adu",
            ),
            (
                CameraConfig {
                    adc_bits: Some(0),
                    ..d.clone()
                },
                "camera.adc_bits",
            ),
            (
                CameraConfig {
                    adc_bits: Some(25),
                    ..d.clone()
                },
                "camera.adc_bits",
            ),
            (
                CameraConfig {
                    exposure_s: f64::NAN,
                    ..d.clone()
                },
                "camera.exposure_s",
            ),
            (
                CameraConfig {
                    dark_current_e_per_s: f64::INFINITY,
                    ..d.clone()
                },
                "camera.dark_current_e_per_s",
            ),
            (
                CameraConfig {
                    full_well_e: Some(0.0),
                    ..d.clone()
                },
                "camera.full_well_e",
            ),
            (
                CameraConfig {
                    prnu_rms: 1.0,
                    ..d.clone()
                },
                "camera.prnu_rms",
            ),
            (
                CameraConfig {
                    dsnu_rms_e: -0.1,
                    ..d.clone()
                },
                "camera.dsnu_rms_e",
            ),
            (
                CameraConfig {
                    pixels_x: Some(0),
                    ..d.clone()
                },
                "camera.pixels_x",
            ),
            (
                CameraConfig {
                    pitch_m: Some(-1e-6),
                    ..d.clone()
                },
                "camera.pitch_m",
            ),
            (
                CameraConfig {
                    max_frame_rate_hz: Some(f64::NAN),
                    ..d.clone()
                },
                "camera.max_frame_rate_hz",
            ),
            (
                CameraConfig {
                    adc_bits: Some(8),
                    bias_adu: 255.0,
                    ..d.clone()
                },
                "camera.bias_adu",
            ),
        ];
        for (c, key) in cases {
            assert_eq!(err_key(&c), key, "{c:?}");
        }
        let msg = CameraConfig {
            read_noise_e: -1.0,
            ..d.clone()
        }
        .validate("camera")
        .unwrap_err()
        .to_string();
        assert!(msg.contains("camera.read_noise_e") && msg.contains("≥ 0"), "{msg}");
        assert!(Camera::new(
            CameraConfig {
                exposure_s: f64::NAN,
                ..d
            },
            (4, 4),
            "out.camera"
        )
        .is_err());
    }

    #[test]
    fn ideal_camera_reads_the_photons() {
        let cam = Camera::new(CameraConfig::default(), (3, 5), "camera").unwrap();
        let photons = Array2::from_shape_fn((3, 5), |(i, j)| (i * 5 + j) as f64 * 0.37);
        let mut rng = StdRng::seed_from_u64(1);
        let adu = cam.expose(photons.view(), false, &mut rng);
        for (a, p) in adu.iter().zip(photons.iter()) {
            assert!((a - p).abs() < 1e-12, "{a} vs {p}");
        }
        assert_eq!(cam.ceiling_e(), f64::INFINITY);
    }

    #[test]
    fn calibration_inverts_the_linear_chain() {
        let c = CameraConfig {
            quantum_efficiency: 0.6,
            gain_e_per_adu: 2.5,
            bias_adu: 100.0,
            dark_current_e_per_s: 300.0,
            exposure_s: 0.01,
            dsnu_rms_e: 4.0,
            ..CameraConfig::default()
        };
        let cam = Camera::new(c, (4, 6), "camera").unwrap();
        let photons = Array2::from_shape_fn((4, 6), |(i, j)| 10.0 * (i + j) as f64);
        let adu = cam.expose(photons.view(), false, &mut StdRng::seed_from_u64(2));
        let e = cam.signal_electrons(adu.view());
        for (s, p) in e.iter().zip(photons.iter()) {
            assert!((s - 0.6 * p).abs() < 1e-9, "{s} vs {}", 0.6 * p);
        }
    }

    #[test]
    fn ceiling_is_the_smaller_of_full_well_and_adc() {
        let c = CameraConfig {
            adc_bits: Some(10),
            bias_adu: 23.0,
            gain_e_per_adu: 4.0,
            full_well_e: Some(10_000.0),
            ..CameraConfig::default()
        };
        let cam = Camera::new(c.clone(), (1, 1), "camera").unwrap();
        assert_eq!(cam.adc_step_e(), 4.0);
        assert!((cam.ceiling_e() - 1000.0 * 4.0).abs() < 1e-12);
        let cam = Camera::new(
            CameraConfig {
                full_well_e: Some(2000.0),
                ..c
            },
            (1, 1),
            "camera",
        )
        .unwrap();
        assert!((cam.ceiling_e() - 2000.0).abs() < 1e-12);
    }

    #[test]
    #[should_panic(expected = "sensor of shape (2, 2)")]
    fn wrong_shape_panics() {
        let cam = Camera::new(CameraConfig::default(), (2, 2), "camera").unwrap();
        cam.expose(Array2::zeros((2, 3)).view(), false, &mut StdRng::seed_from_u64(0));
    }

    #[test]
    fn huge_means_use_the_normal_approximation() {
        let mut rng = StdRng::seed_from_u64(3);
        let mu = 1e17;
        let x = poisson(mu, &mut rng);
        assert!((x - mu).abs() < 6.0 * mu.sqrt(), "{x}");
        let y = poisson(1e9, &mut rng);
        assert!((y - 1e9).abs() < 6.0 * 1e9f64.sqrt() && y.fract() == 0.0, "{y}");
    }
}
