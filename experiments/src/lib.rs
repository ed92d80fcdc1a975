//! # fourf-experiments — the `fourf` commands and the files they read and write
//!
//! The CLI only parses arguments; everything a command does lives here.
//!
//! ## Files
//! - [`conv_cmd`]: `fourf conv` — convolve `.npy` maps on a simulated machine, and
//!   `fourf presets`.
//! - [`experiment`]: `fourf run`, `fourf validate`, `fourf merge`, `fourf plot` —
//!   experiment configs, sweeps that resume and shard, plots and reports.
//! - [`eval_cmd`]: `fourf eval` — a network on Fashion-MNIST on the digital or the
//!   optical backend, and the model presets.
//! - [`latency_cmd`]: `fourf latency` — projected latency and energy on a 4f
//!   machine beside GPU baselines, op by op.
//! - [`machine_file`]: a machine from a preset name or a TOML file, with
//!   `--set path=value` overrides.
//! - [`npy`]: NumPy `.npy` reader and writer (float32/float64, 2-D maps or 3-D stacks).
//! - [`images`]: PNG pictures of planes (colormaps, linear or dB scaling).
//! - [`train_cmd`]: `fourf train` — training with AdamW, checkpoints that resume
//!   to the same bits, and a CSV log.
//! - [`atomic`]: write-to-temp-then-rename, so a failed command leaves no
//!   half-written file; output paths checked before the work.
//! - [`seed`]: seeds in TOML and `--set`: any `u64`.

#![warn(missing_docs)]

pub mod atomic;
pub mod conv_cmd;
pub mod eval_cmd;
pub mod experiment;
pub mod images;
pub mod latency_cmd;
pub mod machine_file;
pub mod npy;
pub mod seed;
pub mod train_cmd;

pub use conv_cmd::{presets_table, run_conv, ConvArgs, ConvReport};
pub use eval_cmd::{model_presets_table, run_eval, BackendKind, EvalArgs, EvalReport};
pub use fourf_hw::gpu::Precision;
pub use fourf_nn::data::{default_test_dir, DEFAULT_DIR as DEFAULT_DATA_DIR};
pub use fourf_nn::spectral::SpectralEmulation;
pub use fourf_sim::{Mode, Op};
pub use latency_cmd::{run_latency, LatencyArgs, LatencyCommand, LatencyReport, LatencySource};
pub use machine_file::{load_machine, machine_toml, MachineFileError};
pub use npy::{read_npy, write_npy, Dtype, MapStack, NpyError};
pub use train_cmd::{run_train, TrainArgs, TrainConfig, TrainReport};

/// A fresh, empty directory under the system temp dir for one test.
#[cfg(test)]
pub(crate) fn test_dir(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("fourf-exp-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}
