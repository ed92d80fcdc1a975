//! A fast digital surrogate of what a simulated 4f machine does to one optical op,
//! derived from the machine's configuration alone, for optics-aware training.
//!
//! For every 2-D convolution job `(x, κ)` of an op it reproduces, without the
//! wave optics, the steps of `fourf_sim::FourF` that change the numbers
//! (see `sim/src/readout.rs` and `sim/src/machine.rs`):
//!
//! 1. **Input scale and panel levels.** The planner shows every input tile at
//!    the panel's full range (divided by its largest `|x|`, the tile gain of
//!    `fourf_sim::PlannerConfig`); here the scale is the largest `|x|` of each input. Signed inputs on an
//!    amplitude or binary panel take two passes: `split` shows `x⁺` and `x⁻`,
//!    `offset` shows `(x/scale + 1)/2` and the constant `1/2`. Each pass is
//!    quantised exactly as the panel does (`Slm::response`, so levels and lookup
//!    tables are the machine's own). A complex or two-SLM input takes one pass.
//! 2. **The filter panel.** The kernel's transfer function is divided by its peak
//!    `gain = max|H·C|` (`C` the pixel-aperture compensation, 1 at oversampling 1),
//!    shown with the panel's amplitude and phase levels and multiplied by its fill
//!    factor, which nothing divides out. The levels are modelled as independent
//!    errors per Fourier bin with the uniform-quantisation variances `Δ²/12`,
//!    giving an output-referred variance per sample of
//!    `(gain²·‖x‖²·Δa²/12 + ‖y‖²·Δφ²/12) / (2N)` for a frame of `N` samples.
//!    `gain` is the peak of `|H·C|` on a 32 × 32 frequency grid refined around
//!    its best point (the per-op errors of `tests/surrogate.rs` stay within 4 % of
//!    the full simulation's).
//! 3. **Detection and the camera.** Balanced homodyne: per pass and output
//!    sample, the two exposures hold `E_fs(ρ² ± 2ρw + w²)` photo-electrons, with
//!    `w` the pass's field over full scale and `E_fs` the full-scale
//!    photo-electrons; each gets Gaussian noise of the shot variance plus dark,
//!    read and ADC (`g²/12`) variances, is clipped to the camera's range, and the
//!    difference is scaled back, `y = scale·G·(e₊ − e₋)/(4ρE_fs)`, `G = gain·s²`.
//!    Laser RIN multiplies each exposure by `1 + σz`. Coherent detection has only
//!    the RIN term. Intensity detection is not modelled (an error).
//!
//! The surrogate returns the perturbed outputs; a training forward adds
//! `perturbed − exact` to its exact outputs and passes gradients straight
//! through (the perturbation is a constant of the backward pass).

use fourf_sim::devices::detection::{Scheme, SignedInputs};
use fourf_sim::devices::slm::{Modulation, Slm};
use fourf_sim::{direct_conv, FourF, Mode, Op};

use crate::spectral::SpectralEmulation;
use ndarray::Array2;
use num_complex::Complex64 as C64;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use thiserror::Error;

/// A machine the surrogate cannot model.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SurrogateError {
    /// The detection scheme has no surrogate.
    #[error("the noise surrogate does not model `detection.scheme = {0}`; use coherent or balanced_homodyne")]
    Scheme(&'static str),
    /// The camera is noisy without a photon budget (the machine refuses it too).
    #[error("the noise surrogate needs a photon budget: set camera.full_scale_e or laser.power_w")]
    NoBudget,
}

#[derive(Debug, Clone)]
enum Detection {
    Coherent,
    Homodyne(Homodyne),
}

/// The two exposures of balanced homodyne detection.
#[derive(Debug, Clone)]
struct Homodyne {
    rho: f64,
    e_fs: f64,
    /// Dark, read and ADC variance per exposure, electrons².
    extra_var: f64,
    floor: f64,
    ceiling: f64,
}

impl Homodyne {
    /// `e₊ − e₋` of one output sample whose field over full scale has real part `w`
    /// and squared magnitude `m2`: each exposure holds `E_fs(ρ² + m2 ± 2ρw)(1 + r±)`
    /// photo-electrons (`rin` the two exposures' intensity noise), gets Gaussian
    /// noise of the shot (times `planes_weight`), dark, read and ADC variances from
    /// `z`, and is clipped to the camera's range.
    fn difference(&self, w: f64, m2: f64, rin: [f64; 2], planes_weight: f64, z: &mut impl FnMut() -> f64) -> f64 {
        let Homodyne {
            rho,
            e_fs,
            extra_var,
            floor,
            ceiling,
        } = *self;
        let base = rho * rho + m2;
        let mut e = [0.0; 2];
        for (s, (ei, r)) in [1.0f64, -1.0].iter().zip(e.iter_mut().zip(rin)) {
            let mean = e_fs * (base + s * 2.0 * rho * w) * (1.0 + r);
            let sd = (planes_weight * (mean.max(0.0) + extra_var)).sqrt();
            *ei = (mean + sd * z()).clamp(floor, ceiling);
        }
        e[0] - e[1]
    }
}

/// The surrogate of one machine (see the module docs).
#[derive(Debug, Clone)]
pub struct Surrogate {
    input: Slm,
    modulation: Modulation,
    signed: SignedInputs,
    /// `Σ_k (2^k/top)²` over the bit planes of a binary input panel (each plane
    /// its own exposure), 1 for any other panel: the factor of a pass's noise
    /// variance.
    planes_weight: f64,
    fill: f64,
    amp_var: f64,
    phase_var: f64,
    oversampling: usize,
    aperture: (usize, usize),
    full_compensation: bool,
    rin: f64,
    frame: (usize, usize),
    detection: Detection,
}

/// Uniform quantisation variance `Δ²/12` of a panel with `levels` levels over
/// `[0, range]`.
fn level_var(levels: Option<usize>, range: f64) -> f64 {
    levels.map_or(0.0, |l| {
        let step = range / (l.max(2) - 1) as f64;
        step * step / 12.0
    })
}

impl Surrogate {
    /// The surrogate of `machine`.
    pub fn new(machine: &FourF) -> Result<Self, SurrogateError> {
        let cfg = machine.config();
        let fslm = &cfg.filter_slm;
        let filter = Slm::new(fslm.clone(), "filter_slm").expect("the machine validated its filter panel");
        let transparent = filter.is_transparent();
        let (amp_var, phase_var) = if transparent {
            (0.0, 0.0)
        } else {
            match fslm.modulation {
                Modulation::Complex => (0.0, 0.0),
                Modulation::TwoSlm => {
                    let l = filter.levels();
                    let phase_levels = l.map(|n| n + 1);
                    (level_var(l, 1.0), level_var(phase_levels, fslm.phase_range_rad))
                }
                Modulation::Amplitude | Modulation::Binary => (level_var(filter.levels(), 1.0), 0.0),
                Modulation::Phase => (0.0, level_var(filter.levels().map(|n| n + 1), fslm.phase_range_rad)),
            }
        };
        let cam = &cfg.camera;
        let detection = match cfg.detection.scheme {
            Scheme::Coherent => Detection::Coherent,
            Scheme::Intensity => return Err(SurrogateError::Scheme("intensity")),
            Scheme::BalancedHomodyne => match machine.photons_full_scale() {
                None if cam.is_noiseless() => Detection::Coherent,
                None => return Err(SurrogateError::NoBudget),
                Some(phi) => {
                    let camera = machine.camera();
                    let g = camera.adc_step_e();
                    let adc = if cam.adc_bits.is_some() { g * g / 12.0 } else { 0.0 };
                    Detection::Homodyne(Homodyne {
                        rho: cfg.detection.reference_amplitude,
                        e_fs: phi * cam.quantum_efficiency,
                        extra_var: cam.dark_current_e_per_s * cam.exposure_s + cam.read_noise_e.powi(2) + adc,
                        floor: -cam.bias_adu * g,
                        ceiling: camera.ceiling_e(),
                    })
                }
            },
        };
        let s = machine.oversampling();
        let w = (s as f64 * machine.input_slm().effective_fill_factor(s).sqrt()).round() as usize;
        let w = w.clamp(1, s);
        let modulation = cfg.input_slm.modulation;
        Ok(Self {
            input: machine.input_slm().clone(),
            modulation,
            signed: cfg.detection.signed_inputs,
            planes_weight: if modulation == Modulation::Binary {
                let b = cfg.input_slm.bits.unwrap_or(1);
                let top = ((1u64 << b) - 1) as f64;
                (0..b).map(|k| (f64::powi(2.0, k as i32) / top).powi(2)).sum::<f64>()
            } else {
                1.0
            },
            fill: if transparent { 1.0 } else { fslm.fill_factor },
            amp_var,
            phase_var,
            oversampling: s,
            aperture: ((s - w) / 2, w),
            full_compensation: cfg.detection.pixel_compensation,
            rin: cfg.laser.rin_sigma(cam.exposure_s),
            frame: machine.frame_shape(),
            detection,
        })
    }

    /// The pixel-aperture compensation at pixel frequency `f` (cycles per pixel),
    /// as the machine programs it.
    fn compensation(&self, f: f64) -> C64 {
        let s = self.oversampling;
        let (o, w) = self.aperture;
        let arg = |k: f64| C64::from_polar(1.0, -2.0 * std::f64::consts::PI * f / s as f64 * k);
        let b_in: C64 = (o..o + w).map(|i| arg(i as f64)).sum();
        let b_cam: C64 = (0..s).map(|j| arg(-(j as f64))).sum::<C64>() / s as f64;
        let b = b_in * b_cam;
        if self.full_compensation {
            1.0 / b
        } else {
            b.conj() / (b.norm() * w as f64)
        }
    }

    /// `G = s²·max|H·C|` of the effective kernel `k` over pixel frequencies: the
    /// peak on a 32 × 32 grid, refined around it twice at steps of 1/64 and
    /// 1/128 cycles per pixel.
    fn gain(&self, k: &Array2<f64>) -> f64 {
        const M: usize = 32;
        let (kh, kw) = k.dim();
        let two_pi = 2.0 * std::f64::consts::PI;
        let identity = self.oversampling == 1;
        let comp = |f: f64| {
            if identity {
                C64::new(1.0, 0.0)
            } else {
                self.compensation(f)
            }
        };
        let value = |fy: f64, fx: f64| -> f64 {
            let px: Vec<C64> = (0..kw).map(|n| C64::from_polar(1.0, -two_pi * fx * n as f64)).collect();
            let mut h = C64::new(0.0, 0.0);
            for m in 0..kh {
                let row: C64 = (0..kw).map(|n| px[n] * k[[m, n]]).sum();
                h += row * C64::from_polar(1.0, -two_pi * fy * m as f64);
            }
            (h * comp(fy) * comp(fx)).norm()
        };
        // Coarse grid, separable: first along x for each row, then along y.
        let freqs: Vec<f64> = (0..M).map(|j| j as f64 / M as f64 - 0.5).collect();
        let comps: Vec<C64> = freqs.iter().map(|&f| comp(f)).collect();
        let mut along_x = vec![C64::new(0.0, 0.0); kh * M];
        for m in 0..kh {
            for (jx, &fx) in freqs.iter().enumerate() {
                along_x[m * M + jx] = (0..kw)
                    .map(|n| C64::from_polar(k[[m, n]], -two_pi * fx * n as f64))
                    .sum();
            }
        }
        let mut best = (0.0f64, 0.0, 0.0);
        for (jy, &fy) in freqs.iter().enumerate() {
            let py: Vec<C64> = (0..kh).map(|m| C64::from_polar(1.0, -two_pi * fy * m as f64)).collect();
            for (jx, &fx) in freqs.iter().enumerate() {
                let h: C64 = (0..kh).map(|m| py[m] * along_x[m * M + jx]).sum();
                let v = (h * comps[jy] * comps[jx]).norm();
                if v > best.0 {
                    best = (v, fy, fx);
                }
            }
        }
        for step in [1.0 / 64.0, 1.0 / 128.0] {
            let (_, cy, cx) = best;
            for dy in [-1.0, 0.0, 1.0] {
                for dx in [-1.0, 0.0, 1.0] {
                    // The filter panel spans [−1/2, 1/2) cycles per pixel: wrap.
                    let wrap = |f: f64| (f + 0.5).rem_euclid(1.0) - 0.5;
                    let (fy, fx) = (wrap(cy + dy * step), wrap(cx + dx * step));
                    let v = value(fy, fx);
                    if v > best.0 {
                        best = (v, fy, fx);
                    }
                }
            }
        }
        let s2 = (self.oversampling * self.oversampling) as f64;
        if best.0 > 0.0 {
            best.0 * s2
        } else {
            s2
        }
    }

    fn quantise(&self, v: f64) -> f64 {
        let q = self.input.response(C64::new(v, 0.0));
        q.re
    }

    /// The outputs the machine would give for the jobs `pairs` of `(input,
    /// kernel)` indices (as `fourf_nn::backend::ConvBatch`), each job's output
    /// perturbed by one draw of the surrogate; `exact` are the exact outputs of the
    /// same jobs (`direct_conv` of the unquantised inputs).
    ///
    /// # Panics
    /// If `exact` does not hold one output per job.
    #[allow(clippy::too_many_arguments)]
    pub fn apply<R: Rng + ?Sized>(
        &self,
        inputs: &[Array2<f64>],
        kernels: &[Array2<f64>],
        pairs: &[(usize, usize)],
        mode: Mode,
        op: Op,
        exact: &[Array2<f64>],
        rng: &mut R,
    ) -> Vec<Array2<f64>> {
        self.apply_cached(inputs, kernels, pairs, mode, op, exact, rng, &mut GainCache::default())
    }

    /// [`Surrogate::apply`] with the filter gains of kernels seen before taken from
    /// `cache` (weight kernels repeat for every image of a step).
    #[allow(clippy::too_many_arguments)]
    pub fn apply_cached<R: Rng + ?Sized>(
        &self,
        inputs: &[Array2<f64>],
        kernels: &[Array2<f64>],
        pairs: &[(usize, usize)],
        mode: Mode,
        op: Op,
        exact: &[Array2<f64>],
        rng: &mut R,
        cache: &mut GainCache,
    ) -> Vec<Array2<f64>> {
        assert_eq!(exact.len(), pairs.len(), "Surrogate::apply: one exact output per job");
        // Every input tile is shown at full range (the planner's tile gain).
        let scales: Vec<f64> = inputs
            .iter()
            .map(|x| x.iter().fold(0.0f64, |m, v| m.max(v.abs())))
            .collect();
        let effective = |k: &Array2<f64>| match op {
            Op::Convolution => k.clone(),
            Op::Correlation => k.slice(ndarray::s![..;-1, ..;-1]).to_owned(),
        };
        let gains: Vec<f64> = kernels
            .iter()
            .map(|k| {
                let key: Vec<u64> = k.iter().map(|v| v.to_bits()).chain([op as u64]).collect();
                *cache.0.entry(key).or_insert_with(|| self.gain(&effective(k)))
            })
            .collect();
        let passes = |x: &Array2<f64>, scale: f64, any_negative: bool| self.passes(x, scale, any_negative);
        let mut negative = vec![false; kernels.len()];
        for &(i, k) in pairs {
            negative[k] |= inputs[i].iter().any(|&v| v < 0.0);
        }
        let n_frame = (self.frame.0 * self.frame.1) as f64;
        // A frame holds the inputs of about this many jobs (for the filter-level noise).
        let (ih, iw) = inputs[pairs[0].0].dim();
        let (kh, kw) = kernels[pairs[0].1].dim();
        let per_frame = (n_frame / ((ih + kh - 1) * (iw + kw - 1)) as f64).clamp(1.0, pairs.len() as f64);
        let mut shown: std::collections::HashMap<(usize, u64, bool), Vec<Pass>> = Default::default();
        pairs
            .iter()
            .zip(exact)
            .map(|(&(i, k), ex)| {
                let (g, scale) = (gains[k], scales[i]);
                let mut out = Array2::<f64>::zeros(ex.dim());
                if scale == 0.0 {
                    return out;
                }
                let key = (i, scale.to_bits(), negative[k]);
                let input_passes = shown
                    .entry(key)
                    .or_insert_with(|| passes(&inputs[i], scale, negative[k]));
                for (weight, map) in input_passes.iter() {
                    let y = direct_conv(map.view(), kernels[k].view(), mode, op);
                    let yout = self.detect(&y, g, rng);
                    out.scaled_add(weight * scale, &yout);
                }
                // Filter levels: independent errors per Fourier bin.
                if self.amp_var > 0.0 || self.phase_var > 0.0 {
                    let ex2: f64 = inputs[i].iter().map(|v| v * v).sum::<f64>() * per_frame;
                    let ey2: f64 = ex.iter().map(|v| v * v).sum::<f64>() * per_frame;
                    let var = (g * g * ex2 * self.amp_var + ey2 * self.phase_var)
                        / (2.0 * n_frame * (self.oversampling * self.oversampling) as f64);
                    let sd = self.fill * var.sqrt();
                    out.mapv_inplace(|v| v + sd * Distribution::<f64>::sample(&StandardNormal, rng));
                }
                out
            })
            .collect()
    }

    /// The passes of input `x` in a frame of scale `scale`: (weight, map shown),
    /// quantised as the panel shows them.
    fn passes(&self, x: &Array2<f64>, scale: f64, any_negative: bool) -> Vec<Pass> {
        let signed = self.modulation == Modulation::Amplitude || self.modulation == Modulation::Binary;
        let xs = x.mapv(|v| v / scale);
        if !signed {
            return vec![(1.0, xs.mapv(|v| v.signum() * self.quantise(v.abs())))];
        }
        if !any_negative {
            return vec![(1.0, xs.mapv(|v| self.quantise(v)))];
        }
        match self.signed {
            SignedInputs::Split => vec![
                (1.0, xs.mapv(|v| self.quantise(v.max(0.0)))),
                (-1.0, xs.mapv(|v| self.quantise((-v).max(0.0)))),
            ],
            SignedInputs::Offset => {
                let half = self.quantise(0.5);
                vec![
                    (2.0, xs.mapv(|v| self.quantise(0.5 * (v + 1.0)))),
                    (-2.0, xs.mapv(|_| half)),
                ]
            }
        }
    }

    /// FNet's mixing `Re(DFT₂(x))` of one `[n, d]` map as the machine's 2f
    /// read-out detects it (`fourf_sim::lens_dft`): the panel's passes and levels,
    /// then per camera pixel the laser's intensity noise and, for balanced
    /// homodyne, the two exposures `E_fs(ρ² ± 2ρz + |y|²)` with `y` the pixel's
    /// field in full-scale units (`DFT/√(n·d)` of the shown pass) and `z` its real
    /// part, each with shot, dark, read and ADC noise and clipped to the camera's
    /// range. The input pixels' aperture scales each pixel's field by `E_k`, the
    /// magnitude of its transform (oversampling above 1), which the read-out
    /// divides out (`detection.pixel_compensation`) or leaves. Not modelled: the
    /// Fourier-plane stop and aberrations.
    pub fn lens_apply<R: Rng + ?Sized>(&self, x: &Array2<f64>, rng: &mut R) -> Array2<f64> {
        let (n, d) = x.dim();
        let mut out = Array2::<f64>::zeros((n, d));
        let scale = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if scale == 0.0 {
            return out;
        }
        let root = ((n * d) as f64).sqrt();
        // |B(k)|/s per axis: the pixel aperture's transform at the camera pixel.
        let (s, (o, w)) = (self.oversampling, self.aperture);
        let envelope = |len: usize| -> Vec<f64> {
            fourf_sim::lens_dft::pixel_aperture(len, s, o, w)
                .iter()
                .map(|b| b.norm() / s as f64)
                .collect()
        };
        let (ey, ex) = (envelope(n), envelope(d));
        let e0 = ey[0] * ex[0];
        let gain = Array2::from_shape_fn((n, d), |(i, j)| {
            let e = ey[i] * ex[j];
            (e, if self.full_compensation { e } else { e0 })
        });
        let negative = x.iter().any(|&v| v < 0.0);
        for (weight, map) in self.passes(x, scale, negative) {
            let spectrum = crate::spectral::dft2(map.view());
            let mut z = || -> f64 { Distribution::<f64>::sample(&StandardNormal, rng) };
            let detected: Array2<f64> = match &self.detection {
                Detection::Coherent => {
                    let r = (1.0 + self.rin * z()).max(0.0).sqrt();
                    ndarray::Zip::from(&spectrum)
                        .and(&gain)
                        .map_collect(|v, &(e, g)| v.re * r * e / g)
                }
                Detection::Homodyne(h) => {
                    let rin = [self.rin * z(), self.rin * z()];
                    let k = root / (4.0 * h.rho * h.e_fs);
                    ndarray::Zip::from(&spectrum).and(&gain).map_collect(|v, &(env, g)| {
                        let (w, m2) = (env * v.re / root, env * env * v.norm_sqr() / (root * root));
                        k * h.difference(w, m2, rin, self.planes_weight, &mut z) / g
                    })
                }
            };
            out.scaled_add(weight * scale, &detected);
        }
        out
    }

    /// One pass's detected output for the noiseless pass result `y` (in units of
    /// the panel's full scale), with the filter's fill factor and the read-out.
    fn detect<R: Rng + ?Sized>(&self, y: &Array2<f64>, gain: f64, rng: &mut R) -> Array2<f64> {
        let mut z = || -> f64 { Distribution::<f64>::sample(&StandardNormal, rng) };
        match &self.detection {
            Detection::Coherent => {
                let r = (1.0 + self.rin * z()).max(0.0).sqrt();
                y.mapv(|v| self.fill * v * r)
            }
            Detection::Homodyne(h) => {
                let rin = [self.rin * z(), self.rin * z()];
                let k = gain / (4.0 * h.rho * h.e_fs);
                y.mapv(|v| {
                    let w = self.fill * v / gain;
                    k * h.difference(w, w * w, rin, self.planes_weight, &mut z)
                })
            }
        }
    }
}

/// One pass of an input on the panel: its weight in the sum and the map shown.
type Pass = (f64, Array2<f64>);

/// Filter gains by kernel (its values' bits), reused within a step.
#[derive(Debug, Clone, Default)]
pub struct GainCache(std::collections::HashMap<Vec<u64>, f64>);

pub use crate::backend::relative_error;

/// What perturbs the optical ops of a training forward pass.
#[derive(Debug, Clone, Copy)]
pub enum NoiseSource<'a> {
    /// The fast surrogate.
    Surrogate(&'a Surrogate),
    /// The full simulation: every op planned and run on the machine (fine-tuning).
    Machine(&'a FourF),
}

/// One image's share of a batched optical op: the op's jobs for that image (as
/// [`crate::backend::ConvBatch`]) and their exact outputs.
#[derive(Debug, Clone)]
pub struct ImageJobs {
    /// The image's index in the micro-batch.
    pub image: usize,
    /// Input maps.
    pub inputs: Vec<Array2<f64>>,
    /// Kernels.
    pub kernels: Vec<Array2<f64>>,
    /// `(input, kernel)` index of every job, in output order.
    pub pairs: Vec<(usize, usize)>,
    /// The exact output of every job.
    pub exact: Vec<Array2<f64>>,
}

/// What the machine spent on one op of a batched forward pass (the full
/// simulation only; the surrogate counts nothing).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpUsage {
    /// Op name, as in the traced forward pass (e.g. `blocks.0.filter`).
    pub name: String,
    /// Images whose jobs the op ran.
    pub images: usize,
    /// 2-D convolutions.
    pub jobs: usize,
    /// Frames.
    pub frames: usize,
    /// Optical passes.
    pub passes: usize,
    /// Camera exposures.
    pub exposures: usize,
    /// Filters programmed.
    pub filters: usize,
    /// Sum over the measured images of the op's relative error
    /// `‖optical − exact‖ / ‖exact‖` over the image's jobs, `exact` the direct
    /// convolution in f64.
    pub error_sum: f64,
    /// Images whose error was measured: the first [`ERROR_IMAGES`] of each batch
    /// (the direct reference costs more than the frames of a large batch).
    pub error_images: usize,
    /// Seconds spent planning the op's jobs (or finding the plan in the machine's
    /// cache).
    pub plan_s: f64,
    /// Seconds spent running its frames: filters, input SLM, optics, camera.
    pub frames_s: f64,
    /// Seconds spent on the f64 direct reference of the measured images (and on
    /// turning outputs into deltas).
    pub reference_s: f64,
}

/// Images of each batch whose per-op error a machine run measures against the
/// direct convolution.
pub const ERROR_IMAGES: usize = 4;

impl OpUsage {
    /// Mean over the measured images of the op's relative error.
    pub fn mean_relative_error(&self) -> f64 {
        self.error_sum / self.error_images.max(1) as f64
    }
}

/// Sums the usage of the same op (by name, in order of first appearance) over
/// micro-batches.
pub fn merge_usage(parts: impl IntoIterator<Item = OpUsage>) -> Vec<OpUsage> {
    let mut out: Vec<OpUsage> = Vec::new();
    for u in parts {
        match out.iter_mut().find(|o| o.name == u.name) {
            Some(o) => {
                o.images += u.images;
                o.jobs += u.jobs;
                o.frames += u.frames;
                o.passes += u.passes;
                o.exposures += u.exposures;
                o.filters += u.filters;
                o.error_sum += u.error_sum;
                o.error_images += u.error_images;
                o.plan_s += u.plan_s;
                o.frames_s += u.frames_s;
                o.reference_s += u.reference_s;
            }
            None => out.push(u),
        }
    }
    out
}

/// The perturbation of the optical ops in a training forward pass: its source,
/// its strength (`0` off, `1` the machine's full noise; annealed in over the first
/// epochs) and one generator per image of the batch, seeded by the image's
/// position in the run, so a step draws the same noise at any thread count and
/// any micro-batch split.
///
/// With the full simulation ([`NoiseSource::Machine`]), a batched op
/// ([`OpticsNoise::delta_batch`]) plans the jobs of every image of the
/// micro-batch together, so images share frames (one filter serves a weight
/// kernel's maps of every image); its noise is drawn per frame from the op's seed
/// (the run's seed, the micro-batch's first image and the op's call number), the
/// same at any thread count but dependent on how images are grouped into
/// micro-batches. What each op cost is kept for [`OpticsNoise::take_usage`].
#[derive(Debug)]
pub struct OpticsNoise<'a> {
    /// Where the perturbation comes from.
    pub source: NoiseSource<'a>,
    /// Scale of the perturbation.
    pub strength: f64,
    rngs: Vec<rand::rngs::StdRng>,
    gains: GainCache,
    /// Seed of the machine's ops: from the run's seed and the first image.
    op_seed: u64,
    calls: u64,
    usage: Vec<OpUsage>,
    /// The first op the machine could not plan or run, and why.
    failure: Option<String>,
    /// How global spectral filters are laid out on the machine (the surrogate
    /// models [`SpectralEmulation::Circular`]).
    pub spectral: SpectralEmulation,
}

impl<'a> OpticsNoise<'a> {
    /// Noise for `images` images whose generators are seeded
    /// `split_seed(seed, first + i)`.
    pub fn new(source: NoiseSource<'a>, strength: f64, seed: u64, first: usize, images: usize) -> Self {
        use rand::SeedableRng;
        let rngs = (0..images)
            .map(|i| rand::rngs::StdRng::seed_from_u64(crate::backend::split_seed(seed, (first + i) as u64)))
            .collect();
        Self {
            source,
            strength,
            rngs,
            gains: GainCache::default(),
            op_seed: crate::backend::split_seed(seed ^ MACHINE_OPS, first as u64),
            calls: 0,
            usage: Vec::new(),
            failure: None,
            spectral: SpectralEmulation::Circular,
        }
    }

    /// The first op the machine could not plan or run, with the reason (emptied).
    /// Such an op is left unperturbed, so a forward pass completes; its caller
    /// must report this rather than use the result.
    pub fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }

    /// What the machine spent on every op so far (emptied).
    pub fn take_usage(&mut self) -> Vec<OpUsage> {
        std::mem::take(&mut self.usage)
    }

    /// `strength · (perturbed − exact)` for each job of op `name` of image `image`
    /// (see [`Surrogate::apply`]; the machine runs the jobs through the planner).
    ///
    /// When the machine cannot plan or run the jobs (e.g. intensity detection of
    /// signed inputs), the op is left exact (a zero delta) and the reason is kept
    /// for [`OpticsNoise::take_failure`].
    #[allow(clippy::too_many_arguments)]
    pub fn delta(
        &mut self,
        name: &str,
        image: usize,
        inputs: &[Array2<f64>],
        kernels: &[Array2<f64>],
        pairs: &[(usize, usize)],
        mode: Mode,
        op: Op,
        exact: &[Array2<f64>],
    ) -> Vec<Array2<f64>> {
        match self.source {
            NoiseSource::Surrogate(s) => {
                let out = s.apply_cached(
                    inputs,
                    kernels,
                    pairs,
                    mode,
                    op,
                    exact,
                    &mut self.rngs[image],
                    &mut self.gains,
                );
                self.scaled_delta(out, exact)
            }
            NoiseSource::Machine(_) => {
                let jobs = ImageJobs {
                    image,
                    inputs: inputs.to_vec(),
                    kernels: kernels.to_vec(),
                    pairs: pairs.to_vec(),
                    exact: exact.to_vec(),
                };
                self.delta_batch(name, &[jobs], mode, op).pop().expect("one image")
            }
        }
    }

    /// [`OpticsNoise::delta`] for the jobs of several images of one op: the
    /// surrogate draws per image; the machine plans all the images' jobs as one
    /// problem (images share frames). One result per entry of `images`. A machine
    /// that cannot run them: as [`OpticsNoise::delta`].
    pub fn delta_batch(&mut self, name: &str, images: &[ImageJobs], mode: Mode, op: Op) -> Vec<Vec<Array2<f64>>> {
        let machine = match self.source {
            NoiseSource::Surrogate(_) => {
                return images
                    .iter()
                    .map(|j| self.delta(name, j.image, &j.inputs, &j.kernels, &j.pairs, mode, op, &j.exact))
                    .collect()
            }
            NoiseSource::Machine(m) => m,
        };
        // Every image's maps are its own inputs (keys); kernels are shared by content
        // (a weight is the same in every image).
        let (mut jobs, mut keys, mut base) = (Vec::new(), Vec::new(), 0);
        for j in images {
            for &(i, k) in &j.pairs {
                jobs.push(fourf_sim::ConvJob::new(
                    j.inputs[i].view(),
                    j.kernels[k].view(),
                    mode,
                    op,
                ));
                keys.push(base + i);
            }
            base += j.inputs.len();
        }
        let seed = crate::backend::split_seed(self.op_seed, self.calls);
        self.calls += 1;
        let clock = std::time::Instant::now();
        let (mut plan_s, mut frames_s) = (0.0, 0.0);
        let planned = fourf_sim::Planner::new(machine.frame_shape(), fourf_sim::PlannerConfig::default())
            .plan_cached(&jobs, Some(&keys), machine)
            .map_err(|e| format!("the machine cannot plan op `{name}`: {e}"))
            .and_then(|plan| {
                plan_s = clock.elapsed().as_secs_f64();
                let run = plan
                    .execute(machine, &jobs, seed)
                    .map_err(|e| format!("the machine cannot run op `{name}`: {e}"))?;
                frames_s = clock.elapsed().as_secs_f64() - plan_s;
                Ok((plan, run))
            });
        let (plan, run) = match planned {
            Ok(p) => p,
            Err(why) => {
                // Recorded, not panicked: the caller reports it. The op stays exact.
                self.failure.get_or_insert(why);
                return images
                    .iter()
                    .map(|j| j.exact.iter().map(|e| Array2::zeros(e.dim())).collect())
                    .collect();
            }
        };
        let mut outputs = run.outputs.into_iter();
        let clock = std::time::Instant::now();
        let mut error_sum = 0.0;
        let error_images = images.len().min(ERROR_IMAGES);
        let deltas = images
            .iter()
            .enumerate()
            .map(|(n, j)| {
                let out: Vec<Array2<f64>> = (&mut outputs).take(j.pairs.len()).collect();
                // The op's own error against the exact convolutions in f64 (`exact` may
                // be the model's rounded outputs), on the batch's first images.
                if n < error_images {
                    let reference: Vec<Array2<f64>> = j
                        .pairs
                        .iter()
                        .map(|&(i, k)| direct_conv(j.inputs[i].view(), j.kernels[k].view(), mode, op))
                        .collect();
                    error_sum += relative_error(&out, &reference);
                }
                self.scaled_delta(out, &j.exact)
            })
            .collect();
        self.usage.push(OpUsage {
            name: name.to_string(),
            images: images.len(),
            jobs: jobs.len(),
            frames: run.frames,
            passes: run.passes,
            exposures: run.exposures,
            filters: plan.stats().filters,
            error_sum,
            error_images,
            plan_s,
            frames_s,
            reference_s: clock.elapsed().as_secs_f64(),
        });
        deltas
    }

    /// `strength · (detected − exact)` of FNet's lens mixing for the map of each
    /// image of the micro-batch (`maps[i]` that of image `i`, `exact[i]` its exact
    /// `Re(DFT₂)`): the surrogate ([`Surrogate::lens_apply`]) draws from each
    /// image's generator; the machine runs one 2f frame per map
    /// (`fourf_sim::FourF::lens_dft`), seeded by the op's call and the image, in
    /// parallel; maps larger than its input SLM, or on a machine with intensity
    /// detection, stay exact (electronic). A machine that cannot run them: as
    /// [`OpticsNoise::delta`].
    ///
    /// # Panics
    /// If `maps` and `exact` differ in length.
    pub fn lens_delta_batch(&mut self, name: &str, maps: &[Array2<f64>], exact: &[Array2<f64>]) -> Vec<Array2<f64>> {
        use rand::SeedableRng;
        use rayon::prelude::*;
        assert_eq!(maps.len(), exact.len(), "lens_delta_batch: one exact output per map");
        // The surrogate exists only for machines that read a real part.
        let runs = |shape: (usize, usize)| match self.source {
            NoiseSource::Surrogate(s) => shape.0 <= s.frame.0 && shape.1 <= s.frame.1,
            NoiseSource::Machine(m) => m.lens_dft_runs(shape),
        };
        if !maps.iter().all(|m| runs(m.dim())) {
            // Larger than the input SLM, or intensity detection: electronic, as the
            // latency model places it.
            return exact.iter().map(|e| Array2::zeros(e.dim())).collect();
        }
        let machine = match self.source {
            NoiseSource::Surrogate(s) => {
                let outs: Vec<Array2<f64>> = maps
                    .iter()
                    .enumerate()
                    .map(|(i, m)| s.lens_apply(m, &mut self.rngs[i]))
                    .collect();
                return self.scaled_delta(outs, exact);
            }
            NoiseSource::Machine(m) => m,
        };
        let seed = crate::backend::split_seed(self.op_seed, self.calls);
        self.calls += 1;
        let clock = std::time::Instant::now();
        let run: Result<Vec<fourf_sim::lens_dft::LensDft>, _> = maps
            .par_iter()
            .enumerate()
            .map(|(i, m)| {
                let mut rng = rand::rngs::StdRng::seed_from_u64(crate::backend::split_seed(seed, i as u64));
                machine.lens_dft(m.view(), &mut rng)
            })
            .collect();
        let frames_s = clock.elapsed().as_secs_f64();
        let run = match run {
            Ok(r) => r,
            Err(e) => {
                self.failure
                    .get_or_insert(format!("the machine cannot run op `{name}`: {e}"));
                return exact.iter().map(|e| Array2::zeros(e.dim())).collect();
            }
        };
        let clock = std::time::Instant::now();
        let error_images = maps.len().min(ERROR_IMAGES);
        let error_sum: f64 = (0..error_images)
            .map(|i| {
                let reference = crate::spectral::fourier_mix(maps[i].view());
                relative_error(std::slice::from_ref(&run[i].values), &[reference])
            })
            .sum();
        let reference_s = clock.elapsed().as_secs_f64();
        self.usage.push(OpUsage {
            name: name.to_string(),
            images: maps.len(),
            jobs: maps.len(),
            frames: maps.len(),
            passes: run.iter().map(|r| r.passes).sum(),
            exposures: run.iter().map(|r| r.exposures).sum(),
            filters: 0,
            error_sum,
            error_images,
            plan_s: 0.0,
            frames_s,
            reference_s,
        });
        self.scaled_delta(run.into_iter().map(|r| r.values).collect(), exact)
    }

    fn scaled_delta(&self, out: Vec<Array2<f64>>, exact: &[Array2<f64>]) -> Vec<Array2<f64>> {
        out.into_iter()
            .zip(exact)
            .map(|(o, e)| (o - e) * self.strength)
            .collect()
    }
}

/// Salt of the machine ops' seeds (so they differ from the images' generators).
const MACHINE_OPS: u64 = 0x4F_50_53;
