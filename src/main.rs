//! `fourf`: the command line of the 4f-accelerator simulator. It parses arguments
//! and calls `fourf-experiments`; usage errors exit with 2, runtime errors with 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use fourf_experiments::experiment::RunArgs;
use fourf_experiments::{
    model_presets_table, presets_table, run_conv, run_eval, run_latency, run_train, ConvArgs, EvalArgs, LatencyCommand,
    TrainArgs,
};

/// Simulator of free-space optical 4f accelerators.
#[derive(Parser)]
#[command(name = "fourf", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A command's arguments and `--json`.
#[derive(Args)]
struct WithJson<A: Args> {
    #[command(flatten)]
    args: A,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment config: every sweep point and seed, then summary.csv, report.md and
    /// plots; re-run the same command to resume.
    ///
    /// Example: `fourf run experiments/configs/quickstart.toml`
    Run(WithJson<RunArgs>),
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
    Conv(WithJson<ConvArgs>),
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
    Eval(WithJson<EvalArgs>),
    /// List the model presets.
    Models,
    /// Train a network on Fashion-MNIST from a config file; re-run to resume.
    ///
    /// Example: `fourf train models/gfnet-fmnist/train.toml --out runs/gfnet --set epochs=2`
    Train(WithJson<TrainArgs>),
    /// Project latency and energy of a network on a 4f machine beside GPU baselines.
    ///
    /// Example: `fourf latency --model gfnet-ti --machine dmd-dlp9000 --gpu h100 --gpu rtx4090 --batch 64`
    Latency(WithJson<LatencyCommand>),
}

/// The report as JSON or as its summary.
fn shown<R: serde::Serialize>(r: R, json: bool, summary: impl FnOnce(&R) -> String) -> String {
    if json {
        serde_json::to_string(&r).expect("a report serialises")
    } else {
        summary(&r)
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
        Command::Run(c) => {
            fourf_experiments::experiment::run_experiment(&c.args).map(|r| shown(r, c.json, |r| r.summary()))
        }
        Command::Validate { config, sets } => fourf_experiments::experiment::validate(&config, &sets),
        Command::Merge { dirs, out } => fourf_experiments::experiment::merge(&dirs, &out).map(|r| r.summary()),
        Command::Plot { dir } => fourf_experiments::experiment::replot(&dir).map(|r| r.summary()),
        Command::Conv(c) => run_conv(&c.args).map(|r| shown(r, c.json, |r| r.summary())),
        Command::Presets { toml: None, .. } => Ok(presets_table().trim_end().to_string()),
        Command::Presets { toml: Some(m), sets } => fourf_experiments::machine_toml(&m, &sets),
        Command::Models => Ok(model_presets_table().trim_end().to_string()),
        Command::Latency(c) => run_latency(&c.args.into()).map(|r| shown(r, c.json, |r| r.summary())),
        Command::Train(c) => run_train(&c.args).map(|r| shown(r, c.json, |r| r.summary())),
        Command::Eval(c) => run_eval(&c.args).map(|r| shown(r, c.json, |r| r.summary())),
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
