//! Named parameters: every layer and model lists its tensors with PyTorch-style
//! names (`blocks.0.attn.qkv.weight`), so one visitor serves loading, saving and
//! counting weights.

use ndarray::ArrayViewMutD;

/// A layer or model whose learnable tensors (of element type `T`, `f32` by
/// default) can be visited by name.
pub trait Parameters<T = f32> {
    /// Calls `f(name, tensor)` once for every parameter, in a fixed order, where
    /// `name` is `prefix` joined with the parameter's PyTorch-style name by `.`
    /// (see [`join`]) and `tensor` has the shape PyTorch stores (e.g. a patch
    /// embedding weight as `[dim, channels, patch, patch]`).
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>));

    /// Number of scalar parameters.
    fn parameter_count(&mut self) -> usize {
        let mut n = 0;
        self.visit_params("", &mut |_, t| n += t.len());
        n
    }
}

/// A copy of `model` with every parameter set to zero: the gradient accumulator
/// of a backward pass has the model's own type and names.
pub fn zeros_like<T: num_traits::Zero + Copy, P: Parameters<T> + Clone>(model: &P) -> P {
    let mut g = model.clone();
    g.visit_params("", &mut |_, mut t| t.fill(T::zero()));
    g
}

/// Every parameter of `model` flattened, in visiting order (name, values).
pub fn flat_params<T: Copy, P: Parameters<T> + ?Sized>(model: &mut P) -> Vec<(String, Vec<T>)> {
    let mut out = Vec::new();
    model.visit_params("", &mut |name, t| {
        out.push((name.to_string(), t.iter().copied().collect()))
    });
    out
}

/// `prefix.name`, or `name` when `prefix` is empty.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Visits `a` under `prefix.name` with the shape `shape` (same element count, e.g.
/// a `[K, K]` kernel as PyTorch's `[1, 1, K, K]`).
///
/// # Panics
/// If `a` is not in standard layout or the element counts differ.
pub(crate) fn visit_as<T, D: ndarray::Dimension>(
    f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>),
    prefix: &str,
    name: &str,
    a: &mut ndarray::Array<T, D>,
    shape: &[usize],
) {
    let view = a
        .view_mut()
        .into_shape_with_order(ndarray::IxDyn(shape))
        .unwrap_or_else(|e| panic!("parameter `{name}` cannot be viewed as {shape:?}: {e}"));
    f(&join(prefix, name), view);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_paths() {
        assert_eq!(join("", "weight"), "weight");
        assert_eq!(join("blocks.0", "norm1"), "blocks.0.norm1");
    }
}
