//! Guard bands between tiles: below the minimum, neighbours leak into each other's
//! kept outputs; at or above it they do not.

use fourf_sim::{direct_conv, ConvJob, FourF, MachineConfig, Mode, Op, Planner, PlannerConfig};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Largest relative error of any job when packed with `guard`, and the frames.
/// Asserts that the placement checker (`Plan::verify`) agrees: it accepts the plan
/// exactly when no job leaks.
fn worst_error(machine: &FourF, jobs: &[ConvJob], guard: usize) -> (f64, usize) {
    let planner = Planner::new(
        machine.frame_shape(),
        PlannerConfig {
            guard: Some(guard),
            ..Default::default()
        },
    );
    let plan = planner.plan(jobs).unwrap();
    let out = plan.execute(machine, jobs, 0).unwrap().outputs;
    let worst = jobs
        .iter()
        .zip(&out)
        .map(|(j, got)| {
            let want = direct_conv(j.input, j.kernel, j.mode, j.op);
            let num = (got - &want).iter().map(|v| v.abs()).fold(0.0, f64::max);
            num / want.iter().map(|v| v.abs()).fold(0.0, f64::max)
        })
        .fold(0.0, f64::max);
    match plan.verify() {
        Ok(()) => assert!(worst <= 1e-10, "guard {guard}: verified, yet error {worst:e}"),
        Err(e) => {
            assert!(worst > 1e-3, "guard {guard}: rejected ({e}), yet error {worst:e}");
            assert!(e.to_string().contains("overlapped by"), "{e}");
        }
    }
    (worst, plan.frame_count())
}

#[test]
fn guard_below_the_mode_minimum_leaks_and_at_it_does_not() {
    let machine = FourF::new(MachineConfig::ideal(128)).unwrap();
    let mut rng = StdRng::seed_from_u64(21);
    // Positive maps and kernels so that leaked light cannot cancel by chance.
    let maps: Vec<Array2<f64>> = (0..40)
        .map(|_| Array2::from_shape_fn((14, 14), |_| 0.1 + rng.random::<f64>()))
        .collect();
    for k in [2usize, 3, 5, 8] {
        let kernel = Array2::from_shape_fn((k, k), |_| 0.1 + rng.random::<f64>());
        for (mode, minimum) in [(Mode::Full, k - 1), (Mode::Same, k / 2), (Mode::Valid, 0)] {
            // ⌈(k−1)/2⌉ = k/2 for integer k.
            let jobs: Vec<ConvJob> = maps
                .iter()
                .map(|m| ConvJob::new(m.view(), kernel.view(), mode, Op::Convolution))
                .collect();
            let (ok, frames) = worst_error(&machine, &jobs, minimum);
            eprintln!("K = {k}, {mode}: guard {minimum} → error {ok:.1e} in {frames} frames");
            assert!(
                ok <= 1e-10,
                "K = {k}, {mode}: guard {minimum} should be exact, error {ok:e}"
            );
            if minimum > 0 {
                let (leak, _) = worst_error(&machine, &jobs, minimum - 1);
                eprintln!("K = {k}, {mode}: guard {} → error {leak:.1e}", minimum - 1);
                assert!(
                    leak > 1e-3,
                    "K = {k}, {mode}: guard {} should leak, error {leak:e}",
                    minimum - 1
                );
            }
        }
    }
}

#[test]
fn automatic_guards_use_the_fewest_frames_that_stay_exact() {
    let machine = FourF::new(MachineConfig::ideal(64)).unwrap();
    let mut rng = StdRng::seed_from_u64(22);
    let maps: Vec<Array2<f64>> = (0..50)
        .map(|_| Array2::from_shape_fn((10, 10), |_| rng.random::<f64>()))
        .collect();
    let kernel = Array2::from_shape_fn((5, 5), |_| rng.random::<f64>());
    for (mode, guard) in [(Mode::Full, 4), (Mode::Same, 2), (Mode::Valid, 0)] {
        let jobs: Vec<ConvJob> = maps
            .iter()
            .map(|m| ConvJob::new(m.view(), kernel.view(), mode, Op::Correlation))
            .collect();
        let auto = Planner::new((64, 64), PlannerConfig::default()).plan(&jobs).unwrap();
        let per_side = 64 / (10 + guard);
        assert_eq!(auto.frame_count(), 50usize.div_ceil(per_side * per_side), "{mode}");
        let (err, frames) = worst_error(&machine, &jobs, guard);
        assert_eq!(frames, auto.frame_count());
        assert!(err < 1e-10);
    }
}
