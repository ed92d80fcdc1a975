//! One full-physics frame — 1024² input-SLM pixels at oversampling 2 (a 2048²
//! simulation grid), 8-bit two-SLM complex input with 93 % fill and crosstalk, a
//! noisy sCMOS-like camera, balanced homodyne detection (two exposures) — against
//! the ideal frame of the same simulation grid (2048² pixels, one sample each,
//! coherent read-out), both through `FourF::detect_frame`, measured in one run.
//! Report `physics / ideal` (target ≤ 2).

use criterion::{criterion_group, criterion_main, Criterion};
use fourf_sim::devices::detection::Scheme;
use fourf_sim::devices::slm::Modulation;
use fourf_sim::{FourF, MachineConfig};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn kernel(n: usize) -> Array2<f64> {
    let mut k = Array2::<f64>::zeros((n, n));
    for i in 0..5 {
        for j in 0..5 {
            k[[i, j]] = ((i * 5 + j) as f64).sin();
        }
    }
    k
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("physics_frame");
    group.sample_size(10);
    let mut full = MachineConfig::ideal(1024);
    full.simulation.oversampling = 2;
    full.input_slm.modulation = Modulation::TwoSlm;
    full.input_slm.bits = Some(8);
    full.input_slm.fill_factor = 0.93;
    full.input_slm.crosstalk_px = 0.3;
    full.filter_slm.modulation = Modulation::TwoSlm;
    full.filter_slm.bits = Some(8);
    full.laser.rin_db_per_hz = Some(-140.0);
    full.camera.full_scale_e = Some(1e4);
    full.camera.read_noise_e = 1.4;
    full.camera.full_well_e = Some(15_000.0);
    full.camera.adc_bits = Some(16);
    full.camera.gain_e_per_adu = 0.25;
    full.camera.bias_adu = 100.0;
    full.camera.prnu_rms = 0.005;
    full.detection.scheme = Scheme::BalancedHomodyne;
    for (name, cfg) in [
        ("full_physics_1024px_x2", full),
        ("ideal_2048px", MachineConfig::ideal(2048)),
    ] {
        let machine = FourF::new(cfg).unwrap();
        let (ny, nx) = machine.frame_shape();
        let mask = machine.program(kernel(ny).view());
        let x = Array2::from_shape_fn((ny, nx), |(i, j)| ((i * nx + j) as f64 * 0.37).sin());
        let support = [[0, 0, ny, nx]];
        let mut scratch = machine.make_scratch(true);
        let mut rng = StdRng::seed_from_u64(1);
        group.bench_function(name, |b| {
            b.iter(|| {
                machine
                    .detect_frame(x.view(), &support, &mask, &mut scratch, &mut rng)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
