//! `fourf`: the command line of the 4f-accelerator simulator. It parses arguments
//! and calls `fourf-experiments`; usage errors exit with 2, runtime errors with 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fourf_experiments::{
    model_presets_table, presets_table, run_conv, run_eval, run_latency, BackendKind, ConvArgs, EvalArgs, LatencyArgs,
    LatencySource, Mode, Precision, SpectralEmulation,
};
use fourf_experiments::{run_train, TrainArgs};

/// Simulator of free-space optical 4f accelerators.
#[derive(Parser)]
#[command(name = "fourf", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment config: every sweep point and seed, then summary.csv, report.md and
    /// plots; re-run the same command to resume.
    ///
    /// Example: `fourf run experiments/configs/quickstart.toml`
    Run {
        /// Experiment config (.toml); see experiments/configs/ and the README's config reference.
        #[arg(value_name = "CONFIG.toml")]
        config: PathBuf,
        /// Override a config key, e.g. `--set data.limit=100` or
        /// `--set machine.camera.full_scale_e=500` (repeatable).
        #[arg(long = "set", value_name = "key=value")]
        sets: Vec<String>,
        /// Output directory (default: the config's `out`, else runs/<name>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Run only slice i of n of the points (into DIR/shard-i-of-n); default: from
        /// SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX/FOURF_SHARDS when set.
        #[arg(long, value_name = "i/n", value_parser = fourf_experiments::experiment::parse_shard)]
        shard: Option<(usize, usize)>,
        /// Points run at once (each point uses every core).
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
        jobs: u64,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check an experiment config (keys, types, ranges, every point's machine, model, weights
    /// and data) without running it; writes nothing.
    Validate {
        /// Experiment config (.toml).
        #[arg(value_name = "CONFIG.toml")]
        config: PathBuf,
        /// Override a config key (repeatable).
        #[arg(long = "set", value_name = "key=value")]
        sets: Vec<String>,
    },
    /// Join the output directories of an experiment's shards into one, with its plots.
    ///
    /// Example: `fourf merge runs/sweep/shard-* --out runs/sweep`
    Merge {
        /// Shard output directories of one config.
        #[arg(value_name = "DIR", required = true)]
        dirs: Vec<PathBuf>,
        /// Merged output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Redraw summary.csv, report.md and the plots of an output directory from its results.
    Plot {
        /// Output directory of `fourf run` or `fourf merge`.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Convolve .npy maps on a simulated 4f machine.
    Conv {
        /// Input: a 2-D map or a 3-D stack of maps (float32 or float64 .npy).
        #[arg(long, value_name = "X.npy")]
        input: PathBuf,
        /// Kernel: a 2-D kernel, or a 3-D stack (one per map, or many for one map).
        #[arg(long, value_name = "K.npy")]
        kernel: PathBuf,
        /// Which outputs to keep.
        #[arg(long, value_name = "valid|same|full")]
        mode: Mode,
        /// Correlate instead of convolving.
        #[arg(long)]
        correlate: bool,
        /// Machine preset (see `fourf presets`) or a machine .toml file.
        #[arg(long, value_name = "PRESET|FILE.toml", default_value = "ideal")]
        machine: String,
        /// Override a machine setting, e.g. `--set lens2.focal_length_m=0.2` (repeatable).
        #[arg(long = "set", value_name = "path=value")]
        sets: Vec<String>,
        /// Seed of the machine's random processes.
        #[arg(long, value_name = "N", default_value_t = 0)]
        seed: u64,
        /// Output .npy (same dtype as the input).
        #[arg(long, value_name = "Y.npy")]
        out: PathBuf,
        /// Write PNG pictures of the planes of frame 0 into this directory.
        #[arg(long, value_name = "DIR")]
        planes: Option<PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the machine presets.
    Presets {
        /// Print this machine (a preset or file, with every --set applied) as a complete
        /// machine .toml file, to start a machine file from.
        #[arg(long, value_name = "PRESET|FILE.toml")]
        toml: Option<String>,
        /// Override a setting of the --toml machine (repeatable).
        #[arg(long = "set", value_name = "path=value", requires = "toml")]
        sets: Vec<String>,
    },
    /// Run a network on the Fashion-MNIST test set, digitally or on a simulated machine.
    ///
    /// Example: `fourf eval --model convsharevit-fmnist --backend optical --machine ideal-128 --limit 200`
    Eval {
        /// Model preset (see `fourf models`), shipped trained model, or a model .toml file.
        #[arg(long, value_name = "PRESET|MODEL|FILE.toml")]
        model: String,
        /// Weights (.safetensors, PyTorch-style names) or a shipped model's name (see models/,
        /// e.g. `--weights gfnet-fmnist`); default: seeded initialisation (untrained), or the
        /// weights of a shipped model given as --model.
        #[arg(long, value_name = "W.safetensors")]
        weights: Option<PathBuf>,
        /// Seed of the initialisation when no --weights are given.
        #[arg(long, value_name = "N", default_value_t = 0)]
        init_seed: u64,
        /// Directory with the Fashion-MNIST IDX files (t10k-images-idx3-ubyte[.gz], ...);
        /// default: the test set committed in data/.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Evaluate at most N test images (default: all 10 000).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Where the optically mapped ops run; `optical` (the full simulation) and
        /// `surrogate` (its fast noise surrogate) also run `digital` to compare.
        #[arg(long, value_name = "digital|optical|surrogate", default_value = "digital")]
        backend: BackendKind,
        /// Machine preset (see `fourf presets`) or a machine .toml file, for `--backend optical`.
        #[arg(long, value_name = "PRESET|FILE.toml", default_value = "ideal-128")]
        machine: String,
        /// Override a machine setting, e.g. `--set camera.full_scale_e=1000` (repeatable).
        #[arg(long = "set", value_name = "path=value")]
        sets: Vec<String>,
        /// Seed of the machine's random processes.
        #[arg(long, value_name = "N", default_value_t = 0)]
        seed: u64,
        /// How circular (GFNet) filters map onto the linear optics.
        #[arg(long, value_name = "circular|zero_padded", default_value = "circular", value_parser = parse_spectral)]
        spectral: SpectralEmulation,
        /// Images per batch on the optics (`--backend optical`): the jobs of one op for a
        /// whole batch are planned together, so images share frames (one filter serves a
        /// weight kernel's maps of every image). 1: image by image, with a full trace per image.
        #[arg(long, value_name = "B", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
        batch: u64,
        /// Write the trace of the first image (every op, FLOPs, frames) as JSON.
        #[arg(long, value_name = "TRACE.json")]
        trace: Option<PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the model presets.
    Models,
    /// Train a network on Fashion-MNIST from a config file; re-run to resume.
    ///
    /// Example: `fourf train models/gfnet-fmnist/train.toml --out runs/gfnet --set epochs=2`
    Train {
        /// Training config (.toml): model, epochs, batch, optimizer, schedule, augment, data.
        #[arg(value_name = "CONFIG.toml")]
        config: PathBuf,
        /// Override a config key, e.g. `--set optimizer.lr=5e-4` (repeatable).
        #[arg(long = "set", value_name = "key=value")]
        sets: Vec<String>,
        /// Output directory for the checkpoint, weights and log (default: runs/<config stem>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Project latency and energy of a network on a 4f machine beside GPU baselines.
    ///
    /// Example: `fourf latency --model gfnet-ti --machine dmd-dlp9000 --gpu h100 --gpu rtx4090 --batch 64`
    Latency {
        /// Model preset (see `fourf models`) or model .toml file, traced by one forward pass.
        #[arg(long, value_name = "PRESET|FILE.toml", group = "network")]
        model: Option<String>,
        /// A layer table describing any network (see experiments/layers/*.toml).
        #[arg(long, value_name = "TABLE.toml", group = "network")]
        layers: Option<PathBuf>,
        /// A trace written by `fourf eval --trace`.
        #[arg(long, value_name = "TRACE.json", group = "network")]
        trace: Option<PathBuf>,
        /// Machine preset (see `fourf presets`) or machine .toml file; its `[timing]` section
        /// holds the link, pipelining, powers and co-processor.
        #[arg(long, value_name = "PRESET|FILE.toml", default_value = "dmd-dlp9000")]
        machine: String,
        /// Override a machine setting, e.g. `--set input_slm.refresh_hz=20000` or
        /// `--set timing.link_bits_per_s=1e11` (repeatable).
        #[arg(long = "set", value_name = "path=value")]
        sets: Vec<String>,
        /// GPU baseline (repeatable): v100, a100, h100, h200, rtx2080ti, rtx3090, rtx4090.
        #[arg(long = "gpu", value_name = "NAME", default_values_t = ["h100".to_string(), "rtx4090".to_string()])]
        gpus: Vec<String>,
        /// Images per batch.
        #[arg(long, value_name = "N", default_value_t = 1)]
        batch: usize,
        /// GPU arithmetic precision: fp32, tf32, fp16, bf16.
        #[arg(long, value_name = "P", default_value = "fp16")]
        precision: Precision,
        /// Measured GPU throughputs (CSV: model,gpu,batch,precision,images_per_s) that replace the
        /// model where they match.
        #[arg(long, value_name = "FILE.csv")]
        gpu_measurements: Option<PathBuf>,
        /// Run the electronic ops on this GPU instead of the machine's `[timing]` co-processor.
        #[arg(long, value_name = "NAME")]
        coprocessor_gpu: Option<String>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn parse_spectral(s: &str) -> Result<SpectralEmulation, String> {
    match s {
        "circular" => Ok(SpectralEmulation::Circular),
        "zero_padded" => Ok(SpectralEmulation::ZeroPadded),
        _ => Err(format!("unknown emulation `{s}`; valid: circular, zero_padded")),
    }
}

fn main() -> ExitCode {
    // Ctrl-C or SIGTERM: no half-written temporary file is left behind. (Outputs
    // are renamed into place only when complete; results.jsonl keeps whole lines.)
    let _ = ctrlc::set_handler(|| {
        fourf_experiments::atomic::remove_temporaries();
        eprintln!("interrupted: temporary files removed; finished results are kept");
        std::process::exit(130);
    });
    let result = match Cli::parse().command {
        Command::Run {
            config,
            sets,
            out,
            shard,
            jobs,
            json,
        } => fourf_experiments::experiment::run_experiment(&fourf_experiments::experiment::RunArgs {
            config,
            sets,
            out,
            shard,
            jobs: jobs as usize,
        })
        .map(|r| {
            if json {
                serde_json::to_string(&r).expect("a report serialises")
            } else {
                r.summary()
            }
        }),
        Command::Validate { config, sets } => fourf_experiments::experiment::validate(&config, &sets),
        Command::Merge { dirs, out } => fourf_experiments::experiment::merge(&dirs, &out).map(|r| r.summary()),
        Command::Plot { dir } => fourf_experiments::experiment::replot(&dir).map(|r| r.summary()),
        Command::Conv {
            input,
            kernel,
            mode,
            correlate,
            machine,
            sets,
            seed,
            out,
            planes,
            json,
        } => run_conv(&ConvArgs {
            input,
            kernel,
            mode,
            correlate,
            machine,
            sets,
            seed,
            out,
            planes,
        })
        .map(|r| if json { r.to_json() } else { r.summary() }),
        Command::Presets { toml: None, .. } => Ok(presets_table().trim_end().to_string()),
        Command::Presets { toml: Some(m), sets } => fourf_experiments::machine_toml(&m, &sets),
        Command::Models => Ok(model_presets_table().trim_end().to_string()),
        Command::Latency {
            model,
            layers,
            trace,
            machine,
            sets,
            gpus,
            batch,
            precision,
            gpu_measurements,
            coprocessor_gpu,
            json,
        } => {
            let source = match (model, layers, trace) {
                (Some(m), _, _) => Some(LatencySource::Model(m)),
                (_, Some(l), _) => Some(LatencySource::Layers(l)),
                (_, _, Some(t)) => Some(LatencySource::Trace(t)),
                _ => None,
            };
            match source {
                None => Err(anyhow::anyhow!(
                    "give the network: --model PRESET|FILE.toml, --layers TABLE.toml or --trace TRACE.json"
                )),
                Some(source) => run_latency(&LatencyArgs {
                    source,
                    machine,
                    sets,
                    gpus,
                    batch,
                    precision,
                    measurements: gpu_measurements,
                    coprocessor_gpu,
                })
                .map(|r| if json { r.to_json() } else { r.summary() }),
            }
        }
        Command::Train {
            config,
            sets,
            out,
            json,
        } => run_train(&TrainArgs { config, sets, out }).map(|r| {
            if json {
                serde_json::to_string(&r).expect("a report serialises")
            } else {
                r.summary()
            }
        }),
        Command::Eval {
            model,
            weights,
            init_seed,
            data,
            limit,
            backend,
            machine,
            sets,
            seed,
            spectral,
            batch,
            trace,
            json,
        } => run_eval(&EvalArgs {
            model,
            weights,
            init_seed,
            data: data.unwrap_or_else(fourf_experiments::default_test_dir),
            limit,
            backend,
            machine,
            sets,
            seed,
            spectral,
            batch: batch as usize,
            trace,
            interactive: true,
        })
        .map(|r| if json { r.to_json() } else { r.summary() }),
    };
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes joined by `: `, each said once: a cause whose text the
/// message so far already holds (an error that prints its source) is left out.
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}
