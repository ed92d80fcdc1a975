//! The experiment config: its schema, loading with errors that name the file, line
//! and key, `--set` overrides, and the expansion of a sweep into points.
//!
//! Every key, its unit and its default is listed in the README's config reference
//! and in [`ExperimentConfig`]'s fields.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use fourf_hw::gpu::{gpu_preset, Precision, GPU_NAMES};
use fourf_nn::spectral::SpectralEmulation;
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::machine_file::{apply, load_machine, parse_set};

/// Largest config file read, bytes.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Most points one sweep may expand to.
pub const MAX_POINTS: usize = 100_000;

fn d_seeds() -> Vec<u64> {
    vec![0]
}
fn d_machine() -> String {
    "ideal-128".into()
}
fn d_backends() -> Vec<BackendChoice> {
    vec![BackendChoice::Digital, BackendChoice::Machine]
}
fn d_batch() -> usize {
    64
}
fn d_metrics() -> Vec<Metric> {
    Metric::ALL.to_vec()
}
fn d_gpus() -> Vec<String> {
    vec!["a100".into(), "h100".into()]
}
fn d_one() -> usize {
    1
}
fn d_precision() -> Precision {
    Precision::Fp16
}

/// An experiment config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Name of the experiment (default: the file's stem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Output directory (default: `runs/<name>`); `--out` overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<PathBuf>,
    /// Noise seeds: every point runs once per seed (error bars over seeds).
    #[serde(default = "d_seeds", with = "crate::seed::list")]
    pub seeds: Vec<u64>,
    /// The network.
    pub model: ModelSection,
    /// The images.
    #[serde(default)]
    pub data: DataSection,
    /// The optical machine.
    #[serde(default)]
    pub machine: MachineSection,
    /// What runs and what is measured.
    #[serde(default)]
    pub run: RunSection,
    /// The latency and energy projection.
    #[serde(default)]
    pub latency: LatencySection,
    /// Parameters to sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepSection>,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Model preset, model `.toml` file or shipped trained model (`fourf models`).
    pub name: String,
    /// Safetensors file or shipped model name; default: the shipped trained model
    /// of that name when there is one (presets such as `gfnet-fmnist` included),
    /// else the seeded (untrained) initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
}

/// `[data]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Directory with the Fashion-MNIST `t10k-*` IDX files (default: the committed
    /// test set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Use only the first N test images (default: all 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `[machine]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSection {
    /// Machine preset or machine `.toml` file (default `ideal-128`).
    #[serde(default = "d_machine")]
    pub name: String,
    /// Overrides of the machine's settings, as `fourf eval --set`: a table whose
    /// dotted paths are machine keys, e.g. `camera.full_scale_e = 50`.
    #[serde(default, skip_serializing_if = "Table::is_empty")]
    pub set: Table,
}

impl Default for MachineSection {
    fn default() -> Self {
        MachineSection {
            name: d_machine(),
            set: Table::new(),
        }
    }
}

impl MachineSection {
    /// The overrides as `path=value` strings (dotted paths, TOML values).
    pub fn sets(&self) -> Vec<String> {
        fn walk(prefix: &str, t: &Table, out: &mut Vec<String>) {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    Value::Table(inner) => walk(&path, inner, out),
                    v => out.push(format!("{path}={v}")),
                }
            }
        }
        let mut out = Vec::new();
        walk("", &self.set, &mut out);
        out
    }
}

/// One backend an experiment compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// The exact digital reference.
    Digital,
    /// The noiseless machine `run.ideal_machine` (full simulation).
    Ideal,
    /// The configured machine (full simulation).
    Machine,
    /// The configured machine's fast noise surrogate.
    Surrogate,
}

impl BackendChoice {
    /// Every backend, in plotting order.
    pub const ALL: [BackendChoice; 4] = [
        BackendChoice::Digital,
        BackendChoice::Ideal,
        BackendChoice::Machine,
        BackendChoice::Surrogate,
    ];

    /// Plotting and table position of the backend called `name` (unknown names last).
    pub fn rank(name: &str) -> usize {
        BackendChoice::ALL
            .iter()
            .position(|b| b.name() == name)
            .unwrap_or(BackendChoice::ALL.len())
    }

    /// The config and results name.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Digital => "digital",
            BackendChoice::Ideal => "ideal",
            BackendChoice::Machine => "machine",
            BackendChoice::Surrogate => "surrogate",
        }
    }
}

/// What an experiment measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Top-1 accuracy on the images.
    Accuracy,
    /// Fraction of images whose top-1 class equals the digital backend's.
    Agreement,
    /// Mean relative logit error against the digital backend.
    LogitError,
    /// Each optical op's own relative error.
    LayerError,
    /// Frames, passes and exposures per image.
    Frames,
    /// Projected latency per image on the machine and the GPUs, op by op.
    Latency,
    /// Projected energy per image.
    Energy,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 7] = [
        Metric::Accuracy,
        Metric::Agreement,
        Metric::LogitError,
        Metric::LayerError,
        Metric::Frames,
        Metric::Latency,
        Metric::Energy,
    ];
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Backends to compare (default `["digital", "machine"]`); empty: a latency-only
    /// experiment (any model size, no images).
    #[serde(default = "d_backends")]
    pub backends: Vec<BackendChoice>,
    /// The noiseless machine of the `ideal` backend (default `ideal-128`).
    #[serde(default = "d_machine")]
    pub ideal_machine: String,
    /// How circular spectral filters run on the optics: `circular` (default) or
    /// `zero_padded`.
    #[serde(default)]
    pub spectral: SpectralEmulation,
    /// Images per batch on the optics (default 64; 1 runs image by image).
    #[serde(default = "d_batch")]
    pub batch: usize,
    /// Metrics to record (default: all).
    #[serde(default = "d_metrics")]
    pub metrics: Vec<Metric>,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            backends: d_backends(),
            ideal_machine: d_machine(),
            spectral: SpectralEmulation::default(),
            batch: d_batch(),
            metrics: d_metrics(),
        }
    }
}

impl RunSection {
    /// Whether `m` is recorded.
    pub fn wants(&self, m: Metric) -> bool {
        self.metrics.contains(&m)
    }
}

/// `[latency]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySection {
    /// GPU presets to compare with (default `["a100", "h100"]`).
    #[serde(default = "d_gpus")]
    pub gpus: Vec<String>,
    /// Images per batch for the latency projection (default 1).
    #[serde(default = "d_one")]
    pub batch: usize,
    /// GPU arithmetic precision (default `fp16`).
    #[serde(default = "d_precision")]
    pub precision: Precision,
    /// Run the machine's electronic ops on this GPU instead of its `[timing]`
    /// co-processor (default: the co-processor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coprocessor_gpu: Option<String>,
}

impl Default for LatencySection {
    fn default() -> Self {
        LatencySection {
            gpus: d_gpus(),
            batch: 1,
            precision: d_precision(),
            coprocessor_gpu: None,
        }
    }
}

/// How several sweep axes combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepMode {
    /// Every combination (the last axis varies fastest).
    #[default]
    Grid,
    /// The i-th value of every axis together (axes of equal length).
    Zip,
}

/// `[sweep]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSection {
    /// `grid` (default) or `zip`.
    #[serde(default)]
    pub mode: SweepMode,
    /// The swept keys, as `[[sweep.axis]]` tables.
    #[serde(default)]
    pub axis: Vec<SweepAxis>,
}

/// `[[sweep.axis]]`: one swept key and its values (exactly one of `values`,
/// `linspace`, `logspace`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepAxis {
    /// A config key: `machine.<machine key>` (e.g. `machine.camera.full_scale_e`),
    /// `model.name`, `model.weights`, `data.limit`, `run.<key>`, `latency.<key>`.
    pub key: String,
    /// The values, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
    /// `num` values evenly spaced from `start` to `stop` inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linspace: Option<Spacing>,
    /// `num` values evenly spaced on a log axis from `start` to `stop` inclusive
    /// (both > 0; as numpy's `geomspace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logspace: Option<Spacing>,
}

/// `{ start, stop, num }` of a spaced axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spacing {
    /// First value.
    pub start: Value,
    /// Last value.
    pub stop: Value,
    /// Number of values (≥ 1).
    pub num: usize,
}

impl SweepAxis {
    /// Whether the axis is log-spaced (its plots get a log axis).
    pub fn is_log(&self) -> bool {
        self.logspace.is_some()
    }

    /// The axis's values; `Err` names the key.
    pub fn expand(&self) -> anyhow::Result<Vec<Value>> {
        let key = &self.key;
        let given = [self.values.is_some(), self.linspace.is_some(), self.logspace.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            bail!("sweep axis `{key}`: give exactly one of `values`, `linspace` or `logspace`");
        }
        if let Some(v) = &self.values {
            if v.is_empty() {
                bail!("sweep axis `{key}`: `values` is empty; give at least one value");
            }
            return Ok(v.clone());
        }
        let (s, log) = match (&self.linspace, &self.logspace) {
            (Some(s), _) => (s, false),
            (_, Some(s)) => (s, true),
            _ => unreachable!("checked above"),
        };
        let what = if log { "logspace" } else { "linspace" };
        let num = |v: &Value, end: &str| -> anyhow::Result<f64> {
            let x = match v {
                Value::Integer(i) => *i as f64,
                Value::Float(f) => *f,
                other => bail!("sweep axis `{key}`: `{what}.{end}` = {other} is not a number"),
            };
            if !x.is_finite() {
                bail!("sweep axis `{key}`: `{what}.{end}` = {x} is not finite");
            }
            Ok(x)
        };
        let (a, b) = (num(&s.start, "start")?, num(&s.stop, "stop")?);
        if s.num == 0 {
            bail!("sweep axis `{key}`: `{what}.num` = 0 makes an empty sweep; give at least 1");
        }
        if s.num > MAX_POINTS {
            bail!("sweep axis `{key}`: `{what}.num` = {} exceeds {MAX_POINTS}", s.num);
        }
        if log && (a <= 0.0 || b <= 0.0) {
            bail!("sweep axis `{key}`: logspace needs start and stop > 0 (got {a} and {b})");
        }
        let at = |i: usize| {
            if s.num == 1 {
                return a;
            }
            let t = i as f64 / (s.num - 1) as f64;
            if log {
                (a.ln() + t * (b.ln() - a.ln())).exp()
            } else {
                a + t * (b - a)
            }
        };
        let xs: Vec<f64> = (0..s.num).map(at).collect();
        // Integer ends give integers where every value is whole (e.g. bit depths).
        let ints = matches!((&s.start, &s.stop), (Value::Integer(_), Value::Integer(_)))
            && xs.iter().all(|x| (x - x.round()).abs() < 1e-9 * x.abs().max(1.0));
        Ok(xs
            .into_iter()
            .map(|x| {
                if ints {
                    Value::Integer(x.round() as i64)
                } else {
                    Value::Float(x)
                }
            })
            .collect())
    }
}

/// One point of a sweep: its index and the value of each swept key.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// 0-based index in sweep order.
    pub index: usize,
    /// `(key, value)` per axis, in axis order.
    pub values: Vec<(String, Value)>,
}

impl Point {
    /// `key = value, ...` for messages and reports.
    pub fn label(&self) -> String {
        if self.values.is_empty() {
            return "the only point".into();
        }
        self.values
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The top-level keys a `--set` or a sweep may change.
const SETTABLE: [&str; 5] = ["model", "data", "machine", "run", "latency"];

/// The tree path of config key `key`: `machine.<k>` other than `machine.name` and
/// `machine.set…` is a machine setting, `machine.set.<k>`.
pub fn key_path(key: &str) -> anyhow::Result<Vec<String>> {
    let parts: Vec<String> = key.split('.').map(|p| p.trim().to_string()).collect();
    if parts.iter().any(String::is_empty) {
        bail!("`{key}` is not a config key (empty part between dots)");
    }
    match parts[0].as_str() {
        "machine" if parts.len() > 1 && parts[1] != "name" && parts[1] != "set" => {
            let mut p = vec!["machine".to_string(), "set".to_string()];
            p.extend(parts[1..].iter().cloned());
            Ok(p)
        }
        top if SETTABLE.contains(&top) && parts.len() > 1 => Ok(parts),
        "seeds" | "name" | "out" | "sweep" if parts.len() == 1 => Ok(parts),
        _ => bail!(
            "`{key}` is not a config key; keys start with {} (e.g. `machine.camera.full_scale_e`, `run.batch`), or are `seeds`, `name` or `out`",
            SETTABLE.map(|s| format!("`{s}.`")).join(", ")
        ),
    }
}

fn set_path(tree: &mut Table, path: &[String], value: Value, what: &str) -> anyhow::Result<()> {
    let raw = format!("{}={value}", path.join("."));
    let o = crate::machine_file::Override {
        raw: &raw,
        path: path.iter().map(String::as_str).collect(),
        value,
    };
    apply(tree, &o).map_err(|e| anyhow!("{what}: {e}"))
}

/// `Levenshtein` distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A hint for serde's "unknown field `x`, expected one of `a`, `b`" or
/// "unknown variant" message: the closest valid name.
fn hint(message: &str) -> Option<String> {
    let ticks: Vec<&str> = message.split('`').collect();
    // ticks[1] is the bad name, every odd index after it a valid one.
    if ticks.len() < 4 || !(message.starts_with("unknown field") || message.starts_with("unknown variant")) {
        return None;
    }
    let bad = ticks[1];
    let best = ticks.iter().skip(3).step_by(2).min_by_key(|c| distance(bad, c))?;
    (distance(bad, best) <= bad.len().max(3) / 2 + 1).then(|| format!("did you mean `{best}`?"))
}

/// `file:line: `key`: message; hint` from a TOML error.
fn located(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return anyhow!("{}: {message}", path.display());
    };
    let start = span.start.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    let src = text.lines().nth(line - 1).unwrap_or("").trim();
    let key = src
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let mut msg = format!("{}:{line}: ", path.display());
    if let Some(k) = key {
        msg += &format!("`{k}`: ");
    }
    msg += &message;
    if let Some(h) = hint(&message) {
        msg += &format!("; {h}");
    }
    anyhow!(msg)
}

/// A loaded experiment: the config as given (with `--set`s), its tree, its points.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// The config file.
    pub path: PathBuf,
    /// The config with every `--set` applied and the name resolved.
    pub config: ExperimentConfig,
    /// The config's tree (what each point's values are applied to).
    tree: Table,
    /// The sweep's points (one, with no values, without a sweep).
    pub points: Vec<Point>,
    /// Whether each axis is log-spaced, by key.
    pub log_axes: BTreeMap<String, bool>,
}

impl Experiment {
    /// Reads `path`, applies `sets` and expands the sweep. Checks syntax, keys,
    /// types and the sweep; [`Experiment::validate`] checks every point's machine,
    /// model, weights and data.
    pub fn load(path: &Path, sets: &[String]) -> anyhow::Result<Experiment> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read experiment config {}", path.display()))?;
        if !meta.is_file() {
            bail!(
                "{}: not a regular file; give an experiment config (.toml)",
                path.display()
            );
        }
        if meta.len() > MAX_CONFIG_BYTES {
            bail!(
                "{}: {} bytes is too large for an experiment config (at most {MAX_CONFIG_BYTES})",
                path.display(),
                meta.len()
            );
        }
        let text = fourf_sim::files::read_text_limited(path, fourf_sim::files::MAX_CONFIG_BYTES)
            .with_context(|| format!("cannot read experiment config {}", path.display()))?;
        let mut tree: Table = toml::from_str(&text).map_err(|e| located(path, &text, &e))?;
        if let Err(e) = toml::from_str::<ExperimentConfig>(&text) {
            if !e.message().starts_with("missing field") || sets.is_empty() {
                return Err(located(path, &text, &e));
            }
        }
        for raw in sets {
            let (key, value) = raw
                .split_once('=')
                .filter(|(_, v)| !v.trim().is_empty())
                .ok_or_else(|| anyhow!("`--set {raw}`: expected key=value, e.g. `--set data.limit=100`"))?;
            let path = key_path(key.trim()).with_context(|| format!("`--set {raw}`"))?;
            let value = parse_set(&format!("v={value}")).map_err(|e| anyhow!("{e}"))?.value;
            set_path(&mut tree, &path, value, &format!("`--set {raw}`"))?;
            if let Err(e) = Value::Table(tree.clone()).try_into::<ExperimentConfig>() {
                if !e.message().starts_with("missing field") {
                    let m = e.message().trim().to_string();
                    let h = hint(&m).map_or(String::new(), |h| format!("; {h}"));
                    bail!("`--set {raw}`: {m}{h}");
                }
            }
        }
        let mut config: ExperimentConfig = Value::Table(tree.clone())
            .try_into()
            .map_err(|e: toml::de::Error| anyhow!("{}: {}", path.display(), e.message().trim()))?;
        if config.name.is_none() {
            let stem = path
                .file_stem()
                .map_or("experiment".into(), |s| s.to_string_lossy().into_owned());
            config.name = Some(stem.clone());
            tree.insert("name".into(), Value::String(stem));
        }
        check_sections(&config).with_context(|| format!("experiment config {}", path.display()))?;
        let (points, log_axes) =
            expand(config.sweep.as_ref()).with_context(|| format!("{}: [sweep]", path.display()))?;
        tree.remove("sweep");
        Ok(Experiment {
            path: path.to_path_buf(),
            config,
            tree,
            points,
            log_axes,
        })
    }

    /// The experiment's name.
    pub fn name(&self) -> &str {
        self.config.name.as_deref().unwrap_or("experiment")
    }

    /// The swept keys, in axis order.
    pub fn axes(&self) -> Vec<String> {
        self.config
            .sweep
            .as_ref()
            .map_or(Vec::new(), |s| s.axis.iter().map(|a| a.key.clone()).collect())
    }

    /// The resolved config of point `p` (the base with the point's values; no
    /// sweep), checked for keys, types and ranges.
    pub fn point_config(&self, p: &Point) -> anyhow::Result<ExperimentConfig> {
        let mut tree = self.tree.clone();
        let what = || format!("sweep point {} ({})", p.index, p.label());
        for (key, value) in &p.values {
            let path = key_path(key).with_context(what)?;
            set_path(&mut tree, &path, value.clone(), &what())?;
        }
        let c: ExperimentConfig = Value::Table(tree).try_into().map_err(|e: toml::de::Error| {
            let m = e.message().trim().to_string();
            let h = hint(&m).map_or(String::new(), |h| format!("; {h}"));
            anyhow!("{}: {m}{h}", what())
        })?;
        check_sections(&c).with_context(what)?;
        Ok(c)
    }

    /// Checks every point: its config, its machine (and the ideal machine when
    /// compared), its model and weights, and its data; writes nothing. Returns the
    /// machines' saturation warnings, each once.
    pub fn validate(&self) -> anyhow::Result<Vec<String>> {
        let mut warnings = Vec::new();
        for p in &self.points {
            let c = self.point_config(p)?;
            let what = || {
                if self.points.len() > 1 {
                    format!("{}: sweep point {} ({})", self.path.display(), p.index, p.label())
                } else {
                    self.path.display().to_string()
                }
            };
            if let Some(w) = check_resources(&c).with_context(what)? {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        }
        Ok(warnings)
    }

    /// A stable hash of what the results depend on (everything but `out`), as 16
    /// hex digits: runs, shards and merges refuse to mix different hashes.
    pub fn hash(&self) -> String {
        let mut c = self.config.clone();
        c.out = None;
        let text = toml::to_string(&c).expect("a config serialises");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// The config with every `--set` applied, as TOML (written to the output
    /// directory as `experiment.toml`).
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.config).expect("a config serialises")
    }
}

/// Range checks of the sections that need no files.
fn check_sections(c: &ExperimentConfig) -> anyhow::Result<()> {
    if c.seeds.is_empty() {
        bail!("`seeds` is empty; give at least one noise seed, e.g. `seeds = [0]`");
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(s) = c.seeds.iter().find(|s| !seen.insert(**s)) {
        bail!("`seeds` lists {s} twice; each seed runs once per point");
    }
    if c.data.limit == Some(0) {
        bail!("invalid setting `data.limit` = 0: must be at least 1 (or left out for all images)");
    }
    if c.run.backends.is_empty() && !(c.run.wants(Metric::Latency) || c.run.wants(Metric::Energy)) {
        bail!("nothing to measure: `run.backends` is empty and `run.metrics` has neither latency nor energy; backends: digital, ideal, machine, surrogate");
    }
    if c.run.batch == 0 {
        bail!("invalid setting `run.batch` = 0: must be at least 1");
    }
    if c.latency.batch == 0 {
        bail!("invalid setting `latency.batch` = 0: must be at least 1");
    }
    if c.run.batch > 4096 || c.latency.batch > 1 << 20 {
        bail!(
            "`run.batch` = {} or `latency.batch` = {} is too large (at most 4096 and {})",
            c.run.batch,
            c.latency.batch,
            1 << 20
        );
    }
    if c.run.backends.contains(&BackendChoice::Surrogate) && c.run.spectral != SpectralEmulation::Circular {
        bail!("the `surrogate` backend models circular spectral filters only; set `run.spectral = \"circular\"` or drop it from `run.backends`");
    }
    for g in c.latency.gpus.iter().chain(c.latency.coprocessor_gpu.iter()) {
        if gpu_preset(g).is_none() {
            bail!("unknown GPU `{g}` in [latency]; valid: {}", GPU_NAMES.join(", "));
        }
    }
    Ok(())
}

/// Checks a point's machine(s), model, weights and data; returns its machine's
/// saturation warning, if any.
pub(crate) fn check_resources(c: &ExperimentConfig) -> anyhow::Result<Option<String>> {
    let needs_machine = c
        .run
        .backends
        .iter()
        .any(|b| matches!(b, BackendChoice::Machine | BackendChoice::Surrogate))
        || c.run.wants(Metric::Latency)
        || c.run.wants(Metric::Energy);
    let mut warning = None;
    if needs_machine {
        let m = load_machine(&c.machine.name, &c.machine.sets())
            .with_context(|| format!("machine `{}`", c.machine.name))?;
        // A machine that is simulated must also build (as `fourf eval` will build
        // it); a latency-only one need not.
        let simulated = c
            .run
            .backends
            .iter()
            .any(|b| matches!(b, BackendChoice::Machine | BackendChoice::Surrogate));
        if simulated {
            warning = fourf_sim::FourF::new(m)
                .with_context(|| format!("machine `{}`", c.machine.name))?
                .saturation_warning();
        }
    }
    if c.run.backends.contains(&BackendChoice::Ideal) {
        load_machine(&c.run.ideal_machine, &[])
            .with_context(|| format!("`run.ideal_machine` `{}`", c.run.ideal_machine))?;
    }
    fourf_nn::models::ModelConfig::load(&c.model.name).with_context(|| format!("`model.name` `{}`", c.model.name))?;
    if let Some(w) = &c.model.weights {
        if !Path::new(w).exists() && fourf_nn::models::shipped(w).is_none() {
            bail!(
                "`model.weights` `{w}`: no such file and no shipped model of that name; give a .safetensors file or one of: {}",
                fourf_nn::models::shipped_names().join(", ")
            );
        }
    }
    if c.run.backends.is_empty() {
        // A latency-only experiment reads no images.
        return Ok(warning);
    }
    let dir = data_dir(c);
    if !dir.is_dir() {
        bail!(
            "`data.dir` {}: no such directory; give the directory holding t10k-images-idx3-ubyte.gz (default: the committed data/)",
            dir.display()
        );
    }
    let has = |stem: &str| dir.join(stem).exists() || dir.join(format!("{stem}.gz")).exists();
    if !has("t10k-images-idx3-ubyte") || !has("t10k-labels-idx1-ubyte") {
        bail!(
            "`data.dir` {}: no t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] there",
            dir.display()
        );
    }
    Ok(warning)
}

/// A point's test-set directory.
pub(crate) fn data_dir(c: &ExperimentConfig) -> PathBuf {
    c.data.dir.clone().unwrap_or_else(fourf_nn::data::default_test_dir)
}

/// The points of `sweep` (one point without values when there is none).
fn expand(sweep: Option<&SweepSection>) -> anyhow::Result<(Vec<Point>, BTreeMap<String, bool>)> {
    let Some(sweep) = sweep else {
        return Ok((
            vec![Point {
                index: 0,
                values: Vec::new(),
            }],
            BTreeMap::new(),
        ));
    };
    if sweep.axis.is_empty() {
        bail!("the sweep has no axes; add `[[sweep.axis]]` tables with a key and values, or remove [sweep]");
    }
    let mut axes = Vec::new();
    let mut log_axes = BTreeMap::new();
    for a in &sweep.axis {
        key_path(&a.key).with_context(|| format!("sweep axis `{}`", a.key))?;
        if log_axes.insert(a.key.clone(), a.is_log()).is_some() {
            bail!("sweep axis `{}` is given twice", a.key);
        }
        axes.push((a.key.clone(), a.expand()?));
    }
    let combos: Vec<Vec<usize>> = match sweep.mode {
        SweepMode::Zip => {
            let n = axes[0].1.len();
            if let Some((k, v)) = axes.iter().find(|(_, v)| v.len() != n) {
                bail!(
                    "mode = \"zip\" needs axes of equal length: `{}` has {n} values, `{k}` has {}",
                    axes[0].0,
                    v.len()
                );
            }
            (0..n).map(|i| vec![i; axes.len()]).collect()
        }
        SweepMode::Grid => {
            let total = axes.iter().try_fold(1usize, |acc, (_, v)| acc.checked_mul(v.len()));
            match total {
                Some(t) if t <= MAX_POINTS => {}
                _ => bail!("the grid has more than {MAX_POINTS} points; sweep fewer values"),
            }
            let mut combos = vec![Vec::new()];
            for (_, values) in &axes {
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        (0..values.len()).map(move |i| {
                            let mut c = c.clone();
                            c.push(i);
                            c
                        })
                    })
                    .collect();
            }
            combos
        }
    };
    let points = combos
        .into_iter()
        .enumerate()
        .map(|(index, c)| Point {
            index,
            values: c
                .iter()
                .zip(&axes)
                .map(|(&i, (k, v))| (k.clone(), v[i].clone()))
                .collect(),
        })
        .collect();
    Ok((points, log_axes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(tag: &str, text: &str) -> PathBuf {
        let dir = crate::test_dir(tag);
        let p = dir.join(format!("{tag}.toml"));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn spacings_expand_with_their_ends() {
        let axis = |lin: bool, start: Value, stop: Value, num| SweepAxis {
            key: "machine.camera.full_scale_e".into(),
            values: None,
            linspace: lin.then(|| Spacing {
                start: start.clone(),
                stop: stop.clone(),
                num,
            }),
            logspace: (!lin).then_some(Spacing { start, stop, num }),
        };
        let v = axis(false, Value::Float(10.0), Value::Float(1e4), 4).expand().unwrap();
        let xs: Vec<f64> = v.iter().map(|v| v.as_float().unwrap()).collect();
        for (x, want) in xs.iter().zip([10.0, 100.0, 1000.0, 10000.0]) {
            assert!((x / want - 1.0).abs() < 1e-12, "{x} vs {want}");
        }
        let v = axis(true, Value::Integer(2), Value::Integer(8), 4).expand().unwrap();
        assert_eq!(v, [2, 4, 6, 8].map(Value::Integer));
        // Non-integral steps between integer ends stay floats.
        let v = axis(true, Value::Integer(0), Value::Integer(1), 3).expand().unwrap();
        assert_eq!(v[1], Value::Float(0.5));
        assert!(axis(true, Value::Integer(0), Value::Integer(1), 0).expand().is_err());
        assert!(axis(false, Value::Integer(0), Value::Integer(1), 3).expand().is_err());
    }

    #[test]
    fn grid_and_zip() {
        let base = "[model]\nname = \"gfnet-fmnist\"\n";
        let grid = write(
            "grid",
            &format!("{base}[[sweep.axis]]\nkey = \"run.batch\"\nvalues = [1, 2]\n[[sweep.axis]]\nkey = \"machine.camera.bits\"\nvalues = [4, 6, 8]\n"),
        );
        let e = Experiment::load(&grid, &[]).unwrap();
        assert_eq!(e.points.len(), 6);
        assert_eq!(e.points[1].values[1].1, Value::Integer(6));
        assert_eq!(e.points[3].values[0].1, Value::Integer(2));
        let c = e.point_config(&e.points[5]).unwrap();
        assert_eq!(c.run.batch, 2);
        assert_eq!(c.machine.sets(), vec!["camera.bits=8".to_string()]);
        let zip = write(
            "zip",
            &format!("{base}[sweep]\nmode = \"zip\"\n[[sweep.axis]]\nkey = \"run.batch\"\nvalues = [1, 2]\n[[sweep.axis]]\nkey = \"data.limit\"\nvalues = [4, 6, 8]\n"),
        );
        let err = format!("{:#}", Experiment::load(&zip, &[]).unwrap_err());
        assert!(err.contains("equal length"), "{err}");
    }

    #[test]
    fn errors_name_file_line_key_and_hint() {
        let p = write("bad", "[model]\nname = \"gfnet-fmnist\"\n[run]\nbatchh = 3\n");
        let err = format!("{:#}", Experiment::load(&p, &[]).unwrap_err());
        assert!(
            err.contains("bad.toml:4") && err.contains("`batchh`") && err.contains("did you mean `batch`"),
            "{err}"
        );
        let p = write("type", "[model]\nname = \"gfnet-fmnist\"\n[data]\nlimit = \"many\"\n");
        let err = format!("{:#}", Experiment::load(&p, &[]).unwrap_err());
        assert!(err.contains("type.toml:4") && err.contains("`limit`"), "{err}");
        let p = write("set", "[model]\nname = \"gfnet-fmnist\"\n");
        let err = format!(
            "{:#}",
            Experiment::load(&p, &["run.bakends=[\"digital\"]".into()]).unwrap_err()
        );
        assert!(err.contains("did you mean `backends`"), "{err}");
        let err = format!("{:#}", Experiment::load(&p, &["wavelength=1".into()]).unwrap_err());
        assert!(err.contains("not a config key"), "{err}");
    }

    #[test]
    fn hash_ignores_out_only() {
        let p = write("hash", "[model]\nname = \"gfnet-fmnist\"\n");
        let a = Experiment::load(&p, &[]).unwrap();
        let b = Experiment::load(&p, &["out=\"elsewhere\"".into()]).unwrap();
        let c = Experiment::load(&p, &["data.limit=5".into()]).unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
    }
}
