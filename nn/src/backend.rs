//! Backends: where the optically mapped operations of a network run.
//!
//! - [`Backend::Digital`]: every op exact, in software (the reference).
//! - [`Backend::Optical`]: every 2-D convolution, correlation and spectral filter
//!   a model submits through [`Forward::convs`] becomes `ConvJob`s that the
//!   `fourf-sim` planner packs into frames and the simulated 4f machine executes,
//!   with all of its device and noise models; everything else stays electronic.
//!
//! A [`Forward`] is the context of one forward pass (one image): it holds the
//! backend, a seed for the machine's random processes and the [`Trace`] of every
//! op. Each optical call draws its seed from the image seed and a call counter
//! (SplitMix64), so a run is reproducible bit for bit at any thread count.

use fourf_hw::{ConvMode, ConvSpec, Engine, OpKind, OpticalUse, Trace, TraceOp};
use fourf_sim::{direct_conv, ConvJob, FourF, Mode, Op, Planner, PlannerConfig, SimError};
use ndarray::Array2;
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
            mode: match self.mode {
                Mode::Valid => ConvMode::Valid,
                Mode::Same => ConvMode::Same,
                Mode::Full => ConvMode::Full,
            },
            accumulate: 1,
        }
    }
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
