//! `fourf eval` end to end on the Fashion-MNIST test set (Debian's
//! `dataset-fashion-mnist`, installed by `.ci/run`).

use std::process::{Command, Output};

use fourf_nn::models::preset;
use fourf_nn::weights::save_weights;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

/// A fresh, empty directory for one test, removed when the handle drops.
fn test_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fourf-cli-eval-{name}-"))
        .tempdir()
        .unwrap()
}

fn fourf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fourf")).args(args).output().unwrap()
}

fn json(args: &[&str]) -> Value {
    let out = fourf(args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stderr_of_failure(args: &[&str]) -> String {
    let out = fourf(args);
    assert!(!out.status.success(), "expected failure: {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn optical_conv_share_vit_on_the_ideal_machine_agrees_with_digital() {
    let tmp = test_dir("trace");
    let dir = tmp.path();
    let trace = dir.join("trace.json");
    let r = json(&[
        "eval",
        "--model",
        "convsharevit-fmnist",
        "--backend",
        "optical",
        "--limit",
        "6",
        "--trace",
        trace.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r["images"], 6);
    assert_eq!(r["machine"], "ideal-128");
    assert_eq!(r["top1_agreement"], 1.0);
    assert!(r["mean_relative_logit_error"].as_f64().unwrap() < 1e-4, "{r}");
    assert_eq!(r["accuracy"], r["digital_accuracy"]);
    // Cross tiling: 1 embedding + 4 × (1 qkv (6 kernels × 17 maps) + 2 scores (one
    // frame per head: 17 queries × 17 keys) + 1 proj + 1 fc1 (2 kernels × 17 maps) + 1
    // fc2 (one kernel per map group, the two groups paired diagonally in one frame))
    // + 1 head frames.
    assert_eq!(r["frames_per_image"], 26.0);
    assert_eq!(r["optical_layers"].as_array().unwrap().len(), 22);
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let ops = t["ops"].as_array().unwrap();
    assert_eq!(ops.len() as u64, r["ops_per_image"].as_u64().unwrap());
    let frames: u64 = ops
        .iter()
        .filter_map(|o| o.get("optical"))
        .map(|u| u["frames"].as_u64().unwrap())
        .sum();
    assert_eq!(frames, 26);
}

#[test]
fn weights_load_and_bad_weights_name_the_tensor() {
    let tmp = test_dir("weights");
    let dir = tmp.path();
    let config = preset("gfnet-fmnist").unwrap();
    let mut model = config.init(&mut StdRng::seed_from_u64(5)).unwrap();
    let w = dir.join("gfnet.safetensors");
    save_weights(&w, &mut model).unwrap();
    let base = ["eval", "--model", "gfnet-fmnist", "--limit", "20", "--json"];
    let with = |extra: &[&str]| json(&[&base[..], extra].concat());
    let seeded = with(&["--init-seed", "5"]);
    let loaded = with(&["--weights", w.to_str().unwrap()]);
    assert_eq!(seeded["accuracy"], loaded["accuracy"]);
    assert!(loaded["weights"].as_str().unwrap().ends_with("gfnet.safetensors"));
    // Weights of another model: the first mismatching tensor is named.
    let e = stderr_of_failure(&[
        "eval",
        "--model",
        "vit-fmnist",
        "--limit",
        "2",
        "--weights",
        w.to_str().unwrap(),
    ]);
    assert!(
        e.contains("gfnet.safetensors")
            && e.contains("`pos_embed`")
            && e.contains("[1, 49, 64]")
            && e.contains("[1, 50, 64]"),
        "{e}"
    );
}

#[test]
fn usage_errors_say_what_would_be_valid() {
    let e = stderr_of_failure(&["eval", "--model", "deit-ti", "--limit", "1"]);
    assert!(
        e.contains("3×224×224") && e.contains("1×28×28") && e.contains("-fmnist"),
        "{e}"
    );
    let e = stderr_of_failure(&["eval", "--model", "gfnet-fmnist", "--data", "/nonexistent/fm"]);
    assert!(
        e.contains("/nonexistent/fm") && e.contains("dataset-fashion-mnist"),
        "{e}"
    );
    let e = stderr_of_failure(&["eval", "--model", "gfnet-fmnist", "--backend", "analog"]);
    assert!(e.contains("digital, optical"), "{e}");
    let e = stderr_of_failure(&["eval", "--model", "gfnet-fmnist", "--spectral", "periodic"]);
    assert!(e.contains("circular, zero_padded"), "{e}");
    let out = fourf(&["models"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("convsharevit-fmnist") && text.contains("deit-b") && text.contains("spectformer-t"));
}

#[test]
fn surrogate_backend_is_exact_on_the_ideal_machine_and_noisy_on_a_dim_one() {
    let run = |machine: &str| {
        json(&[
            "eval",
            "--model",
            "gfnet-fmnist",
            "--backend",
            "surrogate",
            "--machine",
            machine,
            "--limit",
            "200",
            "--json",
        ])
    };
    let ideal = run("ideal-128");
    assert_eq!(ideal["backend"], "surrogate");
    assert_eq!(ideal["top1_agreement"], 1.0, "{ideal}");
    assert!(ideal["mean_relative_logit_error"].as_f64().unwrap() < 1e-5, "{ideal}");
    let dim = concat!(env!("CARGO_MANIFEST_DIR"), "/models/machines/lcos-pluto2-128-dim.toml");
    let noisy = run(dim);
    assert!(noisy["mean_relative_logit_error"].as_f64().unwrap() > 1e-2, "{noisy}");
    assert!(noisy["top1_agreement"].as_f64().unwrap() < 1.0, "{noisy}");
}

#[test]
fn a_batched_run_on_a_machine_that_cannot_run_the_model_fails_cleanly() {
    let machine = concat!(env!("CARGO_MANIFEST_DIR"), "/models/machines/lcos-pluto2-128-dim.toml");
    let e = stderr_of_failure(&[
        "eval",
        "--model",
        "gfnet-fmnist",
        "--backend",
        "optical",
        "--machine",
        machine,
        "--set",
        "detection.scheme=intensity",
        "--batch",
        "8",
        "--limit",
        "8",
    ]);
    assert!(
        e.contains("cannot run op `") && e.contains("intensity detection"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
}
