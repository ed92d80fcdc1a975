//! A ConvShareViT-shaped batch: 65 token maps of 16×16, one shared 5×5 kernel,
//! `valid`. The 4f path (plan + execute, and execute of a reused plan) on a
//! 512×512 and a 128×128 ideal machine, against the direct convolution of the
//! same jobs.

use criterion::{criterion_group, criterion_main, Criterion};
use fourf_sim::planner::convolve;
use fourf_sim::{direct_conv, ConvJob, FourF, MachineConfig, Mode, Op, Planner, PlannerConfig};
use ndarray::Array2;

fn batch(c: &mut Criterion) {
    let maps: Vec<Array2<f64>> = (0..65)
        .map(|t| Array2::from_shape_fn((16, 16), |(i, j)| ((t * 256 + i * 16 + j) as f64 * 0.61).sin()))
        .collect();
    let kernel = Array2::from_shape_fn((5, 5), |(i, j)| ((i * 5 + j) as f64 * 1.3).cos());
    let jobs: Vec<ConvJob> = maps
        .iter()
        .map(|m| ConvJob::new(m.view(), kernel.view(), Mode::Valid, Op::Convolution))
        .collect();
    let mut group = c.benchmark_group("convsharevit_batch");
    for n in [512usize, 128] {
        let machine = FourF::new(MachineConfig::ideal(n)).unwrap();
        group.bench_function(format!("4f_plan_execute_{n}"), |b| {
            b.iter(|| convolve(&machine, &jobs).unwrap())
        });
        let plan = Planner::new((n, n), PlannerConfig::default()).plan(&jobs).unwrap();
        eprintln!("{n}×{n} machine: {} frame(s)", plan.frame_count());
        group.bench_function(format!("4f_execute_{n}"), |b| {
            b.iter(|| plan.execute(&machine, &jobs, 0).unwrap())
        });
    }
    group.bench_function("direct", |b| {
        b.iter(|| {
            jobs.iter()
                .map(|j| direct_conv(j.input, j.kernel, j.mode, j.op))
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
