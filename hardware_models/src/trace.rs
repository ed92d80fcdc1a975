//! The `Trace`: every operation of one network run, with its shapes, work and the
//! engine that ran it — the seam between the networks (`fourf-nn`) and the
//! latency and energy models of this crate.
//!
//! Conventions:
//! - `flops` counts a multiply–add as 2 FLOPs and is the work of the exact digital
//!   computation of the op (the work a GPU would do), whichever engine ran it.
//! - `bytes` is the minimum traffic of the op in f32: inputs read, weights read and
//!   outputs written once.
//! - For an op made of 2-D convolutions, [`ConvSpec`] describes the convolutions so
//!   that a latency model can re-plan them for another machine; [`OpticalUse`]
//!   records what the simulated machine actually used when the op ran optically.

use serde::{Deserialize, Serialize};

/// What an operation computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Patch or image embedding (a strided convolution, a linear projection, or a
    /// transposed convolution).
    Embedding,
    /// Fully connected layer.
    Linear,
    /// 2-D convolutions with kernels shared across token maps (ConvShareViT).
    SharedConv,
    /// Attention scores: dot products of queries and keys (as valid correlations on
    /// the optics, as a matrix product electronically).
    AttentionScores,
    /// Attention-weighted sum of values (token mixing).
    AttentionMix,
    /// Global spectral filter (GFNet, SpectFormer).
    GlobalFilter,
    /// Parameter-free Fourier mixing (FNet).
    FourierMix,
    /// Layer normalisation.
    LayerNorm,
    /// Element-wise activation (GELU).
    Activation,
    /// Softmax.
    Softmax,
    /// Element-wise addition (residuals, biases, positional embeddings, sums of
    /// channels or heads).
    Add,
    /// Pooling of tokens into one vector.
    Pool,
    /// A multi-channel 2-D convolution (CNN layer): `C_in·C_out` single-channel
    /// convolutions, summed over the inputs.
    Conv2d,
}

impl OpKind {
    /// The snake_case name (as in JSON).
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Embedding => "embedding",
            OpKind::Linear => "linear",
            OpKind::SharedConv => "shared_conv",
            OpKind::AttentionScores => "attention_scores",
            OpKind::AttentionMix => "attention_mix",
            OpKind::GlobalFilter => "global_filter",
            OpKind::FourierMix => "fourier_mix",
            OpKind::LayerNorm => "layer_norm",
            OpKind::Activation => "activation",
            OpKind::Softmax => "softmax",
            OpKind::Add => "add",
            OpKind::Pool => "pool",
            OpKind::Conv2d => "conv2d",
        }
    }
}

/// Which engine ran an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Digital electronics (the exact reference, or the electronic part of an
    /// optical machine).
    Electronic,
    /// The 4f machine.
    Optical,
}

/// Padding mode of the 2-D convolutions of an op (as `scipy`/`fourf-sim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvMode {
    /// Only fully overlapping outputs.
    Valid,
    /// The input's size.
    Same,
    /// Every output the kernel touches.
    Full,
}

/// The simulator's padding modes are the trace's, one for one.
impl From<fourf_sim::Mode> for ConvMode {
    fn from(mode: fourf_sim::Mode) -> Self {
        match mode {
            fourf_sim::Mode::Valid => ConvMode::Valid,
            fourf_sim::Mode::Same => ConvMode::Same,
            fourf_sim::Mode::Full => ConvMode::Full,
        }
    }
}

impl From<ConvMode> for fourf_sim::Mode {
    fn from(mode: ConvMode) -> Self {
        match mode {
            ConvMode::Valid => fourf_sim::Mode::Valid,
            ConvMode::Same => fourf_sim::Mode::Same,
            ConvMode::Full => fourf_sim::Mode::Full,
        }
    }
}

impl ConvMode {
    /// The kept window `[start, end)` of the full output along one axis for an
    /// input of `n` and a kernel of `k` samples (as `fourf-sim`'s `Mode::window`;
    /// `valid` expects `n ≥ k`). Saturating, so that a trace read from a file with
    /// empty or huge sizes gives an empty or clamped window, never an overflow.
    pub fn window(self, n: usize, k: usize) -> (usize, usize) {
        let k1 = k.saturating_sub(1);
        let (start, end) = match self {
            ConvMode::Full => (0, n.saturating_add(k1)),
            ConvMode::Same => (k1 / 2, (k1 / 2).saturating_add(n)),
            ConvMode::Valid => (k1, n),
        };
        (start, end.max(start))
    }
}

/// The 2-D convolutions an op consists of, enough to plan them onto any machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvSpec {
    /// Number of 2-D convolutions (jobs).
    pub jobs: usize,
    /// Number of distinct input maps among them.
    pub inputs: usize,
    /// Number of distinct kernels among them (Fourier-plane masks needed).
    pub kernels: usize,
    /// Input map `[h, w]` of each job.
    pub input: [usize; 2],
    /// Kernel `[h, w]` of each job.
    pub kernel: [usize; 2],
    /// Padding mode.
    pub mode: ConvMode,
    /// How many job outputs are summed electronically into each result (`C_in` for
    /// a CNN layer's channel sum; 1 when every job is its own result).
    #[serde(default = "one")]
    pub accumulate: usize,
}

fn one() -> usize {
    1
}

impl ConvSpec {
    /// Output `[h, w]` of each job.
    pub fn output(&self) -> [usize; 2] {
        let one = |n: usize, k: usize| {
            let (a, b) = self.mode.window(n, k);
            b.saturating_sub(a)
        };
        [one(self.input[0], self.kernel[0]), one(self.input[1], self.kernel[1])]
    }

    /// Multiply–adds of the direct convolutions, times 2.
    pub fn flops(&self) -> u64 {
        let [oh, ow] = self.output();
        // Every output of a valid convolution uses the whole kernel; for the other
        // modes count the exact overlap.
        let macs_1d = |n: usize, k: usize, out: usize| -> u64 {
            match self.mode {
                ConvMode::Valid => (out * k) as u64,
                ConvMode::Full => (n * k) as u64,
                ConvMode::Same => {
                    let (start, end) = self.mode.window(n, k);
                    (start..end)
                        .map(|o| {
                            let lo = (o + 1).saturating_sub(k);
                            let hi = o.min(n - 1);
                            (hi + 1).saturating_sub(lo) as u64
                        })
                        .sum()
                }
            }
        };
        let my = macs_1d(self.input[0], self.kernel[0], oh);
        let mx = macs_1d(self.input[1], self.kernel[1], ow);
        (2 * self.jobs as u64).saturating_mul(my).saturating_mul(mx)
    }
}

/// The matrix products an op is, on a GPU: `count` independent products of an
/// `m × k` by a `k × n` matrix per image (e.g. `count` = heads for attention
/// scores). The GPU model uses the shape for its efficiency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gemm {
    /// Independent products per image.
    pub count: usize,
    /// Rows of the result (per image; a batch multiplies the rows of products
    /// whose weights are shared, see `shared_weights`).
    pub m: usize,
    /// Columns of the result.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Whether the right-hand matrix is a weight shared by all images (linear
    /// layers: a batch stacks rows, `m·B`), or activations of each image (attention:
    /// a batch multiplies `count`).
    pub shared_weights: bool,
}

/// What the 4f machine used for an op.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpticalUse {
    /// Frames (SLM loads of input and filter).
    pub frames: usize,
    /// Optical passes (frames × passes per frame for signed or bit-plane schemes).
    pub passes: usize,
    /// Camera exposures.
    pub exposures: usize,
    /// Fourier-plane filters programmed.
    pub filters: usize,
    /// Additions of a channel sum (a CNN layer's `Σ_i x_i ⊛ w[o][i]`) that the
    /// light did, over all outputs (0 for ops without a channel sum).
    #[serde(default)]
    pub summed_optically: u64,
    /// Additions of those channel sums in all, optical and electronic:
    /// `summed_optically / channel_sums` is the optical share.
    #[serde(default)]
    pub channel_sums: u64,
}

impl OpticalUse {
    /// The share of the channel sums done by the light, if the op has any.
    pub fn optical_sum_fraction(&self) -> Option<f64> {
        (self.channel_sums > 0).then(|| self.summed_optically as f64 / self.channel_sums as f64)
    }
}

impl std::ops::AddAssign for OpticalUse {
    fn add_assign(&mut self, o: Self) {
        self.frames += o.frames;
        self.passes += o.passes;
        self.exposures += o.exposures;
        self.filters += o.filters;
        self.summed_optically = self.summed_optically.saturating_add(o.summed_optically);
        self.channel_sums = self.channel_sums.saturating_add(o.channel_sums);
    }
}

/// Lens Fourier transforms read at the Fourier plane (a 2f read-out): FNet's
/// token mixing `Re(DFT₂)` of a `[tokens, hidden]` map is one map per image.
/// Maps on one input SLM would superpose in the Fourier plane, so each takes a
/// frame of its own; no filter is programmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LensSpec {
    /// Maps per image.
    pub maps: usize,
    /// Map shape `[n, d]` in SLM pixels.
    pub map: [usize; 2],
}

impl LensSpec {
    /// Values read per image.
    pub fn outputs(&self) -> usize {
        self.maps.saturating_mul(self.map[0]).saturating_mul(self.map[1])
    }

    /// Whether a map fits a frame of `frame` pixels.
    pub fn fits(&self, frame: [usize; 2]) -> bool {
        self.map[0] <= frame[0] && self.map[1] <= frame[1]
    }
}

/// One operation of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceOp {
    /// Dotted name, e.g. `blocks.3.attn.scores`.
    pub name: String,
    /// What it computes.
    pub kind: OpKind,
    /// Which engine ran it.
    pub engine: Engine,
    /// Shape of the (main) input.
    pub input_shape: Vec<usize>,
    /// Shape of the output.
    pub output_shape: Vec<usize>,
    /// Learnable parameters the op reads.
    pub params: usize,
    /// Work of the exact digital computation (multiply–add = 2).
    pub flops: u64,
    /// Minimum f32 memory traffic.
    pub bytes: u64,
    /// The convolutions the op consists of, if it maps onto the optics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv: Option<ConvSpec>,
    /// The lens Fourier transforms the op consists of, if it maps onto a 2f
    /// read-out (FNet's mixing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lens: Option<LensSpec>,
    /// The matrix products the op is on a GPU, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gemm: Option<Gemm>,
    /// What the machine used, when it ran optically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optical: Option<OpticalUse>,
    /// When it ran optically: ‖optical − exact‖ / ‖exact‖ over the op's outputs,
    /// against the exact convolutions of the same inputs (the op's own error, not
    /// the error accumulated from earlier ops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_error: Option<f64>,
}

impl TraceOp {
    /// An electronic op; `bytes` is computed from the shapes and `params` as f32
    /// traffic.
    pub fn electronic(name: impl Into<String>, kind: OpKind, input: &[usize], output: &[usize], flops: u64) -> Self {
        Self {
            name: name.into(),
            kind,
            engine: Engine::Electronic,
            input_shape: input.to_vec(),
            output_shape: output.to_vec(),
            params: 0,
            flops,
            bytes: 4u64.saturating_mul(product(input).saturating_add(product(output)) as u64),
            conv: None,
            lens: None,
            gemm: None,
            optical: None,
            relative_error: None,
        }
    }

    /// Whether the op has an optical version (convolutions or lens transforms).
    pub fn maps_to_optics(&self) -> bool {
        self.conv.is_some() || self.lens.is_some()
    }

    /// With the matrix-product shape of the op.
    pub fn with_gemm(mut self, gemm: Gemm) -> Self {
        self.gemm = Some(gemm);
        self
    }

    /// With `params` learnable parameters (replacing any earlier count; their f32
    /// reads are part of `bytes`).
    pub fn with_params(mut self, params: usize) -> Self {
        let f32s = |n: usize| 4u64.saturating_mul(n as u64);
        self.bytes = self
            .bytes
            .saturating_sub(f32s(self.params))
            .saturating_add(f32s(params));
        self.params = params;
        self
    }
}

fn product(shape: &[usize]) -> usize {
    shape.iter().fold(1, |a, &d| a.saturating_mul(d))
}

/// Every operation of one forward pass (one image), in execution order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The ops.
    pub ops: Vec<TraceOp>,
}

/// Totals of a trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceTotals {
    /// Number of ops.
    pub ops: usize,
    /// Ops run optically.
    pub optical_ops: usize,
    /// All FLOPs.
    pub flops: u64,
    /// FLOPs of the ops run optically.
    pub optical_flops: u64,
    /// All bytes.
    pub bytes: u64,
    /// Machine use of the optical ops.
    pub optical: OpticalUse,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an op.
    pub fn push(&mut self, op: TraceOp) {
        self.ops.push(op);
    }

    /// Sums over all ops.
    pub fn totals(&self) -> TraceTotals {
        let mut t = TraceTotals {
            ops: self.ops.len(),
            ..Default::default()
        };
        for op in &self.ops {
            t.flops = t.flops.saturating_add(op.flops);
            t.bytes = t.bytes.saturating_add(op.bytes);
            if op.engine == Engine::Optical {
                t.optical_ops += 1;
                t.optical_flops = t.optical_flops.saturating_add(op.flops);
            }
            if let Some(o) = op.optical {
                t.optical += o;
            }
        }
        t
    }

    /// Fraction of the FLOPs that ran on the optics (0 for an empty trace).
    pub fn optical_fraction(&self) -> f64 {
        let t = self.totals();
        if t.flops == 0 {
            0.0
        } else {
            t.optical_flops as f64 / t.flops as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct count of multiply–adds of one 2-D job by looping over outputs and
    /// kernel taps, the independent reference for `ConvSpec::flops`.
    fn brute_macs(n: [usize; 2], k: [usize; 2], mode: ConvMode) -> u64 {
        let window = |n: usize, k: usize| match mode {
            ConvMode::Full => (0, n + k - 1),
            ConvMode::Same => ((k - 1) / 2, (k - 1) / 2 + n),
            ConvMode::Valid => (k - 1, n),
        };
        let (y0, y1) = window(n[0], k[0]);
        let (x0, x1) = window(n[1], k[1]);
        let mut macs = 0;
        for oy in y0..y1 {
            for ox in x0..x1 {
                for ky in 0..k[0] {
                    for kx in 0..k[1] {
                        let (my, mx) = (oy as isize - ky as isize, ox as isize - kx as isize);
                        if my >= 0 && mx >= 0 && (my as usize) < n[0] && (mx as usize) < n[1] {
                            macs += 1;
                        }
                    }
                }
            }
        }
        macs
    }

    #[test]
    fn conv_flops_match_brute_force() {
        for mode in [ConvMode::Valid, ConvMode::Same, ConvMode::Full] {
            for (n, k) in [([8, 8], [3, 3]), ([7, 5], [4, 2]), ([6, 6], [6, 6]), ([5, 9], [1, 4])] {
                let spec = ConvSpec {
                    jobs: 3,
                    inputs: 3,
                    kernels: 1,
                    input: n,
                    kernel: k,
                    mode,
                    accumulate: 1,
                };
                assert_eq!(spec.flops(), 2 * 3 * brute_macs(n, k, mode), "{mode:?} {n:?} {k:?}");
            }
        }
        let valid = ConvSpec {
            jobs: 1,
            inputs: 1,
            kernels: 1,
            input: [8, 8],
            kernel: [8, 8],
            mode: ConvMode::Valid,
            accumulate: 1,
        };
        assert_eq!(valid.output(), [1, 1]);
        assert_eq!(valid.flops(), 128);
    }

    #[test]
    fn totals_split_optical_and_electronic() {
        let mut t = Trace::new();
        t.push(TraceOp::electronic("a", OpKind::LayerNorm, &[4, 8], &[4, 8], 100).with_params(16));
        assert_eq!(t.ops[0].bytes, 4 * (32 + 32 + 16));
        let mut op = TraceOp::electronic("b", OpKind::SharedConv, &[4, 8, 8], &[4, 8, 8], 300);
        op.engine = Engine::Optical;
        op.optical = Some(OpticalUse {
            frames: 2,
            passes: 4,
            exposures: 8,
            filters: 1,
            ..OpticalUse::default()
        });
        t.push(op);
        let s = t.totals();
        assert_eq!((s.ops, s.optical_ops, s.flops, s.optical_flops), (2, 1, 400, 300));
        assert_eq!(s.optical.frames, 2);
        assert!((t.optical_fraction() - 0.75).abs() < 1e-12);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Trace>(&json).unwrap(), t);
    }
}
