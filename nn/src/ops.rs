//! Traced electronic ops: each runs a layer of [`crate::layers`] and records it in
//! the [`Forward`]'s trace with its shapes, FLOPs and parameters.
//!
//! FLOP conventions (multiply–add = 2): linear `2·T·in·out`; LayerNorm 8 per
//! element (mean, variance, normalise, scale, shift); GELU 8 per element (the
//! tanh/erf evaluation counted as a few FLOPs, as profilers do); softmax 5 per
//! element (max, subtract, exp, sum, divide); addition 1 per element. The
//! element-wise ops are memory-bound on every GPU, so their FLOP constants barely
//! matter; their bytes do.

use fourf_hw::layers::{attention_core_ops, linear_op};
use fourf_hw::{OpKind, TraceOp};
use ndarray::{Array2, ArrayView2, Axis};

use crate::backend::Forward;
use crate::layers::{gelu_in_place, softmax_in_place, GeluMode, LayerNorm, Linear, Mlp, MultiHeadSelfAttention};
use crate::params::join;

pub use fourf_hw::layers::{GELU_FLOPS, LAYER_NORM_FLOPS, SOFTMAX_FLOPS};

impl Forward<'_> {
    /// `x Wᵀ + b`, traced as op `name`.
    pub fn linear(&mut self, name: &str, layer: &Linear, x: ArrayView2<f32>) -> Array2<f32> {
        let y = layer.forward(x);
        let (t, i) = x.dim();
        let op = linear_op(name.to_string(), t, i, layer.out_features(), layer.bias.is_some());
        self.record(op);
        y
    }

    /// LayerNorm over the last axis, traced.
    pub fn layer_norm(&mut self, name: &str, layer: &LayerNorm, x: ArrayView2<f32>) -> Array2<f32> {
        let y = layer.forward(x);
        let shape = [x.nrows(), x.ncols()];
        self.record(
            TraceOp::electronic(
                name,
                OpKind::LayerNorm,
                &shape,
                &shape,
                LAYER_NORM_FLOPS * x.len() as u64,
            )
            .with_params(2 * layer.weight.len()),
        );
        y
    }

    /// GELU in place, traced.
    pub fn gelu(&mut self, name: &str, x: &mut Array2<f32>, mode: GeluMode) {
        gelu_in_place(x, mode);
        let shape = [x.nrows(), x.ncols()];
        self.record(TraceOp::electronic(
            name,
            OpKind::Activation,
            &shape,
            &shape,
            GELU_FLOPS * x.len() as u64,
        ));
    }

    /// `x += y`, traced (a residual connection).
    ///
    /// # Panics
    /// If the shapes differ.
    pub fn add_assign(&mut self, name: &str, x: &mut Array2<f32>, y: ArrayView2<f32>) {
        assert_eq!(x.dim(), y.dim(), "add `{name}`: shapes differ");
        *x += &y;
        let shape = [x.nrows(), x.ncols()];
        self.record(TraceOp::electronic(name, OpKind::Add, &shape, &shape, x.len() as u64));
    }

    /// Records an element-wise addition of `elements` values (bias, positional
    /// embedding, sum of heads) done by the caller.
    pub fn record_add(&mut self, name: &str, shape: &[usize], params: usize) {
        let n: usize = shape.iter().product();
        self.record(TraceOp::electronic(name, OpKind::Add, shape, shape, n as u64).with_params(params));
    }

    /// Softmax over the last axis in place, traced.
    pub fn softmax(&mut self, name: &str, x: &mut ndarray::ArrayViewMut2<f32>) {
        softmax_in_place(x);
        let shape = [x.nrows(), x.ncols()];
        self.record(TraceOp::electronic(
            name,
            OpKind::Softmax,
            &shape,
            &shape,
            SOFTMAX_FLOPS * x.len() as u64,
        ));
    }

    /// Linear – GELU – linear, traced as three ops under `name`.
    pub fn mlp(&mut self, name: &str, layer: &Mlp, x: ArrayView2<f32>) -> Array2<f32> {
        let mut h = self.linear(&join(name, "fc1"), &layer.fc1, x);
        self.gelu(&join(name, "act"), &mut h, layer.activation);
        self.linear(&join(name, "fc2"), &layer.fc2, h.view())
    }

    /// Multi-head self-attention, all electronic (the ViT/DeiT baseline), traced
    /// as qkv, scores, softmax, mix and proj under `name`.
    pub fn attention(&mut self, name: &str, layer: &MultiHeadSelfAttention, x: ArrayView2<f32>) -> Array2<f32> {
        let d = layer.dim();
        let (t, hd, heads) = (x.nrows(), layer.head_dim(), layer.heads);
        let qkv = self.linear(&join(name, "qkv"), &layer.qkv, x);
        let scale = 1.0 / (hd as f32).sqrt();
        let mut attn = ndarray::Array3::<f32>::zeros((heads, t, t));
        for h in 0..heads {
            let q = qkv.slice(ndarray::s![.., h * hd..(h + 1) * hd]);
            let k = qkv.slice(ndarray::s![.., d + h * hd..d + (h + 1) * hd]);
            let mut a = attn.index_axis_mut(Axis(0), h);
            a.assign(&q.dot(&k.t()));
            a *= scale;
            softmax_in_place(&mut a);
        }
        let mut mixed = Array2::<f32>::zeros((t, d));
        for h in 0..heads {
            let v = qkv.slice(ndarray::s![.., 2 * d + h * hd..2 * d + (h + 1) * hd]);
            mixed
                .slice_mut(ndarray::s![.., h * hd..(h + 1) * hd])
                .assign(&attn.index_axis(Axis(0), h).dot(&v));
        }
        for op in attention_core_ops(name, t, d, heads) {
            self.record(op);
        }
        self.linear(&join(name, "proj"), &layer.proj, mixed.view())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::layers::MultiHeadSelfAttentionConfig;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn traced_attention_equals_layer_and_counts_flops() {
        let mut rng = StdRng::seed_from_u64(3);
        let layer = MultiHeadSelfAttentionConfig::new(12, 3).init(&mut rng).unwrap();
        let x = Array2::from_shape_simple_fn((5, 12), || rng.random::<f32>() - 0.5);
        let backend = Backend::Digital;
        let mut f = Forward::new(&backend, 0);
        let y = f.attention("attn", &layer, x.view());
        let r = layer.forward(x.view());
        let err = (&y - &r).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(err < 1e-6, "{err}");
        let names: Vec<&str> = f.trace().ops.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            ["attn.qkv", "attn.scores", "attn.softmax", "attn.mix", "attn.proj"]
        );
        // qkv 2·5·12·36, scores and mix 2·3·5·5·4 each, softmax 5·75, proj 2·5·12·12.
        let flops: u64 = f.trace().ops.iter().map(|o| o.flops).sum();
        assert_eq!(flops, 4320 + 600 + 375 + 600 + 1440);
    }
}
