//! One frame through the whole machine: the input SLM shows the planner's pixel
//! values (with the signed-input encoding and bit planes its modulation needs),
//! the optics filter them, the camera integrates every pixel image and the
//! detection scheme turns intensities back into the signed convolution.
//!
//! The SLM shows each frame's values divided by their largest magnitude (a digital
//! gain per frame, so that the panel's full range is used); the read-out multiplies
//! it back. The optical core ([`FourF::run_loaded`]) is linear in the field, so the two
//! exposures of balanced homodyne detection share one optical computation; what
//! differs between them — the reference's sign, the laser's intensity noise, the
//! camera's noise — is applied per exposure.

use ndarray::{Array2, ArrayView2};
use num_complex::Complex64 as C64;
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::devices::camera::ReadRegion;
use crate::devices::detection::{Scheme, SignedInputs};
use crate::devices::slm::Modulation;
use crate::error::SimError;
use crate::field::Field;
use crate::machine::{reflected, FourF, FrameScratch, Mask};

/// The detected result of one frame.
#[derive(Debug, Clone)]
pub struct Detected {
    /// Convolution value at every pixel index of the frame `[y, x]` (the index of
    /// the input plane the result belongs to, reflection undone).
    pub values: Array2<f64>,
    /// Optical passes (signed-input encoding × bit planes).
    pub passes: usize,
    /// Camera exposures (passes × exposures per pass of the scheme).
    pub exposures: usize,
}

/// A rectangle `[y, x, height, width]` of the input plane that carries data.
pub type Rect = [usize; 4];

/// `max|x|`, 0 for an empty or all-zero array.
pub(crate) fn max_abs(x: ArrayView2<f64>) -> f64 {
    x.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// One optical pass: the pixel values shown and the weight of its result.
pub(crate) struct Pass {
    pub(crate) values: Array2<f64>,
    pub(crate) weight: f64,
}

impl FourF {
    /// Runs one frame of pixel values `x` (the planner's input plane, physical
    /// order, frame-sized) whose data lies in the rectangles `support`, through the
    /// whole machine with the programmed filter `mask`.
    ///
    /// Errors when the detection cannot represent the input: intensity detection
    /// of signed values on an amplitude or binary input SLM.
    ///
    /// # Panics
    /// If `x` is not frame-sized.
    pub fn detect_frame<R: Rng + ?Sized>(
        &self,
        x: ArrayView2<f64>,
        support: &[Rect],
        mask: &Mask,
        scratch: &mut FrameScratch,
        rng: &mut R,
    ) -> Result<Detected, SimError> {
        self.detect_frame_reading(x, support, mask, scratch, rng, None)
    }

    /// [`FourF::detect_frame`], reading only the camera pixels of `read` (every
    /// pixel if `None`; see [`Camera::expose_electrons`](crate::devices::camera::Camera::expose_electrons)):
    /// the values elsewhere are 0 on a machine with a photon budget. The planner
    /// reads its tiles' kept windows, so the camera's draws for the rest of the
    /// frame are skipped; what it keeps has the same distribution.
    ///
    /// # Panics
    /// As [`FourF::detect_frame`], and if `read` is for another frame shape.
    pub fn detect_frame_reading<R: Rng + ?Sized>(
        &self,
        x: ArrayView2<f64>,
        support: &[Rect],
        mask: &Mask,
        scratch: &mut FrameScratch,
        rng: &mut R,
        read: Option<&ReadRegion>,
    ) -> Result<Detected, SimError> {
        assert_eq!(
            x.dim(),
            self.frame_shape(),
            "detect_frame: input plane must be frame-sized"
        );
        let det = &self.config().detection;
        let per_pass = det.exposures_per_pass();
        let scale = max_abs(x);
        if scale == 0.0 {
            return Ok(Detected {
                values: Array2::zeros(x.dim()),
                passes: 1,
                exposures: per_pass,
            });
        }
        // Square-law results scale with the square of the input.
        let k = match det.scheme {
            Scheme::Intensity => scale * scale,
            Scheme::Coherent | Scheme::BalancedHomodyne => scale,
        };
        // Only the output rows the read-out reads are transformed by lens 2.
        let rows = self.rows_read(read);
        let rows = rows.as_deref();
        if self.one_pass(x) {
            // One pass of weight 1: shown and read in place (the same numbers as
            // the general path, without its copies).
            self.load(x, Some(scale), scratch);
            self.run_loaded_rows(mask, scratch, rows);
            let mut values = self.detect(mask, scratch, rng, read);
            values.mapv_inplace(|b| k * b);
            return Ok(Detected {
                values,
                passes: 1,
                exposures: per_pass,
            });
        }
        let passes = self.passes(x, scale, support)?;
        let mut values = Array2::<f64>::zeros(x.dim());
        for pass in &passes {
            self.load(pass.values.view(), None, scratch);
            self.run_loaded_rows(mask, scratch, rows);
            let v = self.detect(mask, scratch, rng, read);
            let add = |a: &mut f64, b: &f64| *a += pass.weight * k * b;
            match read {
                // The rest of `v` is 0, and stays unread.
                Some(r) => {
                    for (i, (mut a, b)) in values.rows_mut().into_iter().zip(v.rows()).enumerate() {
                        for &(x0, x1) in r.row(i) {
                            (x0..x1).for_each(|j| add(&mut a[j], &b[j]));
                        }
                    }
                }
                None => values.zip_mut_with(&v, add),
            }
        }
        Ok(Detected {
            values,
            passes: passes.len(),
            exposures: passes.len() * per_pass,
        })
    }

    /// The field the input SLM shows for the pixel values `x` in its first pass
    /// (normalised by `max|x|`; the positive part or offset when signed inputs need
    /// more passes), on the simulation grid: for pictures.
    pub fn input_field(&self, x: ArrayView2<f64>) -> Field {
        let mut scratch = self.make_scratch(true);
        let scale = max_abs(x);
        if scale > 0.0 {
            let support = [[0, 0, x.nrows(), x.ncols()]];
            let first = match self.passes(x, scale, &support) {
                Ok(p) => p.into_iter().next().map(|p| p.values),
                // Intensity detection of signed inputs: show the positive part.
                Err(_) => Some(x.mapv(|v| (v / scale).max(0.0))),
            };
            if let Some(v) = first {
                self.load(v.view(), None, &mut scratch);
            }
        }
        let data = Array2::from_shape_vec(self.grid_shape(), scratch.input_mut().to_vec()).expect("grid-sized");
        Field::new(data, self.input_pitch_m(), self.config().wavelength_m())
    }

    /// Whether `x` is shown in one pass of weight 1 (what [`FourF::passes`] gives
    /// a signed-capable SLM or non-negative values, unless bit planes split it).
    fn one_pass(&self, x: ArrayView2<f64>) -> bool {
        let modulation = self.config().input_slm.modulation;
        let signed_ok = matches!(modulation, Modulation::Complex | Modulation::TwoSlm);
        modulation != Modulation::Binary && (signed_ok || !x.iter().any(|&v| v < 0.0))
    }

    /// The passes that show `x / scale` on the input SLM.
    pub(crate) fn passes(&self, x: ArrayView2<f64>, scale: f64, support: &[Rect]) -> Result<Vec<Pass>, SimError> {
        let det = &self.config().detection;
        let modulation = self.config().input_slm.modulation;
        let xs = x.mapv(|v| v / scale);
        let signed_ok = matches!(modulation, Modulation::Complex | Modulation::TwoSlm);
        let negative = xs.iter().any(|&v| v < 0.0);
        let passes = if signed_ok || !negative {
            vec![Pass {
                values: xs,
                weight: 1.0,
            }]
        } else {
            if det.scheme == Scheme::Intensity {
                return Err(SimError::invalid(
                    "detection.scheme",
                    "\"intensity\"",
                    "intensity detection cannot subtract the passes of signed inputs on an amplitude or binary input SLM; use coherent or balanced_homodyne, a complex input SLM, or non-negative inputs",
                ));
            }
            match det.signed_inputs {
                SignedInputs::Split => vec![
                    Pass {
                        values: xs.mapv(|v| v.max(0.0)),
                        weight: 1.0,
                    },
                    Pass {
                        values: xs.mapv(|v| (-v).max(0.0)),
                        weight: -1.0,
                    },
                ],
                SignedInputs::Offset => {
                    let mut shifted = Array2::<f64>::zeros(xs.dim());
                    let mut half = Array2::<f64>::zeros(xs.dim());
                    for &[y, x0, h, w] in support {
                        for i in y..y + h {
                            for j in x0..x0 + w {
                                shifted[[i, j]] = 0.5 * (xs[[i, j]] + 1.0);
                                half[[i, j]] = 0.5;
                            }
                        }
                    }
                    vec![
                        Pass {
                            values: shifted,
                            weight: 2.0,
                        },
                        Pass {
                            values: half,
                            weight: -2.0,
                        },
                    ]
                }
            }
        };
        if modulation != Modulation::Binary {
            return Ok(passes);
        }
        // A DMD shows b-bit grey levels as b binary bit planes.
        let bits = self.config().input_slm.bits.unwrap_or(1);
        let top = ((1u64 << bits) - 1) as f64;
        let mut planes = Vec::with_capacity(passes.len() * bits as usize);
        for p in passes {
            let q = p.values.mapv(|v| (v.clamp(0.0, 1.0) * top).round() as u64);
            for k in 0..bits {
                planes.push(Pass {
                    values: q.mapv(|v| ((v >> k) & 1) as f64),
                    weight: p.weight * (1u64 << k) as f64 / top,
                });
            }
        }
        Ok(planes)
    }

    /// Shows the pixel values (divided by `scale`, if given) on the input SLM:
    /// writes the simulation-grid field into the scratch's input buffer.
    fn load(&self, values: ArrayView2<f64>, scale: Option<f64>, scratch: &mut FrameScratch) {
        let slm = self.input_slm();
        let c = &self.config().input_slm;
        let s = self.oversampling();
        let buf = scratch.input_mut();
        let ideal = s == 1 && c.modulation == Modulation::Complex && c.crosstalk_px == 0.0;
        let shown = |v: f64| C64::new(scale.map_or(v, |k| v / k), 0.0);
        if ideal {
            buf.iter_mut().zip(values.iter()).for_each(|(d, &v)| *d = shown(v));
        } else {
            let targets = values.mapv(shown);
            let out = ndarray::ArrayViewMut2::from_shape(self.grid_shape(), buf).expect("grid-sized buffer");
            slm.render_into(targets.view(), s, out);
        }
    }

    /// Detects the output field left in `scratch` by one pass: the convolution
    /// value (of the normalised input) at every pixel index.
    fn detect<R: Rng + ?Sized>(
        &self,
        mask: &Mask,
        scratch: &FrameScratch,
        rng: &mut R,
        read: Option<&ReadRegion>,
    ) -> Array2<f64> {
        let (py, px) = self.frame_shape();
        let s = self.oversampling();
        let norm = 1.0 / (s * s) as f64;
        let cfg = self.config();
        let r_out = mask.readout();
        // The laser's energy in one exposure, relative to its mean.
        let sigma = cfg.laser.rin_sigma(cfg.camera.exposure_s);
        let laser = |rng: &mut R| 1.0 + sigma * rng.sample::<f64, _>(StandardNormal);
        if cfg.detection.scheme == Scheme::Coherent && s == 1 {
            // One sample per pixel: each output row is one grid row read backwards
            // (the point reflection), copied without per-sample index arithmetic.
            let k = r_out * laser(rng).max(0.0).sqrt();
            let hx = px / 2;
            let mut v = Array2::<f64>::zeros((py, px));
            for (n_y, mut row) in v.axis_iter_mut(ndarray::Axis(0)).enumerate() {
                // Rows the region leaves out were not transformed: left 0.
                if read.is_some_and(|r| r.row(n_y).is_empty()) {
                    continue;
                }
                let src = scratch.conv_row(self, n_y);
                let row = row.as_slice_mut().expect("a row of a new array");
                // n_x ≤ hx reads hx − n_x; n_x > hx reads hx + px − n_x.
                for (out, v) in row[..=hx].iter_mut().zip(src[..=hx].iter().rev()) {
                    *out = (v * k).re;
                }
                for (out, v) in row[hx + 1..].iter_mut().zip(src[hx + 1..].iter().rev()) {
                    *out = (v * k).re;
                }
            }
            return v;
        }
        if cfg.detection.scheme == Scheme::Coherent {
            // Field read-out: only the pixel averages are needed.
            let k = r_out * laser(rng).max(0.0).sqrt() * norm;
            let mut v = Array2::<f64>::zeros((py, px));
            v.axis_iter_mut(ndarray::Axis(0))
                .into_par_iter()
                .enumerate()
                .for_each(|(ny, mut row)| {
                    if read.is_some_and(|r| r.row(ny).is_empty()) {
                        return;
                    }
                    let (_, gx) = self.grid_shape();
                    for (nx, out) in row.iter_mut().enumerate() {
                        let mut acc = C64::new(0.0, 0.0);
                        for jy in 0..s {
                            let src = scratch.conv_row(self, s * ny + jy);
                            for jx in 0..s {
                                acc += src[reflected(s * nx + jx, gx)];
                            }
                        }
                        *out = (acc * k).re;
                    }
                });
            return v;
        }
        // The column ranges the camera reads in each row (all without a region).
        let all = [(0, px)];
        let ranges = |ny: usize| read.map_or(&all[..], |r| r.row(ny));
        // Field average ȳ and mean intensity over the image of every pixel.
        let mut z = Array2::<C64>::zeros((py, px));
        let mut m2 = Array2::<f64>::zeros((py, px));
        z.axis_iter_mut(ndarray::Axis(0))
            .into_par_iter()
            .zip(m2.axis_iter_mut(ndarray::Axis(0)).into_par_iter())
            .enumerate()
            .for_each(|(ny, (mut zr, mut mr))| {
                let (_, gx) = self.grid_shape();
                for nx in ranges(ny).iter().flat_map(|&(a, b)| a..b) {
                    let (mut acc, mut pow) = (C64::new(0.0, 0.0), 0.0);
                    for jy in 0..s {
                        let src = scratch.conv_row(self, s * ny + jy);
                        for jx in 0..s {
                            let v = src[reflected(s * nx + jx, gx)];
                            acc += v;
                            pow += v.norm_sqr();
                        }
                    }
                    zr[nx] = acc * norm;
                    mr[nx] = pow * norm;
                }
            });
        let (f1, f2) = (cfg.lens1.focal_length_m, cfg.lens2.focal_length_m);
        // Amplitude of the flat full-scale output field.
        let a_fs = f1 / f2;
        // Photons per unit of field intensity, and back from photo-electrons.
        let (to_photons, from_electrons) = match self.photons_full_scale() {
            Some(phi) => {
                let t = phi / (a_fs * a_fs);
                (t, 1.0 / (cfg.camera.quantum_efficiency * t))
            }
            None => (1.0, 1.0),
        };
        // Every step below runs on the pixels the camera reads only (all without a
        // region); the others come back 0, and nobody reads them.
        let mut photons = Array2::<f64>::zeros((py, px));
        let on_read = |out: &mut Array2<f64>, f: &(dyn Fn(usize, usize, &mut f64) + Sync)| {
            ndarray::Zip::indexed(out.rows_mut()).par_for_each(|ny, mut row| {
                for nx in ranges(ny).iter().flat_map(|&(a, b)| a..b) {
                    f(ny, nx, &mut row[nx]);
                }
            });
        };
        if cfg.detection.scheme == Scheme::BalancedHomodyne {
            // Reference in phase with the read-out: Re(r̄·ȳ)/|r| = Re(ȳ·e^{i arg R}).
            let b = cfg.detection.reference_amplitude * a_fs;
            let r = C64::from_polar(b, -r_out.arg()).conj();
            let mut diff = Array2::<f64>::zeros((py, px));
            for sign in [1.0, -1.0] {
                let k = laser(rng) * to_photons;
                on_read(&mut photons, &|i, j, p| {
                    *p = (k * (b * b + sign * 2.0 * (r * z[[i, j]]).re + m2[[i, j]])).max(0.0);
                });
                let e = self.electrons(photons.view(), rng, read);
                on_read(&mut diff, &|i, j, d| *d += sign * e[[i, j]]);
            }
            let k = from_electrons / (4.0 * b) * r_out.norm();
            on_read(&mut diff, &|_, _, d| *d *= k);
            diff
        } else {
            // Intensity: one exposure of the mean intensity over each pixel image.
            let k = laser(rng) * to_photons;
            on_read(&mut photons, &|i, j, p| *p = (k * m2[[i, j]]).max(0.0));
            let mut e = self.electrons(photons.view(), rng, read);
            let k = from_electrons * r_out.norm_sqr();
            on_read(&mut e, &|_, _, v| *v *= k);
            e
        }
    }

    /// One camera exposure of `photons` per pixel: the calibrated photo-electrons
    /// (bias and mean dark signal removed). Without a photon budget the camera is
    /// not simulated and `photons` (then in field-intensity units) come back exact.
    fn electrons<R: Rng + ?Sized>(
        &self,
        photons: ArrayView2<f64>,
        rng: &mut R,
        read: Option<&ReadRegion>,
    ) -> Array2<f64> {
        if self.photons_full_scale().is_none() {
            return photons.to_owned();
        }
        self.camera().expose_electrons(photons, true, rng, read)
    }
}
