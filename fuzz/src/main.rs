//! Mutation fuzzing of every file parser fourf has, on stable Rust, in process.
//!
//! ```text
//! cargo run -p fourf-fuzz -- [--execs N] [--only NAME] [--seed S]
//! ```
//!
//! For each parser (`npy`, `idx`, `safetensors`, `machine`, `model`, `layers`,
//! `gpu_csv`, `trace`, `train`, `experiment`) it mutates a seed corpus — the
//! shipped examples, machine files, layer tables, configs, and small files made
//! here — `N` times (default 10⁶), writes each input to a scratch file and calls
//! the parser through the same public function the CLI calls. An input that
//! panics, or runs longer than `HANG_S`, is saved under `fuzz/crashes/` and
//! counted; the run exits 1 if any parser failed. Run it in the dev profile (the
//! default): integer overflow checks are on there, so overflowing size arithmetic
//! is found too.
//!
//! Mutations: bit flips, random and "interesting" bytes, insertions, deletions,
//! duplicated ranges, splices of two seeds, and for text the replacement of a
//! number by an extreme one (`-1`, `0`, `1e308`, `nan`, 2⁶⁴ …) or of a space by
//! Unicode whitespace.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// An execution longer than this is a hang.
const HANG_S: u64 = 20;

/// One parser: its name, the scratch file's extension, and the call.
struct Target {
    name: &'static str,
    ext: &'static str,
    seeds: Vec<Vec<u8>>,
    run: fn(&Path),
}

fn read_all(dir: &str, ext: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == ext));
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("in memory");
    e.finish().expect("in memory")
}

fn idx_seeds() -> Vec<Vec<u8>> {
    let mut images = 0x0000_0803u32.to_be_bytes().to_vec();
    for d in [2u32, 4, 4] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    images.extend((0..32).map(|i| (i * 7) as u8));
    let mut labels = 0x0000_0801u32.to_be_bytes().to_vec();
    labels.extend_from_slice(&2u32.to_be_bytes());
    labels.extend_from_slice(&[3, 9]);
    vec![gz(&images), gz(&labels), images, labels]
}

fn npy_seeds(scratch: &Path) -> Vec<Vec<u8>> {
    use fourf_experiments::{write_npy, Dtype, MapStack};
    let mut seeds = read_all("examples", "npy");
    for (shape, stacked, dtype) in [((1, 3, 4), false, Dtype::F64), ((2, 2, 3), true, Dtype::F32)] {
        let p = scratch.join("seed.npy");
        let maps = MapStack {
            data: ndarray::Array3::from_shape_fn(shape, |(a, b, c)| (a + 2 * b + 3 * c) as f64),
            stacked,
            dtype,
        };
        write_npy(&p, &maps).expect("scratch is writable");
        seeds.push(std::fs::read(&p).expect("just written"));
    }
    seeds
}

fn safetensors_seeds(scratch: &Path) -> Vec<Vec<u8>> {
    let mut store = fourf_nn::weights::TensorStore::new();
    store.insert(
        "fc1.weight",
        ndarray::ArrayD::from_elem(ndarray::IxDyn(&[2, 3]), 0.5f32),
    );
    store.insert("fc1.bias", ndarray::ArrayD::from_elem(ndarray::IxDyn(&[2]), -1f32));
    let p = scratch.join("seed.safetensors");
    store.save(&p).expect("scratch is writable");
    vec![std::fs::read(&p).expect("just written")]
}

fn model_seeds() -> Vec<Vec<u8>> {
    [
        "kind = \"gfnet\"\nimage_size = 28\npatch = 4\ndim = 16\ndepth = 2\nclasses = 10\n",
        "kind = \"vit\"\nimage_size = 28\npatch = 7\ndim = 16\ndepth = 1\nheads = 2\nmlp_ratio = 2.0\nclasses = 10\n",
        "kind = \"spectformer\"\nimage_size = 28\npatch = 4\ndim = 16\ndepth = 2\nheads = 2\nspectral_blocks = 1\nclasses = 10\n",
        "kind = \"fnet\"\nimage_size = 28\npatch = 4\ndim = 16\ndepth = 1\nclasses = 10\n",
        "kind = \"conv_share_vit\"\nimage_size = 28\ntoken_size = 8\ndepth = 1\nheads = 2\nkernel_size = 3\npadding = \"same\"\n[embed]\nkind = \"transposed_conv\"\nkernel = 5\n[mlp]\nkind = \"shared_conv\"\nratio = 2\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn machine_seeds() -> Vec<Vec<u8>> {
    let mut seeds = read_all("examples", "toml");
    seeds.extend(read_all("models/machines", "toml"));
    for name in ["ideal-128", "lcos-pluto2"] {
        if let Ok(t) = fourf_experiments::machine_toml(name, &[]) {
            seeds.push(t.into_bytes());
        }
    }
    seeds
}

fn trace_seeds() -> Vec<Vec<u8>> {
    read_all("experiments/layers", "toml")
        .iter()
        .filter_map(|t| {
            std::str::from_utf8(t)
                .ok()
                .and_then(|t| fourf_hw::LayerTable::parse(t, "seed").ok())
        })
        .map(|t| serde_json::to_vec(&t.to_trace()).expect("a trace serialises"))
        .collect()
}

fn train_seeds() -> Vec<Vec<u8>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("models")
        .map(|d| d.flatten().map(|e| e.path().join("train.toml")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn targets(scratch: &Path) -> Vec<Target> {
    vec![
        Target {
            name: "npy",
            ext: "npy",
            seeds: npy_seeds(scratch),
            run: |p| {
                let _ = fourf_experiments::read_npy(p);
            },
        },
        Target {
            name: "idx",
            ext: "gz",
            seeds: idx_seeds(),
            run: |p| {
                let _ = fourf_nn::data::load_idx_images(p);
                let _ = fourf_nn::data::load_idx_labels(p);
            },
        },
        Target {
            name: "safetensors",
            ext: "safetensors",
            seeds: safetensors_seeds(scratch),
            run: |p| {
                let _ = fourf_nn::weights::TensorStore::load(p);
            },
        },
        Target {
            name: "machine",
            ext: "toml",
            seeds: machine_seeds(),
            run: |p| {
                let Ok(m) = fourf_experiments::load_machine(p.to_str().expect("utf-8 scratch path"), &[]) else {
                    return;
                };
                // Building plans the frame: only for small frames, to keep executions fast.
                let small = |v: Option<usize>| v.is_some_and(|v| v <= 256);
                if small(m.input_slm.pixels_x) && small(m.input_slm.pixels_y) && m.simulation.oversampling <= 2 {
                    let _ = fourf_sim::FourF::new(m);
                }
            },
        },
        Target {
            name: "model",
            ext: "toml",
            seeds: model_seeds(),
            run: |p| {
                let _ = fourf_nn::models::ModelConfig::load(p.to_str().expect("utf-8 scratch path"));
            },
        },
        Target {
            name: "layers",
            ext: "toml",
            seeds: read_all("experiments/layers", "toml"),
            run: |p| {
                if let Ok(t) = fourf_hw::LayerTable::load(p) {
                    let _ = t.summary();
                }
            },
        },
        Target {
            name: "gpu_csv",
            ext: "csv",
            seeds: read_all("experiments/layers", "csv"),
            run: |p| {
                let _ = fourf_hw::GpuMeasurements::load(p);
            },
        },
        Target {
            name: "trace",
            ext: "json",
            seeds: trace_seeds(),
            run: |p| {
                let _ = fourf_experiments::run_latency(&fourf_experiments::LatencyArgs {
                    source: fourf_experiments::LatencySource::Trace(p.to_path_buf()),
                    machine: "ideal-128".into(),
                    sets: Vec::new(),
                    gpus: vec!["a100".into()],
                    batch: 1,
                    precision: fourf_experiments::Precision::Fp16,
                    measurements: None,
                    coprocessor_gpu: None,
                });
            },
        },
        Target {
            name: "train",
            ext: "toml",
            seeds: train_seeds(),
            run: |p| {
                let _ = fourf_experiments::TrainConfig::load(p, &[]);
            },
        },
        Target {
            name: "experiment",
            ext: "toml",
            seeds: read_all("experiments/configs", "toml"),
            run: |p| {
                let _ = fourf_experiments::experiment::Experiment::load(p, &[]);
            },
        },
    ]
}

const INTERESTING: &[u8] = b"\x00\xff\x7f\x80\x01 \n\"'[]{}=,.-+0123456789eE";
const NUMBERS: &[&str] = &[
    "-1",
    "0",
    "1e308",
    "-1e308",
    "1e-320",
    "nan",
    "inf",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "1000000000000",
    "65536",
    "0.0",
    "-0",
];
const SPACES: &[&str] = &["\u{a0}", "\u{2009}", "\u{3000}", "\u{feff}", "\t", "\r\n"];

/// One mutation of `base` (with `other` for splices).
fn mutate(rng: &mut StdRng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..rng.random_range(1..=4usize) {
        let n = v.len();
        match rng.random_range(0..9u32) {
            0 if n > 0 => {
                let i = rng.random_range(0..n);
                v[i] ^= 1 << rng.random_range(0..8u32);
            }
            1 if n > 0 => {
                let i = rng.random_range(0..n);
                v[i] = rng.random();
            }
            2 if n > 0 => {
                let i = rng.random_range(0..n);
                v[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
            }
            3 => {
                let i = rng.random_range(0..=n);
                let k = rng.random_range(1..=16usize);
                let bytes: Vec<u8> = (0..k).map(|_| rng.random()).collect();
                v.splice(i..i, bytes);
            }
            4 if n > 0 => {
                let i = rng.random_range(0..n);
                let k = rng.random_range(1..=(n - i).min(64));
                v.drain(i..i + k);
            }
            5 if n > 0 => {
                let i = rng.random_range(0..n);
                let k = rng.random_range(1..=(n - i).min(64));
                let chunk = v[i..i + k].to_vec();
                let j = rng.random_range(0..=n);
                v.splice(j..j, chunk);
            }
            6 if !other.is_empty() && n > 0 => {
                let i = rng.random_range(0..n);
                let j = rng.random_range(0..other.len());
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            7 => {
                // A run of digits becomes an extreme number.
                let starts: Vec<usize> = (0..n)
                    .filter(|&i| v[i].is_ascii_digit() && (i == 0 || !v[i - 1].is_ascii_digit()))
                    .collect();
                if !starts.is_empty() {
                    let i = starts[rng.random_range(0..starts.len())];
                    let end = (i..n).find(|&j| !v[j].is_ascii_digit() && v[j] != b'.').unwrap_or(n);
                    let num = NUMBERS[rng.random_range(0..NUMBERS.len())];
                    v.splice(i..end, num.bytes());
                }
            }
            _ => {
                let spaces: Vec<usize> = (0..n).filter(|&i| v[i] == b' ').collect();
                if !spaces.is_empty() {
                    let i = spaces[rng.random_range(0..spaces.len())];
                    let s = SPACES[rng.random_range(0..SPACES.len())];
                    v.splice(i..=i, s.bytes());
                }
            }
        }
    }
    v
}

struct Args {
    execs: u64,
    only: Option<String>,
    seed: u64,
}

fn args() -> Args {
    let mut a = Args {
        execs: 1_000_000,
        only: None,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--execs" => a.execs = value().parse().unwrap_or_else(|_| usage("--execs takes a count")),
            "--only" => a.only = Some(value()),
            "--seed" => a.seed = value().parse().unwrap_or_else(|_| usage("--seed takes an integer")),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    a
}

fn usage(why: &str) -> ! {
    if !why.is_empty() {
        eprintln!("error: {why}");
    }
    eprintln!("usage: cargo run -p fourf-fuzz -- [--execs N] [--only PARSER] [--seed S]");
    std::process::exit(2)
}

fn main() {
    let a = args();
    // Paths in the seeds and the configs are relative to the repository root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).expect("the repository root");
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let scratch = base.join(format!("fourf-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("a scratch directory");
    let crashes = root.join("fuzz/crashes");
    let all = targets(&scratch);
    let names: Vec<&str> = all.iter().map(|t| t.name).collect();
    if let Some(o) = &a.only {
        if !names.contains(&o.as_str()) {
            usage(&format!("no parser `{o}`; parsers: {}", names.join(", ")));
        }
    }
    // Panics are counted, not printed.
    let last_panic: Arc<Mutex<String>> = Arc::default();
    {
        let last = last_panic.clone();
        std::panic::set_hook(Box::new(move |info| {
            *last.lock().unwrap_or_else(|p| p.into_inner()) = info.to_string();
        }));
    }
    // The watchdog: an execution past HANG_S saves its input and ends the run.
    let started = Arc::new(AtomicU64::new(0));
    let current: Arc<Mutex<(String, Vec<u8>)>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    {
        let (started, current, done, crashes) = (started.clone(), current.clone(), done.clone(), crashes.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            if done.load(Ordering::Relaxed) {
                return;
            }
            let s = started.load(Ordering::Relaxed);
            if s > 0 && epoch.elapsed().as_millis() as u64 - s > HANG_S * 1000 {
                let (name, input) = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let _ = std::fs::create_dir_all(&crashes);
                let path = crashes.join(format!("{name}-hang.bin"));
                let _ = std::fs::write(&path, input);
                eprintln!(
                    "HANG: parser `{name}` ran over {HANG_S} s; input saved to {}",
                    path.display()
                );
                std::process::exit(1);
            }
        });
    }
    let mut failed = 0;
    println!("parser        execs     execs/s   panics  slowest");
    for t in all.iter().filter(|t| a.only.as_deref().is_none_or(|o| o == t.name)) {
        assert!(!t.seeds.is_empty(), "parser {}: no seed files found", t.name);
        let mut rng = StdRng::seed_from_u64(a.seed ^ t.name.bytes().fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64));
        let file = scratch.join(format!("input.{}", t.ext));
        let (mut panics, mut slowest) = (0u64, Duration::ZERO);
        let start = Instant::now();
        for i in 0..a.execs {
            let base = &t.seeds[rng.random_range(0..t.seeds.len())];
            let other = &t.seeds[rng.random_range(0..t.seeds.len())];
            // The seeds themselves first, unmutated.
            let input = if (i as usize) < t.seeds.len() {
                t.seeds[i as usize].clone()
            } else {
                mutate(&mut rng, base, other)
            };
            std::fs::write(&file, &input).expect("scratch is writable");
            *current.lock().unwrap_or_else(|p| p.into_inner()) = (t.name.to_string(), input.clone());
            started.store(epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
            let t0 = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| (t.run)(&file)));
            slowest = slowest.max(t0.elapsed());
            started.store(0, Ordering::Relaxed);
            if result.is_err() {
                panics += 1;
                let _ = std::fs::create_dir_all(&crashes);
                let h = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                    (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
                });
                let path = crashes.join(format!("{}-{h:016x}.{}", t.name, t.ext));
                let _ = std::fs::write(&path, &input);
                if panics <= 3 {
                    let msg = last_panic.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    eprintln!("PANIC in `{}`: {msg}\n  input saved to {}", t.name, path.display());
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{:<12} {:>8} {:>10.0} {:>8} {:>7.1} ms",
            t.name,
            a.execs,
            a.execs as f64 / secs,
            panics,
            slowest.as_secs_f64() * 1e3
        );
        if panics > 0 {
            failed += 1;
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = std::fs::remove_dir_all(&scratch);
    if failed > 0 {
        eprintln!("{failed} parser(s) failed; inputs in {}", crashes.display());
        std::process::exit(1);
    }
}
