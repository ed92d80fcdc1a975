//! Named machines. Each preset says where its numbers come from and which of
//! them are choices or assumptions rather than datasheet values.
//!
//! ## Presets ([`MACHINES`])
//! - `ideal`, `ideal-128`, `ideal-2k`: the noiseless reference machines ([`MachineConfig::ideal`]).
//! - `lcos-pluto2`: Holoeye PLUTO-2 class LCoS panels (amplitude input, amplitude +
//!   phase filter pair),
//!   Hamamatsu ORCA-Fusion class sCMOS, 532 nm DPSS laser.
//! - `lcos-meadowlark`: the same with Meadowlark 1920×1152 (HSP1920) class panels.
//! - `lcos-santec`: the same with santec SLM-200 class panels (10 bit).
//! - `dmd-dlp9000`: TI DLP9000 class DMD input, PLUTO-2 class filter pair,
//!   Phantom v2640 class high-speed camera.
//!
//! ## How the real machines are put together
//! Values are SI. The device numbers sit in the `*_` constants and constructors
//! below, each with its source; these rules turn them into a machine:
//! - **Frame**: the input SLM's full panel (all are even-sided).
//! - **Lens 1** (a design choice): `f1 = W·Δx/λ`, `W` the filter panel's width and
//!   `Δx` the input pitch, so that the Fourier window `λf1/Δx` is exactly as wide as
//!   the real filter panel. When input and filter are the same panel this makes the
//!   matched filter's x pitch `λf1/(NₓΔx)` equal the real filter pitch.
//! - **Lens 2** (a design choice): `f2 = f1·p_cam/Δx`, so that one input pixel images
//!   onto one camera pixel (the only camera pitch [`FourF::new`](crate::FourF::new)
//!   models).
//! - **Filter SLM**: pixel count and pitch left unset, so the machine matches them
//!   to the Fourier grid; only modulation, bit depth, fill factor and refresh rate
//!   come from the device. The real panel is coarser along y than the matched
//!   filter (the window is square, the panel is not) — see each preset.
//! - **Laser power** (an operating point, not the laser's rating): the power that
//!   reaches the input SLM, after attenuation, chosen so that a flat full-scale
//!   input gives [`FULL_SCALE_OF_FULL_WELL`] of the camera's full well. Balanced
//!   homodyne with a reference of the full-scale amplitude peaks at `(1 + 1)² = 4`
//!   times that, which then still fits the well. `camera.full_scale_e` stays unset:
//!   the photon budget follows from the power.
//! - **Filter modulation**: a pair of panels of the filter's class, an amplitude
//!   panel imaged onto a phase panel (`two_slm`), each with the device's bit depth:
//!   a complex filter, so that the machine computes the kernel itself (4–8 % peak
//!   error from the panels' level quantisation, 7–10 % with the camera's noise,
//!   `tests/presets.rs`). A single phase-only panel (`filter_slm.modulation =
//!   "phase"`) shows `exp(i·arg H)` and drops `|H|`: it computes the all-pass
//!   ("phase-only filter") version of the kernel — 110–120 % peak error against
//!   the direct convolution on random signed 5×5 kernels — which is what a
//!   one-panel machine does unless the network is trained for it.
//! - **Detection**: balanced homodyne (the output field is signed, and complex with a
//!   phase-only filter), signed inputs shown as `x⁺` and `x⁻` in two passes (`split`).
//! - **Simulation**: one sample per pixel. The fill factors are real values but only
//!   act when `simulation.oversampling > 1`, which multiplies the cost by its square.

use std::f64::consts::TAU;

use crate::devices::camera::CameraConfig;
use crate::devices::detection::{DetectionConfig, Scheme, SignedInputs};
use crate::devices::laser::LaserConfig;
use crate::devices::slm::{Modulation, SlmConfig};
use crate::devices::timing::TimingConfig;
use crate::machine::{LensConfig, MachineConfig, MisalignmentConfig, PupilConfig, SimulationConfig};

/// Names and one-line descriptions of every machine preset.
pub const MACHINES: &[(&str, &str)] = &[
    (
        "ideal",
        "noiseless 512×512 4f machine, 8 µm pixels, 532 nm, f = 100 mm, matched filter",
    ),
    (
        "ideal-128",
        "noiseless 128×128 4f machine, 8 µm pixels, 532 nm, f = 100 mm: small frames for the Fashion-MNIST-sized networks",
    ),
    (
        "ideal-2k",
        "noiseless 2048×2048 4f machine, 8 µm pixels, 532 nm, f = 100 mm, matched filter",
    ),
    (
        "lcos-pluto2",
        "PLUTO-2 LCoS pair 1920×1080, 8 µm, 8 bit (amplitude in, amplitude + phase filter pair), ORCA-Fusion sCMOS, 532 nm",
    ),
    (
        "lcos-meadowlark",
        "Meadowlark HSP1920 LCoS pair 1920×1152, 9.2 µm, 8 bit, fast LC, ORCA-Fusion sCMOS, 532 nm",
    ),
    (
        "lcos-santec",
        "santec SLM-200 LCoS pair 1920×1200, 8 µm, 10 bit, ORCA-Fusion sCMOS, 532 nm",
    ),
    (
        "dmd-dlp9000",
        "DLP9000 DMD 2560×1600, 7.56 µm, 8 bit planes at 9523 Hz; PLUTO-2 class filter pair, Phantom v2640, 532 nm",
    ),
];

/// The machine preset called `name`, if there is one.
pub fn machine(name: &str) -> Option<MachineConfig> {
    // The ideal machines are not a device: they are the reference every real
    // machine is compared with (exact field read-out, no aperture, no noise).
    let mut m = match name {
        "ideal" => MachineConfig::ideal(512),
        "ideal-128" => MachineConfig::ideal(128),
        "ideal-2k" => MachineConfig::ideal(2048),
        "lcos-pluto2" => lcos_pluto2(),
        "lcos-meadowlark" => lcos_meadowlark(),
        "lcos-santec" => lcos_santec(),
        "dmd-dlp9000" => dmd_dlp9000(),
        _ => return None,
    };
    m.name = name.to_string();
    Some(m)
}

/// Fraction of the camera's full well that a flat full-scale input fills (see the
/// module docs: balanced homodyne peaks at 4× this, 80 % of the well).
pub const FULL_SCALE_OF_FULL_WELL: f64 = 0.2;

// ---------------------------------------------------------------------------
// Laser
// ---------------------------------------------------------------------------

/// Cobolt Samba, a 532 nm single-longitudinal-mode DPSS laser (Cobolt 04-01 Series,
/// now HÜBNER Photonics; product family page
/// <https://hubner-photonics.com/products/lasers/single-frequency-lasers/>,
/// "Cobolt 04-01 Series" datasheet). Rated powers of tens of mW up to about 1 W;
/// the machines use far less on the SLM (see [`FULL_SCALE_OF_FULL_WELL`]).
///
/// Noise: the datasheet quotes an RMS intensity noise over 20 Hz–20 MHz, not a
/// RIN density. Taking its upper bound, 0.3 % rms (value recalled from the
/// datasheet, not re-read in a stored copy), spread evenly over the band:
/// `10·log10(0.003² / 20 MHz) = −123.5 dB/Hz`. This is pessimistic: a
/// single-frequency DPSS laser is quieter than that at the kHz frequencies an
/// exposure of ~1 ms sees (−130 to −140 dB/Hz is typical).
fn cobolt_samba_532() -> LaserConfig {
    LaserConfig {
        wavelength_m: 532e-9,
        power_w: None, // set per machine from the photon budget
        rin_db_per_hz: Some(-123.5),
    }
}

// ---------------------------------------------------------------------------
// SLMs
// ---------------------------------------------------------------------------

/// Holoeye PLUTO-2 phase-only LCoS (Holoeye product page and datasheet,
/// <https://holoeye.com/slm-pluto-phase-only/>): 1920×1080 pixels, 8.0 µm pitch,
/// fill factor 93 %, 8-bit addressing (256 grey levels), 60 Hz frame rate. The
/// VIS panels reach more than 2π at 532 nm (Holoeye quotes 6.9π at 530 nm for
/// PLUTO-2.1-VIS-016), so a calibrated look-up table gives exactly 2π over the
/// 256 levels; the model uses uniform levels (a measured table would go in
/// `levels_csv`).
const PLUTO2_PIXELS: (usize, usize) = (1920, 1080);
const PLUTO2_PITCH_M: f64 = 8.0e-6;
const PLUTO2_FILL: f64 = 0.93;
const PLUTO2_BITS: u32 = 8;
const PLUTO2_REFRESH_HZ: f64 = 60.0;

/// Meadowlark Optics 1920×1152 analog phase LCoS, high-speed (HSP1920) family
/// (Meadowlark "1920 x 1152 Spatial Light Modulator" datasheet,
/// <https://www.meadowlark.com/>; parts such as HSP1920-1064-HSP8 and
/// HSP1920-488-800): 1920×1152 pixels, 9.2 µm pitch, fill factor 95.7 %, 8-bit
/// drive through the high-speed PCIe controller (the Blink SDK reports 8 bits).
/// Refresh: ASSUMED 400 Hz. Meadowlark sells this panel for its fast liquid
/// crystal (several hundred hertz with the HSP controller; the exact rate depends
/// on wavelength and LC response), but the figure was not found in a stored copy of
/// the datasheet — check it against the part's datasheet.
const MEADOWLARK_PIXELS: (usize, usize) = (1920, 1152);
const MEADOWLARK_PITCH_M: f64 = 9.2e-6;
const MEADOWLARK_FILL: f64 = 0.957;
const MEADOWLARK_BITS: u32 = 8;
const MEADOWLARK_REFRESH_HZ: f64 = 400.0;

/// santec SLM-200 phase-only LCoS (santec SLM-200 datasheet, <https://www.santec.com/>;
/// santec "LCOS-SLM Programmer's Guide", Doc. SS-19-0719-05 Ver. 2.5, 2022, whose
/// `SLM_Disp_Data` example writes a 1920×1200 frame and whose grey scale runs
/// 0–1023 for 0–2π, with 60 Hz and 120 Hz models): 1920×1200 pixels, 8.0 µm
/// pitch, 10-bit phase (1024 levels over 2π), 60 Hz. Fill factor: ASSUMED 92 %
/// (typical of 8 µm LCoS; not found in a stored santec document).
const SANTEC_PIXELS: (usize, usize) = (1920, 1200);
const SANTEC_PITCH_M: f64 = 8.0e-6;
const SANTEC_FILL: f64 = 0.92;
const SANTEC_BITS: u32 = 10;
const SANTEC_REFRESH_HZ: f64 = 60.0;

/// TI DLP9000 digital micromirror device (TI datasheet DLPS036,
/// <https://www.ti.com/lit/ds/symlink/dlp9000.pdf>, product page
/// <https://www.ti.com/product/DLP9000>) driven by the DLPC900 controller (TI
/// datasheet DLPS037, <https://www.ti.com/lit/ds/symlink/dlpc900.pdf>): 2560×1600
/// micromirrors, 7.56 µm pitch, ±12° tilt; binary patterns at up to 9523 Hz.
/// Fill factor: ASSUMED 92 % (the mirrors are separated by a sub-micron gap; TI
/// does not state a fill factor in the sections read here).
const DLP9000_PIXELS: (usize, usize) = (2560, 1600);
const DLP9000_PITCH_M: f64 = 7.56e-6;
const DLP9000_FILL: f64 = 0.92;
const DLP9000_BINARY_RATE_HZ: f64 = 9523.0;
/// Grey-level depth of the input: with `binary` modulation `bits` is the number of
/// bit planes the machine shows per grey image, one binary pass each. 8 planes at
/// the DLPC900's 9523 Hz binary rate give about 1190 8-bit images per second.
const DLP9000_BIT_PLANES: u32 = 8;

/// Two LCoS panels of one class as the Fourier-plane filter, an amplitude panel
/// imaged onto a phase panel (phase stroke 2π at the design wavelength); pixel
/// count and pitch unset (matched to the Fourier grid).
fn filter_pair(bits: u32, fill_factor: f64, refresh_hz: f64) -> SlmConfig {
    SlmConfig {
        modulation: Modulation::TwoSlm,
        bits: Some(bits),
        phase_range_rad: TAU,
        fill_factor,
        refresh_hz,
        ..SlmConfig::default()
    }
}

/// An LCoS of the same class used as the input amplitude modulator: the usual
/// amplitude mode of a phase panel — light polarised at 45° to the liquid-crystal
/// director and read through a crossed analyser, so that the phase retardance
/// becomes an amplitude. The real amplitude per grey level is `sin(Γ/2)` of the
/// retardance `Γ`, made linear only by a calibration; the model uses uniform levels.
fn amplitude_input(pixels: (usize, usize), pitch_m: f64, bits: u32, fill_factor: f64, refresh_hz: f64) -> SlmConfig {
    SlmConfig {
        pixels_x: Some(pixels.0),
        pixels_y: Some(pixels.1),
        pitch_m: Some(pitch_m),
        modulation: Modulation::Amplitude,
        bits: Some(bits),
        fill_factor,
        refresh_hz,
        ..SlmConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Cameras
// ---------------------------------------------------------------------------

/// Hamamatsu ORCA-Fusion C14440-20UP, a Gen III sCMOS (product page
/// <https://www.hamamatsu.com/eu/en/product/cameras/cmos-cameras/C14440-20UP.html>;
/// Hamamatsu technical note "ORCA-Fusion / ORCA-Fusion BT Gen III Scientific CMOS
/// Camera", Aug. 2021, §7 Specifications):
/// - 2304×2304 pixels of 6.5 µm, 16-bit output;
/// - full well 15 000 e⁻;
/// - read noise: 1.4 e⁻ rms, the value quoted for the faster read-out that gives
///   the full frame rate — chosen over the ultra-quiet scan's 0.7 e⁻, which runs at
///   only a few frames per second;
/// - 89.1 frames/s at full frame (CoaXPress); a 1080–1200-row sub-array reads
///   about twice as fast, which the preset does not claim;
/// - dark current 0.5 e⁻/pixel/s (air-cooled sensor);
/// - QE about 80 % near 532 nm (peak of the QE curve, read approximately);
/// - conversion gain 0.24 e⁻/ADU and offset 100 ADU: ASSUMED from a published user
///   calibration of this model, not from the datasheet; they keep the ADC above
///   the full well (0.24 × (65535 − 100) ≈ 15 700 e⁻).
///
/// Pixel non-uniformity (PRNU, DSNU) is left at 0: Hamamatsu corrects it in the
/// camera and quotes it well below the shot noise at these signals.
fn orca_fusion() -> CameraConfig {
    CameraConfig {
        pixels_x: Some(2304),
        pixels_y: Some(2304),
        pitch_m: Some(6.5e-6),
        quantum_efficiency: 0.8,
        exposure_s: 1e-3,
        full_scale_e: None,
        dark_current_e_per_s: 0.5,
        read_noise_e: 1.4,
        full_well_e: Some(15_000.0),
        gain_e_per_adu: 0.24,
        bias_adu: 100.0,
        adc_bits: Some(16),
        readout_s: 1.0 / 89.1,
        max_frame_rate_hz: Some(89.1),
        prnu_rms: 0.0,
        dsnu_rms_e: 0.0,
        fixed_pattern_seed: 0,
    }
}

/// Vision Research Phantom v2640, a high-speed CMOS camera (product page
/// <https://www.phantomhighspeed.com/>, "Phantom v2640" datasheet; resolution and
/// rates also in Elektor's product news, <https://elektormagazine.fr/>): 2048×1952
/// pixels of 13.5 µm, 12-bit, 6600 frames/s at full resolution (11 750 at
/// 1920×1080), global shutter; read noise 7.2 e⁻ (the "lowest noise floor" Vision
/// Research quotes for it, recalled, not re-read here).
///
/// ASSUMED (not found in a vendor document here): full well 12 000 e⁻, QE 50 % at
/// 532 nm (front-illuminated large-pixel high-speed sensor), conversion gain such
/// that the 12-bit ADC spans the full well (12 000/4095 e⁻/ADU), bias 64 ADU (so
/// that read noise is not clipped at 0), dark current negligible at 100 µs.
///
/// The sensor is 2048 pixels wide, narrower than the DMD frame's 2560 pixel images,
/// so the preset leaves `pixels_x`/`pixels_y` unset (a camera as large as the
/// frame); a real v2640 sees the central 2048 columns.
fn phantom_v2640() -> CameraConfig {
    let full_well_e = 12_000.0;
    CameraConfig {
        pixels_x: None,
        pixels_y: None,
        pitch_m: Some(13.5e-6),
        quantum_efficiency: 0.5,
        // One DLPC900 binary pattern lasts 1/9523 s = 105 µs.
        exposure_s: 100e-6,
        full_scale_e: None,
        dark_current_e_per_s: 0.0,
        read_noise_e: 7.2,
        full_well_e: Some(full_well_e),
        gain_e_per_adu: full_well_e / 4095.0,
        bias_adu: 64.0,
        adc_bits: Some(12),
        readout_s: 1.0 / 6600.0,
        max_frame_rate_hz: Some(6600.0),
        prnu_rms: 0.0,
        dsnu_rms_e: 0.0,
        fixed_pattern_seed: 0,
    }
}

// ---------------------------------------------------------------------------
// Assembly
// ---------------------------------------------------------------------------

/// Balanced homodyne read-out, signed inputs split into `x⁺` and `x⁻`.
fn homodyne_split() -> DetectionConfig {
    DetectionConfig {
        scheme: Scheme::BalancedHomodyne,
        signed_inputs: SignedInputs::Split,
        ..DetectionConfig::default()
    }
}

/// A real machine from its devices (see the module docs for the rules):
/// `filter_width_m` is the width of the real filter panel.
fn real_machine(
    laser: LaserConfig,
    input_slm: SlmConfig,
    filter_slm: SlmConfig,
    filter_width_m: f64,
    camera: CameraConfig,
) -> MachineConfig {
    let dx = input_slm.pitch_m.expect("real presets set the input pitch");
    let (nx, ny) = (
        input_slm.pixels_x.expect("real presets set the input frame"),
        input_slm.pixels_y.expect("real presets set the input frame"),
    );
    let p_cam = camera.pitch_m.expect("real presets set the camera pitch");
    let f1 = filter_width_m * dx / laser.wavelength_m;
    let f2 = f1 * p_cam / dx;
    // Power on the input SLM for the chosen photon budget: a flat full-scale input
    // spreads P·t/(hc/λ) photons over the nx·ny pixels.
    let full_well = camera.full_well_e.expect("real presets set the full well");
    let photons = FULL_SCALE_OF_FULL_WELL * full_well / camera.quantum_efficiency;
    let power_w = photons * laser.photon_energy_j() * (nx * ny) as f64 / camera.exposure_s;
    MachineConfig {
        name: String::new(), // set by `machine`
        laser: LaserConfig {
            power_w: Some(power_w),
            ..laser
        },
        simulation: SimulationConfig::default(),
        input_slm,
        lens1: LensConfig { focal_length_m: f1 },
        lens2: LensConfig { focal_length_m: f2 },
        filter_slm,
        pupil: PupilConfig::default(),
        misalignment: MisalignmentConfig::default(),
        camera,
        detection: homodyne_split(),
        timing: TimingConfig::default(),
    }
}

/// `lcos-pluto2`: two PLUTO-2 class panels, the input in amplitude mode and the
/// filter in phase mode, imaged onto an ORCA-Fusion class sCMOS.
///
/// Derived: f1 = 1920·8 µm·8 µm/532 nm = 231.0 mm (matched filter pitch along x is
/// then the panel's 8 µm; along y the matched filter has 1080 rows of 14.2 µm
/// spanning 15.36 mm where the real panel is 8.64 mm tall); f2 = f1·6.5/8 =
/// 187.7 mm. The 1920×1080 pixel images fit the 2304×2304 sensor. Laser power on
/// the input SLM ≈ 2.9 µW for 1 ms exposures (3000 e⁻ full scale).
fn lcos_pluto2() -> MachineConfig {
    real_machine(
        cobolt_samba_532(),
        amplitude_input(
            PLUTO2_PIXELS,
            PLUTO2_PITCH_M,
            PLUTO2_BITS,
            PLUTO2_FILL,
            PLUTO2_REFRESH_HZ,
        ),
        filter_pair(PLUTO2_BITS, PLUTO2_FILL, PLUTO2_REFRESH_HZ),
        PLUTO2_PIXELS.0 as f64 * PLUTO2_PITCH_M,
        orca_fusion(),
    )
}

/// `lcos-meadowlark`: two Meadowlark 1920×1152 class panels (amplitude input,
/// phase filter), ORCA-Fusion class sCMOS.
///
/// Derived: f1 = 1920·9.2 µm·9.2 µm/532 nm = 305.5 mm, f2 = f1·6.5/9.2 = 215.8 mm.
/// The camera (89 frames/s at full frame) and not the SLM limits the frame rate.
/// Laser power on the input SLM ≈ 3.1 µW for 1 ms exposures.
fn lcos_meadowlark() -> MachineConfig {
    real_machine(
        cobolt_samba_532(),
        amplitude_input(
            MEADOWLARK_PIXELS,
            MEADOWLARK_PITCH_M,
            MEADOWLARK_BITS,
            MEADOWLARK_FILL,
            MEADOWLARK_REFRESH_HZ,
        ),
        filter_pair(MEADOWLARK_BITS, MEADOWLARK_FILL, MEADOWLARK_REFRESH_HZ),
        MEADOWLARK_PIXELS.0 as f64 * MEADOWLARK_PITCH_M,
        orca_fusion(),
    )
}

/// `lcos-santec`: two santec SLM-200 class panels (amplitude input, 10-bit phase
/// filter), ORCA-Fusion class sCMOS.
///
/// Derived: f1 = 231.0 mm, f2 = 187.7 mm as for `lcos-pluto2` (same pitch and
/// width). Laser power on the input SLM ≈ 3.2 µW for 1 ms exposures.
fn lcos_santec() -> MachineConfig {
    real_machine(
        cobolt_samba_532(),
        amplitude_input(
            SANTEC_PIXELS,
            SANTEC_PITCH_M,
            SANTEC_BITS,
            SANTEC_FILL,
            SANTEC_REFRESH_HZ,
        ),
        filter_pair(SANTEC_BITS, SANTEC_FILL, SANTEC_REFRESH_HZ),
        SANTEC_PIXELS.0 as f64 * SANTEC_PITCH_M,
        orca_fusion(),
    )
}

/// `dmd-dlp9000`: a DLP9000 class DMD shows the input as 8 binary bit planes, a
/// PLUTO-2 class phase LCoS filters, a Phantom v2640 class camera reads 100 µs
/// exposures.
///
/// Derived: f1 = 1920·8 µm·7.56 µm/532 nm = 218.3 mm, so the Fourier window is
/// as wide as the 15.36 mm PLUTO-2 panel (the matched filter then has 2560
/// columns of 6 µm where the real panel has 1920 of 8 µm, and 1600 rows of 9.6 µm
/// over 15.36 mm where the panel is 8.64 mm tall); f2 = f1·13.5/7.56 = 389.8 mm.
/// Laser power on the DMD ≈ 73 µW (2400 e⁻ full scale at QE 0.5 in 100 µs).
/// The camera (6600 frames/s at full sensor) is slower than the DMD's 9523
/// patterns/s, so it, not the DMD, sets the pass rate.
///
/// Timing: patterns reach a DLPC900-class controller as 24-bit video at up to
/// 120 Hz, each frame carrying 24 binary patterns: 2560·1600·24·120 ≈ 11.8 Gbit/s
/// (from memory of TI's DLPC900 documentation, unverified), 1 bit per pixel per
/// pattern. The camera's power is larger than an sCMOS's (300 W assumed for a
/// Phantom-class high-speed camera).
fn dmd_dlp9000() -> MachineConfig {
    let input = SlmConfig {
        pixels_x: Some(DLP9000_PIXELS.0),
        pixels_y: Some(DLP9000_PIXELS.1),
        pitch_m: Some(DLP9000_PITCH_M),
        modulation: Modulation::Binary,
        bits: Some(DLP9000_BIT_PLANES),
        fill_factor: DLP9000_FILL,
        refresh_hz: DLP9000_BINARY_RATE_HZ,
        ..SlmConfig::default()
    };
    let mut m = real_machine(
        cobolt_samba_532(),
        input,
        filter_pair(PLUTO2_BITS, PLUTO2_FILL, PLUTO2_REFRESH_HZ),
        PLUTO2_PIXELS.0 as f64 * PLUTO2_PITCH_M,
        phantom_v2640(),
    );
    m.timing.link_bits_per_s = (DLP9000_PIXELS.0 * DLP9000_PIXELS.1) as f64 * 24.0 * 120.0;
    m.timing.input_slm_power_w = 10.0;
    m.timing.camera_power_w = 300.0;
    m
}
