//! The 4f machine: input SLM → lens 1 → Fourier-plane filter → lens 2 → output
//! plane. [`MachineConfig`] is the serde description (SI units, unit in every key);
//! [`FourF`] is the planned machine that executes frames.
//!
//! A frame is executed as two 2-D FFTs with everything else fused into their passes:
//! the input is loaded straight into FFT order, the Fourier-plane transmission
//! (the programmed filter resampled onto the Fourier grid, times the pupil, the
//! aberrations and any defocus) multiplies the spectrum between the column passes
//! of the two transforms, and the output is left in FFT order and read through an
//! index map. The second lens performs a *forward* transform, so the output is the
//! point-reflected convolution (magnification `−f2/f1`); [`FrameScratch::conv_value`]
//! undoes the reflection when a result is read, the field itself stays physical.

use std::sync::Arc;

use ndarray::{Array2, ArrayView2};
use num_complex::Complex64 as C64;
use rustfft::FftDirection;
use serde::{Deserialize, Serialize};

use crate::cache::{MaskCache, PlanCache};
use crate::devices::camera::{Camera, CameraConfig, ReadRegion};
use crate::devices::detection::DetectionConfig;
use crate::devices::laser::LaserConfig;
use crate::devices::slm::{Modulation, Slm, SlmConfig};
use crate::devices::timing::TimingConfig;
use crate::error::SimError;
use crate::fft::{shift_half, signed_index, transpose, Fft2, Fft2Scratch};
use crate::field::Field;
use crate::lens::{fourier_pitch_m, lens_transform};
use crate::propagation::{band_limit, transfer};
use crate::pupil::{circle_coverage, ZernikeConfig};

fn default_name() -> String {
    "custom".to_string()
}

/// The largest photon budget, photons per pixel at full scale (2^60 ≈ 1.2e18): far
/// above any sensor, low enough that no photon count overflows.
pub const MAX_FULL_SCALE_PHOTONS: f64 = 1_152_921_504_606_846_976.0;
/// A 4f machine as written in a preset or a TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// Name shown in reports.
    #[serde(default = "default_name")]
    pub name: String,
    /// The light source.
    pub laser: LaserConfig,
    /// Sampling of the simulation.
    #[serde(default)]
    pub simulation: SimulationConfig,
    /// The input SLM; `pixels_x`, `pixels_y` and `pitch_m` are required and set the
    /// frame.
    pub input_slm: SlmConfig,
    /// First lens (input plane → Fourier plane).
    pub lens1: LensConfig,
    /// Second lens (Fourier plane → output plane).
    pub lens2: LensConfig,
    /// The Fourier-plane filter SLM; unset pixel counts and pitch match the Fourier
    /// grid (`pitch = λf1/(NΔx)` per axis, `N` input-SLM pixels).
    #[serde(default)]
    pub filter_slm: SlmConfig,
    /// The Fourier-plane stop and aberrations.
    #[serde(default)]
    pub pupil: PupilConfig,
    /// Alignment errors.
    #[serde(default)]
    pub misalignment: MisalignmentConfig,
    /// The camera in the output plane.
    #[serde(default)]
    pub camera: CameraConfig,
    /// How the output is detected and signed inputs are shown.
    #[serde(default)]
    pub detection: DetectionConfig,
    /// Link, pipelining, device powers and the electronic co-processor, for the
    /// latency and energy models (ignored by the simulation).
    #[serde(default)]
    pub timing: TimingConfig,
}

/// Sampling of the simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulationConfig {
    /// Simulation samples per SLM pixel along each axis (1..=16, default 1); above
    /// 1 the pixel shape (fill factor, crosstalk) and camera pixel integration are
    /// resolved.
    pub oversampling: usize,
    /// How the filter panel's pixels act on the Fourier plane (default
    /// `samples`).
    pub filter_pixels: FilterPixels,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            oversampling: 1,
            filter_pixels: FilterPixels::Samples,
        }
    }
}

/// The filter panel's pixels in the simulation (`simulation.filter_pixels`).
///
/// A filter pixel of pitch `p_f` and linear fill `√F` is an aperture, not a
/// sample: the panel's transmission is its pixel values convolved with the
/// aperture, so the impulse response — the kernel plane — is multiplied by the
/// aperture's transform, `sinc(√F·p_f·x/(λ f1))` along each axis for a tap `x`
/// metres from the kernel-plane origin (on the input's DFT grid `p_f = λ f1/(N·Δx)`
/// and a tap `m` pixels off keeps `sinc(√F·m/N)`: a 100 %-fill panel keeps
/// `sinc²(1/4) = 0.81` of the intensity at a quarter frame). A lateral shift `δ` of
/// the panel multiplies each tap by `exp(2πi·δ·x/(λ f1))`: its phase turns, its
/// magnitude stays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterPixels {
    /// Each pixel is a sample of the transfer function at its centre (no
    /// envelope); a shifted or differently pitched panel is resampled by area
    /// (which attenuates taps far from the origin). The ideal presets' choice.
    #[default]
    Samples,
    /// Each pixel is an aperture of its fill factor: the sinc envelope on the
    /// kernel plane, a shift as a phase ramp on the taps. Needs a filter panel on
    /// the input's DFT grid (as many pixels as the input SLM, pitch `λ f1/(N·Δx)`,
    /// the default); [`DetectionConfig::filter_envelope_compensation`] divides the
    /// envelope out.
    Apertures,
}

/// A thin lens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LensConfig {
    /// Focal length in metres.
    pub focal_length_m: f64,
}

/// The Fourier-plane pupil.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PupilConfig {
    /// Radius of the circular stop in metres; unset: no stop.
    pub radius_m: Option<f64>,
    /// Radius the Zernike terms are normalised to; unset: the stop radius, or
    /// without a stop half the smaller side of the Fourier window.
    pub aberration_radius_m: Option<f64>,
    /// Wavefront aberrations, waves RMS.
    pub zernike_waves: ZernikeConfig,
}

/// Alignment errors of the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MisalignmentConfig {
    /// Lateral shift of the filter SLM along x, metres.
    pub filter_shift_x_m: f64,
    /// Lateral shift of the filter SLM along y, metres.
    pub filter_shift_y_m: f64,
    /// Distance the input plane sits before the front focal plane of lens 1, metres
    /// (the light propagates this far before reaching it).
    pub input_defocus_m: f64,
    /// Distance the output plane sits behind the back focal plane of lens 2, metres.
    pub output_defocus_m: f64,
}

fn positive(key: &str, v: f64) -> Result<(), SimError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(SimError::invalid(key, v, "must be a finite number > 0"))
    }
}

fn finite(key: &str, v: f64) -> Result<(), SimError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(SimError::invalid(key, v, "must be a finite number"))
    }
}

fn even_pixels(key: &str, v: Option<usize>) -> Result<(), SimError> {
    match v {
        Some(v) if v >= 2 && v.is_multiple_of(2) && v <= 1 << 15 => Ok(()),
        Some(v) => Err(SimError::invalid(key, v, "must be an even pixel count in 2..=32768")),
        None => Ok(()),
    }
}

fn required<T: Copy>(key: &str, v: Option<T>) -> Result<T, SimError> {
    v.ok_or_else(|| SimError::invalid(key, "unset", "is required for the input SLM (it sets the frame)"))
}

impl MachineConfig {
    /// An ideal noiseless machine with `n × n` pixels of 8 µm, 532 nm light and two
    /// 100 mm lenses: ideal complex SLMs, the filter matched to the Fourier grid,
    /// coherent (field) detection.
    pub fn ideal(n: usize) -> Self {
        MachineConfig {
            name: format!("ideal-{n}"),
            laser: LaserConfig::ideal(532e-9),
            simulation: SimulationConfig::default(),
            input_slm: SlmConfig {
                pixels_x: Some(n),
                pixels_y: Some(n),
                pitch_m: Some(8e-6),
                ..SlmConfig::default()
            },
            lens1: LensConfig { focal_length_m: 0.1 },
            lens2: LensConfig { focal_length_m: 0.1 },
            filter_slm: SlmConfig::default(),
            pupil: PupilConfig::default(),
            misalignment: MisalignmentConfig::default(),
            camera: CameraConfig::default(),
            detection: DetectionConfig::default(),
            timing: TimingConfig::default(),
        }
    }

    /// Vacuum wavelength, metres.
    pub fn wavelength_m(&self) -> f64 {
        self.laser.wavelength_m
    }

    /// Checks every value; the error names the key and its valid range.
    pub fn validate(&self) -> Result<(), SimError> {
        self.laser.validate()?;
        let s = self.simulation.oversampling;
        if !(1..=16).contains(&s) {
            return Err(SimError::invalid(
                "simulation.oversampling",
                s,
                "must be an integer in 1..=16",
            ));
        }
        required("input_slm.pixels_x", self.input_slm.pixels_x)?;
        required("input_slm.pixels_y", self.input_slm.pixels_y)?;
        if self.detection.filter_envelope_compensation && self.simulation.filter_pixels != FilterPixels::Apertures {
            return Err(SimError::invalid(
                "detection.filter_envelope_compensation",
                true,
                "compensates the filter panel's pixel envelope, which only simulation.filter_pixels = \"apertures\" \
                 models; set that too, or leave this false",
            ));
        }
        if self.simulation.filter_pixels == FilterPixels::Apertures {
            let on_grid = self.filter_slm.pitch_m.is_none()
                && self
                    .filter_slm
                    .pixels_x
                    .is_none_or(|p| Some(p) == self.input_slm.pixels_x)
                && self
                    .filter_slm
                    .pixels_y
                    .is_none_or(|p| Some(p) == self.input_slm.pixels_y);
            if !on_grid {
                return Err(SimError::invalid(
                    "simulation.filter_pixels",
                    "\"apertures\"",
                    "needs a filter panel on the input's DFT grid: leave filter_slm.pitch_m unset and \
                     filter_slm.pixels_x/y unset or equal to the input SLM's; or use \"samples\"",
                ));
            }
        }
        positive(
            "input_slm.pitch_m",
            required("input_slm.pitch_m", self.input_slm.pitch_m)?,
        )?;
        even_pixels("input_slm.pixels_x", self.input_slm.pixels_x)?;
        even_pixels("input_slm.pixels_y", self.input_slm.pixels_y)?;
        self.input_slm.validate("input_slm")?;
        self.timing.validate()?;
        if self.input_slm.modulation == Modulation::Phase {
            return Err(SimError::invalid(
                "input_slm.modulation",
                "\"phase\"",
                "a phase-only input SLM cannot show the amplitudes of a linear convolution; use amplitude, complex, two_slm or binary",
            ));
        }
        positive("lens1.focal_length_m", self.lens1.focal_length_m)?;
        positive("lens2.focal_length_m", self.lens2.focal_length_m)?;
        even_pixels("filter_slm.pixels_x", self.filter_slm.pixels_x)?;
        even_pixels("filter_slm.pixels_y", self.filter_slm.pixels_y)?;
        self.filter_slm.validate("filter_slm")?;
        if let Some(r) = self.pupil.radius_m {
            positive("pupil.radius_m", r)?;
        }
        if let Some(r) = self.pupil.aberration_radius_m {
            positive("pupil.aberration_radius_m", r)?;
        }
        for (k, c) in self.pupil.zernike_waves.terms() {
            finite(&format!("pupil.zernike_waves.{k}"), c)?;
        }
        let m = &self.misalignment;
        finite("misalignment.filter_shift_x_m", m.filter_shift_x_m)?;
        finite("misalignment.filter_shift_y_m", m.filter_shift_y_m)?;
        finite("misalignment.input_defocus_m", m.input_defocus_m)?;
        finite("misalignment.output_defocus_m", m.output_defocus_m)?;
        self.camera.validate("camera")?;
        self.detection.validate()?;
        self.validate_camera_fit()?;
        self.check_memory(memory_bytes())
    }

    /// Expected photons per camera pixel from a flat full-scale field, if known:
    /// `camera.full_scale_e / quantum_efficiency`, else the laser power over the
    /// exposure spread across the frame's pixels.
    pub fn photons_full_scale(&self) -> Option<f64> {
        let cam = &self.camera;
        let pixels = self.input_slm.pixels_x.unwrap_or(0) * self.input_slm.pixels_y.unwrap_or(0);
        cam.full_scale_e.map(|e| e / cam.quantum_efficiency).or_else(|| {
            self.laser
                .power_w
                .map(|p| p * cam.exposure_s / self.laser.photon_energy_j() / pixels as f64)
        })
    }

    /// The camera against the rest of the machine: its pitch is the image of an
    /// input pixel, it covers the frame, and its photon budget is finite and given
    /// whenever it has noise.
    fn validate_camera_fit(&self) -> Result<(), SimError> {
        let cam = &self.camera;
        let pixel_pitch_m = self.input_slm.pitch_m.expect("validated");
        let (f1, f2) = (self.lens1.focal_length_m, self.lens2.focal_length_m);
        let image_pitch = pixel_pitch_m * f2 / f1;
        if let Some(p) = cam.pitch_m {
            if (p - image_pitch).abs() > 1e-6 * image_pitch {
                return Err(SimError::invalid(
                    "camera.pitch_m",
                    p,
                    format!(
                        "must equal the image of an input-SLM pixel, pitch·f2/f1 = {image_pitch:e} m (choose lens2.focal_length_m = {:e} m to match this camera); other pitches are not modelled yet",
                        cam_focal(p, pixel_pitch_m, f1)
                    ),
                ));
            }
        }
        for (key, have, need) in [
            (
                "camera.pixels_y",
                cam.pixels_y,
                self.input_slm.pixels_y.expect("validated"),
            ),
            (
                "camera.pixels_x",
                cam.pixels_x,
                self.input_slm.pixels_x.expect("validated"),
            ),
        ] {
            if let Some(h) = have {
                if h < need {
                    return Err(SimError::invalid(
                        key,
                        h,
                        format!("the camera must cover the {need} pixel images of the frame; give at least {need} or leave it unset"),
                    ));
                }
            }
        }
        let photons_full_scale = self.photons_full_scale();
        // The photon budget must leave every photon count finite (a pixel's mean
        // can reach a few times full scale), far above any real sensor's well.
        if let Some(n) = photons_full_scale.filter(|n| !(n.is_finite() && *n <= MAX_FULL_SCALE_PHOTONS)) {
            let (key, value) = match cam.full_scale_e {
                Some(e) => ("camera.full_scale_e", e),
                None => ("laser.power_w", self.laser.power_w.unwrap_or(f64::NAN)),
            };
            return Err(SimError::invalid(
                key,
                value,
                format!(
                    "gives {n:.3e} photons per pixel at full scale; at most {MAX_FULL_SCALE_PHOTONS:e} (real sensors hold about 1e4–1e6 electrons)"
                ),
            ));
        }
        if photons_full_scale.is_none() && !cam.is_noiseless() {
            return Err(SimError::invalid(
                "camera",
                "noise without a photon budget",
                "camera noise needs a photon budget: set camera.full_scale_e or laser.power_w",
            ));
        }
        Ok(())
    }

    /// Refuses a machine whose simulation grid would not fit in `memory` bytes
    /// (none: no limit known), naming the settings and the estimate: the
    /// machine keeps about [`PLANES`] complex planes of the oversampled grid
    /// (transfer functions, masks, scratch), 16 bytes a sample.
    pub fn check_memory(&self, memory: Option<u64>) -> Result<(), SimError> {
        let s = self.simulation.oversampling as u64;
        let (px, py) = (
            self.input_slm.pixels_x.unwrap_or(0) as u64,
            self.input_slm.pixels_y.unwrap_or(0) as u64,
        );
        // At most 32768² × 16² samples × 16 B × PLANES: no overflow in u64.
        let bytes = px * py * s * s * 16 * PLANES;
        match memory {
            Some(m) if bytes > m => Err(SimError::invalid(
                "input_slm.pixels_x",
                px,
                format!(
                    "a {px}×{py} frame at simulation.oversampling = {s} needs about {:.1} GiB \
                     ({PLANES} complex planes of {}×{} samples), more than this machine's {:.1} GiB; \
                     use fewer pixels or a lower oversampling",
                    bytes as f64 / GIB,
                    px * s,
                    py * s,
                    m as f64 / GIB
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Complex planes of the simulation grid a machine holds at once (estimate).
pub const PLANES: u64 = 8;

const GIB: f64 = (1u64 << 30) as f64;

/// This computer's memory in bytes (`MemTotal` of `/proc/meminfo`), if known.
pub fn memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// What the filter panel's apertures do to each kernel-plane tap, per axis.
#[derive(Debug, Clone)]
struct PanelTaps {
    /// `sinc(√F·p_f·x/(λ f1))` at each index's displacement `x`.
    envelope: [Vec<f64>; 2],
    /// `exp(2πi·δ·x/(λ f1))` for the panel's shift `δ`.
    ramp: [Vec<C64>; 2],
    /// The controller divides the kernel by the envelope before programming.
    compensate: bool,
}

/// `sin(πx)/(πx)`.
fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let a = std::f64::consts::PI * x;
        a.sin() / a
    }
}

/// Per-axis resampling of the filter SLM onto the Fourier grid: for every Fourier
/// sample, the filter pixels its cell overlaps and the overlapping fraction.
#[derive(Debug, Clone)]
struct AxisResampling {
    weights: Vec<Vec<(usize, f64)>>,
}

impl AxisResampling {
    /// Fourier samples `k` at `(k − n/2)·du` with cells of width `du`; filter pixels
    /// `j` centred at `(j − nf/2)·pf + shift` with width `pf` (100 % fill).
    fn new(n: usize, du: f64, nf: usize, pf: f64, shift: f64) -> Self {
        let weights = (0..n)
            .map(|k| {
                let u = (k as f64 - (n / 2) as f64) * du;
                let (lo, hi) = (u - du / 2.0, u + du / 2.0);
                // Pixel index whose centre is nearest to `lo`, then walk right.
                let j_lo = (((lo - shift) / pf) + (nf / 2) as f64 - 0.5).floor().max(0.0) as usize;
                let mut w = Vec::new();
                for j in j_lo..nf {
                    let c = (j as f64 - (nf / 2) as f64) * pf + shift;
                    let (plo, phi) = (c - pf / 2.0, c + pf / 2.0);
                    if plo >= hi {
                        break;
                    }
                    let overlap = (hi.min(phi) - lo.max(plo)) / du;
                    if overlap > 1e-12 {
                        w.push((j, overlap));
                    }
                }
                w
            })
            .collect();
        Self { weights }
    }
}

/// A filter programmed on the machine: the Fourier-plane transmission in the
/// executor's layout and the factor that turns the detected field back into the
/// convolution it encodes.
#[derive(Debug, Clone)]
pub struct Mask {
    /// Transmission in FFT order, transposed (`nx × ny`), times `−(f1/f2)/(ny·nx)`.
    transposed: Vec<C64>,
    /// `−(f2/f1)·gain·s²`: the convolution of the pixel values is
    /// `Re(ȳ · readout)`, `ȳ` the output field averaged over a camera pixel.
    readout: C64,
    /// `max|H|` of the (compensated) transfer function, divided out so that the
    /// filter is passive (`|t| ≤ 1`).
    gain: f64,
}

impl Mask {
    /// Bytes the filter holds.
    pub(crate) fn bytes(&self) -> usize {
        self.transposed.len() * std::mem::size_of::<C64>()
    }

    /// `max|H|`, the factor divided out of the kernel's transfer function so that
    /// the programmed filter is passive.
    pub fn gain(&self) -> f64 {
        self.gain
    }

    /// The factor that turns a camera-pixel average of the output field into the
    /// convolution value: `Re(ȳ · readout)`.
    pub fn readout(&self) -> C64 {
        self.readout
    }
}

/// Working memory of [`FourF::run_frame`]; after a frame it holds the output field.
#[derive(Debug, Clone)]
pub struct FrameScratch {
    a: Vec<C64>,
    input: Vec<C64>,
    fft: Fft2Scratch,
}

/// Where the filter SLM's pixels land on the Fourier grid.
#[derive(Debug, Clone)]
enum Placement {
    /// Pixel `(jy, jx)` is Fourier sample `(jy + oy, jx + ox)` (physical order).
    Direct { oy: usize, ox: usize },
    /// Area-weighted resampling (shifted, differently pitched or oversized filter).
    Resampled(Box<[AxisResampling; 2]>),
}

/// What a machine's caches hold ([`FourF::cache_counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheCounts {
    /// Programmed filters kept.
    pub filters: usize,
    /// Filters found in the cache instead of programmed.
    pub filter_hits: u64,
    /// Plans kept.
    pub plans: usize,
    /// Plans found in the cache instead of made.
    pub plan_hits: u64,
}

/// A planned 4f machine.
#[derive(Debug, Clone)]
pub struct FourF {
    config: MachineConfig,
    /// Input-SLM pixels `(ny, nx)`: the frame the planner packs.
    pixel_shape: (usize, usize),
    /// Simulation samples per pixel per axis.
    s: usize,
    /// Simulation grid `(s·ny, s·nx)`.
    shape: (usize, usize),
    pixel_pitch_m: f64,
    input_pitch_m: [f64; 2],
    fourier_pitch_m: [f64; 2],
    output_pitch_m: [f64; 2],
    fft: Fft2,
    /// Plan of the pixel-level DFT that gives a matched filter's transfer function.
    pixel_fft: Fft2,
    /// The filter SLM: `(ny, nx)` pixels and pitch `[y, x]`.
    filter_shape: (usize, usize),
    filter_pitch_m: [f64; 2],
    /// True when the filter pixels sit exactly on the pixel-level DFT frequencies.
    filter_on_dft: bool,
    placement: Placement,
    /// Per-axis factors `[y, x]` at the filter pixels' frequencies that undo the
    /// SLM and camera pixel apertures (or only their alignment).
    compensation: [Vec<C64>; 2],
    /// `simulation.filter_pixels = "apertures"`: per axis `[y, x]` and kernel-plane
    /// index, what the panel's apertures and shift multiply a tap by, and what the
    /// controller's pre-compensation divides it by.
    panel: Option<PanelTaps>,
    /// Pupil × aberrations × defocus in FFT order, transposed, times the frame
    /// scale `−(f1/f2)/(ny·nx)`.
    envelope_t: Vec<C64>,
    input_slm: Slm,
    filter_slm: Slm,
    camera: Camera,
    /// Expected photons per camera pixel from a flat full-scale field, if known.
    photons_full_scale: Option<f64>,
    /// Programmed filters kept for reuse ([`crate::cache`]).
    masks: MaskCache,
    /// Plans kept for reuse ([`crate::cache`]).
    plans: PlanCache,
}

/// Where the filter panel's pixels sit on the Fourier grid of a `shape` frame, and
/// whether the panel is the frame's own DFT grid (same pitch and shape).
fn filter_placement(
    config: &MachineConfig,
    shape: (usize, usize),
    pixel_shape: (usize, usize),
    fourier: [f64; 2],
    filter_shape: (usize, usize),
    filter_pitch_m: [f64; 2],
) -> (Placement, bool) {
    let (ny, nx) = shape;
    let m = &config.misalignment;
    let exact = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b;
    let same_pitch = exact(filter_pitch_m[0], fourier[0]) && exact(filter_pitch_m[1], fourier[1]);
    let filter_on_dft = same_pitch && filter_shape == pixel_shape;
    // Apertures: a shift is a phase ramp on the taps, not a resampling.
    let apertures = config.simulation.filter_pixels == FilterPixels::Apertures;
    let placement = if same_pitch
        && ((m.filter_shift_x_m == 0.0 && m.filter_shift_y_m == 0.0) || apertures)
        && filter_shape.0 <= ny
        && filter_shape.1 <= nx
    {
        Placement::Direct {
            oy: ny / 2 - filter_shape.0 / 2,
            ox: nx / 2 - filter_shape.1 / 2,
        }
    } else {
        Placement::Resampled(Box::new([
            AxisResampling::new(ny, fourier[0], filter_shape.0, filter_pitch_m[0], m.filter_shift_y_m),
            AxisResampling::new(nx, fourier[1], filter_shape.1, filter_pitch_m[1], m.filter_shift_x_m),
        ]))
    };
    (placement, filter_on_dft)
}

/// Per filter-panel row and column, the detection scheme's compensation of the
/// input pixels' aperture (sample pitch `dx`).
fn pixel_compensation(
    config: &MachineConfig,
    input_slm: &Slm,
    filter_shape: (usize, usize),
    filter_pitch_m: [f64; 2],
    dx: f64,
) -> [Vec<C64>; 2] {
    let s = config.simulation.oversampling;
    let (wl, f1) = (config.wavelength_m(), config.lens1.focal_length_m);
    let w = (s as f64 * input_slm.effective_fill_factor(s).sqrt()).round() as usize;
    [0, 1].map(|ax| {
        let nf = [filter_shape.0, filter_shape.1][ax];
        (0..nf)
            .map(|j| {
                let nu = (j as f64 - (nf / 2) as f64) * filter_pitch_m[ax] / (wl * f1);
                aperture_compensation(nu, dx, s, w, config.detection.pixel_compensation)
            })
            .collect()
    })
}

impl FourF {
    /// Validates `config` and plans the machine.
    pub fn new(config: MachineConfig) -> Result<Self, SimError> {
        config.validate()?;
        let s = config.simulation.oversampling;
        let pixel_shape = (
            config.input_slm.pixels_y.expect("validated"),
            config.input_slm.pixels_x.expect("validated"),
        );
        let shape = (pixel_shape.0 * s, pixel_shape.1 * s);
        let (ny, nx) = shape;
        let wl = config.wavelength_m();
        let (f1, f2) = (config.lens1.focal_length_m, config.lens2.focal_length_m);
        let pixel_pitch_m = config.input_slm.pitch_m.expect("validated");
        let dx = pixel_pitch_m / s as f64;
        let input_pitch_m = [dx, dx];
        let fourier = fourier_pitch_m(shape, input_pitch_m, wl, f1);
        let output_pitch_m = [dx * f2 / f1, dx * f2 / f1];
        let filter_shape = (
            config.filter_slm.pixels_y.unwrap_or(pixel_shape.0),
            config.filter_slm.pixels_x.unwrap_or(pixel_shape.1),
        );
        // A non-square input grid has different Fourier pitches per axis; an unset
        // filter pitch matches each.
        let filter_pitch_m = config.filter_slm.pitch_m.map_or(fourier, |p| [p, p]);
        let (placement, filter_on_dft) =
            filter_placement(&config, shape, pixel_shape, fourier, filter_shape, filter_pitch_m);
        let input_slm = Slm::new(config.input_slm.clone(), "input_slm")?;
        let filter_slm = Slm::new(config.filter_slm.clone(), "filter_slm")?;
        let photons_full_scale = config.photons_full_scale();
        let camera = Camera::new(config.camera.clone(), pixel_shape, "camera")?;
        let compensation = pixel_compensation(&config, &input_slm, filter_shape, filter_pitch_m, dx);
        let mut fourf = FourF {
            pixel_shape,
            s,
            shape,
            pixel_pitch_m,
            input_pitch_m,
            fourier_pitch_m: fourier,
            output_pitch_m,
            fft: Fft2::new(ny, nx),
            pixel_fft: Fft2::new(pixel_shape.0, pixel_shape.1),
            filter_shape,
            filter_pitch_m,
            filter_on_dft,
            placement,
            compensation,
            panel: None,
            envelope_t: Vec::new(),
            input_slm,
            filter_slm,
            camera,
            photons_full_scale,
            config,
            masks: MaskCache::default(),
            plans: PlanCache::default(),
        };
        fourf.envelope_t = fourf.build_envelope();
        if fourf.config.simulation.filter_pixels == FilterPixels::Apertures {
            fourf.panel = Some(fourf.panel_taps());
        }
        Ok(fourf)
    }

    /// The configuration this machine was planned from.
    pub fn config(&self) -> &MachineConfig {
        &self.config
    }

    /// Frame shape `(ny, nx)` in input-SLM pixels: what the planner packs.
    pub fn frame_shape(&self) -> (usize, usize) {
        self.pixel_shape
    }

    /// Simulation grid `(ny, nx)`: the frame times the oversampling.
    pub fn grid_shape(&self) -> (usize, usize) {
        self.shape
    }

    /// Simulation samples per SLM pixel along each axis.
    pub fn oversampling(&self) -> usize {
        self.s
    }

    /// Input-SLM pixel pitch, metres.
    pub fn pixel_pitch_m(&self) -> f64 {
        self.pixel_pitch_m
    }

    /// Input-plane simulation sample pitch `[y, x]`, metres.
    pub fn input_pitch_m(&self) -> [f64; 2] {
        self.input_pitch_m
    }

    /// Fourier-plane sample pitch `[y, x]`, `λf1/(NΔx)`, metres.
    pub fn fourier_pitch_m(&self) -> [f64; 2] {
        self.fourier_pitch_m
    }

    /// Output-plane simulation sample pitch `[y, x]`, `Δx·f2/f1`, metres.
    pub fn output_pitch_m(&self) -> [f64; 2] {
        self.output_pitch_m
    }

    /// Filter SLM shape `(ny, nx)` and pitch `[y, x]` in metres.
    pub fn filter_slm(&self) -> ((usize, usize), [f64; 2]) {
        (self.filter_shape, self.filter_pitch_m)
    }

    /// True when the filter SLM pixels sit exactly on Fourier samples, unshifted.
    pub fn filter_matched(&self) -> bool {
        matches!(self.placement, Placement::Direct { .. })
    }

    /// The input SLM model.
    pub fn input_slm(&self) -> &Slm {
        &self.input_slm
    }

    /// The camera model.
    pub fn camera(&self) -> &Camera {
        &self.camera
    }

    /// Expected photons per camera pixel from a flat full-scale field (the photon
    /// budget), if the machine has one.
    pub fn photons_full_scale(&self) -> Option<f64> {
        self.photons_full_scale
    }

    /// Photo-electrons per camera pixel at the brightest point of a full-scale
    /// output (with the homodyne reference added, `(1 + b)²` times the flat
    /// full-scale field) over the camera's full well; `None` without a photon
    /// budget or a full well. Above 1, full-scale outputs clip.
    pub fn saturation_ratio(&self) -> Option<f64> {
        let cam = &self.config.camera;
        let well = cam.full_well_e?;
        let electrons = self.photons_full_scale? * cam.quantum_efficiency;
        let peak = match self.config.detection.scheme {
            crate::devices::detection::Scheme::BalancedHomodyne => {
                (1.0 + self.config.detection.reference_amplitude).powi(2)
            }
            _ => 1.0,
        };
        Some(electrons * peak / well)
    }

    /// A one-line warning when [`FourF::saturation_ratio`] exceeds 1, naming the
    /// settings that fix it.
    pub fn saturation_warning(&self) -> Option<String> {
        let r = self.saturation_ratio()?;
        (r > 1.0).then(|| {
            format!(
                "machine `{}`: a full-scale output puts {:.3e} e⁻ on a camera pixel, {r:.1}× the full well of {:.3e} e⁻, \
                 so bright outputs clip; the laser power is spread over the input frame's pixels, so a smaller frame \
                 (input_slm.pixels_*) needs a lower laser.power_w or an explicit camera.full_scale_e",
                self.config.name,
                r * self.config.camera.full_well_e.unwrap_or(0.0),
                self.config.camera.full_well_e.unwrap_or(0.0),
            )
        })
    }

    fn frame_scale(&self) -> f64 {
        -(self.config.lens1.focal_length_m / self.config.lens2.focal_length_m) / (self.shape.0 * self.shape.1) as f64
    }

    /// Fourier-plane sample position `[y, x]` in metres of FFT-order index `(ky, kx)`.
    fn fourier_position_m(&self, ky: usize, kx: usize) -> (f64, f64) {
        let (ny, nx) = self.shape;
        (
            signed_index(ky, ny) * self.fourier_pitch_m[0],
            signed_index(kx, nx) * self.fourier_pitch_m[1],
        )
    }

    /// The radius the Zernike terms are normalised to: `pupil.aberration_radius_m`,
    /// else the stop's radius, else half the smaller side of the Fourier window.
    pub(crate) fn aberration_radius_m(&self) -> f64 {
        let (ny, nx) = self.shape;
        let [duy, dux] = self.fourier_pitch_m;
        let half_window = 0.5 * (ny as f64 * duy).min(nx as f64 * dux);
        let p = &self.config.pupil;
        p.aberration_radius_m.or(p.radius_m).unwrap_or(half_window)
    }

    /// `t` times what the Fourier plane does to light at `(uy, ux)` metres off
    /// axis in a cell of `cell` metres: the stop's coverage of the cell, the
    /// aberrations (normalised to `ab_radius`) and the input defocus (band-limited
    /// to `lim_in` cycles per metre), applied in that order.
    pub(crate) fn pupil_transmission(
        &self,
        mut t: C64,
        (uy, ux): (f64, f64),
        cell: [f64; 2],
        ab_radius: f64,
        lim_in: [f64; 2],
    ) -> C64 {
        let c = &self.config;
        let (wl, f1) = (c.wavelength_m(), c.lens1.focal_length_m);
        if let Some(r) = c.pupil.radius_m {
            t *= circle_coverage(uy, ux, cell[0], cell[1], r);
        }
        let zern = c.pupil.zernike_waves;
        if !zern.is_zero() {
            let w = zern.wavefront_waves(ux / ab_radius, uy / ab_radius);
            t *= C64::from_polar(1.0, 2.0 * std::f64::consts::PI * w);
        }
        let z_in = c.misalignment.input_defocus_m;
        if z_in != 0.0 {
            t *= transfer(uy / (wl * f1), ux / (wl * f1), wl, z_in, lim_in);
        }
        t
    }

    /// Pupil, aberrations and defocus, in the executor's layout.
    fn build_envelope(&self) -> Vec<C64> {
        let (ny, nx) = self.shape;
        let c = &self.config;
        let wl = c.wavelength_m();
        let f2 = c.lens2.focal_length_m;
        let ab_radius = self.aberration_radius_m();
        let z_in = c.misalignment.input_defocus_m;
        let z_out = c.misalignment.output_defocus_m;
        let ext_in = [ny as f64 * self.input_pitch_m[0], nx as f64 * self.input_pitch_m[1]];
        let ext_out = [ny as f64 * self.output_pitch_m[0], nx as f64 * self.output_pitch_m[1]];
        let lim_in = band_limit(ext_in, wl, z_in);
        let lim_out = band_limit(ext_out, wl, z_out);
        let scale = self.frame_scale();
        let mut out = vec![C64::new(0.0, 0.0); ny * nx];
        for kx in 0..nx {
            for ky in 0..ny {
                let (uy, ux) = self.fourier_position_m(ky, kx);
                let mut t =
                    self.pupil_transmission(C64::new(scale, 0.0), (uy, ux), self.fourier_pitch_m, ab_radius, lim_in);
                if z_out != 0.0 {
                    t *= transfer(uy / (wl * f2), ux / (wl * f2), wl, z_out, lim_out);
                }
                out[kx * ny + ky] = t;
            }
        }
        out
    }

    /// Programs the filter for the kernel plane `kernel` (frame-sized in input-SLM
    /// pixels, FFT order: a kernel placed at index `(0, 0)` convolves without
    /// shifting).
    ///
    /// The controller computes the kernel's transfer function at the centre of every
    /// filter pixel (divided by the pixel-aperture transfer functions, see
    /// [`DetectionConfig::pixel_compensation`]), scales it to be passive, and the
    /// filter SLM shows the nearest levels it can; its pixels are then resampled
    /// onto the Fourier grid (exact when matched; an area-weighted overlap of
    /// shifted or differently pitched pixels otherwise).
    ///
    /// # Panics
    /// If `kernel` is not frame-sized.
    pub fn program(&self, kernel: ArrayView2<f64>) -> Mask {
        self.program_in(kernel, &mut self.make_scratch(true))
    }

    /// [`FourF::program`], through the machine's filter cache: a kernel plane seen
    /// before is programmed once and its filter reused (see [`crate::cache`]; the
    /// filter is the same either way). `scratch`: working memory, if the caller has
    /// some.
    pub fn program_cached(&self, kernel: ArrayView2<f64>, scratch: Option<&mut FrameScratch>) -> Arc<Mask> {
        self.masks.get_or_program(kernel, || match scratch {
            Some(s) => self.program_in(kernel, s),
            None => self.program(kernel),
        })
    }

    /// What the machine's caches hold: filters and plans kept, and how often each
    /// was reused.
    pub fn cache_counts(&self) -> CacheCounts {
        let (filters, filter_hits) = self.masks.counts();
        let (plans, plan_hits) = self.plans.counts();
        CacheCounts {
            filters,
            filter_hits,
            plans,
            plan_hits,
        }
    }

    pub(crate) fn plan_cache(&self) -> &PlanCache {
        &self.plans
    }

    /// [`FourF::program`] with caller-owned working memory.
    ///
    /// # Panics
    /// If `kernel` is not frame-sized.
    pub fn program_in(&self, kernel: ArrayView2<f64>, scratch: &mut FrameScratch) -> Mask {
        assert_eq!(
            kernel.dim(),
            self.pixel_shape,
            "FourF::program: kernel plane must be frame-sized"
        );
        match self.program_on_fourier_grid(kernel, scratch) {
            Some(mask) => mask,
            None => self.program_general(kernel, scratch),
        }
    }

    /// [`FourF::program_in`] for every machine, in physical order.
    fn program_general(&self, kernel: ArrayView2<f64>, scratch: &mut FrameScratch) -> Mask {
        let (ny, nx) = self.shape;
        // 1. The desired transfer function on the filter pixels (physical order);
        // with envelope pre-compensation, of the kernel divided by the envelope.
        let compensated = self.panel.as_ref().filter(|p| p.compensate).map(|p| {
            let [cy, cx] = &p.envelope;
            Array2::from_shape_fn(kernel.dim(), |(y, x)| kernel[[y, x]] / (cy[y] * cx[x]))
        });
        let kernel = compensated.as_ref().map_or(kernel, |k| k.view());
        let mut h = if self.filter_on_dft {
            self.pixel_dft(kernel, scratch)
        } else {
            self.filter_transfer(kernel)
        };
        let [cy, cx] = &self.compensation;
        for (mut row, &c) in h.rows_mut().into_iter().zip(cy) {
            row.iter_mut().zip(cx).for_each(|(v, &d)| *v *= c * d);
        }
        // 2. Passive, as the filter SLM shows it.
        let gain = passive_gain(h.as_slice().expect("standard layout"));
        h.mapv_inplace(|v| v / gain);
        let zero_order = self.config.filter_slm.fill_factor;
        let shown = if self.filter_slm.is_transparent() {
            // |h| ≤ 1 after the passive gain: an exact panel shows h as it is.
            h
        } else {
            self.filter_slm.render(h.view(), 1).mapv(|v| v * zero_order)
        };
        // 2b. The panel's pixel apertures and shift act on the kernel plane.
        let shown = match &self.panel {
            Some(p) => self.through_apertures(shown, p),
            None => shown,
        };
        // 3. Onto the Fourier grid, in the executor's layout.
        let mut t = vec![C64::new(0.0, 0.0); ny * nx];
        let (hy, hx) = (ny / 2, nx / 2);
        match &self.placement {
            Placement::Direct { oy, ox } => {
                // FFT-order index of physical Fourier sample k is (k + n/2) % n.
                let kxs: Vec<usize> = (0..shown.ncols()).map(|jx| (jx + ox + hx) % nx).collect();
                for (jy, row) in shown.rows().into_iter().enumerate() {
                    let ky = (jy + oy + hy) % ny;
                    for (v, &kx) in row.iter().zip(&kxs) {
                        t[kx * ny + ky] = *v;
                    }
                }
            }
            Placement::Resampled(r) => {
                let [ry, rx] = r.as_ref();
                for ky in 0..ny {
                    let wy = &ry.weights[(ky + hy) % ny];
                    for kx in 0..nx {
                        let wx = &rx.weights[(kx + hx) % nx];
                        let mut acc = C64::new(0.0, 0.0);
                        for &(jy, a) in wy {
                            for &(jx, b) in wx {
                                acc += shown[[jy, jx]] * (a * b);
                            }
                        }
                        t[kx * ny + ky] = acc;
                    }
                }
            }
        }
        self.finish_mask(t, gain)
    }

    /// The envelope and the read-out scale on a filter in the executor's layout.
    fn finish_mask(&self, mut t: Vec<C64>, gain: f64) -> Mask {
        t.iter_mut().zip(&self.envelope_t).for_each(|(v, e)| *v *= e);
        let (f1, f2) = (self.config.lens1.focal_length_m, self.config.lens2.focal_length_m);
        let s2 = (self.s * self.s) as f64;
        Mask {
            transposed: t,
            readout: C64::new(-(f2 / f1) * gain * s2, 0.0),
            gain,
        }
    }

    /// [`FourF::program_in`] where the filter panel is the frame's own DFT grid
    /// pixel for sample (one sample per pixel, no offset, no aperture model) and
    /// the panel shows each pixel on its own (no crosstalk): every step after the
    /// DFT is per pixel, so it runs in the executor's layout (FFT order,
    /// transposed), skipping the transposes and shifts to physical order and back.
    /// The same operations on the same values as the general path, so the same
    /// filter to the bit. `None` where the general path is needed.
    fn program_on_fourier_grid(&self, kernel: ArrayView2<f64>, scratch: &mut FrameScratch) -> Option<Mask> {
        // (A transparent panel has no crosstalk either.)
        if !(self.filter_on_dft
            && self.pixel_shape == self.shape
            && matches!(self.placement, Placement::Direct { oy: 0, ox: 0 })
            && self.panel.is_none()
            && self.config.filter_slm.crosstalk_px == 0.0)
        {
            return None;
        }
        let (ny, nx) = self.shape;
        let (hy, hx) = (ny / 2, nx / 2);
        // t[kx·ny + ky] is FFT-order sample (ky, kx), i.e. physical pixel
        // ((ky + ny/2) % ny, (kx + nx/2) % nx).
        let mut t = self.pixel_dft_transposed(kernel, scratch);
        let [cy, cx] = &self.compensation;
        let cy: Vec<C64> = (0..ny).map(|ky| cy[(ky + hy) % ny]).collect();
        for (kx, col) in t.chunks_exact_mut(ny).enumerate() {
            let d = cx[(kx + hx) % nx];
            col.iter_mut().zip(&cy).for_each(|(v, &c)| *v *= c * d);
        }
        let gain = passive_gain(&t);
        t.iter_mut().for_each(|v| *v /= gain);
        if !self.filter_slm.is_transparent() {
            let zero_order = self.config.filter_slm.fill_factor;
            let h = ArrayView2::from_shape((nx, ny), &t).expect("frame-sized");
            let mut shown = Array2::<C64>::zeros((nx, ny));
            self.filter_slm.render_into(h, 1, shown.view_mut());
            t.iter_mut().zip(shown.iter()).for_each(|(v, &r)| *v = r * zero_order);
        }
        Some(self.finish_mask(t, gain))
    }

    /// Per axis, the envelope and shift ramp of the filter panel's apertures over
    /// kernel-plane indices (see [`FilterPixels::Apertures`]).
    fn panel_taps(&self) -> PanelTaps {
        let c = &self.config;
        let wl_f = c.wavelength_m() * c.lens1.focal_length_m;
        let fill = c.filter_slm.fill_factor.sqrt();
        let shifts = [c.misalignment.filter_shift_y_m, c.misalignment.filter_shift_x_m];
        let n = [self.pixel_shape.0, self.pixel_shape.1];
        let envelope = [0, 1].map(|ax| {
            (0..n[ax])
                .map(|m| sinc(fill * self.filter_pitch_m[ax] * signed_index(m, n[ax]) * self.pixel_pitch_m / wl_f))
                .collect::<Vec<f64>>()
        });
        let ramp = [0, 1].map(|ax| {
            (0..n[ax])
                .map(|m| {
                    let x = signed_index(m, n[ax]) * self.pixel_pitch_m;
                    C64::from_polar(1.0, 2.0 * std::f64::consts::PI * shifts[ax] * x / wl_f)
                })
                .collect::<Vec<C64>>()
        });
        PanelTaps {
            envelope,
            ramp,
            compensate: c.detection.filter_envelope_compensation,
        }
    }

    /// The filter `shown` (physical order, on the input's DFT grid) as the light
    /// sees it through the panel's apertures: back to the kernel plane, each tap
    /// times the envelope and the shift's phase, and forward again.
    fn through_apertures(&self, shown: Array2<C64>, p: &PanelTaps) -> Array2<C64> {
        let (py, px) = self.pixel_shape;
        let (hy, hx) = (py / 2, px / 2);
        // Physical index j holds DFT index (j + n/2) % n (see `pixel_dft`).
        let mut k = vec![C64::new(0.0, 0.0); py * px];
        for ((j, i), &v) in shown.indexed_iter() {
            k[((j + hy) % py) * px + (i + hx) % px] = v;
        }
        let mut scratch = self.pixel_fft.make_scratch(py * px >= 1 << 16);
        self.pixel_fft.inverse(&mut k, &mut scratch);
        let norm = 1.0 / (py * px) as f64;
        let [ey, ex] = &p.envelope;
        let [ry, rx] = &p.ramp;
        for (y, row) in k.chunks_exact_mut(px).enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                *v *= ry[y] * rx[x] * (ey[y] * ex[x] * norm);
            }
        }
        self.pixel_fft.forward(&mut k, &mut scratch);
        Array2::from_shape_fn((py, px), |(j, i)| k[((j + hy) % py) * px + (i + hx) % px])
    }

    /// DFT of the pixel-level kernel plane, in physical (centred) order.
    fn pixel_dft(&self, kernel: ArrayView2<f64>, scratch: &mut FrameScratch) -> Array2<C64> {
        let (py, px) = self.pixel_shape;
        let n = py * px;
        let mut t = self.pixel_dft_transposed(kernel, scratch);
        let h = &mut scratch.a[..n];
        transpose(&t, h, px, py, scratch.fft.chunks() > 1);
        shift_half(h, &mut t, py, px);
        Array2::from_shape_vec(self.pixel_shape, t).expect("frame-sized")
    }

    /// The DFT of the kernel plane in FFT order, transposed: element `kx·py + ky` is
    /// frequency `(ky, kx)`.
    fn pixel_dft_transposed(&self, kernel: ArrayView2<f64>, scratch: &mut FrameScratch) -> Vec<C64> {
        let (py, px) = self.pixel_shape;
        let n = py * px;
        let mut t = vec![C64::new(0.0, 0.0); n];
        let h = &mut scratch.a[..n];
        h.iter_mut()
            .zip(kernel.iter())
            .for_each(|(d, &v)| *d = C64::new(v, 0.0));
        let mut fs = self.pixel_fft.make_scratch(scratch.fft.chunks() > 1);
        // Kernels are small: only the rows they occupy need a row FFT.
        let row = self.pixel_fft.plan_1d(true, FftDirection::Forward);
        self.pixel_fft.row_pass_with(h, true, &mut fs, |r, v, s| {
            if kernel.row(r).iter().any(|&k| k != 0.0) {
                row.process_with_scratch(v, s);
            }
        });
        let parallel = fs.chunks() > 1;
        transpose(h, &mut t, py, px, parallel);
        self.pixel_fft
            .row_pass(&mut t, false, FftDirection::Forward, &mut fs, |_, _| {}, |_, _| {});
        t
    }

    /// The kernel's transfer function at the filter pixel centres (physical order),
    /// `H(ν) = Σ κ[m] exp(−i2π ν·x_m)` with `ν = (j − nf/2)·pf/(λf1)` and `x_m` the
    /// pixel positions, evaluated separably over the rows and columns the kernel
    /// occupies.
    fn filter_transfer(&self, kernel: ArrayView2<f64>) -> Array2<C64> {
        let (ny, nx) = self.pixel_shape;
        let (fy, fx) = self.filter_shape;
        let wl_f = self.config.wavelength_m() * self.config.lens1.focal_length_m;
        let [pfy, pfx] = self.filter_pitch_m;
        let rows: Vec<usize> = (0..ny).filter(|&r| kernel.row(r).iter().any(|&v| v != 0.0)).collect();
        let cols: Vec<usize> = (0..nx)
            .filter(|&c| kernel.column(c).iter().any(|&v| v != 0.0))
            .collect();
        let two_pi = 2.0 * std::f64::consts::PI;
        // Step 1: along x, for every occupied row: T[r][jx].
        let nu_x: Vec<f64> = (0..fx).map(|j| (j as f64 - (fx / 2) as f64) * pfx / wl_f).collect();
        let nu_y: Vec<f64> = (0..fy).map(|j| (j as f64 - (fy / 2) as f64) * pfy / wl_f).collect();
        let d = self.pixel_pitch_m;
        let t: Vec<Vec<C64>> = rows
            .iter()
            .map(|&r| {
                nu_x.iter()
                    .map(|&nu| {
                        cols.iter()
                            .map(|&c| kernel[[r, c]] * C64::from_polar(1.0, -two_pi * nu * signed_index(c, nx) * d))
                            .sum()
                    })
                    .collect()
            })
            .collect();
        Array2::from_shape_fn((fy, fx), |(jy, jx)| {
            rows.iter()
                .zip(&t)
                .map(|(&r, tr)| tr[jx] * C64::from_polar(1.0, -two_pi * nu_y[jy] * signed_index(r, ny) * d))
                .sum()
        })
    }

    /// Scratch for [`FourF::run_frame`]; `parallel` spreads each frame over rayon
    /// (for large frames), otherwise a frame runs on the calling thread (for callers
    /// that run many small frames in parallel).
    pub fn make_scratch(&self, parallel: bool) -> FrameScratch {
        FrameScratch {
            a: vec![C64::new(0.0, 0.0); self.shape.0 * self.shape.1],
            input: vec![C64::new(0.0, 0.0); self.shape.0 * self.shape.1],
            fft: self.fft.make_scratch(parallel),
        }
    }

    /// Executes one frame: `input` is the input-plane field (physical order, frame
    /// sized, row-major), `mask` the programmed filter. The output field stays in
    /// `scratch`; read it with [`FrameScratch::conv_value`] or
    /// [`FourF::output_field`].
    ///
    /// # Panics
    /// If `input` is not frame-sized.
    pub fn run_frame(&self, input: &[C64], mask: &Mask, scratch: &mut FrameScratch) {
        let (ny, nx) = self.shape;
        assert_eq!(input.len(), ny * nx, "FourF::run_frame: input must be {ny}×{nx}");
        self.execute(input, mask, &mut scratch.a, &mut scratch.fft, None);
    }

    /// [`FourF::run_frame`] on the input plane written into
    /// [`FrameScratch::input_mut`].
    pub fn run_loaded(&self, mask: &Mask, scratch: &mut FrameScratch) {
        self.run_loaded_rows(mask, scratch, None);
    }

    /// [`FourF::run_loaded`], computing only the output grid rows marked in `rows`
    /// (all when `None`): the others hold intermediate values, so only a read-out
    /// confined to the marked rows may follow.
    pub(crate) fn run_loaded_rows(&self, mask: &Mask, scratch: &mut FrameScratch, rows: Option<&[bool]>) {
        let FrameScratch { a, input, fft } = scratch;
        self.execute(input, mask, a, fft, rows);
    }

    /// The output grid rows a read-out of `read` needs (`None`: all of them).
    pub(crate) fn rows_read(&self, read: Option<&ReadRegion>) -> Option<Vec<bool>> {
        let read = read?;
        let (gy, _) = self.shape;
        let s = self.s;
        let mut rows = vec![false; gy];
        for ny in 0..self.pixel_shape.0 {
            if !read.row(ny).is_empty() {
                for jy in 0..s {
                    rows[reflected(s * ny + jy, gy)] = true;
                }
            }
        }
        Some(rows)
    }

    fn execute(&self, input: &[C64], mask: &Mask, a: &mut [C64], fft: &mut Fft2Scratch, rows: Option<&[bool]>) {
        let (ny, nx) = self.shape;
        let (hy, hx) = (ny / 2, nx / 2);
        let fwd = FftDirection::Forward;
        // Lens 1, row pass: load each row already shifted into FFT order.
        self.fft.row_pass(
            a,
            true,
            fwd,
            fft,
            |r, row| {
                let src = &input[((r + hy) % ny) * nx..][..nx];
                row[..nx - hx].copy_from_slice(&src[hx..]);
                row[nx - hx..].copy_from_slice(&src[..hx]);
            },
            |_, _| {},
        );
        let mut b = std::mem::take(&mut fft.transposed);
        let parallel = fft.chunks() > 1;
        transpose(a, &mut b, ny, nx, parallel);
        // Lens 1 column pass, the Fourier-plane mask, lens 2 column pass.
        let col = self.fft.plan_1d(false, fwd);
        self.fft.row_pass_with(&mut b, false, fft, |c, row, s| {
            col.process_with_scratch(row, s);
            row.iter_mut()
                .zip(&mask.transposed[c * ny..(c + 1) * ny])
                .for_each(|(v, m)| *v *= m);
            col.process_with_scratch(row, s);
        });
        transpose(&b, a, nx, ny, parallel);
        fft.transposed = b;
        // Lens 2 row pass, on the rows that are read; the output stays in FFT order.
        let row = self.fft.plan_1d(true, fwd);
        self.fft.row_pass_with(a, true, fft, |r, v, s| {
            if rows.is_none_or(|rows| rows[r]) {
                row.process_with_scratch(v, s);
            }
        });
    }

    /// The output field of the last frame run in `scratch`, in physical order with
    /// the output pitch (point-reflected, as the optics leave it).
    pub fn output_field(&self, scratch: &FrameScratch) -> Field {
        let (ny, nx) = self.shape;
        let (hy, hx) = (ny / 2, nx / 2);
        let data = Array2::from_shape_fn(self.shape, |(m, n)| scratch.a[((m + hy) % ny) * nx + (n + hx) % nx]);
        Field::new(data, self.output_pitch_m, self.config.wavelength_m())
    }

    /// The physical Fourier-plane transmission of `mask` (centred, as the light
    /// sees it: programmed filter × pupil × aberrations × defocus).
    pub fn transmission(&self, mask: &Mask) -> Array2<C64> {
        let (ny, nx) = self.shape;
        let (hy, hx) = (ny / 2, nx / 2);
        let s = self.frame_scale();
        Array2::from_shape_fn(self.shape, |(m, n)| {
            mask.transposed[((n + hx) % nx) * ny + (m + hy) % ny] / s
        })
    }

    /// The planes of one frame by the plain physical path (lens transform, mask,
    /// lens transform): `[input, Fourier plane before the mask, after the mask,
    /// output]`. Slower than [`FourF::run_frame`]; used for pictures and as its
    /// independent check.
    pub fn trace_planes(&self, input: &Field, mask: &Mask) -> [Field; 4] {
        let mut scratch = self.fft.make_scratch(true);
        let (f1, f2) = (self.config.lens1.focal_length_m, self.config.lens2.focal_length_m);
        let before = lens_transform(input, f1, &self.fft, &mut scratch);
        let mut after = before.clone();
        after.data *= &self.transmission(mask);
        let mut output = lens_transform(&after, f2, &self.fft, &mut scratch);
        // The Fourier pitch is λf1/(NΔx); after lens 2 it is λf2/(N·λf1/(NΔx)) = Δx·f2/f1.
        output.pitch_m = self.output_pitch_m;
        [input.clone(), before, after, output]
    }
}

impl FrameScratch {
    /// The input-plane buffer (physical order, row-major, frame-sized) read by
    /// [`FourF::run_loaded`].
    pub fn input_mut(&mut self) -> &mut [C64] {
        &mut self.input
    }

    /// The convolution value at index `(n_y, n_x)` of the simulation grid (the
    /// sum over the input plane of `input[p]·kernel[n − p]`, circular over the
    /// frame), read from the point-reflected output and scaled back by the mask's
    /// gain: `Re(E_out[−n] · readout)`. Exact for the ideal machine (one sample per
    /// pixel); with oversampling average over the pixel's samples
    /// ([`FourF::detect_frame`] does).
    #[inline]
    pub fn conv_value(&self, machine: &FourF, mask: &Mask, n_y: usize, n_x: usize) -> f64 {
        (self.field_at_conv_index(machine, n_y, n_x) * mask.readout).re
    }

    /// The output field sample that holds convolution index `(n_y, n_x)` of the
    /// simulation grid (the point reflection `n ↦ −n` about the axis).
    #[inline]
    pub fn field_at_conv_index(&self, machine: &FourF, n_y: usize, n_x: usize) -> C64 {
        let (ny, nx) = machine.shape;
        self.a[reflected(n_y % ny, ny) * nx + reflected(n_x % nx, nx)]
    }

    /// The output samples of convolution row `n_y < ny` (row `(ny/2 − n_y) mod ny`
    /// of the grid); sample `n_x < nx` of that convolution row is element
    /// [`reflected(n_x, nx)`](reflected) of it. What
    /// [`FrameScratch::field_at_conv_index`] reads, for indices already in range.
    #[inline]
    pub(crate) fn conv_row(&self, machine: &FourF, n_y: usize) -> &[C64] {
        let (ny, nx) = machine.shape;
        &self.a[reflected(n_y, ny) * nx..][..nx]
    }
}

/// `(len/2 − n) mod len` for `n < len`: where the point reflection puts index `n`
/// of a grid axis of `len` samples (one compare, no division).
#[inline]
pub(crate) fn reflected(n: usize, len: usize) -> usize {
    let i = len / 2 + len - n;
    if i >= len {
        i - len
    } else {
        i
    }
}

/// Cameras matched to the image of an SLM pixel of `pixel_m` need `f2 = f1·p/pixel`.
fn cam_focal(camera_pitch_m: f64, pixel_m: f64, f1: f64) -> f64 {
    f1 * camera_pitch_m / pixel_m
}

/// The factor that undoes, at spatial frequency `nu`, the transfer function of
/// the input-SLM pixel aperture (`w` of the `s` samples of a pixel transmit,
/// centred) times the camera pixel's average over the `s` samples of a pixel
/// image; `full = false` undoes only their linear phase (the alignment) and the
/// DC level. Along one axis, `dx` the simulation sample pitch.
fn aperture_compensation(nu: f64, dx: f64, s: usize, w: usize, full: bool) -> C64 {
    let o = (s - w) / 2;
    let arg = |k: f64| C64::from_polar(1.0, -2.0 * std::f64::consts::PI * nu * k * dx);
    let b_in: C64 = (o..o + w).map(|i| arg(i as f64)).sum();
    let b_cam: C64 = (0..s).map(|j| arg(-(j as f64))).sum::<C64>() / s as f64;
    let b = b_in * b_cam;
    if full {
        1.0 / b
    } else {
        b.conj() / (b.norm() * w as f64)
    }
}

/// `max|H|`, or 1 for an all-zero transfer function.
fn passive_gain(h: &[C64]) -> f64 {
    // max |h|² then one square root (`norm` is a `hypot` call per sample).
    let g = h.iter().map(|v| v.norm_sqr()).fold(0.0, f64::max).sqrt();
    if g > 0.0 {
        g
    } else {
        1.0
    }
}

#[cfg(test)]
mod panel_tests {
    use super::*;

    /// The impulse response the light convolves with for `kernel` on `m`: the
    /// inverse DFT of the programmed transmission (s = 1), up to a common factor.
    fn response(m: &FourF, kernel: &Array2<f64>) -> Array2<C64> {
        let mask = m.program(kernel.view());
        let (ny, nx) = m.shape;
        let mut t = vec![C64::new(0.0, 0.0); ny * nx];
        for kx in 0..nx {
            for ky in 0..ny {
                t[ky * nx + kx] = mask.transposed[kx * ny + ky];
            }
        }
        let fft = Fft2::new(ny, nx);
        fft.inverse(&mut t, &mut fft.make_scratch(false));
        Array2::from_shape_vec((ny, nx), t).unwrap().mapv(|v| v * mask.readout)
    }

    fn machine(n: usize, fill: f64, pixels: FilterPixels, shift_px: [f64; 2], compensate: bool) -> FourF {
        let mut c = MachineConfig::ideal(n);
        c.filter_slm.fill_factor = fill;
        c.simulation.filter_pixels = pixels;
        c.detection.filter_envelope_compensation = compensate;
        let p = FourF::new(c.clone()).unwrap().filter_pitch_m;
        c.misalignment.filter_shift_y_m = shift_px[0] * p[0];
        c.misalignment.filter_shift_x_m = shift_px[1] * p[1];
        FourF::new(c).unwrap()
    }

    /// The independent model: the panel sampled `q` times finer than its pixels,
    /// each pixel `j` a box of width `√F` pixels (in units of the DFT pitch) at
    /// `u_j + δ`, its value the DFT of a single unit tap at `m0`; the response at
    /// `m0` by numerical integration over every fine sample (1-D), relative to an
    /// unshifted 100 %-fill panel's.
    fn fine_panel(n: usize, m0: f64, fill: f64, shift: f64, q: usize) -> C64 {
        let w = fill.sqrt();
        let mut acc = C64::new(0.0, 0.0);
        for j in 0..n {
            let uj = (j as f64 - (n / 2) as f64) / n as f64;
            let h = C64::from_polar(1.0, -2.0 * std::f64::consts::PI * uj * m0);
            for t in 0..q {
                // Midpoints of q sub-cells across the transmitting width.
                let u = uj + shift / n as f64 + (t as f64 + 0.5 - q as f64 / 2.0) * w / (q as f64 * n as f64);
                acc += h * C64::from_polar(1.0, 2.0 * std::f64::consts::PI * u * m0) * (w / q as f64);
            }
        }
        acc / (n as f64 * w) // the zero-order (fill) efficiency is modelled apart
    }

    /// A tap far from the kernel-plane origin keeps the panel's aperture envelope
    /// and turns by the shift's phase, as the finer-sampled panel gives (≤ 1e-3),
    /// relative to the same machine with sample-like pixels; pre-compensation
    /// brings it back to 1 (times the phase).
    #[test]
    fn apertures_match_a_panel_sampled_finer_than_its_pixels() {
        let n = 64;
        for (fill, shift) in [
            (1.0, [0.0, 0.0]),
            (0.81, [0.0, 0.0]),
            (1.0, [0.5, 0.25]),
            (0.64, [0.3, -0.5]),
        ] {
            let samples = machine(n, fill, FilterPixels::Samples, [0.0, 0.0], false);
            let apert = machine(n, fill, FilterPixels::Apertures, shift, false);
            let comp = machine(n, fill, FilterPixels::Apertures, shift, true);
            for (my, mx) in [(0usize, 0usize), (5, 16), (16, 16), (31, 3), (60, 40)] {
                let mut k = Array2::zeros((n, n));
                k[[my, mx]] = 1.0;
                let (a, s0, c) = (response(&apert, &k), response(&samples, &k), response(&comp, &k));
                let ratio = a[[my, mx]] / s0[[my, mx]];
                let (sy, sx) = (signed_index(my, n), signed_index(mx, n));
                let want = fine_panel(n, sy, fill, shift[0], 256) * fine_panel(n, sx, fill, shift[1], 256);
                assert!(
                    (ratio - want).norm() < 1e-3,
                    "fill {fill} shift {shift:?} tap ({my}, {mx}): {ratio} vs {want}"
                );
                // Only the phase of the shift is left with pre-compensation.
                let cr = c[[my, mx]] / s0[[my, mx]];
                assert!((cr.norm() - 1.0).abs() < 1e-9, "compensated {cr}");
                // Every other tap of the response stays zero.
                let leak = a
                    .indexed_iter()
                    .filter(|(i, _)| *i != (my, mx))
                    .fold(0.0f64, |m, (_, v)| m.max(v.norm()));
                assert!(leak < 1e-12, "leak {leak}");
            }
        }
        // The number: a 100 %-fill panel keeps sinc²(1/4) = 0.81 of the
        // intensity a quarter frame out; the sample model keeps all of it.
        let m = machine(512, 1.0, FilterPixels::Apertures, [0.0, 0.0], false);
        let s = machine(512, 1.0, FilterPixels::Samples, [0.0, 0.0], false);
        let mut k = Array2::zeros((512, 512));
        k[[0, 128]] = 1.0;
        let r = (response(&m, &k)[[0, 128]] / response(&s, &k)[[0, 128]]).norm_sqr();
        assert!((r - 0.8106).abs() < 1e-4, "{r}");
    }

    /// At a whole-pixel shift the apertures' phase ramp and the sample model's
    /// resampling agree (both shift the pattern by one pixel), which pins the
    /// ramp's sign; at half a pixel the resampling loses a far tap's magnitude
    /// (cos(π·200/512)² = 11 % of the intensity, the number) while the
    /// apertures keep it.
    #[test]
    fn shifts_turn_phases_and_agree_with_resampling_at_whole_pixels() {
        let n = 512;
        let mut k = Array2::zeros((n, n));
        k[[0, 200]] = 1.0;
        let ref0 = response(&machine(n, 1.0, FilterPixels::Samples, [0.0, 0.0], false), &k)[[0, 200]];
        let samples =
            |sh: f64| response(&machine(n, 1.0, FilterPixels::Samples, [0.0, sh], false), &k)[[0, 200]] / ref0;
        let apert = |sh: f64| {
            let a = response(&machine(n, 1.0, FilterPixels::Apertures, [0.0, sh], false), &k)[[0, 200]];
            let a0 = response(&machine(n, 1.0, FilterPixels::Apertures, [0.0, 0.0], false), &k)[[0, 200]];
            a / a0
        };
        // The same phase; magnitudes within the one column of the band that the
        // resampled panel leaves uncovered at its edge (1/512).
        let (s1, a1) = (samples(1.0), apert(1.0));
        assert!((s1.arg() - a1.arg()).abs() < 1e-9, "{s1} vs {a1}");
        assert!((s1.norm() - a1.norm()).abs() < 2.0 / 512.0, "{s1} vs {a1}");
        let (sh, ah) = (samples(0.5), apert(0.5));
        assert!(
            (sh.norm_sqr() - (std::f64::consts::PI * 200.0 / 512.0).cos().powi(2)).abs() < 1e-3,
            "{sh}"
        );
        assert!((ah.norm() - 1.0).abs() < 1e-9, "{ah}");
    }

    #[test]
    fn apertures_need_a_panel_on_the_dft_grid() {
        let mut c = MachineConfig::ideal(32);
        c.simulation.filter_pixels = FilterPixels::Apertures;
        c.filter_slm.pixels_x = Some(16);
        let e = FourF::new(c).unwrap_err().to_string();
        assert!(e.contains("simulation.filter_pixels") && e.contains("DFT grid"), "{e}");
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::devices::slm::Modulation;

    fn kernel(n: usize) -> Array2<f64> {
        Array2::from_shape_fn((n, n), |(y, x)| {
            if y < 5 && x < 4 {
                ((y * 4 + x) as f64 * 0.7).sin()
            } else if y == n - 1 && x == n / 2 {
                0.25
            } else {
                0.0
            }
        })
    }

    fn same(a: &Mask, b: &Mask) -> bool {
        let bits = |v: &C64| (v.re.to_bits(), v.im.to_bits());
        a.gain.to_bits() == b.gain.to_bits()
            && bits(&a.readout) == bits(&b.readout)
            && a.transposed.iter().map(bits).eq(b.transposed.iter().map(bits))
    }

    /// Programming in the executor's layout gives the general path's filter to the
    /// bit wherever it runs (exact, quantised and phase-only panels, compensation of
    /// the input and camera pixels, an odd-looking kernel with a tap at the far
    /// edge), and it stands aside where a step is not per pixel.
    #[test]
    fn programming_on_the_fourier_grid_equals_the_general_path() {
        let mut runs = Vec::new();
        runs.push(MachineConfig::ideal(32));
        for m in [Modulation::TwoSlm, Modulation::Phase, Modulation::Amplitude] {
            let mut c = MachineConfig::ideal(32);
            c.filter_slm.modulation = m;
            c.filter_slm.bits = Some(6);
            c.filter_slm.fill_factor = 0.9;
            runs.push(c);
        }
        let mut pluto = crate::presets::machine("lcos-pluto2").unwrap();
        pluto.input_slm.pixels_x = Some(64);
        pluto.input_slm.pixels_y = Some(64);
        runs.push(pluto);
        for c in runs {
            let mut m = FourF::new(c.clone()).unwrap();
            // At one sample per pixel the factors are 1; distinct ones per pixel
            // show any slip in the mapping between the two layouts.
            for (ax, f) in m.compensation.iter_mut().enumerate() {
                for (j, v) in f.iter_mut().enumerate() {
                    *v = C64::from_polar(1.0 + 0.01 * j as f64, 0.1 * (j + 7 * ax) as f64);
                }
            }
            let k = kernel(m.pixel_shape.0);
            let mut scratch = m.make_scratch(false);
            let fast = m
                .program_on_fourier_grid(k.view(), &mut scratch)
                .expect("per-pixel machine");
            let general = m.program_general(k.view(), &mut scratch);
            assert!(same(&fast, &general), "{:?} filter", c.filter_slm.modulation);
            assert!(same(&m.program_in(k.view(), &mut scratch), &general));
        }
        let mut blurred = MachineConfig::ideal(32);
        blurred.filter_slm.modulation = Modulation::Phase;
        blurred.filter_slm.bits = Some(6);
        blurred.filter_slm.crosstalk_px = 0.3;
        let mut oversampled = MachineConfig::ideal(32);
        oversampled.simulation.oversampling = 2;
        for c in [blurred, oversampled] {
            let m = FourF::new(c).unwrap();
            let k = kernel(m.pixel_shape.0);
            let mut scratch = m.make_scratch(false);
            assert!(m.program_on_fourier_grid(k.view(), &mut scratch).is_none());
        }
    }
}

#[cfg(test)]
mod reflection_tests {
    use super::*;

    /// The division-free reflection reads the sample `field_at_conv_index` reads.
    #[test]
    fn conv_rows_read_what_field_at_conv_index_reads() {
        for len in [1usize, 2, 7, 8, 33, 128] {
            for n in 0..len {
                assert_eq!(
                    reflected(n, len),
                    (len / 2 + len - n % len) % len,
                    "n = {n}, len = {len}"
                );
            }
        }
        let m = FourF::new(MachineConfig::ideal(8)).unwrap();
        let mut scratch = m.make_scratch(false);
        for (i, v) in scratch.a.iter_mut().enumerate() {
            *v = C64::new(i as f64, -(i as f64));
        }
        let (ny, nx) = m.grid_shape();
        for n_y in 0..ny {
            let row = scratch.conv_row(&m, n_y);
            for n_x in 0..nx {
                assert_eq!(row[reflected(n_x, nx)], scratch.field_at_conv_index(&m, n_y, n_x));
            }
        }
    }

    /// Transforming only the rows a region reads leaves those rows as the full
    /// frame has them, to the bit (at one and at two samples per pixel).
    #[test]
    fn the_rows_a_region_reads_equal_the_full_frame() {
        for s in [1, 2] {
            let mut c = MachineConfig::ideal(16);
            c.simulation.oversampling = s;
            let m = FourF::new(c).unwrap();
            let k = Array2::from_shape_fn((16, 16), |(y, x)| if y < 3 && x < 3 { (y + 2 * x) as f64 } else { 0.0 });
            let mask = m.program(k.view());
            let mut full = m.make_scratch(false);
            let (gy, gx) = m.grid_shape();
            for (i, v) in full.input.iter_mut().enumerate() {
                *v = C64::new(((i * 7) % 13) as f64 / 13.0, 0.0);
            }
            let mut part = full.clone();
            m.run_loaded(&mask, &mut full);
            let region = ReadRegion::periodic((16, 16), &[[3, 2, 2, 5], [14, 10, 4, 3]]);
            let rows = m.rows_read(Some(&region)).unwrap();
            assert_eq!(rows.iter().filter(|&&r| r).count(), 6 * s);
            m.run_loaded_rows(&mask, &mut part, Some(&rows));
            for r in (0..gy).filter(|&r| rows[r]) {
                assert_eq!(full.a[r * gx..][..gx], part.a[r * gx..][..gx], "row {r}");
            }
            // The read-out sees the same pixels.
            for n_y in 0..16 {
                for &(a, b) in region.row(n_y) {
                    for n_x in a..b {
                        for (jy, jx) in [(0, 0), (s - 1, s - 1)] {
                            let (y, x) = (s * n_y + jy, s * n_x + jx);
                            assert_eq!(full.field_at_conv_index(&m, y, x), part.field_at_conv_index(&m, y, x));
                        }
                    }
                }
            }
        }
    }
}
