//! Training: the loss, the optimiser and its schedule, data augmentation and the
//! pieces of the training loop, with checkpoints that resume to the same bits.
//!
//! The backward passes live beside each forward, in the layer's own file
//! ([`crate::layers`], [`crate::spectral`], [`crate::models`]); this module
//! composes them. The loop itself (`fourf train`: config, progress, logs) is in
//! `fourf-experiments`.
//!
//! ## Files
//! - [`loss`]: softmax cross-entropy with label smoothing.
//! - [`optim`]: AdamW and the warm-up + cosine schedule.
//! - [`augment`]: random crop with padding, horizontal flip.
//! - [`trainer`]: epoch order, batches, the batch gradient in ordered
//!   micro-batches, evaluation, checkpoints.

pub mod augment;
pub mod loss;
pub mod optim;
pub mod trainer;

pub use augment::AugmentConfig;
pub use loss::cross_entropy;
pub use optim::{AdamW, AdamWConfig, ScheduleConfig};
pub use trainer::{
    assemble, batch_gradient, epoch_order, evaluate, predict, predict_optics_aware, predict_with_usage, Checkpoint,
    StepNoise, TrainError,
};
