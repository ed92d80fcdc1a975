//! The pieces of a training loop: the epoch's order of images, the batch with its
//! augmentation, the loss and gradient of a batch, evaluation, and checkpoints.
//!
//! ## Reproducibility
//! Every random choice is drawn from a stream named by the run's seed and what it
//! is for, never from a generator that carries over: the order of epoch `e` from
//! `split_seed(seed, e)`, the augmentation of the image at position `i` of epoch
//! `e` from `split_seed(split_seed(seed ^ AUGMENT, e), i)`. A run resumed at an
//! epoch boundary therefore needs no generator state, only the epoch number.
//! A batch is cut into micro-batches of a fixed size (not one per thread); their
//! gradients are computed in parallel and summed in their order, so the weights
//! are the same bits at any thread count.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{s, Array2, Array4, ArrayView2, ArrayView4, Axis};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use thiserror::Error;

use crate::backend::split_seed;
use crate::data::{Dataset, FASHION_MNIST_MEAN, FASHION_MNIST_STD};
use crate::models::{ConvShareVit, Model, Transformer};
use crate::params::{zeros_like, Parameters};
use crate::spectral::SpectralEmulation;
use crate::surrogate::{merge_usage, NoiseSource, OpUsage, OpticsNoise};
use crate::train::augment::AugmentConfig;
use crate::train::loss::cross_entropy;
use crate::train::optim::{AdamW, AdamWConfig};
use crate::weights::{TensorStore, WeightsError};

/// Salt of the augmentation streams (so they differ from the order streams).
const AUGMENT: u64 = 0xA0_6E_17;

/// A model or file that training cannot use.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A checkpoint cannot be read or written.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A checkpoint is not one this run wrote.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A network with a batched training forward and a backward pass.
trait Trainable: Parameters + Clone + Send + Sync {
    type Cache;
    fn forward_batch(&self, images: ArrayView4<f32>, noise: Option<&mut OpticsNoise>) -> (Array2<f32>, Self::Cache);
    fn backward_batch(&self, cache: &Self::Cache, g: ArrayView2<f32>, grad: &mut Self);
}

impl Trainable for Transformer {
    type Cache = crate::models::transformer::TransformerCache;
    fn forward_batch(&self, images: ArrayView4<f32>, noise: Option<&mut OpticsNoise>) -> (Array2<f32>, Self::Cache) {
        self.forward_optics_aware(images, noise)
    }
    fn backward_batch(&self, cache: &Self::Cache, g: ArrayView2<f32>, grad: &mut Self) {
        self.backward(cache, g, grad)
    }
}

impl Trainable for ConvShareVit {
    type Cache = crate::models::conv_share_vit::ConvShareVitCache;
    fn forward_batch(&self, images: ArrayView4<f32>, noise: Option<&mut OpticsNoise>) -> (Array2<f32>, Self::Cache) {
        self.forward_optics_aware(images, noise)
    }
    fn backward_batch(&self, cache: &Self::Cache, g: ArrayView2<f32>, grad: &mut Self) {
        self.backward(cache, g, grad)
    }
}

fn gradient_of<M: Trainable>(
    model: &M,
    images: ArrayView4<f32>,
    labels: &[u8],
    label_smoothing: f64,
    micro: usize,
    noise: Option<&StepNoise>,
) -> Result<(f64, M), String> {
    let b = labels.len();
    let parts: Vec<(f64, M)> = (0..b)
        .step_by(micro.max(1))
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|start| {
            let end = (start + micro.max(1)).min(b);
            let x = images.slice(s![start..end, .., .., ..]);
            let mut n = noise.map(|n| n.for_images(start, end - start));
            let (logits, cache) = model.forward_batch(x, n.as_mut());
            if let Some(why) = n.as_mut().and_then(|n| n.take_failure()) {
                return Err(why);
            }
            let (loss, mut g) = cross_entropy(logits.view(), &labels[start..end], label_smoothing);
            // The chunk's mean → its share of the batch mean.
            g *= (end - start) as f32 / b as f32;
            let mut grad = zeros_like(model);
            model.backward_batch(&cache, g.view(), &mut grad);
            Ok((loss * (end - start) as f64, grad))
        })
        .collect::<Result<_, _>>()?;
    let mut it = parts.into_iter();
    let (mut loss, mut grad) = it.next().expect("a batch has at least one image");
    for (l, g) in it {
        loss += l;
        add_params(&mut grad, &g);
    }
    Ok((loss / b as f64, grad))
}

fn logits_of<M: Trainable>(
    model: &M,
    images: ArrayView4<f32>,
    micro: usize,
    noise: Option<&StepNoise>,
    first: usize,
) -> Result<(Array2<f32>, Vec<OpUsage>), String> {
    let micro = micro.max(1);
    let parts: Vec<(Array2<f32>, Vec<OpUsage>, Option<String>)> = images
        .axis_chunks_iter(Axis(0), micro)
        .enumerate()
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|(c, x)| {
            let mut n = noise.map(|n| n.for_images(first + c * micro, x.dim().0));
            let logits = model.forward_batch(x, n.as_mut()).0;
            let failure = n.as_mut().and_then(|n| n.take_failure());
            (logits, n.map(|mut n| n.take_usage()).unwrap_or_default(), failure)
        })
        .collect();
    if let Some(why) = parts.iter().find_map(|p| p.2.clone()) {
        return Err(why);
    }
    let views: Vec<_> = parts.iter().map(|p| p.0.view()).collect();
    let logits = ndarray::concatenate(Axis(0), &views).expect("logits of one width");
    Ok((logits, merge_usage(parts.into_iter().flat_map(|p| p.1))))
}

/// The order in which epoch `epoch` visits `n` training images.
pub fn epoch_order(seed: u64, epoch: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(split_seed(seed, epoch as u64)));
    order
}

/// The images `idx` of `data` (raw, `[0, 1]`), augmented as the images at
/// positions `first..` of epoch `epoch`, normalised with the Fashion-MNIST mean and
/// standard deviation: `[B, 1, h, w]`.
pub fn assemble(
    data: &Dataset,
    idx: &[usize],
    augment: &AugmentConfig,
    seed: u64,
    epoch: usize,
    first: usize,
) -> Array4<f32> {
    let (_, h, w) = data.images.dim();
    let mut out = Array4::zeros((idx.len(), 1, h, w));
    let stream = split_seed(seed ^ AUGMENT, epoch as u64);
    let inv = 1.0 / FASHION_MNIST_STD;
    out.outer_iter_mut()
        .into_par_iter()
        .zip(idx.par_iter())
        .enumerate()
        .for_each(|(k, (mut o, &i))| {
            let mut rng = StdRng::seed_from_u64(split_seed(stream, (first + k) as u64));
            let img = data.images.slice(s![i..i + 1, .., ..]);
            let a = augment.apply(img, &mut rng);
            o.assign(&a.mapv(|p| (p - FASHION_MNIST_MEAN) * inv));
        });
    out
}

/// Adds every parameter of `b` to the same parameter of `a`.
///
/// # Panics
/// If the models differ in shape.
pub fn add_params<P: Parameters + Clone>(a: &mut P, b: &P) {
    let mut values = Vec::new();
    b.clone()
        .visit_params("", &mut |_, t| values.push(t.iter().copied().collect::<Vec<f32>>()));
    let mut i = 0;
    a.visit_params("", &mut |name, mut t| {
        assert_eq!(t.len(), values[i].len(), "add_params: `{name}` differs in size");
        t.iter_mut().zip(&values[i]).for_each(|(x, &y)| *x += y);
        i += 1;
    });
}

/// The optical perturbation of one step: its source, strength and seed (image `i`
/// of the batch draws from `split_seed(seed, i)`).
#[derive(Debug, Clone, Copy)]
pub struct StepNoise<'a> {
    /// Surrogate or machine.
    pub source: NoiseSource<'a>,
    /// Scale of the perturbation.
    pub strength: f64,
    /// Seed of the step.
    pub seed: u64,
    /// How global spectral filters are laid out on the machine.
    pub spectral: SpectralEmulation,
}

impl StepNoise<'_> {
    fn for_images(&self, first: usize, images: usize) -> OpticsNoise<'_> {
        let mut n = OpticsNoise::new(self.source, self.strength, self.seed, first, images);
        n.spectral = self.spectral;
        n
    }
}

/// The mean loss of a batch (`images` `[B, c, h, w]`, normalised) and the gradient
/// of that mean with respect to every parameter, computed in micro-batches of
/// `micro` images in parallel and summed in order.
///
/// Errors when `noise` runs the full simulation on a machine that cannot run an
/// op (the message names the op and says why).
pub fn batch_gradient(
    model: &Model,
    images: ArrayView4<f32>,
    labels: &[u8],
    label_smoothing: f64,
    micro: usize,
    noise: Option<&StepNoise>,
) -> Result<(f64, Model), String> {
    Ok(match model {
        Model::Transformer(t) => {
            let (l, g) = gradient_of(t, images, labels, label_smoothing, micro, noise)?;
            (l, Model::Transformer(g))
        }
        Model::ConvShareVit(m) => {
            let (l, g) = gradient_of(m, images, labels, label_smoothing, micro, noise)?;
            (l, Model::ConvShareVit(g))
        }
    })
}

/// Logits `[B, classes]` of normalised `images` `[B, c, h, w]` on the exact
/// digital path, in micro-batches of `micro` images in parallel.
pub fn predict(model: &Model, images: ArrayView4<f32>, micro: usize) -> Array2<f32> {
    predict_optics_aware(model, images, micro, None)
}

/// [`predict`] with every optical op perturbed by `noise` (image `i` draws from
/// `split_seed(noise.seed, i)`): a fast estimate of the model on a machine.
pub fn predict_optics_aware(
    model: &Model,
    images: ArrayView4<f32>,
    micro: usize,
    noise: Option<&StepNoise>,
) -> Array2<f32> {
    predict_with_usage(model, images, micro, noise, 0)
        .unwrap_or_else(|why| panic!("optics-aware prediction: {why}"))
        .0
}

/// [`predict_optics_aware`] and what the machine spent on every op (summed over
/// the images; empty for the surrogate). With [`NoiseSource::Machine`] and
/// strength 1 this is the optical backend on batches of `micro` images: the
/// jobs of one op for all images of a micro-batch are planned together. The
/// images are those at positions `first..` of the run (their noise streams).
///
/// `Err` says which op the machine could not plan or run, and why (e.g.
/// intensity detection of signed inputs on an amplitude SLM).
pub fn predict_with_usage(
    model: &Model,
    images: ArrayView4<f32>,
    micro: usize,
    noise: Option<&StepNoise>,
    first: usize,
) -> Result<(Array2<f32>, Vec<OpUsage>), String> {
    match model {
        Model::Transformer(t) => logits_of(t, images, micro, noise, first),
        Model::ConvShareVit(m) => logits_of(m, images, micro, noise, first),
    }
}

/// Accuracy and mean cross-entropy of `model` on `data` (normalised), digitally.
pub fn evaluate(model: &Model, data: &Dataset, micro: usize) -> (f64, f64) {
    let images = data.batch_view();
    let n = data.len();
    let logits = predict(model, images, micro);
    let (loss, _) = cross_entropy(logits.view(), &data.labels, 0.0);
    let correct = logits
        .rows()
        .into_iter()
        .zip(&data.labels)
        .filter(|(row, &y)| argmax(row.iter().copied()) == usize::from(y))
        .count();
    (correct as f64 / n as f64, loss)
}

/// Index of the largest value (the first of equals).
pub fn argmax(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// A training run's state at an epoch boundary: the weights, AdamW's moments and
/// step, the epochs done and free-form metadata (config, log).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Epochs completed.
    pub epoch: usize,
    /// The optimiser.
    pub optimizer: AdamW,
    /// Metadata strings kept with the checkpoint.
    pub metadata: BTreeMap<String, String>,
}

const MOMENT_1: &str = "optimizer.m.";
const MOMENT_2: &str = "optimizer.v.";

impl Checkpoint {
    /// Writes `model` and this state to one safetensors file at `path`, atomically
    /// (weights under their own names, moments under `optimizer.m.*` and
    /// `optimizer.v.*`, counters and metadata in the header).
    pub fn save(&self, path: &Path, model: &mut Model) -> Result<(), TrainError> {
        let mut store = TensorStore::from_params(model);
        let mut i = 0;
        let (m, v) = (&self.optimizer.m, &self.optimizer.v);
        let mut moments = Vec::new();
        model.visit_params("", &mut |name, t| {
            let shape = ndarray::IxDyn(t.shape());
            moments.push((
                format!("{MOMENT_1}{name}"),
                ndarray::ArrayD::from_shape_vec(shape.clone(), m[i].clone()).expect("moment of the tensor's size"),
            ));
            moments.push((
                format!("{MOMENT_2}{name}"),
                ndarray::ArrayD::from_shape_vec(shape, v[i].clone()).expect("moment of the tensor's size"),
            ));
            i += 1;
        });
        for (name, t) in moments {
            store.insert(name, t);
        }
        store.metadata = self.metadata.clone();
        store.metadata.insert("epoch".into(), self.epoch.to_string());
        store.metadata.insert("step".into(), self.optimizer.step.to_string());
        Ok(store.save(path)?)
    }

    /// Reads a checkpoint written by [`Checkpoint::save`] into `model`, with the
    /// optimiser settings `config`.
    pub fn load(path: &Path, model: &mut Model, config: AdamWConfig) -> Result<Self, TrainError> {
        let bad = |message: String| TrainError::Checkpoint {
            path: path.display().to_string(),
            message,
        };
        let mut store = TensorStore::load(path)?;
        let mut opt = AdamW::new(config, model);
        let mut i = 0;
        let mut missing = None;
        model.visit_params("", &mut |name, t| {
            for (prefix, dst) in [(MOMENT_1, &mut opt.m[i]), (MOMENT_2, &mut opt.v[i])] {
                match store.remove(&format!("{prefix}{name}")) {
                    Some(a) if a.len() == t.len() => *dst = a.iter().copied().collect(),
                    _ => {
                        missing.get_or_insert(format!("{prefix}{name}"));
                    }
                }
            }
            i += 1;
        });
        if let Some(name) = missing {
            return Err(bad(format!(
                "optimizer state `{name}` is missing or of another size; was it written by `fourf train` for this model?"
            )));
        }
        store.load_into(model)?;
        let number = |key: &str| {
            store
                .metadata
                .get(key)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| bad(format!("header metadata `{key}` is missing or not a number")))
        };
        let epoch = number("epoch")? as usize;
        opt.step = number("step")?;
        let mut metadata = store.metadata.clone();
        metadata.remove("epoch");
        metadata.remove("step");
        Ok(Self {
            epoch,
            optimizer: opt,
            metadata,
        })
    }
}
