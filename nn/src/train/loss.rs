//! Softmax cross-entropy with label smoothing (Szegedy et al. 2016; PyTorch
//! `CrossEntropyLoss(label_smoothing=ε)`): the target of an image of class `y` over
//! `K` classes is `q = (1 − ε)·onehot(y) + ε/K`, the loss is the batch mean of
//! `−Σ_k q_k log p_k` with `p = softmax(logits)`, and its gradient with respect to
//! the logits is `(p − q)/B`.

use ndarray::{Array2, ArrayView2};

use crate::layers::Real;

/// The mean loss over the batch and its gradient `[B, K]` with respect to the
/// logits `[B, K]` of images with classes `labels`, with label smoothing `epsilon`
/// (0 for plain cross-entropy).
///
/// # Panics
/// If `labels` does not have one entry per row, a label is not below `K`, or
/// `epsilon` is outside `[0, 1]`.
pub fn cross_entropy<T: Real>(logits: ArrayView2<T>, labels: &[u8], epsilon: f64) -> (f64, Array2<T>) {
    let (b, k) = logits.dim();
    assert_eq!(
        b,
        labels.len(),
        "cross_entropy: {b} logit rows but {} labels",
        labels.len()
    );
    assert!(
        (0.0..=1.0).contains(&epsilon),
        "cross_entropy: label smoothing {epsilon} not in [0, 1]"
    );
    let mut grad = Array2::zeros((b, k));
    let mut total = 0.0f64;
    let off = epsilon / k as f64;
    for ((row, &y), mut g) in logits.rows().into_iter().zip(labels).zip(grad.rows_mut()) {
        let y = usize::from(y);
        assert!(y < k, "cross_entropy: label {y} is not below {k} classes");
        let max = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.as_f64()));
        let sum: f64 = row.iter().map(|v| (v.as_f64() - max).exp()).sum();
        let log_z = max + sum.ln();
        for (j, (&z, gj)) in row.iter().zip(g.iter_mut()).enumerate() {
            let q = off + if j == y { 1.0 - epsilon } else { 0.0 };
            let log_p = z.as_f64() - log_z;
            total -= q * log_p;
            *gj = T::of((log_p.exp() - q) / b as f64);
        }
    }
    (total / b as f64, grad)
}
