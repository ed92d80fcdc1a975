//! The machine with its devices: oversampled SLM pixels, signed-input passes, bit
//! planes, camera noise and the detection schemes.

use fourf_sim::devices::detection::{Scheme, SignedInputs};
use fourf_sim::devices::slm::Modulation;
use fourf_sim::{direct_conv, ConvJob, FourF, MachineConfig, Mode, Op, Planner, PlannerConfig};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn random(rng: &mut StdRng, shape: (usize, usize), lo: f64) -> Array2<f64> {
    Array2::from_shape_fn(shape, |_| lo + (1.0 - lo) * rng.random::<f64>())
}

/// Outputs of `jobs` on `cfg` with noise seed `seed`, and the passes and exposures.
fn run(cfg: &MachineConfig, jobs: &[ConvJob], seed: u64) -> (Vec<Array2<f64>>, usize, usize) {
    let machine = FourF::new(cfg.clone()).unwrap();
    let plan = Planner::new(machine.frame_shape(), PlannerConfig::default())
        .plan(jobs)
        .unwrap();
    let e = plan.execute(&machine, jobs, seed).unwrap();
    (e.outputs, e.passes, e.exposures)
}

fn max_rel_err(got: &[Array2<f64>], jobs: &[ConvJob]) -> f64 {
    let mut worst: f64 = 0.0;
    for (g, j) in got.iter().zip(jobs) {
        let want = direct_conv(j.input, j.kernel, j.mode, j.op);
        let num = (g - &want).iter().map(|v| v.abs()).fold(0.0, f64::max);
        worst = worst.max(num / want.iter().map(|v| v.abs()).fold(0.0, f64::max));
    }
    worst
}

fn signed_jobs(rng: &mut StdRng, n: usize) -> (Vec<Array2<f64>>, Array2<f64>) {
    let maps = (0..n).map(|_| random(rng, (12, 12), -1.0)).collect();
    (maps, random(rng, (5, 5), -1.0))
}

#[test]
fn oversampled_pixels_are_exact_with_compensation_and_blurred_without() {
    let mut rng = StdRng::seed_from_u64(1);
    let (maps, k) = signed_jobs(&mut rng, 6);
    let jobs: Vec<ConvJob> = maps
        .iter()
        .map(|m| ConvJob::new(m.view(), k.view(), Mode::Same, Op::Convolution))
        .collect();
    for (s, fill) in [(2, 1.0), (3, 0.7), (4, 0.5)] {
        let mut cfg = MachineConfig::ideal(64);
        cfg.simulation.oversampling = s;
        cfg.input_slm.fill_factor = fill;
        let (out, _, _) = run(&cfg, &jobs, 0);
        let exact = max_rel_err(&out, &jobs);
        cfg.detection.pixel_compensation = false;
        let (out, _, _) = run(&cfg, &jobs, 0);
        let blurred = max_rel_err(&out, &jobs);
        eprintln!("oversampling {s}, fill {fill}: error {exact:.1e} compensated, {blurred:.1e} not");
        assert!(exact < 1e-9, "s = {s}, fill {fill}: compensated error {exact:e}");
        assert!(
            blurred > 1e-2,
            "s = {s}, fill {fill}: the pixel blur should show, error {blurred:e}"
        );
    }
}

#[test]
fn split_and_offset_recover_signed_inputs_on_an_amplitude_slm() {
    let mut rng = StdRng::seed_from_u64(2);
    let (maps, k) = signed_jobs(&mut rng, 10);
    let jobs: Vec<ConvJob> = maps
        .iter()
        .map(|m| ConvJob::new(m.view(), k.view(), Mode::Full, Op::Correlation))
        .collect();
    for encoding in [SignedInputs::Split, SignedInputs::Offset] {
        let mut cfg = MachineConfig::ideal(64);
        cfg.input_slm.modulation = Modulation::Amplitude;
        cfg.detection.signed_inputs = encoding;
        let (out, passes, exposures) = run(&cfg, &jobs, 0);
        let err = max_rel_err(&out, &jobs);
        eprintln!("{encoding:?}: error {err:.1e}, {passes} passes, {exposures} exposures");
        assert!(err < 1e-9, "{encoding:?}: {err:e}");
        assert_eq!(passes, 2, "{encoding:?}: one frame, two passes");
        // Homodyne doubles the exposures.
        cfg.detection.scheme = Scheme::BalancedHomodyne;
        let (out, passes, exposures) = run(&cfg, &jobs, 0);
        assert!(max_rel_err(&out, &jobs) < 1e-9);
        assert_eq!((passes, exposures), (2, 4));
    }
    // Non-negative inputs need one pass.
    let pos: Vec<Array2<f64>> = maps.iter().map(|m| m.mapv(f64::abs)).collect();
    let jobs: Vec<ConvJob> = pos
        .iter()
        .map(|m| ConvJob::new(m.view(), k.view(), Mode::Full, Op::Correlation))
        .collect();
    let mut cfg = MachineConfig::ideal(64);
    cfg.input_slm.modulation = Modulation::Amplitude;
    let (out, passes, _) = run(&cfg, &jobs, 0);
    assert!(max_rel_err(&out, &jobs) < 1e-9);
    assert_eq!(passes, 1);
}

#[test]
fn dmd_bit_planes_are_exact_up_to_the_grey_level_quantisation() {
    let mut rng = StdRng::seed_from_u64(3);
    let (maps, k) = signed_jobs(&mut rng, 4);
    let jobs: Vec<ConvJob> = maps
        .iter()
        .map(|m| ConvJob::new(m.view(), k.view(), Mode::Valid, Op::Convolution))
        .collect();
    for bits in [4u32, 8] {
        let mut cfg = MachineConfig::ideal(64);
        cfg.input_slm.modulation = Modulation::Binary;
        cfg.input_slm.bits = Some(bits);
        let (out, passes, _) = run(&cfg, &jobs, 0);
        assert_eq!(passes, 2 * bits as usize, "split × {bits} bit planes");
        // Each of x⁺ and x⁻ is rounded to b bits of max|x|: an error of at most
        // half a step per pixel, so |Δy| ≤ max|x|·(0.5/(2^b − 1))·Σ|k| per pass.
        let scale = maps.iter().flat_map(|m| m.iter()).fold(0.0f64, |a, v| a.max(v.abs()));
        let bound = scale * 0.5 / ((1u64 << bits) - 1) as f64 * k.iter().map(|v| v.abs()).sum::<f64>();
        let mut worst: f64 = 0.0;
        for (g, j) in out.iter().zip(&jobs) {
            let want = direct_conv(j.input, j.kernel, j.mode, j.op);
            worst = worst.max((g - &want).iter().map(|v| v.abs()).fold(0.0, f64::max));
        }
        eprintln!("DMD {bits} bits: max error {worst:.2e}, bound {bound:.2e}");
        assert!(worst <= bound * (1.0 + 1e-9), "{bits} bits: {worst:e} > {bound:e}");
        assert!(worst > 1e-3 * bound, "quantisation should show");
    }
}

#[test]
fn intensity_detection_returns_the_squared_convolution() {
    let mut rng = StdRng::seed_from_u64(4);
    let (maps, k) = signed_jobs(&mut rng, 3);
    let jobs: Vec<ConvJob> = maps
        .iter()
        .map(|m| ConvJob::new(m.view(), k.view(), Mode::Same, Op::Convolution))
        .collect();
    let mut cfg = MachineConfig::ideal(64);
    cfg.detection.scheme = Scheme::Intensity;
    let (out, _, exposures) = run(&cfg, &jobs, 0);
    assert_eq!(exposures, 1);
    for (g, j) in out.iter().zip(&jobs) {
        let want = direct_conv(j.input, j.kernel, j.mode, j.op).mapv(|v| v * v);
        let err = (g - &want).iter().map(|v| v.abs()).fold(0.0, f64::max) / want.iter().cloned().fold(0.0, f64::max);
        assert!(err < 1e-9, "|y|²: {err:e}");
    }
    // Signed inputs on an amplitude SLM cannot be square-law detected.
    cfg.input_slm.modulation = Modulation::Amplitude;
    let machine = FourF::new(cfg).unwrap();
    let plan = Planner::new(machine.frame_shape(), PlannerConfig::default())
        .plan(&jobs)
        .unwrap();
    let e = plan.execute(&machine, &jobs, 0).unwrap_err().to_string();
    assert!(e.contains("detection.scheme"), "{e}");
}

/// Normalised errors `(got − exact)/σ` of 40 signed 12×12 maps convolved with a
/// signed 3×3 kernel under balanced homodyne detection with a photon budget Φ
/// (photo-electrons of a flat full-scale pixel), reference amplitude b·A (A the
/// full-scale output amplitude, b = 1), no other noise; with an amplitude input
/// SLM the signed inputs take two `split` passes. Returns the errors, passes and
/// exposures.
///
/// Each exposure counts Poisson electrons with mean Φ·I±/A², where
/// I± = b²A² ± 2bA·Re ȳ' + |ȳ|² (one sample per pixel), so the intensity estimate
/// has variance I±·A²/Φ and the difference d = Î₊ − Î₋ has variance
/// 2(b²A² + |ȳ|²)·A²/Φ. The result is d·|R|/(4bA), R the read-out factor, so a
/// pass adds the variance |R|²·(b²A² + |ȳ|²)/(8b²Φ), ȳ = y_pass/|R| its exact
/// output in units of the normalised input; independent passes add their
/// variances.
fn homodyne_z(modulation: Modulation, phi: f64, seed: u64) -> (Vec<f64>, usize, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let maps: Vec<Array2<f64>> = (0..40).map(|_| random(&mut rng, (12, 12), -1.0)).collect();
    let k = random(&mut rng, (3, 3), -1.0);
    let jobs: Vec<ConvJob> = maps
        .iter()
        .map(|m| ConvJob::new(m.view(), k.view(), Mode::Same, Op::Convolution))
        .collect();
    let mut cfg = MachineConfig::ideal(128);
    cfg.input_slm.modulation = modulation;
    cfg.detection.scheme = Scheme::BalancedHomodyne;
    cfg.camera.full_scale_e = Some(phi);
    let machine = FourF::new(cfg).unwrap();
    let plan = Planner::new(machine.frame_shape(), PlannerConfig::default())
        .plan(&jobs)
        .unwrap();
    assert_eq!(plan.frame_count(), 1);
    // The read-out factor of this frame: the mask of its kernel plane.
    let r = machine.program(plan.frame_planes(0, &jobs).1.view()).readout().norm();
    let scale = maps.iter().flat_map(|m| m.iter()).fold(0.0f64, |a, v| a.max(v.abs()));
    let e = plan.execute(&machine, &jobs, seed + 100).unwrap();
    let conv = |m: Array2<f64>| direct_conv(m.view(), k.view(), Mode::Same, Op::Convolution);
    let mut z = Vec::new();
    for (got, m) in e.outputs.iter().zip(&maps) {
        let want = conv(m.clone());
        let passes = match modulation {
            Modulation::Amplitude => vec![conv(m.mapv(|v| v.max(0.0))), conv(m.mapv(|v| (-v).max(0.0)))],
            _ => vec![want.clone()],
        };
        for ((i, g), w) in got.indexed_iter().zip(want.iter()) {
            let var: f64 = passes
                .iter()
                .map(|p| {
                    let yb = p[i] / scale / r;
                    r * r * (1.0 + yb * yb) / (8.0 * phi)
                })
                .sum();
            z.push((g - w) / scale / var.sqrt());
        }
    }
    (z, e.passes, e.exposures)
}

/// The normalised errors have mean 0 and variance 1 within 3σ of their sampling
/// distributions (for normal z the mean has SD 1/√n, the sample variance √(2/(n−1))).
fn assert_standard_normal(z: &[f64], label: &str) {
    let n = z.len() as f64;
    let mean = z.iter().sum::<f64>() / n;
    let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let tol_var = 3.0 * (2.0 / (n - 1.0)).sqrt();
    eprintln!(
        "{label}: normalised error variance {var:.4} (±{tol_var:.4}), mean {mean:.4} (±{:.4}), {} samples",
        3.0 / n.sqrt(),
        z.len()
    );
    assert!((var - 1.0).abs() < tol_var, "{label}: variance of error/σ {var}");
    assert!(mean.abs() < 3.0 / n.sqrt(), "{label}: bias {mean}");
}

#[test]
fn balanced_homodyne_noise_follows_the_shot_noise_bound() {
    let (z, passes, exposures) = homodyne_z(Modulation::Complex, 1e4, 5);
    assert_eq!((passes, exposures), (1, 2));
    assert_standard_normal(&z, "homodyne Φ = 1e4");
}

/// `split` under shot noise: the two passes are independent, so their variances
/// add (see `homodyne_z`).
#[test]
fn split_passes_add_their_shot_noise() {
    let (z, passes, exposures) = homodyne_z(Modulation::Amplitude, 3e3, 8);
    assert_eq!((passes, exposures), (2, 4));
    assert_standard_normal(&z, "split + homodyne Φ = 3e3");
}

#[test]
fn same_seed_same_bits_other_seed_other_noise() {
    let mut rng = StdRng::seed_from_u64(6);
    let (maps, k) = signed_jobs(&mut rng, 30);
    let jobs: Vec<ConvJob> = maps
        .iter()
        .map(|m| ConvJob::new(m.view(), k.view(), Mode::Same, Op::Convolution))
        .collect();
    let mut cfg = MachineConfig::ideal(32);
    cfg.detection.scheme = Scheme::BalancedHomodyne;
    cfg.camera.full_scale_e = Some(1e3);
    cfg.camera.read_noise_e = 1.5;
    cfg.camera.adc_bits = Some(12);
    cfg.camera.gain_e_per_adu = 0.5;
    cfg.camera.bias_adu = 100.0;
    cfg.laser.rin_db_per_hz = Some(-120.0);
    let (a, _, _) = run(&cfg, &jobs, 11);
    let (b, _, _) = run(&cfg, &jobs, 11);
    let (c, _, _) = run(&cfg, &jobs, 12);
    for i in 0..jobs.len() {
        assert!(
            a[i].iter().zip(b[i].iter()).all(|(x, y)| x.to_bits() == y.to_bits()),
            "job {i} differs under the same seed"
        );
    }
    assert!(a.iter().zip(&c).any(|(x, y)| x != y));
}
