//! The latency model against the simulator and the CLI: closed-form frame counts
//! equal the planner's on real traces; `fourf latency` end to end.

use std::process::Command;

use fourf_hw::optical::{frames_for, kernels_are_weights, lens_frames};
use fourf_nn::backend::Backend;
use fourf_nn::models::preset;
use fourf_sim::{FourF, MachineConfig};
use ndarray::Array3;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

#[test]
fn closed_form_frames_equal_the_planners_on_model_traces() {
    for n in [32, 64, 128] {
        let backend = Backend::optical(FourF::new(MachineConfig::ideal(n)).unwrap());
        for name in [
            "convsharevit-fmnist",
            "gfnet-fmnist",
            "spectformer-fmnist",
            "fnet-fmnist",
        ] {
            let config = preset(name).unwrap();
            let model = config.init(&mut StdRng::seed_from_u64(0)).unwrap();
            let img = Array3::from_shape_fn((1, 28, 28), |(_, y, x)| ((y * 31 + x * 17) % 11) as f32 / 11.0 - 0.5);
            let trace = model.infer(&backend, img.view(), 0).unwrap().trace;
            let mut total = 0;
            for op in trace.ops.iter().filter(|o| o.maps_to_optics()) {
                let model = match (&op.conv, &op.lens) {
                    (Some(spec), _) => Some(frames_for(spec, kernels_are_weights(op.kind), 1, [n, n])),
                    (None, Some(lens)) => lens_frames(lens, 1, [n, n]),
                    (None, None) => unreachable!(),
                };
                // Where the latency model keeps an op electronic, so does the simulator.
                let Some(model) = model else {
                    assert!(op.optical.is_none(), "{name} on {n}²: {} ran optically", op.name);
                    continue;
                };
                let used = op
                    .optical
                    .unwrap_or_else(|| panic!("{name} on {n}²: {} did not run optically", op.name));
                assert_eq!(
                    (model.frames, model.filters),
                    (used.frames, used.filters),
                    "{name} on {n}²: {}",
                    op.name
                );
                total += used.frames;
            }
            println!("{name} on ideal {n}²: {total} frames, closed form equal op by op");
        }
    }
}

fn fourf(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fourf")).args(args).output().unwrap()
}

#[test]
fn latency_cli_reports_every_op_and_each_gpu() {
    let out = fourf(&[
        "latency",
        "--model",
        "convsharevit-fmnist",
        "--machine",
        "lcos-pluto2",
        "--gpu",
        "h100",
        "--gpu",
        "rtx4090",
        "--batch",
        "8",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["batch"], 8);
    let ops = r["optical"]["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 61);
    let gpus = r["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 2);
    assert_eq!(gpus[0]["ops"].as_array().unwrap().len(), 61);
    // Optical time is frames × passes × period plus filter changes.
    let o = &r["optical"];
    let m = &r["machine"];
    let frames = o["frames"].as_f64().unwrap();
    let expect = frames * m["passes_per_frame"].as_f64().unwrap() * o["pass_period_s"].as_f64().unwrap()
        + o["filters"].as_f64().unwrap() / m["filter_rate_hz"].as_f64().unwrap();
    assert!((o["optical_s"].as_f64().unwrap() / expect - 1.0).abs() < 1e-9);
    // A layer table and a bad GPU name.
    let out = fourf(&[
        "latency",
        "--layers",
        "experiments/layers/resnet18_cifar.toml",
        "--gpu",
        "h100",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = fourf(&["latency", "--model", "gfnet-ti", "--gpu", "h1000"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("h1000") && e.contains("rtx4090"),
        "{e}"
    );
    let out = fourf(&["latency", "--gpu", "h100"]);
    assert!(!out.status.success());
}

fn views(a: &[Vec<ndarray::Array2<f64>>]) -> Vec<Vec<ndarray::ArrayView2<'_, f64>>> {
    a.iter().map(|r| r.iter().map(|m| m.view()).collect()).collect()
}

#[test]
fn closed_form_frames_equal_the_planners_for_cnn_layers() {
    use fourf_hw::ConvSpec;
    use fourf_sim::{ChannelPlan, ChannelShape, ConvJob, FourF, MachineConfig, Mode, Op, Planner, PlannerConfig};
    use ndarray::Array2;
    // A CNN layer: C_in inputs, C_in·C_out distinct kernels; several frame sizes
    // and batches. With C_in > 1 the simulator channel-tiles it (and runs it, the
    // frames counted by the run); a single input channel is kernel tiling.
    for (c_in, c_out, n, k, frame, mode, batch) in [
        (3, 4, 8, 3, 32, Mode::Same, 1),
        (2, 9, 16, 3, 48, Mode::Same, 1),
        (4, 2, 10, 5, 32, Mode::Valid, 1),
        (16, 8, 4, 3, 64, Mode::Same, 3),
        (5, 3, 6, 3, 40, Mode::Full, 4),
        (1, 20, 8, 3, 64, Mode::Full, 1),
    ] {
        let spec = ConvSpec {
            jobs: c_in * c_out,
            inputs: c_in,
            kernels: c_in * c_out,
            input: [n, n],
            kernel: [k, k],
            mode: mode.into(),
            accumulate: c_in,
        };
        let model = frames_for(&spec, true, batch, [frame, frame]);
        let what = format!("{c_in}×{c_out} {n} {k} {frame} {mode:?} batch {batch}");
        let (frames, filters) = if c_in > 1 {
            let shape = ChannelShape {
                batch,
                inputs: c_in,
                outputs: c_out,
                input: [n, n],
                kernel: [k, k],
                mode,
            };
            let plan = ChannelPlan::new((frame, frame), shape, None, true).unwrap();
            let x: Vec<Vec<Array2<f64>>> = (0..batch)
                .map(|b| {
                    (0..c_in)
                        .map(|i| Array2::from_elem((n, n), 1.0 + (i + b) as f64))
                        .collect()
                })
                .collect();
            let w: Vec<Vec<Array2<f64>>> = (0..c_out)
                .map(|o| {
                    (0..c_in)
                        .map(|i| Array2::from_elem((k, k), 0.5 + (i * o) as f64))
                        .collect()
                })
                .collect();
            let machine = FourF::new(MachineConfig::ideal(frame)).unwrap();
            let run = plan
                .execute(&machine, &views(&x), &views(&w), Op::Convolution, 0)
                .unwrap();
            assert_eq!(model.partials, plan.layout.groups, "{what}");
            (run.frames, plan.layout.filters())
        } else {
            let inputs: Vec<Array2<f64>> = (0..c_in).map(|i| Array2::from_elem((n, n), 1.0 + i as f64)).collect();
            let kernels: Vec<Array2<f64>> = (0..c_in * c_out)
                .map(|j| Array2::from_elem((k, k), 1.0 + j as f64))
                .collect();
            let jobs: Vec<ConvJob> = (0..c_in * c_out)
                .map(|j| ConvJob::new(inputs[j / c_out].view(), kernels[j].view(), mode, Op::Convolution))
                .collect();
            let plan = Planner::new((frame, frame), PlannerConfig::default())
                .plan(&jobs)
                .unwrap();
            (plan.frame_count(), plan.stats().filters)
        };
        assert_eq!((model.frames, model.filters), (frames, filters), "{what}");
    }
}

#[test]
fn traces_from_eval_and_measured_gpus_feed_the_projection() {
    let tmp = tempfile::Builder::new().prefix("fourf-latency-").tempdir().unwrap();
    let dir = tmp.path();
    let trace = dir.join("trace.json");
    let out = fourf(&[
        "eval",
        "--model",
        "gfnet-fmnist",
        "--backend",
        "optical",
        "--limit",
        "1",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let from_trace = fourf(&["latency", "--trace", trace.to_str().unwrap(), "--gpu", "v100", "--json"]);
    let from_model = fourf(&["latency", "--model", "gfnet-fmnist", "--gpu", "v100", "--json"]);
    let a: Value = serde_json::from_slice(&from_trace.stdout).unwrap();
    let b: Value = serde_json::from_slice(&from_model.stdout).unwrap();
    // The optical run's trace and the digital one project to the same frames and times.
    assert_eq!(a["optical"]["frames"], b["optical"]["frames"]);
    assert_eq!(a["gpus"][0]["time_s"], b["gpus"][0]["time_s"]);
    // A measured throughput replaces the roofline for the network it names.
    let out = fourf(&[
        "latency",
        "--model",
        "deit-ti",
        "--gpu",
        "v100",
        "--batch",
        "256",
        "--precision",
        "fp32",
        "--gpu-measurements",
        "experiments/layers/gpu_measurements.csv",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["gpus"][0]["basis"], "measured");
    assert!((r["gpus"][0]["images_per_s"].as_f64().unwrap() - 2536.0).abs() < 1e-6);
}

/// Traces the fuzzer found overflowing the frame and GPU arithmetic (multiply
/// and subtract overflow in the test profile): each now gives a projection or a
/// clean error, never a panic.
#[test]
fn fuzzed_traces_do_not_panic() {
    let mut n = 0;
    for entry in std::fs::read_dir("tests/fuzz_regressions").unwrap() {
        let path = entry.unwrap().path();
        let out = fourf(&["latency", "--trace", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{}: {err}", path.display());
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}: {err}", path.display());
        n += 1;
    }
    assert!(n > 0);
}

/// The report states the network's size, says "optics speed-up" only when some
/// op runs on the optics, and gives each break-even line one unit.
#[test]
fn latency_report_states_totals_and_speed_up_only_with_optical_ops() {
    let text = |args: &[&str]| {
        let out = fourf(args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    // DeiT-Ti: 1.26 G MACs and 5.7 M parameters (Touvron et al.), nothing optical.
    let deit = text(&["latency", "--model", "deit-ti", "--gpu", "v100"]);
    assert!(
        deit.contains("network: 2.5374 GFLOPs and 5.7174 M parameters per image"),
        "{deit}"
    );
    assert!(
        deit.contains("0 of them on the optics") && deit.contains("no op runs on the optics"),
        "{deit}"
    );
    assert!(!deit.contains("speed-up"), "{deit}");
    let json: Value = serde_json::from_slice(&fourf(&["latency", "--model", "deit-ti", "--json"]).stdout).unwrap();
    assert_eq!(json["totals"]["params"], 5_717_416);
    // VGG16-CIFAR: 14,774,436 parameters (its table's header), 13 optical convs.
    let vgg = text(&[
        "latency",
        "--layers",
        "experiments/layers/vgg16_cifar.toml",
        "--gpu",
        "v100",
    ]);
    assert!(
        vgg.contains("14.7744 M parameters") && vgg.contains("13 of them on the optics"),
        "{vgg}"
    );
    assert!(vgg.contains("optics speed-up"), "{vgg}");
    assert!(!vgg.contains("frames/s (now"), "one unit per break-even line: {vgg}");
}

/// A machine file that leaves the key limiting its pass period to its default is
/// warned about, naming the key; a preset (every value chosen) is not.
#[test]
fn defaults_that_decide_the_pass_period_are_warned_about() {
    let run = |extra: &[&str]| {
        let mut args = vec!["latency", "--model", "gfnet-fmnist", "--gpu", "v100"];
        args.extend_from_slice(extra);
        let out = fourf(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let file = run(&["--machine", "examples/misaligned.toml"]);
    assert!(
        file.contains("warning: the pass period") && file.contains("input_slm.refresh_hz is not set"),
        "{file}"
    );
    let fast = run(&[
        "--machine",
        "examples/misaligned.toml",
        "--set",
        "input_slm.refresh_hz=1e4",
        "--set",
        "filter_slm.refresh_hz=1e4",
    ]);
    assert!(
        fast.contains("camera.exposure_s and camera.readout_s are not set"),
        "{fast}"
    );
    let preset = run(&["--machine", "lcos-pluto2"]);
    assert!(!preset.contains("warning"), "{preset}");
    let json: Value = serde_json::from_slice(
        &fourf(&[
            "latency",
            "--model",
            "gfnet-fmnist",
            "--machine",
            "examples/misaligned.toml",
            "--json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1);
}
