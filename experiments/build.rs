//! Fingerprints the source fourf's results depend on, so that an experiment's
//! results record which code made them: `FOURF_SOURCE_HASH`, an FNV-1a hash of
//! every file under the crates' `src/` directories (and the layer tables), by path
//! and content. It is the same wherever the same source is built, unlike a hash of
//! the executable, so shards built on different nodes from one checkout agree.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dirs = [
        "sim/src",
        "nn/src",
        "hardware_models/src",
        "experiments/src",
        "experiments/layers",
        "src",
    ];
    let mut all = Vec::new();
    for d in dirs {
        let p = root.join(d);
        println!("cargo:rerun-if-changed={}", p.display());
        files(&p, &mut all);
    }
    all.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for f in &all {
        let rel = f.strip_prefix(&root).unwrap_or(f);
        eat(rel.to_string_lossy().as_bytes());
        eat(&[0]);
        eat(&std::fs::read(f).unwrap_or_default());
        eat(&[0]);
    }
    println!("cargo:rustc-env=FOURF_SOURCE_HASH={h:016x}");
}
