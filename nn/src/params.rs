//! Named parameters: every layer and model lists its tensors with PyTorch-style
//! names (`blocks.0.attn.qkv.weight`), so one visitor serves loading, saving and
//! counting weights.

use ndarray::ArrayViewMutD;

/// A layer or model whose learnable tensors can be visited by name.
pub trait Parameters {
    /// Calls `f(name, tensor)` once for every parameter, in a fixed order, where
    /// `name` is `prefix` joined with the parameter's PyTorch-style name by `.`
    /// (see [`join`]) and `tensor` has the shape PyTorch stores (e.g. a patch
    /// embedding weight as `[dim, channels, patch, patch]`).
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, f32>));

    /// Number of scalar parameters.
    fn parameter_count(&mut self) -> usize {
        let mut n = 0;
        self.visit_params("", &mut |_, t| n += t.len());
        n
    }
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
pub(crate) fn visit_as<D: ndarray::Dimension>(
    f: &mut dyn FnMut(&str, ArrayViewMutD<'_, f32>),
    prefix: &str,
    name: &str,
    a: &mut ndarray::Array<f32, D>,
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
