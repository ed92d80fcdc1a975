//! `fourf conv` on a noisy machine: the output signal-to-noise ratio against the
//! photon budget (photo-electrons of a full-scale pixel) follows the shot-noise
//! law in the shot-limited regime and the read-noise floor below it.
//!
//! Model (balanced homodyne, reference b = 1 at full-scale amplitude A = 1, QE 1,
//! read noise σ_r electrons per exposure): the pixel estimate of intensity has
//! variance I/Φ + σ_r²/Φ² per exposure, so the read-out, |R|/4 times the
//! difference of two exposures, has variance
//! σ² = |R|²/16·(2(1 + |ȳ|²)/Φ + 2σ_r²/Φ²), ȳ = y/|R| the normalised output.
//! Shot-limited (Φ ≫ σ_r²): SNR ∝ √Φ, slope ½ on log-log axes; read-limited
//! (Φ ≪ σ_r²): the noise sits on the read-noise floor and SNR ∝ Φ, slope 1.

use std::path::PathBuf;
use std::process::Command;

use fourf_experiments::{load_machine, read_npy, write_npy, Dtype, MapStack};
use fourf_sim::{ConvJob, FourF, Mode, Op, Planner, PlannerConfig};
use ndarray::{Array3, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const MACHINE: &str = r#"
name = "noisy-64"
[laser]
wavelength_m = 532e-9
[input_slm]
pixels_x = 64
pixels_y = 64
pitch_m = 8e-6
[lens1]
focal_length_m = 0.1
[lens2]
focal_length_m = 0.1
[camera]
full_scale_e = 1000.0
read_noise_e = 5.0
[detection]
scheme = "balanced_homodyne"
"#;

fn run(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_fourf")).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "fourf {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn snr_follows_the_shot_noise_law_and_the_read_noise_floor() {
    let tmp = tempfile::Builder::new().prefix("fourf-noise-").tempdir().unwrap();
    let dir = tmp.path();
    let machine_file = dir.join("noisy.toml");
    std::fs::write(&machine_file, MACHINE).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let x = Array3::from_shape_simple_fn((24, 12, 12), || rng.random::<f64>() * 2.0 - 1.0);
    let k = Array3::from_shape_simple_fn((1, 3, 3), || rng.random::<f64>() * 2.0 - 1.0);
    let (xp, kp) = (dir.join("x.npy"), dir.join("k.npy"));
    write_npy(
        &xp,
        &MapStack {
            data: x.clone(),
            stacked: true,
            dtype: Dtype::F64,
        },
    )
    .unwrap();
    write_npy(
        &kp,
        &MapStack {
            data: k.clone(),
            stacked: false,
            dtype: Dtype::F64,
        },
    )
    .unwrap();
    let p = |q: &PathBuf| q.to_str().unwrap().to_string();
    let (xs, ks) = (p(&xp), p(&kp));
    let common = ["conv", "--input", &xs, "--kernel", &ks, "--mode", "same"];

    // The exact result, from the ideal machine.
    let ideal = dir.join("ideal.npy");
    let ideal_s = p(&ideal);
    let mut args = common.to_vec();
    args.extend(["--out", &ideal_s]);
    run(&args);
    let exact = read_npy(&ideal).unwrap().data;

    // |R| of the frame, to evaluate the model.
    let cfg = load_machine(&p(&machine_file), &[]).unwrap();
    let machine = FourF::new(cfg).unwrap();
    let k2 = k.index_axis(Axis(0), 0);
    let jobs: Vec<ConvJob> = x
        .axis_iter(Axis(0))
        .map(|m| ConvJob::new(m, k2, Mode::Same, Op::Convolution))
        .collect();
    let plan = Planner::new(machine.frame_shape(), PlannerConfig::default())
        .plan(&jobs)
        .unwrap();
    // Every frame shares the one kernel, hence one filter and one |R|.
    assert!(plan.frames.iter().all(|f| f.layout == plan.frames[0].layout));
    let r = machine.program(plan.frame_planes(0, &jobs).1.view()).readout().norm();
    let scale = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let signal_rms = (exact.iter().map(|v| v * v).sum::<f64>() / exact.len() as f64).sqrt();
    let read = 5.0;

    let budgets = [0.1, 0.3, 1.0, 1e2, 1e3, 1e4, 1e5, 1e6];
    let mut snr = Vec::new();
    for (i, phi) in budgets.iter().enumerate() {
        let out = dir.join(format!("y{i}.npy"));
        let set = format!("camera.full_scale_e={phi}");
        let mut args = common.to_vec();
        let (m, o) = (p(&machine_file), p(&out));
        args.extend(["--machine", &m, "--set", &set, "--seed", "5", "--out", &o]);
        run(&args);
        let y = read_npy(&out).unwrap().data;
        let noise_rms = ((&y - &exact).iter().map(|v| v * v).sum::<f64>() / y.len() as f64).sqrt();
        // Model noise (in output units: × max|x|), averaged over the pixels.
        let var: f64 = exact
            .iter()
            .map(|e| {
                let ybar = e / scale / r;
                r * r / 16.0 * (2.0 * (1.0 + ybar * ybar) / phi + 2.0 * read * read / (phi * phi))
            })
            .sum::<f64>()
            / exact.len() as f64;
        let model = signal_rms / (var.sqrt() * scale);
        let measured = signal_rms / noise_rms;
        eprintln!("Φ = {phi:>8}: SNR {measured:10.4} (model {model:10.4})");
        assert!(
            (measured / model - 1.0).abs() < 0.1,
            "Φ = {phi}: SNR {measured} vs model {model}"
        );
        snr.push(measured);
    }
    let slope = |a: usize, b: usize| (snr[b] / snr[a]).ln() / (budgets[b] / budgets[a]).ln();
    let shot = slope(4, 7);
    let floor = slope(0, 2);
    eprintln!(
        "log-log slope: {shot:.3} from Φ = 1e3 to 1e6 (shot-limited), {floor:.3} from 0.1 to 1 (read-noise floor)"
    );
    assert!((shot - 0.5).abs() < 0.03, "shot-limited slope {shot}");
    assert!((floor - 1.0).abs() < 0.1, "read-noise-limited slope {floor}");
}
