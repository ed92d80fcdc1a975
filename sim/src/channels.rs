//! Channel tiling: multi-channel convolutions (CNN layers) whose channel sum is
//! done by the light.
//!
//! A CNN layer computes `out[b][o] = Σ_i x[b][i] ⊛ w[o][i]` for every image `b` of
//! a batch and output channel `o`. In one frame, `n = nr × nc` input channels of
//! an image sit in a block of slots `a_i = (r, c)` (`r < nr`, `c < nc`, one slot
//! per map, the planner's slot pitch apart), and the kernel `w[o][i]` sits at slot
//! `c_o − a_i` of the kernel plane. Pair `(x_i, w[o][i])` lands at
//! `a_i + c_o − a_i = c_o` for every `i`: the block at `c_o` is the sum over the
//! frame's channels, summed optically. A cross pair `(x_i, w[o][j])`, `j ≠ i`,
//! lands at `c_o + a_i − a_j`, less than `(nr, nc)` slots from `c_o`; output slots
//! `c_o = (nr − 1 + p·nr, nc − 1 + q·nc)` therefore receive their own sum only, and
//! nothing wraps around the periodic frame (`P = ⌊(R − nr + 1)/nr⌋` outputs fit
//! along an axis of `R` slots). The images of a batch share the kernel plane:
//! image `b`'s block is shifted by `A_b`, a whole number of output-lattice tiles,
//! and its outputs land at `A_b + c_o`.
//!
//! When the input channels do not all fit a frame they are split into groups
//! whose partial sums are added electronically; [`ChannelLayout::optical_fraction`]
//! says how much of the sum the light did. [`channel_layout`] chooses the block
//! (`nr × nc`), the outputs per frame and the images per frame for the fewest
//! frames, then the fewest filters, then the most channels per frame; `1 × 1` is
//! kernel tiling (one map, many kernels, every sum electronic). The latency model
//! counts frames with the same function.
//!
//! Every automatic plan is proved valid by the planner's checker
//! ([`crate::planner::Plan::verify`]'s rule, with coinciding wanted blocks summed)
//! when its frames hold at most [`VERIFY_MAX_PAIRS`] pairs; larger ones rest on
//! the construction above, which the tests check at smaller sizes.

use std::ops::Range;

use ndarray::{s, Array2, ArrayView2};

use crate::conv::{ConvJob, Mode, Op};
use crate::devices::camera::ReadRegion;
use crate::error::SimError;
use crate::machine::FourF;
use crate::planner::{check_placement, frame_seed, run_frames, spacing, Placement, Span};
use crate::readout::Rect;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Frames with more (input, kernel) pairs than this are not checked pair by pair.
pub const VERIFY_MAX_PAIRS: usize = 1 << 21;

/// The shapes of a multi-channel convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChannelShape {
    /// Images.
    pub batch: usize,
    /// Input channels `C_in`.
    pub inputs: usize,
    /// Output channels `C_out`.
    pub outputs: usize,
    /// Every input map `[H, W]`.
    pub input: [usize; 2],
    /// Every kernel `[K, L]`.
    pub kernel: [usize; 2],
    /// Padding mode of every convolution.
    pub mode: Mode,
}

impl ChannelShape {
    /// Output map `[h, w]`.
    pub fn output(&self) -> [usize; 2] {
        let (h, w) = self
            .mode
            .output_shape((self.input[0], self.input[1]), (self.kernel[0], self.kernel[1]));
        [h, w]
    }

    fn spans(&self) -> [Span; 2] {
        [0, 1].map(|ax| Span::of(self.input[ax], self.input[ax], self.kernel[ax], self.mode))
    }
}

/// How a channel-tiled convolution fills its frames (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChannelLayout {
    /// Input channels of a frame, as a block of `[rows, cols]` slots.
    pub channels: [usize; 2],
    /// Output channels of a frame per image, `[rows, cols]` of the output lattice.
    pub outputs: [usize; 2],
    /// Images of a frame, `[rows, cols]` of whole output blocks.
    pub images: [usize; 2],
    /// Slot pitch `[y, x]` in samples.
    pub pitch: [usize; 2],
    /// Input-channel groups (partial sums added electronically).
    pub groups: usize,
    /// Chunks of output channels.
    pub output_chunks: usize,
    /// Chunks of images.
    pub image_chunks: usize,
}

impl ChannelLayout {
    /// Input channels per frame.
    pub fn channels_per_frame(&self) -> usize {
        self.channels[0] * self.channels[1]
    }

    /// Output channels per frame and image.
    pub fn outputs_per_frame(&self) -> usize {
        self.outputs[0] * self.outputs[1]
    }

    /// Images per frame.
    pub fn images_per_frame(&self) -> usize {
        self.images[0] * self.images[1]
    }

    /// Frames of the whole convolution.
    pub fn frames(&self) -> usize {
        self.groups
            .saturating_mul(self.output_chunks)
            .saturating_mul(self.image_chunks)
    }

    /// Filters programmed: one per (channel group, output chunk), shared by its
    /// image chunks.
    pub fn filters(&self) -> usize {
        self.groups.saturating_mul(self.output_chunks)
    }

    /// The share of the channel sum's additions done by the light:
    /// `(C_in − groups)/(C_in − 1)` (1 when every channel shares one frame, 0 with
    /// one channel per frame; 1 for a single input channel, which has no sum).
    pub fn optical_fraction(&self, shape: &ChannelShape) -> f64 {
        if shape.inputs <= 1 {
            1.0
        } else {
            (shape.inputs - self.groups) as f64 / (shape.inputs - 1) as f64
        }
    }
}

/// Output lattice points along an axis of `slots` slots with input blocks of `n`
/// slots: `⌊(slots − n + 1)/n⌋`.
fn lattice(slots: usize, n: usize) -> usize {
    (slots + 1).saturating_sub(n) / n
}

/// The layout with the fewest frames (then filters, then the most channels per
/// frame) for `shape` on frames of `frame` samples; `None` when not even one map
/// with one kernel fits a frame. `guard` as [`crate::PlannerConfig::guard`].
pub fn channel_layout(frame: (usize, usize), shape: &ChannelShape, guard: Option<usize>) -> Option<ChannelLayout> {
    if shape.batch == 0 || shape.inputs == 0 || shape.outputs == 0 {
        return None;
    }
    for ((n, k), f) in shape.input.into_iter().zip(shape.kernel).zip([frame.0, frame.1]) {
        // Empty maps, `valid` inputs smaller than their kernels, and maps or
        // kernels larger than the frame have no layout (and no overflow below).
        if n == 0 || k == 0 || n > f || k > f || (shape.mode == Mode::Valid && n < k) {
            return None;
        }
    }
    let span = shape.spans();
    // A fixed guard still leaves room for a whole kernel per slot in the kernel
    // plane (kernels of neighbouring outputs must not overlap).
    let pitch = [0, 1].map(|ax| spacing(&span[ax], &span[ax], guard).max(shape.kernel[ax]));
    if pitch[0] > frame.0 || pitch[1] > frame.1 {
        return None;
    }
    let slots = [frame.0 / pitch[0], frame.1 / pitch[1]];
    let (c_in, c_out, batch) = (shape.inputs, shape.outputs, shape.batch);
    type Key = (usize, usize, std::cmp::Reverse<usize>, usize);
    let mut best: Option<(Key, ChannelLayout)> = None;
    for nr in 1..=c_in.min(slots[0].div_ceil(2)) {
        for nc in 1..=c_in.div_ceil(nr).min(slots[1].div_ceil(2)) {
            let (py, px) = (lattice(slots[0], nr), lattice(slots[1], nc));
            if py == 0 || px == 0 {
                continue;
            }
            // The output block's width: every width whose rows fit, so that the
            // images of a batch can tile what it leaves free.
            let widths: Vec<([usize; 2], [usize; 2])> = if c_out <= py * px {
                (1..=px.min(c_out))
                    .filter_map(|ox| {
                        let oy = c_out.div_ceil(ox);
                        (oy <= py).then(|| {
                            let ix = (px / ox).min(batch);
                            let iy = (py / oy).min(batch.div_ceil(ix));
                            ([oy, ox], [iy, ix])
                        })
                    })
                    .collect()
            } else {
                vec![([py, px], [1, 1])]
            };
            for (outputs, images) in widths {
                let layout = ChannelLayout {
                    channels: [nr, nc],
                    outputs,
                    images,
                    pitch,
                    groups: c_in.div_ceil(nr * nc),
                    output_chunks: c_out.div_ceil(outputs[0] * outputs[1]),
                    image_chunks: batch.div_ceil(images[0] * images[1]),
                };
                // Fewest frames, then filters, then the most channels summed by the
                // light, then the smallest lattice that holds them.
                let key = (
                    layout.frames(),
                    layout.filters(),
                    std::cmp::Reverse((nr * nc).min(c_in)),
                    nr * nc,
                );
                if best.as_ref().is_none_or(|(k, _)| key < *k) {
                    best = Some((key, layout));
                }
            }
        }
    }
    best.map(|(_, l)| l)
}

/// One frame of a channel plan: which channels, output channels and images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFrame {
    /// Input channels (one group).
    pub channels: Range<usize>,
    /// Output channels.
    pub outputs: Range<usize>,
    /// Images.
    pub images: Range<usize>,
}

/// A channel-tiled multi-channel convolution, planned from shapes alone.
#[derive(Debug, Clone)]
pub struct ChannelPlan {
    frame: (usize, usize),
    /// The shapes planned for.
    pub shape: ChannelShape,
    /// The layout.
    pub layout: ChannelLayout,
    /// Frames in execution order: per channel group and output chunk (one
    /// filter), its image chunks.
    pub frames: Vec<ChannelFrame>,
    span: [Span; 2],
    tile_gain: bool,
}

/// The outputs of an executed channel plan and what they cost.
#[derive(Debug, Clone)]
pub struct ChannelExecution {
    /// `outputs[b][o]`: output channel `o` of image `b`.
    pub outputs: Vec<Vec<Array2<f64>>>,
    /// Frames.
    pub frames: usize,
    /// Optical passes.
    pub passes: usize,
    /// Camera exposures.
    pub exposures: usize,
}

impl ChannelPlan {
    /// Plans `shape` on frames of `frame` samples. `guard` as
    /// [`crate::PlannerConfig::guard`]; with the automatic guard every plan small
    /// enough is proved valid (see the module docs). `tile_gain`: each image's
    /// block is shown at the input panel's full range and its outputs scaled back
    /// (as [`crate::PlannerConfig::tile_gain`], per image block since its channels
    /// sum).
    pub fn new(
        frame: (usize, usize),
        shape: ChannelShape,
        guard: Option<usize>,
        tile_gain: bool,
    ) -> Result<ChannelPlan, SimError> {
        for (key, v) in [
            ("batch", shape.batch),
            ("input channels", shape.inputs),
            ("output channels", shape.outputs),
        ] {
            if v == 0 {
                return Err(SimError::BadOperand {
                    what: key.into(),
                    got: "0".into(),
                    want: "a multi-channel convolution needs at least 1".into(),
                });
            }
        }
        let [h, w] = shape.input;
        let [k, l] = shape.kernel;
        if h == 0 || w == 0 || k == 0 || l == 0 {
            return Err(SimError::Empty {
                job: 0,
                what: if h == 0 || w == 0 { "input" } else { "kernel" },
                shape: if h == 0 || w == 0 { (h, w) } else { (k, l) },
            });
        }
        if shape.mode == Mode::Valid && (h < k || w < l) {
            return Err(SimError::InputSmallerThanKernel {
                job: 0,
                input: (h, w),
                kernel: (k, l),
            });
        }
        let layout = channel_layout(frame, &shape, guard).ok_or_else(|| {
            SimError::invalid(
                "frame",
                format!("{}×{}", frame.0, frame.1),
                format!(
                    "one {h}×{w} map with a {k}×{l} kernel in `{}` mode needs a slot of {:?} samples",
                    shape.mode,
                    [0, 1].map(|ax| {
                        let sp = shape.spans()[ax];
                        spacing(&sp, &sp, guard)
                    })
                ),
            )
        })?;
        let (n, mo, mb) = (
            layout.channels_per_frame(),
            layout.outputs_per_frame(),
            layout.images_per_frame(),
        );
        let chunks = |len: usize, per: usize| (0..len).step_by(per).map(move |s| s..(s + per).min(len));
        let mut frames = Vec::with_capacity(layout.frames());
        for channels in chunks(shape.inputs, n) {
            for outputs in chunks(shape.outputs, mo) {
                for images in chunks(shape.batch, mb) {
                    frames.push(ChannelFrame {
                        channels: channels.clone(),
                        outputs: outputs.clone(),
                        images,
                    });
                }
            }
        }
        let plan = ChannelPlan {
            frame,
            span: shape.spans(),
            shape,
            layout,
            frames,
            tile_gain,
        };
        if guard.is_none() {
            plan.verify()?;
        }
        Ok(plan)
    }

    /// Frame shape the plan was made for.
    pub fn frame_shape(&self) -> (usize, usize) {
        self.frame
    }

    /// Where input channel `ii` of image `bb` of a frame sits (samples).
    fn input_at(&self, bb: usize, ii: usize) -> [usize; 2] {
        let l = &self.layout;
        let a = [ii / l.channels[1], ii % l.channels[1]];
        let u = [bb / l.images[1], bb % l.images[1]];
        [0, 1].map(|ax| (u[ax] * l.outputs[ax] * l.channels[ax] + a[ax]) * l.pitch[ax])
    }

    /// Output lattice slot of output `oo` of a frame (for the first image).
    fn output_slot(&self, oo: usize) -> [usize; 2] {
        let l = &self.layout;
        let p = [oo / l.outputs[1], oo % l.outputs[1]];
        [0, 1].map(|ax| l.channels[ax] - 1 + p[ax] * l.channels[ax])
    }

    /// Where kernel `w[o][i]` (output `oo`, channel `ii` of a frame) sits in the
    /// kernel plane (samples).
    fn kernel_at(&self, oo: usize, ii: usize) -> [usize; 2] {
        let l = &self.layout;
        let a = [ii / l.channels[1], ii % l.channels[1]];
        let c = self.output_slot(oo);
        [0, 1].map(|ax| (c[ax] - a[ax]) * l.pitch[ax])
    }

    /// The kept window of image `bb`'s output `oo` in the output plane.
    fn window(&self, bb: usize, oo: usize) -> Rect {
        let l = &self.layout;
        let u = [bb / l.images[1], bb % l.images[1]];
        let c = self.output_slot(oo);
        let at = [0, 1].map(|ax| (u[ax] * l.outputs[ax] * l.channels[ax] + c[ax]) * l.pitch[ax] + self.span[ax].a);
        let [h, w] = self.shape.output();
        [at[0], at[1], h, w]
    }

    /// The geometry of frame `index`: inputs `bb·n + ii`, kernels `oo·n + ii`, and
    /// every summand of every output wanted at its output's window (summands of one
    /// output share it).
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn placement(&self, index: usize) -> Placement {
        let f = &self.frames[index];
        let (n, no, nb) = (f.channels.len(), f.outputs.len(), f.images.len());
        let (h, w) = (self.shape.input[0], self.shape.input[1]);
        let (k, l) = (self.shape.kernel[0], self.shape.kernel[1]);
        let rect = |p: [usize; 2], (a, b): (usize, usize)| [p[0], p[1], a, b];
        Placement {
            inputs: (0..nb * n).map(|t| rect(self.input_at(t / n, t % n), (h, w))).collect(),
            kernels: (0..no * n)
                .map(|t| rect(self.kernel_at(t / n, t % n), (k, l)))
                .collect(),
            wanted: (0..nb)
                .flat_map(|bb| (0..no).flat_map(move |oo| (0..n).map(move |ii| (bb, oo, ii))))
                .map(|(bb, oo, ii)| ((bb * n + ii, oo * n + ii), self.window(bb, oo)))
                .collect(),
        }
    }

    /// Proves every frame's placement valid (as [`crate::Plan::verify`], the
    /// summands of one output landing on one block); frames with more than
    /// [`VERIFY_MAX_PAIRS`] pairs are left to the construction.
    pub fn verify(&self) -> Result<(), SimError> {
        // Frames of equal extent have equal geometry: check each extent once.
        let mut seen: Vec<(usize, usize, usize)> = Vec::new();
        for (fi, f) in self.frames.iter().enumerate() {
            let key = (f.channels.len(), f.outputs.len(), f.images.len());
            let pairs = key.0 * key.0 * key.1 * key.2;
            if seen.contains(&key) || pairs > VERIFY_MAX_PAIRS {
                continue;
            }
            seen.push(key);
            let p = self.placement(fi);
            if let Err((tile, by)) = check_placement(self.frame, &p) {
                let n = key.0;
                let ((i, _), _) = p.wanted[tile];
                return Err(SimError::Overlap {
                    frame: fi,
                    job: f.outputs.start + (tile / n) % key.1,
                    by: match by {
                        Some((a, b)) => format!(
                            "input channel {} of image {} with kernel w[{}][{}] (summing image {}'s channel {})",
                            f.channels.start + a % n,
                            f.images.start + a / n,
                            f.outputs.start + b / n,
                            f.channels.start + b % n,
                            f.images.start + i / n,
                            f.channels.start + i % n
                        ),
                        None => "the periodic image of its own block".to_string(),
                    },
                });
            }
        }
        Ok(())
    }

    /// Runs the plan on `machine`: `inputs[b][i]` the input channels of image `b`,
    /// `kernels[o][i]` the kernel from input channel `i` to output channel `o`,
    /// convolved (or correlated, `op`). Frame `f` draws its noise from a generator
    /// seeded by `(seed, f)`, so results do not depend on threads.
    ///
    /// With intensity detection each frame reads `|Σ|²` of its channel group and
    /// the groups' read-outs are added as they are (the machine's square law).
    ///
    /// Errors name the image, channel or kernel that is empty, non-finite or
    /// shaped unlike the plan, and anything the machine cannot represent.
    ///
    /// # Panics
    /// If the machine's frame shape differs from the plan's.
    pub fn execute(
        &self,
        machine: &FourF,
        inputs: &[Vec<ArrayView2<f64>>],
        kernels: &[Vec<ArrayView2<f64>>],
        op: Op,
        seed: u64,
    ) -> Result<ChannelExecution, SimError> {
        self.execute_with_progress(machine, inputs, kernels, op, seed, &|| {})
    }

    /// [`ChannelPlan::execute`], calling `progress` once per finished frame (from
    /// any thread).
    pub fn execute_with_progress(
        &self,
        machine: &FourF,
        inputs: &[Vec<ArrayView2<f64>>],
        kernels: &[Vec<ArrayView2<f64>>],
        op: Op,
        seed: u64,
        progress: &(dyn Fn() + Sync),
    ) -> Result<ChannelExecution, SimError> {
        assert_eq!(
            machine.frame_shape(),
            self.frame,
            "ChannelPlan::execute: machine frame shape"
        );
        self.check_operands(inputs, kernels)?;
        let sh = &self.shape;
        let effective = Self::effective(kernels, sh.mode, op);
        let square_law = machine.config().detection.scheme == crate::devices::detection::Scheme::Intensity;
        let frame_kernel = |fi: usize| self.kernel_plane(fi, &effective);
        // One filter per (channel group, output chunk): runs of equal frames.
        let mut groups = Vec::new();
        let mut start = 0;
        for fi in 1..=self.frames.len() {
            let same = |a: &ChannelFrame, b: &ChannelFrame| a.channels == b.channels && a.outputs == b.outputs;
            if fi == self.frames.len() || !same(&self.frames[start], &self.frames[fi]) {
                groups.push((start, fi, true));
                start = fi;
            }
        }
        let results = run_frames(
            machine,
            self.frame,
            &groups,
            &frame_kernel,
            |(scratch, plane), fi, mask| {
                let f = &self.frames[fi];
                let (support, gains) = self.write_input(fi, inputs, plane);
                let gains: Vec<f64> = gains.iter().map(|&g| if square_law { g * g } else { g }).collect();
                let mut rng = StdRng::seed_from_u64(frame_seed(seed, fi));
                let windows: Vec<Rect> = (0..gains.len())
                    .flat_map(|bb| (0..f.outputs.len()).map(move |oo| (bb, oo)))
                    .map(|(bb, oo)| self.window(bb, oo))
                    .collect();
                let read = ReadRegion::periodic(self.frame, &windows);
                let det = machine.detect_frame_reading(plane.view(), &support, mask, scratch, &mut rng, Some(&read))?;
                let (ny, nx) = self.frame;
                let mut blocks = Vec::with_capacity(f.images.len() * f.outputs.len());
                for (bb, gain) in gains.iter().enumerate() {
                    for oo in 0..f.outputs.len() {
                        let [y, x, h, w] = self.window(bb, oo);
                        blocks.push(Array2::from_shape_fn((h, w), |(i, j)| {
                            det.values[[(y + i) % ny, (x + j) % nx]] * gain
                        }));
                    }
                }
                progress();
                Ok((fi, blocks, det.passes, det.exposures))
            },
        )?;
        let [oh, ow] = sh.output();
        let mut outputs = vec![vec![Array2::<f64>::zeros((oh, ow)); sh.outputs]; sh.batch];
        let (mut passes, mut exposures) = (0, 0);
        for (fi, blocks, p, e) in results {
            passes += p;
            exposures += e;
            let f = &self.frames[fi];
            let no = f.outputs.len();
            for (t, block) in blocks.into_iter().enumerate() {
                outputs[f.images.start + t / no][f.outputs.start + t % no] += &block;
            }
        }
        Ok(ChannelExecution {
            outputs,
            frames: self.frames.len(),
            passes,
            exposures,
        })
    }

    /// The input and kernel planes of frame `index` as the machine is shown them
    /// (each image's maps divided by its gain), for pictures and checks.
    ///
    /// # Errors
    /// As [`ChannelPlan::execute`] for bad operands.
    pub fn frame_planes(
        &self,
        index: usize,
        inputs: &[Vec<ArrayView2<f64>>],
        kernels: &[Vec<ArrayView2<f64>>],
        op: Op,
    ) -> Result<(Array2<f64>, Array2<f64>), SimError> {
        self.check_operands(inputs, kernels)?;
        let mut plane = Array2::zeros(self.frame);
        self.write_input(index, inputs, &mut plane);
        let effective = Self::effective(kernels, self.shape.mode, op);
        Ok((plane, self.kernel_plane(index, &effective)))
    }

    /// The kernels as convolution kernels (flipped for a correlation).
    fn effective(kernels: &[Vec<ArrayView2<f64>>], mode: Mode, op: Op) -> Vec<Vec<Array2<f64>>> {
        kernels
            .iter()
            .map(|ks| {
                ks.iter()
                    .map(|k| ConvJob::new(k.view(), k.view(), mode, op).effective_kernel())
                    .collect()
            })
            .collect()
    }

    /// The kernel plane of frame `fi`: `w[o][i]` at `c_o − a_i`.
    fn kernel_plane(&self, fi: usize, effective: &[Vec<Array2<f64>>]) -> Array2<f64> {
        let f = &self.frames[fi];
        let mut plane = Array2::<f64>::zeros(self.frame);
        for (oo, o) in f.outputs.clone().enumerate() {
            for (ii, i) in f.channels.clone().enumerate() {
                let [y, x] = self.kernel_at(oo, ii);
                let k = &effective[o][i];
                plane.slice_mut(s![y..y + k.nrows(), x..x + k.ncols()]).assign(k);
            }
        }
        plane
    }

    /// Writes the input plane of frame `fi` into `plane` (zeroed first): each
    /// image's channels at their slots, divided by the image's gain (its largest
    /// magnitude with `tile_gain`, else 1). Returns the rectangles that carry data
    /// and the gain of each image.
    fn write_input(
        &self,
        fi: usize,
        inputs: &[Vec<ArrayView2<f64>>],
        plane: &mut Array2<f64>,
    ) -> (Vec<Rect>, Vec<f64>) {
        let f = &self.frames[fi];
        let (h, w) = (self.shape.input[0], self.shape.input[1]);
        plane.fill(0.0);
        let mut support = Vec::new();
        let mut gains = Vec::with_capacity(f.images.len());
        for (bb, b) in f.images.clone().enumerate() {
            let peak = f
                .channels
                .clone()
                .map(|i| crate::readout::max_abs(inputs[b][i]))
                .fold(0.0, f64::max);
            let gain = if self.tile_gain && peak > 0.0 { peak } else { 1.0 };
            for (ii, i) in f.channels.clone().enumerate() {
                let [y, x] = self.input_at(bb, ii);
                plane
                    .slice_mut(s![y..y + h, x..x + w])
                    .zip_mut_with(&inputs[b][i], |d, &v| *d = v / gain);
                support.push([y, x, h, w]);
            }
            gains.push(gain);
        }
        (support, gains)
    }

    fn check_operands(
        &self,
        inputs: &[Vec<ArrayView2<f64>>],
        kernels: &[Vec<ArrayView2<f64>>],
    ) -> Result<(), SimError> {
        let sh = &self.shape;
        let bad = |what: String, got: String, want: String| Err(SimError::BadOperand { what, got, want });
        if inputs.len() != sh.batch {
            return bad(
                "images".into(),
                inputs.len().to_string(),
                format!("the plan is for {}", sh.batch),
            );
        }
        if kernels.len() != sh.outputs {
            return bad(
                "output channels".into(),
                kernels.len().to_string(),
                format!("the plan is for {} kernels rows", sh.outputs),
            );
        }
        // Every row holds one plane per input channel, each finite and of the
        // planned size.
        let rows = |rows: &[Vec<ArrayView2<f64>>],
                    row: &dyn Fn(usize) -> String,
                    item: &dyn Fn(usize, usize) -> String,
                    dim: [usize; 2]|
         -> Result<(), SimError> {
            let dim = (dim[0], dim[1]);
            for (r, planes) in rows.iter().enumerate() {
                if planes.len() != sh.inputs {
                    return bad(
                        row(r),
                        format!("{} planes", planes.len()),
                        format!("one per input channel ({})", sh.inputs),
                    );
                }
                for (i, plane) in planes.iter().enumerate() {
                    check_finite(&item(r, i), plane)?;
                    if plane.dim() != dim {
                        return bad(
                            item(r, i),
                            format!("{:?}", plane.dim()),
                            format!("every one is {dim:?}"),
                        );
                    }
                }
            }
            Ok(())
        };
        rows(
            inputs,
            &|b| format!("image {b}"),
            &|b, i| format!("image {b} channel {i}"),
            sh.input,
        )?;
        rows(
            kernels,
            &|o| format!("kernels of output channel {o}"),
            &|o, i| format!("kernel w[{o}][{i}]"),
            sh.kernel,
        )?;
        Ok(())
    }
}

fn check_finite(what: &str, a: &ArrayView2<f64>) -> Result<(), SimError> {
    match a.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some((index, v)) => Err(SimError::BadOperand {
            what: what.to_string(),
            got: format!("{v} at {index:?}"),
            want: "every sample must be finite".into(),
        }),
        None => Ok(()),
    }
}

/// The direct reference: `out[b][o] = Σ_i x[b][i] ⊛ w[o][i]` with
/// [`crate::direct_conv`].
pub fn direct_channel_conv(
    inputs: &[Vec<ArrayView2<f64>>],
    kernels: &[Vec<ArrayView2<f64>>],
    mode: Mode,
    op: Op,
) -> Vec<Vec<Array2<f64>>> {
    inputs
        .iter()
        .map(|xs| {
            kernels
                .iter()
                .map(|ks| {
                    xs.iter()
                        .zip(ks)
                        .map(|(x, k)| crate::direct_conv(x.view(), k.view(), mode, op))
                        .reduce(|a, b| a + b)
                        .expect("at least one channel")
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MachineConfig;

    /// `maps[a][b]`: a list of lists of planes (images × channels or outputs ×
    /// inputs).
    type Maps = Vec<Vec<Array2<f64>>>;

    fn data(batch: usize, c_in: usize, c_out: usize, n: [usize; 2], k: [usize; 2]) -> (Maps, Maps) {
        let mut state = 12345u64;
        let mut next = move || {
            state = crate::rng::mix64(state.wrapping_add(crate::rng::GOLDEN));
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let x = (0..batch)
            .map(|_| {
                (0..c_in)
                    .map(|_| Array2::from_shape_fn((n[0], n[1]), |_| next()))
                    .collect()
            })
            .collect();
        let w = (0..c_out)
            .map(|_| {
                (0..c_in)
                    .map(|_| Array2::from_shape_fn((k[0], k[1]), |_| next()))
                    .collect()
            })
            .collect();
        (x, w)
    }

    fn views(a: &[Vec<Array2<f64>>]) -> Vec<Vec<ArrayView2<'_, f64>>> {
        a.iter().map(|v| v.iter().map(|x| x.view()).collect()).collect()
    }

    /// Every layout choice equals the direct channel sum on the ideal machine,
    /// odd and even sizes, all modes, convolution and correlation, batches.
    #[test]
    fn equals_the_direct_channel_sum() {
        let machine = FourF::new(MachineConfig::ideal(64)).unwrap();
        let cases = [
            (1, 3, 4, [5, 5], [3, 3], Mode::Same, Op::Convolution),
            (2, 5, 3, [6, 4], [3, 2], Mode::Full, Op::Correlation),
            (3, 4, 2, [7, 7], [3, 3], Mode::Valid, Op::Convolution),
            (1, 20, 30, [4, 4], [3, 3], Mode::Same, Op::Convolution),
            (4, 1, 5, [8, 9], [2, 2], Mode::Same, Op::Correlation),
        ];
        for (batch, c_in, c_out, n, k, mode, op) in cases {
            let shape = ChannelShape {
                batch,
                inputs: c_in,
                outputs: c_out,
                input: n,
                kernel: k,
                mode,
            };
            let plan = ChannelPlan::new(machine.frame_shape(), shape, None, true).unwrap();
            let (x, w) = data(batch, c_in, c_out, n, k);
            let out = plan.execute(&machine, &views(&x), &views(&w), op, 0).unwrap();
            let want = direct_channel_conv(&views(&x), &views(&w), mode, op);
            let scale = want
                .iter()
                .flatten()
                .map(|a| crate::readout::max_abs(a.view()))
                .fold(0.0, f64::max);
            for (b, (got, want)) in out.outputs.iter().zip(&want).enumerate() {
                for (o, (g, e)) in got.iter().zip(want).enumerate() {
                    let err = (g - e).mapv(f64::abs).fold(0.0, |m: f64, &v| m.max(v));
                    assert!(
                        err <= 1e-9 * scale,
                        "{shape:?} {:?}: image {b} output {o}: error {err}",
                        plan.layout
                    );
                }
            }
            assert_eq!(out.frames, plan.layout.frames());
        }
    }

    /// The light sums several channels per frame where the frame holds them, and
    /// a batch shares the filters: fewer frames than one map per frame.
    #[test]
    fn layouts_sum_channels_and_share_filters() {
        let shape = ChannelShape {
            batch: 1,
            inputs: 16,
            outputs: 16,
            input: [4, 4],
            kernel: [3, 3],
            mode: Mode::Same,
        };
        // Slot pitch 5 (4 + guard 1): 25 × 25 slots on a 128² frame.
        let l = channel_layout((128, 128), &shape, None).unwrap();
        assert_eq!(l.pitch, [5, 5]);
        assert_eq!(l.frames(), 1, "{l:?}");
        assert_eq!(l.channels_per_frame(), 16, "{l:?}");
        assert_eq!(l.optical_fraction(&shape), 1.0);
        let b8 = channel_layout((128, 128), &ChannelShape { batch: 8, ..shape }, None).unwrap();
        // Frames first: 4 frames on 4 filters (4 channels, an output block 6 × 3
        // and all 8 images per frame) beat 8 frames on one filter.
        assert_eq!((b8.frames(), b8.filters()), (4, 4), "{b8:?}");
        let plan = ChannelPlan::new((128, 128), ChannelShape { batch: 8, ..shape }, None, true).unwrap();
        plan.verify().unwrap();
        // 1 × 1 blocks when the maps fill the frame: every sum electronic.
        let big = ChannelShape {
            input: [40, 40],
            ..shape
        };
        let l = channel_layout((64, 64), &big, None).unwrap();
        assert_eq!(
            (l.channels, l.frames(), l.optical_fraction(&big)),
            ([1, 1], 256, 0.0),
            "{l:?}"
        );
    }

    /// Found in review: a narrower output block lets more images share a frame
    /// (2 frames, not 3); and a fixed guard narrower than the kernel still gives
    /// every kernel its own place in the kernel plane (no panic at the frame
    /// edge, no kernel written over another).
    #[test]
    fn output_blocks_of_any_width_and_kernels_wider_than_a_fixed_slot() {
        let shape = ChannelShape {
            batch: 7,
            inputs: 2,
            outputs: 4,
            input: [4, 4],
            kernel: [3, 3],
            mode: Mode::Same,
        };
        let l = channel_layout((30, 30), &shape, None).unwrap();
        assert_eq!(l.frames(), 2, "{l:?}");
        let wide = ChannelShape {
            batch: 1,
            inputs: 1,
            outputs: 16,
            input: [4, 4],
            kernel: [9, 9],
            mode: Mode::Same,
        };
        let plan = ChannelPlan::new((64, 64), wide, Some(0), true).unwrap();
        assert!(plan.layout.pitch[0] >= 9, "{:?}", plan.layout);
        let machine = FourF::new(MachineConfig::ideal(64)).unwrap();
        let (x, w) = data(1, 1, 16, [4, 4], [9, 9]);
        let out = plan
            .execute(&machine, &views(&x), &views(&w), Op::Convolution, 0)
            .unwrap();
        let want = direct_channel_conv(&views(&x), &views(&w), Mode::Same, Op::Convolution);
        for (a, b) in out.outputs[0].iter().zip(&want[0]) {
            assert!((a - b).iter().all(|v| v.abs() < 1e-9));
        }
    }

    /// The checker rejects a channel layout whose output lattice is one slot too
    /// dense (a cross term lands on a neighbour's sum) and accepts the planned one.
    #[test]
    fn checker_rejects_a_too_dense_lattice() {
        let shape = ChannelShape {
            batch: 1,
            inputs: 4,
            outputs: 4,
            input: [4, 4],
            kernel: [3, 3],
            mode: Mode::Same,
        };
        let mut plan = ChannelPlan::new((64, 64), shape, None, true).unwrap();
        plan.verify().unwrap();
        plan.layout = ChannelLayout {
            channels: [2, 2],
            outputs: [2, 2],
            images: [1, 1],
            groups: 1,
            output_chunks: 1,
            image_chunks: 1,
            ..plan.layout
        };
        plan.frames = vec![ChannelFrame {
            channels: 0..4,
            outputs: 0..4,
            images: 0..1,
        }];
        plan.verify().unwrap();
        // A lattice of pitch nr − 1 = 1 slot: c_o one slot apart.
        let p = plan.placement(0);
        let dense = Placement {
            kernels: p
                .kernels
                .iter()
                .enumerate()
                .map(|(t, r)| {
                    let (oo, ii) = (t / 4, t % 4);
                    let c = [1 + oo / 2, 1 + oo % 2];
                    let a = [ii / 2, ii % 2];
                    [(c[0] - a[0]) * 5, (c[1] - a[1]) * 5, r[2], r[3]]
                })
                .collect(),
            wanted: p
                .wanted
                .iter()
                .map(|&((i, k), r)| {
                    let oo = k / 4;
                    ((i, k), [(1 + oo / 2) * 5 + 1, (1 + oo % 2) * 5 + 1, r[2], r[3]])
                })
                .collect(),
            ..p
        };
        assert!(check_placement((64, 64), &dense).is_err());
    }

    #[test]
    fn bad_operands_are_errors_that_name_them() {
        let shape = ChannelShape {
            batch: 1,
            inputs: 2,
            outputs: 1,
            input: [4, 4],
            kernel: [3, 3],
            mode: Mode::Same,
        };
        let machine = FourF::new(MachineConfig::ideal(32)).unwrap();
        let plan = ChannelPlan::new((32, 32), shape, None, true).unwrap();
        let (x, mut w) = data(1, 2, 1, [4, 4], [3, 3]);
        w[0][1][[0, 0]] = f64::NAN;
        let e = plan
            .execute(&machine, &views(&x), &views(&w), Op::Convolution, 0)
            .unwrap_err();
        assert!(e.to_string().contains("kernel w[0][1]"), "{e}");
        let (x, w) = data(1, 3, 1, [4, 4], [3, 3]);
        let e = plan
            .execute(&machine, &views(&x), &views(&w), Op::Convolution, 0)
            .unwrap_err();
        assert!(
            e.to_string().contains("image 0") && e.to_string().contains("input channel (2)"),
            "{e}"
        );
        let e = ChannelPlan::new((4, 4), ChannelShape { input: [8, 8], ..shape }, None, true).unwrap_err();
        assert!(e.to_string().contains("needs a slot"), "{e}");
    }
}
