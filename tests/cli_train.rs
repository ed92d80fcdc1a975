//! `fourf train` end to end: resume after a kill to the same bits, the same
//! weights at 1 and 2 threads, and config errors that name the key.
//!
//! The training images here are the committed test set, linked under the
//! training set's file names, so these tests need no Debian package.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fresh, empty directory for one test, removed when the handle drops.
fn test_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fourf-cli-train-{name}-"))
        .tempdir()
        .unwrap()
}

/// A directory whose `train-*` files are the committed test set.
fn train_data(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let committed = Path::new(fourf_nn::data::COMMITTED_DIR);
    for kind in ["images-idx3-ubyte.gz", "labels-idx1-ubyte.gz"] {
        std::os::unix::fs::symlink(
            committed.join(format!("t10k-{kind}")),
            data.join(format!("train-{kind}")),
        )
        .unwrap();
    }
    data
}

fn config(dir: &Path, model: &str, epochs: usize, extra: &str) -> PathBuf {
    let data = train_data(dir);
    let p = dir.join("train.toml");
    std::fs::write(
        &p,
        format!(
            "model = \"{model}\"\nepochs = {epochs}\nbatch = 64\nmicro_batch = 16\n{extra}\n[data]\ntrain = \"{}\"\ntrain_limit = 512\ntest_limit = 256\n",
            data.display()
        ),
    )
    .unwrap();
    p
}

fn fourf(args: &[&str], threads: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fourf"))
        .args(args)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap()
}

fn train(cfg: &Path, out: &Path, threads: &str) -> Output {
    let out = fourf(
        &["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()],
        threads,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The stderr of `fourf train CFG --out OUT EXTRA...`, which must fail.
fn train_err(cfg: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let r = fourf(&args, "2");
    assert_eq!(
        r.status.code(),
        Some(1),
        "{extra:?} should fail with an error, not a panic"
    );
    String::from_utf8_lossy(&r.stderr).into_owned()
}

fn weights(out: &Path) -> Vec<u8> {
    std::fs::read(out.join("weights.safetensors")).unwrap()
}

#[test]
fn same_weights_at_one_and_two_threads_and_a_finished_run_is_not_redone() {
    let tmp = test_dir("threads");
    let dir = tmp.path();
    let cfg = config(dir, "gfnet-fmnist", 2, "");
    train(&cfg, &dir.join("one"), "1");
    train(&cfg, &dir.join("two"), "2");
    assert_eq!(weights(&dir.join("one")), weights(&dir.join("two")));
    let log = std::fs::read_to_string(dir.join("one/log.csv")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(log.starts_with("epoch,train_loss,test_accuracy"));
    // A finished run re-run does nothing and keeps its weights.
    let again = train(&cfg, &dir.join("one"), "2");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
    assert_eq!(weights(&dir.join("one")), weights(&dir.join("two")));
    // Another seed gives other weights.
    let cfg2 = config(&dir.join("seed"), "gfnet-fmnist", 2, "seed = 1");
    train(&cfg2, &dir.join("seed1"), "2");
    assert_ne!(weights(&dir.join("seed1")), weights(&dir.join("two")));
}

#[test]
fn optics_aware_training_repeats_at_any_thread_count_and_differs_from_digital() {
    let tmp = test_dir("optics");
    let dir = tmp.path();
    let optics = "[optics]\nmachine = \"lcos-pluto2\"\nset = [\"input_slm.pixels_x=128\", \"input_slm.pixels_y=128\", \"camera.full_scale_e=6000\"]\nanneal_epochs = 0.5\n";
    let data = train_data(dir);
    let cfg = dir.join("optics.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"gfnet-fmnist\"\nepochs = 1\nbatch = 64\nmicro_batch = 16\n[data]\ntrain = \"{}\"\ntrain_limit = 256\ntest_limit = 64\n{optics}",
            data.display()
        ),
    )
    .unwrap();
    train(&cfg, &dir.join("one"), "1");
    train(&cfg, &dir.join("two"), "2");
    assert_eq!(weights(&dir.join("one")), weights(&dir.join("two")));
    let plain = config(&dir.join("plain"), "gfnet-fmnist", 1, "");
    let text = std::fs::read_to_string(&plain).unwrap().replace(
        "train_limit = 512\ntest_limit = 256",
        "train_limit = 256\ntest_limit = 64",
    );
    std::fs::write(&plain, text).unwrap();
    train(&plain, &dir.join("digital"), "2");
    assert_ne!(
        weights(&dir.join("one")),
        weights(&dir.join("digital")),
        "the noise must change the weights"
    );
    // A detection scheme the surrogate does not model is refused by name.
    let e = train_err(
        &cfg,
        &dir.join("bad"),
        &["--set", "optics.set=[\"detection.scheme=intensity\"]"],
    );
    assert!(e.contains("intensity"), "{e}");
    // The full simulation on a machine that cannot run an op: an error that names
    // the op and says why, before any epoch is written.
    let e = train_err(
        &cfg,
        &dir.join("bad-machine"),
        &[
            "--set",
            "optics.mode=machine",
            "--set",
            "optics.set=[\"detection.scheme=intensity\"]",
        ],
    );
    assert!(
        e.contains("cannot run op `") && e.contains("intensity detection"),
        "{e}"
    );
    assert!(!dir.join("bad-machine/log.csv").exists());
}

#[test]
fn killed_runs_resume_to_the_same_bits() {
    let tmp = test_dir("resume");
    let dir = tmp.path();
    let cfg = config(dir, "vit-fmnist", 3, "");
    let reference = dir.join("reference");
    train(&cfg, &reference, "2");
    // Kill at several moments: after the first checkpoint exists, and again.
    let out = dir.join("killed");
    for round in 0..2 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fourf"))
            .args(["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let ckpt = out.join("checkpoint.safetensors");
        let before = std::fs::metadata(&ckpt).and_then(|m| m.modified()).ok();
        // Wait for a new checkpoint (or the end of the run), then a little more.
        while t0.elapsed() < Duration::from_secs(120) {
            let now = std::fs::metadata(&ckpt).and_then(|m| m.modified()).ok();
            if now.is_some() && now != before {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50 * round));
        let _ = child.kill();
        let _ = child.wait();
    }
    let resumed = train(&cfg, &out, "1");
    let _ = resumed;
    assert_eq!(
        weights(&out),
        weights(&reference),
        "resumed weights differ from the uninterrupted run"
    );
    let log = std::fs::read_to_string(out.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 4, "one line per epoch, none repeated: {log}");
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty() || cfg!(not(unix)), "{leftovers:?}");
}

#[test]
fn a_changed_config_does_not_resume_silently() {
    let tmp = test_dir("changed");
    let dir = tmp.path();
    let cfg = config(dir, "fnet-fmnist", 1, "");
    let out = dir.join("out");
    train(&cfg, &out, "2");
    let e = train_err(&cfg, &out, &["--set", "optimizer.lr=5e-4"]);
    assert!(
        e.contains("another config") && e.contains("checkpoint.safetensors"),
        "{e}"
    );
}

#[test]
fn config_errors_name_the_key() {
    let tmp = test_dir("errors");
    let dir = tmp.path();
    let cfg = config(dir, "vit-fmnist", 1, "");
    let out = dir.join("out");
    let err = |extra: &[&str]| train_err(&cfg, &out, extra);
    let e = err(&["--set", "optimizer.learning_rate=1"]);
    assert!(e.contains("learning_rate") && e.contains("`lr`"), "{e}");
    let e = err(&["--set", "epochs=0"]);
    assert!(e.contains("`epochs`") && e.contains("at least 1"), "{e}");
    let e = err(&["--set", "optimizer.lr=-1"]);
    assert!(e.contains("optimizer.lr"), "{e}");
    let e = err(&["--set", "label_smoothing=1.5"]);
    assert!(e.contains("label_smoothing"), "{e}");
    let e = err(&["--set", "batch=\"many\""]);
    assert!(e.contains("--set batch") && e.contains("usize"), "{e}");
    let e = err(&["--set", "model=nonet"]);
    assert!(e.contains("nonet") && e.contains("vit-fmnist"), "{e}");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "model = \"vit-fmnist\"\nepochs = 1\nbatchsize = 3\n").unwrap();
    let e = train_err(&bad, &out, &[]);
    assert!(
        e.contains("bad.toml") && e.contains("line 3") && e.contains("batchsize"),
        "{e}"
    );
    let missing = dir.join("data-missing");
    let e = err(&["--set", &format!("data.train=\"{}\"", missing.display())]);
    assert!(e.contains("data-missing") && e.contains("data.train"), "{e}");
}
