//! `fourf run`, `validate`, `merge` and `plot` end to end: the quickstart's files,
//! resuming after SIGKILL, shards merged against the unsharded run, and broken
//! configs that fail with their own message and write nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fourf_experiments::experiment::{read_results, Record};

/// A fresh, empty directory for one test, removed when the handle drops.
fn test_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fourf-cli-exp-{name}-"))
        .tempdir()
        .unwrap()
}

fn fourf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fourf")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    ok_env(args, &[])
}

/// `fourf args` with `env` set; panics with its stderr unless it succeeds.
fn ok_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fourf"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The records of `dir` keyed by (point, seed), timings zeroed; panics on duplicates.
fn records(dir: &Path) -> BTreeMap<(usize, u64), Record> {
    let mut m = BTreeMap::new();
    for r in read_results(&dir.join("results.jsonl")).unwrap() {
        let key = (r.point, r.seed);
        assert!(
            m.insert(key, r.without_timings()).is_none(),
            "duplicate record {key:?} in {}",
            dir.display()
        );
    }
    m
}

/// A small sweep: 4 photon budgets × 2 seeds of gfnet-fmnist on 32 images,
/// digital and the dim machine, no latency (fast).
fn small_sweep(dir: &Path, limit: usize) -> PathBuf {
    let cfg = dir.join("sweep.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"name = "small"
seeds = [0, 1]
[model]
name = "gfnet-fmnist"
[data]
limit = {limit}
[machine]
name = "models/machines/lcos-pluto2-128-dim.toml"
[run]
backends = ["digital", "machine"]
batch = 16
metrics = ["accuracy", "agreement", "logit_error", "frames"]
[[sweep.axis]]
key = "machine.camera.full_scale_e"
values = [20, 50, 200, 1000]
"#
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn quickstart_writes_valid_plots_and_every_point() {
    let tmp = test_dir("quickstart");
    let dir = tmp.path();
    let out = dir.join("qs");
    let text = ok(&[
        "run",
        "experiments/configs/quickstart.toml",
        "--set",
        "data.limit=48",
        "--out",
        p(&out),
    ]);
    assert!(text.contains("machine"), "{text}");
    let recs = records(&out);
    // 3 photon budgets × 2 seeds.
    let keys: Vec<(usize, u64)> = recs.keys().copied().collect();
    assert_eq!(keys, vec![(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]);
    for r in recs.values() {
        assert_eq!(r.images, 48);
        let names: Vec<&str> = r.backends.iter().map(|b| b.backend.as_str()).collect();
        assert_eq!(names, ["digital", "ideal", "machine"]);
        assert!(r.values.contains_key("machine.camera.full_scale_e"));
        let l = r.latency.as_ref().expect("latency recorded");
        assert!(l.latency_s > 0.0 && l.gpus.len() == 2);
        // Ideal optics agree with digital.
        assert_eq!(
            r.backend("ideal").unwrap().accuracy,
            r.backend("digital").unwrap().accuracy
        );
    }
    // More light, less logit error (seed 0).
    let err = |p| recs[&(p, 0)].backend("machine").unwrap().logit_error.unwrap();
    assert!(err(0) > err(1) && err(1) > err(2), "{} {} {}", err(0), err(1), err(2));
    for kind in [
        "metric_accuracy",
        "metric_agreement",
        "metric_logit_error",
        "metric_latency",
        "layer_error",
        "latency_bars",
        "latency_breakdown",
        "accuracy_vs_latency",
        "planes",
    ] {
        let png = std::fs::read(out.join("plots").join(format!("{kind}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{kind}.png");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        assert!(reader.info().width >= 800, "{kind}.png");
        let svg = std::fs::read_to_string(out.join("plots").join(format!("{kind}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{kind}.svg"
        );
        assert!(svg.contains("<text"), "{kind}.svg has no text");
    }
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 3, "{csv}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("plots/planes.png") && report.contains("| machine |"));
    // `fourf plot` redraws from the results alone.
    std::fs::remove_dir_all(out.join("plots")).unwrap();
    ok(&["plot", p(&out)]);
    assert!(out.join("plots/metric_accuracy.svg").exists() && out.join("plots/planes.png").exists());
    // A re-run skips everything.
    let again = ok(&[
        "run",
        "experiments/configs/quickstart.toml",
        "--set",
        "data.limit=48",
        "--out",
        p(&out),
    ]);
    assert!(again.contains("6 finished before, 0 run now"), "{again}");
}

#[test]
fn a_sweep_killed_at_any_moment_resumes_to_the_same_points() {
    let tmp = test_dir("kill");
    let dir = tmp.path();
    let cfg = small_sweep(dir, 32);
    let whole = dir.join("whole");
    ok(&["run", p(&cfg), "--out", p(&whole)]);
    let want = records(&whole);
    assert_eq!(want.len(), 8);

    let resumed = dir.join("resumed");
    let results = resumed.join("results.jsonl");
    let lines = || std::fs::read_to_string(&results).map_or(0, |t| t.lines().count());
    // Kill at start-up, after 1 and 3 finished points, and part-way through a point.
    for (i, wait_for) in [0usize, 1, 3, 5].into_iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fourf"))
            .args(["run", p(&cfg), "--out", p(&resumed)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while lines() < wait_for && start.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // The third kill lands inside a point, 150 ms after one finished.
        if i == 2 {
            std::thread::sleep(Duration::from_millis(150));
        }
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        // Whatever is on disk is whole records, no duplicates.
        let partial = records(&resumed);
        assert!(partial.keys().all(|k| want.contains_key(k)));
    }
    // A half-written last line, as a kill inside the append would leave.
    let mut text = std::fs::read_to_string(&results).unwrap_or_default();
    text.push_str("{\"point\": 3, \"se");
    std::fs::write(&results, text).unwrap();
    let out = ok(&["run", p(&cfg), "--out", p(&resumed)]);
    assert!(out.contains("run now"), "{out}");
    assert_eq!(records(&resumed), want);
}

#[test]
fn shards_merge_to_the_unsharded_run_and_mismatches_are_refused() {
    let tmp = test_dir("shards");
    let dir = tmp.path();
    let cfg = small_sweep(dir, 16);
    let whole = dir.join("whole");
    ok(&["run", p(&cfg), "--out", p(&whole), "--jobs", "2"]);
    let base = dir.join("sharded");
    ok(&["run", p(&cfg), "--out", p(&base), "--shard", "0/3"]);
    // The shard index from a SLURM array's environment.
    let run = ["run", p(&cfg), "--out", p(&base)];
    ok_env(&run, &[("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "3")]);
    // And from a Kubernetes Indexed Job's.
    ok_env(&run, &[("JOB_COMPLETION_INDEX", "2"), ("FOURF_SHARDS", "3")]);
    let shards: Vec<PathBuf> = (0..3).map(|i| base.join(format!("shard-{i}-of-3"))).collect();
    let sizes: Vec<usize> = shards.iter().map(|s| records(s).len()).collect();
    assert_eq!(sizes, [3, 3, 2]);
    let merged = dir.join("merged");
    let mut args = vec!["merge"];
    args.extend(shards.iter().map(|s| p(s)));
    args.extend(["--out", p(&merged)]);
    ok(&args);
    assert_eq!(records(&merged), records(&whole));
    assert!(merged.join("plots/metric_accuracy.png").exists());

    // A shard of another config is refused, and so is a shard given twice.
    let other = dir.join("other");
    ok(&[
        "run",
        p(&cfg),
        "--set",
        "data.limit=8",
        "--out",
        p(&other),
        "--shard",
        "1/3",
    ]);
    let out = fourf(&[
        "merge",
        p(&shards[0]),
        p(&other.join("shard-1-of-3")),
        "--out",
        p(&dir.join("bad")),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("different config"), "{err}");
    let out = fourf(&["merge", p(&shards[0]), p(&shards[0]), "--out", p(&dir.join("bad2"))]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("given twice"));
    assert!(!dir.join("bad").exists() && !dir.join("bad2").exists());
    // A run into a directory of another config is refused.
    let out = fourf(&["run", p(&cfg), "--set", "data.limit=8", "--out", p(&whole)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("different config"));
}

#[test]
fn a_resume_refuses_results_of_another_build_or_other_input_files() {
    let tmp = test_dir("provenance");
    let dir = tmp.path();
    let machine = dir.join("machine.toml");
    std::fs::copy("models/machines/lcos-pluto2-128-dim.toml", &machine).unwrap();
    let cfg = dir.join("latency.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"provenance\"\n[model]\nname = \"gfnet-fmnist\"\n[machine]\nname = \"{}\"\n[run]\nbackends = []\nmetrics = [\"latency\"]\n",
            p(&machine)
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let run = ["run", p(&cfg), "--out", p(&out)];
    ok(&run);
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(
        manifest.contains("\"build\"") && manifest.contains("\"inputs\""),
        "{manifest}"
    );
    assert!(ok(&run).contains("1 finished before, 0 run now"));
    // The machine file changes under the same name: its results are not resumed.
    let text = std::fs::read_to_string(&machine).unwrap();
    std::fs::write(&machine, format!("{text}\n# edited\n")).unwrap();
    let o = fourf(&run);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("other input files"), "{err}");
    std::fs::write(&machine, &text).unwrap();
    assert!(ok(&run).contains("1 finished before"));
    // Results of another build are not resumed either.
    let other = manifest.replacen("\"build\": \"", "\"build\": \"0", 1);
    assert_ne!(other, manifest);
    std::fs::write(out.join("manifest.json"), other).unwrap();
    let o = fourf(&run);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("another build of fourf"), "{err}");
}

#[test]
fn broken_configs_fail_with_their_own_message_and_write_nothing() {
    let tmp = test_dir("broken");
    let dir = tmp.path();
    let good = "[model]\nname = \"gfnet-fmnist\"\n[data]\nlimit = 4\n";
    let cases: [(&str, String, &str); 8] = [
        (
            "unknown_key",
            format!("{good}[run]\nbackend = [\"digital\"]\n"),
            "did you mean `backends`",
        ),
        (
            "wrong_type",
            format!("{good}[run]\nbatch = \"big\"\n"),
            "wrong_type.toml:6: `batch`",
        ),
        (
            "negative_wavelength",
            format!("{good}[machine]\nname = \"ideal-128\"\nset.laser.wavelength_m = -5e-7\n"),
            "wavelength",
        ),
        (
            "missing_weights",
            "[model]\nname = \"gfnet-fmnist\"\nweights = \"nowhere.safetensors\"\n".into(),
            "`model.weights` `nowhere.safetensors`",
        ),
        (
            "missing_data",
            "[model]\nname = \"gfnet-fmnist\"\n[data]\ndir = \"no/such/dir\"\n".into(),
            "`data.dir`",
        ),
        (
            "empty_sweep",
            format!("{good}[[sweep.axis]]\nkey = \"run.batch\"\nvalues = []\n"),
            "`values` is empty",
        ),
        (
            "unknown_backend",
            format!("{good}[run]\nbackends = [\"quantum\"]\n"),
            "unknown variant `quantum`",
        ),
        (
            "bad_sweep_value",
            format!(
                "{good}[machine]\nname = \"models/machines/lcos-pluto2-128-dim.toml\"\n[[sweep.axis]]\nkey = \"machine.camera.adc_bits\"\nvalues = [8, 99]\n"
            ),
            "sweep point 1",
        ),
    ];
    let mut messages = Vec::new();
    for (name, text, want) in &cases {
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let out_dir = dir.join(format!("out-{name}"));
        for cmd in ["validate", "run"] {
            let mut args = vec![cmd, p(&cfg)];
            if cmd == "run" {
                args.extend(["--out", p(&out_dir)]);
            }
            let out = fourf(&args);
            assert!(!out.status.success(), "{name}: {cmd} succeeded");
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(err.contains(want), "{name}: `{want}` not in: {err}");
            assert!(!err.contains("panicked"), "{name}: {err}");
            if cmd == "run" {
                messages.push(err);
            }
        }
        assert!(!out_dir.exists(), "{name}: wrote {}", out_dir.display());
    }
    let distinct: std::collections::BTreeSet<&String> = messages.iter().collect();
    assert_eq!(distinct.len(), messages.len(), "two configs gave the same message");
    // And a good one validates.
    let cfg = dir.join("good.toml");
    std::fs::write(&cfg, good).unwrap();
    assert!(ok(&["validate", p(&cfg)]).contains("valid; 1 point(s)"));
}
