//! Spatial light modulators: what a real panel shows when asked for a complex
//! transmission.
//!
//! An [`SlmConfig`] (serde) describes the panel; [`Slm::new`] validates it and loads
//! its level table. Every desired transmission `t` (clamped to `|t| ≤ 1`) is mapped to
//! a *drive* (what the electronics write: a level index, see [`Drive`]), and a drive
//! to the panel's *response*, the complex transmission it realises
//! ([`Slm::response_of_drive`]). [`Slm::render`] puts a whole pixel pattern on the
//! simulation grid with `s × s` samples per pixel, which is where pixel crosstalk
//! (a blur of the drive) and the fill factor (dead space around each pixel) live.
//!
//! ## Modulation kinds ([`Modulation`])
//! - `amplitude`: real transmission in `[0, 1]`; a transmissive amplitude LCD, or an
//!   LCoS panel between crossed polarisers. Negative or imaginary parts of the target
//!   cannot be shown (signed data needs the `offset`/`split` schemes upstream).
//! - `phase`: `exp(iθ)`, `θ ∈ [0, phase_range_rad)`; a reflective phase-only LCoS,
//!   e.g. Holoeye PLUTO-2 (1920×1080, 8 µm pitch, 93 % fill factor, 8-bit, 60 Hz;
//!   Holoeye PLUTO-2 datasheet) or Meadowlark HSP1920 (1920×1152, 9.2 µm pitch;
//!   Meadowlark datasheet). Their phase response versus grey level is nonlinear and
//!   wavelength-dependent, which is what a measured level table (`levels_csv`) holds.
//! - `complex`: ideal `A·e^{iφ}`, `|A| ≤ 1`, never quantised: the reference.
//! - `two_slm`: an amplitude SLM imaged onto a phase SLM; `|t|` and `arg t` are
//!   quantised independently on `2^bits` levels each.
//! - `binary`: a digital micromirror device, each mirror 0 or 1, e.g. TI DLP9000
//!   (2560×1600 mirrors, 7.56 µm pitch, binary patterns at ~9.5 kHz; TI DLP9000
//!   datasheet).
//!
//! ## Levels and drives
//! With `bits = n` there are `L = 2^n` levels `k = 0..L−1`: amplitudes `k/(L−1)`
//! (so both 0 and 1 are reachable), phases `k·phase_range_rad/L`. With `bits` unset
//! the levels are continuous and the drive is the physical quantity itself (the
//! amplitude, or the phase in radians). With a level table the responses are exactly
//! the table's rows and the drive is the row index. A fractional drive (after the
//! crosstalk blur) responds with the linear interpolation of amplitude and phase
//! between its two neighbouring levels, as a liquid crystal's response is a smooth
//! function of its voltage.
//!
//! ## Crosstalk
//! The fringing field between neighbouring LCoS electrodes smooths the drive pattern
//! (Persson, Engström & Goksör, "Reducing the effect of pixel crosstalk in phase only
//! spatial light modulators", Opt. Express 20, 22334 (2012)). It is modelled as a
//! separable Gaussian blur of the upsampled drive with `σ = crosstalk_px · s`
//! samples; beyond the panel's edge the drive is 0 (the border carries no voltage).
//! Blurring the drive, not the field, is what makes a phase wrap from `2π−` to `0`
//! pass through every intermediate phase (the "flyback" region of real LCoS).

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Zip};
use num_complex::Complex64 as C64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::fastmath::{atan2_approx, round_nonneg, ATAN2_APPROX_MAX_ERR};

const TAU: f64 = std::f64::consts::TAU;

/// Largest level table accepted (16-bit panels).
const MAX_TABLE_ROWS: usize = 1 << 16;

/// The header a level table must start with.
/// Least number of entries of the phase lookup table over the stroke.
const PHASE_LUT_MIN: usize = 1 << 16;

const TABLE_HEADER: &str = "level,amplitude,phase_rad";

/// How an SLM modulates light (serde: `amplitude`, `phase`, `complex`, `two_slm`,
/// `binary`). See the module docs for the devices each kind models.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modulation {
    /// Real transmission in `[0, 1]`.
    Amplitude,
    /// Phase-only `exp(iθ)`, `θ ∈ [0, phase_range_rad)`.
    Phase,
    /// Ideal complex modulation `A·e^{iφ}`, `|A| ≤ 1`, never quantised.
    #[default]
    Complex,
    /// Amplitude SLM imaged onto a phase SLM: `|t|` and `arg t` quantised separately.
    TwoSlm,
    /// Micromirrors: 0 or 1. `bits` is then the grey-level depth the machine shows
    /// as that many binary bit planes, one pass each.
    Binary,
}

/// A spatial light modulator as written in a machine file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlmConfig {
    /// Pixel columns; unset: the machine decides (a filter SLM matched to the
    /// Fourier grid). The input SLM requires it (the machine checks).
    pub pixels_x: Option<usize>,
    /// Pixel rows; unset as for `pixels_x`.
    pub pixels_y: Option<usize>,
    /// Pixel pitch in metres; unset: the machine decides.
    pub pitch_m: Option<f64>,
    /// Modulation kind; default `complex`.
    pub modulation: Modulation,
    /// Bit depth `1..=16`; unset: continuous levels. Must be unset for `complex`
    /// (never quantised) and unset or 1 for `binary`. With `levels_csv` it may be
    /// set only if the table has exactly `2^bits` rows.
    pub bits: Option<u32>,
    /// Phase stroke of the `phase` and `two_slm` kinds, radians in `(0, 4π]`;
    /// default `2π`. Ignored with a level table (the table holds the phases).
    pub phase_range_rad: f64,
    /// Measured level table: a CSV file with header `level,amplitude,phase_rad` and
    /// one row per drive level `0..n−1` in order (`amplitude ≥ 0`, phase in radians,
    /// unwrapped as measured). When set, every response is one of its rows. Not
    /// allowed for `complex`; a `binary` table has exactly 2 rows.
    pub levels_csv: Option<String>,
    /// Fraction of the pixel area that modulates, `(0, 1]`; default 1.
    pub fill_factor: f64,
    /// Pixel crosstalk: σ, in pixels, of a Gaussian blur of the drive pattern;
    /// `≥ 0`, default 0.
    pub crosstalk_px: f64,
    /// Frame refresh rate in hertz (`> 0`, default 60), for the latency model.
    pub refresh_hz: f64,
}

impl Default for SlmConfig {
    fn default() -> Self {
        Self {
            pixels_x: None,
            pixels_y: None,
            pitch_m: None,
            modulation: Modulation::Complex,
            bits: None,
            phase_range_rad: TAU,
            levels_csv: None,
            fill_factor: 1.0,
            crosstalk_px: 0.0,
            refresh_hz: 60.0,
        }
    }
}

/// `prefix.name`, or `name` alone for an empty prefix.
fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

impl SlmConfig {
    /// Checks every value (without reading `levels_csv`); the error names
    /// `{prefix}.{key}` and the valid range.
    pub fn validate(&self, prefix: &str) -> Result<(), SimError> {
        let k = |name: &str| key(prefix, name);
        for (name, p) in [("pixels_x", self.pixels_x), ("pixels_y", self.pixels_y)] {
            if p == Some(0) {
                return Err(SimError::invalid(k(name), 0, "must be a pixel count ≥ 1, or unset"));
            }
        }
        if let Some(p) = self.pitch_m {
            if !(p.is_finite() && p > 0.0) {
                return Err(SimError::invalid(
                    k("pitch_m"),
                    p,
                    "must be a finite number > 0 (metres), or unset",
                ));
            }
        }
        if let Some(b) = self.bits {
            if !(1..=16).contains(&b) {
                return Err(SimError::invalid(
                    k("bits"),
                    b,
                    "must be in 1..=16, or unset for continuous levels",
                ));
            }
            if self.modulation == Modulation::Complex {
                return Err(SimError::invalid(
                    k("bits"),
                    b,
                    "must be unset for `complex` modulation (the ideal reference is never quantised; \
                     use `two_slm` for a quantised complex modulator)",
                ));
            }
        }
        let r = self.phase_range_rad;
        if !(r.is_finite() && r > 0.0 && r <= 2.0 * TAU) {
            return Err(SimError::invalid(
                k("phase_range_rad"),
                r,
                "must be in (0, 4π] radians (2π = 6.2832, 4π = 12.566)",
            ));
        }
        if let Some(path) = &self.levels_csv {
            if self.modulation == Modulation::Complex {
                return Err(SimError::invalid(
                    k("levels_csv"),
                    path,
                    "must be unset for `complex` modulation (the ideal reference has no level table)",
                ));
            }
            if path.trim().is_empty() {
                return Err(SimError::invalid(
                    k("levels_csv"),
                    "\"\"",
                    format!("must be the path of a CSV file with header `{TABLE_HEADER}`, or unset"),
                ));
            }
        }
        let f = self.fill_factor;
        if !(f.is_finite() && f > 0.0 && f <= 1.0) {
            return Err(SimError::invalid(k("fill_factor"), f, "must be in (0, 1]"));
        }
        let c = self.crosstalk_px;
        // σ beyond 64 pixels blurs every pixel into its hundreds of neighbours; no
        // panel does that, and the blur kernel (10σ·s taps) must stay small.
        if !(c.is_finite() && (0.0..=64.0).contains(&c)) {
            return Err(SimError::invalid(
                k("crosstalk_px"),
                c,
                "must be in [0, 64] (Gaussian σ in pixels; 0 = no crosstalk)",
            ));
        }
        let h = self.refresh_hz;
        if !(h.is_finite() && h > 0.0) {
            return Err(SimError::invalid(
                k("refresh_hz"),
                h,
                "must be a finite number > 0 (hertz)",
            ));
        }
        Ok(())
    }
}

/// A drive: what the electronics write into one pixel.
///
/// `[0]` is the level index (`0..L−1`, fractional after crosstalk) of the panel;
/// `[1]` is used only by `two_slm` without a table (the phase SLM's level; `[0]` is
/// then the amplitude SLM's) and by `complex` (`[Re t, Im t]`). With continuous
/// levels the drive is the amplitude (`amplitude`, `two_slm [0]`) or the phase in
/// radians (`phase`, `two_slm [1]`). Unused channels are 0.
pub type Drive = [f64; 2];

/// The response levels of a panel.
#[derive(Debug, Clone)]
enum Levels {
    /// No quantisation: the drive is the physical quantity.
    Continuous,
    /// `L` evenly spaced levels.
    Uniform(usize),
    /// A measured table.
    Table(Table),
}

/// A measured level table.
#[derive(Debug, Clone)]
struct Table {
    amplitude: Vec<f64>,
    phase_rad: Vec<f64>,
    /// `amplitude·exp(i·phase_rad)`, the exact responses.
    entries: Vec<C64>,
    /// `phase_rad` wrapped to `[0, 2π)`, for nearest-phase search.
    wrapped_phase: Vec<f64>,
}

impl Table {
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Index of the entry the panel picks for the clamped target `t`: nearest in
    /// amplitude to `clamp(Re t, 0, 1)` for `amplitude`, nearest in phase for
    /// `phase`, nearest in the complex plane otherwise. Ties go to the lower level.
    fn nearest(&self, t: C64, modulation: Modulation) -> usize {
        match modulation {
            Modulation::Amplitude => {
                let a = amplitude_target(t);
                argmin(self.len(), |k| (self.amplitude[k] - a).abs())
            }
            Modulation::Phase => {
                let phi = wrapped_arg(t);
                argmin(self.len(), |k| circular_distance(phi, self.wrapped_phase[k]))
            }
            _ => argmin(self.len(), |k| (self.entries[k] - t).norm_sqr()),
        }
    }

    /// Response of a (fractional) row index: amplitude and phase interpolated
    /// linearly between the neighbouring rows; exactly the row at integer drives.
    fn at(&self, d: f64) -> C64 {
        let last = self.len() - 1;
        let d = d.clamp(0.0, last as f64);
        let k = (d as usize).min(last); // floor, as d ≥ 0
        let f = d - k as f64;
        if f == 0.0 || k == last {
            return self.entries[k];
        }
        let a = self.amplitude[k] * (1.0 - f) + self.amplitude[k + 1] * f;
        let p = self.phase_rad[k] * (1.0 - f) + self.phase_rad[k + 1] * f;
        C64::from_polar(a, p)
    }
}

/// The `k < n` minimising `dist(k)`, the lowest on ties.
fn argmin(n: usize, dist: impl Fn(usize) -> f64) -> usize {
    let mut best = (f64::INFINITY, 0);
    for k in 0..n {
        let d = dist(k);
        if d < best.0 {
            best = (d, k);
        }
    }
    best.1
}

/// Parses a level table; errors are `(1-based line, message)`.
fn parse_table(text: &str) -> Result<Table, (usize, String)> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_start_matches('\u{feff}').trim()));
    let (hline, header) = lines
        .by_ref()
        .find(|(_, l)| !l.is_empty())
        .ok_or((1, "the file is empty".to_string()))?;
    let cells: Vec<&str> = header.split(',').map(str::trim).collect();
    if cells != TABLE_HEADER.split(',').collect::<Vec<_>>() {
        return Err((hline, format!("the header is `{header}`, expected `{TABLE_HEADER}`")));
    }
    let (mut amplitude, mut phase_rad) = (Vec::new(), Vec::new());
    let mut last_line = hline;
    for (line, l) in lines {
        last_line = line;
        if l.is_empty() {
            continue;
        }
        let cells: Vec<&str> = l.split(',').map(str::trim).collect();
        if cells.len() != 3 {
            return Err((line, format!("{} cells, expected 3 (`{TABLE_HEADER}`)", cells.len())));
        }
        let expected = amplitude.len();
        let level: usize = cells[0]
            .parse()
            .map_err(|_| (line, format!("`{}` in column `level` is not a level index", cells[0])))?;
        if level != expected {
            return Err((
                line,
                format!("level {level} where level {expected} was expected (rows are levels 0..n−1 in order)"),
            ));
        }
        let number = |i: usize, name: &str| -> Result<f64, (usize, String)> {
            match cells[i].parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err((
                    line,
                    format!("`{}` in column `{name}` is not a finite number", cells[i]),
                )),
            }
        };
        let a = number(1, "amplitude")?;
        if a < 0.0 {
            return Err((line, format!("amplitude {a} is negative (amplitudes are ≥ 0)")));
        }
        let p = number(2, "phase_rad")?;
        if expected >= MAX_TABLE_ROWS {
            return Err((line, format!("more than {MAX_TABLE_ROWS} levels")));
        }
        amplitude.push(a);
        phase_rad.push(p);
    }
    if amplitude.is_empty() {
        return Err((last_line, "no level rows after the header".to_string()));
    }
    let entries = amplitude
        .iter()
        .zip(&phase_rad)
        .map(|(&a, &p)| C64::from_polar(a, p))
        .collect();
    let wrapped_phase = phase_rad.iter().map(|p| p.rem_euclid(TAU)).collect();
    Ok(Table {
        amplitude,
        phase_rad,
        entries,
        wrapped_phase,
    })
}

/// `t` scaled down to `|t| ≤ 1` if larger.
fn clamp_unit(t: C64) -> C64 {
    if t.norm_sqr() > 1.0 {
        t / t.norm()
    } else {
        t
    }
}

/// What an amplitude-only panel can show of `t`: `clamp(Re t, 0, 1)` (the nearest
/// point of `[0, 1]` in the complex plane).
fn amplitude_target(t: C64) -> f64 {
    t.re.clamp(0.0, 1.0)
}

/// `phi` (an angle in `[−π, π]`) moved to `[0, 2π]`, in level units
/// (`per_rad = n/2π`).
#[inline(always)]
fn phase_position(phi: f64, per_rad: f64) -> f64 {
    let phi = if phi < 0.0 { phi + TAU } else { phi };
    phi * per_rad
}

/// `arg t` in `[0, 2π)`.
fn wrapped_arg(t: C64) -> f64 {
    let p = t.arg();
    if p >= 0.0 {
        return p;
    }
    let p = p + TAU;
    // Tiny negative angles round up to exactly 2π.
    if p >= TAU {
        0.0
    } else {
        p
    }
}

/// Distance between two angles on the circle, in `[0, π]`.
fn circular_distance(a: f64, b: f64) -> f64 {
    // |a − b| < 4π here (a < 2π, b < 4π): two folds reach [0, π].
    let mut d = (a - b).abs();
    for _ in 0..2 {
        if d > std::f64::consts::PI {
            d = (d - TAU).abs();
        }
    }
    d
}

/// The panel: a validated [`SlmConfig`] with its levels loaded.
#[derive(Debug, Clone)]
pub struct Slm {
    config: SlmConfig,
    levels: Levels,
    /// `exp(iθ)` of the uniform phase levels (`phase`, `two_slm`) and of
    /// `lut_sub − 1` equally spaced phases between neighbouring levels, so that a
    /// drive costs a lookup (integer) or a linear interpolation (fractional, after
    /// crosstalk), not a sine and cosine.
    phase_lut: Vec<C64>,
    /// Table entries per level step.
    lut_sub: usize,
    /// `(n, n/2π, guard)` for `n` uniform phase levels over exactly 2π: the phase
    /// level of a transmission is then `round(arg t · n/2π) mod n`, found with
    /// [`atan2_approx`] wherever `arg t · n/2π` is farther than `guard` from a
    /// half-integer (see [`Slm::fast_phase_level`]).
    fast_phase: Option<(usize, f64, f64)>,
    /// `amplitude_of_drive(k)` for the integer drives `k < n` of `n ≤ AMP_LUT_MAX`
    /// uniform amplitude levels (`amplitude`, `binary`, `two_slm`), else empty: a
    /// lookup instead of a division, the same value.
    amp_lut: Vec<f64>,
    /// `(n − 1) as f64` of `n` uniform levels, else 0.
    top_level: f64,
}

/// Largest uniform level count given an amplitude table (12 bits, 32 KiB).
const AMP_LUT_MAX: usize = 4096;

/// Pixels per chunk of the two-pass phase render.
const PHASE_CHUNK: usize = 64;

impl Slm {
    /// Whether the panel shows every transmission with `|t| ≤ 1` exactly on one
    /// sample per pixel: complex modulation without quantisation or crosstalk and a
    /// fill factor of 1 ([`Slm::render`] at `s = 1` is then the identity).
    pub fn is_transparent(&self) -> bool {
        self.config.modulation == Modulation::Complex
            && matches!(self.levels, Levels::Continuous)
            && self.config.crosstalk_px == 0.0
            && self.config.fill_factor == 1.0
    }

    /// Validates `config` (keys named `{prefix}.…`) and loads its level table.
    ///
    /// Table errors name `{prefix}.levels_csv`, the file and, where there is one,
    /// the line: unreadable file, wrong header, a wrong cell count, a non-numeric or
    /// non-finite cell, a level out of order, a negative amplitude, no rows, a row
    /// count that contradicts `bits` (or is not 2 for `binary`).
    pub fn new(config: SlmConfig, prefix: &str) -> Result<Self, SimError> {
        config.validate(prefix)?;
        let levels = match &config.levels_csv {
            Some(path) => {
                let k = key(prefix, "levels_csv");
                let fail = |why: String| {
                    SimError::invalid(
                        &k,
                        path,
                        format!("{why} (a level table is a CSV with header `{TABLE_HEADER}`, one row per level)"),
                    )
                };
                let text = crate::files::read_text_limited(path, crate::files::MAX_CONFIG_BYTES)
                    .map_err(|e| fail(format!("cannot read the file: {e}")))?;
                let table = parse_table(&text).map_err(|(line, why)| fail(format!("line {line}: {why}")))?;
                let n = table.len();
                if config.modulation == Modulation::Binary && n != 2 {
                    return Err(fail(format!(
                        "a `binary` table needs exactly 2 rows (off, on), found {n}"
                    )));
                }
                if let Some(b) = config.bits.filter(|_| config.modulation != Modulation::Binary) {
                    if n != 1 << b {
                        return Err(fail(format!(
                            "{n} levels, but bits = {b} means {} levels; fix the table or unset bits",
                            1usize << b
                        )));
                    }
                }
                Levels::Table(table)
            }
            None => match (config.modulation, config.bits) {
                (Modulation::Binary, _) => Levels::Uniform(2),
                (Modulation::Complex, _) | (_, None) => Levels::Continuous,
                (_, Some(b)) => Levels::Uniform(1 << b),
            },
        };
        // At least PHASE_LUT_MIN entries over the stroke: the chord between
        // neighbours then departs from the unit circle by at most
        // (range/PHASE_LUT_MIN)²/8 < 2e-8 (range ≤ 4π).
        let (phase_lut, lut_sub) = match (&levels, config.modulation) {
            (Levels::Uniform(n), Modulation::Phase | Modulation::TwoSlm) => {
                let step = config.phase_range_rad / *n as f64;
                let sub = PHASE_LUT_MIN.div_ceil(*n).max(1);
                let lut = (0..=(n - 1) * sub)
                    .map(|j| {
                        // Level k sits at j = k·sub and gets exactly exp(i·k·step).
                        let (k, r) = (j / sub, j % sub);
                        C64::from_polar(1.0, (k as f64 + r as f64 / sub as f64) * step)
                    })
                    .collect();
                (lut, sub)
            }
            _ => (Vec::new(), 1),
        };
        let fast_phase = match (&levels, config.modulation) {
            (Levels::Uniform(n), Modulation::Phase | Modulation::TwoSlm) if config.phase_range_rad == TAU => {
                let per_rad = *n as f64 / TAU;
                // The approximation's error in level units, doubled, plus the
                // rounding of both ways of computing `arg t · n/2π` (≤ 2π·n/2π·4ε).
                let guard = 2.0 * ATAN2_APPROX_MAX_ERR * per_rad + 16.0 * f64::EPSILON * *n as f64;
                Some((*n, per_rad, guard))
            }
            _ => None,
        };
        let mut slm = Self {
            config,
            levels,
            phase_lut,
            lut_sub,
            fast_phase,
            amp_lut: Vec::new(),
            top_level: 0.0,
        };
        if let Levels::Uniform(n) = slm.levels {
            slm.top_level = (n - 1) as f64;
        }
        if let (Levels::Uniform(n), Modulation::Amplitude | Modulation::Binary | Modulation::TwoSlm) =
            (&slm.levels, slm.config.modulation)
        {
            if *n <= AMP_LUT_MAX {
                slm.amp_lut = (0..*n).map(|k| slm.amplitude_of_drive(k as f64)).collect();
            }
        }
        Ok(slm)
    }

    /// The configuration this panel was built from.
    pub fn config(&self) -> &SlmConfig {
        &self.config
    }

    /// Number of distinct drive levels: `2^bits` (per SLM for `two_slm`), 2 for
    /// `binary`, the table's row count, or `None` when continuous.
    pub fn levels(&self) -> Option<usize> {
        match &self.levels {
            Levels::Continuous => None,
            Levels::Uniform(n) => Some(*n),
            Levels::Table(t) => Some(t.len()),
        }
    }

    /// Uniform level count, `None` when continuous.
    fn uniform(&self) -> Option<usize> {
        match self.levels {
            Levels::Uniform(n) => Some(n),
            _ => None,
        }
    }

    /// Amplitude drive of `a ∈ [0, 1]`: the nearest level index, or `a` itself.
    fn amplitude_drive(&self, a: f64) -> f64 {
        match self.uniform() {
            Some(n) => round_nonneg(a * (n - 1) as f64) as f64,
            None => a,
        }
    }

    fn amplitude_of_drive(&self, d: f64) -> f64 {
        match self.uniform() {
            Some(n) => d.clamp(0.0, (n - 1) as f64) / (n - 1) as f64,
            None => d.clamp(0.0, 1.0),
        }
    }

    /// Phase drive of `phi ∈ [0, 2π)`: the level nearest on the circle, or the phase
    /// itself; a phase the stroke cannot reach goes to the
    /// nearer end of the stroke.
    fn phase_drive(&self, phi: f64) -> f64 {
        let range = self.config.phase_range_rad;
        let Some(n) = self.uniform() else {
            if phi <= range {
                return phi;
            }
            return if phi - range < TAU - phi { range } else { 0.0 };
        };
        let step = range / n as f64;
        if range == TAU {
            // The levels tile the circle evenly: plain rounding, level n ≡ level 0.
            // phi < 2π, so the level is at most n, and n is level 0.
            let k = round_nonneg(phi / step);
            return if k >= n { (k - n) as f64 } else { k as f64 };
        }
        let last = n - 1;
        let mut best = (f64::INFINITY, 0usize);
        let mut consider = |k: usize| {
            // Aliases of one phase (stroke > 2π) tie up to rounding: the lower wins.
            let d = circular_distance(phi, k as f64 * step);
            if d < best.0 - 1e-12 || (d <= best.0 + 1e-12 && k < best.1) {
                best = (d, k);
            }
        };
        // For each representative φ + 2πm the nearest level is the floor or ceiling
        // clamped to the stroke; m = 0, 1 cover a stroke of up to 4π, the ends cover
        // the rest.
        for base in [phi, phi + TAU] {
            let below = (base / step) as usize; // floor, as base ≥ 0
            consider(below.min(last));
            consider((below + 1).min(last));
        }
        consider(0);
        consider(last);
        best.1 as f64
    }

    /// The phase drive of `t` (already `|t| ≤ 1`): `phase_drive(wrapped_arg(t))`,
    /// through [`Slm::fast_phase_level`] where it decides.
    #[inline]
    fn phase_drive_of(&self, t: C64) -> f64 {
        match self.fast_phase_level(t) {
            Some(k) => k as f64,
            None => self.phase_drive(wrapped_arg(t)),
        }
    }

    /// The level `phase_drive(wrapped_arg(t))` picks for `n` uniform levels over 2π,
    /// without the library's `atan2` and the division: `q = arg t · n/2π` from
    /// [`atan2_approx`] is within `guard/2` of the exact path's `arg t / step`, so
    /// wherever `q` is farther than `guard` from a half-integer both round to the
    /// same level. `None` (take the exact path) near the decision boundaries, for
    /// other level sets, and for `t = 0` or non-finite `t`.
    #[inline(always)]
    fn fast_phase_level(&self, t: C64) -> Option<usize> {
        let (_, per_rad, _) = self.fast_phase?;
        let phi = atan2_approx(t.im, t.re)?;
        self.level_at_position(phase_position(phi, per_rad))
    }

    /// The level at approximate phase position `q = arg t · n/2π` (from
    /// [`phase_position`]): `round(q) mod n`, or `None` within the guard of a
    /// half-integer (and for a non-finite `q`), where the exact path decides.
    #[inline(always)]
    fn level_at_position(&self, q: f64) -> Option<usize> {
        let (n, _, guard) = self.fast_phase?;
        let k = q as i64;
        let frac = q - k as f64;
        if !(q.is_finite() && (frac - 0.5).abs() > guard) {
            return None;
        }
        // q ≤ n (up to rounding): level n is level 0.
        let k = (k + i64::from(frac > 0.5)) as usize;
        Some(if k >= n { k - n } else { k })
    }

    /// `exp(iθ)` of a phase drive.
    fn phasor_of_drive(&self, d: f64) -> C64 {
        let range = self.config.phase_range_rad;
        match self.uniform() {
            Some(n) => {
                let pos = d.clamp(0.0, (n - 1) as f64) * self.lut_sub as f64;
                let j = pos as usize;
                let f = pos - j as f64;
                if f == 0.0 {
                    self.phase_lut[j]
                } else {
                    self.phase_lut[j] * (1.0 - f) + self.phase_lut[j + 1] * f
                }
            }
            None => C64::from_polar(1.0, d.clamp(0.0, range)),
        }
    }

    /// The drive that realises the level nearest to `target` (clamped to `|t| ≤ 1`;
    /// expected finite). See [`Drive`] for the channels and [`Slm::response`] for
    /// which level is nearest.
    pub fn drive(&self, target: C64) -> Drive {
        let t = clamp_unit(target);
        let m = self.config.modulation;
        if let Levels::Table(table) = &self.levels {
            return [table.nearest(t, m) as f64, 0.0];
        }
        match m {
            Modulation::Complex => [t.re, t.im],
            Modulation::Amplitude | Modulation::Binary => [self.amplitude_drive(amplitude_target(t)), 0.0],
            Modulation::Phase => [self.phase_drive_of(t), 0.0],
            Modulation::TwoSlm => [
                self.amplitude_drive(t.norm_sqr().sqrt().min(1.0)),
                self.phase_drive_of(t),
            ],
        }
    }

    /// The transmission a (possibly fractional) drive realises: the level's response
    /// at integer drives, amplitude and phase interpolated linearly in between.
    pub fn response_of_drive(&self, drive: Drive) -> C64 {
        if let Levels::Table(table) = &self.levels {
            return table.at(drive[0]);
        }
        match self.config.modulation {
            Modulation::Complex => clamp_unit(C64::new(drive[0], drive[1])),
            Modulation::Amplitude | Modulation::Binary => C64::new(self.amplitude_of_drive(drive[0]), 0.0),
            Modulation::Phase => self.phasor_of_drive(drive[0]),
            Modulation::TwoSlm => self.phasor_of_drive(drive[1]) * self.amplitude_of_drive(drive[0]),
        }
    }

    /// The response of the nearest realisable level to `target` (clamped to
    /// `|t| ≤ 1`):
    /// - `amplitude`: the amplitude level nearest to `clamp(Re t, 0, 1)` (with a
    ///   table: the row whose amplitude is nearest to it; its phase comes along);
    /// - `phase`: `exp(iθ_k)`, `θ_k` the level nearest on the circle to `arg t`
    ///   (outside a stroke < 2π: the nearer end); `|t|` is ignored (with a table: the
    ///   row nearest in phase; its amplitude comes along);
    /// - `complex`: `t` itself;
    /// - `two_slm`: quantised `|t|` times `exp(i·quantised arg t)` (with a table: the
    ///   row nearest to `t` in the complex plane);
    /// - `binary`: 1 if `Re t ≥ 0.5`, else 0, i.e. the nearer of 0 and 1 in the
    ///   complex plane (with a table: the nearer row in the complex plane).
    ///
    /// Exact ties (a set of measure zero) are broken deterministically.
    #[inline]
    pub fn response(&self, target: C64) -> C64 {
        match self.response_uniform(target) {
            Some(r) => r,
            None => self.response_generic(target),
        }
    }

    /// `response_of_drive(drive(target))`: every panel; tables and continuous
    /// levels take only this path.
    #[inline(never)]
    fn response_generic(&self, target: C64) -> C64 {
        self.response_of_drive(self.drive(target))
    }

    /// [`Slm::response`] of uniform integer levels by lookups: the level indices as
    /// [`Slm::drive`] picks them, the phasor from the phase table and the amplitude
    /// from `amp_lut`, multiplied as [`Slm::response_of_drive`] does, so the value
    /// is the same to the bit. `None` for other panels (continuous, tables, complex,
    /// more than `AMP_LUT_MAX` amplitude levels).
    #[inline(always)]
    fn response_uniform(&self, target: C64) -> Option<C64> {
        if !matches!(self.levels, Levels::Uniform(_)) {
            return None;
        }
        let t = clamp_unit(target);
        let top = self.top_level;
        let amplitude = |a: f64| self.amp_lut.get(round_nonneg(a * top)).copied();
        match self.config.modulation {
            Modulation::Amplitude | Modulation::Binary => Some(C64::new(amplitude(amplitude_target(t))?, 0.0)),
            Modulation::Phase => Some(self.phase_lut[self.phase_level(t) * self.lut_sub]),
            Modulation::TwoSlm => {
                let a = amplitude(t.norm_sqr().sqrt().min(1.0))?;
                Some(self.phase_lut[self.phase_level(t) * self.lut_sub] * a)
            }
            Modulation::Complex => None,
        }
    }

    /// [`Slm::response`] of `n` uniform phase levels over 2π (`phase`, or
    /// `two_slm` with an amplitude table) for up to [`PHASE_CHUNK`] pixels, in two
    /// passes: straight-line arithmetic for every pixel (the approximate phase
    /// position `arg t · n/2π` and the amplitude position `|t|·(n − 1)`), which
    /// the compiler vectorises, then the decisions and lookups per pixel as
    /// [`Slm::response_uniform`] makes them. Pixels outside the unit disc,
    /// non-finite ones and those the fast quantiser hands over take
    /// [`Slm::response`] itself; `+0` takes `dark`. The same values to the bit.
    fn respond_phase_chunk(&self, pixels: &[C64], out: &mut [C64], dark: C64) {
        let (_, per_rad, _) = self.fast_phase.expect("uniform phase levels over 2π");
        let two_slm = self.config.modulation == Modulation::TwoSlm;
        let top = self.top_level;
        let mut q = [0.0f64; PHASE_CHUNK];
        let mut amp = [0.0f64; PHASE_CHUNK];
        let m = pixels.len();
        for ((t, q), a) in pixels.iter().zip(&mut q[..m]).zip(&mut amp[..m]) {
            *q = phase_position(crate::fastmath::atan2_approx_unchecked(t.im, t.re), per_rad);
            // −1 marks |t| > 1 (or NaN): the second pass sends those to `response`.
            let ns = t.norm_sqr();
            *a = if ns <= 1.0 { ns.sqrt().min(1.0) * top } else { -1.0 };
        }
        for ((o, &t), (&q, &a)) in out.iter_mut().zip(pixels).zip(q.iter().zip(&amp)) {
            if t.re.to_bits() == 0 && t.im.to_bits() == 0 {
                *o = dark;
                continue;
            }
            let Some(k) = self.level_at_position(q).filter(|_| a >= 0.0) else {
                *o = self.response(t);
                continue;
            };
            let phasor = self.phase_lut[k * self.lut_sub];
            *o = if two_slm {
                phasor * self.amp_lut[round_nonneg(a)]
            } else {
                phasor
            };
        }
    }

    /// The phase level [`Slm::drive`] picks for `t` (`|t| ≤ 1`, uniform levels).
    #[inline(always)]
    fn phase_level(&self, t: C64) -> usize {
        match self.fast_phase_level(t) {
            Some(k) => k,
            None => self.exact_phase_level(t),
        }
    }

    #[cold]
    #[inline(never)]
    fn exact_phase_level(&self, t: C64) -> usize {
        self.phase_drive(wrapped_arg(t)) as usize
    }

    /// Side `w = round(s·√fill_factor)` (in `1..=s`) of the transmitting square in a
    /// pixel of `s × s` samples, and its offset `(s − w)/2` (centred to within half a
    /// sample).
    fn aperture(&self, s: usize) -> (usize, usize) {
        let w = ((s as f64 * self.config.fill_factor.sqrt()).round() as usize).clamp(1, s);
        (w, (s - w) / 2)
    }

    /// The fill factor the grid realises with `s` samples per pixel: `(w/s)²`, `w`
    /// the side of the transmitting square (see [`Slm::render`]).
    ///
    /// # Panics
    /// If `s == 0`.
    pub fn effective_fill_factor(&self, s: usize) -> f64 {
        assert!(s > 0, "effective_fill_factor: s must be ≥ 1");
        let (w, _) = self.aperture(s);
        (w as f64 / s as f64).powi(2)
    }

    /// Renders desired transmissions (one per pixel, `rows × cols`) onto a grid of
    /// `s × s` samples per pixel, shape `(rows·s, cols·s)`. See [`Slm::render_into`].
    ///
    /// # Panics
    /// If `s == 0`.
    pub fn render(&self, pixels: ArrayView2<C64>, s: usize) -> Array2<C64> {
        let (rows, cols) = pixels.dim();
        let mut out = Array2::zeros((rows * s, cols * s));
        self.render_into(pixels, s, out.view_mut());
        out
    }

    /// Renders into a caller-owned `(rows·s, cols·s)` array:
    /// 1. the drive of every pixel ([`Slm::drive`]);
    /// 2. each pixel's drive on its `s × s` samples;
    /// 3. crosstalk (when `crosstalk_px > 0`): a separable Gaussian blur of the drive
    ///    with `σ = crosstalk_px·s` samples (kernel cut at 5σ and normalised, drive 0
    ///    beyond the panel). Every channel of [`Drive`] is blurred;
    /// 4. the response of every sample's drive ([`Slm::response_of_drive`]);
    /// 5. the fill factor: within each pixel only a square of `w = round(s·√F)`
    ///    samples (at least 1) at offset `(s − w)/2` transmits, the rest is 0.
    ///
    /// Without crosstalk this equals `response` per pixel, spread over the aperture.
    ///
    /// # Panics
    /// If `s == 0` or `out` is not `(rows·s, cols·s)`.
    pub fn render_into(&self, pixels: ArrayView2<C64>, s: usize, mut out: ArrayViewMut2<C64>) {
        assert!(s > 0, "Slm::render: s must be ≥ 1 sample per pixel");
        let (rows, cols) = pixels.dim();
        assert_eq!(
            out.dim(),
            (rows * s, cols * s),
            "Slm::render: output is {:?}, expected ({}, {}) for {rows}×{cols} pixels at s = {s}",
            out.dim(),
            rows * s,
            cols * s
        );
        if rows == 0 || cols == 0 {
            return;
        }
        let (w, o) = self.aperture(s);
        let open = |r: usize| r >= o && r < o + w;
        let zero = C64::new(0.0, 0.0);

        if self.config.crosstalk_px == 0.0 {
            // One response per pixel, written to its aperture; the dark pixels that
            // fill most of a tiled frame share one.
            let dark = self.response(zero);
            // Bits, not value: −0 has another argument than +0.
            let respond = |t: C64| {
                if t.re.to_bits() == 0 && t.im.to_bits() == 0 {
                    dark
                } else {
                    self.response(t)
                }
            };
            if s == 1 {
                // One sample per pixel (w = 1, o = 0): the response itself.
                if self.fast_phase.is_some()
                    && (self.config.modulation == Modulation::Phase || !self.amp_lut.is_empty())
                {
                    let mut rows_out = out.view_mut();
                    let rows_out = rows_out.as_slice_mut();
                    if let (Some(o), Some(p)) = (rows_out, pixels.as_slice()) {
                        o.par_chunks_mut(PHASE_CHUNK)
                            .zip(p.par_chunks(PHASE_CHUNK))
                            .for_each(|(o, p)| self.respond_phase_chunk(p, o, dark));
                        return;
                    }
                }
                Zip::from(&mut out).and(&pixels).par_for_each(|o, &t| *o = respond(t));
                return;
            }
            out.axis_chunks_iter_mut(Axis(0), s)
                .into_par_iter()
                .enumerate()
                .for_each(|(py, mut block)| {
                    // Every sample is written once: dead rows, then the first open
                    // row pixel by pixel, then copies of it.
                    let (mut dead_top, rest) = block.view_mut().split_at(Axis(0), o);
                    dead_top.fill(zero);
                    let (mut open_rows, mut dead_bottom) = rest.split_at(Axis(0), w);
                    dead_bottom.fill(zero);
                    let (mut first, mut others) = open_rows.view_mut().split_at(Axis(0), 1);
                    let mut first = first.row_mut(0);
                    for (px, &t) in pixels.row(py).iter().enumerate() {
                        let v = respond(t);
                        for rx in 0..s {
                            first[px * s + rx] = if open(rx) { v } else { zero };
                        }
                    }
                    for mut row in others.axis_iter_mut(Axis(0)) {
                        row.assign(&first);
                    }
                });
            return;
        }

        // Drives per pixel, channels packed as (re, im) of a complex number.
        let mut drives = Array2::<C64>::zeros((rows, cols));
        Zip::from(&mut drives).and(&pixels).par_for_each(|d, &t| {
            let [a, b] = self.drive(t);
            *d = C64::new(a, b);
        });
        let (weights, q) = pixel_weights(self.config.crosstalk_px * s as f64, s);
        let nq = 2 * q + 1;
        let ncol = cols * s;
        // Horizontal pass: all sample rows of one pixel row are equal before the
        // blur, so it runs once per pixel row.
        let mut h = Array2::<C64>::zeros((rows, ncol));
        h.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(drives.axis_iter(Axis(0)))
            .for_each(|(mut hrow, drow)| {
                for x in 0..ncol {
                    let (px, rx) = (x / s, x % s);
                    let wrow = &weights[rx * nq..(rx + 1) * nq];
                    let mut acc = zero;
                    for (i, &wt) in wrow.iter().enumerate() {
                        let p = (px + i).wrapping_sub(q);
                        if p < cols {
                            acc += drow[p] * wt;
                        }
                    }
                    hrow[x] = acc;
                }
            });
        // Vertical pass, response and aperture, one output row at a time.
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(|(y, mut orow)| {
                orow.fill(zero);
                let (py, ry) = (y / s, y % s);
                if !open(ry) {
                    return;
                }
                for (i, &wt) in weights[ry * nq..(ry + 1) * nq].iter().enumerate() {
                    let p = (py + i).wrapping_sub(q);
                    if p < rows && wt != 0.0 {
                        orow.zip_mut_with(&h.row(p), |a, b| *a += b * wt);
                    }
                }
                for (x, v) in orow.iter_mut().enumerate() {
                    *v = if open(x % s) {
                        self.response_of_drive([v.re, v.im])
                    } else {
                        zero
                    };
                }
            });
    }
}

/// Blur weights of whole pixels: `weights[r·(2q+1) + (i)]` is the weight, at sample
/// `r` of a pixel, of the pixel `i − q` pixels away, i.e. the sum of the normalised
/// Gaussian (σ samples, cut at 5σ) over that pixel's `s` samples.
fn pixel_weights(sigma: f64, s: usize) -> (Vec<f64>, usize) {
    let radius = (5.0 * sigma).ceil().max(1.0) as usize;
    let g: Vec<f64> = (0..=2 * radius)
        .map(|i| {
            let d = i as f64 - radius as f64;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let norm: f64 = g.iter().sum();
    let q = radius.div_ceil(s) + 1;
    let nq = 2 * q + 1;
    let mut weights = vec![0.0; s * nq];
    for r in 0..s {
        for i in 0..nq {
            let mut acc = 0.0;
            for j in 0..s {
                // Distance from sample j of the pixel i − q away to sample r here.
                let d = r as isize - (i as isize - q as isize) * s as isize - j as isize;
                if d.unsigned_abs() <= radius {
                    acc += g[(d + radius as isize) as usize];
                }
            }
            weights[r * nq + i] = acc / norm;
        }
    }
    (weights, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(modulation: Modulation, bits: Option<u32>) -> SlmConfig {
        SlmConfig {
            modulation,
            bits,
            ..SlmConfig::default()
        }
    }

    /// A transparent panel renders every transmission inside the unit disc
    /// unchanged (what lets the machine skip rendering an exact filter); any
    /// quantisation, crosstalk or fill factor makes it non-transparent.
    #[test]
    fn transparent_panels_render_the_identity() {
        let slm = Slm::new(cfg(Modulation::Complex, None), "s").unwrap();
        assert!(slm.is_transparent());
        let t = Array2::from_shape_fn((5, 7), |(i, j)| {
            C64::from_polar(0.13 * (i + j) as f64 % 1.0, 0.7 * j as f64)
        });
        assert_eq!(slm.render(t.view(), 1), t);
        for other in [
            cfg(Modulation::TwoSlm, None),
            SlmConfig {
                fill_factor: 0.9,
                ..cfg(Modulation::Complex, None)
            },
            SlmConfig {
                crosstalk_px: 0.3,
                ..cfg(Modulation::Complex, None)
            },
        ] {
            assert!(!Slm::new(other, "s").unwrap().is_transparent());
        }
    }

    /// The fast phase quantiser picks the library path's level for every
    /// transmission, at the decision boundaries too (where it hands over), for
    /// 1 to 16 bits; it runs only for uniform levels over exactly 2π.
    #[test]
    fn fast_phase_level_equals_the_exact_quantiser() {
        use rand::rngs::Xoshiro256PlusPlus;
        use rand::{RngExt, SeedableRng};
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        for bits in [1, 2, 3, 8, 10, 16] {
            for m in [Modulation::Phase, Modulation::TwoSlm] {
                let slm = Slm::new(cfg(m, Some(bits)), "x").unwrap();
                let n = 1usize << bits;
                let step = TAU / n as f64;
                let (mut decided, mut handed_over) = (0usize, 0usize);
                let mut check = |t: C64| {
                    let t = clamp_unit(t);
                    let exact = slm.phase_drive(wrapped_arg(t));
                    match slm.fast_phase_level(t) {
                        Some(k) => {
                            decided += 1;
                            assert_eq!(k as f64, exact, "{bits} bits, t = {t}: fast level {k}, exact {exact}");
                        }
                        None => handed_over += 1,
                    }
                    assert_eq!(slm.drive(t)[usize::from(m == Modulation::TwoSlm)], exact);
                };
                for _ in 0..100_000 {
                    check(C64::new(rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5));
                }
                // On and beside every decision boundary (k + ½)·step and next to
                // the cut at ±π and 0, at offsets down to a few ulps.
                let boundaries = n.min(4096);
                for j in 0..boundaries {
                    let k = j * n / boundaries;
                    let b = (k as f64 + 0.5) * step;
                    for d in [0.0, 1e-15, -1e-15, 1e-12, -1e-12, 1e-9, -1e-9, 1e-7, -1e-7, 1e-5, -1e-5] {
                        check(C64::from_polar(0.7, b + d));
                    }
                }
                for d in [0.0, 1e-300, -1e-300, 1e-17, -1e-17, 1e-9, -1e-9] {
                    check(C64::new(1.0, d));
                    check(C64::new(-1.0, d));
                }
                check(C64::new(0.0, 0.0));
                check(C64::new(3.0, -4.0));
                assert!(decided > 99_000, "{bits} bits: the fast path decided only {decided}");
                assert!(handed_over > 0, "{bits} bits: nothing near a boundary was handed over");
            }
        }
        for other in [
            SlmConfig {
                phase_range_rad: 1.5 * std::f64::consts::PI,
                ..cfg(Modulation::Phase, Some(8))
            },
            cfg(Modulation::Phase, None),
            cfg(Modulation::Amplitude, Some(8)),
        ] {
            let slm = Slm::new(other, "x").unwrap();
            assert_eq!(slm.fast_phase_level(C64::new(0.3, 0.4)), None);
        }
    }

    /// The lookup path of uniform levels (`response_uniform`) gives the generic
    /// path's value to the bit — drive, then response of the drive — for every
    /// kind and bit depth, inside and outside the unit disc, and the one-sample
    /// render is the response per pixel.
    #[test]
    fn uniform_lookups_equal_the_generic_response_bit_for_bit() {
        use rand::rngs::Xoshiro256PlusPlus;
        use rand::{RngExt, SeedableRng};
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(12);
        let ts: Vec<C64> = (0..20_000)
            .map(|i| {
                let r = if i % 10 == 0 {
                    1.0 + rng.random::<f64>()
                } else {
                    rng.random::<f64>()
                };
                C64::from_polar(r, TAU * rng.random::<f64>() - std::f64::consts::PI)
            })
            .chain([
                C64::new(0.0, 0.0),
                C64::new(-0.0, 0.0),
                C64::new(0.5, 0.0),
                C64::new(-1.0, -0.0),
            ])
            .collect();
        let same = |a: C64, b: C64| a.re.to_bits() == b.re.to_bits() && a.im.to_bits() == b.im.to_bits();
        for m in [
            Modulation::Amplitude,
            Modulation::Binary,
            Modulation::Phase,
            Modulation::TwoSlm,
        ] {
            for bits in [1, 4, 8, 12, 14] {
                let slm = Slm::new(cfg(m, Some(bits)), "x").unwrap();
                let mut lookups = 0;
                for &t in &ts {
                    let generic = slm.response_of_drive(slm.drive(t));
                    if let Some(fast) = slm.response_uniform(t) {
                        lookups += 1;
                        assert!(same(fast, generic), "{m:?} {bits} bits, t = {t}: {fast} vs {generic}");
                    }
                    assert!(same(slm.response(t), generic));
                }
                // 14-bit amplitudes exceed the amplitude table; phases need none,
                // and a binary panel has two levels whatever `bits` says.
                let expect_lookups = matches!(m, Modulation::Phase | Modulation::Binary) || bits <= 12;
                assert_eq!(lookups > 0, expect_lookups, "{m:?} {bits} bits");
            }
        }
        // Renders: the two-pass chunks of phase panels (with pixels on the
        // quantiser's decision boundaries, outside the disc, ±0 and non-finite
        // ones), the per-pixel path of the others, and s = 3.
        let step = TAU / 256.0;
        let mut tricky: Vec<C64> = (0..256)
            .flat_map(|k| [-1e-12, 0.0, 1e-12].map(move |d| C64::from_polar(0.8, (k as f64 + 0.5) * step + d)))
            .collect();
        tricky.extend([
            C64::new(f64::NAN, 0.0),
            C64::new(f64::INFINITY, 1.0),
            C64::new(-0.0, -0.0),
        ]);
        let all: Vec<C64> = tricky.iter().chain(&ts).copied().collect();
        let (rows, cols) = (61, 67);
        let pixels = Array2::from_shape_fn((rows, cols), |(i, j)| all[i * cols + j]);
        let same_or_nan = |a: C64, b: C64| same(a, b) || (a.re.is_nan() && b.re.is_nan());
        for m in [Modulation::TwoSlm, Modulation::Phase, Modulation::Amplitude] {
            let slm = Slm::new(cfg(m, Some(8)), "x").unwrap();
            let one = slm.render(pixels.view(), 1);
            let three = slm.render(pixels.view(), 3);
            for ((i, j), &t) in pixels.indexed_iter() {
                let r = slm.response_of_drive(slm.drive(t));
                assert!(same_or_nan(one[[i, j]], r), "{m:?} t = {t}: {} vs {r}", one[[i, j]]);
                assert!(same_or_nan(three[[3 * i + 1, 3 * j + 1]], r));
            }
        }
    }

    /// Fractional (blurred) phase drives read the lookup table by linear
    /// interpolation: within 2e-8 of exp(iθ) for every bit depth and stroke;
    /// integer drives give the level's phasor exactly.
    #[test]
    fn phase_lookup_interpolation_is_within_its_bound() {
        for bits in [1, 3, 8, 12, 16] {
            for range in [TAU, 1.5 * std::f64::consts::PI, 2.0 * TAU] {
                let slm = Slm::new(
                    SlmConfig {
                        phase_range_rad: range,
                        ..cfg(Modulation::Phase, Some(bits))
                    },
                    "x",
                )
                .unwrap();
                let n = 1usize << bits;
                let step = range / n as f64;
                let mut worst: f64 = 0.0;
                for i in 0..20_000 {
                    let d = (n - 1) as f64 * (i as f64 + 0.37) / 20_000.0;
                    let got = slm.response_of_drive([d, 0.0]);
                    worst = worst.max((got - C64::from_polar(1.0, d * step)).norm());
                }
                assert!(worst < 2e-8, "{bits} bits, range {range}: {worst:e}");
                for k in [0, n / 3, n - 1] {
                    assert_eq!(
                        slm.response_of_drive([k as f64, 0.0]),
                        C64::from_polar(1.0, k as f64 * step)
                    );
                }
            }
        }
    }

    fn invalid_key(e: SimError) -> (String, String) {
        match e {
            SimError::InvalidConfig { key, valid, .. } => (key, valid),
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn validate_names_the_key_and_the_valid_range() {
        let cases: Vec<(SlmConfig, &str, &str)> = vec![
            (cfg(Modulation::Phase, Some(0)), "input_slm.bits", "1..=16"),
            (cfg(Modulation::Phase, Some(17)), "input_slm.bits", "1..=16"),
            (cfg(Modulation::Complex, Some(8)), "input_slm.bits", "unset"),
            (
                SlmConfig {
                    fill_factor: 0.0,
                    ..SlmConfig::default()
                },
                "input_slm.fill_factor",
                "(0, 1]",
            ),
            (
                SlmConfig {
                    fill_factor: 1.2,
                    ..SlmConfig::default()
                },
                "input_slm.fill_factor",
                "(0, 1]",
            ),
            (
                SlmConfig {
                    crosstalk_px: -0.1,
                    ..SlmConfig::default()
                },
                "input_slm.crosstalk_px",
                "[0, 64]",
            ),
            (
                SlmConfig {
                    phase_range_rad: f64::NAN,
                    ..SlmConfig::default()
                },
                "input_slm.phase_range_rad",
                "(0, 4π]",
            ),
            (
                SlmConfig {
                    phase_range_rad: 13.0,
                    ..SlmConfig::default()
                },
                "input_slm.phase_range_rad",
                "(0, 4π]",
            ),
            (
                SlmConfig {
                    refresh_hz: 0.0,
                    ..SlmConfig::default()
                },
                "input_slm.refresh_hz",
                "> 0",
            ),
            (
                SlmConfig {
                    pitch_m: Some(-8e-6),
                    ..SlmConfig::default()
                },
                "input_slm.pitch_m",
                "> 0",
            ),
            (
                SlmConfig {
                    pixels_x: Some(0),
                    ..SlmConfig::default()
                },
                "input_slm.pixels_x",
                "≥ 1",
            ),
            (
                SlmConfig {
                    levels_csv: Some("t.csv".into()),
                    ..SlmConfig::default()
                },
                "input_slm.levels_csv",
                "complex",
            ),
        ];
        for (c, want_key, want_valid) in cases {
            let e = c.validate("input_slm").expect_err(&format!("{c:?} should be invalid"));
            let msg = e.to_string();
            let (k, valid) = invalid_key(e);
            assert_eq!(k, want_key, "{msg}");
            assert!(valid.contains(want_valid), "`{valid}` should mention `{want_valid}`");
        }
        assert!(SlmConfig::default().validate("x").is_ok());
        assert!(cfg(Modulation::Binary, Some(1)).validate("x").is_ok());
        let (k, _) = invalid_key(cfg(Modulation::Phase, Some(0)).validate("").unwrap_err());
        assert_eq!(k, "bits");
    }

    #[test]
    fn levels_count_per_kind() {
        let n = |c: SlmConfig| Slm::new(c, "s").unwrap().levels();
        assert_eq!(n(cfg(Modulation::Complex, None)), None);
        assert_eq!(n(cfg(Modulation::Phase, None)), None);
        assert_eq!(n(cfg(Modulation::Phase, Some(8))), Some(256));
        assert_eq!(n(cfg(Modulation::TwoSlm, Some(4))), Some(16));
        assert_eq!(n(cfg(Modulation::Binary, None)), Some(2));
    }

    #[test]
    fn table_parse_errors_carry_the_line() {
        let line_of = |text: &str| parse_table(text).unwrap_err();
        assert_eq!(line_of("").0, 1);
        assert!(line_of("level,amp,phase\n0,1,0\n").1.contains("header"));
        let (l, m) = line_of("level,amplitude,phase_rad\n0,1,0\n1,0.9,x\n");
        assert_eq!(l, 3);
        assert!(m.contains("phase_rad"), "{m}");
        let (l, m) = line_of("level,amplitude,phase_rad\n0,1,0\n1,-0.2,1\n");
        assert_eq!(l, 3);
        assert!(m.contains("negative"), "{m}");
        let (l, m) = line_of("level,amplitude,phase_rad\n0,1,0\n2,1,1\n");
        assert_eq!(l, 3);
        assert!(m.contains("level 1"), "{m}");
        let (l, m) = line_of("level,amplitude,phase_rad\n0,1\n");
        assert_eq!(l, 2);
        assert!(m.contains("3"), "{m}");
        assert!(line_of("level,amplitude,phase_rad\n\n").1.contains("no level rows"));
        let t = parse_table("\u{feff}level, amplitude, phase_rad\r\n0, 1, 0\r\n1, 0.5, 7\r\n\r\n").unwrap();
        assert_eq!(t.len(), 2);
        assert!((t.wrapped_phase[1] - (7.0 - TAU)).abs() < 1e-15);
    }

    #[test]
    fn short_phase_stroke_sends_unreachable_phases_to_the_nearer_end() {
        let mut c = cfg(Modulation::Phase, Some(2));
        c.phase_range_rad = std::f64::consts::PI; // levels 0, π/4, π/2, 3π/4
        let slm = Slm::new(c.clone(), "s").unwrap();
        let pi = std::f64::consts::PI;
        let level = |phi: f64| slm.drive(C64::from_polar(1.0, phi))[0];
        assert_eq!(level(1.5 * pi), 0.0); // π/2 from 0, 3π/4 from 3π/4
        assert_eq!(level(1.1 * pi), 3.0); // 0.35π from 3π/4, 0.9π from 0
        assert_eq!(level(0.3 * pi), 1.0);
        c.bits = None;
        let slm = Slm::new(c, "s").unwrap();
        assert!((slm.drive(C64::from_polar(1.0, 1.2 * pi))[0] - pi).abs() < 1e-12);
        assert_eq!(slm.drive(C64::from_polar(1.0, 1.8 * pi))[0], 0.0);
    }

    #[test]
    fn stroke_beyond_two_pi_picks_the_nearest_alias() {
        let mut c = cfg(Modulation::Phase, Some(3));
        c.phase_range_rad = 2.0 * TAU; // levels k·π/2, k = 0..7, each phase twice
        let slm = Slm::new(c, "s").unwrap();
        for k in 0..4 {
            let d = slm.drive(C64::from_polar(1.0, k as f64 * TAU / 4.0 + 0.1))[0];
            assert_eq!(d, k as f64, "ties between aliases go to the lower level");
        }
    }

    #[test]
    fn phase_level_is_the_nearest_on_the_circle_for_any_stroke() {
        // Brute force over every level against the O(1) candidate search.
        let mut x = 0.123_f64;
        for range in [0.3, std::f64::consts::PI, TAU, 1.5 * TAU, 2.0 * TAU] {
            for bits in 1..=6 {
                let mut c = cfg(Modulation::Phase, Some(bits));
                c.phase_range_rad = range;
                let slm = Slm::new(c, "s").unwrap();
                let n = 1usize << bits;
                let step = range / n as f64;
                for _ in 0..500 {
                    x = (x * 9301.0 + 0.49297).fract(); // cheap deterministic sequence
                    let phi = x * TAU;
                    let best = (0..n)
                        .map(|k| circular_distance(phi, k as f64 * step))
                        .fold(f64::INFINITY, f64::min);
                    let k = slm.drive(C64::from_polar(1.0, phi))[0];
                    let got = circular_distance(phi, k * step);
                    assert!(
                        (got - best).abs() < 1e-12,
                        "range {range}, {bits} bits, φ {phi}: {got} vs {best}"
                    );
                }
            }
        }
    }

    #[test]
    fn pixel_weights_sum_to_one_per_sample() {
        for (sigma, s) in [(0.3, 1), (1.0, 2), (4.0, 8), (13.0, 3)] {
            let (w, q) = pixel_weights(sigma, s);
            for r in 0..s {
                let sum: f64 = w[r * (2 * q + 1)..(r + 1) * (2 * q + 1)].iter().sum();
                assert!((sum - 1.0).abs() < 1e-14, "σ {sigma} s {s} r {r}: {sum}");
            }
        }
    }

    #[test]
    fn phase_crosstalk_fills_a_wrap_with_intermediate_phases() {
        let mut c = cfg(Modulation::Phase, Some(8));
        c.crosstalk_px = 0.5;
        let slm = Slm::new(c, "s").unwrap();
        // Level 255 (2π − 0.025) next to level 0: optically almost no step, but the drive
        // jumps, so the blur sweeps the phase through the whole stroke.
        let px = ndarray::array![[C64::from_polar(1.0, -0.03), C64::new(1.0, 0.0)]];
        let out = slm.render(px.view(), 8);
        let phases: Vec<f64> = out.row(4).iter().map(|v| wrapped_arg(*v)).collect();
        assert!(
            phases.iter().any(|&p| (p - std::f64::consts::PI).abs() < 0.3),
            "{phases:?}"
        );
    }
}
