//! One 4f frame against the bare FFTs it needs (two 2-D FFTs of the frame),
//! measured in the same run. Report `frame / bare_ffts` (target ≤ 1.3).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fourf_sim::fft::Fft2;
use fourf_sim::{FourF, MachineConfig};
use ndarray::Array2;
use num_complex::Complex64 as C64;

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("fourf_frame");
    group.sample_size(10);
    for n in [512usize, 1024, 2048] {
        let machine = FourF::new(MachineConfig::ideal(n)).unwrap();
        let mut kernel = Array2::<f64>::zeros((n, n));
        for i in 0..5 {
            for j in 0..5 {
                kernel[[i, j]] = ((i * 5 + j) as f64).sin();
            }
        }
        let mask = machine.program(kernel.view());
        let input: Vec<C64> = (0..n * n)
            .map(|i| C64::new((i as f64 * 0.37).sin().abs(), 0.0))
            .collect();
        let mut scratch = machine.make_scratch(true);
        group.bench_with_input(BenchmarkId::new("frame", n), &n, |b, _| {
            b.iter(|| machine.run_frame(&input, &mask, &mut scratch))
        });
        let plan = Fft2::new(n, n);
        let mut fs = plan.make_scratch(true);
        let mut buf = input.clone();
        group.bench_with_input(BenchmarkId::new("bare_ffts", n), &n, |b, _| {
            b.iter(|| {
                plan.forward(&mut buf, &mut fs);
                plan.forward(&mut buf, &mut fs);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
