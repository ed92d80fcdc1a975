//! The electronic layers against naive loop references written here (no `dot`).

use fourf_nn::layers::*;
use ndarray::{Array1, Array2, Array3, Array4};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn random2(rng: &mut StdRng, r: usize, c: usize) -> Array2<f32> {
    Array2::from_shape_simple_fn((r, c), || 2.0 * rng.random::<f32>() - 1.0)
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}[{i}]: {x} vs {y}");
    }
}

fn naive_linear(x: &Array2<f32>, w: &Array2<f32>, b: Option<&Array1<f32>>) -> Array2<f32> {
    let (t, n) = x.dim();
    let m = w.nrows();
    let mut y = Array2::zeros((t, m));
    for i in 0..t {
        for o in 0..m {
            let mut s = b.map_or(0.0, |b| b[o]);
            for k in 0..n {
                s += x[[i, k]] * w[[o, k]];
            }
            y[[i, o]] = s;
        }
    }
    y
}

fn naive_softmax_row(v: &[f32]) -> Vec<f32> {
    let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

#[test]
fn linear_matches_triple_loop() {
    let mut rng = StdRng::seed_from_u64(1);
    for (bias, init) in [(true, WeightInit::PytorchUniform), (false, WeightInit::vit())] {
        let lin = LinearConfig::new(37, 19)
            .with_bias(bias)
            .with_init(init)
            .init(&mut rng)
            .unwrap();
        assert_eq!(lin.weight.dim(), (19, 37));
        let x = random2(&mut rng, 11, 37);
        let y = lin.forward(x.view());
        let r = naive_linear(&x, &lin.weight, lin.bias.as_ref());
        assert_close(y.as_slice().unwrap(), r.as_slice().unwrap(), 1e-5, "linear");
    }
}

#[test]
#[should_panic(expected = "does not match weight")]
fn linear_shape_mismatch_panics() {
    let lin = LinearConfig::new(4, 3).init(&mut StdRng::seed_from_u64(0)).unwrap();
    lin.forward(Array2::zeros((2, 5)).view());
}

#[test]
fn configs_reject_invalid_values() {
    let mut rng = StdRng::seed_from_u64(0);
    assert!(LinearConfig::new(0, 3).init(&mut rng).is_err());
    assert!(LayerNormConfig::new(4).with_eps(-1.0).init().is_err());
    let e = MultiHeadSelfAttentionConfig::new(10, 3).init(&mut rng).unwrap_err();
    assert!(e.to_string().contains("attention.heads"), "{e}");
    assert!(Linear::from_weights(Array2::zeros((3, 2)), Some(Array1::zeros(2))).is_err());
}

#[test]
fn layer_norm_normalises_rows_and_matches_loops() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut ln = LayerNormConfig::new(24).init().unwrap();
    // Rows with a large offset: the two-pass variance must still be right.
    let x = random2(&mut rng, 5, 24).mapv(|v| 3.0 * v + 100.0);
    let y = ln.forward(x.view());
    for row in y.rows() {
        let mean = row.sum() / 24.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 24.0;
        assert!(mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3, "mean {mean} var {var}");
    }
    ln.weight = Array1::from_shape_simple_fn(24, || rng.random::<f32>() + 0.5);
    ln.bias = Array1::from_shape_simple_fn(24, || rng.random::<f32>() - 0.5);
    let y = ln.forward(x.view());
    for i in 0..5 {
        let mut m = 0.0f64;
        for j in 0..24 {
            m += x[[i, j]] as f64;
        }
        m /= 24.0;
        let mut v = 0.0f64;
        for j in 0..24 {
            v += (x[[i, j]] as f64 - m).powi(2);
        }
        v /= 24.0;
        for j in 0..24 {
            let r = (x[[i, j]] as f64 - m) / (v + 1e-6).sqrt() * ln.weight[j] as f64 + ln.bias[j] as f64;
            assert!((y[[i, j]] as f64 - r).abs() < 1e-4, "[{i},{j}] {} vs {r}", y[[i, j]]);
        }
    }
}

#[test]
fn erf_and_gelu_reference_values() {
    // python3 -c "import math; print(math.erf(0.5), math.erf(1), math.erf(2))"
    for (x, want) in [
        (0.5f32, 0.5204998778130465f64),
        (1.0, 0.8427007929497149),
        (2.0, 0.9953222650189527),
    ] {
        assert!((erf(x) as f64 - want).abs() < 1e-7, "erf({x}) = {}", erf(x));
        assert!((erf(-x) as f64 + want).abs() < 1e-7);
    }
    // gelu(1) = 0.5·(1 + erf(1/√2)) = 0.8413447460685429 (PyTorch F.gelu(torch.tensor(1.0)) = 0.8413).
    assert!((gelu(1.0) as f64 - 0.8413447460685429).abs() < 1e-7);
    assert!((gelu(-1.0) as f64 + 0.15865525393145707).abs() < 1e-7);
    for x in [10.0f32, 30.0, 1e4] {
        assert!((gelu(x) - x).abs() <= 1e-6 * x, "gelu({x}) = {}", gelu(x));
        assert!(gelu(-x).abs() < 1e-20, "gelu({}) = {}", -x, gelu(-x));
        assert!((gelu_tanh(x) - x).abs() <= 1e-6 * x && gelu_tanh(-x).abs() < 1e-20);
    }
    assert_eq!(gelu(0.0), 0.0);
    // The tanh form stays within 1e-3 of the exact one (Hendrycks & Gimpel).
    for i in -600..=600 {
        let x = i as f32 / 100.0;
        assert!((gelu(x) - gelu_tanh(x)).abs() < 1e-3, "x = {x}");
    }
}

#[test]
fn softmax_rows_sum_to_one_match_loops_and_survive_huge_logits() {
    let mut rng = StdRng::seed_from_u64(3);
    let x = random2(&mut rng, 6, 9).mapv(|v| 5.0 * v);
    let y = softmax(&x);
    for (i, row) in y.rows().into_iter().enumerate() {
        assert!((row.sum() - 1.0).abs() < 1e-6);
        let r = naive_softmax_row(x.row(i).as_slice().unwrap());
        assert_close(row.as_slice().unwrap(), &r, 1e-6, "softmax");
    }
    let huge = Array2::from_shape_vec((2, 3), vec![1e4, 0.0, -1e4, 1e4, 1e4, 1e4]).unwrap();
    let y = softmax(&huge);
    assert!(y.iter().all(|v| v.is_finite()));
    assert_close(
        y.as_slice().unwrap(),
        &[1.0, 0.0, 0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
        1e-6,
        "huge",
    );
    // Last axis of a 3-D array.
    let x3 = Array3::from_shape_simple_fn((2, 3, 4), || rng.random::<f32>());
    let y3 = softmax(&x3);
    for lane in y3.lanes(ndarray::Axis(2)) {
        assert!((lane.sum() - 1.0).abs() < 1e-6);
    }
}

#[test]
fn attention_matches_per_head_loops() {
    let mut rng = StdRng::seed_from_u64(4);
    let (t, d, heads) = (7, 12, 3);
    let hd = d / heads;
    let attn = MultiHeadSelfAttentionConfig::new(d, heads)
        .with_init(WeightInit::vit())
        .init(&mut rng)
        .unwrap();
    // ViT init has zero biases: give them values so their layout is checked too.
    let mut attn = attn;
    attn.qkv.bias = Some(Array1::from_shape_simple_fn(3 * d, || rng.random::<f32>() - 0.5));
    attn.proj.bias = Some(Array1::from_shape_simple_fn(d, || rng.random::<f32>() - 0.5));
    attn.qkv.weight.mapv_inplace(|w| w * 20.0); // sharper attention than the init's
    let x = random2(&mut rng, t, d);
    let (probs, y) = attn.forward_with_attention(x.view());

    let qkv = naive_linear(&x, &attn.qkv.weight, attn.qkv.bias.as_ref());
    let mut concat = Array2::<f32>::zeros((t, d));
    for h in 0..heads {
        for i in 0..t {
            let mut scores = vec![0.0f32; t];
            for (j, s) in scores.iter_mut().enumerate() {
                for c in 0..hd {
                    *s += qkv[[i, h * hd + c]] * qkv[[j, d + h * hd + c]];
                }
                *s /= (hd as f32).sqrt();
            }
            let p = naive_softmax_row(&scores);
            assert_close(
                probs.slice(ndarray::s![h, i, ..]).as_slice().unwrap(),
                &p,
                1e-5,
                "probs",
            );
            for c in 0..hd {
                let mut s = 0.0;
                for j in 0..t {
                    s += p[j] * qkv[[j, 2 * d + h * hd + c]];
                }
                concat[[i, h * hd + c]] = s;
            }
        }
    }
    let r = naive_linear(&concat, &attn.proj.weight, attn.proj.bias.as_ref());
    assert_close(y.as_slice().unwrap(), r.as_slice().unwrap(), 1e-5, "attention");
    assert_close(
        attn.forward(x.view()).as_slice().unwrap(),
        r.as_slice().unwrap(),
        1e-5,
        "forward",
    );
}

#[test]
fn patch_embedding_matches_strided_convolution() {
    let mut rng = StdRng::seed_from_u64(5);
    let (d, c, p, h, w) = (6, 3, 4, 8, 12);
    let weight = Array4::from_shape_simple_fn((d, c, p, p), || rng.random::<f32>() - 0.5);
    let bias = Array1::from_shape_simple_fn(d, || rng.random::<f32>() - 0.5);
    let pe = PatchEmbedding::from_conv_weight(weight.clone(), Some(bias.clone())).unwrap();
    let img = Array3::from_shape_simple_fn((c, h, w), || rng.random::<f32>());
    let y = pe.forward(img.view());
    let (gh, gw) = (h / p, w / p);
    assert_eq!(y.dim(), (gh * gw, d));
    assert_eq!(pe.num_patches(h, w), gh * gw);
    for oy in 0..gh {
        for ox in 0..gw {
            for o in 0..d {
                let mut s = bias[o];
                for ci in 0..c {
                    for ky in 0..p {
                        for kx in 0..p {
                            s += weight[[o, ci, ky, kx]] * img[[ci, oy * p + ky, ox * p + kx]];
                        }
                    }
                }
                let got = y[[oy * gw + ox, o]];
                assert!((got - s).abs() < 1e-5, "patch ({oy},{ox}) out {o}: {got} vs {s}");
            }
        }
    }
    let cfg = PatchEmbeddingConfig::new(c, p, d).init(&mut rng).unwrap();
    assert_eq!(cfg.proj.weight.dim(), (d, c * p * p));
}

#[test]
#[should_panic(expected = "divisible by patch")]
fn patch_embedding_rejects_ragged_image() {
    let pe = PatchEmbeddingConfig::new(1, 4, 2)
        .init(&mut StdRng::seed_from_u64(0))
        .unwrap();
    pe.forward(Array3::zeros((1, 8, 10)).view());
}

#[test]
fn token_embedding_pooling_and_mlp() {
    let mut rng = StdRng::seed_from_u64(6);
    let te = TokenEmbeddingConfig::new(5, 4).init(&mut rng).unwrap();
    assert_eq!(te.position.dim(), (5, 5));
    let patches = random2(&mut rng, 4, 5);
    let x = te.forward(patches.view());
    let cls = te.class_token.as_ref().unwrap();
    for j in 0..5 {
        assert!((x[[0, j]] - (cls[j] + te.position[[0, j]])).abs() < 1e-7);
        for i in 0..4 {
            assert!((x[[i + 1, j]] - (patches[[i, j]] + te.position[[i + 1, j]])).abs() < 1e-7);
        }
    }
    let gf = TokenEmbeddingConfig::new(5, 4)
        .with_class_token(false)
        .init(&mut rng)
        .unwrap();
    assert_eq!(gf.forward(patches.view()).dim(), (4, 5));

    let mean = Pooling::Mean.apply(x.view());
    for j in 0..5 {
        let r = (0..5).map(|i| x[[i, j]]).sum::<f32>() / 5.0;
        assert!((mean[j] - r).abs() < 1e-6);
    }
    assert_close(
        Pooling::ClassToken.apply(x.view()).as_slice().unwrap(),
        x.row(0).as_slice().unwrap(),
        0.0,
        "cls",
    );

    for mode in [GeluMode::Exact, GeluMode::Tanh] {
        let mlp = MlpConfig::new(5, 20).with_activation(mode).init(&mut rng).unwrap();
        let y = mlp.forward(x.view());
        let mut h = naive_linear(&x, &mlp.fc1.weight, mlp.fc1.bias.as_ref());
        h.mapv_inplace(|v| mode.apply(v));
        let r = naive_linear(&h, &mlp.fc2.weight, mlp.fc2.bias.as_ref());
        assert_close(y.as_slice().unwrap(), r.as_slice().unwrap(), 1e-5, "mlp");
    }
}

#[test]
fn same_seed_same_layers() {
    let a = MultiHeadSelfAttentionConfig::new(8, 2)
        .init(&mut StdRng::seed_from_u64(9))
        .unwrap();
    let b = MultiHeadSelfAttentionConfig::new(8, 2)
        .init(&mut StdRng::seed_from_u64(9))
        .unwrap();
    assert!(a == b);
}
