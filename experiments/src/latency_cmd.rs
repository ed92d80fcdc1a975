//! `fourf latency`: projected latency and energy of a network on a 4f machine
//! beside GPU baselines, op by op, with the break-even input-SLM rate.

use std::path::PathBuf;

use anyhow::{bail, Context};
use fourf_hw::gpu::{estimate_or_measured, gpu_preset, GpuEstimate, GpuMeasurements, GpuModel, Precision, GPU_NAMES};
use fourf_hw::layers::LayerTable;
use fourf_hw::optical::{Coprocessor, OpticalEstimate, OpticalTiming, RateKnob};
use fourf_hw::Trace;
use fourf_nn::backend::Backend;
use fourf_nn::models::ModelConfig;
use fourf_sim::devices::detection::Scheme;
use fourf_sim::devices::slm::Modulation;
use fourf_sim::MachineConfig;
use ndarray::Array3;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use crate::machine_file::load_machine;

/// What to project.
#[derive(Debug, Clone)]
pub enum LatencySource {
    /// A model preset or model file: traced by one digital forward pass.
    Model(String),
    /// A layer table (TOML).
    Layers(PathBuf),
    /// A trace written by `fourf eval --trace`.
    Trace(PathBuf),
}

/// Arguments of `fourf latency`.
#[derive(Debug, Clone)]
pub struct LatencyArgs {
    /// The network.
    pub source: LatencySource,
    /// Machine preset or file.
    pub machine: String,
    /// `path=value` machine overrides (including `timing.*`).
    pub sets: Vec<String>,
    /// GPU preset keys.
    pub gpus: Vec<String>,
    /// Images per batch.
    pub batch: usize,
    /// GPU arithmetic precision.
    pub precision: Precision,
    /// Measured GPU throughputs replacing the model.
    pub measurements: Option<PathBuf>,
    /// Run the electronic ops on this GPU (its roofline times and board power)
    /// instead of the machine's `[timing]` co-processor.
    pub coprocessor_gpu: Option<String>,
}

/// The command line of `fourf latency` (less `--json`): exactly one of `--model`,
/// `--layers` and `--trace` gives the network (none or two is a usage error).
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("network").required(true).multiple(false)))]
pub struct LatencyCommand {
    /// Model preset (see `fourf models`) or model .toml file, traced by one forward pass.
    #[arg(long, value_name = "PRESET|FILE.toml", group = "network")]
    pub model: Option<String>,
    /// A layer table describing any network (see experiments/layers/*.toml).
    #[arg(long, value_name = "TABLE.toml", group = "network")]
    pub layers: Option<PathBuf>,
    /// A trace written by `fourf eval --trace`.
    #[arg(long, value_name = "TRACE.json", group = "network")]
    pub trace: Option<PathBuf>,
    /// Machine preset (see `fourf presets`) or machine .toml file; its `[timing]` section
    /// holds the link, pipelining, powers and co-processor.
    #[arg(long, value_name = "PRESET|FILE.toml", default_value = "dmd-dlp9000")]
    pub machine: String,
    /// Override a machine setting, e.g. `--set input_slm.refresh_hz=20000` or
    /// `--set timing.link_bits_per_s=1e11` (repeatable).
    #[arg(long = "set", value_name = "path=value")]
    pub sets: Vec<String>,
    /// GPU baseline (repeatable): v100, a100, h100, h200, rtx2080ti, rtx3090, rtx4090.
    #[arg(long = "gpu", value_name = "NAME", default_values_t = ["h100".to_string(), "rtx4090".to_string()])]
    pub gpus: Vec<String>,
    /// Images per batch.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub batch: usize,
    /// GPU arithmetic precision.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Precision::Fp16)]
    pub precision: Precision,
    /// Measured GPU throughputs (CSV: model,gpu,batch,precision,images_per_s) that replace the
    /// model where they match.
    #[arg(long, value_name = "FILE.csv")]
    pub gpu_measurements: Option<PathBuf>,
    /// Run the electronic ops on this GPU instead of the machine's `[timing]` co-processor.
    #[arg(long, value_name = "NAME")]
    pub coprocessor_gpu: Option<String>,
}

impl From<LatencyCommand> for LatencyArgs {
    fn from(c: LatencyCommand) -> Self {
        let source = match (c.model, c.layers, c.trace) {
            (Some(m), _, _) => LatencySource::Model(m),
            (_, Some(l), _) => LatencySource::Layers(l),
            (_, _, Some(t)) => LatencySource::Trace(t),
            // The required argument group lets clap refuse this case (exit 2).
            (None, None, None) => unreachable!("clap requires one of --model, --layers, --trace"),
        };
        LatencyArgs {
            source,
            machine: c.machine,
            sets: c.sets,
            gpus: c.gpus,
            batch: c.batch,
            precision: c.precision,
            measurements: c.gpu_measurements,
            coprocessor_gpu: c.coprocessor_gpu,
        }
    }
}

/// The 4f machine's timing as the latency model sees it, from a machine config.
///
/// - passes per frame: 2 for signed inputs on an amplitude or binary input SLM
///   (`split` and `offset` both take two passes), times the bit planes of a binary
///   (DMD) input; 1 on a complex or two-SLM input;
/// - exposures per pass: 2 for balanced homodyne, else 1;
/// - read-out per exposure: the camera's `readout_s`, or `1/max_frame_rate_hz`
///   when that is longer;
/// - link bits per pixel and pass: 1 for a binary input, else its bits (8 when
///   unset).
pub fn optical_timing(m: &MachineConfig) -> OpticalTiming {
    let slm = &m.input_slm;
    let binary = slm.modulation == Modulation::Binary;
    let signed_passes = match slm.modulation {
        Modulation::Amplitude | Modulation::Binary => 2.0,
        _ => 1.0,
    };
    let bit_planes = if binary { f64::from(slm.bits.unwrap_or(1)) } else { 1.0 };
    let cam = &m.camera;
    let readout = cam
        .max_frame_rate_hz
        .map_or(cam.readout_s, |r| cam.readout_s.max(1.0 / r));
    let t = &m.timing;
    OpticalTiming {
        name: m.name.clone(),
        frame: [slm.pixels_y.unwrap_or(0), slm.pixels_x.unwrap_or(0)],
        input_rate_hz: slm.refresh_hz,
        filter_rate_hz: m.filter_slm.refresh_hz,
        passes_per_frame: signed_passes * bit_planes,
        exposures_per_pass: if m.detection.scheme == Scheme::BalancedHomodyne {
            2.0
        } else {
            1.0
        },
        exposure_s: cam.exposure_s,
        readout_s: readout,
        link_bits_per_s: t.link_bits_per_s,
        link_bits_per_pixel: if binary { 1.0 } else { f64::from(slm.bits.unwrap_or(8)) },
        pipelined: t.pipelined,
        laser_power_w: t.laser_power_w,
        input_slm_power_w: t.input_slm_power_w,
        filter_slm_power_w: t.filter_slm_power_w,
        camera_power_w: t.camera_power_w,
        coprocessor: Coprocessor {
            flops_per_s: t.coprocessor_flops,
            bytes_per_s: t.coprocessor_bytes_per_s,
            launch_s: t.coprocessor_launch_s,
            power_w: t.coprocessor_power_w,
        },
        reads_fourier_plane: m.detection.reads_real_part(),
    }
}

/// The trace of one image of a model: one digital forward pass of a zero image
/// with seeded weights (the shapes, FLOPs and convolutions do not depend on
/// either).
pub fn model_trace(spec: &str) -> anyhow::Result<(String, Trace)> {
    let config = ModelConfig::load(spec)?;
    let model = config
        .init(&mut StdRng::seed_from_u64(0))
        .with_context(|| format!("model `{spec}`"))?;
    let [c, h, w] = config.input_shape();
    let run = model
        .infer(&Backend::Digital, Array3::zeros((c, h, w)).view(), 0)
        .with_context(|| format!("tracing model `{spec}`"))?;
    Ok((spec.to_string(), run.trace))
}

/// One GPU's totals.
#[derive(Debug, Clone, Serialize)]
pub struct GpuRow {
    /// The estimate (per op and totals).
    #[serde(flatten)]
    pub estimate: GpuEstimate,
    /// GPU time over optical-machine time (> 1: the optics is faster).
    pub optics_speedup: f64,
    /// Input-SLM pattern rate at which the machine ties this GPU, the filter SLM
    /// as it is; `None` when no rate can (camera, link, filter changes or
    /// electronics alone take longer).
    pub break_even_input_rate_hz: Option<f64>,
    /// The rate at which the machine ties this GPU when both SLMs (input patterns
    /// and filter refresh) run at it; `None` when no rate can.
    pub break_even_slm_rate_hz: Option<f64>,
    /// The frame rate at which the machine ties this GPU when every pass and
    /// filter change takes one frame period (SLMs, camera and link keep pace);
    /// `None` when the electronics alone take longer.
    pub break_even_frame_rate_hz: Option<f64>,
}

/// The size of the network projected, per image.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NetworkTotals {
    /// FLOPs per image (every op, as a GPU counts them).
    pub flops_per_image: u64,
    /// Learnable parameters.
    pub params: u64,
    /// Ops.
    pub ops: usize,
    /// Ops the optics runs (those with a convolution spec).
    pub optical_ops: usize,
}

/// What `fourf latency` computed.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// The network's name.
    pub network: String,
    /// Its FLOPs, parameters and ops per image.
    pub totals: NetworkTotals,
    /// Images per batch.
    pub batch: usize,
    /// GPU precision.
    pub precision: Precision,
    /// The machine's timing parameters.
    pub machine: OpticalTiming,
    /// The GPU that runs the electronic ops, if not the `[timing]` co-processor.
    pub coprocessor_gpu: Option<String>,
    /// The optical projection.
    pub optical: OpticalEstimate,
    /// Each GPU.
    pub gpus: Vec<GpuRow>,
    /// Defaults that decide the projection (a machine file's unset timing keys
    /// limiting the pass period or the filter changes).
    pub warnings: Vec<String>,
}

fn ms(s: f64) -> String {
    if s == 0.0 {
        "-".into()
    } else {
        format!("{:.4}", s * 1e3)
    }
}

impl LatencyReport {
    /// The per-op table and the totals.
    pub fn summary(&self) -> String {
        let o = &self.optical;
        let m = &self.machine;
        let mut s = format!(
            "{} at batch {} on `{}` ({}×{} frame, {:.4} ms per pass, limited by {}; {} passes/frame, {} exposures/pass)\n",
            self.network,
            self.batch,
            m.name,
            m.frame[0],
            m.frame[1],
            o.pass_period_s * 1e3,
            o.limited_by,
            m.passes_per_frame,
            m.exposures_per_pass
        );
        let t = &self.totals;
        s += &format!(
            "network: {:.4} GFLOPs and {:.4} M parameters per image; {} ops, {} of them on the optics\n",
            t.flops_per_image as f64 / 1e9,
            t.params as f64 / 1e6,
            t.ops,
            t.optical_ops
        );
        if let Some(g) = &self.coprocessor_gpu {
            s += &format!("electronic ops on the {g} (its roofline times and board power)\n");
        }
        for w in &self.warnings {
            s += &format!("warning: {w}\n");
        }
        let w = o.ops.iter().map(|r| r.name.len()).max().unwrap_or(2).max(2);
        s += &format!(
            "\n{:w$}  {:16}  {:>8}  {:>16}  {:>11}  {:>11}",
            "op", "kind", "frames", "tiling, slot px", "optical ms", "electr. ms"
        );
        for g in &self.gpus {
            s += &format!("  {:>11}", format!("{} ms", g.estimate.gpu));
        }
        for (i, r) in o.ops.iter().enumerate() {
            let tiling = match (r.tiling, r.slot_px) {
                (Some(t), Some([y, x])) => format!("{} {y}×{x}", t.name()),
                _ => "-".into(),
            };
            s += &format!(
                "\n{:w$}  {:16}  {:>8}  {:>16}  {:>11}  {:>11}",
                r.name,
                r.kind.name(),
                if r.frames > 0 { r.frames.to_string() } else { "-".into() },
                tiling,
                ms(r.optical_s),
                ms(r.electronic_s)
            );
            for g in &self.gpus {
                s += &format!("  {:>11}", ms(g.estimate.ops[i].time_s));
            }
        }
        s += &format!(
            "\n\noptical machine: {:.4} ms per batch ({} frames, {} filters: optics {:.4} ms of which filter changes {:.4} ms, electronics {:.4} ms), {:.4} ms and {:.3e} J per image",
            o.total_s * 1e3,
            o.frames,
            o.filters,
            o.optical_s * 1e3,
            o.filter_s * 1e3,
            o.electronic_s * 1e3,
            o.per_image_s * 1e3,
            o.energy_per_image_j
        );
        for g in &self.gpus {
            let e = &g.estimate;
            s += &format!(
                "\n{} ({}, {:?}): {:.4} ms per batch, {:.1} images/s, {:.3e} J per image; {}; \
                 break-even rate: input SLM {}, both SLMs {}, whole machine {}",
                e.gpu,
                e.precision,
                e.basis,
                e.time_s * 1e3,
                e.images_per_s,
                e.energy_per_image_j,
                if t.optical_ops == 0 {
                    "no op runs on the optics".to_string()
                } else if g.optics_speedup >= 0.01 {
                    format!("optics speed-up {:.3}×", g.optics_speedup)
                } else {
                    format!("optics speed-up {:.3e}×", g.optics_speedup)
                },
                match g.break_even_input_rate_hz {
                    Some(r) => format!("{r:.4e} Hz (now {:.4e} Hz)", m.input_rate_hz),
                    None => "none".into(),
                },
                match g.break_even_slm_rate_hz {
                    Some(r) => format!("{r:.4e} Hz (now {:.4e} / {:.4e} Hz)", m.input_rate_hz, m.filter_rate_hz),
                    None => "none".into(),
                },
                match g.break_even_frame_rate_hz {
                    Some(r) => format!(
                        "{r:.4e} passes/s (now {:.4e} passes/s)",
                        1.0 / self.optical.pass_period_s
                    ),
                    None => "none (the electronics alone take longer)".into(),
                }
            );
        }
        s
    }
}

/// Runs `fourf latency`.
pub fn run_latency(args: &LatencyArgs) -> anyhow::Result<LatencyReport> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let (network, trace) = match &args.source {
        LatencySource::Model(spec) => model_trace(spec)?,
        LatencySource::Layers(path) => {
            let table = LayerTable::load(path)?;
            (table.name.clone(), table.to_trace())
        }
        LatencySource::Trace(path) => {
            let text = fourf_sim::files::read_text_limited(path, 1 << 30)
                .with_context(|| format!("reading trace {}", path.display()))?;
            let trace: Trace = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a trace written by `fourf eval --trace`", path.display()))?;
            (path.display().to_string(), trace)
        }
    };
    let machine = load_machine(&args.machine, &args.sets)?;
    machine
        .validate()
        .with_context(|| format!("machine `{}`", args.machine))?;
    let mut timing = optical_timing(&machine);
    let model = GpuModel::default();
    let gpu =
        |name: &str| gpu_preset(name).with_context(|| format!("unknown GPU `{name}`; valid: {}", GPU_NAMES.join(", ")));
    let electronic: Option<Vec<f64>> = match &args.coprocessor_gpu {
        Some(name) => {
            let spec = gpu(name)?;
            // The accumulation of optical results runs on the same GPU.
            timing.coprocessor = Coprocessor {
                flops_per_s: spec.peak_fp32_flops * model.cuda_core_efficiency,
                bytes_per_s: spec.memory_bandwidth_bytes_per_s * model.memory_efficiency,
                launch_s: model.launch_overhead_s,
                power_w: spec.board_power_w,
            };
            let e = fourf_hw::gpu::estimate(&trace, &spec, &model, args.batch, args.precision);
            Some(e.ops.iter().map(|o| o.time_s).collect())
        }
        None => None,
    };
    let optical = timing.estimate_with(&trace, args.batch, electronic.as_deref());
    let measurements = match &args.measurements {
        Some(p) => Some(GpuMeasurements::load(p)?),
        None => None,
    };
    let mut gpus = Vec::new();
    for name in &args.gpus {
        let spec = gpu(name)?;
        let estimate = estimate_or_measured(
            &network,
            &trace,
            &spec,
            &model,
            args.batch,
            args.precision,
            measurements.as_ref(),
        );
        let e = electronic.as_deref();
        gpus.push(GpuRow {
            optics_speedup: estimate.time_s / optical.total_s,
            break_even_input_rate_hz: timing.break_even_rate(
                &trace,
                args.batch,
                estimate.time_s,
                RateKnob::InputSlm,
                e,
            ),
            break_even_slm_rate_hz: timing.break_even_rate(&trace, args.batch, estimate.time_s, RateKnob::Slms, e),
            break_even_frame_rate_hz: timing.break_even_rate(&trace, args.batch, estimate.time_s, RateKnob::Machine, e),
            estimate,
        });
    }
    let defaulted = crate::machine_file::timing_defaults_used(&args.machine, &args.sets)?;
    let mut warnings = Vec::new();
    let limiter: &[&str] = match optical.limited_by.as_str() {
        "input_slm" => &["input_slm.refresh_hz"],
        "camera" => &["camera.exposure_s", "camera.readout_s"],
        _ => &["timing.link_bits_per_s"],
    };
    let unset: Vec<&str> = limiter.iter().copied().filter(|k| defaulted.contains(k)).collect();
    if optical.frames > 0 && !unset.is_empty() {
        warnings.push(format!(
            "the pass period ({:.4e} s) is limited by the {}, whose {} {} not set in {}: the default decides it",
            optical.pass_period_s,
            optical.limited_by.replace('_', " "),
            unset.join(" and "),
            if unset.len() > 1 { "are" } else { "is" },
            args.machine
        ));
    }
    if optical.filter_s > 0.5 * optical.optical_s && defaulted.contains(&"filter_slm.refresh_hz") {
        warnings.push(format!(
            "filter changes take {:.0} % of the optical time at the default filter_slm.refresh_hz, not set in {}",
            100.0 * optical.filter_s / optical.optical_s,
            args.machine
        ));
    }
    let totals = NetworkTotals {
        flops_per_image: trace.ops.iter().fold(0u64, |a, o| a.saturating_add(o.flops)),
        params: trace.ops.iter().fold(0u64, |a, o| a.saturating_add(o.params as u64)),
        ops: trace.ops.len(),
        optical_ops: trace.ops.iter().filter(|o| o.maps_to_optics()).count(),
    };
    Ok(LatencyReport {
        network,
        totals,
        batch: args.batch,
        precision: args.precision,
        machine: timing,
        coprocessor_gpu: args.coprocessor_gpu.clone(),
        optical,
        gpus,
        warnings,
    })
}
