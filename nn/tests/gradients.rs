//! Every backward pass against central finite differences in `f64`.
//!
//! Each check builds a scalar loss `L = Σ r ⊙ f(x)` with a fixed random `r` (so
//! `∂L/∂f = r`), runs the layer's backward pass for the analytic gradients of the
//! input and of every parameter, and compares them with
//! `(L(θ + h) − L(θ − h)) / 2h`, `h = 1e-5`, as `‖analytic − numeric‖ / ‖numeric‖`
//! per tensor. In `f64` the truncation error is `O(h²) ≈ 1e-10` and the rounding
//! error `≈ 1e-16 / h ≈ 1e-11` relative, so the bound of 1e-6 leaves a wide margin
//! while any wrong term (a missing factor 2, a transposed product) gives O(1).

use fourf_nn::layers::{
    gelu_backward, gelu_forward, softmax_backward, softmax_rows, GeluMode, LayerNormConfig, LinearConfig, MlpConfig,
    MultiHeadSelfAttentionConfig, PatchEmbeddingConfig, Pooling, TokenEmbeddingConfig,
};
use fourf_nn::models::{TransformerConfig, TransformerKind};
use fourf_nn::params::{zeros_like, Parameters};
use fourf_nn::spectral::{fourier_mix_batch, GlobalFilterConfig};
use fourf_nn::train::cross_entropy;
use ndarray::{Array2, Array4, ArrayView2, ArrayViewMutD};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const H: f64 = 1e-5;
const BOUND: f64 = 1e-6;

fn random(shape: (usize, usize), rng: &mut StdRng) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || rng.random::<f64>() * 2.0 - 1.0)
}

fn dot(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn rel_err(analytic: &[f64], numeric: &[f64]) -> f64 {
    let diff: f64 = analytic.iter().zip(numeric).map(|(a, n)| (a - n).powi(2)).sum();
    let norm: f64 = numeric.iter().map(|n| n * n).sum();
    assert!(norm > 1e-20, "numeric gradient is zero: the check cannot fail");
    (diff / norm).sqrt()
}

/// Numeric gradient of `loss` with respect to `x`.
fn numeric_input(x: &Array2<f64>, loss: impl Fn(&Array2<f64>) -> f64) -> Vec<f64> {
    let mut x = x.clone();
    (0..x.len())
        .map(|i| {
            let v = x.as_slice().unwrap()[i];
            x.as_slice_mut().unwrap()[i] = v + H;
            let up = loss(&x);
            x.as_slice_mut().unwrap()[i] = v - H;
            let down = loss(&x);
            x.as_slice_mut().unwrap()[i] = v;
            (up - down) / (2.0 * H)
        })
        .collect()
}

/// Sets element `index` of parameter `name` to `value` and returns the old value.
fn poke<P: Parameters<f64>>(model: &mut P, name: &str, index: usize, value: f64) -> f64 {
    let mut old = None;
    model.visit_params("", &mut |n: &str, mut t: ArrayViewMutD<'_, f64>| {
        if n == name {
            let e = t.iter_mut().nth(index).expect("index within the tensor");
            old = Some(*e);
            *e = value;
        }
    });
    old.unwrap_or_else(|| panic!("no parameter `{name}`"))
}

/// Compares the analytic parameter gradients in `grad` with finite differences of
/// `loss` over the parameters of `model`, at most `per_tensor` elements per tensor
/// (spread evenly), and returns the worst relative error with its tensor.
fn check_params<P: Parameters<f64> + Clone>(
    model: &P,
    grad: &P,
    per_tensor: usize,
    loss: impl Fn(&P) -> f64,
) -> (f64, String) {
    let mut analytic: Vec<(String, Vec<f64>)> = Vec::new();
    grad.clone().visit_params("", &mut |n, t| {
        analytic.push((n.to_string(), t.iter().copied().collect()))
    });
    let mut m = model.clone();
    let mut worst = (0.0, String::new());
    for (name, a) in &analytic {
        let step = a.len().div_ceil(per_tensor).max(1);
        let idx: Vec<usize> = (0..a.len()).step_by(step).collect();
        let num: Vec<f64> = idx
            .iter()
            .map(|&i| {
                let v = poke(&mut m, name, i, 0.0);
                poke(&mut m, name, i, v + H);
                let up = loss(&m);
                poke(&mut m, name, i, v - H);
                let down = loss(&m);
                poke(&mut m, name, i, v);
                (up - down) / (2.0 * H)
            })
            .collect();
        let an: Vec<f64> = idx.iter().map(|&i| a[i]).collect();
        // A tensor whose gradient is exactly zero here (e.g. the class-token
        // gradient under mean pooling) must be zero analytically too.
        let norm: f64 = num.iter().map(|v| v * v).sum();
        let e = if norm < 1e-20 {
            an.iter().map(|v| v.abs()).fold(0.0, f64::max)
        } else {
            rel_err(&an, &num)
        };
        if e > worst.0 || worst.1.is_empty() {
            worst = (e, name.clone());
        }
    }
    worst
}

#[test]
fn linear_with_and_without_bias() {
    let mut rng = StdRng::seed_from_u64(1);
    for bias in [true, false] {
        let layer = LinearConfig::new(5, 4)
            .with_bias(bias)
            .init(&mut rng)
            .unwrap()
            .cast::<f64>();
        let x = random((6, 5), &mut rng);
        let r = random((6, 4), &mut rng);
        let mut grad = zeros_like(&layer);
        let dx = layer.backward(x.view(), r.view(), &mut grad);
        let e = rel_err(
            dx.as_slice().unwrap(),
            &numeric_input(&x, |x| dot(layer.forward(x.view()).view(), r.view())),
        );
        assert!(e < BOUND, "dx: {e}");
        let (e, t) = check_params(&layer, &grad, 100, |l| dot(l.forward(x.view()).view(), r.view()));
        assert!(e < BOUND, "{t}: {e}");
    }
}

#[test]
fn layer_norm() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut layer = LayerNormConfig::new(7).init().unwrap().cast::<f64>();
    // Non-trivial affine parameters, so that their gradients are exercised.
    layer.weight = random((1, 7), &mut rng).row(0).to_owned();
    layer.bias = random((1, 7), &mut rng).row(0).to_owned();
    let x = random((4, 7), &mut rng) * 3.0 + 0.5;
    let r = random((4, 7), &mut rng);
    let (_, cache) = layer.forward_train(x.view());
    let mut grad = zeros_like(&layer);
    let dx = layer.backward(&cache, r.view(), &mut grad);
    let e = rel_err(
        dx.as_slice().unwrap(),
        &numeric_input(&x, |x| dot(layer.forward(x.view()).view(), r.view())),
    );
    assert!(e < BOUND, "dx: {e}");
    let (e, t) = check_params(&layer, &grad, 100, |l| dot(l.forward(x.view()).view(), r.view()));
    assert!(e < BOUND, "{t}: {e}");
}

#[test]
fn gelu_exact_and_tanh() {
    let mut rng = StdRng::seed_from_u64(3);
    let x = random((5, 6), &mut rng) * 4.0;
    let r = random((5, 6), &mut rng);
    for mode in [GeluMode::Exact, GeluMode::Tanh] {
        let dx = gelu_backward(x.view(), r.view(), mode);
        let num = numeric_input(&x, |x| dot(gelu_forward(x.view(), mode).view(), r.view()));
        let e = rel_err(dx.as_slice().unwrap(), &num);
        assert!(e < BOUND, "{mode:?}: {e}");
    }
    // The f32 training GELU (libm erff) agrees with the inference GELU.
    for v in [-3.0f32, -0.7, 0.0, 0.3, 1.9, 5.0] {
        let a = fourf_nn::layers::gelu_real(v, GeluMode::Exact);
        assert!(
            (a - fourf_nn::layers::gelu(v)).abs() <= 2.0 * f32::EPSILON * v.abs().max(1.0),
            "{v}"
        );
    }
}

#[test]
fn softmax() {
    let mut rng = StdRng::seed_from_u64(4);
    let x = random((3, 8), &mut rng) * 3.0;
    let r = random((3, 8), &mut rng);
    let y = softmax_rows(x.view());
    let dx = softmax_backward(y.view(), r.view());
    let e = rel_err(
        dx.as_slice().unwrap(),
        &numeric_input(&x, |x| dot(softmax_rows(x.view()).view(), r.view())),
    );
    assert!(e < BOUND, "{e}");
}

#[test]
fn cross_entropy_with_label_smoothing() {
    let mut rng = StdRng::seed_from_u64(5);
    let z = random((4, 6), &mut rng) * 2.0;
    let labels = [0u8, 5, 2, 2];
    for eps in [0.0, 0.1] {
        let (_, g) = cross_entropy(z.view(), &labels, eps);
        let e = rel_err(
            g.as_slice().unwrap(),
            &numeric_input(&z, |z| cross_entropy(z.view(), &labels, eps).0),
        );
        assert!(e < BOUND, "ε = {eps}: {e}");
    }
    // Uniform logits: the loss is ln K whatever the smoothing.
    let (l, _) = cross_entropy(Array2::<f64>::zeros((2, 10)).view(), &[3, 7], 0.1);
    assert!((l - 10f64.ln()).abs() < 1e-12);
}

#[test]
fn attention_over_a_batch() {
    let mut rng = StdRng::seed_from_u64(6);
    let layer = MultiHeadSelfAttentionConfig::new(12, 3)
        .init(&mut rng)
        .unwrap()
        .cast::<f64>();
    let (b, t) = (2, 5);
    let x = random((b * t, 12), &mut rng);
    let r = random((b * t, 12), &mut rng);
    let f = |l: &fourf_nn::layers::MultiHeadSelfAttention<f64>, x: &Array2<f64>| l.forward_train(x.view(), t).0;
    let (y, cache) = layer.forward_train(x.view(), t);
    // The batched forward equals the per-sequence forward.
    for i in 0..b {
        let xi = x.slice(ndarray::s![i * t..(i + 1) * t, ..]);
        let yi = layer.cast::<f32>().forward(xi.mapv(|v| v as f32).view());
        let d = (&y.slice(ndarray::s![i * t..(i + 1) * t, ..]).mapv(|v| v as f32) - &yi)
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(d < 1e-5, "batched vs single: {d}");
    }
    let mut grad = zeros_like(&layer);
    let dx = layer.backward(&cache, r.view(), &mut grad);
    let e = rel_err(
        dx.as_slice().unwrap(),
        &numeric_input(&x, |x| dot(f(&layer, x).view(), r.view())),
    );
    assert!(e < BOUND, "dx: {e}");
    let (e, t) = check_params(&layer, &grad, 60, |l| dot(f(l, &x).view(), r.view()));
    assert!(e < BOUND, "{t}: {e}");
}

#[test]
fn mlp() {
    let mut rng = StdRng::seed_from_u64(7);
    for mode in [GeluMode::Exact, GeluMode::Tanh] {
        let layer = MlpConfig::new(6, 10)
            .with_activation(mode)
            .init(&mut rng)
            .unwrap()
            .cast::<f64>();
        let x = random((4, 6), &mut rng);
        let r = random((4, 6), &mut rng);
        let (_, cache) = layer.forward_train(x.view());
        let mut grad = zeros_like(&layer);
        let dx = layer.backward(&cache, r.view(), &mut grad);
        let loss = |l: &fourf_nn::layers::Mlp<f64>, x: &Array2<f64>| dot(l.forward_train(x.view()).0.view(), r.view());
        let e = rel_err(dx.as_slice().unwrap(), &numeric_input(&x, |x| loss(&layer, x)));
        assert!(e < BOUND, "dx: {e}");
        let (e, t) = check_params(&layer, &grad, 60, |l| loss(l, &x));
        assert!(e < BOUND, "{t}: {e}");
    }
}

#[test]
fn patch_and_token_embedding_and_pooling() {
    let mut rng = StdRng::seed_from_u64(8);
    let pe = PatchEmbeddingConfig::new(2, 2, 5).init(&mut rng).unwrap().cast::<f64>();
    let images = Array4::from_shape_simple_fn((3, 2, 4, 4), || rng.random::<f64>());
    let patches = pe.patches_batch(images.view());
    assert_eq!(patches.dim(), (12, 8));
    for class_token in [true, false] {
        let te = TokenEmbeddingConfig::new(5, 4)
            .with_class_token(class_token)
            .init(&mut rng)
            .unwrap()
            .cast::<f64>();
        let pooling = if class_token {
            Pooling::ClassToken
        } else {
            Pooling::Mean
        };
        let t = te.tokens();
        let r = random((3, 5), &mut rng);
        let loss = |pe: &fourf_nn::layers::PatchEmbedding<f64>, te: &fourf_nn::layers::TokenEmbedding<f64>| {
            let e = pe.proj.forward(patches.view());
            let x = te.forward_batch(e.view());
            // A non-linearity between the tokens and the pooling, so the loss
            // depends on every token and the positional gradient is not uniform.
            let x = x.mapv(|v| v * v);
            dot(pooling.forward_batch(x.view(), t).view(), r.view())
        };
        let e = pe.proj.forward(patches.view());
        let x = te.forward_batch(e.view());
        let dpool = pooling.backward(r.view(), t);
        let dx = &dpool * &(&x * 2.0);
        let mut gte = zeros_like(&te);
        let de = te.backward(dx.view(), &mut gte);
        let mut gpe = zeros_like(&pe);
        pe.backward(patches.view(), de.view(), &mut gpe);
        let (err, name) = check_params(&te, &gte, 100, |te| loss(&pe, te));
        assert!(err < BOUND, "token embedding {name}: {err}");
        let (err, name) = check_params(&pe, &gpe, 100, |pe| loss(pe, &te));
        assert!(err < BOUND, "patch embedding {name}: {err}");
    }
}

#[test]
fn global_filter_odd_and_even_grids() {
    let mut rng = StdRng::seed_from_u64(9);
    for (a, b) in [(4, 6), (5, 5), (3, 4), (2, 2), (1, 3), (6, 1)] {
        let c = 3;
        let layer = GlobalFilterConfig::new(c, a, b)
            .with_init_std(0.5)
            .init(&mut rng)
            .unwrap()
            .cast::<f64>();
        let x = random((2 * a * b, c), &mut rng);
        let r = random((2 * a * b, c), &mut rng);
        let (y, cache) = layer.forward_train(x.view());
        // The batched forward equals the per-image forward.
        let y0 = layer.forward(x.slice(ndarray::s![..a * b, ..]));
        assert!((&y.slice(ndarray::s![..a * b, ..]) - &y0)
            .iter()
            .all(|v| v.abs() < 1e-12));
        let mut grad = zeros_like(&layer);
        let dx = layer.backward(&cache, r.view(), &mut grad);
        let loss = |l: &fourf_nn::spectral::GlobalFilter<f64>, x: &Array2<f64>| {
            dot(l.forward_train(x.view()).0.view(), r.view())
        };
        let e = rel_err(dx.as_slice().unwrap(), &numeric_input(&x, |x| loss(&layer, x)));
        assert!(e < BOUND, "{a}×{b} dx: {e}");
        let (e, t) = check_params(&layer, &grad, 1000, |l| loss(l, &x));
        assert!(e < BOUND, "{a}×{b} {t}: {e}");
    }
}

#[test]
fn fourier_mix_is_self_adjoint() {
    let mut rng = StdRng::seed_from_u64(10);
    let x = random((2 * 5, 4), &mut rng);
    let r = random((2 * 5, 4), &mut rng);
    let dx = fourier_mix_batch(r.view(), 5);
    let e = rel_err(
        dx.as_slice().unwrap(),
        &numeric_input(&x, |x| dot(fourier_mix_batch(x.view(), 5).view(), r.view())),
    );
    assert!(e < BOUND, "{e}");
}

/// The whole backward pass of `model` through the cross-entropy of `images` with
/// `labels` against finite differences, and its batched forward against the
/// traced per-image forward of inference (`traced`, in `f32`).
fn check_whole_model<M: Parameters<f64> + Clone, C>(
    label: &str,
    model: &M,
    images: &Array4<f64>,
    labels: &[u8],
    forward: impl Fn(&M, ndarray::ArrayView4<f64>) -> (Array2<f64>, C),
    backward: impl Fn(&M, &C, ArrayView2<f64>, &mut M),
    traced: impl Fn(ndarray::ArrayView3<f32>) -> ndarray::Array1<f32>,
) {
    let loss = |m: &M| cross_entropy(forward(m, images.view()).0.view(), labels, 0.1).0;
    let (logits, cache) = forward(model, images.view());
    let (_, g) = cross_entropy(logits.view(), labels, 0.1);
    let mut grad = zeros_like(model);
    backward(model, &cache, g.view(), &mut grad);
    let (e, t) = check_params(model, &grad, 12, loss);
    assert!(e < BOUND, "{label} {t}: {e}");
    for i in 0..images.dim().0 {
        let img = images.index_axis(ndarray::Axis(0), i).mapv(|v| v as f32);
        for (a, b) in traced(img.view()).iter().zip(logits.row(i)) {
            assert!((f64::from(*a) - b).abs() < 1e-4, "{label}: {a} vs {b}");
        }
    }
}

/// A tiny model of each kind: the whole backward pass of the network (patch
/// embedding to head, through the cross-entropy) against finite differences.
#[test]
fn whole_transformers() {
    let labels = [1u8, 0, 2];
    for kind in [
        TransformerKind::Vit,
        TransformerKind::Gfnet,
        TransformerKind::Spectformer,
        TransformerKind::Fnet,
    ] {
        let cfg = TransformerConfig {
            image_size: 8,
            in_channels: 1,
            patch: 4,
            dim: 8,
            depth: 2,
            heads: 2,
            mlp_ratio: 2.0,
            classes: 3,
            spectral_blocks: 1,
            qkv_bias: true,
        };
        let mut rng = StdRng::seed_from_u64(11);
        let mut model = cfg.init(kind, &mut rng).unwrap().cast::<f64>();
        // Larger than the 0.02 initialisation, so that every path carries signal.
        model.visit_params("", &mut |_, mut t| {
            t.mapv_inplace(|v| v + 0.3 * (rng.random::<f64>() - 0.5))
        });
        let images = Array4::from_shape_simple_fn((3, 1, 8, 8), || rng.random::<f64>() - 0.5);
        let m32 = model.cast::<f32>();
        let backend = fourf_nn::backend::Backend::Digital;
        check_whole_model(
            &format!("{kind:?}"),
            &model,
            &images,
            &labels,
            |m, x| m.forward_train(x),
            |m, c, g, grad| m.backward(c, g, grad),
            |img| {
                m32.forward(&mut fourf_nn::backend::Forward::new(&backend, 0), img)
                    .unwrap()
            },
        );
    }
}

/// ConvShareViT end to end — shared Q/K/V convolutions (valid and same), the
/// score correlations, softmax and value mixing, the projection, the
/// convolutional and the linear MLP, the transposed-convolution and the patch
/// embedding, class token, positional embedding and the correlation classifier —
/// against finite differences, and the batched forward against the traced one.
#[test]
fn whole_conv_share_vit() {
    use fourf_nn::models::{ConvShareEmbed, ConvShareMlp, ConvSharePadding, ConvShareVitConfig};
    let labels = [2u8, 0];
    let variants = [
        (
            ConvSharePadding::Valid,
            ConvShareEmbed::TransposedConv { kernel: 3 },
            ConvShareMlp::SharedConv { ratio: 2 },
        ),
        (
            ConvSharePadding::Same,
            ConvShareEmbed::TransposedConv { kernel: 3 },
            ConvShareMlp::SharedConv { ratio: 2 },
        ),
        (
            ConvSharePadding::Valid,
            ConvShareEmbed::Patch { patch: 3 },
            ConvShareMlp::Linear { ratio: 2 },
        ),
    ];
    for (padding, embed, mlp) in variants {
        let cfg = ConvShareVitConfig {
            image_size: 6,
            in_channels: 2,
            embed: embed.clone(),
            token_size: 4,
            depth: 2,
            heads: 2,
            kernel_size: 3,
            padding,
            mlp: mlp.clone(),
            classes: 3,
        };
        let mut rng = StdRng::seed_from_u64(12);
        let mut model = cfg.init(&mut rng).unwrap().cast::<f64>();
        model.visit_params("", &mut |_, mut t| {
            t.mapv_inplace(|v| v + 0.3 * (rng.random::<f64>() - 0.5))
        });
        let images = Array4::from_shape_simple_fn((2, 2, 6, 6), || rng.random::<f64>() - 0.5);
        let m32 = model.cast::<f32>();
        let backend = fourf_nn::backend::Backend::Digital;
        check_whole_model(
            &format!("{padding:?} {embed:?} {mlp:?}"),
            &model,
            &images,
            &labels,
            |m, x| m.forward_train(x),
            |m, c, g, grad| m.backward(c, g, grad),
            |img| {
                m32.forward(&mut fourf_nn::backend::Forward::new(&backend, 0), img)
                    .unwrap()
            },
        );
    }
}
