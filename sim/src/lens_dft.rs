//! FNet's Fourier mixing on a lens: a 2f transform read at its Fourier plane.
//!
//! The input SLM shows a map `x` of `n × d` pixels (a `[tokens, hidden]` matrix)
//! with pixel `(0, 0)` on the optical axis. Lens 1 puts its optical Fourier
//! transform `U(u) = 1/(iλf1) ∬ E(ξ) exp(−2πi ξ·u/(λf1)) dξ` in its back focal
//! plane, where a camera reads it instead of the filter panel (a second sensor
//! beside the panel, e.g. behind a flip mirror; no filter is programmed). Its
//! pixels sit at `u = λf1·(k_y/(nΔx), k_x/(dΔx))`, `k` the signed DFT indices,
//! `Δx` the SLM pixel pitch: the camera pitch is `λf1/(nΔx)` by `λf1/(dΔx)`
//! (the zoom that turns the lens into an `n × d`-point DFT; a relay or the
//! camera's pixel size sets it). A field that fills `nΔx × dΔx` is sampled
//! exactly there, so each camera pixel sees
//!
//! `U_k = (Δx²/(iλf1)) · B_y(k_y) B_x(k_x) · DFT(x)_k · t_k`,
//!
//! `B` the transform of one SLM pixel's aperture (`w` of its `s` simulation
//! samples transmit, the fill factor) and `t_k` the Fourier-plane stop, the
//! Zernike aberrations and the input defocus at the pixel. The simulation renders
//! the panel on an `(n·s) × (d·s)` grid (levels, fill factor and crosstalk as in a
//! 4f frame) and takes its FFT; the bins `k mod (n·s)` are the camera pixels.
//!
//! **Units and photons.** Fields are in units of a full-scale SLM pixel's
//! amplitude, `y_k = F_k/(s²√(n·d))` for the grid's FFT `F` (unitary: `Σ|y|²` is
//! the power of the shown map in full-scale pixels). A camera pixel of fill
//! factor 1 receives the light of its cell, `φ_fs·|y_k|²` photons with the field
//! at its centre standing for the cell's, `φ_fs` the photons of a full-scale pixel
//! ([`FourF::photons_full_scale`]): the same laser, the power spread over the
//! Fourier plane. The zero-frequency pixel of a map with a large mean collects
//! `|Σx|²/(n·d)` full-scale pixels and is the first to saturate.
//!
//! **Read-out.** The controller knows `R_k = −i·B_y·B_x/s²` (the nominal pixel
//! aperture and the lens's `1/i`); the homodyne reference of pixel `k` is in phase
//! with it (a tilted plane wave for the pixel's linear phase), so the detected
//! value is `Re(y_k·R̄_k/|R_k|)`; multiplying by `√(n·d)/|R_k|`
//! (`detection.pixel_compensation = true`, which amplifies the noise where the
//! envelope is small) or by `√(n·d)/|R_0|` (false: the envelope stays, an error)
//! and by the input scale gives `Re(DFT(x))`. Coherent detection reads the field;
//! intensity detection cannot read a real part and is refused. Signed inputs on an
//! amplitude or binary panel take the passes of a 4f frame (split, offset, bit
//! planes), each one frame of light.
//!
//! Not modelled: how the field varies across a camera pixel (each reads its
//! centre's field over its whole cell), the input pixels' aperture at
//! `simulation.oversampling = 1` (as in a 4f frame, fill factors act from 2 up),
//! a shift or defocus of the Fourier-plane camera, aberrations of a relay, and a
//! warning when the brightest pixel (the zero frequency of a non-negative pass,
//! `Σx/√(n·d)`) clips: it then reads 0.

use ndarray::{Array2, ArrayView2};
use num_complex::Complex64 as C64;
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::devices::camera::Camera;
use crate::devices::detection::Scheme;
use crate::devices::slm::Modulation;
use crate::error::SimError;
use crate::fft::{signed_index, Fft2};
use crate::field::Field;
use crate::machine::FourF;
use crate::readout::max_abs;

/// What the camera in the Fourier plane read for one map.
#[derive(Debug, Clone)]
pub struct LensDft {
    /// `Re(DFT₂(x))` as detected, `[n, d]` in DFT order (index 0 the zero
    /// frequency), unnormalised like `numpy.fft.fft2(x).real`.
    pub values: Array2<f64>,
    /// Frames of light (one per signed-input pass or bit plane).
    pub passes: usize,
    /// Camera exposures.
    pub exposures: usize,
}

/// The transform `B(k) = Σ_{i=o}^{o+w−1} exp(−2πi·k·i/(len·s))` of one input pixel's
/// aperture (`w` of its `s` samples open from offset `o`) at each camera pixel
/// `k` of a `len`-pixel axis, in DFT order (`k` the signed index): the envelope
/// the read-out divides out.
pub fn pixel_aperture(len: usize, s: usize, o: usize, w: usize) -> Vec<C64> {
    (0..len)
        .map(|j| {
            let k = signed_index(j, len);
            (o..o + w)
                .map(|i| C64::from_polar(1.0, -2.0 * std::f64::consts::PI * k * i as f64 / (len * s) as f64))
                .sum()
        })
        .collect()
}

/// Per camera pixel (DFT order) the Fourier-plane transmission `t_k` and the
/// nominal pixel-aperture response `R_k`.
struct Response {
    t: Array2<C64>,
    r: Array2<C64>,
}

impl FourF {
    /// Camera pitch `[y, x]` in metres of the Fourier-plane read-out of an
    /// `n × d` map: `λf1/(nΔx)`, `λf1/(dΔx)`.
    pub fn lens_dft_pitch_m(&self, shape: (usize, usize)) -> [f64; 2] {
        let q = self.config().wavelength_m() * self.config().lens1.focal_length_m / self.pixel_pitch_m();
        [q / shape.0 as f64, q / shape.1 as f64]
    }

    /// Whether the read-out runs an `n × d` map: it fits the input SLM and the
    /// detection reads a real part. Where it does not, networks keep FNet's mixing
    /// electronic (as the latency model places it).
    pub fn lens_dft_runs(&self, shape: (usize, usize)) -> bool {
        let (py, px) = self.frame_shape();
        self.config().detection.reads_real_part() && shape.0 <= py && shape.1 <= px
    }

    /// Checks that an `n × d` map can be shown and read.
    fn check_lens_map(&self, shape: (usize, usize)) -> Result<(), SimError> {
        let (py, px) = self.frame_shape();
        if shape.0 == 0 || shape.1 == 0 {
            return Err(SimError::BadOperand {
                what: "the lens transform's map".into(),
                got: format!("{shape:?}"),
                want: "at least one sample per axis".into(),
            });
        }
        if shape.0 > py || shape.1 > px {
            return Err(SimError::BadOperand {
                what: "the lens transform's map".into(),
                got: format!("{} × {} samples", shape.0, shape.1),
                want: format!(
                    "at most the input SLM's {py} × {px} pixels (input_slm.pixels_y × input_slm.pixels_x; one map per frame)"
                ),
            });
        }
        if !self.config().detection.reads_real_part() {
            return Err(SimError::invalid(
                "detection.scheme",
                "\"intensity\"",
                "a camera in the Fourier plane must read the real part of the field; use coherent or balanced_homodyne",
            ));
        }
        Ok(())
    }

    fn lens_response(&self, shape: (usize, usize)) -> Response {
        let (n, d) = shape;
        let s = self.oversampling();
        let pitch = self.lens_dft_pitch_m(shape);
        // The same aberration normalisation as the 4f machine's Fourier plane.
        let ab_radius = self.aberration_radius_m();
        // The camera samples the angular spectrum itself: nothing wraps, so no
        // band limit beyond the propagating waves.
        let lim_in = [f64::INFINITY; 2];
        // One pixel's aperture: `w` of `s` samples from offset `o`, per axis.
        let w = (s as f64 * self.input_slm().effective_fill_factor(s).sqrt()).round() as usize;
        let (by, bx) = (
            pixel_aperture(n, s, (s - w) / 2, w),
            pixel_aperture(d, s, (s - w) / 2, w),
        );
        let minus_i = C64::new(0.0, -1.0);
        let r = Array2::from_shape_fn(shape, |(jy, jx)| minus_i * by[jy] * bx[jx] / (s * s) as f64);
        let t = Array2::from_shape_fn(shape, |(jy, jx)| {
            let u = (signed_index(jy, n) * pitch[0], signed_index(jx, d) * pitch[1]);
            self.pupil_transmission(C64::new(1.0, 0.0), u, pitch, ab_radius, lim_in)
        });
        Response { t, r }
    }

    /// The field at the Fourier-plane camera pixels for the pixel values `v`
    /// (already in the panel's range), in units of a full-scale pixel's amplitude:
    /// `y_k` of the module docs, `[n, d]` in DFT order.
    fn lens_field(&self, v: ArrayView2<f64>, t: &Array2<C64>) -> Array2<C64> {
        let (n, d) = v.dim();
        let s = self.oversampling();
        let c = &self.config().input_slm;
        let (gy, gx) = (n * s, d * s);
        let mut grid = Array2::<C64>::zeros((gy, gx));
        if s == 1 && c.modulation == Modulation::Complex && c.crosstalk_px == 0.0 {
            grid.zip_mut_with(&v, |g, &x| *g = C64::new(x, 0.0));
        } else {
            let targets = v.mapv(|x| C64::new(x, 0.0));
            self.input_slm().render_into(targets.view(), s, grid.view_mut());
        }
        let plan = Fft2::cached(gy, gx);
        let mut scratch = plan.make_scratch(false);
        plan.forward(grid.as_slice_mut().expect("a new array is contiguous"), &mut scratch);
        let norm = 1.0 / ((s * s) as f64 * ((n * d) as f64).sqrt());
        let minus_i = C64::new(0.0, -1.0);
        Array2::from_shape_fn((n, d), |(jy, jx)| {
            let ky = (signed_index(jy, n).rem_euclid(gy as f64)) as usize;
            let kx = (signed_index(jx, d).rem_euclid(gx as f64)) as usize;
            minus_i * grid[[ky, kx]] * norm * t[[jy, jx]]
        })
    }

    /// The physical field the Fourier-plane camera sees for the map `x` shown at
    /// the panel's full range (its first pass: `x/max|x|`, or the positive part
    /// or offset where signed values need more passes): `[n, d]` centred (the
    /// optical axis at `(n/2, d/2)`), V/m for an input of 1 V/m per full-scale
    /// pixel, with the camera pitch [`FourF::lens_dft_pitch_m`]. For pictures and
    /// for checking the optics against another tool.
    ///
    /// # Errors
    /// As [`FourF::lens_dft`].
    pub fn lens_dft_field(&self, x: ArrayView2<f64>) -> Result<Field, SimError> {
        let shape = x.dim();
        self.check_lens_map(shape)?;
        let (n, d) = shape;
        let scale = max_abs(x);
        let resp = self.lens_response(shape);
        let y = if scale == 0.0 {
            Array2::zeros(shape)
        } else {
            let passes = self.passes(x, scale, &[[0, 0, n, d]])?;
            self.lens_field(passes[0].values.view(), &resp.t)
        };
        // Back to V/m: `U_k = y_k·√(n·d)·Δx²/(λf1)` (y carries the lens's −i and
        // the 1/s² of the grid's FFT, which `(Δx/s)²` would undo).
        let c = self.config();
        let dx = self.pixel_pitch_m();
        let k = ((n * d) as f64).sqrt() * dx * dx / (c.wavelength_m() * c.lens1.focal_length_m);
        let (hy, hx) = (n / 2, d / 2);
        let data = Array2::from_shape_fn(shape, |(i, j)| y[[(i + n - hy) % n, (j + d - hx) % d]] * k);
        Ok(Field::new(data, self.lens_dft_pitch_m(shape), c.wavelength_m()))
    }

    /// FNet's mixing of one `[n, d]` map through the 2f read-out (see the module
    /// docs): `Re(DFT₂(x))` as the Fourier-plane camera detects it, with the input
    /// panel's levels and passes, the stop and aberrations, the laser's intensity
    /// noise and the camera's noise, drawn from `rng`.
    ///
    /// # Errors
    /// When the map is empty or larger than the input SLM, or the detection is
    /// `intensity`.
    pub fn lens_dft<R: Rng + ?Sized>(&self, x: ArrayView2<f64>, rng: &mut R) -> Result<LensDft, SimError> {
        let shape = x.dim();
        self.check_lens_map(shape)?;
        let (n, d) = shape;
        let cfg = self.config();
        let per_pass = cfg.detection.exposures_per_pass();
        let scale = max_abs(x);
        if scale == 0.0 {
            return Ok(LensDft {
                values: Array2::zeros(shape),
                passes: 1,
                exposures: per_pass,
            });
        }
        let resp = self.lens_response(shape);
        let full = cfg.detection.pixel_compensation;
        let root = ((n * d) as f64).sqrt();
        let r0 = resp.r[[0, 0]].norm();
        // Per pixel: the reference's phase (unit) and the read-out's gain.
        let phase = resp.r.mapv(|r| {
            if r.norm() > 0.0 {
                r.conj() / r.norm()
            } else {
                C64::new(0.0, 0.0)
            }
        });
        let gain = resp.r.mapv(|r| {
            let m = if full { r.norm() } else { r0 };
            if m > 0.0 {
                scale * root / m
            } else {
                0.0
            }
        });
        let camera = match self.photons_full_scale() {
            Some(_) => Some(Camera::new(cfg.camera.clone(), shape, "camera")?),
            None => None,
        };
        let sigma = cfg.laser.rin_sigma(cfg.camera.exposure_s);
        let laser = |rng: &mut R| 1.0 + sigma * rng.sample::<f64, _>(StandardNormal);
        let passes = self.passes(x, scale, &[[0, 0, n, d]])?;
        let mut values = Array2::<f64>::zeros(shape);
        for pass in &passes {
            let y = self.lens_field(pass.values.view(), &resp.t);
            // The in-phase part of each pixel's field.
            let z = ndarray::Zip::from(&y).and(&phase).map_collect(|y, p| (y * p).re);
            let detected = match cfg.detection.scheme {
                Scheme::Coherent => {
                    let k = laser(rng).max(0.0).sqrt();
                    z.mapv(|v| v * k)
                }
                Scheme::BalancedHomodyne => {
                    let b = cfg.detection.reference_amplitude;
                    let m2 = y.mapv(|v| v.norm_sqr());
                    let (to_photons, from_electrons) = match self.photons_full_scale() {
                        Some(phi) => (phi, 1.0 / (cfg.camera.quantum_efficiency * phi)),
                        None => (1.0, 1.0),
                    };
                    let mut diff = Array2::<f64>::zeros(shape);
                    for sign in [1.0, -1.0] {
                        let k = laser(rng) * to_photons;
                        let photons = ndarray::Zip::from(&z)
                            .and(&m2)
                            .map_collect(|&zv, &mv| (k * (b * b + sign * 2.0 * b * zv + mv)).max(0.0));
                        let e = match &camera {
                            Some(cam) => cam.expose_electrons(photons.view(), true, rng, None),
                            None => photons,
                        };
                        diff.zip_mut_with(&e, |a, e| *a += sign * e);
                    }
                    diff.mapv_inplace(|v| v * from_electrons / (4.0 * b));
                    diff
                }
                Scheme::Intensity => unreachable!("refused by check_lens_map"),
            };
            ndarray::Zip::from(&mut values)
                .and(&detected)
                .and(&gain)
                .for_each(|v, &e, &g| *v += pass.weight * g * e);
        }
        Ok(LensDft {
            values,
            passes: passes.len(),
            exposures: passes.len() * per_pass,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lens::lens_transform;
    use crate::MachineConfig;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn map(n: usize, d: usize, seed: usize) -> Array2<f64> {
        Array2::from_shape_fn((n, d), |(i, j)| (((i * 13 + j * 7 + seed) % 17) as f64 / 8.0) - 1.0)
    }

    /// `Re(Σ x[m] e^{−2πi(k·m/n + l·j/d)})`, written out.
    fn direct_re_dft(x: &Array2<f64>) -> Array2<f64> {
        let (n, d) = x.dim();
        Array2::from_shape_fn((n, d), |(k, l)| {
            let mut acc = 0.0;
            for ((m, j), &v) in x.indexed_iter() {
                let a = 2.0 * std::f64::consts::PI * ((k * m) as f64 / n as f64 + (l * j) as f64 / d as f64);
                acc += v * a.cos();
            }
            acc
        })
    }

    fn max_err(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
        (a - b).iter().fold(0.0f64, |m, v| m.max(v.abs()))
    }

    #[test]
    fn the_ideal_lens_reads_the_real_part_of_the_dft_odd_and_even() {
        let m = FourF::new(MachineConfig::ideal(16)).unwrap();
        for (n, d, seed) in [(7, 8, 0), (8, 5, 3), (16, 16, 1), (1, 9, 2)] {
            let x = map(n, d, seed);
            let got = m.lens_dft(x.view(), &mut StdRng::seed_from_u64(0)).unwrap();
            let e = max_err(&got.values, &direct_re_dft(&x));
            assert!(e < 1e-9, "{n}×{d}: {e}");
            assert_eq!((got.passes, got.exposures), (1, 1));
        }
    }

    /// The camera pixels equal the big-grid lens transform (centred FFT with the
    /// physical `Δx²/(iλf)`) of the map padded into a wide frame, sampled every
    /// `N/n` bins: an independent path to the same field.
    #[test]
    fn the_fourier_camera_sees_the_lens_transform_of_a_wide_frame() {
        // Four samples per pixel, two of them open at offset 1: the aperture and its
        // offset both act.
        let mut cfg = MachineConfig::ideal(16);
        cfg.simulation.oversampling = 4;
        cfg.input_slm.fill_factor = 0.25;
        let m = FourF::new(cfg).unwrap();
        let (n, d, big) = (6, 8, 48);
        let x = map(n, d, 5).mapv(|v| v.abs());
        let got = m.lens_dft_field(x.view()).unwrap();
        let s = 4;
        // The map rendered by the panel, placed with pixel (0, 0) on the axis.
        let mut shown = Array2::<C64>::zeros((n * s, d * s));
        let scale = max_abs(x.view());
        m.input_slm()
            .render_into(x.mapv(|v| C64::new(v / scale, 0.0)).view(), s, shown.view_mut());
        let g = big * s;
        let mut wide = Array2::<C64>::zeros((g, g));
        for ((i, j), &v) in shown.indexed_iter() {
            wide[[g / 2 + i, g / 2 + j]] = v;
        }
        let pitch = m.pixel_pitch_m() / s as f64;
        let field = Field::new(wide, [pitch, pitch], m.config().wavelength_m());
        let plan = Fft2::new(g, g);
        let f = lens_transform(
            &field,
            m.config().lens1.focal_length_m,
            &plan,
            &mut plan.make_scratch(false),
        );
        let want_pitch = m.lens_dft_pitch_m((n, d));
        for (a, b) in want_pitch.iter().zip(&got.pitch_m) {
            assert!((a - b).abs() < 1e-12 * a);
        }
        assert!((f.pitch_m[0] * (big / n) as f64 - want_pitch[0]).abs() < 1e-9 * want_pitch[0]);
        let peak = got.data.iter().fold(0.0f64, |a, v| a.max(v.norm()));
        for ((i, j), &u) in got.data.indexed_iter() {
            let (ky, kx) = (i as isize - (n / 2) as isize, j as isize - (d / 2) as isize);
            let by = (g as isize / 2 + ky * (big / n) as isize) as usize;
            let bx = (g as isize / 2 + kx * (big / d) as isize) as usize;
            let w = f.data[[by, bx]];
            assert!((u - w).norm() < 1e-12 * peak, "({ky}, {kx}): {u} vs {w}");
        }
    }

    #[test]
    fn fill_factor_envelope_is_undone_only_with_pixel_compensation() {
        let x = map(8, 8, 1);
        let want = direct_re_dft(&x);
        for full in [true, false] {
            let mut cfg = MachineConfig::ideal(16);
            cfg.simulation.oversampling = 4;
            cfg.input_slm.fill_factor = 0.25;
            cfg.detection.pixel_compensation = full;
            let m = FourF::new(cfg).unwrap();
            let got = m.lens_dft(x.view(), &mut StdRng::seed_from_u64(0)).unwrap().values;
            let e = max_err(&got, &want);
            if full {
                assert!(e < 1e-9, "compensated {e}");
            } else {
                // Two of four samples transmit: a pixel keeps |cos(πk/(4n))| per
                // axis, 0.92 at the edge (k = 4 of 8): an error of that order.
                let peak = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                assert!(e > 1e-3 * peak && e < 0.3 * peak, "uncompensated {e} of {peak}");
            }
        }
    }

    /// The stop passes the camera pixels within its radius and darkens the rest
    /// (the coherent cutoff `a/(λf)` at the Fourier plane).
    #[test]
    fn the_stop_darkens_pixels_beyond_its_radius() {
        let mut cfg = MachineConfig::ideal(16);
        let m0 = FourF::new(cfg.clone()).unwrap();
        let pitch = m0.lens_dft_pitch_m((16, 16));
        cfg.pupil.radius_m = Some(4.5 * pitch[0]);
        let m = FourF::new(cfg).unwrap();
        let x = map(16, 16, 2);
        let want = direct_re_dft(&x);
        let got = m.lens_dft(x.view(), &mut StdRng::seed_from_u64(0)).unwrap().values;
        for ((i, j), &v) in got.indexed_iter() {
            let r = signed_index(i, 16).hypot(signed_index(j, 16));
            if r < 3.7 {
                assert!((v - want[[i, j]]).abs() < 1e-9, "inside ({i}, {j})");
            } else if r > 5.3 {
                assert_eq!(v, 0.0, "outside ({i}, {j})");
            }
        }
    }

    /// Signed maps on an amplitude panel: split and offset passes give the same
    /// transform; balanced homodyne with a photon budget is unbiased with the
    /// shot-noise variance of its two exposures, `Var = nd·scale²·(b² + |y|²)/(8b²·η·φ)`,
    /// `|y|` the pixel's field, `η` the quantum efficiency.
    #[test]
    fn signed_passes_and_homodyne_shot_noise() {
        use crate::devices::detection::SignedInputs;
        let x = map(6, 6, 4);
        let want = direct_re_dft(&x);
        for signed in [SignedInputs::Split, SignedInputs::Offset] {
            let mut cfg = MachineConfig::ideal(8);
            cfg.input_slm.modulation = Modulation::Amplitude;
            cfg.detection.signed_inputs = signed;
            cfg.detection.scheme = Scheme::BalancedHomodyne;
            let m = FourF::new(cfg).unwrap();
            let got = m.lens_dft(x.view(), &mut StdRng::seed_from_u64(0)).unwrap();
            assert!(max_err(&got.values, &want) < 1e-9, "{signed:?}");
            assert_eq!((got.passes, got.exposures), (2, 4));
        }
        // A non-negative map, one pass, shot noise only.
        let x = x.mapv(|v| v + 1.0);
        let want = direct_re_dft(&x);
        let mut cfg = MachineConfig::ideal(8);
        cfg.detection.scheme = Scheme::BalancedHomodyne;
        cfg.detection.reference_amplitude = 0.5;
        cfg.camera.quantum_efficiency = 0.6;
        cfg.camera.full_scale_e = Some(1e4);
        let m = FourF::new(cfg).unwrap();
        let phi = m.photons_full_scale().unwrap();
        let scale = max_abs(x.view());
        let nd = 36.0;
        let b = m.config().detection.reference_amplitude;
        let trials = 4000;
        let mut rng = StdRng::seed_from_u64(9);
        let (mut sum, mut sum2) = (Array2::<f64>::zeros((6, 6)), Array2::<f64>::zeros((6, 6)));
        for _ in 0..trials {
            let v = m.lens_dft(x.view(), &mut rng).unwrap().values;
            sum += &v;
            sum2 += &v.mapv(|a| a * a);
        }
        let field = m.lens_field(x.mapv(|v| v / scale).view(), &m.lens_response((6, 6)).t);
        for ((i, j), &w) in want.indexed_iter() {
            let mean = sum[[i, j]] / trials as f64;
            let var = sum2[[i, j]] / trials as f64 - mean * mean;
            let y2 = field[[i, j]].norm_sqr();
            let theory = nd * scale * scale * (b * b + y2) / (8.0 * b * b * phi * m.config().camera.quantum_efficiency);
            let se = (theory / trials as f64).sqrt();
            assert!((mean - w).abs() < 5.0 * se, "({i}, {j}) mean {mean} vs {w} ± {se}");
            assert!(
                (var / theory - 1.0).abs() < 0.15,
                "({i}, {j}) variance {var} vs {theory}"
            );
        }
    }

    #[test]
    fn maps_that_do_not_fit_and_intensity_detection_are_refused() {
        let m = FourF::new(MachineConfig::ideal(8)).unwrap();
        let e = m
            .lens_dft(Array2::<f64>::ones((9, 4)).view(), &mut StdRng::seed_from_u64(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("9 × 4") && e.contains("8 × 8"), "{e}");
        let mut cfg = MachineConfig::ideal(8);
        cfg.detection.scheme = Scheme::Intensity;
        let m = FourF::new(cfg).unwrap();
        let e = m
            .lens_dft(Array2::<f64>::ones((4, 4)).view(), &mut StdRng::seed_from_u64(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("detection.scheme") && e.contains("real part"), "{e}");
    }
}
