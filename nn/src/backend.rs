//! Backends: where the optically mapped operations of a network run.
//!
//! - [`Backend::Digital`]: every op exact, in software (the reference).
//! - [`Backend::Optical`]: every 2-D convolution, correlation and spectral filter
//!   a model submits through [`Forward::convs`] becomes `ConvJob`s that the
//!   `fourf-sim` planner packs into frames and the simulated 4f machine executes,
//!   with all of its device and noise models; FNet's mixing
//!   ([`Forward::fourier_mix`]) runs on the machine's 2f read-out; everything
//!   else stays electronic. CNN layers ([`Forward::conv2d`], [`conv2d_batch`])
//!   are channel-tiled, so the light sums the input channels that share a frame.
//!
//! A [`Forward`] is the context of one forward pass (one image): it holds the
//! backend, a seed for the machine's random processes and the [`Trace`] of every
//! op. Each optical call draws its seed from the image seed and a call counter
//! (SplitMix64), so a run is reproducible bit for bit at any thread count.

use fourf_hw::{ConvSpec, Engine, OpKind, OpticalUse, Trace, TraceOp};
use fourf_sim::channels::direct_channel_conv;
use fourf_sim::{direct_conv, ChannelPlan, ChannelShape, ConvJob, FourF, Mode, Op, Planner, PlannerConfig, SimError};
use ndarray::{s, Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::spectral::SpectralEmulation;

/// An op that could not run.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ForwardError {
    /// The simulated machine refused the op's convolutions.
    #[error("op `{op}` on the optical backend: {source}")]
    Optical {
        /// Name of the op, e.g. `blocks.0.attn.q`.
        op: String,
        /// What the simulator said.
        source: SimError,
    },
    /// An op's operands do not fit together (on any backend).
    #[error("op `{op}`: {source}")]
    Operand {
        /// Name of the op.
        op: String,
        /// What is wrong.
        source: SimError,
    },
}

/// How the optical backend maps the ops whose optical version is a choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpticalOptions {
    /// How a global (circular) spectral filter is emulated on the linear optics
    /// (default: exact circular filtering by wrap-extended tiles).
    #[serde(default)]
    pub spectral: SpectralEmulation,
}

/// The simulated 4f machine and how ops are packed onto it.
#[derive(Debug)]
pub struct OpticalBackend {
    /// The machine.
    pub machine: FourF,
    /// How the planner packs jobs into frames.
    pub planner: PlannerConfig,
    /// Mapping choices.
    pub options: OpticalOptions,
}

/// Where the optically mapped ops run.
#[derive(Debug)]
pub enum Backend {
    /// Exact software reference.
    Digital,
    /// The simulated 4f machine.
    Optical(Box<OpticalBackend>),
}

impl Backend {
    /// The optical backend on `machine` with the default planner and options.
    pub fn optical(machine: FourF) -> Self {
        Backend::Optical(Box::new(OpticalBackend {
            machine,
            planner: PlannerConfig::default(),
            options: OpticalOptions::default(),
        }))
    }

    /// `"digital"` or `"optical"`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Digital => "digital",
            Backend::Optical(_) => "optical",
        }
    }

    /// The spectral emulation in use (the digital backend is exactly circular).
    pub fn spectral_emulation(&self) -> SpectralEmulation {
        match self {
            Backend::Digital => SpectralEmulation::Circular,
            Backend::Optical(o) => o.options.spectral,
        }
    }
}

/// A batch of 2-D convolutions submitted as one op: `pairs[i] = (input, kernel)`
/// indices, all of one input shape and one kernel shape.
#[derive(Debug, Clone)]
pub struct ConvBatch<'a> {
    /// Input maps.
    pub inputs: &'a [Array2<f64>],
    /// Kernels.
    pub kernels: &'a [Array2<f64>],
    /// `(input, kernel)` index of every job, in output order.
    pub pairs: Vec<(usize, usize)>,
    /// Padding mode.
    pub mode: Mode,
    /// Convolution or correlation.
    pub op: Op,
}

impl ConvBatch<'_> {
    /// The jobs' shape for the trace.
    pub fn spec(&self) -> ConvSpec {
        let (i0, k0) = self.pairs[0];
        let (ih, iw) = self.inputs[i0].dim();
        let (kh, kw) = self.kernels[k0].dim();
        let distinct = |f: fn(&(usize, usize)) -> usize| {
            let mut v: Vec<usize> = self.pairs.iter().map(f).collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        ConvSpec {
            jobs: self.pairs.len(),
            inputs: distinct(|p| p.0),
            kernels: distinct(|p| p.1),
            input: [ih, iw],
            kernel: [kh, kw],
            mode: self.mode.into(),
            accumulate: 1,
        }
    }
}

/// A CNN layer (`Conv2d(C_in → C_out, K, stride, padding, groups)`) as
/// [`Forward::conv2d`] and [`conv2d_batch`] run it.
///
/// On the optics the layer runs at full resolution (a 4f system has no stride),
/// each group channel-tiled ([`fourf_sim::channels`]): the light sums the input
/// channels that share a frame, the electronics add the partial sums of channel
/// groups that do not, keep every `stride`-th output and add the bias.
#[derive(Debug, Clone, Copy)]
pub struct Conv2dOp<'a> {
    /// `weights[o][j]`: the kernel of output channel `o` for input channel `j` of
    /// its group (`C_in/groups` per output channel), as PyTorch's `[C_out,
    /// C_in/groups, K, L]`.
    pub weights: &'a [Vec<Array2<f64>>],
    /// One bias per output channel, if any.
    pub bias: Option<&'a [f64]>,
    /// Groups (divides `C_in` and `C_out`).
    pub groups: usize,
    /// Stride (≥ 1).
    pub stride: usize,
    /// Padding: `same` (PyTorch's `padding = K/2` for odd `K`), `valid` or `full`.
    pub mode: Mode,
}

/// A batch run of a [`Conv2dOp`]: outputs `[image][C_out]` and, on the optics,
/// what the machine used and the relative error against the exact layer.
#[derive(Debug, Clone)]
pub struct Conv2dRun {
    /// `outputs[b][o]`.
    pub outputs: Vec<Vec<Array2<f64>>>,
    /// Frames, passes, filters and the optical share of the channel sums.
    pub optical: Option<OpticalUse>,
    /// `‖optical − exact‖/‖exact‖` over every output.
    pub relative_error: Option<f64>,
}

impl Conv2dOp<'_> {
    /// `(C_in/groups, C_out/groups)`, checked against the weights and `c_in`.
    fn per_group(&self, c_in: usize) -> Result<(usize, usize), SimError> {
        let bad = |what: &str, got: String, want: String| SimError::BadOperand {
            what: what.into(),
            got,
            want,
        };
        let c_out = self.weights.len();
        let g = self.groups;
        if g == 0 || !c_in.is_multiple_of(g) || !c_out.is_multiple_of(g) {
            return Err(bad(
                "groups",
                g.to_string(),
                format!("a divisor of C_in = {c_in} and C_out = {c_out}"),
            ));
        }
        if self.stride == 0 {
            return Err(bad("stride", "0".into(), "at least 1".into()));
        }
        if let Some(b) = self.bias.filter(|b| b.len() != c_out) {
            return Err(bad(
                "bias",
                format!("{} values", b.len()),
                format!("one per output channel ({c_out})"),
            ));
        }
        if c_out == 0 {
            return Err(bad("weights", "no output channels".into(), "at least one".into()));
        }
        if let Some((o, r)) = self
            .weights
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != c_in / g || r.is_empty())
        {
            return Err(bad(
                &format!("weights of output channel {o}"),
                format!("{} kernels", r.len()),
                format!("C_in/groups = {} (C_in = {c_in}, groups = {g})", c_in / g),
            ));
        }
        Ok((c_in / g, c_out / g))
    }
}

/// Views of columns `cols` of every row.
fn view_cols(rows: &[Vec<Array2<f64>>], cols: std::ops::Range<usize>) -> Vec<Vec<ArrayView2<'_, f64>>> {
    rows.iter()
        .map(|r| r[cols.clone()].iter().map(|m| m.view()).collect())
        .collect()
}

/// Runs `layer` on a batch `inputs[b][i]` on `backend` (exact, or channel-tiled
/// on the machine with noise seeded by `seed`): every image of the batch shares
/// the layer's frames and filters. Errors name the operand or what the machine
/// refused.
pub fn conv2d_batch(
    backend: &Backend,
    layer: &Conv2dOp,
    inputs: &[Vec<Array2<f64>>],
    seed: u64,
) -> Result<Conv2dRun, SimError> {
    let c_in = inputs.first().map_or(0, Vec::len);
    if let Some((b, r)) = inputs.iter().enumerate().find(|(_, r)| r.len() != c_in || r.is_empty()) {
        return Err(SimError::BadOperand {
            what: format!("image {b}"),
            got: format!("{} channels", r.len()),
            want: format!("the same number of channels as image 0 ({c_in}), at least one"),
        });
    }
    let (cpg, opg) = layer.per_group(c_in)?;
    // Shapes, checked alike on both backends: one non-empty map shape, one
    // non-empty kernel shape, and `valid` maps no smaller than the kernels.
    let plane_shape = |what: &str, planes: &mut dyn Iterator<Item = (String, &Array2<f64>)>| {
        let mut first: Option<(usize, usize)> = None;
        for (name, m) in planes {
            let d = m.dim();
            if d.0 == 0 || d.1 == 0 || first.is_some_and(|f| f != d) {
                return Err(SimError::BadOperand {
                    what: name,
                    got: format!("{d:?}"),
                    want: format!(
                        "every {what} non-empty and of one shape{}",
                        first.map_or(String::new(), |f| format!(" ({f:?})"))
                    ),
                });
            }
            first = Some(d);
        }
        Ok(first.unwrap_or((0, 0)))
    };
    let (h, w) = plane_shape(
        "map",
        &mut inputs.iter().enumerate().flat_map(|(b, r)| {
            r.iter()
                .enumerate()
                .map(move |(i, m)| (format!("image {b} channel {i}"), m))
        }),
    )?;
    let (kh, kw) = plane_shape(
        "kernel",
        &mut layer.weights.iter().enumerate().flat_map(|(o, r)| {
            r.iter()
                .enumerate()
                .map(move |(j, k)| (format!("kernel w[{o}][{j}]"), k))
        }),
    )?;
    if layer.mode == Mode::Valid && (h < kh || w < kw) {
        return Err(SimError::BadOperand {
            what: "maps".into(),
            got: format!("{h}×{w} with {kh}×{kw} kernels"),
            want: "`valid` needs maps at least as large as the kernels; use `same` or `full`".into(),
        });
    }
    let mut full: Vec<Vec<Array2<f64>>> = vec![Vec::with_capacity(layer.weights.len()); inputs.len()];
    let mut exact_full = Vec::new();
    let mut used: Option<OpticalUse> = None;
    for g in 0..layer.groups {
        let x = view_cols(inputs, g * cpg..(g + 1) * cpg);
        let w = view_cols(&layer.weights[g * opg..(g + 1) * opg], 0..cpg);
        let outs = match backend {
            Backend::Digital => direct_channel_conv(&x, &w, layer.mode, Op::Convolution),
            Backend::Optical(o) => {
                let (h, wd) = x.first().and_then(|r| r.first()).map_or((0, 0), |m| m.dim());
                let (kh, kw) = w.first().and_then(|r| r.first()).map_or((0, 0), |m| m.dim());
                let shape = ChannelShape {
                    batch: inputs.len(),
                    inputs: cpg,
                    outputs: opg,
                    input: [h, wd],
                    kernel: [kh, kw],
                    mode: layer.mode,
                };
                let plan = ChannelPlan::new(o.machine.frame_shape(), shape, o.planner.guard, o.planner.tile_gain)?;
                let run = plan.execute(&o.machine, &x, &w, Op::Convolution, split_seed(seed, g as u64))?;
                let [oh, ow] = shape.output();
                let results = (inputs.len() * opg * oh * ow) as u64;
                let u = OpticalUse {
                    frames: run.frames,
                    passes: run.passes,
                    exposures: run.exposures,
                    filters: plan.layout.filters(),
                    summed_optically: results * (cpg - plan.layout.groups.min(cpg)) as u64,
                    channel_sums: results * (cpg - 1) as u64,
                };
                *used.get_or_insert_with(OpticalUse::default) += u;
                exact_full.extend(
                    direct_channel_conv(&x, &w, layer.mode, Op::Convolution)
                        .into_iter()
                        .flatten(),
                );
                run.outputs
            }
        };
        for (b, o) in outs.into_iter().enumerate() {
            full[b].extend(o);
        }
    }
    let relative_error = used.map(|_| {
        // Exact outputs were gathered group by group: the same order.
        let got: Vec<Array2<f64>> = (0..layer.groups)
            .flat_map(|g| full.iter().flat_map(move |o| o[g * opg..(g + 1) * opg].iter().cloned()))
            .collect();
        relative_error(&got, &exact_full)
    });
    let st = layer.stride as isize;
    let outputs = full
        .into_iter()
        .map(|maps| {
            maps.into_iter()
                .enumerate()
                .map(|(o, m)| {
                    let mut m = m.slice(s![..;st, ..;st]).to_owned();
                    if let Some(b) = layer.bias {
                        m += b[o];
                    }
                    m
                })
                .collect()
        })
        .collect();
    Ok(Conv2dRun {
        outputs,
        optical: used,
        relative_error,
    })
}

pub use fourf_sim::rng::split_seed;

/// `‖a − b‖ / ‖b‖` over every output of an op (`‖a − b‖` when `b` is all zero):
/// the op's own relative error recorded in the trace.
pub fn relative_error(a: &[Array2<f64>], b: &[Array2<f64>]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        num += (x - y).iter().map(|v| v * v).sum::<f64>();
        den += y.iter().map(|v| v * v).sum::<f64>();
    }
    if den > 0.0 {
        (num / den).sqrt()
    } else {
        num.sqrt()
    }
}

/// The context of one forward pass: backend, seed and trace.
#[derive(Debug)]
pub struct Forward<'b> {
    backend: &'b Backend,
    seed: u64,
    calls: u64,
    trace: Trace,
}

impl<'b> Forward<'b> {
    /// A forward pass on `backend` whose optical noise derives from `seed`.
    pub fn new(backend: &'b Backend, seed: u64) -> Self {
        Self {
            backend,
            seed,
            calls: 0,
            trace: Trace::new(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &'b Backend {
        self.backend
    }

    /// The trace so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The finished trace.
    pub fn into_trace(self) -> Trace {
        self.trace
    }

    /// The trace so far, to amend the last op.
    pub(crate) fn trace_mut(&mut self) -> &mut Trace {
        &mut self.trace
    }

    /// Sets the matrix-product shape of the last recorded op (how a GPU runs it).
    pub fn set_last_gemm(&mut self, gemm: fourf_hw::Gemm) {
        if let Some(op) = self.trace.ops.last_mut() {
            op.gemm = Some(gemm);
        }
    }

    /// Records an electronic op.
    pub fn record(&mut self, op: TraceOp) {
        self.trace.push(op);
    }

    /// Runs a CNN layer on one image's channels `x` (`[C_in]` maps) and records
    /// it as op `name` ([`OpKind::Conv2d`]): its frames, filters and how much of
    /// the channel sum the light did. Outputs: the `C_out` maps.
    pub fn conv2d(
        &mut self,
        name: &str,
        layer: &Conv2dOp,
        x: &[Array2<f64>],
    ) -> Result<Vec<Array2<f64>>, ForwardError> {
        let call = self.calls;
        self.calls += 1;
        let run = conv2d_batch(self.backend, layer, &[x.to_vec()], split_seed(self.seed, call)).map_err(|source| {
            let op = name.to_string();
            let operand = matches!(
                source,
                SimError::BadOperand { .. } | SimError::Empty { .. } | SimError::InputSmallerThanKernel { .. }
            );
            match self.backend {
                Backend::Optical(_) if !operand => ForwardError::Optical { op, source },
                _ => ForwardError::Operand { op, source },
            }
        })?;
        let (c_in, c_out) = (x.len(), layer.weights.len());
        let (h, w) = x[0].dim();
        let (kh, kw) = layer.weights[0][0].dim();
        let per_group = c_in / layer.groups;
        let spec = ConvSpec {
            jobs: per_group * c_out,
            inputs: c_in,
            kernels: per_group * c_out,
            input: [h, w],
            kernel: [kh, kw],
            mode: layer.mode.into(),
            accumulate: per_group,
        };
        let out = run.outputs.into_iter().next().expect("one image");
        let (oh, ow) = out[0].dim();
        let params = per_group * c_out * kh * kw + layer.bias.map_or(0, <[f64]>::len);
        let mut op = TraceOp::electronic(name, OpKind::Conv2d, &[c_in, h, w], &[c_out, oh, ow], spec.flops());
        op.bytes += 4 * (spec.kernels * kh * kw) as u64;
        op = op.with_params(params);
        if run.optical.is_some() {
            op.engine = Engine::Optical;
        }
        op.conv = Some(spec);
        op.optical = run.optical;
        op.relative_error = run.relative_error;
        self.trace.push(op);
        Ok(out)
    }

    /// FNet's token mixing `Re(DFT₂(x))` of `x` `[tokens, hidden]` as op `name`
    /// ([`OpKind::FourierMix`]): exact on the digital backend; on the optical
    /// backend one frame of the machine's 2f read-out (`FourF::lens_dft`, a camera
    /// in the Fourier plane), traced with its frame, passes and error, unless the
    /// map is larger than the input SLM or the detection is intensity (then
    /// electronic, as the latency model places it). Either way the trace carries
    /// the lens transform the optics would run.
    pub fn fourier_mix(&mut self, name: &str, x: ArrayView2<f32>) -> Result<Array2<f32>, ForwardError> {
        let (n, d) = x.dim();
        let mut op = TraceOp::electronic(
            name,
            OpKind::FourierMix,
            &[n, d],
            &[n, d],
            fourf_hw::layers::fourier_mix_flops(n * d),
        );
        op.lens = Some(fourf_hw::LensSpec { maps: 1, map: [n, d] });
        let call = self.calls;
        self.calls += 1;
        let y = match self.backend {
            // A map larger than the input SLM, or a camera that cannot read a real
            // part (intensity detection), runs it electronically (as the latency
            // model places it).
            Backend::Optical(o) if o.machine.lens_dft_runs((n, d)) => {
                use rand::SeedableRng;
                let map = x.mapv(f64::from);
                let mut rng = rand::rngs::StdRng::seed_from_u64(split_seed(self.seed, call));
                let run = o
                    .machine
                    .lens_dft(map.view(), &mut rng)
                    .map_err(|source| ForwardError::Optical {
                        op: name.to_string(),
                        source,
                    })?;
                let exact = crate::spectral::fourier_mix(map.view());
                op.engine = Engine::Optical;
                op.optical = Some(OpticalUse {
                    frames: 1,
                    passes: run.passes,
                    exposures: run.exposures,
                    filters: 0,
                    ..OpticalUse::default()
                });
                op.relative_error = Some(relative_error(std::slice::from_ref(&run.values), &[exact]));
                run.values.mapv(|v| v as f32)
            }
            _ => crate::spectral::fourier_mix(x),
        };
        self.trace.push(op);
        Ok(y)
    }

    /// Runs a batch of convolutions on the backend (exact direct convolution, or
    /// the planner and machine) and records it as op `name` of `kind` with
    /// `params` learnable parameters. Outputs are in `batch.pairs` order.
    ///
    /// # Panics
    /// If the batch is empty or its jobs differ in shape.
    pub fn convs(
        &mut self,
        name: &str,
        kind: OpKind,
        batch: &ConvBatch,
        params: usize,
    ) -> Result<Vec<Array2<f64>>, ForwardError> {
        assert!(!batch.pairs.is_empty(), "Forward::convs `{name}`: no jobs");
        let spec = batch.spec();
        for &(i, k) in &batch.pairs {
            assert!(
                batch.inputs[i].dim() == (spec.input[0], spec.input[1])
                    && batch.kernels[k].dim() == (spec.kernel[0], spec.kernel[1]),
                "Forward::convs `{name}`: jobs of different shapes"
            );
        }
        let jobs: Vec<ConvJob> = batch
            .pairs
            .iter()
            .map(|&(i, k)| ConvJob::new(batch.inputs[i].view(), batch.kernels[k].view(), batch.mode, batch.op))
            .collect();
        let call = self.calls;
        self.calls += 1;
        let exact = || -> Vec<Array2<f64>> {
            jobs.iter()
                .map(|j| direct_conv(j.input, j.kernel, j.mode, j.op))
                .collect()
        };
        let (outputs, engine, optical, error) = match self.backend {
            Backend::Digital => (exact(), Engine::Electronic, None, None),
            Backend::Optical(o) => {
                let wrap = |source| ForwardError::Optical {
                    op: name.to_string(),
                    source,
                };
                let plan = Planner::new(o.machine.frame_shape(), o.planner.clone())
                    .plan(&jobs)
                    .map_err(wrap)?;
                let filters = plan.stats().filters;
                let run = plan
                    .execute(&o.machine, &jobs, split_seed(self.seed, call))
                    .map_err(wrap)?;
                let used = OpticalUse {
                    frames: run.frames,
                    passes: run.passes,
                    exposures: run.exposures,
                    filters,
                    ..OpticalUse::default()
                };
                let error = relative_error(&run.outputs, &exact());
                (run.outputs, Engine::Optical, Some(used), Some(error))
            }
        };
        let [oh, ow] = spec.output();
        let mut op = TraceOp::electronic(
            name,
            kind,
            &[spec.inputs, spec.input[0], spec.input[1]],
            &[spec.jobs, oh, ow],
            spec.flops(),
        );
        op.bytes += 4 * (spec.kernels * spec.kernel[0] * spec.kernel[1]) as u64;
        op = op.with_params(params);
        op.engine = engine;
        op.conv = Some(spec);
        op.optical = optical;
        op.relative_error = error;
        self.trace.push(op);
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fourf_sim::MachineConfig;
    use ndarray::Array2;

    #[test]
    fn seeds_differ_per_call_and_repeat() {
        assert_ne!(split_seed(1, 0), split_seed(1, 1));
        assert_ne!(split_seed(1, 0), split_seed(2, 0));
        assert_eq!(split_seed(5, 7), split_seed(5, 7));
    }

    #[test]
    fn optical_convs_match_digital_and_are_traced() {
        let inputs: Vec<Array2<f64>> = (0..5)
            .map(|t| Array2::from_shape_fn((8, 8), |(y, x)| ((y * 8 + x + t) as f64 * 0.37).sin()))
            .collect();
        let kernels = vec![Array2::from_shape_fn((3, 3), |(y, x)| {
            (y as f64 - x as f64) * 0.25 + 0.1
        })];
        let batch = ConvBatch {
            inputs: &inputs,
            kernels: &kernels,
            pairs: (0..5).map(|i| (i, 0)).collect(),
            mode: Mode::Same,
            op: Op::Correlation,
        };
        let digital = Backend::Digital;
        let optical = Backend::optical(FourF::new(MachineConfig::ideal(32)).unwrap());
        let mut fd = Forward::new(&digital, 0);
        let mut fo = Forward::new(&optical, 0);
        let a = fd.convs("x", OpKind::SharedConv, &batch, 9).unwrap();
        let b = fo.convs("x", OpKind::SharedConv, &batch, 9).unwrap();
        for (a, b) in a.iter().zip(&b) {
            let err = (a - b).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(err < 1e-10, "optical vs digital {err}");
        }
        let (td, to) = (&fd.trace().ops[0], &fo.trace().ops[0]);
        assert_eq!(td.engine, Engine::Electronic);
        assert_eq!(to.engine, Engine::Optical);
        assert_eq!(td.flops, to.flops);
        assert_eq!(td.input_shape, vec![5, 8, 8]);
        assert!(to.relative_error.unwrap() < 1e-12 && td.relative_error.is_none());
        let used = to.optical.unwrap();
        assert!(used.frames >= 1 && used.filters == 1, "{used:?}");
        assert_eq!(td.params, 9);
    }
}

#[cfg(test)]
mod conv2d_tests {
    use super::*;
    use fourf_sim::MachineConfig;

    fn maps(n: usize, shape: (usize, usize), seed: usize) -> Vec<Array2<f64>> {
        (0..n)
            .map(|t| {
                Array2::from_shape_fn(shape, |(y, x)| {
                    (((y * 31 + x * 17 + t * 7 + seed) % 23) as f64 / 11.0) - 1.0
                })
            })
            .collect()
    }

    /// The layer as PyTorch defines it, written out: `out[o][y][x] = bias[o] +
    /// Σ_j Σ_dy Σ_dx x[g·cpg + j][s·y + dy − p][s·x + dx − p]·w[o][j][dy][dx]`
    /// (cross-correlation, zero padding `p`), for odd kernels in `same` mode.
    fn pytorch_conv2d(
        x: &[Array2<f64>],
        w: &[Vec<Array2<f64>>],
        bias: &[f64],
        groups: usize,
        stride: usize,
    ) -> Vec<Array2<f64>> {
        let (h, wd) = x[0].dim();
        let k = w[0][0].nrows();
        let p = (k / 2) as isize;
        let (cpg, opg) = (x.len() / groups, w.len() / groups);
        let (oh, ow) = (h.div_ceil(stride), wd.div_ceil(stride));
        (0..w.len())
            .map(|o| {
                let g = o / opg;
                Array2::from_shape_fn((oh, ow), |(y, xx)| {
                    let mut acc = bias[o];
                    for j in 0..cpg {
                        for dy in 0..k {
                            for dx in 0..k {
                                let (sy, sx) = (
                                    (stride * y) as isize + dy as isize - p,
                                    (stride * xx) as isize + dx as isize - p,
                                );
                                if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < wd {
                                    acc += x[g * cpg + j][[sy as usize, sx as usize]] * w[o][j][[dy, dx]];
                                }
                            }
                        }
                    }
                    acc
                })
            })
            .collect()
    }

    /// Conv2d with groups, stride and bias on both backends equals the layer
    /// written out; the trace says it ran optically and how much of the sum the
    /// light did; the frames equal the latency model's closed form.
    #[test]
    fn conv2d_matches_the_layer_written_out_on_both_backends() {
        let (c_in, c_out, groups, stride) = (4, 6, 2, 2);
        let x = maps(c_in, (9, 9), 1);
        // PyTorch correlates; the op convolves, so the weights it is given are
        // the flipped kernels.
        let w: Vec<Vec<Array2<f64>>> = (0..c_out).map(|o| maps(c_in / groups, (3, 3), 5 + o)).collect();
        let flipped: Vec<Vec<Array2<f64>>> = w
            .iter()
            .map(|r| r.iter().map(|k| k.slice(s![..;-1, ..;-1]).to_owned()).collect())
            .collect();
        let bias: Vec<f64> = (0..c_out).map(|o| 0.1 * o as f64).collect();
        let layer = Conv2dOp {
            weights: &flipped,
            bias: Some(&bias),
            groups,
            stride,
            mode: Mode::Same,
        };
        let want = pytorch_conv2d(&x, &w, &bias, groups, stride);
        let digital = Backend::Digital;
        let optical = Backend::optical(FourF::new(MachineConfig::ideal(64)).unwrap());
        for backend in [&digital, &optical] {
            let mut fwd = Forward::new(backend, 3);
            let got = fwd.conv2d("conv1", &layer, &x).unwrap();
            assert_eq!(got.len(), c_out);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.dim(), (5, 5));
                let e = (g - w).iter().fold(0.0f64, |m, v| m.max(v.abs()));
                assert!(e < 1e-12, "{}: {e}", backend.name());
            }
            let op = &fwd.trace().ops[0];
            assert_eq!((op.kind, op.output_shape.clone()), (OpKind::Conv2d, vec![c_out, 5, 5]));
            assert_eq!(op.params, c_out * 2 * 9 + c_out);
            if let Some(u) = op.optical {
                assert_eq!(op.engine, Engine::Optical);
                // Two channels per group share a frame: the light does every sum.
                assert_eq!(u.optical_sum_fraction(), Some(1.0), "{u:?}");
                let closed = fourf_hw::frames_for(op.conv.as_ref().unwrap(), true, 1, [64, 64]);
                assert_eq!((u.frames, u.filters), (closed.frames, closed.filters));
            }
        }
        // A batch shares the layer's frames: no more per image than at batch 1,
        // and the count the latency model gives for that batch.
        let batch: Vec<Vec<Array2<f64>>> = (0..5).map(|b| maps(c_in, (9, 9), 40 + b)).collect();
        let run = conv2d_batch(&optical, &layer, &batch, 0).unwrap();
        let one = conv2d_batch(&optical, &layer, &batch[..1], 0).unwrap();
        let (u, u1) = (run.optical.unwrap(), one.optical.unwrap());
        assert!(u.frames <= 5 * u1.frames, "{u:?} vs {u1:?}");
        let mut fwd = Forward::new(&digital, 0);
        fwd.conv2d("c", &layer, &batch[0]).unwrap();
        let closed = fourf_hw::frames_for(fwd.trace().ops[0].conv.as_ref().unwrap(), true, 5, [64, 64]);
        assert_eq!((u.frames, u.filters), (closed.frames, closed.filters));
        assert!(run.relative_error.unwrap() < 1e-12);
        for (b, outs) in run.outputs.iter().enumerate() {
            let want = pytorch_conv2d(&batch[b], &w, &bias, groups, stride);
            for (g, w) in outs.iter().zip(&want) {
                assert!((g - w).iter().all(|v| v.abs() < 1e-12), "image {b}");
            }
        }
    }

    #[test]
    fn conv2d_operand_errors_name_the_operand() {
        let x = maps(4, (6, 6), 0);
        let w: Vec<Vec<Array2<f64>>> = (0..3).map(|o| maps(4, (3, 3), o)).collect();
        let layer = |groups, stride| Conv2dOp {
            weights: &w,
            bias: None,
            groups,
            stride,
            mode: Mode::Same,
        };
        let mut fwd = Forward::new(&Backend::Digital, 0);
        let e = fwd.conv2d("c", &layer(2, 1), &x).unwrap_err().to_string();
        assert!(e.contains("groups") && e.contains("C_out = 3"), "{e}");
        let e = fwd.conv2d("c", &layer(1, 0), &x).unwrap_err().to_string();
        assert!(e.contains("stride"), "{e}");
        let e = fwd.conv2d("c", &layer(1, 1), &x[..3]).unwrap_err().to_string();
        assert!(
            e.contains("weights of output channel 0") && e.contains("C_in = 3"),
            "{e}"
        );
        // Found in review: shapes the digital backend used to panic on are errors
        // on both backends.
        let optical = Backend::optical(FourF::new(MachineConfig::ideal(32)).unwrap());
        let mut mixed = x.clone();
        mixed[2] = Array2::zeros((4, 4));
        for backend in [&Backend::Digital, &optical] {
            let mut fwd = Forward::new(backend, 0);
            let e = fwd.conv2d("c", &layer(1, 1), &mixed).unwrap_err().to_string();
            assert!(e.contains("image 0 channel 2") && e.contains("one shape"), "{e}");
            let small = maps(4, (2, 2), 0);
            let valid = Conv2dOp {
                mode: Mode::Valid,
                ..layer(1, 1)
            };
            let e = fwd.conv2d("c", &valid, &small).unwrap_err().to_string();
            assert!(e.starts_with("op `c`:") && e.contains("`valid` needs maps"), "{e}");
        }
    }
}
