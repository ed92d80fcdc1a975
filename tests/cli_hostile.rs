//! Reproducers of the hardening issue, end to end through the `fourf` binary: each
//! once panicked, read an endless file, or said its message twice. Each must now
//! fail with one clear message that names the file, key or setting, and exit 1.

use std::process::Command;

/// A fresh, empty directory for one test, removed when the handle drops.
fn test_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fourf-cli-hostile-{name}-"))
        .tempdir()
        .unwrap()
}

/// stderr of a `fourf` run that must fail cleanly (exit 1, no panic).
fn fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fourf")).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    err
}

/// The arguments of `fourf conv --mode same` on `input` and `kernel` into `out`,
/// then `extra`.
fn conv<'a>(input: &'a str, kernel: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "conv", "--input", input, "--kernel", kernel, "--mode", "same", "--out", out,
    ];
    args.extend_from_slice(extra);
    args
}

const INPUT: &str = "examples/fashion_mnist_16.npy";
const KERNEL: &str = "examples/edge_5x5.npy";

#[test]
fn each_message_says_its_text_once() {
    let tmp = test_dir("once");
    let dir = tmp.path();
    let m = dir.join("m.toml");
    std::fs::write(
        &m,
        "kind = \"gfnet\"\nimage_size = 28\npatch = 4\ndim = 0\ndepth = 2\nclasses = 10\n",
    )
    .unwrap();
    let err = fails(&["eval", "--model", m.to_str().unwrap(), "--limit", "4"]);
    assert_eq!(err.matches("must be at least 1").count(), 1, "{err}");
    assert!(err.contains("`dim` = 0"), "{err}");
}

#[test]
fn a_bad_enum_in_a_machine_file_names_its_line() {
    let tmp = test_dir("enum");
    let dir = tmp.path();
    let m = dir.join("m.toml");
    std::fs::write(&m, "[input_slm]\nmodulation = 3\n").unwrap();
    let out = dir.join("y.npy");
    let err = fails(&conv(
        INPUT,
        KERNEL,
        out.to_str().unwrap(),
        &["--machine", m.to_str().unwrap()],
    ));
    assert!(err.contains("line 2") && err.contains("modulation = 3"), "{err}");
}

#[test]
fn a_photon_budget_that_overflows_is_a_setting_error() {
    let tmp = test_dir("photons");
    let dir = tmp.path();
    let out = dir.join("y.npy");
    let err = fails(&conv(
        INPUT,
        KERNEL,
        out.to_str().unwrap(),
        &[
            "--machine",
            "models/machines/lcos-pluto2-128-dim.toml",
            "--set",
            "camera.full_scale_e=1e308",
        ],
    ));
    assert!(
        err.contains("camera.full_scale_e") && err.contains("photons per pixel"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn endless_or_wrong_kinds_of_input_are_errors() {
    let tmp = test_dir("endless");
    let dir = tmp.path();
    let out = dir.join("y.npy");
    if std::path::Path::new("/dev/zero").exists() {
        let err = fails(&conv("/dev/zero", KERNEL, out.to_str().unwrap(), &[]));
        assert!(
            err.contains("/dev/zero") && err.contains("not a NumPy .npy file"),
            "{err}"
        );
        let err = fails(&[
            "eval",
            "--model",
            "gfnet-fmnist",
            "--weights",
            "/dev/zero",
            "--limit",
            "4",
        ]);
        assert!(err.contains("/dev/zero") && err.contains("header length is 0"), "{err}");
    }
    // A file where the data directory belongs.
    let err = fails(&["eval", "--model", "gfnet-fmnist", "--data", INPUT, "--limit", "4"]);
    assert!(err.contains("is a file, not a dataset directory"), "{err}");
}

#[test]
fn outputs_are_checked_before_the_work_and_never_replace_an_input() {
    let tmp = test_dir("outputs");
    let dir = tmp.path();
    let input = dir.join("x.npy");
    std::fs::copy(INPUT, &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let x = input.to_str().unwrap();
    let err = fails(&conv(x, KERNEL, x, &[]));
    assert!(err.contains("is the input"), "{err}");
    assert_eq!(std::fs::read(&input).unwrap(), before);
    let missing = dir.join("no/such/y.npy");
    let err = fails(&conv(x, KERNEL, missing.to_str().unwrap(), &[]));
    assert!(err.contains("does not exist"), "{err}");
    let trace = dir.join("nowhere/t.json");
    let err = fails(&[
        "eval",
        "--model",
        "gfnet-fmnist",
        "--limit",
        "4",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(err.contains("--trace") && err.contains("does not exist"), "{err}");
    // --planes is all five pictures, five arrays and planes.json, written after
    // the data.
    let out = dir.join("y.npy");
    let planes = dir.join("planes");
    let ok = Command::new(env!("CARGO_BIN_EXE_fourf"))
        .args(conv(
            x,
            KERNEL,
            out.to_str().unwrap(),
            &["--planes", planes.to_str().unwrap()],
        ))
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(std::fs::read_dir(&planes).unwrap().count(), 11);
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_seed_above_i64_max_is_a_seed() {
    let tmp = test_dir("seed");
    let dir = tmp.path();
    let out = dir.join("t");
    // Zero epochs would be refused; a bad key after the seed proves the seed parsed.
    let err = fails(&[
        "train",
        "models/gfnet-fmnist/train.toml",
        "--set",
        "seed=18446744073709551615",
        "--set",
        "epochs=0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!err.contains("seed"), "{err}");
    assert!(err.contains("epochs"), "{err}");
}

#[test]
fn a_non_finite_result_is_an_error_not_a_file() {
    use fourf_experiments::{write_npy, Dtype, MapStack};
    let tmp = test_dir("nan");
    let dir = tmp.path();
    // Finite float32 inputs whose convolution exceeds float32's range.
    let big = dir.join("big.npy");
    let maps = MapStack {
        data: ndarray::Array3::from_elem((1, 28, 28), 3e38),
        stacked: false,
        dtype: Dtype::F32,
    };
    write_npy(&big, &maps).unwrap();
    let ones = dir.join("ones.npy");
    let kernel = MapStack {
        data: ndarray::Array3::from_elem((1, 5, 5), 1.0),
        stacked: false,
        dtype: Dtype::F32,
    };
    write_npy(&ones, &kernel).unwrap();
    let out = dir.join("y.npy");
    let err = fails(&conv(
        big.to_str().unwrap(),
        ones.to_str().unwrap(),
        out.to_str().unwrap(),
        &[],
    ));
    assert!(err.contains("non-finite") && err.contains("nothing written"), "{err}");
    assert!(!out.exists());
    // Non-finite inputs are refused up front, naming the file.
    let nan = dir.join("nan.npy");
    let mut maps = maps;
    maps.data[[0, 3, 4]] = f64::NAN;
    write_npy(&nan, &maps).unwrap();
    let err = fails(&conv(nan.to_str().unwrap(), KERNEL, out.to_str().unwrap(), &[]));
    assert!(err.contains("nan.npy") && err.contains("non-finite"), "{err}");
}

/// Usage errors (clap's) exit with 2 and list the valid values: `fourf latency`
/// without a network once ran and failed with 1.
#[test]
fn usage_errors_exit_2_with_the_valid_values() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_fourf")).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&["latency"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--model") && err.contains("--layers") && err.contains("--trace"),
        "{err}"
    );
    let (code, err) = run(&["latency", "--model", "gfnet-fmnist", "--layers", "t.toml"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = run(&[
        "conv", "--input", INPUT, "--kernel", KERNEL, "--mode", "circular", "--out", "y.npy",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("valid, same, full"), "{err}");
    let (code, err) = run(&["eval", "--model", "gfnet-fmnist", "--backend", "analog"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("digital, optical, surrogate"), "{err}");
    let (code, err) = run(&["eval", "--model", "gfnet-fmnist", "--batch", "4611686018427387904"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("1..=4096"), "{err}");
}
