//! The ideal noiseless 4f machine against the direct convolution.

use fourf_sim::planner::{convolve, GridStrategy, Layout};
use fourf_sim::{direct_conv, ConvJob, FourF, MachineConfig, Mode, Op, Planner, PlannerConfig};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn random(rng: &mut StdRng, shape: (usize, usize)) -> Array2<f64> {
    Array2::from_shape_fn(shape, |_| rng.random::<f64>() * 2.0 - 1.0)
}

/// max|a − b| / max|b|.
fn rel_err(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    let num = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let den = b.iter().map(|y| y.abs()).fold(0.0, f64::max).max(1e-300);
    num / den
}

fn check(machine: &FourF, jobs: &[ConvJob]) -> usize {
    let (out, plan) = convolve(machine, jobs).expect("plan");
    for (i, (job, got)) in jobs.iter().zip(&out).enumerate() {
        let want = direct_conv(job.input, job.kernel, job.mode, job.op);
        let e = rel_err(got, &want);
        assert!(
            e <= 1e-10,
            "job {i}: {:?} input {:?} kernel {:?} {:?}: relative error {e:e}",
            job.mode,
            job.input.dim(),
            job.kernel.dim(),
            job.op
        );
    }
    plan.frame_count()
}

#[test]
fn single_jobs_of_random_sizes_in_every_mode() {
    let machine = FourF::new(MachineConfig::ideal(64)).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..40 {
        let (kh, kw) = (rng.random_range(1..12), rng.random_range(1..12));
        let (h, w) = (rng.random_range(kh..40), rng.random_range(kw..40));
        let x = random(&mut rng, (h, w));
        let k = random(&mut rng, (kh, kw));
        for mode in [Mode::Valid, Mode::Same, Mode::Full] {
            for op in [Op::Convolution, Op::Correlation] {
                check(&machine, &[ConvJob::new(x.view(), k.view(), mode, op)]);
            }
        }
    }
}

#[test]
fn shared_kernel_jobs_are_input_tiled() {
    let machine = FourF::new(MachineConfig::ideal(128)).unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    // A ConvShareViT-shaped batch: 65 token maps of 16×16, one 5×5 kernel.
    let maps: Vec<Array2<f64>> = (0..65).map(|_| random(&mut rng, (16, 16))).collect();
    let k = random(&mut rng, (5, 5));
    for mode in [Mode::Valid, Mode::Same, Mode::Full] {
        let jobs: Vec<ConvJob> = maps
            .iter()
            .map(|m| ConvJob::new(m.view(), k.view(), mode, Op::Convolution))
            .collect();
        let frames = check(&machine, &jobs);
        // 128/16 = 8 tiles per row in valid mode (no guard needed), 128/20 = 6 in
        // full mode (guard K−1 = 4), 128/18 = 7 in same mode (guard 2).
        let per_side: usize = match mode {
            Mode::Valid => 8,
            Mode::Same => 7,
            Mode::Full => 6,
        };
        assert_eq!(frames, 65usize.div_ceil(per_side * per_side), "{mode:?}");
    }
}

#[test]
fn shared_input_jobs_are_kernel_tiled() {
    let machine = FourF::new(MachineConfig::ideal(64)).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let x = random(&mut rng, (12, 10));
    let kernels: Vec<Array2<f64>> = (0..9).map(|i| random(&mut rng, (3 + i % 3, 2 + i % 4))).collect();
    for mode in [Mode::Valid, Mode::Same, Mode::Full] {
        let jobs: Vec<ConvJob> = kernels
            .iter()
            .enumerate()
            .map(|(i, k)| {
                ConvJob::new(
                    x.view(),
                    k.view(),
                    mode,
                    if i % 2 == 0 { Op::Convolution } else { Op::Correlation },
                )
            })
            .collect();
        let frames = check(&machine, &jobs);
        let plan = Planner::new((64, 64), PlannerConfig::default()).plan(&jobs).unwrap();
        assert!(plan
            .frames
            .iter()
            .all(|f| matches!(f.layout, Layout::KernelTiling { .. })));
        assert!(frames < jobs.len(), "{mode:?}: {frames} frames for {} jobs", jobs.len());
    }
}

#[test]
fn inputs_larger_than_the_frame_are_split() {
    let machine = FourF::new(MachineConfig::ideal(32)).unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    for (h, w, kh, kw) in [(100, 70, 5, 7), (33, 33, 32, 1), (64, 40, 1, 1), (90, 31, 17, 9)] {
        let x = random(&mut rng, (h, w));
        let k = random(&mut rng, (kh, kw));
        for mode in [Mode::Valid, Mode::Same, Mode::Full] {
            let frames = check(&machine, &[ConvJob::new(x.view(), k.view(), mode, Op::Correlation)]);
            assert!(frames > 1);
        }
    }
}

#[test]
fn mixed_batches_of_many_shapes() {
    let machine = FourF::new(MachineConfig::ideal(96)).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let k1 = random(&mut rng, (3, 3));
    let k2 = random(&mut rng, (7, 4));
    let maps: Vec<Array2<f64>> = (0..30)
        .map(|_| {
            let s = (rng.random_range(7..50), rng.random_range(7..50));
            random(&mut rng, s)
        })
        .collect();
    let jobs: Vec<ConvJob> = maps
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let k = if i % 3 == 0 { &k2 } else { &k1 };
            let mode = [Mode::Valid, Mode::Same, Mode::Full][i % 3];
            ConvJob::new(m.view(), k.view(), mode, Op::Convolution)
        })
        .collect();
    check(&machine, &jobs);
}

#[test]
fn magnifying_non_square_machine() {
    let mut cfg = MachineConfig::ideal(64);
    cfg.input_slm.pixels_y = Some(48);
    cfg.lens2.focal_length_m = 0.25;
    let machine = FourF::new(cfg.clone()).unwrap();
    // A non-square grid has unequal Fourier pitches per axis: an unset filter
    // pitch matches both, a square-pixel filter SLM cannot.
    assert!(machine.filter_matched());
    let mut rng = StdRng::seed_from_u64(6);
    let x = random(&mut rng, (30, 20));
    let k = random(&mut rng, (5, 6));
    check(
        &machine,
        &[ConvJob::new(x.view(), k.view(), Mode::Same, Op::Convolution)],
    );
    cfg.filter_slm.pitch_m = Some(machine.fourier_pitch_m()[1]);
    assert!(!FourF::new(cfg).unwrap().filter_matched());
    let mut cfg = MachineConfig::ideal(64);
    cfg.lens2.focal_length_m = 0.25;
    let machine = FourF::new(cfg).unwrap();
    assert!(machine.filter_matched());
    assert!((machine.output_pitch_m()[0] - 2.5 * 8e-6).abs() < 1e-15);
    let x = random(&mut rng, (30, 20));
    let k = random(&mut rng, (5, 6));
    check(
        &machine,
        &[ConvJob::new(x.view(), k.view(), Mode::Full, Op::Convolution)],
    );
}

#[test]
fn large_frames_run_the_parallel_path() {
    let machine = FourF::new(MachineConfig::ideal(512)).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let maps: Vec<Array2<f64>> = (0..5).map(|_| random(&mut rng, (300, 200))).collect();
    let k = random(&mut rng, (9, 9));
    let jobs: Vec<ConvJob> = maps
        .iter()
        .map(|m| ConvJob::new(m.view(), k.view(), Mode::Same, Op::Convolution))
        .collect();
    check(&machine, &jobs);
}

#[test]
fn cross_tiling_runs_every_input_with_every_kernel_in_few_frames() {
    let machine = FourF::new(MachineConfig::ideal(64)).unwrap();
    let mut rng = StdRng::seed_from_u64(31);
    // Attention-score shape (valid correlations of equal maps, one number each),
    // and shared convolutions of odd and even sizes in every mode.
    for (m, n, size, ksize, modes) in [
        (17, 17, (6, 6), (6, 6), vec![Mode::Valid]),
        (12, 5, (7, 6), (3, 2), vec![Mode::Valid, Mode::Same, Mode::Full]),
        (9, 4, (5, 5), (4, 4), vec![Mode::Same, Mode::Full]),
    ] {
        let inputs: Vec<Array2<f64>> = (0..m).map(|_| random(&mut rng, size)).collect();
        let kernels: Vec<Array2<f64>> = (0..n).map(|_| random(&mut rng, ksize)).collect();
        for mode in modes {
            for op in [Op::Convolution, Op::Correlation] {
                let jobs: Vec<ConvJob> = kernels
                    .iter()
                    .flat_map(|k| inputs.iter().map(move |x| ConvJob::new(x.view(), k.view(), mode, op)))
                    .collect();
                let frames = check(&machine, &jobs);
                let plan = Planner::new((64, 64), PlannerConfig::default()).plan(&jobs).unwrap();
                assert!(
                    plan.frames.iter().all(|f| matches!(
                        f.layout,
                        Layout::Grid {
                            strategy: GridStrategy::Cross,
                            ..
                        }
                    )),
                    "{m}×{n} {mode:?}: not cross-tiled"
                );
                // Input tiling would take one frame per kernel at least.
                assert!(frames < n, "{m}×{n} {mode:?}: {frames} frames");
                assert!(plan.stats().filters <= frames);
            }
        }
    }
}

#[test]
fn diagonal_pairing_runs_every_map_with_its_own_kernel_in_few_frames() {
    let mut rng = StdRng::seed_from_u64(41);
    // Per-channel filters (GFNet-like: channel c with filter c), odd and even
    // sizes, every mode, and groups of several maps per kernel (a batch); the
    // wrap-extended circular case (27 × 27 with a 14 × 14 kernel, valid) at 128².
    for (frame, channels, maps, size, ksize, modes) in [
        (64, 10, 1, (7, 6), (3, 2), vec![Mode::Valid, Mode::Same, Mode::Full]),
        (64, 7, 3, (5, 5), (4, 4), vec![Mode::Same, Mode::Full]),
        (128, 9, 1, (27, 27), (14, 14), vec![Mode::Valid]),
        (128, 6, 2, (27, 27), (14, 14), vec![Mode::Valid]),
    ] {
        let machine = FourF::new(MachineConfig::ideal(frame)).unwrap();
        let inputs: Vec<Array2<f64>> = (0..channels * maps).map(|_| random(&mut rng, size)).collect();
        let kernels: Vec<Array2<f64>> = (0..channels).map(|_| random(&mut rng, ksize)).collect();
        for mode in modes {
            for op in [Op::Convolution, Op::Correlation] {
                let jobs: Vec<ConvJob> = inputs
                    .iter()
                    .enumerate()
                    .map(|(i, x)| ConvJob::new(x.view(), kernels[i % channels].view(), mode, op))
                    .collect();
                let frames = check(&machine, &jobs);
                let plan = Planner::new((frame, frame), PlannerConfig::default())
                    .plan(&jobs)
                    .unwrap();
                plan.verify().unwrap();
                assert!(
                    plan.frames.iter().all(|f| matches!(
                        f.layout,
                        Layout::Grid {
                            strategy: GridStrategy::Diagonal,
                            ..
                        }
                    )),
                    "{channels}×{maps} {size:?} {mode:?}: not paired diagonally"
                );
                // One kernel per frame would take a frame per channel.
                assert!(frames < channels, "{channels}×{maps} {mode:?}: {frames} frames");
                assert!(plan.stats().filters <= frames);
                let off = Planner::new(
                    (frame, frame),
                    PlannerConfig {
                        diagonal: false,
                        ..Default::default()
                    },
                )
                .plan(&jobs)
                .unwrap();
                assert_eq!(off.frame_count(), channels, "{size:?} {mode:?}: input tiling");
            }
        }
    }
}
