//! Packs convolution jobs into frames of the machine, executes them and unpacks
//! the outputs.
//!
//! Every job is reduced to *tiles*: pieces whose full convolution with a partner
//! lands in the frame without touching any other tile's kept outputs. Two layouts:
//!
//! - **Input tiling** (the ConvShareViT case): jobs that use the same (effective)
//!   kernel put blocks of their inputs side by side on the input SLM; one filter,
//!   programmed once, convolves them all. An input larger than a frame is split
//!   into overlap-save blocks.
//! - **Kernel tiling**: jobs that share one input and use different kernels lay the
//!   kernels side by side in the kernel plane (the filter is the transfer function of
//!   the composite); each output lands at its kernel's offset.
//! - **Grids** ([`Layout::Grid`]): inputs at offsets `a_i` in the input plane and
//!   kernels at `b_k` in the kernel plane, so pair `(i, k)` lands at `a_i + b_k`,
//!   each in a slot of its own. *Cross tiling* wants every pair (attention scores:
//!   every query with every key); *diagonal pairing* wants each input with one
//!   kernel (GFNet's per-channel filters: several channels and their own filters in
//!   one frame, and at small batches several filters' maps).
//!
//! ## The checker
//! Every plan made with the automatic guard is proved valid before it is returned
//! ([`Plan::verify`]): for every tile, no other pair's block (`a_i + b_k`, of size
//! `t_i + s_k − 1`) reaches its kept window, the periodic wrap included, and its
//! own block stays clear of its periodic images.
//!
//! ## Guard bands
//! Along an axis, a tile of `t` samples convolved with a partner of `s` samples
//! spreads over `l = t + s − 1` samples, of which the job keeps the window
//! `[a, b)` (`full`: `[0, l)`, `same`: `[⌊(s−1)/2⌋, …+t)`, `valid`: `[s−1, t)`). Tile
//! `j` placed after tile `i` is untouched when `p_j − p_i ≥ max(l_i − a_j, b_i)`,
//! which for equal tiles is a guard of `s − 1` zeros in `full` mode, `⌈(s−1)/2⌉` in
//! `same` and none in `valid`. The frame is periodic, so the last tile keeps the
//! same distance to the first one across the edge. A fixed guard
//! ([`PlannerConfig::guard`]) overrides the rule (to show what leaks).

use ndarray::{s, Array2, ArrayView2};
use rayon::prelude::*;

use crate::cache::{content_hash, same_bits, FxMap, FxSet, PlanKey};
use crate::conv::{ConvJob, Mode};
use crate::devices::camera::ReadRegion;
use crate::error::SimError;
use crate::machine::{FourF, FrameScratch, Mask};
use crate::readout::{max_abs, Rect};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Frames at or below this many samples run in parallel with each other rather
/// than each being split over threads.
const SMALL_FRAME: usize = 256 * 256;

/// How the planner packs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlannerConfig {
    /// Zeros between neighbouring tiles; `None` (default): the minimum that keeps
    /// the kept outputs exact (see the module docs).
    pub guard: Option<usize>,
    /// Lay out several kernels for one shared input when jobs allow (default true).
    pub kernel_tiling: bool,
    /// A digital gain per input tile (default true): each tile is shown at the input
    /// panel's full range (divided by its largest magnitude) and its kept outputs are
    /// multiplied back, so a dim map that shares a frame with a bright one keeps its
    /// own signal-to-noise ratio. Exact on an ideal machine, because a kept window
    /// depends only on its own tile. Off: one gain per frame (its largest value).
    pub tile_gain: bool,
    /// Cross-tile complete products of inputs × kernels (default true): several
    /// kernels share one filter, so the filter panel's range is shared too (on a
    /// noisy machine each pair's error grows; see `tests/surrogate.rs`).
    pub cross_tiling: bool,
    /// Diagonal pairing (default true): kernel groups of one shape whose inputs fit
    /// a slot whole share frames, several kernels per filter and each input with
    /// its own kernel (GFNet's per-channel filters at batch 1). Like cross tiling,
    /// the kernels of a frame share the filter panel's range.
    pub diagonal: bool,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            guard: None,
            kernel_tiling: true,
            tile_gain: true,
            cross_tiling: true,
            diagonal: true,
        }
    }
}

/// Builds [`Plan`]s for one frame shape.
#[derive(Debug, Clone)]
pub struct Planner {
    frame: (usize, usize),
    config: PlannerConfig,
}

/// How a frame is laid out.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// Input blocks tiled on the input SLM, one shared kernel (index into
    /// [`Plan::kernels`]).
    InputTiling {
        /// The shared effective kernel.
        kernel: usize,
    },
    /// Kernels tiled in the kernel plane, one shared input (that of `input_job`).
    KernelTiling {
        /// A job whose input every tile shares.
        input_job: usize,
    },
    /// A grid of slots: inputs along the input plane and kernels along the kernel
    /// plane, every pair `(i, k)` landing at `a_i + b_k` in a slot of its own.
    /// Inputs sit in columns `s_x` apart and in bands of `nk·s_y` rows, kernels
    /// `s_y` apart down the kernel plane. Which pairs are wanted is the strategy's:
    /// all of them (cross tiling: attention scores, one map with many kernels
    /// across a batch) or one kernel per input (diagonal pairing: per-channel
    /// filters, several channels and their own filters in one frame).
    Grid {
        /// The strategy that chose which pairs are wanted.
        strategy: GridStrategy,
        /// A job with each input, and where the input sits `[y, x]`.
        inputs: Vec<(usize, [usize; 2])>,
        /// A job with each kernel, and where the kernel sits in the kernel plane.
        kernels: Vec<(usize, [usize; 2])>,
        /// For every tile, the index in `inputs` of its input.
        tile_input: Vec<usize>,
        /// For every tile, the index in `kernels` of its kernel.
        tile_kernel: Vec<usize>,
    },
}

/// Which pairs of a [`Layout::Grid`] frame are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GridStrategy {
    /// Every input with every kernel of the frame.
    Cross,
    /// Every input with one kernel of the frame (its own filter).
    Diagonal,
}

/// Where the operands of one frame sit and which of their pairs it computes: the
/// geometry that [`Plan::verify`] checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Input-plane tiles `[y, x, h, w]`.
    pub inputs: Vec<Rect>,
    /// Kernel-plane tiles `[y, x, h, w]` (offsets in the periodic kernel plane).
    pub kernels: Vec<Rect>,
    /// For every tile of the frame, its `(input, kernel)` pair and its kept window
    /// `[y, x, h, w]` in the output plane (before the periodic wrap). Pairs wanted
    /// at the same window sum there (a channel sum, [`crate::channels`]).
    pub wanted: Vec<((usize, usize), Rect)>,
}

/// Extent of a tile along one axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Span {
    /// Samples of the tiled operand.
    t: usize,
    /// Samples of its full convolution with the partner.
    l: usize,
    /// Kept window `[a, b)` relative to the tile's origin.
    pub(crate) a: usize,
    b: usize,
}

/// One tile of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// The job it computes (part of).
    pub job: usize,
    /// For input tiling, the first row and column of the job's input block; for
    /// kernel tiling `[0, 0]` (the whole kernel).
    pub src: [usize; 2],
    /// Where the tile's origin sits in the frame `[y, x]`.
    pub pos: [usize; 2],
    /// Where its kept window goes in the job's output `[y, x]`.
    pub out: [usize; 2],
    span: [Span; 2],
}

impl Tile {
    /// Size `[y, x]` of the tiled operand.
    pub fn size(&self) -> [usize; 2] {
        [self.span[0].t, self.span[1].t]
    }
    /// Size `[y, x]` of the kept window.
    pub fn kept(&self) -> [usize; 2] {
        [self.span[0].b - self.span[0].a, self.span[1].b - self.span[1].a]
    }
    /// The kept window `[y, x, h, w]` in the output plane (before the wrap).
    pub fn window(&self) -> Rect {
        let [h, w] = self.kept();
        [self.pos[0] + self.span[0].a, self.pos[1] + self.span[1].a, h, w]
    }
}

/// One frame: its layout and tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct FramePlan {
    /// Layout.
    pub layout: Layout,
    /// Tiles.
    pub tiles: Vec<Tile>,
}

/// A packing of jobs into frames; execute it with the same jobs it was planned for.
#[derive(Debug, Clone)]
pub struct Plan {
    frame: (usize, usize),
    /// The frames, grouped by shared kernel.
    pub frames: Vec<FramePlan>,
    /// For every kernel shared by input-tiled frames, a job whose effective
    /// kernel it is. A plan holds no data, only where it goes: a plan made for one
    /// batch serves any other of the same structure ([`Planner::plan_cached`]).
    pub kernels: Vec<usize>,
    /// Output shape of every job.
    pub output_shapes: Vec<(usize, usize)>,
    job_shapes: Vec<((usize, usize), (usize, usize))>,
    tile_gain: bool,
}

/// What a plan costs and how full its frames are.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PlanStats {
    /// Frames (each one SLM frame of the machine).
    pub frames: usize,
    /// Tiles over all frames.
    pub tiles: usize,
    /// Distinct filters programmed.
    pub filters: usize,
    /// Input samples carried, divided by frame samples × frames.
    pub utilisation: f64,
}

impl Span {
    /// A tile of `t` samples whose job convolves an `n`-sample input with a
    /// `k`-sample kernel in `mode`: spread `n + k − 1`, kept window `mode.window`.
    pub(crate) fn of(t: usize, n: usize, k: usize, mode: Mode) -> Span {
        let (a, b) = mode.window(n, k);
        Span { t, l: n + k - 1, a, b }
    }
}

pub(crate) fn spacing(i: &Span, j: &Span, guard: Option<usize>) -> usize {
    match guard {
        Some(g) => i.t + g,
        None => (i.l - j.a).max(i.b),
    }
}

impl Planner {
    /// A planner for frames of `frame` samples `(ny, nx)`.
    pub fn new(frame: (usize, usize), config: PlannerConfig) -> Self {
        Self { frame, config }
    }

    /// Packs `jobs`.
    ///
    /// Errors name the job: an empty array, a non-finite sample, a kernel larger than
    /// the frame, a `valid` job whose input is smaller than its kernel, or a fixed
    /// guard too wide for a tile to fit.
    pub fn plan(&self, jobs: &[ConvJob]) -> Result<Plan, SimError> {
        self.plan_keyed(jobs, None)
    }

    /// [`Planner::plan`] with the identity of every job's input given: jobs with
    /// the same key share one input (default: equal contents). A batch gives each
    /// image's maps their own keys, so cross products stay per image even where two
    /// images' maps happen to be equal.
    ///
    /// # Panics
    /// If `input_keys` does not hold one key per job.
    pub fn plan_keyed(&self, jobs: &[ConvJob], input_keys: Option<&[usize]>) -> Result<Plan, SimError> {
        let key = self.key(jobs, input_keys)?;
        self.build(jobs, &key.inputs, &key.kernels)
    }

    /// [`Planner::plan_keyed`] through `machine`'s plan cache: a plan is made once
    /// for every structure of jobs (shapes, modes, ops, which jobs share an input
    /// and a kernel) and reused, e.g. by every batch of an evaluation. The plan is
    /// the one [`Planner::plan_keyed`] makes; it holds no data.
    ///
    /// # Panics
    /// As [`Planner::plan_keyed`].
    pub fn plan_cached(
        &self,
        jobs: &[ConvJob],
        input_keys: Option<&[usize]>,
        machine: &FourF,
    ) -> Result<std::sync::Arc<Plan>, SimError> {
        let key = self.key(jobs, input_keys)?;
        let cache = machine.plan_cache();
        if let Some(plan) = cache.get(&key) {
            return Ok(plan);
        }
        let plan = std::sync::Arc::new(self.build(jobs, &key.inputs, &key.kernels)?);
        cache.insert(key, plan.clone());
        Ok(plan)
    }

    /// Checks `jobs` and says what a plan of them depends on.
    fn key(&self, jobs: &[ConvJob], input_keys: Option<&[usize]>) -> Result<PlanKey, SimError> {
        let (ny, nx) = self.frame;
        // Jobs of a batch share arrays (one map with many kernels, one weight in
        // every image): each array is checked and hashed once.
        let mut checked = FxSet::default();
        for (i, j) in jobs.iter().enumerate() {
            if checked.insert(identity(&j.input)) {
                check_array(i, "input", &j.input)?;
            }
            if checked.insert(identity(&j.kernel)) {
                check_array(i, "kernel", &j.kernel)?;
            }
            let (k, n) = (j.kernel.dim(), j.input.dim());
            if k.0 > ny || k.1 > nx {
                return Err(SimError::KernelTooLarge {
                    job: i,
                    kernel: k,
                    frame: self.frame,
                });
            }
            if j.mode == Mode::Valid && (n.0 < k.0 || n.1 < k.1) {
                return Err(SimError::InputSmallerThanKernel {
                    job: i,
                    input: n,
                    kernel: k,
                });
            }
        }
        let inputs = match input_keys {
            Some(keys) => {
                assert_eq!(keys.len(), jobs.len(), "Planner::plan_keyed: one input key per job");
                // Renumbered by first appearance: the plan depends only on which
                // jobs share a key.
                let groups = group_by_id(keys.iter().copied().enumerate());
                ids_of(groups, jobs.len())
            }
            None => content_ids(jobs.iter().map(|j| j.input)),
        };
        Ok(PlanKey {
            frame: self.frame,
            config: self.config.clone(),
            jobs: jobs
                .iter()
                .map(|j| (j.input.dim(), j.kernel.dim(), j.mode, j.op))
                .collect(),
            inputs,
            kernels: content_ids(jobs.iter().map(|j| j.effective_kernel_view())),
        })
    }

    /// Packs `jobs`, whose inputs and effective kernels are numbered by content
    /// (or key) in `input_key` and `kernel_id`.
    fn build(&self, jobs: &[ConvJob], input_key: &[usize], kernel_id: &[usize]) -> Result<Plan, SimError> {
        // Complete cross products first; the other jobs by shared kernel or input.
        let cross = if self.config.cross_tiling {
            self.cross_sets(jobs, kernel_id, input_key)
        } else {
            Vec::new()
        };
        let taken: FxSet<usize> = cross
            .iter()
            .flat_map(|c| c.kernels_jobs.iter().flatten().copied())
            .collect();
        // Group by effective kernel.
        let mut kernel_groups: Vec<Vec<usize>> = Vec::new();
        let mut singles = Vec::new();
        let rest = kernel_id
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| !taken.contains(i));
        for g in group_by_id(rest) {
            if g.len() > 1 || !self.config.kernel_tiling {
                kernel_groups.push(g);
            } else {
                singles.push(g[0]);
            }
        }
        // Jobs alone with their kernel: group those sharing an input for kernel tiling.
        let mut input_groups = Vec::new();
        for g in group_by_id(singles.iter().map(|&i| (i, input_key[i]))) {
            let (fits, rest): (Vec<usize>, Vec<usize>) = g.into_iter().partition(|&i| self.kernel_tile_fits(&jobs[i]));
            if fits.len() > 1 {
                input_groups.push(fits);
            } else {
                kernel_groups.extend(fits.into_iter().map(|i| vec![i]));
            }
            kernel_groups.extend(rest.into_iter().map(|i| vec![i]));
        }

        let mut plan = Plan {
            frame: self.frame,
            frames: Vec::new(),
            kernels: Vec::new(),
            output_shapes: jobs.iter().map(|j| j.output_shape()).collect(),
            job_shapes: jobs.iter().map(|j| (j.input.dim(), j.kernel.dim())).collect(),
            tile_gain: self.config.tile_gain,
        };
        kernel_groups.sort_by_key(|g| g[0]);
        let (kernel_groups, diagonal) = self.diagonal_sets(jobs, kernel_groups);
        for group in kernel_groups {
            let kernel = plan.kernels.len();
            plan.kernels.push(group[0]);
            let tiles: Vec<Tile> = group.iter().flat_map(|&i| self.input_pieces(i, &jobs[i])).collect();
            for tiles in self.pack(tiles)? {
                plan.frames.push(FramePlan {
                    layout: Layout::InputTiling { kernel },
                    tiles,
                });
            }
        }
        for set in cross {
            plan.frames.extend(self.cross_frames(&set));
        }
        plan.frames.extend(diagonal);
        for group in input_groups {
            let tiles: Vec<Tile> = group.iter().map(|&i| kernel_tile(i, &jobs[i])).collect();
            for tiles in self.pack(tiles)? {
                plan.frames.push(FramePlan {
                    layout: Layout::KernelTiling { input_job: group[0] },
                    tiles,
                });
            }
        }
        if self.config.guard.is_none() {
            plan.verify()?;
        }
        Ok(plan)
    }

    /// The sets of jobs that form a complete cross product — inputs (by
    /// `input_key`) that each take the same kernels (by content), with one mode and
    /// one shape — where cross tiling needs fewer frames than input tiling (or as
    /// few with fewer filters).
    fn cross_sets(&self, jobs: &[ConvJob], kernel_id: &[usize], input_key: &[usize]) -> Vec<CrossSet> {
        // Jobs of each input, inputs in order of first appearance.
        let mut order: Vec<usize> = Vec::new();
        let mut by_input: FxMap<usize, Vec<usize>> = FxMap::default();
        for (i, &key) in input_key.iter().enumerate() {
            by_input
                .entry(key)
                .or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                })
                .push(i);
        }
        type Signature = (Vec<usize>, Mode, [usize; 4]);
        let mut sets: Vec<(Signature, Vec<Vec<usize>>)> = Vec::new();
        let mut index: FxMap<Signature, usize> = FxMap::default();
        for key in order {
            let mut js = by_input.remove(&key).expect("listed");
            js.sort_by_key(|&i| (kernel_id[i], i));
            let j0 = &jobs[js[0]];
            let (n, k) = (j0.input.dim(), j0.kernel.dim());
            let ids: Vec<usize> = js.iter().map(|&i| kernel_id[i]).collect();
            let uniform = js.iter().all(|&i| jobs[i].mode == j0.mode && jobs[i].kernel.dim() == k)
                && ids.windows(2).all(|w| w[0] < w[1]);
            if js.len() < 2 || !uniform {
                continue;
            }
            let sig = (ids, j0.mode, [n.0, n.1, k.0, k.1]);
            let at = *index.entry(sig.clone()).or_insert_with(|| {
                sets.push((sig, Vec::new()));
                sets.len() - 1
            });
            sets[at].1.push(js);
        }
        sets.into_iter()
            .filter_map(|((ids, _, _), inputs)| {
                let (m, n) = (inputs.len(), ids.len());
                if m < 2 {
                    return None;
                }
                let layout = self.cross_layout(&jobs[inputs[0][0]], m, n)?;
                // kernels_jobs[k][r]: input r with kernel k.
                let kernels_jobs = (0..n).map(|k| inputs.iter().map(|js| js[k]).collect()).collect();
                Some(CrossSet { layout, kernels_jobs })
            })
            .collect()
    }

    /// The cross layout of `m` inputs × `n` kernels shaped like `job`, when it
    /// beats input tiling: kernels per frame `nk` (fewest frames, then fewest
    /// filters), columns and bands.
    fn cross_layout(&self, job: &ConvJob, m: usize, n: usize) -> Option<CrossLayout> {
        let (span, pitch) = self.slot(job);
        let (rows, cols) = (self.frame.0 / pitch[0], self.frame.1 / pitch[1]);
        let nk = cross_kernels_per_frame(m, n, rows, cols)?;
        (nk > 1).then_some(CrossLayout {
            nk,
            pitch,
            bands: rows / nk,
            cols,
            span,
        })
    }

    /// The slot of a job whose whole input is one tile of a grid: its spans and the
    /// pitch `[y, x]` between equal slots (see the module docs on guard bands).
    fn slot(&self, job: &ConvJob) -> ([Span; 2], [usize; 2]) {
        let (n, k) = (job.input.dim(), job.kernel.dim());
        let span = [Span::of(n.0, n.0, k.0, job.mode), Span::of(n.1, n.1, k.1, job.mode)];
        (span, [0, 1].map(|ax| spacing(&span[ax], &span[ax], self.config.guard)))
    }

    /// The frames of one cross set.
    fn cross_frames(&self, set: &CrossSet) -> Vec<FramePlan> {
        let CrossLayout { nk, bands, cols, .. } = set.layout;
        let m = set.kernels_jobs[0].len();
        let per = bands * cols;
        let mut frames = Vec::new();
        for kc in set.kernels_jobs.chunks(nk) {
            for i0 in (0..m).step_by(per) {
                let i1 = (i0 + per).min(m);
                let inputs = (i0..i1).map(|r| kc[0][r]).collect();
                let pairs = (i0..i1)
                    .enumerate()
                    .flat_map(|(ii, r)| kc.iter().enumerate().map(move |(kk, g)| (ii, kk, g[r])))
                    .collect();
                let kernels = kc.iter().map(|g| g[0]).collect();
                frames.push(grid_frame(GridStrategy::Cross, &set.layout, inputs, kernels, pairs));
            }
        }
        frames
    }

    /// Splits kernel groups into those left to input tiling and the frames of the
    /// diagonal pairing of the others: groups of one input shape, kernel shape and
    /// mode whose inputs fit a slot whole, where sharing frames beats one kernel
    /// per frame.
    fn diagonal_sets(&self, jobs: &[ConvJob], groups: Vec<Vec<usize>>) -> (Vec<Vec<usize>>, Vec<FramePlan>) {
        if !self.config.diagonal {
            return (groups, Vec::new());
        }
        type Shape = ((usize, usize), (usize, usize), Mode);
        let shape = |i: usize| -> Shape { (jobs[i].input.dim(), jobs[i].kernel.dim(), jobs[i].mode) };
        let mut sets: Vec<(Shape, Vec<Vec<usize>>)> = Vec::new();
        let mut rest = Vec::new();
        for g in groups {
            let s0 = shape(g[0]);
            if !(g.iter().all(|&i| shape(i) == s0) && self.whole_tile_fits(&jobs[g[0]])) {
                rest.push(g);
                continue;
            }
            match sets.iter_mut().find(|(s, _)| *s == s0) {
                Some((_, set)) => set.push(g),
                None => sets.push((s0, vec![g])),
            }
        }
        let mut frames = Vec::new();
        for (_, set) in sets {
            match (set.len() > 1).then(|| self.diagonal_frames(jobs, &set)).flatten() {
                Some(f) => frames.extend(f),
                None => rest.extend(set),
            }
        }
        rest.sort_by_key(|g| g[0]);
        (rest, frames)
    }

    /// Whether a job's whole input keeps its distance to its own periodic image in
    /// the frame (one slot of a grid).
    fn whole_tile_fits(&self, job: &ConvJob) -> bool {
        let (_, pitch) = self.slot(job);
        pitch[0] <= self.frame.0 && pitch[1] <= self.frame.1
    }

    /// Diagonal pairing of kernel groups that share one shape: `nk` kernels per
    /// frame one slot row apart, and up to `q` inputs of each kernel in the frame's
    /// bands, each wanted with its own kernel only (see [`grouped_kernels_per_frame`]).
    /// `None` when one kernel per frame (input tiling) is as good.
    fn diagonal_frames(&self, jobs: &[ConvJob], groups: &[Vec<usize>]) -> Option<Vec<FramePlan>> {
        let (span, pitch) = self.slot(&jobs[groups[0][0]]);
        let (rows, cols) = (self.frame.0 / pitch[0], self.frame.1 / pitch[1]);
        let m = groups.iter().map(Vec::len).max()?;
        let (nk, q) = grouped_kernels_per_frame(groups.len(), m, rows, cols)?;
        if nk < 2 {
            return None;
        }
        let layout = CrossLayout {
            nk,
            pitch,
            bands: rows / nk,
            cols,
            span,
        };
        let mut frames = Vec::new();
        for kc in groups.chunks(nk) {
            for r0 in (0..m).step_by(q) {
                let (mut inputs, mut pairs) = (Vec::new(), Vec::new());
                for (kk, group) in kc.iter().enumerate() {
                    for &j in group.iter().skip(r0).take(q) {
                        pairs.push((inputs.len(), kk, j));
                        inputs.push(j);
                    }
                }
                if pairs.is_empty() {
                    continue;
                }
                let kernels = kc.iter().map(|g| g[0]).collect();
                frames.push(grid_frame(GridStrategy::Diagonal, &layout, inputs, kernels, pairs));
            }
        }
        Some(frames)
    }

    fn kernel_tile_fits(&self, job: &ConvJob) -> bool {
        let t = kernel_tile(0, job);
        let frame = [self.frame.0, self.frame.1];
        (0..2).all(|ax| spacing(&t.span[ax], &t.span[ax], self.config.guard) <= frame[ax])
    }

    /// Overlap-save blocks of a job's input, each small enough for a frame.
    fn input_pieces(&self, index: usize, job: &ConvJob) -> Vec<Tile> {
        let frame = [self.frame.0, self.frame.1];
        let (n, k) = (job.input.dim(), job.kernel.dim());
        let (n, k) = ([n.0, n.1], [k.0, k.1]);
        let guard = self.config.guard;
        let axis_pieces = |ax: usize| -> Vec<(usize, Span, usize)> {
            let (w0, w1) = job.mode.window(n[ax], k[ax]);
            // The whole input is one tile when it keeps its distance to its own
            // periodic image (e.g. a `full` convolution of n with k in exactly
            // n + k − 1 samples).
            let whole = Span::of(n[ax], n[ax], k[ax], job.mode);
            if spacing(&whole, &whole, guard) <= frame[ax] {
                return vec![(0, whole, 0)];
            }
            let c_max = frame[ax] - k[ax] + 1;
            (w0..w1)
                .step_by(c_max)
                .map(|o0| {
                    let o1 = (o0 + c_max).min(w1);
                    let i0 = o0.saturating_sub(k[ax] - 1);
                    let i1 = o1.min(n[ax]);
                    let t = i1 - i0;
                    let span = Span {
                        t,
                        l: t + k[ax] - 1,
                        a: o0 - i0,
                        b: o1 - i0,
                    };
                    (i0, span, o0 - w0)
                })
                .collect()
        };
        let (ys, xs) = (axis_pieces(0), axis_pieces(1));
        let mut tiles = Vec::with_capacity(ys.len() * xs.len());
        for &(iy, sy, oy) in &ys {
            for &(ix, sx, ox) in &xs {
                tiles.push(Tile {
                    job: index,
                    src: [iy, ix],
                    pos: [0, 0],
                    out: [oy, ox],
                    span: [sy, sx],
                });
            }
        }
        tiles
    }

    /// Shelf packing: tiles sorted by height, rows of tiles left to right, shelves
    /// top to bottom, a new frame when the next shelf does not fit. Every spacing
    /// (within a shelf, between shelves, and across the periodic edges) follows the
    /// rule in the module docs.
    fn pack(&self, mut tiles: Vec<Tile>) -> Result<Vec<Vec<Tile>>, SimError> {
        let g = self.config.guard;
        let (ny, nx) = self.frame;
        tiles.sort_by(|p, q| q.span[0].l.cmp(&p.span[0].l).then(q.span[1].l.cmp(&p.span[1].l)));
        let mut frames: Vec<Vec<Tile>> = Vec::new();
        let mut cur: Vec<Tile> = Vec::new();
        // Shelves of the current frame: first is the top one, `last` the open one.
        let mut first = Shelf::default();
        let mut prev: Option<Shelf> = None;
        let mut last = Shelf::default();
        for mut tile in tiles {
            let (vy, vx) = (tile.span[0], tile.span[1]);
            if spacing(&vy, &vy, g) > ny || spacing(&vx, &vx, g) > nx {
                return Err(SimError::invalid(
                    "guard",
                    g.map_or("auto".to_string(), |g| g.to_string()),
                    format!(
                        "a tile of {:?} samples with this guard needs {}×{} samples, more than the {}×{} frame",
                        tile.size(),
                        spacing(&vy, &vy, g),
                        spacing(&vx, &vx, g),
                        ny,
                        nx
                    ),
                ));
            }
            if !cur.is_empty() {
                // Join the open shelf?
                let l_tile = &cur[cur.len() - 1];
                let x = l_tile.pos[1] + spacing(&l_tile.span[1], &vx, g);
                let row_wraps = x + spacing(&vx, &cur[last.first].span[1], g) <= nx;
                let joined = last.with(&vy);
                let top = if prev.is_none() { joined } else { first };
                let above_ok = prev.is_none_or(|p| last.y - p.y >= p.gap_to(vy.a, g));
                if row_wraps && above_ok && last.y + joined.gap_to(top.min_a, g) <= ny {
                    tile.pos = [last.y, x];
                    last = Shelf { y: last.y, ..joined };
                    if prev.is_none() {
                        first = last;
                    }
                    cur.push(tile);
                    continue;
                }
                // Open a shelf below?
                let y = last.y + last.gap_to(vy.a, g);
                let single = Shelf::default().with(&vy);
                if y + single.gap_to(first.min_a, g) <= ny {
                    prev = Some(last);
                    last = Shelf {
                        y,
                        first: cur.len(),
                        ..single
                    };
                    tile.pos = [y, 0];
                    cur.push(tile);
                    continue;
                }
                frames.push(std::mem::take(&mut cur));
            }
            first = Shelf::default().with(&vy);
            last = first;
            prev = None;
            tile.pos = [0, 0];
            cur.push(tile);
        }
        if !cur.is_empty() {
            frames.push(cur);
        }
        Ok(frames)
    }
}

/// How a cross set is laid out (see [`Layout::Grid`]).
#[derive(Debug, Clone, Copy)]
struct CrossLayout {
    /// Kernels per frame.
    nk: usize,
    /// Slot pitch `[y, x]` of the tile grid.
    pitch: [usize; 2],
    /// Bands of `nk` slot rows, each holding a row of inputs.
    bands: usize,
    /// Inputs per band.
    cols: usize,
    /// Every pair's spans.
    span: [Span; 2],
}

/// Kernel groups whose jobs form a complete cross product of inputs × kernels.
#[derive(Debug, Clone)]
struct CrossSet {
    layout: CrossLayout,
    /// Per kernel, its jobs ordered by input (position r: the same input for all).
    kernels_jobs: Vec<Vec<usize>>,
}

/// Kernels per frame for `m` inputs × `n` kernels on a grid of `rows × cols` tile
/// slots: the count with the fewest frames `⌈n/nk⌉·⌈m/(cols·⌊rows/nk⌋)⌉`, the
/// largest of those (fewest filters); `None` when no slot fits. The latency model
/// (`fourf_hw::frames_for`) uses the same rule.
fn cross_kernels_per_frame(m: usize, n: usize, rows: usize, cols: usize) -> Option<usize> {
    if rows == 0 || cols == 0 || m == 0 || n == 0 {
        return None;
    }
    (1..=n.min(rows))
        .map(|nk| (n.div_ceil(nk) * m.div_ceil(cols * (rows / nk)), nk))
        .min_by_key(|&(frames, nk)| (frames, std::cmp::Reverse(nk)))
        .map(|(_, nk)| nk)
}

/// A grid frame of `layout`: input `ii` (the input of job `inputs[ii]`) in band
/// `ii / cols`, column `ii % cols`; kernel `kk` (of job `kernels[kk]`) `kk` slot rows
/// down the kernel plane; one tile per `(ii, kk, job)` of `pairs`.
fn grid_frame(
    strategy: GridStrategy,
    layout: &CrossLayout,
    inputs: Vec<usize>,
    kernels: Vec<usize>,
    pairs: Vec<(usize, usize, usize)>,
) -> FramePlan {
    let CrossLayout {
        nk,
        pitch: [py, px],
        cols,
        span,
        ..
    } = *layout;
    let at = |ii: usize| [(ii / cols) * nk * py, (ii % cols) * px];
    let tiles = pairs
        .iter()
        .map(|&(ii, kk, job)| Tile {
            job,
            src: [0, 0],
            pos: [at(ii)[0] + kk * py, at(ii)[1]],
            out: [0, 0],
            span,
        })
        .collect();
    FramePlan {
        layout: Layout::Grid {
            strategy,
            inputs: inputs.into_iter().enumerate().map(|(ii, j)| (j, at(ii))).collect(),
            kernels: kernels
                .into_iter()
                .enumerate()
                .map(|(kk, j)| (j, [kk * py, 0]))
                .collect(),
            tile_input: pairs.iter().map(|p| p.0).collect(),
            tile_kernel: pairs.iter().map(|p| p.1).collect(),
        },
        tiles,
    }
}

/// Whether the circular intervals `[s1, s1 + l1)` and `[s2, s2 + l2)` of `Z_n`
/// meet (lengths at least 1).
fn circular_overlap(s1: usize, l1: usize, s2: usize, l2: usize, n: usize) -> bool {
    l1 >= n || l2 >= n || (s2 + n - s1 % n) % n < l1 || (s1 + n - s2 % n) % n < l2
}

/// Calls `f` with every cell of width `c` on `Z_n` that the circular interval
/// `[s, s + l)` touches (each once when `l ≤ c`, as every block and window here is).
fn for_cells(s: usize, l: usize, c: usize, n: usize, mut f: impl FnMut(usize)) {
    if l >= n {
        (0..n.div_ceil(c)).for_each(f);
        return;
    }
    let (mut pos, mut rem, mut last) = (s % n, l, [usize::MAX; 2]);
    while rem > 0 {
        let cell = pos / c;
        if !last.contains(&cell) {
            f(cell);
            last = [last[1], cell];
        }
        let step = (((cell + 1) * c).min(n) - pos).min(rem);
        rem -= step;
        pos = (pos + step) % n;
    }
}

/// Checks one frame's placement on a `frame` of samples (see [`Plan::verify`]):
/// the first tile whose kept window is reached, and by which pair (`None`: its own
/// block's periodic image). Pair blocks are bucketed in cells as wide as the
/// widest block, so the check is linear in the number of pairs.
pub(crate) fn check_placement(frame: (usize, usize), p: &Placement) -> Result<(), (usize, Option<(usize, usize)>)> {
    let n = [frame.0, frame.1];
    let block = |i: usize, k: usize| -> ([usize; 2], [usize; 2]) {
        let (a, b) = (&p.inputs[i], &p.kernels[k]);
        ([a[0] + b[0], a[1] + b[1]], [a[2] + b[2] - 1, a[3] + b[3] - 1])
    };
    let pairs: Vec<(usize, usize)> = (0..p.inputs.len())
        .flat_map(|i| (0..p.kernels.len()).map(move |k| (i, k)))
        .collect();
    let mut cell = [1usize; 2];
    for &(i, k) in &pairs {
        let (_, l) = block(i, k);
        for ax in 0..2 {
            cell[ax] = cell[ax].max(l[ax].min(n[ax]));
        }
    }
    let count = [n[0].div_ceil(cell[0]), n[1].div_ceil(cell[1])];
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); count[0] * count[1]];
    for (pi, &(i, k)) in pairs.iter().enumerate() {
        let (o, l) = block(i, k);
        for_cells(o[0], l[0], cell[0], n[0], |cy| {
            for_cells(o[1], l[1], cell[1], n[1], |cx| buckets[cy * count[1] + cx].push(pi))
        });
    }
    // Pairs wanted at one window sum there (a channel sum): they may meet.
    let wanted_at: FxMap<(usize, usize), Rect> = p.wanted.iter().copied().collect();
    for (t, &((i, k), w)) in p.wanted.iter().enumerate() {
        let (o, l) = block(i, k);
        // Its own block's images one period away: relative to the block, the image
        // one period back covers [−N, l − N) and the one a period on [N, N + l).
        let aliased = (0..2).any(|ax| {
            w[ax]
                .checked_sub(o[ax])
                .is_none_or(|a| a < l[ax].saturating_sub(n[ax]) || a + w[ax + 2] > n[ax])
        });
        if aliased {
            return Err((t, None));
        }
        // A pair in several of the window's cells is checked once per cell.
        let mut hit = None;
        for_cells(w[0], w[2], cell[0], n[0], |cy| {
            for_cells(w[1], w[3], cell[1], n[1], |cx| {
                for &pi in &buckets[cy * count[1] + cx] {
                    let other = pairs[pi];
                    if hit.is_some() || other == (i, k) || wanted_at.get(&other) == Some(&w) {
                        continue;
                    }
                    let (ob, lb) = block(other.0, other.1);
                    if (0..2).all(|ax| circular_overlap(ob[ax], lb[ax], w[ax], w[ax + 2], n[ax])) {
                        hit = Some(other);
                    }
                }
            })
        });
        if let Some(other) = hit {
            return Err((t, Some(other)));
        }
    }
    Ok(())
}

/// Diagonal pairing of `g` kernel groups of up to `m` jobs each (every job its own
/// input) on `rows × cols` slots: `nk` kernels per frame one slot row apart and the
/// frame's `cols·⌊rows/nk⌋` input slots shared among them, `q = ⌊cols·⌊rows/nk⌋/nk⌋`
/// inputs per kernel. The `(nk, q)` with the fewest frames `⌈g/nk⌉·⌈m/q⌉`, then the
/// fewest filters `⌈g/nk⌉`; `nk = 1` is input tiling. `None` when no slot fits. The
/// latency model (`fourf_hw::frames_for`) uses the same rule.
fn grouped_kernels_per_frame(g: usize, m: usize, rows: usize, cols: usize) -> Option<(usize, usize)> {
    if rows == 0 || cols == 0 || m == 0 || g == 0 {
        return None;
    }
    (1..=g.min(rows))
        .filter_map(|nk| {
            let q = (cols * (rows / nk) / nk).min(m);
            (q > 0).then(|| ((g.div_ceil(nk) * m.div_ceil(q), g.div_ceil(nk)), (nk, q)))
        })
        .min_by_key(|&(cost, _)| cost)
        .map(|(_, nq)| nq)
}

/// For each item, the index of its content class (equal shape and bits).
fn content_ids<'a>(items: impl Iterator<Item = ArrayView2<'a, f64>>) -> Vec<usize> {
    // Views of the same memory are equal without looking: hash each array once.
    let mut distinct: Vec<ArrayView2<'a, f64>> = Vec::new();
    let mut seen: FxMap<Identity, usize> = FxMap::default();
    let which: Vec<usize> = items
        .map(|a| {
            *seen.entry(identity(&a)).or_insert_with(|| {
                distinct.push(a);
                distinct.len() - 1
            })
        })
        .collect();
    let ids = ids_of(group_by_content(distinct.into_iter().enumerate()), seen.len());
    which.into_iter().map(|d| ids[d]).collect()
}

/// Where an array's samples are: its first sample's address, shape and strides.
type Identity = (usize, (usize, usize), [isize; 2]);

fn identity(a: &ArrayView2<f64>) -> Identity {
    let st = a.strides();
    (a.as_ptr() as usize, a.dim(), [st[0], st[1]])
}

/// Each of `n` indices' group number, from groups of indices.
fn ids_of(groups: Vec<Vec<usize>>, n: usize) -> Vec<usize> {
    let mut ids = vec![0; n];
    for (g, members) in groups.into_iter().enumerate() {
        for i in members {
            ids[i] = g;
        }
    }
    ids
}

/// A row of tiles: its top, its first tile and the vertical spans it holds.
#[derive(Debug, Clone, Copy)]
struct Shelf {
    y: usize,
    first: usize,
    /// Largest `t`, `l` and `b`, smallest `a` of the tiles' vertical spans.
    max_t: usize,
    max_l: usize,
    max_b: usize,
    min_a: usize,
}

impl Default for Shelf {
    fn default() -> Self {
        Self {
            y: 0,
            first: 0,
            max_t: 0,
            max_l: 0,
            max_b: 0,
            min_a: usize::MAX,
        }
    }
}

impl Shelf {
    fn with(&self, v: &Span) -> Shelf {
        Shelf {
            max_t: self.max_t.max(v.t),
            max_l: self.max_l.max(v.l),
            max_b: self.max_b.max(v.b),
            min_a: self.min_a.min(v.a),
            ..*self
        }
    }

    /// Least distance from this shelf's top to a shelf below whose tiles keep
    /// windows starting at `a` or later: the largest pairwise spacing.
    fn gap_to(&self, a: usize, guard: Option<usize>) -> usize {
        match guard {
            Some(g) => self.max_t + g,
            None => (self.max_l - a.min(self.max_l)).max(self.max_b),
        }
    }
}

/// Indices grouped by equal id (`(index, id)` pairs), groups in order of first
/// appearance.
fn group_by_id(items: impl Iterator<Item = (usize, usize)>) -> Vec<Vec<usize>> {
    let mut index: FxMap<usize, usize> = FxMap::default();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, id) in items {
        let g = *index.entry(id).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

/// Indices grouped by identical array content (shape and bits), groups in order of
/// first appearance.
fn group_by_content<'a>(items: impl Iterator<Item = (usize, ArrayView2<'a, f64>)>) -> Vec<Vec<usize>> {
    // A 64-bit mix of shape and bits finds the candidates; equal content decides.
    let mut index: FxMap<u64, Vec<usize>> = FxMap::default();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut first: Vec<ArrayView2<'a, f64>> = Vec::new();
    for (i, a) in items {
        let h = content_hash(a);
        let same = |g: &usize| same_bits(first[*g], a);
        let candidates = index.entry(h).or_default();
        let g = match candidates.iter().find(|g| same(g)) {
            Some(&g) => g,
            None => {
                groups.push(Vec::new());
                first.push(a);
                candidates.push(groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[g].push(i);
    }
    groups
}

fn kernel_tile(index: usize, job: &ConvJob) -> Tile {
    let (n, k) = (job.input.dim(), job.kernel.dim());
    let span = |n: usize, k: usize| Span::of(k, n, k, job.mode);
    Tile {
        job: index,
        src: [0, 0],
        pos: [0, 0],
        out: [0, 0],
        span: [span(n.0, k.0), span(n.1, k.1)],
    }
}

fn check_array(job: usize, what: &'static str, a: &ndarray::ArrayView2<f64>) -> Result<(), SimError> {
    if a.is_empty() {
        return Err(SimError::Empty {
            job,
            what,
            shape: a.dim(),
        });
    }
    // A plain pass first (the usual case); the index only when something is off.
    if a.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    if let Some((index, &value)) = a.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(SimError::NotFinite {
            job,
            what,
            value,
            index,
        });
    }
    Ok(())
}

impl Plan {
    /// Number of frames.
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// Frame shape the plan was made for.
    pub fn frame_shape(&self) -> (usize, usize) {
        self.frame
    }

    /// Counts and fill factor.
    pub fn stats(&self) -> PlanStats {
        let tiles = self.frames.iter().map(|f| f.tiles.len()).sum();
        // Consecutive grid frames with the same kernels share their filter.
        let filters = self.kernels.len()
            + self
                .frames
                .iter()
                .enumerate()
                .filter(|(i, f)| match &f.layout {
                    Layout::KernelTiling { .. } => true,
                    Layout::Grid { .. } => *i == 0 || !self.same_grid_filter(i - 1, *i),
                    Layout::InputTiling { .. } => false,
                })
                .count();
        let carried: usize = self
            .frames
            .iter()
            .map(|f| match &f.layout {
                Layout::InputTiling { .. } => f.tiles.iter().map(|t| t.size()[0] * t.size()[1]).sum(),
                Layout::KernelTiling { input_job } => {
                    let (n, _) = self.job_shapes[*input_job];
                    n.0 * n.1
                }
                Layout::Grid { inputs, .. } => inputs
                    .iter()
                    .map(|&(j, _)| self.job_shapes[j].0 .0 * self.job_shapes[j].0 .1)
                    .sum(),
            })
            .sum();
        let area = (self.frame.0 * self.frame.1 * self.frames.len()).max(1);
        PlanStats {
            frames: self.frames.len(),
            tiles,
            filters,
            utilisation: carried as f64 / area as f64,
        }
    }

    /// The geometry of frame `index`: where its input and kernel tiles sit, and the
    /// pair and kept window of each of its tiles.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn placement(&self, index: usize) -> Placement {
        let frame = &self.frames[index];
        let rect = |p: [usize; 2], (h, w): (usize, usize)| [p[0], p[1], h, w];
        let window = Tile::window;
        let tiles = frame.tiles.iter();
        match &frame.layout {
            Layout::InputTiling { kernel } => Placement {
                inputs: tiles.clone().map(|t| rect(t.pos, (t.size()[0], t.size()[1]))).collect(),
                kernels: vec![rect([0, 0], self.job_shapes[self.kernels[*kernel]].1)],
                wanted: tiles.enumerate().map(|(i, t)| ((i, 0), window(t))).collect(),
            },
            Layout::KernelTiling { input_job } => Placement {
                inputs: vec![rect([0, 0], self.job_shapes[*input_job].0)],
                kernels: tiles.clone().map(|t| rect(t.pos, self.job_shapes[t.job].1)).collect(),
                wanted: tiles.enumerate().map(|(k, t)| ((0, k), window(t))).collect(),
            },
            Layout::Grid {
                inputs,
                kernels,
                tile_input,
                tile_kernel,
                ..
            } => Placement {
                inputs: inputs.iter().map(|&(j, p)| rect(p, self.job_shapes[j].0)).collect(),
                kernels: kernels.iter().map(|&(j, p)| rect(p, self.job_shapes[j].1)).collect(),
                wanted: tiles
                    .zip(tile_input.iter().zip(tile_kernel))
                    .map(|(t, (&i, &k))| ((i, k), window(t)))
                    .collect(),
            },
        }
    }

    /// Proves every frame's placement valid: no tile's kept window is reached by
    /// the block of any other (input, kernel) pair of its frame, nor by its own
    /// block's periodic image, the wrap of the periodic frame included. The planner
    /// runs it on every plan with the automatic guard; a fixed
    /// [`PlannerConfig::guard`] may leak, and this says where.
    pub fn verify(&self) -> Result<(), SimError> {
        for f in 0..self.frames.len() {
            if let Err((tile, by)) = check_placement(self.frame, &self.placement(f)) {
                return Err(SimError::Overlap {
                    frame: f,
                    job: self.frames[f].tiles[tile].job,
                    by: match by {
                        Some((i, k)) => format!("the block of input tile {i} with kernel tile {k}"),
                        None => "the periodic image of its own block".to_string(),
                    },
                });
            }
        }
        Ok(())
    }

    /// The gain of an input tile: its largest magnitude with
    /// [`PlannerConfig::tile_gain`] (1 for an all-zero tile), else 1.
    fn gain_of(&self, tile: ArrayView2<f64>) -> f64 {
        let peak = max_abs(tile);
        if self.tile_gain && peak > 0.0 {
            peak
        } else {
            1.0
        }
    }

    /// Runs of consecutive frames that share one filter, programmed once: an
    /// input-tiling group or a grid's frames with the same kernels (`true`), or
    /// kernel-tiled frames, each with its own filter (`false`). `(start, end,
    /// shared)`.
    fn filter_groups(&self) -> Vec<(usize, usize, bool)> {
        let mut groups = Vec::new();
        let mut start = 0;
        while start < self.frames.len() {
            let mut end = start + 1;
            let same = |a: usize, b: usize| match (&self.frames[a].layout, &self.frames[b].layout) {
                (l @ Layout::InputTiling { .. }, m) => l == m,
                (Layout::KernelTiling { .. }, m) => matches!(m, Layout::KernelTiling { .. }),
                (Layout::Grid { .. }, _) => self.same_grid_filter(a, b),
            };
            while end < self.frames.len() && same(start, end) {
                end += 1;
            }
            let shared = !matches!(self.frames[start].layout, Layout::KernelTiling { .. });
            groups.push((start, end, shared));
            start = end;
        }
        groups
    }

    /// The camera pixels frame `index` keeps: its tiles' kept windows, wrapped.
    fn read_region(&self, index: usize) -> ReadRegion {
        let windows: Vec<Rect> = self.frames[index].tiles.iter().map(Tile::window).collect();
        ReadRegion::periodic(self.frame, &windows)
    }

    /// Whether frames `a` and `b` are grid frames with the same kernels (one filter).
    fn same_grid_filter(&self, a: usize, b: usize) -> bool {
        match (&self.frames[a].layout, &self.frames[b].layout) {
            (Layout::Grid { kernels: ka, .. }, Layout::Grid { kernels: kb, .. }) => ka == kb,
            _ => false,
        }
    }

    fn check_jobs(&self, jobs: &[ConvJob]) {
        assert_eq!(
            jobs.len(),
            self.job_shapes.len(),
            "Plan: executed with a different number of jobs"
        );
        for (i, j) in jobs.iter().enumerate() {
            assert_eq!(
                (j.input.dim(), j.kernel.dim()),
                self.job_shapes[i],
                "Plan: job {i} differs from the one planned"
            );
        }
    }

    /// The input plane (pixel values, physical order) and kernel plane (FFT order)
    /// of frame `index`.
    ///
    /// # Panics
    /// If `jobs` are not the ones planned or `index` is out of range.
    pub fn frame_planes(&self, index: usize, jobs: &[ConvJob]) -> (Array2<f64>, Array2<f64>) {
        self.check_jobs(jobs);
        let mut input = Array2::<f64>::zeros(self.frame);
        self.write_input(index, jobs, &mut input);
        (input, self.frame_kernel(index, jobs))
    }

    /// Writes the input plane of frame `index` into `input` (frame-sized, zeroed
    /// first) and returns the rectangles that carry data and each tile's gain (what
    /// its kept outputs are multiplied by; see [`PlannerConfig::tile_gain`]).
    fn write_input(&self, index: usize, jobs: &[ConvJob], input: &mut Array2<f64>) -> (Vec<Rect>, Vec<f64>) {
        let frame = &self.frames[index];
        input.fill(0.0);
        let mut support = Vec::with_capacity(frame.tiles.len());
        let mut gains = vec![1.0; frame.tiles.len()];
        let mut put = |pos: [usize; 2], src: ndarray::ArrayView2<f64>, gain: f64| {
            let (h, w) = src.dim();
            let mut dst = input.slice_mut(s![pos[0]..pos[0] + h, pos[1]..pos[1] + w]);
            dst.zip_mut_with(&src, |d, &v| *d = v / gain);
            support.push([pos[0], pos[1], h, w]);
        };
        match &frame.layout {
            Layout::InputTiling { .. } => {
                for (t, gain) in frame.tiles.iter().zip(gains.iter_mut()) {
                    let [h, w] = t.size();
                    let src = jobs[t.job]
                        .input
                        .slice(s![t.src[0]..t.src[0] + h, t.src[1]..t.src[1] + w]);
                    *gain = self.gain_of(src);
                    put(t.pos, src, *gain);
                }
            }
            Layout::KernelTiling { input_job } => put([0, 0], jobs[*input_job].input.view(), 1.0),
            Layout::Grid { inputs, tile_input, .. } => {
                let mut input_gain = vec![1.0; inputs.len()];
                for (&(j, pos), gain) in inputs.iter().zip(input_gain.iter_mut()) {
                    *gain = self.gain_of(jobs[j].input);
                    put(pos, jobs[j].input, *gain);
                }
                for (g, &i) in gains.iter_mut().zip(tile_input) {
                    *g = input_gain[i];
                }
            }
        }
        (support, gains)
    }

    fn frame_kernel(&self, index: usize, jobs: &[ConvJob]) -> Array2<f64> {
        let frame = &self.frames[index];
        let mut kernel = Array2::<f64>::zeros(self.frame);
        let mut put = |pos: [usize; 2], k: &Array2<f64>| {
            kernel
                .slice_mut(s![pos[0]..pos[0] + k.nrows(), pos[1]..pos[1] + k.ncols()])
                .assign(k)
        };
        match &frame.layout {
            Layout::InputTiling { kernel: k } => put([0, 0], &jobs[self.kernels[*k]].effective_kernel()),
            Layout::KernelTiling { .. } => {
                for t in &frame.tiles {
                    put(t.pos, &jobs[t.job].effective_kernel());
                }
            }
            Layout::Grid { kernels, .. } => {
                for &(j, pos) in kernels {
                    put(pos, &jobs[j].effective_kernel());
                }
            }
        }
        kernel
    }

    /// Runs every frame on `machine` and returns one output per job. Frame `f`
    /// draws its noise from a generator seeded by `(seed, f)`, so results do not
    /// depend on how frames are spread over threads.
    ///
    /// Errors when the machine's detection cannot represent the inputs.
    ///
    /// # Panics
    /// If `jobs` are not the ones planned or the machine's frame shape differs.
    pub fn execute(&self, machine: &FourF, jobs: &[ConvJob], seed: u64) -> Result<Execution, SimError> {
        self.execute_with_progress(machine, jobs, seed, &|| {})
    }

    /// [`Plan::execute`], calling `frame_done` once after every frame (from any
    /// thread), e.g. to advance a progress bar.
    ///
    /// # Panics
    /// As [`Plan::execute`].
    pub fn execute_with_progress(
        &self,
        machine: &FourF,
        jobs: &[ConvJob],
        seed: u64,
        frame_done: &(dyn Fn() + Sync),
    ) -> Result<Execution, SimError> {
        self.check_jobs(jobs);
        assert_eq!(machine.frame_shape(), self.frame, "Plan::execute: machine frame shape");
        let mut outputs: Vec<Array2<f64>> = self.output_shapes.iter().map(|&s| Array2::zeros(s)).collect();
        // Intensity detection returns |y|²: a tile's gain comes back squared.
        let square_law = machine.config().detection.scheme == crate::devices::detection::Scheme::Intensity;
        let (mut passes, mut exposures) = (0, 0);
        let frame_kernel = |f: usize| self.frame_kernel(f, jobs);
        let groups = self.filter_groups();
        let results = run_frames(
            machine,
            self.frame,
            &groups,
            &frame_kernel,
            |(scratch, plane), f, mask| {
                let (support, gains) = self.write_input(f, jobs, plane);
                let mut rng = StdRng::seed_from_u64(frame_seed(seed, f));
                let read = self.read_region(f);
                let det = machine.detect_frame_reading(plane.view(), &support, mask, scratch, &mut rng, Some(&read))?;
                let tiles = self.frames[f]
                    .tiles
                    .iter()
                    .zip(&gains)
                    .map(|(t, &g)| read_tile(&det.values, t) * if square_law { g * g } else { g })
                    .collect::<Vec<_>>();
                frame_done();
                Ok((f, tiles, det.passes, det.exposures))
            },
        )?;
        for (f, tiles, p, e) in results {
            passes += p;
            exposures += e;
            for (t, vals) in self.frames[f].tiles.iter().zip(tiles) {
                let [h, w] = t.kept();
                outputs[t.job]
                    .slice_mut(s![t.out[0]..t.out[0] + h, t.out[1]..t.out[1] + w])
                    .assign(&vals);
            }
        }
        Ok(Execution {
            outputs,
            frames: self.frames.len(),
            passes,
            exposures,
        })
    }
}

/// A frame's working memory: the machine's scratch and a frame-sized input plane.
pub(crate) type FrameState = (FrameScratch, Array2<f64>);

/// Runs frames `0..` in `groups` of `(start, end, shared)`: a shared group programs
/// the filter `frame_kernel(start)` once for all its frames, any other frame its
/// own. Small frames run in parallel (the groups and a group's frames), big ones
/// one at a time, each spread over the threads. Results in frame order.
pub(crate) fn run_frames<T: Send>(
    machine: &FourF,
    frame: (usize, usize),
    groups: &[(usize, usize, bool)],
    frame_kernel: &(dyn Fn(usize) -> Array2<f64> + Sync),
    run: impl Fn(&mut FrameState, usize, &Mask) -> Result<T, SimError> + Sync,
) -> Result<Vec<T>, SimError> {
    let (gy, gx) = machine.grid_shape();
    let one = |state: &mut FrameState, f: usize, shared: Option<&Mask>| match shared {
        Some(mask) => run(state, f, mask),
        None => {
            let own = machine.program_cached(frame_kernel(f).view(), Some(&mut state.0));
            run(state, f, &own)
        }
    };
    if gy * gx <= SMALL_FRAME {
        // Working memory per worker, not per frame: many groups (a frame each, as
        // attention scores have) run their frames in turn; a few big groups split
        // their frames over the threads.
        let state = || (machine.make_scratch(false), Array2::<f64>::zeros(frame));
        let many = groups.len() >= 2 * rayon::current_num_threads();
        let per_group: Vec<Vec<T>> = groups
            .par_iter()
            .map_init(state, |st, &(start, end, shared)| {
                let mask = shared.then(|| machine.program_cached(frame_kernel(start).view(), Some(&mut st.0)));
                if many {
                    (start..end).map(|f| one(st, f, mask.as_deref())).collect()
                } else {
                    (start..end)
                        .into_par_iter()
                        .map_init(state, |st, f| one(st, f, mask.as_deref()))
                        .collect::<Result<Vec<_>, _>>()
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(per_group.into_iter().flatten().collect())
    } else {
        let mut state = (machine.make_scratch(true), Array2::<f64>::zeros(frame));
        let mut all = Vec::new();
        for &(start, end, shared) in groups {
            let mask = shared.then(|| machine.program_cached(frame_kernel(start).view(), Some(&mut state.0)));
            for f in start..end {
                all.push(one(&mut state, f, mask.as_deref())?);
            }
        }
        Ok(all)
    }
}

/// The outputs of an executed plan and what they cost.
#[derive(Debug, Clone)]
pub struct Execution {
    /// One output per job.
    pub outputs: Vec<Array2<f64>>,
    /// Frames (distinct layouts of the input SLM).
    pub frames: usize,
    /// Optical passes (frames × signed-input passes × bit planes).
    pub passes: usize,
    /// Camera exposures (passes × exposures per pass of the detection scheme).
    pub exposures: usize,
}

/// Seed of frame `f`'s generator: the SplitMix64 finaliser of the run seed and
/// the index (XOR-combined, as in every earlier release).
pub(crate) fn frame_seed(seed: u64, f: usize) -> u64 {
    crate::rng::mix64(seed ^ (f as u64).wrapping_mul(crate::rng::GOLDEN))
}

fn read_tile(values: &Array2<f64>, t: &Tile) -> Array2<f64> {
    let [sy, sx] = t.span;
    let (ny, nx) = values.dim();
    Array2::from_shape_fn((sy.b - sy.a, sx.b - sx.a), |(i, j)| {
        values[[(t.pos[0] + sy.a + i) % ny, (t.pos[1] + sx.a + j) % nx]]
    })
}

/// Plans and executes `jobs` on `machine` with the default planner; returns the
/// outputs and the plan (for its frame count).
pub fn convolve(machine: &FourF, jobs: &[ConvJob]) -> Result<(Vec<Array2<f64>>, Plan), SimError> {
    let plan = Planner::new(machine.frame_shape(), PlannerConfig::default()).plan(jobs)?;
    let out = plan.execute(machine, jobs, 0)?;
    Ok((out.outputs, plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input tiles of `h × w` at `positions` with one `k × k` kernel at the origin,
    /// each tile keeping its whole `full` convolution.
    fn full_tiles(positions: &[[usize; 2]], (h, w): (usize, usize), k: usize) -> Placement {
        Placement {
            inputs: positions.iter().map(|p| [p[0], p[1], h, w]).collect(),
            kernels: vec![[0, 0, k, k]],
            wanted: positions
                .iter()
                .enumerate()
                .map(|(i, p)| ((i, 0), [p[0], p[1], h + k - 1, w + k - 1]))
                .collect(),
        }
    }

    #[test]
    fn the_checker_rejects_overlaps_across_the_wrap_and_own_images() {
        // Two 6 × 6 tiles with a 3 × 3 kernel (8-sample blocks) on a 16 × 16 frame.
        assert_eq!(
            check_placement((16, 16), &full_tiles(&[[0, 0], [0, 8]], (6, 6), 3)),
            Ok(())
        );
        // One sample to the right: the second block wraps onto the first window.
        assert_eq!(
            check_placement((16, 16), &full_tiles(&[[0, 0], [0, 9]], (6, 6), 3)),
            Err((0, Some((1, 0))))
        );
        // Side by side with one sample too few, inside the frame.
        assert_eq!(
            check_placement((16, 16), &full_tiles(&[[0, 0], [0, 7]], (6, 6), 3)),
            Err((0, Some((1, 0))))
        );
        // A block exactly a frame wide keeps clear of its own image; one sample
        // more lands on itself.
        assert_eq!(check_placement((16, 16), &full_tiles(&[[0, 0]], (14, 6), 3)), Ok(()));
        assert_eq!(
            check_placement((16, 16), &full_tiles(&[[0, 0]], (15, 6), 3)),
            Err((0, None))
        );
        // A kernel-plane offset moves every block: two kernels for one input, the
        // second one 7 rows down, overlap the first pair's 8-row window.
        let p = Placement {
            inputs: vec![[0, 0, 6, 6]],
            kernels: vec![[0, 0, 3, 3], [7, 0, 3, 3]],
            wanted: vec![((0, 0), [0, 0, 8, 8]), ((0, 1), [7, 0, 8, 8])],
        };
        assert_eq!(check_placement((16, 16), &p), Err((0, Some((0, 1)))));
    }

    #[test]
    fn diagonal_pairing_uses_the_fewest_frames_then_filters() {
        // 4 × 4 slots: four channels per frame at batch 1; two kernels with four
        // maps each at batch 4; one kernel per frame (input tiling) at batch 16.
        assert_eq!(grouped_kernels_per_frame(8, 1, 4, 4), Some((4, 1)));
        assert_eq!(grouped_kernels_per_frame(8, 4, 4, 4), Some((2, 4)));
        assert_eq!(grouped_kernels_per_frame(8, 16, 4, 4), Some((1, 16)));
        assert_eq!(grouped_kernels_per_frame(8, 1, 0, 4), None);
    }
}
