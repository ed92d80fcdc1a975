//! Forward passes of the small Fashion-MNIST models.
//!
//! - `digital/<model>/batch1` and `batch64`: images per second of the exact
//!   backend (batch 64 runs images in parallel).
//! - `optical/<model>/<machine>`: one image on the optical backend, to compare with
//!   `digital/<model>/batch1` of the same run: on `ideal-128`, and on a noisy
//!   LCoS machine (`lcos-pluto2` shrunk to a 128² frame with a 6000 e⁻ full scale,
//!   homodyne read-out, 8-bit panels).
//! - `batched64/<model>/...`: a batch of 64 on the batched digital and machine
//!   paths (see [`batched`]).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fourf_nn::backend::Backend;
use fourf_nn::models::preset;
use fourf_sim::presets::machine;
use fourf_sim::FourF;
use ndarray::Array3;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const MODELS: [&str; 5] = [
    "vit-fmnist",
    "gfnet-fmnist",
    "spectformer-fmnist",
    "fnet-fmnist",
    "convsharevit-fmnist",
];

fn images(n: usize) -> Vec<Array3<f32>> {
    let mut rng = StdRng::seed_from_u64(1);
    (0..n)
        .map(|_| Array3::from_shape_simple_fn((1, 28, 28), || rng.random::<f32>() * 2.0 - 1.0))
        .collect()
}

fn noisy_lcos() -> FourF {
    let mut m = machine("lcos-pluto2").unwrap();
    m.input_slm.pixels_x = Some(128);
    m.input_slm.pixels_y = Some(128);
    m.camera.full_scale_e = Some(6000.0);
    FourF::new(m).unwrap()
}

fn digital(c: &mut Criterion) {
    let batch = images(64);
    let mut g = c.benchmark_group("digital");
    for name in MODELS {
        let model = preset(name).unwrap().init(&mut StdRng::seed_from_u64(0)).unwrap();
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{name}/batch1"), |b| {
            b.iter(|| model.infer(&Backend::Digital, batch[0].view(), 0).unwrap())
        });
        g.throughput(Throughput::Elements(64));
        g.bench_function(format!("{name}/batch64"), |b| {
            b.iter(|| model.infer_batch(&Backend::Digital, &batch, 0, 0, &|| {}).unwrap())
        });
    }
    g.finish();
}

fn optical(c: &mut Criterion) {
    let img = images(1).remove(0);
    let machines = [
        (
            "ideal-128",
            Backend::optical(FourF::new(machine("ideal-128").unwrap()).unwrap()),
        ),
        ("lcos-pluto2-128", Backend::optical(noisy_lcos())),
    ];
    let mut g = c.benchmark_group("optical");
    g.sample_size(10);
    for name in ["gfnet-fmnist", "spectformer-fmnist", "convsharevit-fmnist"] {
        let model = preset(name).unwrap().init(&mut StdRng::seed_from_u64(0)).unwrap();
        for (mname, backend) in &machines {
            g.bench_function(format!("{name}/{mname}"), |b| {
                b.iter(|| model.infer(backend, img.view(), 0).unwrap())
            });
        }
    }
    g.finish();
}

/// Batches of 64 images, one per thread at once, on the batched paths `fourf eval
/// --batch 64` runs: the exact digital prediction (`batched64/<model>/digital`) and the machine with the
/// batch's jobs planned together (`batched64/<model>/<machine>`), images per
/// second (the target: the optical path within 10× of the digital one on
/// `ideal-128`, within 30× on the noisy LCoS machine).
fn batched(c: &mut Criterion) {
    use fourf_nn::surrogate::NoiseSource;
    use fourf_nn::train::{predict, predict_with_usage, StepNoise};
    // As `fourf eval --batch 64` runs: a batch of 64 per thread at once.
    let n = 64 * rayon::current_num_threads();
    let mut rng = StdRng::seed_from_u64(1);
    let batch = ndarray::Array4::from_shape_simple_fn((n, 1, 28, 28), || rng.random::<f32>() * 2.0 - 1.0);
    let machines = [
        ("ideal-128", FourF::new(machine("ideal-128").unwrap()).unwrap()),
        ("lcos-pluto2-128", noisy_lcos()),
    ];
    let mut g = c.benchmark_group("batched64");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    for name in ["gfnet-fmnist", "spectformer-fmnist", "convsharevit-fmnist"] {
        let model = preset(name).unwrap().init(&mut StdRng::seed_from_u64(0)).unwrap();
        g.bench_function(format!("{name}/digital"), |b| {
            b.iter(|| predict(&model, batch.view(), 16))
        });
        for (mname, m) in &machines {
            let noise = StepNoise {
                source: NoiseSource::Machine(m),
                strength: 1.0,
                seed: 0,
                spectral: Default::default(),
            };
            g.bench_function(format!("{name}/{mname}"), |b| {
                b.iter(|| predict_with_usage(&model, batch.view(), 64, Some(&noise), 0).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, digital, optical, batched);
criterion_main!(benches);
