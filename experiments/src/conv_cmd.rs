//! `fourf conv`: convolve `.npy` maps on a simulated 4f machine, and `fourf presets`.
//!
//! Operands: the input is a 2-D map or a 3-D stack of maps; the kernel is a 2-D
//! kernel (applied to every map), a 3-D stack with one kernel per map, or — for a
//! 2-D input — a 3-D stack of kernels all applied to that one input. The output
//! is 3-D when either operand is, and is written in the input's dtype.
//!
//! A CNN layer: a 4-D kernel bank `[C_out, C_in, K, L]` (PyTorch's `Conv2d`
//! weight) with a 3-D input `[C_in, H, W]` (or a 2-D one when `C_in = 1`) gives
//! the `C_out` maps `out[o] = Σ_i x[i] ⊛ w[o][i]`, channel-tiled so that the light
//! sums the channels (`fourf_sim::channels`); the report says how.
//!
//! Nothing is written until the convolution has succeeded; then the plane
//! pictures, and the output last, each file atomically, so that an output file
//! means a finished run.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use fourf_sim::planner::PlanStats;
use fourf_sim::{presets, ChannelLayout, ChannelPlan, ChannelShape, ConvJob, FourF, Mode, Op, Planner, PlannerConfig};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array2, Axis};
use serde::Serialize;

use crate::images::{write_png, Colormap, Scale, DB60};
use crate::machine_file::load_machine;
use crate::npy::{read_npy, read_npy_kernels, write_npy, MapStack};

/// Runs of at least this many frames show a progress bar.
const PROGRESS_MIN_FRAMES: usize = 8;

/// What `fourf conv` was asked to do (its command-line arguments).
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ConvArgs {
    /// Input: a 2-D map or a 3-D stack of maps (float32 or float64 .npy).
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Kernel: a 2-D kernel, a 3-D stack (one per map, or many for one map), or a
    /// 4-D bank `[C_out, C_in, K, L]` for a CNN layer over a `[C_in, H, W]` input.
    #[arg(long, value_name = "K.npy")]
    pub kernel: PathBuf,
    /// Which outputs to keep.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Correlate instead of convolving.
    #[arg(long)]
    pub correlate: bool,
    /// Machine preset (see `fourf presets`) or a machine .toml file.
    #[arg(long, value_name = "PRESET|FILE.toml", default_value = "ideal")]
    pub machine: String,
    /// Override a machine setting, e.g. `--set lens2.focal_length_m=0.2` (repeatable).
    #[arg(long = "set", value_name = "path=value")]
    pub sets: Vec<String>,
    /// Seed of the machine's random processes (recorded; the ideal machine is
    /// noiseless).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Output .npy (same dtype as the input).
    #[arg(long, value_name = "Y.npy")]
    pub out: PathBuf,
    /// Write PNG pictures of the planes of frame 0 into this directory.
    #[arg(long, value_name = "DIR")]
    pub planes: Option<PathBuf>,
}

/// What `fourf conv` did (printed as JSON with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct ConvReport {
    /// The output file.
    pub output: PathBuf,
    /// Input shape as in its file.
    pub input_shape: Vec<usize>,
    /// Kernel shape as in its file.
    pub kernel_shape: Vec<usize>,
    /// Output shape as written.
    pub output_shape: Vec<usize>,
    /// Which outputs were kept.
    pub mode: Mode,
    /// Convolution or correlation.
    pub op: Op,
    /// The machine's name.
    pub machine: String,
    /// The machine's frame `[ny, nx]` in SLM pixels.
    pub frame_shape: [usize; 2],
    /// Frames, tiles, filters and fill factor of the plan.
    pub plan: PlanStats,
    /// Optical passes (frames × signed-input passes × bit planes).
    pub passes: usize,
    /// Camera exposures (passes × exposures per pass of the detection scheme).
    pub exposures: usize,
    /// Seconds spent planning and executing the frames.
    pub wall_s: f64,
    /// The seed.
    pub seed: u64,
    /// Directory of the plane pictures and arrays, if written.
    pub planes: Option<PathBuf>,
    /// How a 4-D kernel bank (a CNN layer) was channel-tiled; absent otherwise.
    pub channel_tiling: Option<ChannelTiling>,
    /// The `.npy` fields of frame 0 in that directory: each plane's file, shape and
    /// sample pitch (also written there as `planes.json`).
    pub plane_arrays: Option<PlanesInfo>,
}

/// How `fourf conv` laid out a CNN layer (see `fourf_sim::channels`).
#[derive(Debug, Clone, Serialize)]
pub struct ChannelTiling {
    /// Input channels `C_in`.
    pub input_channels: usize,
    /// Output channels `C_out`.
    pub output_channels: usize,
    /// The layout: channel block, outputs per frame, slot pitch, groups.
    pub layout: ChannelLayout,
    /// Share of the channel sum's additions done by the light.
    pub optical_fraction: f64,
}

/// The sampled fields of one frame written by `--planes`, for checking the optics
/// against another tool.
#[derive(Debug, Clone, Serialize)]
pub struct PlanesInfo {
    /// Vacuum wavelength, metres.
    pub wavelength_m: f64,
    /// Focal lengths of lens 1 and lens 2, metres.
    pub focal_lengths_m: [f64; 2],
    /// Unit of the complex field samples.
    pub field_unit: String,
    /// Where the optical axis is.
    pub axis: &'static str,
    /// One entry per array.
    pub arrays: Vec<PlaneArray>,
}

/// One array of [`PlanesInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct PlaneArray {
    /// File name in the `--planes` directory.
    pub file: &'static str,
    /// What it holds.
    pub plane: &'static str,
    /// NumPy dtype.
    pub dtype: &'static str,
    /// Samples `[y, x]`.
    pub shape: [usize; 2],
    /// Sample pitch `[y, x]`, metres (cycles/m are `u / λf` in the Fourier plane).
    pub pitch_m: [f64; 2],
    /// Unit of its samples.
    pub unit: String,
}

impl ConvReport {
    /// A short human summary (a few lines).
    pub fn summary(&self) -> String {
        let p = &self.plan;
        format!(
            "wrote {} ({}) — {} {} on `{}`\n{} frame(s) of {}×{}, {} tile(s), {} filter(s), {:.1} % utilisation, {} pass(es), {} exposure(s), {:.3} s",
            self.output.display(),
            shape_str(&self.output_shape),
            self.mode,
            match self.op {
                Op::Convolution => "convolution",
                Op::Correlation => "correlation",
            },
            self.machine,
            p.frames,
            self.frame_shape[0],
            self.frame_shape[1],
            p.tiles,
            p.filters,
            100.0 * p.utilisation,
            self.passes,
            self.exposures,
            self.wall_s,
        ) + &self.channel_tiling.as_ref().map_or(String::new(), |c| {
            let l = &c.layout;
            format!(
                "\nchannel tiling: {} input channels in blocks of {}×{} ({} group(s)), {} output channel(s) per frame; {:.1} % of the channel sum done by the light",
                c.input_channels,
                l.channels[0],
                l.channels[1],
                l.groups,
                l.outputs_per_frame().min(c.output_channels),
                100.0 * c.optical_fraction
            )
        })
    }
}

fn shape_str(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×")
}

/// Runs `fourf conv`.
pub fn run_conv(args: &ConvArgs) -> anyhow::Result<ConvReport> {
    crate::atomic::check_output("--out", &args.out, &[&args.input, &args.kernel])?;
    if let Some(dir) = &args.planes {
        if dir.exists() && !dir.is_dir() {
            anyhow::bail!("--planes {}: exists and is not a directory", dir.display());
        }
    }
    let input = read_npy(&args.input)?;
    let (kernel, bank) = read_npy_kernels(&args.kernel)?;
    for (flag, path, maps) in [("--input", &args.input, &input), ("--kernel", &args.kernel, &kernel)] {
        if let Some((i, v)) = maps.data.indexed_iter().find(|(_, v)| !v.is_finite()) {
            // A 4-D bank's kernels are named by their output and input channel.
            let which = match bank.filter(|&c| flag == "--kernel" && c > 0) {
                Some(c_out) => {
                    let c_in = maps.data.len_of(Axis(0)) / c_out;
                    format!("kernel w[{}][{}]", i.0 / c_in.max(1), i.0 % c_in.max(1))
                }
                None => format!("map {}", i.0),
            };
            anyhow::bail!(
                "{flag} {}: {which} holds a non-finite value ({v} at row {}, column {}); give finite samples",
                path.display(),
                i.1,
                i.2
            );
        }
    }
    let machine = FourF::new(load_machine(&args.machine, &args.sets)?)?;
    if let Some(w) = machine.saturation_warning() {
        eprintln!("warning: {w}");
    }
    let name = &machine.config().name;
    let op = if args.correlate {
        Op::Correlation
    } else {
        Op::Convolution
    };

    if let Some(c_out) = bank {
        return run_layer(args, &machine, input, kernel, c_out, op);
    }
    let (n_in, n_k) = (input.data.len_of(Axis(0)), kernel.data.len_of(Axis(0)));
    let pairs: Vec<(usize, usize)> = match (input.stacked, kernel.stacked) {
        (false, _) => (0..n_k).map(|k| (0, k)).collect(),
        (true, false) => (0..n_in).map(|i| (i, 0)).collect(),
        (true, true) if n_in == n_k => (0..n_in).map(|i| (i, i)).collect(),
        (true, true) => bail!(
            "{} holds {n_in} maps but {} holds {n_k} kernels; give one 2-D kernel, or a stack of {n_in} kernels (one per map)",
            args.input.display(),
            args.kernel.display()
        ),
    };
    if pairs.is_empty() {
        return Err(empty_operand(args, input.data.is_empty()));
    }
    let jobs: Vec<ConvJob> = pairs
        .iter()
        .map(|&(i, k)| {
            ConvJob::new(
                input.data.index_axis(Axis(0), i),
                kernel.data.index_axis(Axis(0), k),
                args.mode,
                op,
            )
        })
        .collect();

    let start = Instant::now();
    let context = || {
        format!(
            "{} with kernel {} on machine `{}`",
            args.input.display(),
            args.kernel.display(),
            name
        )
    };
    let plan = Planner::new(machine.frame_shape(), PlannerConfig::default())
        .plan(&jobs)
        .with_context(context)?;
    // A progress bar on stderr for runs of many frames (hidden when stderr is not
    // a terminal).
    let bar = frame_bar(plan.frame_count());
    let run = plan
        .execute_with_progress(&machine, &jobs, args.seed, &|| bar.inc(1))
        .with_context(context)?;
    bar.finish_and_clear();
    let wall_s = start.elapsed().as_secs_f64();
    let outputs = run.outputs;

    let out = output_stack(&outputs, input.stacked || kernel.stacked, input.dtype, name)?;
    // The data first, then the pictures, all five or none.
    write_npy(&args.out, &out)?;
    let planes_info = write_planes_of(args, &machine, || Ok(plan.frame_planes(0, &jobs)))?;

    let frame = machine.frame_shape();
    Ok(ConvReport {
        output: args.out.clone(),
        input_shape: input.file_shape(),
        kernel_shape: kernel.file_shape(),
        output_shape: out.file_shape(),
        mode: args.mode,
        op,
        machine: name.clone(),
        frame_shape: [frame.0, frame.1],
        plan: plan.stats(),
        passes: run.passes,
        exposures: run.exposures,
        wall_s,
        seed: args.seed,
        planes: args.planes.clone(),
        plane_arrays: planes_info,
        channel_tiling: None,
    })
}

/// The error for an empty input (`input_empty`) or kernel file.
fn empty_operand(args: &ConvArgs, input_empty: bool) -> anyhow::Error {
    let empty = if input_empty { &args.input } else { &args.kernel };
    anyhow::anyhow!(
        "{}: the stack is empty; give at least one map and one kernel",
        empty.display()
    )
}

/// The outputs as a stack to write, refused when a value is not finite (a NaN
/// file with exit 0 would be a silent wrong answer; float32 files as they will be
/// stored).
fn output_stack(
    outputs: &[Array2<f64>],
    stacked: bool,
    dtype: crate::npy::Dtype,
    name: &str,
) -> anyhow::Result<MapStack> {
    let views: Vec<_> = outputs.iter().map(|o| o.view()).collect();
    let out = MapStack {
        data: ndarray::stack(Axis(0), &views).expect("all outputs share a shape"),
        stacked,
        dtype,
    };
    let stored = |v: f64| {
        if out.dtype == crate::npy::Dtype::F32 {
            f64::from(v as f32)
        } else {
            v
        }
    };
    if let Some((i, v)) = out.data.indexed_iter().find(|(_, v)| !stored(**v).is_finite()) {
        anyhow::bail!(
            "output map {} holds a non-finite value ({v} at row {}, column {}) on `{name}`: its settings overflow \
             (e.g. camera gain, full scale, laser power); nothing written",
            i.0,
            i.1,
            i.2
        );
    }
    Ok(out)
}

/// Writes `--planes` (when asked) from frame 0's input and kernel planes.
fn write_planes_of(
    args: &ConvArgs,
    machine: &FourF,
    planes: impl FnOnce() -> anyhow::Result<(Array2<f64>, Array2<f64>)>,
) -> anyhow::Result<Option<PlanesInfo>> {
    match &args.planes {
        Some(dir) => {
            let (field, kplane) = planes()?;
            let planes = trace_planes(machine, field, kplane);
            write_planes(dir, &planes)?;
            Ok(Some(planes.info))
        }
        None => Ok(None),
    }
}

/// A progress bar on stderr for runs of many frames (hidden when stderr is not a
/// terminal, or for few frames).
fn frame_bar(frames: usize) -> ProgressBar {
    let bar = if frames >= PROGRESS_MIN_FRAMES {
        ProgressBar::new(frames as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} frames, {elapsed} elapsed, ~{eta} left")
            .expect("a valid template"),
    );
    bar
}

/// `fourf conv` with a 4-D kernel bank: one CNN layer, channel-tiled.
fn run_layer(
    args: &ConvArgs,
    machine: &FourF,
    input: MapStack,
    kernel: MapStack,
    c_out: usize,
    op: Op,
) -> anyhow::Result<ConvReport> {
    let name = &machine.config().name;
    if input.data.is_empty() || kernel.data.is_empty() {
        return Err(empty_operand(args, input.data.is_empty()));
    }
    let (n_kernels, kh, kw) = kernel.data.dim();
    let c_in = n_kernels.checked_div(c_out).unwrap_or(0);
    let kshape = vec![c_out, c_in, kh, kw];
    let n_maps = input.data.len_of(Axis(0));
    if n_maps != c_in || (!input.stacked && c_in != 1) {
        bail!(
            "{} holds {} but the kernel bank {} is {c_out} × {c_in} × {} × {} (C_out × C_in × K × L); give a \
             [{c_in}, H, W] input{}",
            args.input.display(),
            if input.stacked {
                format!("{n_maps} maps")
            } else {
                "one 2-D map".to_string()
            },
            args.kernel.display(),
            kshape[2],
            kshape[3],
            if c_in == 1 { " or a 2-D map" } else { "" }
        );
    }
    let (_, h, w) = input.data.dim();
    let shape = ChannelShape {
        batch: 1,
        inputs: c_in,
        outputs: c_out,
        input: [h, w],
        kernel: [kshape[2], kshape[3]],
        mode: args.mode,
    };
    let context = || {
        format!(
            "{} with kernel bank {} on machine `{}`",
            args.input.display(),
            args.kernel.display(),
            name
        )
    };
    let start = Instant::now();
    let plan = ChannelPlan::new(machine.frame_shape(), shape, None, true).with_context(context)?;
    let x = vec![(0..c_in).map(|i| input.data.index_axis(Axis(0), i)).collect::<Vec<_>>()];
    let wk: Vec<Vec<_>> = (0..c_out)
        .map(|o| {
            (0..c_in)
                .map(|i| kernel.data.index_axis(Axis(0), o * c_in + i))
                .collect()
        })
        .collect();
    let bar = frame_bar(plan.frames.len());
    let run = plan
        .execute_with_progress(machine, &x, &wk, op, args.seed, &|| bar.inc(1))
        .with_context(context)?;
    bar.finish_and_clear();
    let wall_s = start.elapsed().as_secs_f64();
    let outputs = run.outputs.into_iter().next().expect("one image");
    let out = output_stack(&outputs, true, input.dtype, name)?;
    write_npy(&args.out, &out)?;
    let planes_info = write_planes_of(args, machine, || {
        plan.frame_planes(0, &x, &wk, op).with_context(context)
    })?;
    let l = plan.layout;
    let frame = machine.frame_shape();
    let pairs = |f: &fourf_sim::channels::ChannelFrame| f.channels.len() * f.outputs.len() * f.images.len();
    let carried: usize = plan.frames.iter().map(|f| f.channels.len() * f.images.len()).sum();
    Ok(ConvReport {
        output: args.out.clone(),
        input_shape: input.file_shape(),
        kernel_shape: kshape,
        output_shape: out.file_shape(),
        mode: args.mode,
        op,
        machine: name.clone(),
        frame_shape: [frame.0, frame.1],
        plan: PlanStats {
            frames: run.frames,
            tiles: plan.frames.iter().map(pairs).sum(),
            filters: l.filters(),
            utilisation: (carried * h * w) as f64 / (frame.0 * frame.1 * plan.frames.len().max(1)) as f64,
        },
        passes: run.passes,
        exposures: run.exposures,
        wall_s,
        seed: args.seed,
        planes: args.planes.clone(),
        plane_arrays: planes_info,
        channel_tiling: Some(ChannelTiling {
            input_channels: c_in,
            output_channels: c_out,
            layout: l,
            optical_fraction: l.optical_fraction(&shape),
        }),
    })
}

/// A picture to write: file name, data, scaling, colormap.
type Picture = (&'static str, Array2<f64>, Scale, Colormap);

/// What `--planes` writes: pictures, `.npy` arrays (file name, bytes) and their
/// description.
struct Planes {
    pictures: Vec<Picture>,
    arrays: Vec<(&'static str, Vec<u8>)>,
    info: PlanesInfo,
}

/// Writes `planes` into `dir` complete or not at all: into a hidden sibling
/// directory first, then moved in by renames (into a new `dir` by one rename).
fn write_planes(dir: &std::path::Path, planes: &Planes) -> anyhow::Result<()> {
    let name = dir
        .file_name()
        .map_or("planes".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let json = serde_json::to_vec_pretty(&planes.info).expect("plain data serialises");
    let mut files: Vec<&str> = planes.pictures.iter().map(|p| p.0).collect();
    files.extend(planes.arrays.iter().map(|a| a.0));
    files.push("planes.json");
    let result = (|| -> anyhow::Result<()> {
        std::fs::create_dir_all(&tmp)
            .with_context(|| format!("--planes {}: cannot create {}", dir.display(), tmp.display()))?;
        for (file, data, scale, cmap) in &planes.pictures {
            write_png(&tmp.join(file), data.view(), *scale, *cmap)?;
        }
        for (file, bytes) in planes
            .arrays
            .iter()
            .map(|(f, b)| (*f, b.as_slice()))
            .chain([("planes.json", &json[..])])
        {
            std::fs::write(tmp.join(file), bytes)
                .with_context(|| format!("--planes {}: cannot write {file}", dir.display()))?;
        }
        if !dir.exists() {
            return std::fs::rename(&tmp, dir).with_context(|| format!("--planes {}", dir.display()));
        }
        for file in &files {
            std::fs::rename(tmp.join(file), dir.join(file)).with_context(|| format!("--planes {}", dir.display()))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// One frame traced through the machine by the plain physical path. Pictures: the
/// input field's amplitude, the Fourier-plane power after the filter and the
/// filter's power transmission (both in dB), the output field's amplitude and the
/// detected intensity. Arrays: the complex input, Fourier-plane (before and after
/// the filter) and output fields and the detected intensity, on the simulation
/// grid, in √(W/m²) and W/m² when the machine has a photon budget (else relative
/// to the full-scale input field).
fn trace_planes(machine: &FourF, input: Array2<f64>, kernel_plane: Array2<f64>) -> Planes {
    let mask = machine.program(kernel_plane.view());
    let field = machine.input_field(input.view());
    let [input, before, after, output] = machine.trace_planes(&field, &mask);
    let t = machine.transmission(&mask);
    let detected = output.intensity();
    let cfg = machine.config();
    // Full-scale input intensity: photons per pixel at full scale over the exposure.
    let pitch = machine.pixel_pitch_m();
    let full_scale = machine
        .photons_full_scale()
        .map(|phi| phi * cfg.laser.photon_energy_j() / (cfg.camera.exposure_s * pitch * pitch));
    let (k, field_unit, intensity_unit) = match full_scale {
        Some(i) => (i.sqrt(), "sqrt(W/m^2)".to_string(), "W/m^2".to_string()),
        None => (
            1.0,
            "relative (full-scale input field amplitude 1; the machine has no photon budget)".to_string(),
            "relative (full-scale input intensity 1)".to_string(),
        ),
    };
    let (ny, nx) = input.shape();
    let mut arrays = Vec::new();
    let mut described = Vec::new();
    for (file, plane, f) in [
        ("input_field.npy", "input plane (after the input SLM)", &input),
        ("fourier_field.npy", "Fourier plane before the filter", &before),
        ("filtered_field.npy", "Fourier plane after the filter", &after),
        ("output_field.npy", "output plane (camera)", &output),
    ] {
        arrays.push((file, crate::npy::encode_complex(f.data.mapv(|v| v * k).view())));
        described.push(PlaneArray {
            file,
            plane,
            dtype: "complex128",
            shape: [ny, nx],
            pitch_m: f.pitch_m,
            unit: field_unit.clone(),
        });
    }
    arrays.push((
        "detected.npy",
        crate::npy::encode_real(detected.mapv(|v| v * k * k).view()),
    ));
    described.push(PlaneArray {
        file: "detected.npy",
        plane: "intensity at the camera, before pixel integration and noise",
        dtype: "float64",
        shape: [ny, nx],
        pitch_m: output.pitch_m,
        unit: intensity_unit,
    });
    let pictures = vec![
        (
            "input_plane.png",
            input.data.mapv(|v| v.norm()),
            Scale::Linear,
            Colormap::Gray,
        ),
        ("fourier_plane.png", after.intensity(), DB60, Colormap::Inferno),
        ("filter.png", t.mapv(|v| v.norm_sqr()), DB60, Colormap::Inferno),
        (
            "output_field.png",
            output.data.mapv(|v| v.norm()),
            Scale::Linear,
            Colormap::Inferno,
        ),
        ("detected.png", detected, Scale::Linear, Colormap::Inferno),
    ];
    Planes {
        pictures,
        arrays,
        info: PlanesInfo {
            wavelength_m: cfg.wavelength_m(),
            focal_lengths_m: [cfg.lens1.focal_length_m, cfg.lens2.focal_length_m],
            field_unit,
            axis: "sample (ny/2, nx/2) (integer division) is on the optical axis; sample (i, j) sits at ((i - ny/2)·pitch_y, (j - nx/2)·pitch_x)",
            arrays: described,
        },
    }
}

/// `fourf presets`: every machine preset with its description and key numbers.
pub fn presets_table() -> String {
    let mut out = String::new();
    for (name, description) in presets::MACHINES {
        let m = presets::machine(name).expect("listed presets exist");
        out.push_str(&format!("{name}\n    {description}\n    {}\n", machine_summary(&m)));
    }
    out
}

/// One line of the numbers that matter most: frame, pitch, wavelength, lenses,
/// SLM kinds and depths, camera noise, detection.
pub fn machine_summary(m: &fourf_sim::MachineConfig) -> String {
    let slm = |c: &fourf_sim::devices::slm::SlmConfig| {
        let bits = c.bits.map_or("analogue".to_string(), |b| format!("{b}-bit"));
        format!("{} {bits} {} Hz", serde_name(&c.modulation), num(c.refresh_hz))
    };
    let s = &m.input_slm;
    let cam = &m.camera;
    let budget = match (cam.full_scale_e, m.laser.power_w) {
        (Some(e), _) => format!("{} e⁻ full scale", num(e)),
        (None, Some(p)) => format!("{} mW laser", num(p * 1e3)),
        (None, None) => "no photon budget".to_string(),
    };
    format!(
        "frame {}×{} px at {} µm, λ {} nm, f1 {} mm, f2 {} mm; input {}, filter {}; camera read noise {} e⁻, {budget}; detection {}",
        s.pixels_y.unwrap_or(0),
        s.pixels_x.unwrap_or(0),
        num(s.pitch_m.unwrap_or(0.0) * 1e6),
        num(m.wavelength_m() * 1e9),
        num(m.lens1.focal_length_m * 1e3),
        num(m.lens2.focal_length_m * 1e3),
        slm(s),
        slm(&m.filter_slm),
        num(cam.read_noise_e),
        serde_name(&m.detection.scheme),
    )
}

/// The name serde gives a unit enum variant (`two_slm`, `balanced_homodyne`).
fn serde_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `v` with at most 6 decimals and no trailing zeros (`8`, not `7.999999999999999`).
fn num(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
