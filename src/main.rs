//! `fourf`: the command line of the 4f-accelerator simulator. It parses arguments
//! and calls `fourf-experiments`; usage errors exit with 2, runtime errors with 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fourf_experiments::{presets_table, run_conv, ConvArgs, Mode};

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
