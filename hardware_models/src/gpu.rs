//! GPU baseline: a per-op roofline over a [`Trace`], GPU presets with cited peak
//! numbers, and measured throughputs that replace the model where they exist.
//!
//! # The model
//!
//! Every op of the trace runs on the GPU (on a GPU everything is electronic, so the
//! op's `engine` is ignored), one kernel per op, one op after the other, for a
//! batch of `B` images:
//!
//! ```text
//! time  = max(compute, memory) + launch_overhead_s
//! compute = B·flops / (peak · efficiency)
//! memory  = (B·activation_elements + params) · bytes_per_element / (bandwidth · memory_efficiency)
//! ```
//!
//! - Ops with a [`Gemm`] shape run on the tensor cores in TF32/FP16/BF16 (on the
//!   CUDA cores in FP32) at `gemm_efficiency · d/(d + gemm_half_dim)` of peak, where
//!   `d` is the smallest GEMM dimension, `m·B` for products with shared weights.
//!   Exception: when that smallest dimension is the row count `m·B` of a
//!   shared-weight product (a skinny product, e.g. a linear layer at batch 1),
//!   libraries run a GEMV-like streaming kernel rather than a tiled GEMM, so the
//!   rate is at least the CUDA-core rate below; its poor data reuse is what the
//!   memory term charges (the formula alone would make a batch-1 4096×4096 layer
//!   compute-bound at 0.6 % of peak, several times slower than the weight read).
//! - Other ops (FFTs, depthwise convolutions, normalisations, element-wise) run on
//!   the CUDA cores at `peak_fp32 · cuda_core_efficiency`; most are memory-bound.
//! - Weights (`params`) are read once per batch; activations once per image. The
//!   trace's `bytes` is f32 traffic: activations = `bytes − 4·params` elements·4.
//! - Energy is board power × time: an upper bound, since a GPU draws less than its
//!   board power on memory-bound or launch-bound work; host energy is excluded.
//!
//! What it ignores (see the validation in `tests/gpu_validation.rs` of the root
//! package): kernels a framework adds beyond the trace's minimum (reshapes and
//! transposes of attention heads, separate bias adds, AMP's weight casts), caches
//! (an op whose working set fits in L2 still pays DRAM bandwidth here), overlap of
//! consecutive kernels, wave quantisation, and clock throttling under load.
//!
//! # Validation
//!
//! Eleven published throughputs, each predicted within ±15 % by the one default
//! [`GpuModel`] (`tests/gpu_validation.rs`, sources in `docs/latency_sources.md`
//! §7): DeiT-Ti/S/B and VGG-16 on an RTX 4090 and an RTX 3090 under AMP at batch
//! 1024 (timm's benchmark CSVs, PyTorch 2.4, fused attention), and DeiT-Ti/S/B on
//! a V100 in FP32 with eager attention (below).
//!
//! With eager attention, DeiT-Ti/S/B on the `v100` preset in FP32 at batch 256
//! are predicted 3–8 % above the measured 2536 / 940 / 292 images/s of
//! Touvron et al. 2021 (DeiT, arXiv 2012.12877, Table 1: one 16 GB V100, largest
//! possible batch, 224²). FP32 is the precision we take for that table: the paper
//! states none; DeiT-B's 292 images/s at ≈ 35 GFLOP/image is ≈ 10 TFLOP/s, 65 % of
//! the V100's FP32 peak but 8 % of its tensor peak (research notes,
//! `docs/latency_sources.md` §2); and the throughput function of the Swin
//! Transformer repository (microsoft/Swin-Transformer `main.py`, `throughput()`),
//! whose paper reports DeiT's numbers next to its own "following DeiT" with the
//! same 30-run average, calls the model without `autocast`, i.e. in FP32.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::trace::{Gemm, OpKind, Trace, TraceOp};

/// Arithmetic precision of a GPU run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Precision {
    /// IEEE single precision; matrix products on the CUDA cores.
    Fp32,
    /// FP32 storage, matrix products on the tensor cores in TF32 (Ampere and later;
    /// on older GPUs the CUDA cores, as PyTorch does).
    Tf32,
    /// Half precision storage, tensor-core products with FP32 accumulation (AMP).
    Fp16,
    /// bfloat16 storage, tensor-core products with FP32 accumulation (Ampere and
    /// later; on older GPUs the CUDA cores).
    Bf16,
}

impl Precision {
    /// All precisions, in order.
    pub const ALL: [Precision; 4] = [Precision::Fp32, Precision::Tf32, Precision::Fp16, Precision::Bf16];

    /// The snake_case name (as in files).
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
        }
    }

    /// Bytes per stored element: 4, 4, 2, 2 (TF32 is stored as FP32).
    pub fn bytes_per_element(self) -> u64 {
        match self {
            Precision::Fp32 | Precision::Tf32 => 4,
            Precision::Fp16 | Precision::Bf16 => 2,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = GpuError;

    /// A name of [`Precision::ALL`], case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Precision::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| GpuError::UnknownPrecision(t.to_string()))
    }
}

/// Peak numbers of one GPU. All FLOP rates are dense (no structured sparsity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// Preset key, e.g. `v100` (what measurement files name the GPU by).
    pub name: String,
    /// Peak FP32 FLOP/s of the CUDA cores (non-tensor).
    pub peak_fp32_flops: f64,
    /// Peak dense TF32 tensor-core FLOP/s; `None` for GPUs without TF32 (Volta,
    /// Turing), which also lack BF16 tensor cores.
    pub peak_tf32_flops: Option<f64>,
    /// Peak dense FP16 tensor-core FLOP/s **with FP32 accumulation** (what AMP and
    /// cuBLAS's FP32-compute GEMMs use). GeForce cards run this at half their
    /// FP16-accumulate rate; the presets give the FP32-accumulate rate.
    pub peak_fp16_flops: f64,
    /// Peak DRAM bandwidth, bytes/s.
    pub memory_bandwidth_bytes_per_s: f64,
    /// DRAM capacity, bytes (the marketed size in GiB).
    pub memory_bytes: u64,
    /// Board power (TDP/TBP), W.
    pub board_power_w: f64,
    /// Which part this is and where the numbers come from.
    pub source: String,
}

impl GpuSpec {
    /// Peak FLOP/s for the matrix products of an op in `precision`: the CUDA cores
    /// in FP32; the tensor cores otherwise, except TF32 and BF16 on GPUs without
    /// TF32 (pre-Ampere), which fall back to the CUDA cores.
    pub fn gemm_peak_flops(&self, precision: Precision) -> f64 {
        match (precision, self.peak_tf32_flops) {
            (Precision::Fp32, _) => self.peak_fp32_flops,
            (Precision::Tf32, Some(tf32)) => tf32,
            (Precision::Fp16, _) | (Precision::Bf16, Some(_)) => self.peak_fp16_flops,
            (Precision::Tf32 | Precision::Bf16, None) => self.peak_fp32_flops,
        }
    }
}

const GIB: u64 = 1 << 30;

/// Preset keys, in order.
pub const GPU_NAMES: &[&str] = &["v100", "a100", "h100", "h200", "rtx2080ti", "rtx3090", "rtx4090"];

/// The preset GPU called `name` (case-insensitive; `-`, `_` and spaces ignored, so
/// `RTX-4090` works). Numbers from `docs/latency_sources.md` §1; the label there
/// (\[S\] secondary spec page, \[D\] derived, \[M\] from memory, unverified) is repeated
/// in each preset's `source`.
///
/// - `v100`: the **SXM2** 16 GB V100. DeiT (the validation target) used "one 16 GB
///   V100" without saying which; Facebook AI Research trained DeiT on 8-GPU nodes,
///   which were NVLink (SXM2) servers. The PCIe part is 11 % slower (14 / 112
///   TFLOP/s, 250 W; io-tech.fi) — within the validation's tolerance either way.
///   15.7 / 125 TFLOP/s and 900 GB/s are the final datasheet values **from memory
///   (unverified)**; they equal 5120 cores·2·1.53 GHz and 640 tensor cores·128
///   FLOP/clk·1.53 GHz, and the launch table (techrival.com) gives 15 / 120 at
///   1455 MHz, 300 W.
/// - `a100`: SXM4 40 GB (19.5 / 156 / 312 TFLOP/s, 1555 GB/s, 400 W;
///   glennklockwood.com/garden/processors/A100 citing the NVIDIA datasheet). The
///   80 GB part has 2039 GB/s.
/// - `h100`: SXM5 80 GB (66.9 / 494.7 / 989.4, 3350 GB/s, 700 W;
///   glennklockwood.com/garden/processors/h100).
/// - `h200`: SXM 141 GB: H100's die and clocks (TF32/FP16 dense derived: the
///   1979 TFLOP/s often quoted as dense is the sparse figure) with 4800 GB/s
///   (lzwjava.github.io/nvidia-h200-gpu-specs-en; hmc-tech.com; aiminingco.com).
/// - `rtx2080ti`: reference clocks, **unverified** (not in the stored corpus):
///   13.4 FP32, 53.8 FP16-with-FP32-accumulate (half of 544 tensor cores·128
///   FLOP/clk·1.545 GHz = 107.6), 616 GB/s, 11 GB, 250 W.
/// - `rtx3090`: 35.6 FP32, 936 GB/s, 350 W (holynerdvana.blogspot.com, Tom's
///   Hardware table); FP16-acc 142 \[S\] so FP32-acc 71 \[D\]; TF32 35.6 \[M\].
/// - `rtx4090`: 82.6 FP32 and TF32, 1008 GB/s, 450 W (waredb.com,
///   holynerdvana.blogspot.com). FP16 with FP32 accumulate **165.2** \[D\]: 512
///   tensor cores·2.52 GHz·256 FLOP/clk (GA102's per-core rate, which reproduces the
///   3090's 142) = 330.3 with FP16 accumulate, half with FP32; waredb's 165.15
///   "FP16" equals its BF16 figure, which always accumulates in FP32. (The research
///   notes' 82.6 read waredb's 165.15 as the FP16-accumulate rate.)
pub fn gpu_preset(name: &str) -> Option<GpuSpec> {
    let key: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let t = 1e12;
    let g = 1e9;
    let spec = |name: &str, fp32: f64, tf32: Option<f64>, fp16: f64, bw: f64, gib: u64, w: f64, src: &str| GpuSpec {
        name: name.to_string(),
        peak_fp32_flops: fp32 * t,
        peak_tf32_flops: tf32.map(|x| x * t),
        peak_fp16_flops: fp16 * t,
        memory_bandwidth_bytes_per_s: bw * g,
        memory_bytes: gib * GIB,
        board_power_w: w,
        source: src.to_string(),
    };
    Some(match key.as_str() {
        "v100" => spec(
            "v100",
            15.7,
            None,
            125.0,
            900.0,
            16,
            300.0,
            "NVIDIA Tesla V100 SXM2 16 GB (Volta). 15.7 FP32 / 125 FP16 tensor TFLOP/s at 1530 MHz boost and \
             900 GB/s: datasheet values from memory [M], = 5120·2·1.53 GHz and 640·128·1.53 GHz [D]; launch \
             table 15 / 120 TFLOP/s at 1455 MHz, 300 W [S] (techrival.com/nvidia-volta-tesla-v100-cards-detailed). \
             No TF32/BF16.",
        ),
        "a100" => spec(
            "a100",
            19.5,
            Some(156.0),
            312.0,
            1555.0,
            40,
            400.0,
            "NVIDIA A100 SXM4 40 GB: 19.5 FP32, 156 TF32, 312 FP16/BF16 dense TFLOP/s, 1555 GB/s, 400 W [S] \
             (glennklockwood.com/garden/processors/A100, citing the NVIDIA A100 datasheet; \
             upb-pc2.atlassian.net NVIDIA A100 40GB with NVLINK).",
        ),
        "h100" => spec(
            "h100",
            66.9,
            Some(494.7),
            989.4,
            3350.0,
            80,
            700.0,
            "NVIDIA H100 SXM5 80 GB: 66.9 FP32, 494.7 TF32, 989.4 FP16/BF16 dense TFLOP/s, 3350 GB/s HBM3, \
             700 W [S] (glennklockwood.com/garden/processors/h100; archive-lib.hpctech.co.jp/gpuproduct/nvidia-h100).",
        ),
        "h200" => spec(
            "h200",
            66.9,
            Some(494.7),
            989.4,
            4800.0,
            141,
            700.0,
            "NVIDIA H200 SXM 141 GB: 66.9 FP32 [S] (hmc-tech.com), 4800 GB/s HBM3e [S] \
             (lzwjava.github.io/nvidia-h200-gpu-specs-en), 700 W [S] (aiminingco.com/gpu/h200/specs); \
             TF32 494.7 / FP16 989.4 dense derived from H100 SXM's identical die and clocks [D].",
        ),
        "rtx2080ti" => spec(
            "rtx2080ti",
            13.4,
            None,
            53.8,
            616.0,
            11,
            250.0,
            "NVIDIA GeForce RTX 2080 Ti (reference clocks), all UNVERIFIED [M/D]: 13.4 FP32 TFLOP/s \
             (4352·2·1.545 GHz), FP16 tensor with FP32 accumulate 53.8 = half of 544·128·1.545 GHz = 107.6 \
             (GeForce half rate), 616 GB/s GDDR6, 11 GB, 250 W. No TF32/BF16.",
        ),
        "rtx3090" => spec(
            "rtx3090",
            35.6,
            Some(35.6),
            71.0,
            936.0,
            24,
            350.0,
            "NVIDIA GeForce RTX 3090: 35.6 FP32 TFLOP/s, 936 GB/s, 24 GB, 350 W [S] \
             (holynerdvana.blogspot.com/2022/10/nvidia-geforce-rtx-3090-specifications.html); FP16 tensor 142 \
             with FP16 accumulate [S], 71 with FP32 accumulate (GeForce half rate) [D]; TF32 35.6 [M].",
        ),
        "rtx4090" => spec(
            "rtx4090",
            82.6,
            Some(82.6),
            165.2,
            1008.0,
            24,
            450.0,
            "NVIDIA GeForce RTX 4090: 82.6 FP32 and TF32 dense TFLOP/s, 1008 GB/s, 24 GB, 450 W [S] \
             (waredb.com/processor/nvidia-geforce-rtx-4090; holynerdvana.blogspot.com). FP16 tensor with FP32 \
             accumulate 165.2 [D]: 512·256·2.52 GHz = 330.3 with FP16 accumulate, halved; equals waredb's BF16 \
             165.15 (BF16 always accumulates in FP32).",
        ),
        _ => return None,
    })
}

/// The roofline's efficiency parameters. One set for every GPU: chosen once, not
/// fitted per GPU or per network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuModel {
    /// Largest fraction of the peak a matrix product reaches (large square GEMMs).
    /// Default 0.95, calibrated once on the eleven cited measurements (see the
    /// module's Validation): cuBLAS runs large GEMMs at 85–95 % of the datasheet
    /// peak at its rated boost clock, and GeForce cards under load clock above it
    /// (the RTX 3090 is rated at 1.695 GHz); one value for CUDA and tensor cores.
    /// (0.8 predicted every published throughput 5–25 % low.)
    pub gemm_efficiency: f64,
    /// The smallest GEMM dimension `d` at which the efficiency reaches half of
    /// `gemm_efficiency`: efficiency = `gemm_efficiency · d/(d + gemm_half_dim)`,
    /// with `d = min(m·B if the weights are shared else m, n, k)`. Default 128: the
    /// common cuBLAS/CUTLASS thread-block tile is 128 wide, and a dimension of one
    /// tile leaves the pipeline's prologue/epilogue and partial waves as costly as
    /// its steady state; it gives 0.33, 0.6, 0.86, 0.89 of the maximum at d = 64,
    /// 192, 768, 1024 (head-dim 64 attention products are known to run at a
    /// fraction of peak).
    pub gemm_half_dim: f64,
    /// Fraction of peak FP32 for non-GEMM compute (FFTs, depthwise convolutions,
    /// normalisations, element-wise). Default 0.5: such kernels lack a GEMM's data
    /// reuse and interleave loads with arithmetic; most of them are memory-bound in
    /// this model anyway, so the value matters little.
    pub cuda_core_efficiency: f64,
    /// Fraction of peak DRAM bandwidth a streaming kernel reaches. Default 0.7:
    /// STREAM-like copies reach 80–90 % on HBM and GDDR parts, but framework
    /// element-wise kernels (LayerNorm, GELU, residual adds under AMP, with their
    /// casts) sit below; calibrated with `gemm_efficiency`.
    pub memory_efficiency: f64,
    /// Fixed cost per op (kernel), s. Default 5 µs: the launch plus the ramp-up and
    /// tail of a kernel; eager frameworks spend ~5–25 µs of CPU dispatch per op
    /// (jiahuanglin.xyz/all_lessons/gpu_kernel_serving/18_pytorch_to_kernel.html),
    /// which overlaps with large kernels but bounds small ones. At large batch it is
    /// below 1 % of a ViT's time; it dominates at batch 1 for small networks.
    pub launch_overhead_s: f64,
    /// Attention runs as one fused kernel, as PyTorch ≥ 2's
    /// `scaled_dot_product_attention` (FlashAttention / memory-efficient
    /// attention) does: the scores, softmax and value mixing of a head read Q, K
    /// and V and write the output once, the score matrix never leaving the chip;
    /// its two products keep their GEMM efficiency (head-dim wide), and one launch.
    /// Default true; false models eager attention (PyTorch 1.x, or timm before its
    /// `fused_attn`): the scores written, softmaxed and read back.
    pub fused_attention: bool,
}

impl Default for GpuModel {
    fn default() -> Self {
        Self {
            gemm_efficiency: 0.95,
            gemm_half_dim: 128.0,
            cuda_core_efficiency: 0.5,
            memory_efficiency: 0.7,
            launch_overhead_s: 5e-6,
            fused_attention: true,
        }
    }
}

impl GpuModel {
    /// `Err` naming the first invalid parameter (efficiencies must lie in (0, 1],
    /// the half dimension and the overhead must be finite and ≥ 0).
    pub fn validate(&self) -> Result<(), GpuError> {
        let fractions = [
            ("gemm_efficiency", self.gemm_efficiency),
            ("cuda_core_efficiency", self.cuda_core_efficiency),
            ("memory_efficiency", self.memory_efficiency),
        ];
        for (name, v) in fractions {
            if !(v > 0.0 && v <= 1.0) {
                return Err(GpuError::InvalidModel(format!("{name} = {v} must lie in (0, 1]")));
            }
        }
        for (name, v) in [
            ("gemm_half_dim", self.gemm_half_dim),
            ("launch_overhead_s", self.launch_overhead_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(GpuError::InvalidModel(format!("{name} = {v} must be finite and ≥ 0")));
            }
        }
        Ok(())
    }

    /// Fraction of peak a matrix product of shape `gemm` reaches at batch `batch`.
    pub fn gemm_fraction(&self, gemm: &Gemm, batch: usize) -> f64 {
        let m = if gemm.shared_weights { gemm.m * batch } else { gemm.m };
        let d = m.min(gemm.n).min(gemm.k) as f64;
        if d + self.gemm_half_dim <= 0.0 {
            return self.gemm_efficiency;
        }
        self.gemm_efficiency * d / (d + self.gemm_half_dim)
    }
}

/// What limits an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Arithmetic (compute time ≥ memory time).
    Compute,
    /// DRAM traffic.
    Memory,
}

/// One op of a GPU estimate, for the whole batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuOpEstimate {
    /// The op's name.
    pub name: String,
    /// What it computes.
    pub kind: OpKind,
    /// FLOPs for the batch.
    pub flops: u64,
    /// DRAM bytes for the batch in the run's precision (weights once).
    pub bytes: u64,
    /// Time at the achievable FLOP rate, s.
    pub compute_s: f64,
    /// Time at the achievable bandwidth, s.
    pub memory_s: f64,
    /// `max(compute_s, memory_s) + launch overhead` (rescaled when a measurement
    /// replaces the model, see [`GpuEstimate::with_measured_throughput`]), s.
    pub time_s: f64,
    /// Whether compute or memory time is the larger.
    pub bound: Bound,
}

/// Where the totals of an estimate come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimateBasis {
    /// The roofline model.
    Roofline,
    /// A measured throughput (a [`GpuMeasurements`] entry).
    Measured,
}

/// A GPU's time and energy for one batch of a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuEstimate {
    /// The GPU's preset key.
    pub gpu: String,
    /// Images per batch.
    pub batch: usize,
    /// Arithmetic precision.
    pub precision: Precision,
    /// Per-op breakdown, in trace order.
    pub ops: Vec<GpuOpEstimate>,
    /// Time of one batch, s.
    pub time_s: f64,
    /// `time_s / batch`.
    pub per_image_s: f64,
    /// `batch / time_s`.
    pub images_per_s: f64,
    /// Board power × time for the batch, J: an upper bound (a GPU draws below its
    /// board power on memory- or launch-bound work; host energy excluded).
    pub energy_j: f64,
    /// `energy_j / batch`, J.
    pub energy_per_image_j: f64,
    /// Model or measurement.
    pub basis: EstimateBasis,
}

impl GpuEstimate {
    /// The estimate with a measured throughput in place of the model's: totals from
    /// `images_per_s`, and each op's `time_s` scaled by the same factor so that the
    /// breakdown keeps the model's shares and sums to the measured time (its
    /// `compute_s`, `memory_s` and `bound` stay the model's).
    ///
    /// # Panics
    /// If `images_per_s` is not finite and positive.
    pub fn with_measured_throughput(mut self, images_per_s: f64, board_power_w: f64) -> Self {
        assert!(
            images_per_s.is_finite() && images_per_s > 0.0,
            "measured throughput {images_per_s} must be positive"
        );
        let time = self.batch as f64 / images_per_s;
        let scale = if self.time_s > 0.0 { time / self.time_s } else { 0.0 };
        for op in &mut self.ops {
            op.time_s *= scale;
        }
        self.set_totals(time, board_power_w);
        self.basis = EstimateBasis::Measured;
        self
    }

    fn set_totals(&mut self, time_s: f64, board_power_w: f64) {
        let b = self.batch as f64;
        self.time_s = time_s;
        self.per_image_s = time_s / b;
        self.images_per_s = if time_s > 0.0 { b / time_s } else { f64::INFINITY };
        self.energy_j = board_power_w * time_s;
        self.energy_per_image_j = self.energy_j / b;
    }
}

/// The roofline estimate of one op for a batch.
fn estimate_op(op: &TraceOp, gpu: &GpuSpec, model: &GpuModel, batch: usize, precision: Precision) -> GpuOpEstimate {
    let b = batch as u64;
    // Saturating: a trace read from a file may hold any counts.
    let flops = op.flops.saturating_mul(b);
    let params = op.params as u64;
    let activation_elements = op.bytes.saturating_sub(params.saturating_mul(4)) / 4;
    let bytes = activation_elements
        .saturating_mul(b)
        .saturating_add(params)
        .saturating_mul(precision.bytes_per_element());
    let cuda_rate = gpu.peak_fp32_flops * model.cuda_core_efficiency;
    let rate = match &op.gemm {
        Some(g) => {
            let tiled = gpu.gemm_peak_flops(precision) * model.gemm_fraction(g, batch);
            if g.shared_weights && g.m * batch < g.n.min(g.k) {
                // Skinny product (few rows against a weight matrix, e.g. a batch-1
                // linear layer): libraries run it as a GEMV/split-K streaming kernel,
                // not at the tile-limited rate; its low reuse is the memory term.
                tiled.max(cuda_rate)
            } else {
                tiled
            }
        }
        None => cuda_rate,
    };
    let compute_s = if flops == 0 { 0.0 } else { flops as f64 / rate };
    GpuOpEstimate::roofline(op, flops, bytes, compute_s, gpu, model)
}

impl GpuOpEstimate {
    /// The row of one kernel (named after `op`) moving `bytes` and taking
    /// `compute_s` of arithmetic: `max(compute, memory) + launch`.
    fn roofline(op: &TraceOp, flops: u64, bytes: u64, compute_s: f64, gpu: &GpuSpec, model: &GpuModel) -> Self {
        let memory_s = bytes as f64 / (gpu.memory_bandwidth_bytes_per_s * model.memory_efficiency);
        GpuOpEstimate {
            name: op.name.clone(),
            kind: op.kind,
            flops,
            bytes,
            compute_s,
            memory_s,
            time_s: compute_s.max(memory_s) + model.launch_overhead_s,
            bound: if compute_s >= memory_s {
                Bound::Compute
            } else {
                Bound::Memory
            },
        }
    }
}

/// Every `attention_scores`, `softmax`, `attention_mix` run of `trace` as one
/// fused kernel (see [`GpuModel::fused_attention`]): the first row carries its
/// time — both products' compute time (and the softmax's), against reading Q, K,
/// V and writing the output (four times the mix's output) — the other two none.
fn fuse_attention(
    trace: &Trace,
    ops: &mut [GpuOpEstimate],
    gpu: &GpuSpec,
    model: &GpuModel,
    batch: usize,
    precision: Precision,
) {
    let kinds = [OpKind::AttentionScores, OpKind::Softmax, OpKind::AttentionMix];
    let mut i = 0;
    while i + 3 <= ops.len() {
        if (0..3).any(|j| trace.ops[i + j].kind != kinds[j]) {
            i += 1;
            continue;
        }
        let out: u64 = trace.ops[i + 2]
            .output_shape
            .iter()
            .fold(1u64, |a, &d| a.saturating_mul(d as u64));
        let bytes = out
            .saturating_mul(4)
            .saturating_mul(batch as u64)
            .saturating_mul(precision.bytes_per_element());
        let compute_s: f64 = ops[i..i + 3].iter().map(|o| o.compute_s).sum();
        let flops = ops[i..i + 3].iter().fold(0u64, |a, o| a.saturating_add(o.flops));
        ops[i] = GpuOpEstimate::roofline(&trace.ops[i], flops, bytes, compute_s, gpu, model);
        for o in &mut ops[i + 1..i + 3] {
            *o = GpuOpEstimate {
                flops: 0,
                bytes: 0,
                compute_s: 0.0,
                memory_s: 0.0,
                time_s: 0.0,
                ..o.clone()
            };
        }
        i += 3;
    }
}

/// The roofline time and energy of running `trace` (one image's forward pass) for a
/// batch of `batch` images on `gpu` in `precision`. Every op counts, whatever its
/// `engine`.
///
/// # Panics
/// If `batch` is 0.
pub fn estimate(trace: &Trace, gpu: &GpuSpec, model: &GpuModel, batch: usize, precision: Precision) -> GpuEstimate {
    assert!(batch >= 1, "GPU estimate: batch must be ≥ 1");
    let mut ops: Vec<GpuOpEstimate> = trace
        .ops
        .iter()
        .map(|op| estimate_op(op, gpu, model, batch, precision))
        .collect();
    if model.fused_attention {
        fuse_attention(trace, &mut ops, gpu, model, batch, precision);
    }
    let time: f64 = ops.iter().map(|o| o.time_s).sum();
    let mut e = GpuEstimate {
        gpu: gpu.name.clone(),
        batch,
        precision,
        ops,
        time_s: 0.0,
        per_image_s: 0.0,
        images_per_s: 0.0,
        energy_j: 0.0,
        energy_per_image_j: 0.0,
        basis: EstimateBasis::Roofline,
    };
    e.set_totals(time, gpu.board_power_w);
    e
}

/// [`estimate`], replaced by the measured throughput of `network` when
/// `measurements` has one for this GPU (by its preset key), batch and precision.
pub fn estimate_or_measured(
    network: &str,
    trace: &Trace,
    gpu: &GpuSpec,
    model: &GpuModel,
    batch: usize,
    precision: Precision,
    measurements: Option<&GpuMeasurements>,
) -> GpuEstimate {
    let e = estimate(trace, gpu, model, batch, precision);
    match measurements.and_then(|m| m.lookup(network, &gpu.name, batch, precision)) {
        Some(ips) => e.with_measured_throughput(ips, gpu.board_power_w),
        None => e,
    }
}

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpuError {
    /// A file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The system's message.
        message: String,
    },
    /// A measurement file is malformed.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (character) where the offending field starts.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A precision name that is not one of [`Precision::ALL`].
    #[error("unknown precision `{0}` (valid: {valid})", valid = precision_names())]
    UnknownPrecision(String),
    /// A [`GpuModel`] parameter out of range.
    #[error("invalid GPU model: {0}")]
    InvalidModel(String),
}

fn precision_names() -> String {
    Precision::ALL.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
}

/// One measured throughput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuMeasurement {
    /// Network (preset) name, e.g. `deit-b`.
    pub model: String,
    /// GPU preset key, e.g. `v100`.
    pub gpu: String,
    /// Images per batch.
    pub batch: usize,
    /// Arithmetic precision.
    pub precision: Precision,
    /// Measured throughput, images/s.
    pub images_per_s: f64,
    /// Line of the file it came from (1-based).
    pub line: usize,
}

/// The column names of a measurement file, in order.
pub const MEASUREMENT_COLUMNS: [&str; 5] = ["model", "gpu", "batch", "precision", "images_per_s"];

/// Measured GPU throughputs that replace the roofline for the (network, GPU, batch,
/// precision) they cover.
///
/// File format: CSV with the header `model,gpu,batch,precision,images_per_s`;
/// blank lines and lines starting with `#` are ignored; fields are plain (no
/// quoting, no commas inside). Names match case-insensitively; a key may appear
/// once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuMeasurements {
    /// The entries, in file order.
    pub entries: Vec<GpuMeasurement>,
}

impl GpuMeasurements {
    /// Reads and parses a measurement file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, GpuError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let io = |message: String| GpuError::Io {
            path: shown.clone(),
            message,
        };
        // At most 16 MiB: a device or an endless stream is not read to the end.
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 16 << 20), &mut bytes))
            .map_err(|e| io(e.to_string()))?;
        if bytes.len() >= 16 << 20 {
            return Err(io("16 MiB or larger; not a measurement file".into()));
        }
        let text = String::from_utf8(bytes).map_err(|_| io("not UTF-8 text".into()))?;
        Self::parse(&text, &shown)
    }

    /// Parses the text of a measurement file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, GpuError> {
        let err = |line: usize, column: usize, message: String| GpuError::Parse {
            path: origin.to_string(),
            line,
            column,
            message,
        };
        // A byte-order mark (spreadsheet exports) is not part of the first column's name.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut header_seen = false;
        let mut entries: Vec<GpuMeasurement> = Vec::new();
        let mut seen: HashMap<(String, String, usize, Precision), usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim_end_matches('\r');
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields = split_fields(line);
            if !header_seen {
                if fields.len() != MEASUREMENT_COLUMNS.len() {
                    return Err(err(
                        line_no,
                        1,
                        format!(
                            "header has {} columns, expected `{}`",
                            fields.len(),
                            MEASUREMENT_COLUMNS.join(",")
                        ),
                    ));
                }
                for ((col, name), want) in fields.iter().zip(MEASUREMENT_COLUMNS) {
                    if !name.eq_ignore_ascii_case(want) {
                        return Err(err(line_no, *col, format!("header column `{name}`, expected `{want}`")));
                    }
                }
                header_seen = true;
                continue;
            }
            if fields.len() != MEASUREMENT_COLUMNS.len() {
                let column = fields
                    .get(MEASUREMENT_COLUMNS.len())
                    .map_or(line.chars().count() + 1, |f| f.0);
                return Err(err(
                    line_no,
                    column,
                    format!("{} fields, expected {}", fields.len(), MEASUREMENT_COLUMNS.len()),
                ));
            }
            for (col, value) in &fields {
                if value.is_empty() {
                    return Err(err(line_no, *col, "empty field".to_string()));
                }
            }
            let (model, gpu) = (fields[0].1.to_ascii_lowercase(), fields[1].1.to_ascii_lowercase());
            let batch = match fields[2].1.parse::<usize>() {
                Ok(b) if b >= 1 => b,
                _ => {
                    return Err(err(
                        line_no,
                        fields[2].0,
                        format!("batch `{}` is not a positive integer", fields[2].1),
                    ))
                }
            };
            let precision: Precision = fields[3]
                .1
                .parse()
                .map_err(|e: GpuError| err(line_no, fields[3].0, e.to_string()))?;
            let images_per_s = match fields[4].1.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => v,
                _ => {
                    return Err(err(
                        line_no,
                        fields[4].0,
                        format!("images_per_s `{}` is not a positive number", fields[4].1),
                    ))
                }
            };
            let key = (model.clone(), gpu.clone(), batch, precision);
            if let Some(first) = seen.insert(key, line_no) {
                return Err(err(
                    line_no,
                    1,
                    format!("duplicate of line {first} ({model}, {gpu}, batch {batch}, {precision})"),
                ));
            }
            entries.push(GpuMeasurement {
                model,
                gpu,
                batch,
                precision,
                images_per_s,
                line: line_no,
            });
        }
        if !header_seen {
            return Err(err(1, 1, format!("no header line `{}`", MEASUREMENT_COLUMNS.join(","))));
        }
        Ok(Self { entries })
    }

    /// The measured images/s of `model` on `gpu` at `batch` in `precision`, if any
    /// (names case-insensitive).
    pub fn lookup(&self, model: &str, gpu: &str, batch: usize, precision: Precision) -> Option<f64> {
        self.entries
            .iter()
            .find(|e| {
                e.batch == batch
                    && e.precision == precision
                    && e.model.eq_ignore_ascii_case(model)
                    && e.gpu.eq_ignore_ascii_case(gpu)
            })
            .map(|e| e.images_per_s)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Comma-separated fields of a line, trimmed, each with the 1-based character
/// column where its text starts.
fn split_fields(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for part in line.split(',') {
        let lead = part.len() - part.trim_start().len();
        let column = line[..start + lead].chars().count() + 1;
        out.push((column, part.trim()));
        start += part.len() + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Engine;

    /// A GPU with round numbers: 10 TFLOP/s FP32, 40 TF32, 80 FP16, 1 TB/s, 100 W.
    fn toy_gpu() -> GpuSpec {
        GpuSpec {
            name: "toy".into(),
            peak_fp32_flops: 10e12,
            peak_tf32_flops: Some(40e12),
            peak_fp16_flops: 80e12,
            memory_bandwidth_bytes_per_s: 1e12,
            memory_bytes: 16 * GIB,
            board_power_w: 100.0,
            source: "test".into(),
        }
    }

    /// An element-wise-like op (no GEMM) with `elements` f32 values in and out.
    fn elementwise(elements: usize, flops: u64) -> TraceOp {
        TraceOp::electronic("ew", OpKind::Activation, &[elements], &[elements], flops)
    }

    fn one_op(op: TraceOp) -> Trace {
        Trace { ops: vec![op] }
    }

    #[test]
    fn roofline_switches_at_the_ridge_point() {
        let gpu = toy_gpu();
        let model = GpuModel::default();
        // Non-GEMM op: ridge = peak_fp32·cuda_eff / (bw·mem_eff) FLOP/byte.
        let ridge = gpu.peak_fp32_flops * model.cuda_core_efficiency
            / (gpu.memory_bandwidth_bytes_per_s * model.memory_efficiency);
        let elements = 1 << 20;
        let bytes = 8.0 * elements as f64;
        for (factor, want) in [(0.999, Bound::Memory), (1.001, Bound::Compute)] {
            let flops = (ridge * bytes * factor).round() as u64;
            let e = estimate(&one_op(elementwise(elements, flops)), &gpu, &model, 1, Precision::Fp32);
            assert_eq!(e.ops[0].bound, want, "intensity {factor}× ridge");
            let intensity = e.ops[0].flops as f64 / e.ops[0].bytes as f64;
            assert!((intensity / ridge - factor).abs() < 1e-6);
        }
        // GEMM op in FP16: ridge = peak_fp16·gemm_fraction / (bw·mem_eff), with the
        // bytes in FP16.
        let gemm = Gemm {
            count: 1,
            m: 4096,
            n: 4096,
            k: 4096,
            shared_weights: false,
        };
        let frac = model.gemm_fraction(&gemm, 1);
        assert!((frac - 0.95 * 4096.0 / (4096.0 + 128.0)).abs() < 1e-12);
        let ridge = gpu.peak_fp16_flops * frac / (gpu.memory_bandwidth_bytes_per_s * model.memory_efficiency);
        let elements = 3 << 20;
        let fp16_bytes = 2.0 * 2.0 * elements as f64;
        for (factor, want) in [(0.999, Bound::Memory), (1.001, Bound::Compute)] {
            let flops = (ridge * fp16_bytes * factor).round() as u64;
            let op = elementwise(elements, flops).with_gemm(gemm);
            let e = estimate(&one_op(op), &gpu, &model, 1, Precision::Fp16);
            assert_eq!(e.ops[0].bound, want, "gemm intensity {factor}× ridge");
            let o = &e.ops[0];
            assert_eq!(o.bytes as f64, fp16_bytes);
            assert!((o.time_s - o.compute_s.max(o.memory_s) - model.launch_overhead_s).abs() < 1e-15);
        }
    }

    #[test]
    fn weights_are_read_once_per_batch() {
        let gpu = toy_gpu();
        let model = GpuModel::default();
        let (i, o) = (4096, 4096);
        let params = i * o + o;
        let op = TraceOp::electronic("fc", OpKind::Linear, &[1, i], &[1, o], 2 * (i * o) as u64)
            .with_params(params)
            .with_gemm(Gemm {
                count: 1,
                m: 1,
                n: o,
                k: i,
                shared_weights: true,
            });
        let trace = one_op(op);
        let mut last = f64::INFINITY;
        for batch in [1, 8, 64] {
            let e = estimate(&trace, &gpu, &model, batch, Precision::Fp32);
            assert_eq!(e.ops[0].bytes, 4 * ((i + o) * batch + params) as u64);
            assert_eq!(e.ops[0].flops, (2 * i * o * batch) as u64);
            if batch <= 8 {
                assert_eq!(e.ops[0].bound, Bound::Memory, "batch {batch}");
            }
            assert!(e.per_image_s < last, "batch {batch}: {} ≥ {last}", e.per_image_s);
            last = e.per_image_s;
        }
        // At batch 1 the op is the weight read: 4·params bytes at the achievable
        // bandwidth (1 TB/s × memory_efficiency).
        let e1 = estimate(&trace, &gpu, &model, 1, Precision::Fp32);
        let expected = 4.0 * (params + i + o) as f64 / (1e12 * model.memory_efficiency);
        assert!((e1.ops[0].memory_s - expected).abs() < 1e-15);
        // Batch 1 is a skinny product: at least the CUDA-core rate, not the
        // tile-limited gemm_efficiency/129 of peak.
        let cuda_rate = gpu.peak_fp32_flops * model.cuda_core_efficiency;
        assert!((e1.ops[0].compute_s - e1.ops[0].flops as f64 / cuda_rate).abs() < 1e-15);
        // Shared-weight GEMMs get more efficient with batch (d = m·B).
        let g = trace.ops[0].gemm.unwrap();
        assert!(model.gemm_fraction(&g, 64) > model.gemm_fraction(&g, 1));
    }

    #[test]
    fn half_precision_halves_bytes() {
        let gpu = toy_gpu();
        let model = GpuModel::default();
        let op = elementwise(1 << 20, 8 << 20).with_params(1000);
        let trace = one_op(op);
        let f32 = estimate(&trace, &gpu, &model, 4, Precision::Fp32);
        for p in [Precision::Fp16, Precision::Bf16] {
            let h = estimate(&trace, &gpu, &model, 4, p);
            assert_eq!(2 * h.ops[0].bytes, f32.ops[0].bytes);
            assert!((2.0 * h.ops[0].memory_s - f32.ops[0].memory_s).abs() < 1e-15);
            assert_eq!(h.ops[0].flops, f32.ops[0].flops);
        }
        assert_eq!(
            estimate(&trace, &gpu, &model, 4, Precision::Tf32).ops[0].bytes,
            f32.ops[0].bytes
        );
        assert_eq!(Precision::ALL.map(|p| p.bytes_per_element()), [4, 4, 2, 2]);
    }

    #[test]
    fn launch_overhead_counts_per_op() {
        let gpu = toy_gpu();
        let model = GpuModel::default();
        let mut trace = Trace::new();
        for n in 0..7 {
            let mut op = elementwise(0, 0);
            op.name = format!("op{n}");
            if n % 2 == 0 {
                op.engine = Engine::Optical; // counted all the same on a GPU
            }
            trace.push(op);
        }
        let e = estimate(&trace, &gpu, &model, 3, Precision::Fp32);
        assert_eq!(e.ops.len(), 7);
        assert!((e.time_s - 7.0 * model.launch_overhead_s).abs() < 1e-18);
        // Adding real work adds exactly its roofline time.
        trace.push(elementwise(1000, 0));
        let free = GpuModel {
            launch_overhead_s: 0.0,
            ..model
        };
        let with = estimate(&trace, &gpu, &model, 3, Precision::Fp32);
        let without = estimate(&trace, &gpu, &free, 3, Precision::Fp32);
        assert!((with.time_s - without.time_s - 8.0 * model.launch_overhead_s).abs() < 1e-15);
    }

    #[test]
    fn totals_and_energy() {
        let gpu = toy_gpu();
        let model = GpuModel::default();
        let trace = one_op(elementwise(1 << 20, 0));
        let e = estimate(&trace, &gpu, &model, 10, Precision::Fp32);
        assert!((e.per_image_s * 10.0 - e.time_s).abs() < 1e-18);
        assert!((e.images_per_s * e.time_s - 10.0).abs() < 1e-9);
        assert!((e.energy_j - 100.0 * e.time_s).abs() < 1e-15);
        assert_eq!(e.basis, EstimateBasis::Roofline);
        let m = e.clone().with_measured_throughput(1000.0, gpu.board_power_w);
        assert_eq!(m.basis, EstimateBasis::Measured);
        assert!((m.time_s - 0.01).abs() < 1e-15);
        let sum: f64 = m.ops.iter().map(|o| o.time_s).sum();
        assert!((sum - m.time_s).abs() < 1e-15);
        assert!((m.energy_j - 1.0).abs() < 1e-12);
    }

    #[test]
    fn precision_names_round_trip() {
        for p in Precision::ALL {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        assert_eq!(" FP16 ".parse::<Precision>().unwrap(), Precision::Fp16);
        let e = "int8".parse::<Precision>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown precision `int8` (valid: fp32, tf32, fp16, bf16)"
        );
    }

    #[test]
    fn presets_are_present_and_consistent() {
        for &name in GPU_NAMES {
            let g = gpu_preset(name).unwrap_or_else(|| panic!("preset {name}"));
            assert_eq!(g.name, name);
            assert!(!g.source.is_empty());
            assert!(g.peak_fp32_flops > 1e12 && g.memory_bandwidth_bytes_per_s > 1e11);
            assert!(g.memory_bytes >= 8 * GIB && g.board_power_w > 100.0);
            assert!(g.peak_fp16_flops >= g.peak_fp32_flops, "{name}: fp16 < fp32");
            if let Some(tf32) = g.peak_tf32_flops {
                assert!(tf32 <= g.peak_fp16_flops, "{name}: tf32 > fp16");
                assert!(tf32 >= g.peak_fp32_flops, "{name}: tf32 < fp32");
            }
            for p in Precision::ALL {
                assert!(g.gemm_peak_flops(p) >= g.peak_fp32_flops);
            }
            let json = serde_json::to_string(&g).unwrap();
            assert_eq!(serde_json::from_str::<GpuSpec>(&json).unwrap(), g);
        }
        assert_eq!(gpu_preset("RTX-4090").unwrap().name, "rtx4090");
        assert!(gpu_preset("p100").is_none());
        let v100 = gpu_preset("v100").unwrap();
        assert_eq!(v100.gemm_peak_flops(Precision::Tf32), v100.peak_fp32_flops);
        assert_eq!(v100.gemm_peak_flops(Precision::Bf16), v100.peak_fp32_flops);
        assert_eq!(v100.gemm_peak_flops(Precision::Fp16), 125e12);
        // Newer generations are faster (bandwidth and tensor peak).
        let bw = |n: &str| gpu_preset(n).unwrap().memory_bandwidth_bytes_per_s;
        assert!(bw("v100") < bw("a100") && bw("a100") < bw("h100") && bw("h100") < bw("h200"));
    }

    #[test]
    fn model_defaults_are_valid_and_serde() {
        let m = GpuModel::default();
        m.validate().unwrap();
        let back: GpuModel = serde_json::from_str("{\"launch_overhead_s\": 0.0}").unwrap();
        assert_eq!(
            back,
            GpuModel {
                launch_overhead_s: 0.0,
                ..m
            }
        );
        assert!(serde_json::from_str::<GpuModel>("{\"gemm_eff\": 1.0}").is_err());
        let bad = GpuModel {
            memory_efficiency: 1.5,
            ..m
        };
        assert!(bad.validate().unwrap_err().to_string().contains("memory_efficiency"));
    }

    const GOOD: &str = "# DeiT throughputs\n\
        model,gpu,batch,precision,images_per_s\n\
        \n\
        deit-ti, v100, 256, fp32, 2536\n\
        # comment in between\n\
        DeiT-B,V100,256,FP32,292.0\n";

    #[test]
    fn measurements_parse_and_look_up() {
        let m = GpuMeasurements::parse(GOOD, "good.csv").unwrap();
        assert_eq!(m.len(), 2);
        // With a byte-order mark, as spreadsheets export (hardening issue reproducer),
        // before a comment or before the header.
        for text in [
            format!("\u{feff}{GOOD}"),
            format!("\u{feff}{}", &GOOD[GOOD.find('m').unwrap()..]),
        ] {
            assert_eq!(GpuMeasurements::parse(&text, "bom.csv").unwrap().len(), 2);
        }
        assert_eq!(m.entries[0].line, 4);
        assert_eq!(m.lookup("deit-ti", "v100", 256, Precision::Fp32), Some(2536.0));
        assert_eq!(m.lookup("DEIT-B", "v100", 256, Precision::Fp32), Some(292.0));
        assert_eq!(m.lookup("deit-b", "v100", 128, Precision::Fp32), None);
        assert_eq!(m.lookup("deit-b", "v100", 256, Precision::Fp16), None);
        assert_eq!(m.lookup("deit-b", "a100", 256, Precision::Fp32), None);
        // A measurement replaces the model.
        let gpu = gpu_preset("v100").unwrap();
        let trace = one_op(elementwise(1 << 20, 1 << 20));
        let model = GpuModel::default();
        let e = estimate_or_measured("deit-b", &trace, &gpu, &model, 256, Precision::Fp32, Some(&m));
        assert_eq!(e.basis, EstimateBasis::Measured);
        assert!((e.images_per_s - 292.0).abs() < 1e-9);
        let e = estimate_or_measured("gfnet-ti", &trace, &gpu, &model, 256, Precision::Fp32, Some(&m));
        assert_eq!(e.basis, EstimateBasis::Roofline);
    }

    fn parse_err(text: &str) -> (usize, usize, String) {
        match GpuMeasurements::parse(text, "m.csv").unwrap_err() {
            GpuError::Parse {
                path,
                line,
                column,
                message,
            } => {
                assert_eq!(path, "m.csv");
                (line, column, message)
            }
            other => panic!("not a parse error: {other}"),
        }
    }

    #[test]
    fn measurement_errors_name_line_and_column() {
        let h = "model,gpu,batch,precision,images_per_s\n";
        let (l, c, m) = parse_err(&format!("{h}deit-b,v100,256,fp32,fast\n"));
        assert_eq!((l, c), (2, 22), "{m}");
        assert!(m.contains("images_per_s `fast`"), "{m}");
        let (l, c, m) = parse_err(&format!("# x\n{h}deit-b,v100,256,int8,292\n"));
        assert_eq!((l, c), (3, 17));
        assert!(
            m.contains("unknown precision `int8` (valid: fp32, tf32, fp16, bf16)"),
            "{m}"
        );
        let (l, c, _) = parse_err(&format!("{h}deit-b,v100, 0,fp32,292\n"));
        assert_eq!((l, c), (2, 14));
        let (l, c, m) = parse_err(&format!("{h}deit-b,v100,256,fp32\n"));
        assert_eq!((l, c), (2, 21));
        assert!(m.contains("4 fields, expected 5"), "{m}");
        let (l, c, m) = parse_err(&format!("{h}deit-b,v100,256,fp32,292,1\n"));
        assert_eq!((l, c), (2, 26), "{m}");
        let (l, c, m) = parse_err("model,gpu,size,precision,images_per_s\n");
        assert_eq!((l, c), (1, 11));
        assert!(m.contains("`size`, expected `batch`"), "{m}");
        let (l, _, m) = parse_err(&format!("{h}a,v100,1,fp32,1\nA,V100,1,fp32,2\n"));
        assert_eq!(l, 3);
        assert!(m.contains("duplicate of line 2"), "{m}");
        let (l, c, _) = parse_err(&format!("{h}deit-b,,256,fp32,292\n"));
        assert_eq!((l, c), (2, 8));
        let (l, _, m) = parse_err("# only comments\n");
        assert_eq!(l, 1);
        assert!(m.contains("no header"), "{m}");
        let e = GpuMeasurements::load("/nonexistent/gpu.csv").unwrap_err();
        assert!(matches!(e, GpuError::Io { .. }));
        assert!(e.to_string().starts_with("/nonexistent/gpu.csv: "), "{e}");
        let shown = GpuError::Parse {
            path: "f.csv".into(),
            line: 3,
            column: 7,
            message: "bad".into(),
        };
        assert_eq!(shown.to_string(), "f.csv:3:7: bad");
    }

    #[test]
    fn shipped_measurement_file_loads() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../experiments/layers/gpu_measurements.csv"
        );
        let m = GpuMeasurements::load(path).unwrap();
        for (model, ips) in [("deit-ti", 2536.0), ("deit-s", 940.0), ("deit-b", 292.0)] {
            assert_eq!(m.lookup(model, "v100", 256, Precision::Fp32), Some(ips), "{model}");
        }
    }
}
