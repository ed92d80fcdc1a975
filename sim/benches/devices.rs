//! The per-sample device models on a 256² panel and sensor, the work every noisy
//! frame repeats: a filter pair (8-bit amplitude and 8-bit phase over 2π, the
//! `lcos-pluto2` filter) rendering a frame of varied transmissions, an 8-bit
//! amplitude input panel, and a sCMOS-like camera's read-out (shot noise at
//! ~10⁴ e⁻, read noise, 16-bit ADC). Compare `filter_pair_256` with `amplitude_256`
//! (a lookup per pixel) to see what the phase quantiser costs.

use criterion::{criterion_group, criterion_main, Criterion};
use fourf_sim::devices::camera::{Camera, CameraConfig};
use fourf_sim::devices::slm::{Modulation, Slm, SlmConfig};
use ndarray::Array2;
use num_complex::Complex64 as C64;
use rand::rngs::StdRng;
use rand::SeedableRng;

const N: usize = 256;

fn devices(c: &mut Criterion) {
    let mut group = c.benchmark_group("devices");
    // A spectrum-like frame: amplitudes over [0, 1], phases all round the circle.
    let t = Array2::from_shape_fn((N, N), |(i, j)| {
        let r = ((i * 7 + j * 13) % 101) as f64 / 100.0;
        C64::from_polar(r, (i * N + j) as f64 * 0.618_033_988_75)
    });
    let mut out = Array2::<C64>::zeros((N, N));
    for (name, modulation) in [
        ("filter_pair_256", Modulation::TwoSlm),
        ("amplitude_256", Modulation::Amplitude),
    ] {
        let slm = Slm::new(
            SlmConfig {
                modulation,
                bits: Some(8),
                ..SlmConfig::default()
            },
            "bench",
        )
        .unwrap();
        group.bench_function(name, |b| b.iter(|| slm.render_into(t.view(), 1, out.view_mut())));
    }
    let camera = Camera::new(
        CameraConfig {
            quantum_efficiency: 0.8,
            read_noise_e: 1.4,
            full_well_e: Some(15_000.0),
            gain_e_per_adu: 0.24,
            bias_adu: 100.0,
            adc_bits: Some(16),
            ..CameraConfig::default()
        },
        (N, N),
        "bench",
    )
    .unwrap();
    let photons = t.mapv(|v| 1.2e4 * v.norm_sqr());
    let mut rng = StdRng::seed_from_u64(3);
    group.bench_function("camera_256", |b| {
        b.iter(|| camera.expose_electrons(photons.view(), true, &mut rng, None))
    });
    // The shot-noise draw alone, at a camera's typical signal.
    let mut xs = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(4);
    group.bench_function("poisson_5000_x65536", |b| {
        b.iter(|| {
            (0..N * N)
                .map(|i| fourf_sim::devices::poisson::poisson(5000.0 + i as f64 * 1e-3, &mut xs))
                .sum::<f64>()
        })
    });
    group.finish();
}

criterion_group!(benches, devices);
criterion_main!(benches);
