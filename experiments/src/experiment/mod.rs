//! Experiments: a TOML config names a model, data, a machine, the backends to
//! compare, the metrics and a sweep; `fourf run` runs every point (resuming,
//! sharding), `fourf merge` joins shards, `fourf plot` redraws; each output
//! directory holds `experiment.toml`, `manifest.json`, `results.jsonl`,
//! `summary.csv`, `report.md`, `planes.json` and `plots/` (PNG and SVG).
//!
//! - [`config`]: the schema, loading, `--set`, sweep expansion, validation.
//! - [`runner`]: points in parallel, `results.jsonl` appended and flushed per
//!   point, resume, shards from `--shard` or the job array's environment, merge.
//! - [`report`]: `summary.csv`, `report.md`, and which plots to draw.
//! - [`plots`]: the plot kinds, drawn with plotters into PNG and SVG.

pub mod config;
pub mod plots;
pub mod report;
pub mod runner;

pub use config::{Experiment, ExperimentConfig};
pub use runner::{merge, parse_shard, read_results, replot, run_experiment, Record, RunArgs, RunReport};

/// Runs `fourf validate`: loads the config and checks every point; writes nothing.
pub fn validate(path: &std::path::Path, sets: &[String]) -> anyhow::Result<String> {
    let exp = Experiment::load(path, sets)?;
    for w in exp.validate()? {
        eprintln!("warning: {w}");
    }
    Ok(format!(
        "{}: valid; {} point(s) × {} seed(s) = {} runs; output {}",
        path.display(),
        exp.points.len(),
        exp.config.seeds.len(),
        exp.points.len() * exp.config.seeds.len(),
        runner::out_dir(&exp, None, None).display()
    ))
}
