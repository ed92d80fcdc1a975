//! Latency and energy of a 4f machine running a network's [`Trace`].
//!
//! ## Frames
//! Every op with a [`ConvSpec`] runs on the optics; [`frames_for`] counts its
//! frames on a machine of `frame` pixels for a batch of `B` images with the
//! packing rules of `fourf-sim`'s planner, in closed form:
//! - **Input tiling** (jobs sharing a kernel): along an axis a tile of `t` input
//!   samples convolved with a `k`-sample kernel spreads over `l = t + k − 1`
//!   samples of which the job keeps `[a, b)` (`full`: `[0, l)`, `same`:
//!   `[⌊(k−1)/2⌋, …+t)`, `valid`: `[k−1, t)`); equal tiles repeat every
//!   `max(l − a, b)` samples (a guard of `k − 1` in `full`, `⌈(k−1)/2⌉` in `same`,
//!   none in `valid`), across the periodic frame edge too, so a frame holds
//!   `⌊N_y/p_y⌋·⌊N_x/p_x⌋` tiles. Kernels that are weights are shared by the whole
//!   batch; kernels that are activations (attention keys) are per image.
//! - **Kernel tiling**: every kernel used by a single job, several kernels per
//!   input (a classifier correlating one map with every class kernel, a CNN layer's
//!   `C_out` kernels per input channel, at batch 1): each input's kernels tile the
//!   kernel plane, `t = k`, `l = n + k − 1`, one frame per input and `fit` kernels.
//! - **Cross tiling**: `n` kernels that each take the same `m` inputs (attention
//!   scores: every query with every key of a head; a shared convolution's kernels
//!   over a batch of maps). Inputs sit in bands of `nk` slot rows, kernels one slot
//!   row apart in the kernel plane, so pair `(i, k)` lands in its own slot: a frame
//!   holds `cols·⌊rows/nk⌋` inputs × `nk` kernels, `nk` chosen for the fewest
//!   frames `⌈n/nk⌉·⌈m/(cols·⌊rows/nk⌋)⌉`, then the fewest filters. Used when
//!   `nk > 1` (otherwise it is input tiling).
//! - **Diagonal pairing**: `g ≥ 2` kernel groups of `m` jobs each, every job with
//!   its own input (GFNet's per-channel filters: `g` channels, `m` images), when
//!   one kernel per frame would leave slots empty: `nk` kernels one slot row apart
//!   share a filter and the frame's `cols·⌊rows/nk⌋` input slots, `q` inputs per
//!   kernel, each wanted with its own kernel only; `(nk, q)` chosen for the fewest
//!   frames `⌈g/nk⌉·⌈m/q⌉`, then the fewest filters. `nk = 1` is input tiling.
//! - **Channel tiling** (CNN layers, `accumulate > 1` with weight kernels): each
//!   of the layer's groups of `accumulate` input channels is laid out by
//!   `fourf_sim::channel_layout`, the rule the simulator executes — input channels
//!   in a block of slots, kernels at `c_o − a_i`, so the channel sum lands at
//!   `c_o` done by the light; several output channels and images per frame; input
//!   channels that do not fit split into groups whose partial sums
//!   ([`FrameUse::partials`] per result) the co-processor adds.
//! - An input larger than a frame is cut into overlap-save blocks of at most
//!   `N − k + 1` outputs per axis, one block per frame (an upper bound: the planner
//!   may pack small remainder blocks together).
//! - **Lens transforms** (an op with a [`LensSpec`], FNet's mixing): one map per
//!   frame read by a camera in the Fourier plane ([`lens_frames`]), no filter; a
//!   map larger than the frame, or a machine with intensity detection (which
//!   cannot read a real part), runs it on the co-processor.
//!
//! ## Time
//! One optical pass of a frame takes
//! `period = max(1/input_rate, exposures·max(exposure, readout), link)` when the
//! machine is pipelined (the next frame loads while the camera reads out) and the
//! sum of the three otherwise, with `link = pixels·bits/link_rate` the host→SLM
//! transfer. A frame takes `passes_per_frame` passes (signed inputs in two
//! passes, DMD bit planes). Each new Fourier-plane filter costs `1/filter_rate`
//! more (the filter must settle before exposing). The electronic co-processor runs
//! every other op as a roofline (`max(flops/F, bytes/W) + launch`) and the
//! accumulation of optical results (`partials − 1` additions per result, reading
//! `partials` values per result from the camera).
//!
//! ## Energy
//! The laser, both SLMs and the camera draw their electrical power for the optical
//! time; the co-processor its power for the electronic time.

use serde::{Deserialize, Serialize};

use crate::trace::{ConvSpec, LensSpec, OpKind, Trace};

/// The electronic co-processor beside the optics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coprocessor {
    /// Achievable FLOP/s.
    pub flops_per_s: f64,
    /// Achievable memory bandwidth, bytes/s.
    pub bytes_per_s: f64,
    /// Fixed cost per op, seconds.
    pub launch_s: f64,
    /// Electrical power while busy, watts.
    pub power_w: f64,
}

/// Timing and power of a 4f machine, as the latency model needs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpticalTiming {
    /// Name, for reports.
    pub name: String,
    /// Input SLM pixels `[y, x]` (the frame).
    pub frame: [usize; 2],
    /// Input SLM patterns per second (one pass each; for a DMD the binary pattern
    /// rate, with bit planes counted in `passes_per_frame`).
    pub input_rate_hz: f64,
    /// Filter SLM refresh rate: a new Fourier-plane filter costs `1/filter_rate_hz`.
    pub filter_rate_hz: f64,
    /// Passes per frame (2 for signed inputs split in two; × bit planes on a DMD).
    pub passes_per_frame: f64,
    /// Camera exposures per pass (2 for balanced homodyne).
    pub exposures_per_pass: f64,
    /// Exposure time, seconds.
    pub exposure_s: f64,
    /// Camera read-out time per exposure, seconds.
    pub readout_s: f64,
    /// Host → input SLM link, bits/s.
    pub link_bits_per_s: f64,
    /// Bits per input pixel on the link.
    pub link_bits_per_pixel: f64,
    /// Whether loading, exposure and read-out of consecutive frames overlap.
    pub pipelined: bool,
    /// Electrical power of the laser, watts.
    pub laser_power_w: f64,
    /// Electrical power of the input SLM and its driver, watts.
    pub input_slm_power_w: f64,
    /// Electrical power of the filter SLM(s), watts.
    pub filter_slm_power_w: f64,
    /// Electrical power of the camera, watts.
    pub camera_power_w: f64,
    /// The electronics beside the optics.
    pub coprocessor: Coprocessor,
    /// Whether a camera in the Fourier plane can read a field's real part
    /// (coherent or balanced-homodyne detection, not intensity): ops of lens
    /// transforms (FNet's mixing) run on the optics only then.
    #[serde(default = "yes")]
    pub reads_fourier_plane: bool,
}

fn yes() -> bool {
    true
}

/// Frames an op needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameUse {
    /// How the op's jobs are laid out in a frame.
    pub tiling: Tiling,
    /// Slot pitch `[y, x]` in pixels: a tile plus its guard band, as the tiling
    /// places it (the frame for overlap-save blocks).
    pub slot: [usize; 2],
    /// Frames (input SLM layouts).
    pub frames: usize,
    /// Fourier-plane filters programmed.
    pub filters: usize,
    /// Tiles that fit one frame (0 when inputs are split over frames).
    pub tiles_per_frame: usize,
    /// Partial results the camera delivers per result, added electronically:
    /// `accumulate` when every convolution is read out on its own, the number of
    /// input-channel groups when channel tiling sums channels optically.
    pub partials: usize,
}

/// The packing a frame of an op uses (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tiling {
    /// Input tiles sharing one kernel.
    #[default]
    Input,
    /// Kernel tiles sharing one input.
    Kernel,
    /// Inputs × kernels, every pair wanted.
    Cross,
    /// Several kernels per frame, each with its own inputs.
    Diagonal,
    /// Input channels summed optically at each output channel.
    Channel,
    /// An input larger than a frame, in overlap-save blocks.
    Blocks,
    /// One map per frame, its Fourier transform read at the Fourier plane.
    Lens,
}

impl Tiling {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Tiling::Input => "input",
            Tiling::Kernel => "kernel",
            Tiling::Cross => "cross",
            Tiling::Diagonal => "diagonal",
            Tiling::Channel => "channel",
            Tiling::Blocks => "blocks",
            Tiling::Lens => "lens",
        }
    }
}

/// Channel tiling of a CNN layer (`accumulate > 1`, weight kernels): the layer's
/// `g = inputs/accumulate` groups of `accumulate` input and `jobs/(accumulate·g)`
/// output channels, each planned by `fourf_sim::channel_layout` for the whole
/// batch (the simulator's own layout rule). `None` when one map does not fit a
/// frame.
fn channel_tiled(spec: &ConvSpec, batch: usize, frame: [usize; 2]) -> Option<FrameUse> {
    let per_group = spec.accumulate;
    let groups = spec.inputs / per_group.max(1);
    if per_group < 2
        || groups == 0
        || !spec.inputs.is_multiple_of(per_group)
        || !spec.jobs.is_multiple_of(per_group * groups)
    {
        return None;
    }
    let shape = fourf_sim::ChannelShape {
        batch,
        inputs: per_group,
        outputs: spec.jobs / per_group / groups,
        input: spec.input,
        kernel: spec.kernel,
        mode: spec.mode.into(),
    };
    let l = fourf_sim::channel_layout((frame[0], frame[1]), &shape, None)?;
    Some(FrameUse {
        tiling: Tiling::Channel,
        slot: l.pitch,
        frames: groups.saturating_mul(l.frames()),
        filters: groups.saturating_mul(l.filters()),
        tiles_per_frame: l.channels_per_frame() * l.outputs_per_frame() * l.images_per_frame(),
        partials: l.groups,
    })
}

/// Distance between equal tiles along one axis (the planner's automatic guard).
fn pitch(l: usize, a: usize, b: usize) -> usize {
    (l - a.min(l)).max(b)
}

/// Tile slots per axis `[y, x]`. Input and kernel tiles both spread over
/// `l = n + k − 1` samples and keep `[a, b)` of them, so one pitch serves every
/// layout.
fn grid(spec: &ConvSpec, frame: [usize; 2]) -> [usize; 2] {
    let slot = slot_pitch(spec);
    std::array::from_fn(|ax| frame[ax] / slot[ax])
}

/// The slot pitch `[y, x]` of a tile and its guard band.
fn slot_pitch(spec: &ConvSpec) -> [usize; 2] {
    std::array::from_fn(|ax| {
        let (n, k) = (spec.input[ax], spec.kernel[ax]);
        let (a, b) = spec.mode.window(n, k);
        pitch(n + k - 1, a, b).max(1)
    })
}

/// Tiles per frame.
fn per_frame(spec: &ConvSpec, frame: [usize; 2]) -> usize {
    grid(spec, frame).iter().fold(1usize, |a, &g| a.saturating_mul(g))
}

/// Kernels per cross-tiled frame for `m` inputs × `n` kernels on `rows × cols`
/// slots: inputs in bands of `nk` slot rows, kernels one slot row apart, so a frame
/// holds `cols·⌊rows/nk⌋` inputs and `nk` kernels. The fewest frames
/// `⌈n/nk⌉·⌈m/(cols·⌊rows/nk⌋)⌉`, then the fewest filters (largest `nk`).
fn cross_kernels_per_frame(m: usize, n: usize, rows: usize, cols: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return None;
    }
    (1..=n.min(rows))
        .map(|nk| {
            let frames = n
                .div_ceil(nk)
                .saturating_mul(m.div_ceil(cols.saturating_mul(rows / nk)));
            (frames, std::cmp::Reverse(nk))
        })
        .min()
        .map(|(_, nk)| nk.0)
}

/// Diagonal pairing of `g` kernel groups of `m` jobs each on `rows × cols` slots:
/// `nk` kernels per frame one slot row apart, the frame's `cols·⌊rows/nk⌋` input
/// slots shared among them (`q` inputs per kernel). The `(nk, q)` with the fewest
/// frames `⌈g/nk⌉·⌈m/q⌉`, then the fewest filters; `nk = 1` is input tiling.
fn grouped_kernels_per_frame(g: usize, m: usize, rows: usize, cols: usize) -> Option<(usize, usize)> {
    if rows == 0 || cols == 0 || m == 0 || g == 0 {
        return None;
    }
    (1..=g.min(rows))
        .filter_map(|nk| {
            let q = (cols.saturating_mul(rows / nk) / nk).min(m);
            (q > 0).then(|| {
                let frames = g.div_ceil(nk).saturating_mul(m.div_ceil(q));
                ((frames, g.div_ceil(nk)), (nk, q))
            })
        })
        .min_by_key(|&(cost, _)| cost)
        .map(|(_, nq)| nq)
}

/// Frames of `spec` for a batch of `batch` images on a `frame` of pixels
/// (see the module docs). `kernels_are_weights`: the kernels are the same for every
/// image of the batch.
pub fn frames_for(spec: &ConvSpec, kernels_are_weights: bool, batch: usize, frame: [usize; 2]) -> FrameUse {
    let batch = batch.max(1);
    if kernels_are_weights {
        if let Some(used) = channel_tiled(spec, batch, frame) {
            return used;
        }
    }
    let partials = spec.accumulate.max(1);
    let per_kernel = spec.jobs.div_ceil(spec.kernels.max(1));
    let groups = if kernels_are_weights {
        spec.kernels
    } else {
        spec.kernels * batch
    };
    let jobs_per_group = if kernels_are_weights {
        per_kernel * batch
    } else {
        per_kernel
    };
    // Every kernel used once: the kernels of each input share its frames (kernel
    // tiling), when an input has more than one.
    let kernels_per_input = spec.jobs.div_ceil(spec.inputs.max(1));
    // Cross tiling: sets of `n` kernels that each take the same `m` inputs.
    let (m, n) = (jobs_per_group, kernels_per_input);
    if m >= 2 && n >= 2 {
        let [rows, cols] = grid(spec, frame);
        if let Some(nk) = cross_kernels_per_frame(m, n, rows, cols).filter(|&nk| nk > 1) {
            let sets = groups / n;
            let per = cols * (rows / nk);
            return FrameUse {
                tiling: Tiling::Cross,
                slot: slot_pitch(spec),
                frames: sets * n.div_ceil(nk) * m.div_ceil(per),
                filters: sets * n.div_ceil(nk),
                tiles_per_frame: per * nk,
                partials,
            };
        }
    }
    if jobs_per_group == 1 && kernels_per_input > 1 {
        let fit = per_frame(spec, frame);
        if fit >= 1 {
            let inputs = if kernels_are_weights {
                spec.inputs
            } else {
                spec.inputs * batch
            };
            let frames = inputs * kernels_per_input.div_ceil(fit);
            return FrameUse {
                tiling: Tiling::Kernel,
                slot: slot_pitch(spec),
                frames,
                filters: frames,
                tiles_per_frame: fit,
                partials,
            };
        }
    }
    let fit = per_frame(spec, frame);
    if fit >= 1 {
        // Diagonal pairing: the kernels of several groups share a frame when one
        // group alone would leave slots empty.
        let [rows, cols] = grid(spec, frame);
        if let Some((nk, q)) = grouped_kernels_per_frame(groups, jobs_per_group, rows, cols).filter(|&(nk, _)| nk > 1) {
            return FrameUse {
                tiling: Tiling::Diagonal,
                slot: slot_pitch(spec),
                frames: groups.div_ceil(nk).saturating_mul(jobs_per_group.div_ceil(q)),
                filters: groups.div_ceil(nk),
                tiles_per_frame: nk * q,
                partials,
            };
        }
        return FrameUse {
            tiling: Tiling::Input,
            slot: slot_pitch(spec),
            frames: groups * jobs_per_group.div_ceil(fit),
            filters: groups,
            tiles_per_frame: fit,
            partials,
        };
    }
    // Overlap-save blocks, one per frame.
    let blocks: usize = (0..2)
        .map(|ax| {
            let (n, k) = (spec.input[ax], spec.kernel[ax]);
            let (a, b) = spec.mode.window(n, k);
            let c = (frame[ax] + 1).saturating_sub(k).max(1);
            (b - a).div_ceil(c)
        })
        .fold(1, usize::saturating_mul);
    FrameUse {
        tiling: Tiling::Blocks,
        slot: frame,
        frames: groups.saturating_mul(jobs_per_group).saturating_mul(blocks),
        filters: groups,
        tiles_per_frame: 0,
        partials,
    }
}

/// Frames of an op of lens transforms for a batch of `batch` images on a machine
/// of `frame` pixels: one per map, no filter. `None` when a map does not fit the
/// frame (the op then runs on the co-processor).
pub fn lens_frames(spec: &LensSpec, batch: usize, frame: [usize; 2]) -> Option<FrameUse> {
    spec.fits(frame).then(|| FrameUse {
        tiling: Tiling::Lens,
        slot: spec.map,
        frames: spec.maps.saturating_mul(batch.max(1)),
        filters: 0,
        tiles_per_frame: 1,
        partials: 1,
    })
}

/// Whether the latency model treats the kernels of `kind` as weights shared by a
/// batch (everything but attention scores, whose kernels are the keys).
pub fn kernels_are_weights(kind: OpKind) -> bool {
    kind != OpKind::AttentionScores
}

/// What a break-even rate changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateKnob {
    /// The input SLM's pattern rate alone.
    InputSlm,
    /// Both SLMs: input patterns and filter refresh at the same rate.
    Slms,
    /// The whole machine: every pass takes `1/rate` (SLMs, camera and link keep
    /// pace) and a filter change `1/rate`.
    Machine,
}

/// Where an op runs in the projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// On the 4f machine (plus the electronic accumulation of its outputs).
    Optical,
    /// On the co-processor.
    Electronic,
}

/// One op of the projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpticalOpRow {
    /// Op name.
    pub name: String,
    /// Op kind.
    pub kind: OpKind,
    /// Where it runs.
    pub placement: Placement,
    /// How its frames are tiled (optical ops).
    #[serde(default)]
    pub tiling: Option<Tiling>,
    /// Slot pitch `[y, x]` in pixels, a tile and its guard band as the tiling
    /// places it (optical ops): what sets how many tiles a frame holds.
    #[serde(default)]
    pub slot_px: Option<[usize; 2]>,
    /// Frames for the batch.
    pub frames: usize,
    /// Filters programmed for the batch.
    pub filters: usize,
    /// Passes for the batch.
    pub passes: f64,
    /// Camera exposures for the batch.
    pub exposures: f64,
    /// Optical time for the batch, seconds.
    pub optical_s: f64,
    /// Electronic time for the batch, seconds.
    pub electronic_s: f64,
    /// Energy for the batch, joules.
    pub energy_j: f64,
}

/// The projection of a trace on a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpticalEstimate {
    /// Machine name.
    pub machine: String,
    /// Images per batch.
    pub batch: usize,
    /// Time of one optical pass, seconds.
    pub pass_period_s: f64,
    /// What limits the pass period: `input_slm`, `camera` or `link`.
    pub limited_by: String,
    /// Every op.
    pub ops: Vec<OpticalOpRow>,
    /// Frames for the batch.
    pub frames: usize,
    /// Filters programmed for the batch.
    pub filters: usize,
    /// Optical time for the batch, seconds.
    pub optical_s: f64,
    /// Time spent waiting for filter changes (part of `optical_s`), seconds.
    pub filter_s: f64,
    /// Electronic time for the batch, seconds.
    pub electronic_s: f64,
    /// Total time for the batch, seconds (optics and electronics in sequence).
    pub total_s: f64,
    /// Total time per image, seconds.
    pub per_image_s: f64,
    /// Energy per image, joules.
    pub energy_per_image_j: f64,
}

impl OpticalTiming {
    /// The pass period and what limits it.
    pub fn pass_period(&self) -> (f64, &'static str) {
        let slm = 1.0 / self.input_rate_hz;
        let camera = self.exposures_per_pass
            * if self.pipelined {
                self.exposure_s.max(self.readout_s)
            } else {
                self.exposure_s + self.readout_s
            };
        let pixels = (self.frame[0] * self.frame[1]) as f64;
        let link = pixels * self.link_bits_per_pixel / self.link_bits_per_s;
        let worst = [(slm, "input_slm"), (camera, "camera"), (link, "link")]
            .into_iter()
            .fold((0.0, "input_slm"), |m, p| if p.0 > m.0 { p } else { m });
        if self.pipelined {
            worst
        } else {
            (slm + camera + link, worst.1)
        }
    }

    fn electronic_time(&self, flops: f64, bytes: f64) -> f64 {
        let c = &self.coprocessor;
        (flops / c.flops_per_s).max(bytes / c.bytes_per_s) + c.launch_s
    }

    /// Projects `trace` (one image) for a batch of `batch` images: ops with a
    /// convolution spec, and lens transforms that fit the frame on a machine that
    /// [reads the Fourier plane](OpticalTiming::reads_fourier_plane), on the optics;
    /// the rest on the co-processor.
    pub fn estimate(&self, trace: &Trace, batch: usize) -> OpticalEstimate {
        self.estimate_with(trace, batch, None)
    }

    /// [`OpticalTiming::estimate`] with the electronic ops' times for the batch
    /// given per op (`electronic_s[i]` for op `i`, e.g. a GPU's roofline times when
    /// a GPU is the co-processor); entries of optical ops are ignored.
    ///
    /// # Panics
    /// If `electronic_s` does not have one entry per op.
    pub fn estimate_with(&self, trace: &Trace, batch: usize, electronic_s: Option<&[f64]>) -> OpticalEstimate {
        if let Some(e) = electronic_s {
            assert_eq!(e.len(), trace.ops.len(), "one electronic time per op");
        }
        let batch = batch.max(1);
        let b = batch as f64;
        let (period, limited_by) = self.pass_period();
        let filter_switch = 1.0 / self.filter_rate_hz;
        let optics_w = self.laser_power_w + self.input_slm_power_w + self.filter_slm_power_w + self.camera_power_w;
        let mut rows = Vec::with_capacity(trace.ops.len());
        for (i, op) in trace.ops.iter().enumerate() {
            // Frames and results for the batch of an op the optics runs.
            let optical = match (&op.conv, &op.lens) {
                (Some(spec), _) => {
                    let [oh, ow] = spec.output();
                    let results = spec.jobs as f64 * oh as f64 * ow as f64 * b / spec.accumulate.max(1) as f64;
                    Some((
                        frames_for(spec, kernels_are_weights(op.kind), batch, self.frame),
                        results,
                    ))
                }
                (None, Some(lens)) if self.reads_fourier_plane => {
                    lens_frames(lens, batch, self.frame).map(|used| (used, lens.outputs() as f64 * b))
                }
                (None, _) => None,
            };
            let row = match optical {
                Some((used, results)) => {
                    let passes = used.frames as f64 * self.passes_per_frame;
                    let optical_s = passes * period + used.filters as f64 * filter_switch;
                    // Reading `partials` partial results per result out of the
                    // camera frames and adding them.
                    let read = results * used.partials as f64;
                    let electronic_s = self.electronic_time(read - results, 4.0 * read);
                    OpticalOpRow {
                        name: op.name.clone(),
                        kind: op.kind,
                        placement: Placement::Optical,
                        tiling: Some(used.tiling),
                        slot_px: Some(used.slot),
                        frames: used.frames,
                        filters: used.filters,
                        passes,
                        exposures: passes * self.exposures_per_pass,
                        optical_s,
                        electronic_s,
                        energy_j: optical_s * optics_w + electronic_s * self.coprocessor.power_w,
                    }
                }
                None => {
                    let activations = op.bytes.saturating_sub((op.params as u64).saturating_mul(4)) as f64;
                    let bytes = activations * b + 4.0 * op.params as f64;
                    let electronic_s = match electronic_s {
                        Some(e) => e[i],
                        None => self.electronic_time(op.flops as f64 * b, bytes),
                    };
                    OpticalOpRow {
                        name: op.name.clone(),
                        kind: op.kind,
                        placement: Placement::Electronic,
                        tiling: None,
                        slot_px: None,
                        frames: 0,
                        filters: 0,
                        passes: 0.0,
                        exposures: 0.0,
                        optical_s: 0.0,
                        electronic_s,
                        energy_j: electronic_s * self.coprocessor.power_w,
                    }
                }
            };
            rows.push(row);
        }
        let frames = rows.iter().fold(0usize, |a, r| a.saturating_add(r.frames));
        let filters: usize = rows.iter().fold(0, |a, r| a.saturating_add(r.filters));
        let optical_s: f64 = rows.iter().map(|r| r.optical_s).sum();
        let electronic_s: f64 = rows.iter().map(|r| r.electronic_s).sum();
        let energy: f64 = rows.iter().map(|r| r.energy_j).sum();
        let total_s = optical_s + electronic_s;
        OpticalEstimate {
            machine: self.name.clone(),
            batch,
            pass_period_s: period,
            limited_by: limited_by.to_string(),
            ops: rows,
            frames,
            filters,
            optical_s,
            filter_s: filters as f64 * filter_switch,
            electronic_s,
            total_s,
            per_image_s: total_s / b,
            energy_per_image_j: energy / b,
        }
    }

    /// This machine with `knob` set to `rate` (see [`RateKnob`]).
    pub fn at_rate(&self, knob: RateKnob, rate: f64) -> OpticalTiming {
        let mut m = self.clone();
        m.input_rate_hz = rate;
        if knob != RateKnob::InputSlm {
            m.filter_rate_hz = rate;
        }
        if knob == RateKnob::Machine {
            // Every pass takes 1/rate: the camera's exposures and read-outs and the
            // link keep pace.
            // Pipelined: each stage takes 1/rate; unpipelined stages add up, so each
            // gets a third of it (the camera's share split between exposure and
            // read-out).
            let pixels = (self.frame[0] * self.frame[1]) as f64;
            let stages = if self.pipelined { 1.0 } else { 3.0 };
            let t = 1.0 / (stages * rate * self.exposures_per_pass);
            m.input_rate_hz = stages * rate;
            m.exposure_s = if self.pipelined { t } else { t / 2.0 };
            m.readout_s = if self.pipelined { t } else { t / 2.0 };
            m.link_bits_per_s = stages * pixels * self.link_bits_per_pixel * rate;
        }
        m
    }

    /// The rate at which the machine's time per batch equals `target_s`, with
    /// `knob` choosing what runs at that rate (see [`RateKnob`]). `None` when no
    /// rate reaches it (what the knob leaves fixed — camera, link, filter changes,
    /// electronics — takes longer on its own). `electronic_s` as in
    /// [`OpticalTiming::estimate_with`].
    pub fn break_even_rate(
        &self,
        trace: &Trace,
        batch: usize,
        target_s: f64,
        knob: RateKnob,
        electronic_s: Option<&[f64]>,
    ) -> Option<f64> {
        let time_at = |rate: f64| {
            self.at_rate(knob, rate)
                .estimate_with(trace, batch, electronic_s)
                .total_s
        };
        if time_at(f64::INFINITY) >= target_s {
            return None;
        }
        // Time is non-increasing in the rate: bracket, then bisect on log(rate).
        let (mut lo, mut hi) = (1e-3f64, 1e3f64);
        while time_at(hi) > target_s {
            hi *= 1e3;
            if hi > 1e30 {
                return None;
            }
        }
        if time_at(lo) <= target_s {
            return Some(lo);
        }
        for _ in 0..200 {
            let mid = (lo * hi).sqrt();
            if time_at(mid) > target_s {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi / lo < 1.0 + 1e-9 {
                break;
            }
        }
        Some(hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{ConvMode, Trace, TraceOp};

    fn spec(jobs: usize, inputs: usize, kernels: usize, n: usize, k: usize, mode: ConvMode) -> ConvSpec {
        ConvSpec {
            jobs,
            inputs,
            kernels,
            input: [n, n],
            kernel: [k, k],
            mode,
            accumulate: 1,
        }
    }

    /// The slot pitch a report shows is the tiling's: the kept window and its guard
    /// (none for `valid`, `⌈(k−1)/2⌉` for `same`, `k − 1` for `full`), or the
    /// channel layout's pitch for a CNN layer, whatever padding the network asked
    /// its layer to keep.
    #[test]
    fn the_slot_follows_the_tiling() {
        let frame = [256, 256];
        for (mode, slot) in [(ConvMode::Valid, 28), (ConvMode::Same, 29), (ConvMode::Full, 30)] {
            let u = frames_for(&spec(8, 8, 1, 28, 3, mode), true, 1, frame);
            assert_eq!((u.tiling, u.slot), (Tiling::Input, [slot, slot]), "{mode:?}");
        }
        // A CNN layer: 16 → 32 channels of 24², 3×3 same.
        let layer = ConvSpec {
            accumulate: 16,
            ..spec(16 * 32, 16, 16 * 32, 24, 3, ConvMode::Same)
        };
        let u = frames_for(&layer, true, 2, frame);
        let shape = fourf_sim::ChannelShape {
            batch: 2,
            inputs: 16,
            outputs: 32,
            input: [24, 24],
            kernel: [3, 3],
            mode: fourf_sim::Mode::Same,
        };
        let l = fourf_sim::channel_layout((256, 256), &shape, None).unwrap();
        assert_eq!((u.tiling, u.slot), (Tiling::Channel, l.pitch));
        // Bigger than the frame: one block per frame.
        let big = frames_for(&spec(1, 1, 1, 300, 5, ConvMode::Same), true, 1, frame);
        assert_eq!((big.tiling, big.slot), (Tiling::Blocks, frame));
    }

    fn timing() -> OpticalTiming {
        OpticalTiming {
            name: "test".into(),
            frame: [1024, 1024],
            input_rate_hz: 1000.0,
            filter_rate_hz: 100.0,
            passes_per_frame: 1.0,
            exposures_per_pass: 1.0,
            exposure_s: 1e-4,
            readout_s: 2e-4,
            link_bits_per_s: 1e12,
            link_bits_per_pixel: 8.0,
            pipelined: true,
            laser_power_w: 1.0,
            input_slm_power_w: 5.0,
            filter_slm_power_w: 5.0,
            camera_power_w: 10.0,
            coprocessor: Coprocessor {
                flops_per_s: 1e12,
                bytes_per_s: 1e11,
                launch_s: 1e-6,
                power_w: 50.0,
            },
            reads_fourier_plane: true,
        }
    }

    fn conv_trace(s: ConvSpec, kind: OpKind) -> Trace {
        let mut op = TraceOp::electronic(
            "conv",
            kind,
            &[s.inputs, s.input[0], s.input[1]],
            &[s.jobs, 1, 1],
            s.flops(),
        );
        op.conv = Some(s);
        Trace { ops: vec![op] }
    }

    #[test]
    fn tiles_follow_the_guard_band_arithmetic() {
        let frame = [128, 128];
        // 16×16 tiles, 5×5 kernel: pitch 16 + 4 (full), 16 + 2 (same), 16 (valid).
        for (mode, p) in [(ConvMode::Full, 20), (ConvMode::Same, 18), (ConvMode::Valid, 16)] {
            let s = spec(1000, 1000, 1, 16, 5, mode);
            let fit = (128 / p) * (128 / p);
            let u = frames_for(&s, true, 1, frame);
            assert_eq!(u.tiles_per_frame, fit, "{mode:?}");
            assert_eq!(u.frames, 1000usize.div_ceil(fit), "{mode:?}");
            assert_eq!(u.filters, 1);
            // Twice the jobs, twice the frames once frames are full.
            let s2 = spec(2 * fit * 10, 2 * fit * 10, 1, 16, 5, mode);
            assert_eq!(frames_for(&s2, true, 1, frame).frames, 20);
        }
        // Shared weights: a batch packs into the same filters.
        let s = spec(17, 17, 1, 8, 3, ConvMode::Valid);
        assert_eq!(frames_for(&s, true, 1, frame).frames, 1);
        assert_eq!(frames_for(&s, true, 64, frame).frames, (17 * 64usize).div_ceil(256));
        // Keys as kernels: one group per key and image.
        let scores = spec(17 * 17, 17, 17, 6, 6, ConvMode::Valid);
        // Cross tiling: 6×6 tiles repeat every 6 samples, 21 slots a side, so the 17
        // queries × 17 keys of an image fit one frame and one filter.
        let u = frames_for(&scores, false, 4, frame);
        assert_eq!((u.frames, u.filters), (4, 4));
        // One input, ten class kernels at batch 1: kernel tiling. Valid 8×8 against
        // 8×8 keeps [7, 8) of l = 15, so kernels repeat every max(15 − 7, 8) = 8.
        let head = spec(10, 1, 10, 8, 8, ConvMode::Valid);
        assert_eq!(
            frames_for(&head, true, 1, frame),
            FrameUse {
                tiling: Tiling::Kernel,
                slot: [8, 8],
                frames: 1,
                filters: 1,
                tiles_per_frame: 256,
                partials: 1,
            }
        );
        // At batch 64, 64 maps × 10 kernels cross-tile on 16 × 16 slots: 4 kernels
        // per frame leave 4 bands of 16 maps, so ⌈10/4⌉·⌈64/64⌉ = 3 frames.
        assert_eq!(frames_for(&head, true, 64, frame).frames, 3);
        // An input larger than the frame: overlap-save blocks of N − k + 1 outputs.
        let big = spec(1, 1, 1, 300, 5, ConvMode::Same);
        assert_eq!(frames_for(&big, true, 1, frame).frames, 9);
    }

    #[test]
    fn doubling_the_slm_rate_halves_time_only_when_slm_bound() {
        let trace = conv_trace(spec(100_000, 100_000, 1, 16, 5, ConvMode::Same), OpKind::SharedConv);
        let mut m = timing();
        m.filter_rate_hz = 1e12;
        m.coprocessor.launch_s = 0.0;
        m.coprocessor.flops_per_s = 1e30;
        m.coprocessor.bytes_per_s = 1e30;
        // SLM-bound: 1 ms per pattern against a 0.2 ms camera.
        let t1 = m.estimate(&trace, 1);
        assert_eq!(t1.limited_by, "input_slm");
        m.input_rate_hz *= 2.0;
        let t2 = m.estimate(&trace, 1);
        assert!(
            (t1.total_s / t2.total_s - 2.0).abs() < 1e-9,
            "{} {}",
            t1.total_s,
            t2.total_s
        );
        // Camera-bound: at 10 kHz the 0.2 ms read-out limits; doubling changes nothing.
        m.input_rate_hz = 10_000.0;
        let c1 = m.estimate(&trace, 1);
        assert_eq!(c1.limited_by, "camera");
        m.input_rate_hz = 20_000.0;
        let c2 = m.estimate(&trace, 1);
        assert_eq!(c1.total_s, c2.total_s);
        // Break-even: the rate at which the time equals a target, and none below the
        // camera floor.
        m.input_rate_hz = 1000.0;
        let target = t1.total_s / 4.0;
        let r = m.break_even_rate(&trace, 1, target, RateKnob::InputSlm, None).unwrap();
        assert!((r / 4000.0 - 1.0).abs() < 1e-6, "{r}");
        assert!(m
            .break_even_rate(&trace, 1, c1.total_s * 0.99, RateKnob::InputSlm, None)
            .is_none());
        // With a slow filter, only a faster filter too can reach a target below the
        // filter-change time.
        m.filter_rate_hz = 10.0;
        let slow = m.estimate(&trace, 1);
        assert!((slow.filter_s - 0.1).abs() < 1e-12);
        assert!(m.break_even_rate(&trace, 1, 0.05, RateKnob::InputSlm, None).is_none());
        let both = m
            .break_even_rate(&trace, 1, slow.total_s / 2.0, RateKnob::Slms, None)
            .unwrap();
        let at = m.at_rate(RateKnob::Slms, both);
        assert!((at.estimate(&trace, 1).total_s / (slow.total_s / 2.0) - 1.0).abs() < 1e-6);
        // The whole machine at rate r: every pass takes exactly 1/r.
        let r = 12_345.0;
        let (p, _) = m.at_rate(RateKnob::Machine, r).pass_period();
        assert!((p * r - 1.0).abs() < 1e-12, "{p}");
        // 32 frames and one filter change, each 1/r: r = 33/target.
        let target = c1.total_s * 0.01;
        let rate = m.break_even_rate(&trace, 1, target, RateKnob::Machine, None).unwrap();
        assert!((rate * target / 33.0 - 1.0).abs() < 1e-6, "{rate}");
    }

    #[test]
    fn unpipelined_periods_add_and_filters_cost_a_refresh() {
        let mut m = timing();
        m.pipelined = false;
        let (p, _) = m.pass_period();
        let link = 1024.0 * 1024.0 * 8.0 / 1e12;
        assert!((p - (1e-3 + 3e-4 + link)).abs() < 1e-15);
        let trace = conv_trace(spec(4, 4, 4, 16, 3, ConvMode::Same), OpKind::SharedConv);
        // Four jobs, each with its own map and kernel: paired diagonally in one
        // frame with one filter of the four kernels.
        let e = m.estimate(&trace, 1);
        assert_eq!((e.frames, e.filters), (1, 1));
        assert!((e.filter_s - 0.01).abs() < 1e-12);
        assert!((e.optical_s - (p + 0.01)).abs() < 1e-12);
        // Homodyne: two exposures per pass.
        m.exposures_per_pass = 2.0;
        assert!((m.pass_period().0 - (1e-3 + 2.0 * 3e-4 + link)).abs() < 1e-15);
    }

    #[test]
    fn electronic_ops_are_a_roofline_on_the_coprocessor() {
        let m = timing();
        // 1 GFLOP on 1 TFLOP/s: 1 ms; its 8 MB at 100 GB/s: 80 µs → compute-bound.
        let op = TraceOp::electronic("lin", OpKind::Linear, &[1000, 1000], &[1000, 1000], 1_000_000_000);
        let e = m.estimate(&Trace { ops: vec![op] }, 1);
        assert!((e.electronic_s - (1e-3 + 1e-6)).abs() < 1e-12);
        assert_eq!(e.optical_s, 0.0);
        assert!((e.energy_per_image_j - e.electronic_s * 50.0).abs() < 1e-12);
    }

    /// A lens transform takes one frame per map and image and no filter; it runs
    /// on the co-processor when the map does not fit or the camera cannot read a
    /// real part.
    #[test]
    fn lens_transforms_take_a_frame_per_map_where_the_machine_can_read_them() {
        let mut op = TraceOp::electronic("mix", OpKind::FourierMix, &[49, 64], &[49, 64], 1000);
        op.lens = Some(LensSpec { maps: 1, map: [49, 64] });
        let trace = Trace { ops: vec![op] };
        let m = timing();
        let e = m.estimate(&trace, 8);
        let row = &e.ops[0];
        assert_eq!(
            (row.placement, row.tiling, row.frames, row.filters),
            (Placement::Optical, Some(Tiling::Lens), 8, 0)
        );
        assert!((row.optical_s - 8.0 * m.pass_period().0).abs() < 1e-15);
        let intensity = OpticalTiming {
            reads_fourier_plane: false,
            ..m.clone()
        };
        let small = OpticalTiming { frame: [48, 64], ..m };
        for t in [intensity, small] {
            let row = &t.estimate(&trace, 8).ops[0];
            assert_eq!((row.placement, row.frames), (Placement::Electronic, 0));
        }
    }
}
