//! Training and batched digital inference of the small Fashion-MNIST models, to
//! compare with PyTorch CPU eager on the identical architecture
//! (`benches/peers/torch_fmnist.py`, run side by side by `benches/peers/run.sh`).
//!
//! - `train/<model>/batch128`: one optimiser step (forward, backward, AdamW) on a
//!   batch of 128 images; throughput in images.
//! - `infer/<model>/batch64`: logits of 64 images on the batched digital path.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fourf_nn::models::preset;
use fourf_nn::train::{batch_gradient, predict, AdamW, AdamWConfig};
use ndarray::Array4;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const MODELS: [&str; 2] = ["vit-fmnist", "gfnet-fmnist"];

fn images(n: usize) -> (Array4<f32>, Vec<u8>) {
    let mut rng = StdRng::seed_from_u64(1);
    let x = Array4::from_shape_simple_fn((n, 1, 28, 28), || rng.random::<f32>() * 2.0 - 1.0);
    let y = (0..n).map(|i| (i % 10) as u8).collect();
    (x, y)
}

fn train(c: &mut Criterion) {
    let (x, y) = images(128);
    let mut g = c.benchmark_group("train");
    g.sample_size(10);
    for name in MODELS {
        let mut model = preset(name).unwrap().init(&mut StdRng::seed_from_u64(0)).unwrap();
        let mut opt = AdamW::new(AdamWConfig::default(), &mut model);
        g.throughput(Throughput::Elements(128));
        g.bench_function(format!("{name}/batch128"), |b| {
            b.iter(|| {
                let (_, grad) = batch_gradient(&model, x.view(), &y, 0.1, 32, None).unwrap();
                opt.update(&mut model, &grad, 1e-4);
            })
        });
    }
    g.finish();
}

fn infer(c: &mut Criterion) {
    let (x, _) = images(64);
    let mut g = c.benchmark_group("infer");
    for name in MODELS {
        let model = preset(name).unwrap().init(&mut StdRng::seed_from_u64(0)).unwrap();
        g.throughput(Throughput::Elements(64));
        g.bench_function(format!("{name}/batch64"), |b| b.iter(|| predict(&model, x.view(), 32)));
    }
    g.finish();
}

criterion_group!(benches, train, infer);
criterion_main!(benches);
