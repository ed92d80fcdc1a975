//! `fourf`: the command line of the 4f-accelerator simulator. It parses arguments
//! and calls `fourf-experiments`; usage errors exit with 2, runtime errors with 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fourf_experiments::{
    model_presets_table, presets_table, run_conv, run_eval, BackendKind, ConvArgs, EvalArgs, Mode, SpectralEmulation,
};

/// Simulator of free-space optical 4f accelerators.
#[derive(Parser)]
#[command(name = "fourf", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    Presets,
    /// Run a network on the Fashion-MNIST test set, digitally or on a simulated machine.
    ///
    /// Example: `fourf eval --model convsharevit-fmnist --backend optical --machine ideal-128 --limit 200`
    Eval {
        /// Model preset (see `fourf models`) or a model .toml file.
        #[arg(long, value_name = "PRESET|FILE.toml")]
        model: String,
        /// Weights (.safetensors, PyTorch-style names); default: seeded initialisation (untrained).
        #[arg(long, value_name = "W.safetensors")]
        weights: Option<PathBuf>,
        /// Seed of the initialisation when no --weights are given.
        #[arg(long, value_name = "N", default_value_t = 0)]
        init_seed: u64,
        /// Directory with the Fashion-MNIST IDX files (t10k-images-idx3-ubyte[.gz], ...).
        #[arg(long, value_name = "DIR", default_value = fourf_experiments::DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Evaluate at most N test images (default: all 10 000).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Where the optically mapped ops run; `optical` also runs `digital` to compare.
        #[arg(long, value_name = "digital|optical", default_value = "digital")]
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
        /// Write the trace of the first image (every op, FLOPs, frames) as JSON.
        #[arg(long, value_name = "TRACE.json")]
        trace: Option<PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the model presets.
    Models,
}

fn parse_spectral(s: &str) -> Result<SpectralEmulation, String> {
    match s {
        "circular" => Ok(SpectralEmulation::Circular),
        "zero_padded" => Ok(SpectralEmulation::ZeroPadded),
        _ => Err(format!("unknown emulation `{s}`; valid: circular, zero_padded")),
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
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
        Command::Presets => Ok(presets_table().trim_end().to_string()),
        Command::Models => Ok(model_presets_table().trim_end().to_string()),
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
            trace,
            json,
        } => run_eval(&EvalArgs {
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
            trace,
        })
        .map(|r| if json { r.to_json() } else { r.summary() }),
    };
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
