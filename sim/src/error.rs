//! Errors a user can cause: a machine configuration or a convolution job.

use thiserror::Error;

/// Everything in `fourf-sim` that a configuration or an input can get wrong.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SimError {
    /// A configuration value is out of its valid range.
    #[error("invalid machine setting `{key}` = {value}: {valid}")]
    InvalidConfig {
        /// Dotted path of the key, e.g. `input_slm.pitch_m`.
        key: String,
        /// The offending value as written.
        value: String,
        /// What would be valid.
        valid: String,
    },
    /// An operand of a multi-channel convolution (a map, a kernel, a count)
    /// that does not match its plan or is not finite.
    #[error("{what}: got {got}; {want}")]
    BadOperand {
        /// The operand, e.g. `kernel w[0][1]`.
        what: String,
        /// What it is.
        got: String,
        /// What would be valid.
        want: String,
    },
    /// A kernel does not fit in one frame of the machine.
    #[error("job {job}: kernel of {kernel:?} samples is larger than the machine's {frame:?} frame; use a machine with at least {kernel:?} SLM pixels")]
    KernelTooLarge {
        /// Index of the job.
        job: usize,
        /// Kernel shape `(ky, kx)`.
        kernel: (usize, usize),
        /// Frame shape `(ny, nx)`.
        frame: (usize, usize),
    },
    /// A `valid` convolution whose input is smaller than its kernel.
    #[error("job {job}: `valid` mode needs an input at least as large as the kernel, got input {input:?} and kernel {kernel:?}; use `same` or `full`")]
    InputSmallerThanKernel {
        /// Index of the job.
        job: usize,
        /// Input shape.
        input: (usize, usize),
        /// Kernel shape.
        kernel: (usize, usize),
    },
    /// A job with an empty input or kernel.
    #[error("job {job}: the {what} is empty ({shape:?}); inputs and kernels need at least one sample")]
    Empty {
        /// Index of the job.
        job: usize,
        /// `"input"` or `"kernel"`.
        what: &'static str,
        /// Its shape.
        shape: (usize, usize),
    },
    /// A non-finite sample in an input or kernel.
    #[error("job {job}: the {what} holds a non-finite value ({value}) at {index:?}")]
    NotFinite {
        /// Index of the job.
        job: usize,
        /// `"input"` or `"kernel"`.
        what: &'static str,
        /// The value.
        value: f64,
        /// Where it is `[y, x]`.
        index: (usize, usize),
    },
    /// A frame in which a tile's kept outputs are reached by another block.
    #[error("frame {frame}: the kept outputs of job {job} are overlapped by {by} (the periodic wrap included), so they would be wrong; with a fixed `guard`, widen it or use the automatic one")]
    Overlap {
        /// Index of the frame.
        frame: usize,
        /// The job whose outputs would be wrong.
        job: usize,
        /// What overlaps them.
        by: String,
    },
}

impl SimError {
    /// Shorthand for [`SimError::InvalidConfig`].
    pub fn invalid(key: impl Into<String>, value: impl std::fmt::Display, valid: impl Into<String>) -> Self {
        SimError::InvalidConfig {
            key: key.into(),
            value: value.to_string(),
            valid: valid.into(),
        }
    }
}
