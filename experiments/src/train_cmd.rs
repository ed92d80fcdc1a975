//! `fourf train CONFIG.toml [--set key=value]... [--out DIR]`: trains a network on
//! Fashion-MNIST with AdamW, a warm-up + cosine schedule, label smoothing and
//! augmentation; evaluates on the test set every `eval_every` epochs; writes a
//! checkpoint, the weights and a CSV log each epoch. Re-run with the same command,
//! it resumes from the last checkpoint and ends with the same weights, bit for
//! bit, as a run never interrupted.
//!
//! ## Config keys
//! ```toml
//! model = "vit-fmnist"     # preset or model .toml file
//! epochs = 10              # ≥ 1
//! batch = 128              # images per optimiser step
//! micro_batch = 32         # images per parallel part of a batch (fixed, so any
//!                          # thread count gives the same bits)
//! seed = 0                 # initialisation, order and augmentation
//! label_smoothing = 0.1    # in [0, 1)
//! eval_every = 1           # epochs between test evaluations (the last is always)
//! init_weights = "models/gfnet-fmnist/weights.safetensors"   # optional: fine-tune
//! [data]
//! train = "/usr/share/datasets/fashion-mnist"   # Debian's dataset-fashion-mnist
//! test = "data"            # default: the committed test set
//! train_limit = 60000      # optional: first N training images
//! test_limit = 10000       # optional
//! [optimizer]              # AdamW
//! lr = 1e-3
//! betas = [0.9, 0.999]
//! eps = 1e-8
//! weight_decay = 0.05
//! [schedule]
//! warmup_epochs = 1
//! min_lr = 1e-5
//! [augment]
//! crop_padding = 2
//! flip = true
//! [optics]                 # optional: optics-aware training
//! machine = "lcos-pluto2"  # preset or machine file
//! set = ["camera.full_scale_e=6000"]
//! mode = "surrogate"       # or "machine": the full simulation (slow)
//! anneal_epochs = 2        # noise strength ramps 0 → 1 over these epochs
//! ```
//!
//! With `[optics]`, every op the 4f machine runs sees the machine's noise in the
//! forward pass (the surrogate of `fourf_nn::surrogate`, redrawn every step, or
//! the full simulation); gradients pass straight through. Test accuracy is
//! measured digitally; `fourf eval --backend optical` measures it on the machine.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use fourf_nn::backend::split_seed;
use fourf_nn::data::{default_test_dir, load_fashion_mnist, Dataset, Split, DEFAULT_DIR};
use fourf_nn::data::{FASHION_MNIST_MEAN, FASHION_MNIST_STD};
use fourf_nn::models::ModelConfig;
use fourf_nn::surrogate::{NoiseSource, Surrogate};
use fourf_nn::train::{
    assemble, batch_gradient, epoch_order, evaluate, AdamW, AdamWConfig, AugmentConfig, Checkpoint, ScheduleConfig,
    StepNoise,
};
use fourf_nn::weights::{load_weights, save_weights};
use fourf_sim::FourF;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::atomic::write_atomic;
use crate::machine_file::{apply, file_error, load_machine, parse_set};

fn d_batch() -> usize {
    128
}
fn d_micro() -> usize {
    32
}
fn d_smoothing() -> f64 {
    0.1
}
fn d_one() -> usize {
    1
}

/// Where the training and test images come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Directory with `train-images-idx3-ubyte[.gz]` and its labels (default:
    /// Debian's `dataset-fashion-mnist`).
    pub train: Option<PathBuf>,
    /// Directory with the `t10k-*` files (default: the committed test set).
    pub test: Option<PathBuf>,
    /// Use only the first N training images.
    pub train_limit: Option<usize>,
    /// Evaluate on only the first N test images.
    pub test_limit: Option<usize>,
}

/// What perturbs the optical ops during training.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseMode {
    /// The fast digital surrogate of the machine (default).
    #[default]
    Surrogate,
    /// The full simulation of the machine (slow; for fine-tuning on a subset).
    Machine,
}

fn d_anneal() -> f64 {
    2.0
}

/// Optics-aware training: the machine whose noise the optical ops see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpticsConfig {
    /// Machine preset or machine .toml file.
    pub machine: String,
    /// `path=value` overrides of the machine, as `--set` of `fourf eval`.
    #[serde(default)]
    pub set: Vec<String>,
    /// Surrogate (default) or the full simulation.
    #[serde(default)]
    pub mode: NoiseMode,
    /// The noise strength ramps linearly from 0 to 1 over this many epochs (default 2).
    #[serde(default = "d_anneal")]
    pub anneal_epochs: f64,
}

/// A training config file (see the module docs for every key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Model preset or model .toml file.
    pub model: String,
    /// Epochs.
    pub epochs: usize,
    /// Images per step.
    #[serde(default = "d_batch")]
    pub batch: usize,
    /// Images per parallel part of a step.
    #[serde(default = "d_micro")]
    pub micro_batch: usize,
    /// Seed of initialisation, order and augmentation (any `u64`; above `i64::MAX`
    /// as a string).
    #[serde(default, with = "crate::seed")]
    pub seed: u64,
    /// Label smoothing ε.
    #[serde(default = "d_smoothing")]
    pub label_smoothing: f64,
    /// Epochs between test evaluations.
    #[serde(default = "d_one")]
    pub eval_every: usize,
    /// Data.
    #[serde(default)]
    pub data: DataConfig,
    /// AdamW.
    #[serde(default)]
    pub optimizer: AdamWConfig,
    /// Learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Augmentation.
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Start from these weights instead of the seeded initialisation (fine-tuning).
    #[serde(default)]
    pub init_weights: Option<PathBuf>,
    /// Optics-aware training on a machine (default: none, digital training).
    #[serde(default)]
    pub optics: Option<OpticsConfig>,
}

impl TrainConfig {
    /// The config file `path` with every `--set key=value` of `sets` applied; errors
    /// name the file and line, or the `--set`, and the key.
    pub fn load(path: &Path, sets: &[String]) -> anyhow::Result<Self> {
        let text = fourf_sim::files::read_text_limited(path, fourf_sim::files::MAX_CONFIG_BYTES)
            .with_context(|| format!("cannot read training config {}", path.display()))?;
        let base: Table = toml::from_str(&text).map_err(|e| file_error(path, &text, &e))?;
        if let Err(e) = toml::from_str::<TrainConfig>(&text) {
            // Only a missing key may be supplied by a --set; anything else is the file's.
            if !e.message().starts_with("missing field") || sets.is_empty() {
                return Err(file_error(path, &text, &e).into());
            }
        }
        let mut tree = base;
        for raw in sets {
            let o = parse_set(raw)?;
            apply(&mut tree, &o)?;
            if let Err(e) = Value::Table(tree.clone()).try_into::<TrainConfig>() {
                if !e.message().starts_with("missing field") {
                    bail!("`--set {raw}`: {}", e.message().trim());
                }
            }
        }
        let config: TrainConfig = Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{}: {}", path.display(), e.message().trim()))?;
        config
            .validate()
            .with_context(|| format!("training config {}", path.display()))?;
        Ok(config)
    }

    /// `Err` naming the first setting out of range.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (key, v) in [
            ("epochs", self.epochs),
            ("batch", self.batch),
            ("micro_batch", self.micro_batch),
            ("eval_every", self.eval_every),
        ] {
            if v == 0 {
                bail!("invalid setting `{key}` = 0: must be at least 1");
            }
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            bail!(
                "invalid setting `label_smoothing` = {}: must be in [0, 1)",
                self.label_smoothing
            );
        }
        for (key, v) in [
            ("data.train_limit", self.data.train_limit),
            ("data.test_limit", self.data.test_limit),
        ] {
            if v == Some(0) {
                bail!("invalid setting `{key}` = 0: must be at least 1 (or left out for all images)");
            }
        }
        self.optimizer.validate()?;
        self.schedule.validate()?;
        if let Some(o) = &self.optics {
            if !(o.anneal_epochs.is_finite() && o.anneal_epochs >= 0.0) {
                bail!(
                    "invalid setting `optics.anneal_epochs` = {}: must be finite and ≥ 0",
                    o.anneal_epochs
                );
            }
        }
        Ok(())
    }

    /// The resolved config as TOML (every default written out).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config serialises")
    }
}

/// Arguments of `fourf train` (its command line, less `--json`).
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Training config (.toml): model, epochs, batch, optimizer, schedule, augment, data.
    #[arg(value_name = "CONFIG.toml")]
    pub config: PathBuf,
    /// Override a config key, e.g. `--set optimizer.lr=5e-4` (repeatable).
    #[arg(long = "set", value_name = "key=value")]
    pub sets: Vec<String>,
    /// Output directory for the checkpoint, weights and log (default: runs/<config stem>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// One line of the CSV log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochLog {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Test accuracy (NaN when not evaluated this epoch).
    pub test_accuracy: f64,
    /// Test cross-entropy (NaN when not evaluated).
    pub test_loss: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch's training, in seconds.
    pub wall_s: f64,
    /// Training images per second.
    pub images_per_s: f64,
}

const LOG_HEADER: &str = "epoch,train_loss,test_accuracy,test_loss,lr,wall_s,images_per_s";

impl EpochLog {
    fn csv(&self) -> String {
        format!(
            "{},{:.6},{:.4},{:.6},{:.6e},{:.1},{:.1}",
            self.epoch, self.train_loss, self.test_accuracy, self.test_loss, self.lr, self.wall_s, self.images_per_s
        )
    }
}

/// The last test accuracy measured in the lines of a training log (`log.csv`
/// without or with its header; epochs without an evaluation hold NaN).
pub fn last_test_accuracy<'a>(lines: impl DoubleEndedIterator<Item = &'a str>) -> Option<f64> {
    lines
        .rev()
        .filter_map(|l| l.split(',').nth(2)?.parse::<f64>().ok())
        .find(|a| a.is_finite())
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// The output directory.
    pub out: PathBuf,
    /// Epochs done in total.
    pub epochs: usize,
    /// Epochs done by this invocation (0 if the run had already finished).
    pub epochs_run: usize,
    /// The last test accuracy measured.
    pub test_accuracy: f64,
    /// Every epoch's log line.
    pub log: Vec<String>,
}

impl TrainReport {
    /// A short human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{LOG_HEADER}");
        for l in &self.log {
            let _ = writeln!(s, "{l}");
        }
        let _ = write!(
            s,
            "{} epochs ({} in this run); test accuracy {:.2} %; weights in {}",
            self.epochs,
            self.epochs_run,
            100.0 * self.test_accuracy,
            self.out.join("weights.safetensors").display()
        );
        s
    }
}

/// Salt of the initialisation stream.
const INIT: u64 = 0x1417;
/// Salt of the optical-noise streams.
const NOISE: u64 = 0x0_9015E;

fn load_data(config: &TrainConfig) -> anyhow::Result<(Dataset, Dataset)> {
    let train_dir = config.data.train.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    let train = load_fashion_mnist(&train_dir, Split::Train, config.data.train_limit)
        .context("training set (set `data.train` to a directory with train-images-idx3-ubyte.gz)")?;
    let test_dir = config.data.test.clone().unwrap_or_else(default_test_dir);
    let test = load_fashion_mnist(&test_dir, Split::Test, config.data.test_limit)
        .context("test set")?
        .normalised(FASHION_MNIST_MEAN, FASHION_MNIST_STD);
    Ok((train, test))
}

/// Runs (or resumes) the training run of `args`.
pub fn run_train(args: &TrainArgs) -> anyhow::Result<TrainReport> {
    let config = TrainConfig::load(&args.config, &args.sets)?;
    let resolved = config.to_toml();
    let model_config = ModelConfig::load(&config.model)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .config
            .file_stem()
            .map_or("train".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from("runs").join(stem)
    });
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create output directory {}", out.display()))?;
    let (train, test) = load_data(&config)?;
    let [c, h, w] = model_config.input_shape();
    if (c, h, w) != (1, train.images.dim().1, train.images.dim().2) {
        bail!(
            "model `{}` takes {c}×{h}×{w} images; Fashion-MNIST has 1×{}×{}",
            config.model,
            train.images.dim().1,
            train.images.dim().2
        );
    }
    let mut model = model_config.init(&mut StdRng::seed_from_u64(split_seed(config.seed, INIT)))?;
    if let Some(w) = &config.init_weights {
        load_weights(w, &mut model).context("init_weights")?;
    }
    let machine = match &config.optics {
        Some(o) => {
            let m = FourF::new(load_machine(&o.machine, &o.set).context("optics.machine")?)
                .with_context(|| format!("optics.machine `{}`", o.machine))?;
            Some(m)
        }
        None => None,
    };
    let surrogate = match (&config.optics, &machine) {
        (Some(o), Some(m)) if o.mode == NoiseMode::Surrogate => Some(Surrogate::new(m).context("optics")?),
        _ => None,
    };
    let source = match (&surrogate, &machine) {
        (Some(s), _) => Some(NoiseSource::Surrogate(s)),
        (None, Some(m)) => Some(NoiseSource::Machine(m)),
        _ => None,
    };
    let ckpt_path = out.join("checkpoint.safetensors");
    let mut log: Vec<String> = Vec::new();
    let mut optimizer = AdamW::new(config.optimizer.clone(), &mut model);
    let mut start = 0;
    if ckpt_path.is_file() {
        let ck = Checkpoint::load(&ckpt_path, &mut model, config.optimizer.clone())?;
        if ck.metadata.get("config") != Some(&resolved) {
            bail!(
                "{} was written by another config; train into another --out directory, or delete it to start over",
                ckpt_path.display()
            );
        }
        log = ck
            .metadata
            .get("log")
            .map(|l| l.lines().map(String::from).collect())
            .unwrap_or_default();
        start = ck.epoch;
        optimizer = ck.optimizer;
        eprintln!("resuming {} after epoch {start} of {}", out.display(), config.epochs);
    }
    write_atomic(&out.join("config.toml"), resolved.as_bytes())?;
    let n = train.len();
    let steps_per_epoch = n.div_ceil(config.batch) as u64;
    let total = steps_per_epoch * config.epochs as u64;
    let mut last_accuracy = last_test_accuracy(log.iter().map(String::as_str)).unwrap_or(f64::NAN);
    for epoch in start..config.epochs {
        let t0 = Instant::now();
        let bar = ProgressBar::new(n as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, config.epochs));
        let order = epoch_order(config.seed, epoch, n);
        let mut loss_sum = 0.0;
        let mut lr = 0.0;
        for (k, idx) in order.chunks(config.batch).enumerate() {
            let images = assemble(&train, idx, &config.augment, config.seed, epoch, k * config.batch);
            let labels: Vec<u8> = idx.iter().map(|&i| train.labels[i]).collect();
            let noise = source.map(|source| {
                let anneal = config.optics.as_ref().map_or(0.0, |o| o.anneal_epochs) * steps_per_epoch as f64;
                let strength = if anneal > 0.0 {
                    ((optimizer.step + 1) as f64 / anneal).min(1.0)
                } else {
                    1.0
                };
                StepNoise {
                    source,
                    strength,
                    seed: split_seed(config.seed ^ NOISE, optimizer.step),
                    spectral: Default::default(),
                }
            });
            let (loss, grad) = batch_gradient(
                &model,
                images.view(),
                &labels,
                config.label_smoothing,
                config.micro_batch,
                noise.as_ref(),
            )
            .map_err(|why| anyhow::anyhow!("optics-aware training at epoch {} step {k}: {why}", epoch + 1))?;
            if !loss.is_finite() {
                bail!(
                    "training diverged at epoch {} step {k}: loss {loss}; lower `optimizer.lr`",
                    epoch + 1
                );
            }
            lr = config
                .schedule
                .lr(config.optimizer.lr, optimizer.step, steps_per_epoch, total);
            optimizer.update(&mut model, &grad, lr);
            loss_sum += loss;
            bar.inc(idx.len() as u64);
            bar.set_message(format!("loss {:.4}", loss_sum / (k + 1) as f64));
        }
        bar.finish_and_clear();
        let wall = t0.elapsed().as_secs_f64();
        let evaluate_now = (epoch + 1) % config.eval_every == 0 || epoch + 1 == config.epochs;
        let (acc, test_loss) = if evaluate_now {
            evaluate(&model, &test, config.micro_batch)
        } else {
            (f64::NAN, f64::NAN)
        };
        if evaluate_now {
            last_accuracy = acc;
        }
        let entry = EpochLog {
            epoch: epoch + 1,
            train_loss: loss_sum / steps_per_epoch as f64,
            test_accuracy: acc,
            test_loss,
            lr,
            wall_s: wall,
            images_per_s: n as f64 / wall,
        };
        eprintln!(
            "epoch {}/{}: train loss {:.4}, test accuracy {}, {:.0} images/s",
            epoch + 1,
            config.epochs,
            entry.train_loss,
            if acc.is_finite() {
                format!("{:.2} %", 100.0 * acc)
            } else {
                "-".into()
            },
            entry.images_per_s
        );
        log.push(entry.csv());
        let log_text = log.join("\n");
        // Weights and log first, the checkpoint last: a kill between them leaves the
        // previous checkpoint, from which the epoch is redone to the same bits.
        save_weights(&out.join("weights.safetensors"), &mut model)?;
        write_atomic(&out.join("log.csv"), format!("{LOG_HEADER}\n{log_text}\n").as_bytes())?;
        let ck = Checkpoint {
            epoch: epoch + 1,
            optimizer: optimizer.clone(),
            metadata: [("config".to_string(), resolved.clone()), ("log".to_string(), log_text)]
                .into_iter()
                .collect(),
        };
        ck.save(&ckpt_path, &mut model)?;
    }
    if start >= config.epochs {
        eprintln!("{} already finished all {} epochs", out.display(), config.epochs);
        save_weights(&out.join("weights.safetensors"), &mut model)?;
    }
    Ok(TrainReport {
        out,
        epochs: config.epochs,
        epochs_run: config.epochs.saturating_sub(start),
        test_accuracy: last_accuracy,
        log,
    })
}
