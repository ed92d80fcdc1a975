//! `fourf eval`: a network on Fashion-MNIST on the digital or the optical backend,
//! with accuracy, agreement with the digital backend, logit error, frames and
//! wall time.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use fourf_hw::Trace;
use fourf_nn::backend::{Backend, OpticalBackend, OpticalOptions};
use fourf_nn::data::{load_fashion_mnist, Dataset, Split, FASHION_MNIST_MEAN, FASHION_MNIST_STD};
use fourf_nn::models::{Inference, Model, ModelConfig};
use fourf_nn::params::Parameters;
use fourf_nn::spectral::SpectralEmulation;
use fourf_nn::surrogate::OpUsage;
use fourf_nn::weights::load_weights;
use fourf_sim::{FourF, PlannerConfig};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array3, Axis};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use crate::atomic::write_atomic;
use crate::machine_file::load_machine;

/// Images per progress step and per parallel batch.
const CHUNK: usize = 32;

/// Which backend `fourf eval` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Exact digital reference only.
    Digital,
    /// The simulated machine, compared with the digital reference.
    Optical,
    /// The machine's fast noise surrogate (`fourf_nn::surrogate`) on the digital
    /// path: an estimate of the optical result in the time of a digital run.
    Surrogate,
}

/// Arguments of `fourf eval` (its command line, less `--json`).
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Model preset (see `fourf models`), shipped trained model, or a model .toml file.
    #[arg(long, value_name = "PRESET|MODEL|FILE.toml")]
    pub model: String,
    /// Weights (.safetensors, PyTorch-style names) or a shipped model's name (see models/,
    /// e.g. `--weights gfnet-fmnist`); default: seeded initialisation (untrained), or the
    /// weights of a shipped model given as --model.
    #[arg(long, value_name = "W.safetensors")]
    pub weights: Option<PathBuf>,
    /// Seed of the initialisation when no --weights are given.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub init_seed: u64,
    /// Directory with the Fashion-MNIST IDX files (t10k-images-idx3-ubyte[.gz], ...);
    /// default: the test set committed in data/.
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_test_dir(), hide_default_value = true)]
    pub data: PathBuf,
    /// Evaluate at most N test images (default: all 10 000).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Where the optically mapped ops run; `optical` (the full simulation) and
    /// `surrogate` (its fast noise surrogate) also run `digital` to compare.
    #[arg(long, value_enum, default_value_t = BackendKind::Digital)]
    pub backend: BackendKind,
    /// Machine preset (see `fourf presets`) or a machine .toml file, for `--backend optical`.
    #[arg(long, value_name = "PRESET|FILE.toml", default_value = "ideal-128")]
    pub machine: String,
    /// Override a machine setting, e.g. `--set camera.full_scale_e=1000` (repeatable).
    #[arg(long = "set", value_name = "path=value")]
    pub sets: Vec<String>,
    /// Seed of the machine's random processes.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// How circular (GFNet) filters map onto the linear optics.
    #[arg(long, value_enum, default_value_t = SpectralEmulation::Circular)]
    pub spectral: SpectralEmulation,
    /// Images per batch on the optics (`--backend optical`): the jobs of one op for a
    /// whole batch are planned together, so images share frames (one filter serves a
    /// weight kernel's maps of every image). 1: image by image, with a full trace per image.
    #[arg(long, value_name = "B", default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    pub batch: usize,
    /// Write the trace of the first image (every op, FLOPs, frames) as JSON.
    #[arg(long, value_name = "TRACE.json")]
    pub trace: Option<PathBuf>,
    /// Interactive use: a progress bar on stderr (when it is a terminal) and the
    /// machine's saturation warning. `fourf run` passes `false` and warns once per
    /// machine itself.
    #[arg(skip = true)]
    pub interactive: bool,
}

/// What `fourf eval` measured.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Model preset or file.
    pub model: String,
    /// Its kind.
    pub kind: String,
    /// Learnable parameters.
    pub parameters: usize,
    /// Weights file, or `seeded initialisation (seed N), untrained`.
    pub weights: String,
    /// `digital` or `optical`.
    pub backend: String,
    /// Machine name (optical backend).
    pub machine: Option<String>,
    /// Spectral emulation (optical backend).
    pub spectral: Option<String>,
    /// Images evaluated.
    pub images: usize,
    /// Top-1 accuracy of the chosen backend.
    pub accuracy: f64,
    /// Top-1 accuracy of the digital backend.
    pub digital_accuracy: f64,
    /// Fraction of images whose top-1 class equals the digital backend's.
    pub top1_agreement: f64,
    /// Mean over images of ‖logits − digital‖ / ‖digital‖.
    pub mean_relative_logit_error: f64,
    /// Largest such error.
    pub max_relative_logit_error: f64,
    /// FLOPs of one forward pass.
    pub flops_per_image: u64,
    /// Fraction of those FLOPs in ops that ran optically.
    pub optical_flop_fraction: f64,
    /// Ops per forward pass, and how many ran optically.
    pub ops_per_image: usize,
    /// Optical ops per forward pass.
    pub optical_ops_per_image: usize,
    /// Images per batch on the optics.
    pub batch: usize,
    /// Frames per image (optical backend).
    pub frames_per_image: f64,
    /// Passes per image.
    pub passes_per_image: f64,
    /// Exposures per image.
    pub exposures_per_image: f64,
    /// Wall time of the chosen backend, seconds.
    pub wall_s: f64,
    /// Wall time of the digital reference, seconds.
    pub digital_wall_s: f64,
    /// Every op that ran optically, averaged over the images.
    pub optical_layers: Vec<LayerRow>,
    /// Where the batched optical backend's time went (`--batch` > 1).
    pub time: Option<TimeSplit>,
}

/// Where a batched optical run's time went: seconds summed over the threads that
/// ran the optical ops, and the run's wall time.
#[derive(Debug, Clone, Serialize)]
pub struct TimeSplit {
    /// Running frames: programming filters, the input SLM, the optics, the camera.
    pub frames_s: f64,
    /// Planning (or finding plans in the machine's cache).
    pub plan_s: f64,
    /// The f64 direct reference of each op on the first images of every batch.
    pub reference_s: f64,
    /// Wall time of the whole batched run (the network's digital ops included).
    pub wall_s: f64,
    /// Worker threads.
    pub threads: usize,
    /// Filters found in the machine's cache instead of programmed.
    pub filters_reused: u64,
    /// Plans found in the machine's cache instead of made.
    pub plans_reused: u64,
}

/// One optically run op of the network, averaged over the images.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    /// Op name, e.g. `blocks.0.attn.scores`.
    pub name: String,
    /// Op kind.
    pub kind: String,
    /// 2-D convolutions per image.
    pub jobs: usize,
    /// Frames per image.
    pub frames: f64,
    /// Exposures per image.
    pub exposures: f64,
    /// Mean over images of the op's own relative error against the exact
    /// convolutions of its (already perturbed) inputs.
    pub mean_relative_error: f64,
    /// Milliseconds per image the op took (thread time: planning, frames and
    /// reference), batched runs only.
    pub ms_per_image: Option<f64>,
}

fn layer_rows(runs: &[Inference]) -> Vec<LayerRow> {
    let n = runs.len() as f64;
    let mut rows: Vec<LayerRow> = runs[0]
        .trace
        .ops
        .iter()
        .filter(|o| o.optical.is_some())
        .map(|o| LayerRow {
            name: o.name.clone(),
            kind: o.kind.name().to_string(),
            jobs: o.conv.as_ref().map_or(0, |c| c.jobs),
            frames: 0.0,
            exposures: 0.0,
            mean_relative_error: 0.0,
            ms_per_image: None,
        })
        .collect();
    for run in runs {
        for (row, op) in rows
            .iter_mut()
            .zip(run.trace.ops.iter().filter(|o| o.optical.is_some()))
        {
            let used = op.optical.expect("filtered");
            row.frames += used.frames as f64 / n;
            row.exposures += used.exposures as f64 / n;
            row.mean_relative_error += op.relative_error.unwrap_or(0.0) / n;
        }
    }
    rows
}

impl EvalReport {
    /// Human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "model {} ({}, {} parameters), weights: {}\n{} test images, backend {}",
            self.model, self.kind, self.parameters, self.weights, self.images, self.backend
        );
        if let (Some(m), Some(sp)) = (&self.machine, &self.spectral) {
            s += &format!(" on machine `{m}` (spectral filters: {sp})");
        }
        if !self.optical_layers.is_empty() {
            let w = self
                .optical_layers
                .iter()
                .map(|r| r.name.len())
                .max()
                .unwrap_or(0)
                .max(2);
            let timed = self.time.is_some();
            s += &format!(
                "\n\n{:w$}  {:16}  {:>6}  {:>7}  {:>9}  {:>10}{}",
                "op",
                "kind",
                "jobs",
                "frames",
                "exposures",
                "rel. error",
                if timed { "  ms/image" } else { "" }
            );
            for r in &self.optical_layers {
                s += &format!(
                    "\n{:w$}  {:16}  {:>6}  {:>7.1}  {:>9.1}  {:>10.3e}",
                    r.name, r.kind, r.jobs, r.frames, r.exposures, r.mean_relative_error
                );
                if let Some(ms) = r.ms_per_image {
                    s += &format!("  {ms:>8.3}");
                }
            }
            s += "\n";
        }
        s += &format!(
            "\naccuracy {:.2} % (digital {:.2} %), top-1 agreement with digital {:.2} %\n\
             relative logit error vs digital: mean {:.3e}, max {:.3e}\n\
             per image: {} ops ({} optical, {:.1} % of {:.3e} FLOPs), {:.1} frames, {:.1} passes, {:.1} exposures\n\
             wall time {:.2} s ({:.1} images/s; digital {:.2} s)",
            100.0 * self.accuracy,
            100.0 * self.digital_accuracy,
            100.0 * self.top1_agreement,
            self.mean_relative_logit_error,
            self.max_relative_logit_error,
            self.ops_per_image,
            self.optical_ops_per_image,
            100.0 * self.optical_flop_fraction,
            self.flops_per_image as f64,
            self.frames_per_image,
            self.passes_per_image,
            self.exposures_per_image,
            self.wall_s,
            self.images as f64 / self.wall_s.max(1e-9),
            self.digital_wall_s,
        );
        if let Some(t) = &self.time {
            let per = |x: f64| 1e3 * x / self.images.max(1) as f64;
            let ops = t.frames_s + t.plan_s + t.reference_s;
            let rest = (t.wall_s * t.threads as f64 - ops).max(0.0);
            s += &format!(
                "\nwhere the time goes ({} threads, ms per image of thread time): frames {:.3}, planning {:.3}, \
                 f64 reference {:.3}, rest of the network and idle threads {:.3}; \
                 reused from the machine's caches: {} filters, {} plans",
                t.threads,
                per(t.frames_s),
                per(t.plan_s),
                per(t.reference_s),
                per(rest),
                t.filters_reused,
                t.plans_reused,
            );
        }
        s
    }
}

fn argmax(v: &ndarray::Array1<f32>) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
        .0
}

/// Runs `model` on every image in chunks, advancing `bar`.
fn run_all(
    model: &Model,
    backend: &Backend,
    images: &[Array3<f32>],
    seed: u64,
    bar: &ProgressBar,
) -> anyhow::Result<(Vec<Inference>, f64)> {
    let start = Instant::now();
    let mut out = Vec::with_capacity(images.len());
    for (c, chunk) in images.chunks(CHUNK).enumerate() {
        let r = model
            .infer_batch(backend, chunk, seed, c * CHUNK, &|| bar.inc(1))
            .with_context(|| format!("{} backend", backend.name()))?;
        out.extend(r);
    }
    Ok((out, start.elapsed().as_secs_f64()))
}

/// The digital logits of every image, batched (every token of a micro-batch in one
/// GEMM per layer, micro-batches in parallel), and the trace of one image's
/// traced forward pass (the same for every image).
fn run_digital(
    model: &Model,
    data: &fourf_nn::data::Dataset,
    bar: &ProgressBar,
) -> anyhow::Result<(Vec<ndarray::Array1<f32>>, Trace, f64)> {
    let start = Instant::now();
    let images = data.batch_view();
    let n = data.len();
    let mut logits = Vec::with_capacity(n);
    for chunk in images.axis_chunks_iter(Axis(0), 8 * CHUNK) {
        let l = fourf_nn::train::predict(model, chunk, CHUNK);
        logits.extend(l.outer_iter().map(|r| r.to_owned()));
        bar.inc(chunk.dim().0 as u64);
    }
    let wall = start.elapsed().as_secs_f64();
    let first = model
        .infer(&Backend::Digital, images.index_axis(Axis(0), 0), 0)
        .context("digital backend")?;
    Ok((logits, first.trace, wall))
}

/// The optical backend on batches of images.
struct Batched {
    logits: Vec<ndarray::Array1<f32>>,
    usage: Vec<OpUsage>,
    /// The trace of the first image run alone (for the op count and FLOPs).
    first_trace: Trace,
    /// The machine's caches after the run.
    caches: fourf_sim::CacheCounts,
}

/// Runs every image on the machine in batches of `args.batch` (the jobs of one op
/// for a batch planned together), a progress step per batch; the noise of batch
/// `i` derives from the seed and the batch's first image.
fn run_batched(
    model: &Model,
    backend: &Backend,
    data: &fourf_nn::data::Dataset,
    args: &EvalArgs,
    bar: &ProgressBar,
) -> anyhow::Result<Batched> {
    let Backend::Optical(optical) = backend else {
        bail!("batched runs need the optical backend")
    };
    let images = data.batch_view();
    let noise = fourf_nn::train::StepNoise {
        source: fourf_nn::surrogate::NoiseSource::Machine(&optical.machine),
        strength: 1.0,
        seed: args.seed,
        spectral: args.spectral,
    };
    // Enough batches at once to keep every thread busy.
    let group = args.batch * rayon::current_num_threads();
    let (mut logits, mut usage) = (Vec::with_capacity(data.len()), Vec::new());
    for (g, chunk) in images.axis_chunks_iter(Axis(0), group).enumerate() {
        let (l, u) = fourf_nn::train::predict_with_usage(model, chunk, args.batch, Some(&noise), g * group)
            .map_err(|why| anyhow::anyhow!("optical backend on machine `{}`: {why}", args.machine))?;
        logits.extend(l.outer_iter().map(|r| r.to_owned()));
        usage.extend(u);
        bar.inc(chunk.dim().0 as u64);
    }
    let first_trace = model
        .infer(backend, images.index_axis(Axis(0), 0), args.seed)
        .context("optical backend")?
        .trace;
    Ok(Batched {
        logits,
        usage: fourf_nn::surrogate::merge_usage(usage),
        first_trace,
        caches: optical.machine.cache_counts(),
    })
}

/// The optically run ops of a batched run, per image.
fn usage_rows(usage: &[OpUsage], trace: &Trace, n: usize) -> Vec<LayerRow> {
    let n = n as f64;
    usage
        .iter()
        .map(|u| LayerRow {
            name: u.name.clone(),
            kind: trace
                .ops
                .iter()
                .find(|o| o.name == u.name)
                .map_or("conv", |o| o.kind.name())
                .to_string(),
            jobs: u.jobs / u.images.max(1),
            frames: u.frames as f64 / n,
            exposures: u.exposures as f64 / n,
            mean_relative_error: u.mean_relative_error(),
            ms_per_image: Some(1e3 * (u.plan_s + u.frames_s + u.reference_s) / n),
        })
        .collect()
}

/// Runs `fourf eval`.
pub fn run_eval(args: &EvalArgs) -> anyhow::Result<EvalReport> {
    if let Some(t) = &args.trace {
        crate::atomic::check_output("--trace", t, &[])?;
    }
    let (config, mut model, weights) = load_model(args)?;
    let (backend, surrogate_machine) = build_backend(args)?;
    let data = load_test_data(args, &config)?;
    let images: Vec<Array3<f32>> = data
        .images
        .axis_iter(Axis(0))
        .map(|im| im.insert_axis(Axis(0)).to_owned())
        .collect();
    let n = images.len();
    let runs = if backend.is_some() { 2 * n } else { n };
    let bar = if args.interactive && runs >= CHUNK {
        ProgressBar::new(runs as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} forward passes, {elapsed} elapsed, ~{eta} left")
            .expect("a valid template"),
    );
    let (digital, digital_trace, digital_wall_s) = run_digital(&model, &data, &bar)?;
    let use_batches = matches!(&backend, Some(Backend::Optical(_))) && args.batch > 1;
    let (optical, wall_s) = match &backend {
        Some(b) if !use_batches => {
            let (r, wall) = run_all(&model, b, &images, args.seed, &bar)?;
            (Some(r), wall)
        }
        _ => (None, digital_wall_s),
    };
    let (batched, wall_s) = match &backend {
        Some(b) if use_batches => {
            let start = Instant::now();
            let b = run_batched(&model, b, &data, args, &bar)?;
            (Some(b), start.elapsed().as_secs_f64())
        }
        _ => (None, wall_s),
    };
    let (surrogate, wall_s) = match &surrogate_machine {
        Some(s) => {
            let start = Instant::now();
            let noise = fourf_nn::train::StepNoise {
                source: fourf_nn::surrogate::NoiseSource::Surrogate(s),
                strength: 1.0,
                seed: args.seed,
                spectral: args.spectral,
            };
            let l = fourf_nn::train::predict_optics_aware(&model, data.batch_view(), CHUNK, Some(&noise));
            let rows: Vec<ndarray::Array1<f32>> = l.outer_iter().map(|r| r.to_owned()).collect();
            (Some(rows), start.elapsed().as_secs_f64())
        }
        None => (None, wall_s),
    };
    bar.finish_and_clear();
    let chosen: Vec<&ndarray::Array1<f32>> = match (&optical, &surrogate, &batched) {
        (Some(r), _, _) => r.iter().map(|i| &i.logits).collect(),
        (None, Some(l), _) => l.iter().collect(),
        (None, None, Some(b)) => b.logits.iter().collect(),
        (None, None, None) => digital.iter().collect(),
    };
    let digital_refs: Vec<&ndarray::Array1<f32>> = digital.iter().collect();
    refuse_non_finite(&[("digital", &digital_refs), (args.backend_name(), &chosen)])?;
    let first: &Trace = match (&optical, &batched) {
        (Some(r), _) => &r[0].trace,
        (None, Some(b)) => &b.first_trace,
        (None, None) => &digital_trace,
    };
    if let Some(path) = &args.trace {
        let json = serde_json::to_string_pretty(first).expect("a trace serialises");
        write_atomic(path, json.as_bytes()).with_context(|| format!("writing the trace to {}", path.display()))?;
    }
    let cmp = Comparison::of(&chosen, &digital_refs, &data.labels);
    let all: Vec<fourf_hw::TraceTotals> = match &optical {
        Some(r) => r.iter().map(|i| i.trace.totals()).collect(),
        None => vec![first.totals()],
    };
    let totals = all[0];
    let per_image = |f: fn(&fourf_hw::TraceTotals) -> usize, g: fn(&OpUsage) -> usize| match &batched {
        Some(b) => b.usage.iter().map(g).sum::<usize>() as f64 / n as f64,
        None => all.iter().map(|t| f(t) as f64).sum::<f64>() / all.len() as f64,
    };
    Ok(EvalReport {
        model: args.model.clone(),
        kind: config.kind().to_string(),
        parameters: model.parameter_count(),
        weights,
        backend: args.backend_name().to_string(),
        machine: (args.backend != BackendKind::Digital).then(|| args.machine.clone()),
        spectral: backend
            .as_ref()
            .map(|b| format!("{:?}", b.spectral_emulation()).to_lowercase()),
        images: n,
        accuracy: cmp.accuracy,
        digital_accuracy: cmp.digital_accuracy,
        top1_agreement: cmp.agreement,
        mean_relative_logit_error: cmp.mean_error,
        max_relative_logit_error: cmp.max_error,
        flops_per_image: totals.flops,
        optical_flop_fraction: first.optical_fraction(),
        ops_per_image: totals.ops,
        optical_ops_per_image: totals.optical_ops,
        batch: if batched.is_some() { args.batch } else { 1 },
        frames_per_image: per_image(|t| t.optical.frames, |u| u.frames),
        passes_per_image: per_image(|t| t.optical.passes, |u| u.passes),
        exposures_per_image: per_image(|t| t.optical.exposures, |u| u.exposures),
        wall_s,
        digital_wall_s,
        optical_layers: match (&optical, &batched) {
            (Some(r), _) => layer_rows(r),
            (None, Some(b)) => usage_rows(&b.usage, first, n),
            (None, None) => Vec::new(),
        },
        time: batched.as_ref().map(|b| TimeSplit {
            // `fold` from +0: an empty sum of f64 is −0, which prints as "-0.000".
            frames_s: b.usage.iter().fold(0.0, |a, u| a + u.frames_s),
            plan_s: b.usage.iter().fold(0.0, |a, u| a + u.plan_s),
            reference_s: b.usage.iter().fold(0.0, |a, u| a + u.reference_s),
            wall_s,
            threads: rayon::current_num_threads(),
            filters_reused: b.caches.filter_hits,
            plans_reused: b.caches.plan_hits,
        }),
    })
}

/// Step 1 of `fourf eval`: the model and its weights (a file, a shipped model's
/// name, or the seeded initialisation), with how the weights are described.
fn load_model(args: &EvalArgs) -> anyhow::Result<(ModelConfig, Model, String)> {
    let config = ModelConfig::load(&args.model)?;
    let mut model = config
        .init(&mut StdRng::seed_from_u64(args.init_seed))
        .with_context(|| format!("model `{}`", args.model))?;
    // A shipped model's name as --weights, or as --model without --weights.
    let shipped_weights = |name: &str| fourf_nn::models::shipped(name).map(|s| s.weights);
    let weights_path = match &args.weights {
        Some(w) if !w.exists() => shipped_weights(&w.to_string_lossy()).or_else(|| Some(w.clone())),
        Some(w) => Some(w.clone()),
        // A shipped variant that is not a preset (e.g. an optics-aware model) brings
        // its weights; a preset name alone stays the seeded initialisation.
        None if fourf_nn::models::preset(&args.model).is_none() => shipped_weights(&args.model),
        None => None,
    };
    let weights = match &weights_path {
        Some(w) => {
            load_weights(w, &mut model)?;
            w.display().to_string()
        }
        None => format!("seeded initialisation (seed {}), untrained", args.init_seed),
    };
    Ok((config, model, weights))
}

/// Step 2: the optical backend or the surrogate of the machine, when asked for.
fn build_backend(args: &EvalArgs) -> anyhow::Result<(Option<Backend>, Option<fourf_nn::surrogate::Surrogate>)> {
    let machine = match args.backend {
        BackendKind::Digital => None,
        BackendKind::Optical | BackendKind::Surrogate => {
            let machine = FourF::new(load_machine(&args.machine, &args.sets)?)
                .with_context(|| format!("machine `{}`", args.machine))?;
            if let Some(w) = machine.saturation_warning().filter(|_| args.interactive) {
                eprintln!("warning: {w}");
            }
            Some(machine)
        }
    };
    let (backend, surrogate_machine) = match (args.backend, machine) {
        (BackendKind::Optical, Some(machine)) => (
            Some(Backend::Optical(Box::new(OpticalBackend {
                machine,
                planner: PlannerConfig::default(),
                options: OpticalOptions {
                    spectral: args.spectral,
                },
            }))),
            None,
        ),
        (BackendKind::Surrogate, Some(machine)) => {
            if args.spectral != SpectralEmulation::Circular {
                bail!("--backend surrogate models circular spectral filters only; drop --spectral or use --backend optical");
            }
            let s =
                fourf_nn::surrogate::Surrogate::new(&machine).with_context(|| format!("machine `{}`", args.machine))?;
            (None, Some(s))
        }
        _ => (None, None),
    };
    Ok((backend, surrogate_machine))
}

/// Step 3: the normalised test images, checked against the model's input.
fn load_test_data(args: &EvalArgs, config: &ModelConfig) -> anyhow::Result<Dataset> {
    let data =
        load_fashion_mnist(&args.data, Split::Test, args.limit)?.normalised(FASHION_MNIST_MEAN, FASHION_MNIST_STD);
    if data.is_empty() {
        bail!("no test images in {} (is --limit 0?)", args.data.display());
    }
    let (_, h, w) = data.images.dim();
    let want = config.input_shape();
    if want != [1, h, w] {
        bail!(
            "model `{}` takes {}×{}×{} images but the data has 1×{h}×{w}; use a *-fmnist preset or a model file with \
             in_channels = 1 and image_size = {h}",
            args.model,
            want[0],
            want[1],
            want[2]
        );
    }
    if config.classes() < 10 {
        bail!(
            "model `{}` has {} classes; Fashion-MNIST has 10",
            args.model,
            config.classes()
        );
    }
    Ok(data)
}

/// An accuracy of NaN logits would be a number with no meaning: `Err` naming the
/// backend and the first image whose logits are not all finite.
fn refuse_non_finite(backends: &[(&str, &Vec<&ndarray::Array1<f32>>)]) -> anyhow::Result<()> {
    for (what, logits) in backends {
        if let Some(i) = logits.iter().position(|l| l.iter().any(|v| !v.is_finite())) {
            bail!(
                "the {what} backend gave non-finite logits for image {i}: the weights, the model or the machine settings overflow; no accuracy is reported"
            );
        }
    }
    Ok(())
}

/// The chosen backend's logits against the digital ones and the labels.
struct Comparison {
    accuracy: f64,
    digital_accuracy: f64,
    agreement: f64,
    mean_error: f64,
    max_error: f64,
}

impl Comparison {
    fn of(chosen: &[&ndarray::Array1<f32>], digital: &[&ndarray::Array1<f32>], labels: &[u8]) -> Self {
        let n = chosen.len() as f64;
        let correct = |r: &[&ndarray::Array1<f32>]| {
            r.iter().zip(labels).filter(|(l, &y)| argmax(l) == y as usize).count() as f64 / n
        };
        let mut agree = 0;
        let (mut err_sum, mut err_max) = (0.0f64, 0.0f64);
        for (o, d) in chosen.iter().zip(digital) {
            agree += usize::from(argmax(o) == argmax(d));
            let num: f64 = o.iter().zip(d.iter()).map(|(a, b)| f64::from(a - b).powi(2)).sum();
            let den: f64 = d.iter().map(|b| f64::from(*b).powi(2)).sum();
            let e = (num / den.max(f64::MIN_POSITIVE)).sqrt();
            err_sum += e;
            err_max = err_max.max(e);
        }
        Self {
            accuracy: correct(chosen),
            digital_accuracy: correct(digital),
            agreement: agree as f64 / n,
            mean_error: err_sum / n,
            max_error: err_max,
        }
    }
}

impl EvalArgs {
    fn backend_name(&self) -> &'static str {
        match self.backend {
            BackendKind::Digital => "digital",
            BackendKind::Optical => "optical",
            BackendKind::Surrogate => "surrogate",
        }
    }
}

/// The model presets as a table.
pub fn model_presets_table() -> String {
    let names = fourf_nn::models::PRESETS;
    let width = names.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut out: String = names
        .iter()
        .map(|p| format!("{:width$}  {}\n", p.name, p.description))
        .collect();
    let shipped = fourf_nn::models::shipped_names();
    if !shipped.is_empty() {
        out.push_str("\ntrained models (models/; use as --weights NAME, or --model NAME):\n");
        for name in shipped {
            let s = fourf_nn::models::shipped(&name).expect("listed");
            let acc = std::fs::read_to_string(s.weights.with_file_name("log.csv"))
                .ok()
                .and_then(|log| crate::train_cmd::last_test_accuracy(log.lines()))
                .map_or(String::new(), |a| format!(", digital test accuracy {:.2} %", 100.0 * a));
            out.push_str(&format!("{name:width$}  architecture {}{acc}\n", s.model));
        }
    }
    out
}
