//! `fourf run` and `fourf merge`: the points of an experiment run (in parallel),
//! each finished one appended to `results.jsonl` and flushed to disk; re-runs skip
//! finished points, shards run deterministic slices, merges join shards.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::config::{data_dir, BackendChoice, Experiment, ExperimentConfig, Metric, Point};
use crate::atomic::write_atomic;
use crate::eval_cmd::{run_eval, BackendKind, EvalArgs};
use crate::latency_cmd::{run_latency, LatencyArgs, LatencySource};

/// The results file in an output directory.
pub const RESULTS: &str = "results.jsonl";
/// The resolved config in an output directory.
pub const CONFIG: &str = "experiment.toml";
/// What the directory holds: hash, shard, units.
pub const MANIFEST: &str = "manifest.json";

/// One optically run op of one backend, per image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerResult {
    /// Op name.
    pub name: String,
    /// Op kind.
    pub kind: String,
    /// Frames per image.
    pub frames: f64,
    /// The op's own relative error.
    pub error: f64,
}

/// What one backend measured at one point and seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendResult {
    /// `digital`, `ideal`, `machine` or `surrogate`.
    pub backend: String,
    /// Top-1 accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Top-1 agreement with the digital backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// Mean relative logit error against the digital backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_error: Option<f64>,
    /// Frames per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames_per_image: Option<f64>,
    /// Exposures per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposures_per_image: Option<f64>,
    /// Each optical op (metric `layer_error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerResult>,
    /// Wall time of this backend, seconds.
    pub wall_s: f64,
}

/// One op of the latency projection, seconds per image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyOp {
    /// Op name.
    pub name: String,
    /// Op kind.
    pub kind: String,
    /// Optical time (passes and filter changes) per image.
    pub optical_s: f64,
    /// Electronic time per image.
    pub electronic_s: f64,
}

/// One GPU of the latency projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuLatency {
    /// GPU preset.
    pub gpu: String,
    /// Seconds per image.
    pub latency_s: f64,
    /// Joules per image.
    pub energy_j: f64,
    /// GPU time over machine time (> 1: the optics is faster).
    pub optics_speedup: f64,
    /// Input-SLM rate at which the machine ties this GPU (none: no rate can).
    pub break_even_input_rate_hz: Option<f64>,
    /// Rate of both SLMs at which the machine ties this GPU.
    pub break_even_slm_rate_hz: Option<f64>,
    /// Frame rate of the whole machine (SLMs, camera, link keeping pace) at which
    /// it ties this GPU.
    pub break_even_frame_rate_hz: Option<f64>,
}

/// The latency and energy projection of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyResult {
    /// Images per batch.
    pub batch: usize,
    /// The machine's seconds per image.
    pub latency_s: f64,
    /// The machine's joules per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_j: Option<f64>,
    /// Frames per batch.
    pub frames: usize,
    /// Filter changes per batch.
    pub filters: usize,
    /// Per op.
    pub ops: Vec<LatencyOp>,
    /// Each GPU baseline.
    pub gpus: Vec<GpuLatency>,
}

/// One finished point and seed: a line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Sweep point index.
    pub point: usize,
    /// Noise seed.
    pub seed: u64,
    /// The swept keys' values.
    pub values: BTreeMap<String, serde_json::Value>,
    /// Hash of the experiment config.
    pub config_hash: String,
    /// fourf's version.
    pub fourf_version: String,
    /// [`BUILD`] of the fourf that computed it.
    #[serde(default)]
    pub build: String,
    /// The point's resolved config.
    pub config: serde_json::Value,
    /// Images evaluated.
    pub images: usize,
    /// Each backend.
    pub backends: Vec<BackendResult>,
    /// The latency projection (metrics `latency`, `energy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyResult>,
    /// Wall time of the point, seconds.
    pub wall_s: f64,
}

impl Record {
    /// The backend called `name`.
    pub fn backend(&self, name: &str) -> Option<&BackendResult> {
        self.backends.iter().find(|b| b.backend == name)
    }

    /// The record with every wall time zeroed (what must repeat between runs).
    pub fn without_timings(&self) -> Record {
        let mut r = self.clone();
        r.wall_s = 0.0;
        for b in &mut r.backends {
            b.wall_s = 0.0;
        }
        r
    }
}

/// What an output directory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Experiment name.
    pub name: String,
    /// [`Experiment::hash`].
    pub config_hash: String,
    /// `[i, n]` for a shard.
    pub shard: Option<[usize; 2]>,
    /// Points of the whole sweep.
    pub points: usize,
    /// Seeds per point.
    pub seeds: usize,
    /// fourf's version that started the directory.
    pub fourf_version: String,
    /// [`BUILD`]: the source the results were computed with.
    #[serde(default)]
    pub build: String,
    /// [`inputs_hash`]: the contents of the files the points read.
    #[serde(default)]
    pub inputs: String,
}

/// The fingerprint of the source this fourf was built from (see `build.rs`):
/// records of another build are not mixed into a resumed run.
pub const BUILD: &str = env!("FOURF_SOURCE_HASH");

/// An FNV-1a hash, continued from `h`.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A hash of the contents of every file the sweep's points read — model and
/// machine files, weights, the test-set directory — by path, so that results
/// computed from other weights or another machine file under the same names are
/// not mixed into a resumed run.
pub fn inputs_hash(exp: &Experiment) -> anyhow::Result<String> {
    let mut files = std::collections::BTreeSet::new();
    for point in &exp.points {
        let c = exp.point_config(point)?;
        let mut add = |p: PathBuf| {
            if p.is_file() {
                files.insert(p);
            } else if p.is_dir() {
                if let Ok(entries) = std::fs::read_dir(&p) {
                    files.extend(entries.flatten().map(|e| e.path()).filter(|f| f.is_file()));
                }
            }
        };
        add(PathBuf::from(&c.model.name));
        if let Some(s) = fourf_nn::models::shipped(&c.model.name) {
            add(PathBuf::from(&s.model));
        }
        add(PathBuf::from(&c.machine.name));
        add(PathBuf::from(&c.run.ideal_machine));
        add(data_dir(&c));
        if let Some(w) = weights_of(&c) {
            add(w);
        }
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in &files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        h = fnv(h, f.to_string_lossy().as_bytes());
        h = fnv(h, &(bytes.len() as u64).to_le_bytes());
        h = fnv(h, &bytes);
    }
    Ok(format!("{h:016x}"))
}

/// Arguments of `fourf run` (its command line, less `--json`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Experiment config (.toml); see experiments/configs/ and the README's config reference.
    #[arg(value_name = "CONFIG.toml")]
    pub config: PathBuf,
    /// Override a config key, e.g. `--set data.limit=100` or
    /// `--set machine.camera.full_scale_e=500` (repeatable).
    #[arg(long = "set", value_name = "key=value")]
    pub sets: Vec<String>,
    /// Output directory (default: the config's `out`, else runs/<name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only slice i of n of the points (into DIR/shard-i-of-n); default: from
    /// SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX/FOURF_SHARDS when set.
    #[arg(long, value_name = "i/n", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Points run at once (each point uses every core).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub jobs: usize,
}

/// What `fourf run` or `fourf merge` did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Output directory.
    pub out: PathBuf,
    /// Points × seeds of this run (its shard).
    pub units: usize,
    /// Of those, finished before this run.
    pub skipped: usize,
    /// Of those, run now.
    pub ran: usize,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Files written: results, summary, report, plots.
    pub files: Vec<PathBuf>,
    /// The report's results table.
    pub table: String,
}

impl RunReport {
    /// Human-readable summary.
    pub fn summary(&self) -> String {
        format!(
            "{}\n{} point×seed runs ({} finished before, {} run now) in {:.1} s; results in {}\n{}",
            self.table.trim_end(),
            self.units,
            self.skipped,
            self.ran,
            self.wall_s,
            self.out.display(),
            self.files
                .iter()
                .map(|f| format!("  {}", f.display()))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}

/// `i/n` with `i < n`.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}`: expected i/n with 0 ≤ i < n, e.g. `--shard 0/4`");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// The shard from a job array's environment: SLURM (`SLURM_ARRAY_TASK_ID`,
/// `SLURM_ARRAY_TASK_COUNT`, `SLURM_ARRAY_TASK_MIN`) or a Kubernetes Indexed Job
/// (`JOB_COMPLETION_INDEX` with `FOURF_SHARDS`, the job's `completions`).
pub fn shard_from_env(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<(usize, usize)>> {
    let num = |k: &str| -> anyhow::Result<Option<usize>> {
        get(k)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| anyhow!("environment variable {k}={v} is not a whole number"))
            })
            .transpose()
    };
    if let (Some(id), Some(count)) = (num("SLURM_ARRAY_TASK_ID")?, num("SLURM_ARRAY_TASK_COUNT")?) {
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let i = id.checked_sub(min).filter(|i| *i < count).ok_or_else(|| {
            anyhow!(
                "SLURM_ARRAY_TASK_ID={id} is outside the array (min {min}, count {count}); use --array=0-{}",
                count.saturating_sub(1)
            )
        })?;
        return Ok(Some((i, count)));
    }
    if let Some(i) = num("JOB_COMPLETION_INDEX")? {
        let n = num("FOURF_SHARDS")?.ok_or_else(|| {
            anyhow!("JOB_COMPLETION_INDEX is set but FOURF_SHARDS is not; set FOURF_SHARDS to the Indexed Job's completions, or pass --shard i/n")
        })?;
        if i >= n {
            bail!("JOB_COMPLETION_INDEX={i} is not below FOURF_SHARDS={n}");
        }
        return Ok(Some((i, n)));
    }
    Ok(None)
}

/// The records of `path`; a last line cut short by a kill is dropped from the file.
pub fn read_results(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut records = Vec::new();
    let mut good = 0;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let complete = line.ends_with('\n');
        match serde_json::from_str::<Record>(line.trim_end()) {
            Ok(r) if complete => {
                records.push(r);
                good += line.len();
            }
            _ if i + 1 == lines.len() => {
                // An interrupted append: keep what was whole.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("repairing {}", path.display()))?;
                f.set_len(good as u64)
                    .with_context(|| format!("repairing {}", path.display()))?;
                f.sync_all().ok();
            }
            Err(e) => bail!(
                "{}: line {}: not a results record ({e}); the file was not written by `fourf run`",
                path.display(),
                i + 1
            ),
            Ok(_) => unreachable!("complete or last"),
        }
    }
    Ok(records)
}

fn write_manifest(out: &Path, m: &Manifest) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(m).expect("a manifest serialises");
    write_atomic(&out.join(MANIFEST), json.as_bytes())
        .with_context(|| format!("writing {}", out.join(MANIFEST).display()))
}

/// The manifest of directory `dir`, if it has one.
pub fn read_manifest(dir: &Path) -> anyhow::Result<Option<Manifest>> {
    let p = dir.join(MANIFEST);
    match std::fs::read_to_string(&p) {
        Ok(t) => Ok(Some(
            serde_json::from_str(&t).with_context(|| format!("{}: not a fourf manifest", p.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Prepares `out` for `exp`: refuses a directory of another config or shard.
fn prepare(out: &Path, exp: &Experiment, shard: Option<(usize, usize)>) -> anyhow::Result<()> {
    if out.exists() && !out.is_dir() {
        bail!("--out {}: exists and is not a directory", out.display());
    }
    let manifest = Manifest {
        name: exp.name().to_string(),
        config_hash: exp.hash(),
        shard: shard.map(|(i, n)| [i, n]),
        points: exp.points.len(),
        seeds: exp.config.seeds.len(),
        fourf_version: env!("CARGO_PKG_VERSION").to_string(),
        build: BUILD.to_string(),
        inputs: inputs_hash(exp)?,
    };
    if let Some(old) = read_manifest(out)? {
        if old.config_hash != manifest.config_hash {
            bail!(
                "{} holds results of a different config (hash {} ≠ {}); use another --out, or delete the directory to start over",
                out.display(),
                old.config_hash,
                manifest.config_hash
            );
        }
        if old.shard != manifest.shard {
            bail!(
                "{} holds shard {:?} but this run is shard {:?}; give each shard its own --out",
                out.display(),
                old.shard,
                manifest.shard
            );
        }
        if old.build != manifest.build {
            bail!(
                "{} holds results computed by another build of fourf (source {}, this one {}); they may differ from what this build computes, so they are not resumed: use another --out, or delete the directory to start over",
                out.display(),
                if old.build.is_empty() { "unrecorded" } else { &old.build },
                manifest.build
            );
        }
        if old.inputs != manifest.inputs {
            bail!(
                "{} holds results computed from other input files: a model, machine, weights or data file the config names has changed since (inputs {} ≠ {}); use another --out, or delete the directory to start over",
                out.display(),
                if old.inputs.is_empty() { "unrecorded" } else { &old.inputs },
                manifest.inputs
            );
        }
        return Ok(());
    }
    // A directory a kill left before its manifest holds at most the config and
    // hidden temporary files.
    if out.exists() {
        for entry in std::fs::read_dir(out)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !(name == CONFIG || name.starts_with('.')) {
                bail!(
                    "--out {} is a non-empty directory without a fourf manifest (it holds `{name}`); give an empty or new directory",
                    out.display()
                );
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create output directory {}", out.display()))?;
    write_atomic(&out.join(CONFIG), exp.to_toml().as_bytes())
        .with_context(|| format!("writing {}", out.join(CONFIG).display()))?;
    // Last: the manifest marks the directory as this config's.
    write_manifest(out, &manifest)
}

/// The output directory of a run.
pub fn out_dir(exp: &Experiment, out: Option<&Path>, shard: Option<(usize, usize)>) -> PathBuf {
    let base = out
        .map(Path::to_path_buf)
        .or_else(|| exp.config.out.clone())
        .unwrap_or_else(|| PathBuf::from("runs").join(exp.name()));
    match shard {
        Some((i, n)) => base.join(format!("shard-{i}-of-{n}")),
        None => base,
    }
}

/// Every (point, seed) of `exp`, in order; unit `u` belongs to shard `u mod n`.
fn units(exp: &Experiment) -> Vec<(usize, u64)> {
    exp.points
        .iter()
        .flat_map(|p| exp.config.seeds.iter().map(move |&s| (p.index, s)))
        .collect()
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// The weights of a point: `model.weights`, else the shipped trained model of
/// `model.name` when there is one (presets included), else none (the seeded,
/// untrained initialisation).
pub fn weights_of(c: &ExperimentConfig) -> Option<PathBuf> {
    match &c.model.weights {
        Some(w) => Some(PathBuf::from(w)),
        None => fourf_nn::models::shipped(&c.model.name).map(|s| s.weights),
    }
}

/// Runs one point at one seed: every backend, then the latency projection.
pub fn run_unit(exp: &Experiment, point: &Point, c: &ExperimentConfig, seed: u64) -> anyhow::Result<Record> {
    let start = Instant::now();
    let mut backends = Vec::new();
    let mut images = 0;
    let sets = c.machine.sets();
    for &b in &c.run.backends {
        let (kind, machine, sets) = match b {
            BackendChoice::Digital => (BackendKind::Digital, c.machine.name.clone(), sets.clone()),
            BackendChoice::Ideal => (BackendKind::Optical, c.run.ideal_machine.clone(), Vec::new()),
            BackendChoice::Machine => (BackendKind::Optical, c.machine.name.clone(), sets.clone()),
            BackendChoice::Surrogate => (BackendKind::Surrogate, c.machine.name.clone(), sets.clone()),
        };
        let r = run_eval(&EvalArgs {
            model: c.model.name.clone(),
            weights: weights_of(c),
            init_seed: 0,
            data: data_dir(c),
            limit: c.data.limit,
            backend: kind,
            machine,
            sets,
            seed,
            spectral: c.run.spectral,
            batch: c.run.batch,
            trace: None,
            interactive: false,
        })
        .with_context(|| format!("backend `{}`", b.name()))?;
        images = r.images;
        let optical = b != BackendChoice::Digital;
        let w = |m: Metric, v: f64| c.run.wants(m).then_some(v);
        backends.push(BackendResult {
            backend: b.name().to_string(),
            accuracy: w(Metric::Accuracy, r.accuracy),
            agreement: w(Metric::Agreement, r.top1_agreement),
            logit_error: w(Metric::LogitError, r.mean_relative_logit_error),
            frames_per_image: w(Metric::Frames, r.frames_per_image).filter(|_| kind == BackendKind::Optical),
            exposures_per_image: w(Metric::Frames, r.exposures_per_image).filter(|_| kind == BackendKind::Optical),
            layers: if optical && c.run.wants(Metric::LayerError) {
                r.optical_layers
                    .iter()
                    .map(|l| LayerResult {
                        name: l.name.clone(),
                        kind: l.kind.clone(),
                        frames: l.frames,
                        error: l.mean_relative_error,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            wall_s: r.wall_s,
        });
    }
    let latency = if c.run.wants(Metric::Latency) || c.run.wants(Metric::Energy) {
        let l = run_latency(&LatencyArgs {
            source: LatencySource::Model(c.model.name.clone()),
            machine: c.machine.name.clone(),
            sets: sets.clone(),
            gpus: c.latency.gpus.clone(),
            batch: c.latency.batch,
            precision: c.latency.precision,
            measurements: None,
            coprocessor_gpu: c.latency.coprocessor_gpu.clone(),
        })
        .context("latency projection")?;
        let per = 1.0 / l.batch as f64;
        let energy = c.run.wants(Metric::Energy);
        Some(LatencyResult {
            batch: l.batch,
            latency_s: l.optical.per_image_s,
            energy_j: energy.then_some(l.optical.energy_per_image_j),
            frames: l.optical.frames,
            filters: l.optical.filters,
            ops: l
                .optical
                .ops
                .iter()
                .map(|o| LatencyOp {
                    name: o.name.clone(),
                    kind: o.kind.name().to_string(),
                    optical_s: o.optical_s * per,
                    electronic_s: o.electronic_s * per,
                })
                .collect(),
            gpus: l
                .gpus
                .iter()
                .map(|g| GpuLatency {
                    gpu: g.estimate.gpu.clone(),
                    latency_s: g.estimate.per_image_s,
                    energy_j: if energy { g.estimate.energy_per_image_j } else { 0.0 },
                    optics_speedup: g.optics_speedup,
                    break_even_input_rate_hz: g.break_even_input_rate_hz,
                    break_even_slm_rate_hz: g.break_even_slm_rate_hz,
                    break_even_frame_rate_hz: g.break_even_frame_rate_hz,
                })
                .collect(),
        })
    } else {
        None
    };
    Ok(Record {
        point: point.index,
        seed,
        values: point.values.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect(),
        config_hash: exp.hash(),
        fourf_version: env!("CARGO_PKG_VERSION").to_string(),
        build: BUILD.to_string(),
        config: serde_json::to_value(c).expect("a config serialises"),
        images,
        backends,
        latency,
        wall_s: start.elapsed().as_secs_f64(),
    })
}

/// Appends `r` as one line and flushes it to disk.
fn append(file: &Mutex<std::fs::File>, r: &Record) -> anyhow::Result<()> {
    let mut line = serde_json::to_string(r).expect("a record serialises");
    line.push('\n');
    let mut f = file.lock().map_err(|_| anyhow!("a worker panicked"))?;
    f.write_all(line.as_bytes())?;
    f.flush()?;
    f.sync_data()?;
    Ok(())
}

/// Runs `fourf run`.
pub fn run_experiment(args: &RunArgs) -> anyhow::Result<RunReport> {
    let start = Instant::now();
    let exp = Experiment::load(&args.config, &args.sets)?;
    // Each machine's saturation warning once (the points' evaluations stay quiet).
    for w in exp.validate()? {
        eprintln!("warning: {w}");
    }
    let shard = match args.shard {
        Some(s) => Some(s),
        None => shard_from_env(|k| std::env::var(k).ok())?,
    };
    let out = out_dir(&exp, args.out.as_deref(), shard);
    prepare(&out, &exp, shard)?;
    let results = out.join(RESULTS);
    let done = read_results(&results)?;
    if let Some(r) = done.iter().find(|r| r.config_hash != exp.hash()) {
        bail!(
            "{}: point {} seed {} was made by a different config (hash {}); delete the directory to start over",
            results.display(),
            r.point,
            r.seed,
            r.config_hash
        );
    }
    let finished: std::collections::BTreeSet<(usize, u64)> = done.iter().map(|r| (r.point, r.seed)).collect();
    let mine: Vec<(usize, u64)> = units(&exp)
        .into_iter()
        .enumerate()
        .filter(|(u, _)| shard.is_none_or(|(i, n)| u % n == i))
        .map(|(_, x)| x)
        .collect();
    let todo: Vec<(usize, u64)> = mine.iter().copied().filter(|u| !finished.contains(u)).collect();
    let skipped = mine.len() - todo.len();
    let file = Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&results)
            .with_context(|| format!("opening {}", results.display()))?,
    );
    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} points, {elapsed} elapsed, ~{eta} left")
            .expect("a valid template"),
    );
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let jobs = args.jobs.clamp(1, todo.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Some(&(p, seed)) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                let point = &exp.points[p];
                let result = exp
                    .point_config(point)
                    .and_then(|c| run_unit(&exp, point, &c, seed))
                    .and_then(|r| append(&file, &r))
                    .with_context(|| format!("sweep point {p} ({}), seed {seed}", point.label()));
                match result {
                    Ok(()) => bar.inc(1),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        first_error.lock().expect("no panics hold it").get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = first_error.into_inner().expect("no panics hold it") {
        return Err(e.context(format!(
            "finished points are kept in {}; re-run the same command to resume",
            results.display()
        )));
    }
    let records = read_results(&results)?;
    let (files, table) = super::report::write_outputs(&out, &exp, &records)?;
    Ok(RunReport {
        out,
        units: mine.len(),
        skipped,
        ran: todo.len(),
        wall_s: start.elapsed().as_secs_f64(),
        files,
        table,
    })
}

/// Runs `fourf merge DIR... --out OUT`: joins shard directories of one config.
pub fn merge(dirs: &[PathBuf], out: &Path) -> anyhow::Result<RunReport> {
    let start = Instant::now();
    if dirs.is_empty() {
        bail!("give at least one shard directory to merge");
    }
    let mut manifests = Vec::new();
    for d in dirs {
        let m = read_manifest(d)?
            .ok_or_else(|| anyhow!("{}: no {MANIFEST}; not an output directory of `fourf run`", d.display()))?;
        manifests.push(m);
    }
    let first = &manifests[0];
    for (d, m) in dirs.iter().zip(&manifests).skip(1) {
        if m.config_hash != first.config_hash {
            bail!(
                "{} was run with a different config than {} (hash {} ≠ {}); merge only shards of one config",
                d.display(),
                dirs[0].display(),
                m.config_hash,
                first.config_hash
            );
        }
        if (&m.build, &m.inputs) != (&first.build, &first.inputs) {
            bail!(
                "{} was computed by another build of fourf or from other input files than {} (source {} ≠ {}, inputs {} ≠ {}); merge only shards of one build and one set of files",
                d.display(),
                dirs[0].display(),
                m.build,
                first.build,
                m.inputs,
                first.inputs
            );
        }
    }
    let mut shards = std::collections::BTreeSet::new();
    for (d, m) in dirs.iter().zip(&manifests) {
        if let Some(s) = m.shard {
            if !shards.insert(s) {
                bail!("{}: shard {}/{} is given twice", d.display(), s[0], s[1]);
            }
        }
    }
    if out.exists() && read_manifest(out)?.is_some_and(|m| m.config_hash != first.config_hash) {
        bail!("--out {} holds results of a different config", out.display());
    }
    let exp = Experiment::load(&dirs[0].join(CONFIG), &[])?;
    if exp.hash() != first.config_hash {
        bail!("{}: {CONFIG} does not match its manifest", dirs[0].display());
    }
    let mut all: BTreeMap<(usize, u64), Record> = BTreeMap::new();
    for d in dirs {
        for r in read_results(&d.join(RESULTS))? {
            if r.config_hash != first.config_hash {
                bail!("{}: a record of another config (hash {})", d.display(), r.config_hash);
            }
            match all.get(&(r.point, r.seed)) {
                Some(old) if old.without_timings() != r.without_timings() => bail!(
                    "point {} seed {} differs between shards; the shards did not run the same code",
                    r.point,
                    r.seed
                ),
                Some(_) => {}
                None => {
                    all.insert((r.point, r.seed), r);
                }
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_atomic(&out.join(CONFIG), exp.to_toml().as_bytes())?;
    write_manifest(
        out,
        &Manifest {
            shard: None,
            ..first.clone()
        },
    )?;
    let records: Vec<Record> = all.into_values().collect();
    let mut text = String::new();
    for r in &records {
        text += &serde_json::to_string(r).expect("a record serialises");
        text.push('\n');
    }
    write_atomic(&out.join(RESULTS), text.as_bytes())?;
    let total = exp.points.len() * exp.config.seeds.len();
    if records.len() < total {
        eprintln!(
            "warning: {} of {total} point×seed runs are in the shards given; the plots show what is there",
            records.len()
        );
    }
    let (files, table) = super::report::write_outputs(out, &exp, &records)?;
    Ok(RunReport {
        out: out.to_path_buf(),
        units: records.len(),
        skipped: records.len(),
        ran: 0,
        wall_s: start.elapsed().as_secs_f64(),
        files,
        table,
    })
}

/// Runs `fourf plot DIR`: redraws the summary, report and plots from the results.
pub fn replot(dir: &Path) -> anyhow::Result<RunReport> {
    let start = Instant::now();
    let exp = Experiment::load(&dir.join(CONFIG), &[])
        .with_context(|| format!("{} is not an output directory of `fourf run`", dir.display()))?;
    let records = read_results(&dir.join(RESULTS))?;
    if records.is_empty() {
        bail!("{}: no finished points to plot", dir.join(RESULTS).display());
    }
    let (files, table) = super::report::write_outputs(dir, &exp, &records)?;
    Ok(RunReport {
        out: dir.to_path_buf(),
        units: records.len(),
        skipped: records.len(),
        ran: 0,
        wall_s: start.elapsed().as_secs_f64(),
        files,
        table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_come_from_the_environment() {
        assert_eq!(parse_shard("1/4"), Ok((1, 4)));
        assert!(parse_shard("4/4").is_err() && parse_shard("x").is_err() && parse_shard("0/0").is_err());
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(a, _)| *a == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(shard_from_env(env(&[])).unwrap(), None);
        assert_eq!(
            shard_from_env(env(&[
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "1")
            ]))
            .unwrap(),
            Some((2, 4))
        );
        assert_eq!(
            shard_from_env(env(&[("JOB_COMPLETION_INDEX", "2"), ("FOURF_SHARDS", "3")])).unwrap(),
            Some((2, 3))
        );
        let e = shard_from_env(env(&[("JOB_COMPLETION_INDEX", "2")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("FOURF_SHARDS"), "{e}");
    }

    #[test]
    fn a_cut_last_line_is_dropped() {
        let dir = crate::test_dir("cut");
        let p = dir.join(RESULTS);
        let r = Record {
            point: 0,
            seed: 1,
            values: BTreeMap::new(),
            config_hash: "h".into(),
            fourf_version: "0".into(),
            build: BUILD.into(),
            config: serde_json::Value::Null,
            images: 1,
            backends: Vec::new(),
            latency: None,
            wall_s: 0.5,
        };
        let line = serde_json::to_string(&r).unwrap();
        std::fs::write(&p, format!("{line}\n{}", &line[..line.len() / 2])).unwrap();
        assert_eq!(read_results(&p).unwrap(), vec![r.clone()]);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{line}\n"));
        std::fs::write(&p, format!("garbage\n{line}\n")).unwrap();
        assert!(read_results(&p).unwrap_err().to_string().contains("line 1"));
    }
}
