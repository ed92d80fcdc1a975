//! Training: the loss, the optimiser and its schedule, data augmentation and the
//! training loop with checkpoints that resume to the same bits.
//!
//! The backward passes live beside each forward, in the layer's own file
//! ([`crate::layers`], [`crate::spectral`], [`crate::models`]); this module
//! composes them.
//!
//! ## Files
//! - [`loss`]: softmax cross-entropy with label smoothing.

pub mod loss;

pub use loss::cross_entropy;
