//! What a machine keeps between calls: programmed filters and plans.
//!
//! A network's weight kernels are the same in every batch, and so are the plans of
//! its ops at one batch size. A [`FourF`](crate::FourF) keeps both, so that an
//! evaluation programs each weight filter and plans each op once, not once per
//! batch. Both caches return exactly what a fresh computation would (a filter is
//! found by its kernel plane's bits, a plan by everything it depends on), so they
//! change no result, only the time.
//!
//! - Filters are kept on their second sighting: kernels that are data (attention
//!   keys) are seen once and would only fill the cache. At most
//!   [`MASK_CACHE_BYTES`] are kept; past that, new filters are programmed as
//!   before and not kept.
//! - Plans are found by frame, planner settings, every job's shapes, mode and op,
//!   and which jobs share an input and a kernel; at most [`PLAN_CACHE_PLANS`] are
//!   kept (the cache starts over when full).
//!
//! A clone of a machine starts with empty caches.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use ndarray::{Array2, ArrayView2};

use crate::conv::{Mode, Op};
use crate::machine::Mask;
use crate::planner::{Plan, PlannerConfig};

/// Bytes of programmed filters (and their kernel planes) a machine keeps.
pub const MASK_CACHE_BYTES: usize = 512 << 20;

/// Plans a machine keeps.
pub const PLAN_CACHE_PLANS: usize = 4096;

/// Kernels remembered as seen once (the cache forgets them all when full).
const SEEN_KERNELS: usize = 1 << 20;

/// FxHash's step (rustc's hasher) per word and a SplitMix64 finaliser: for the
/// small keys of the caches and the planner (shapes, addresses, indices), where
/// SipHash's resistance to chosen keys buys nothing and costs a tenth of an
/// evaluation. Deterministic; the maps it serves are looked up, never iterated
/// in an order that reaches a result.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const FX_K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_K);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        // The multiply leaves low bits that depend only on the keys' low bits
        // (addresses are aligned): mix before the table takes its bucket bits.
        crate::rng::mix64(self.0)
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
/// A `HashSet` with [`FxHasher`].
pub(crate) type FxSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// A 64-bit hash of an array's shape and bits: one multiply per sample (FxHash's
/// step), mixed once at the end. Equal arrays hash equal; callers compare contents
/// to decide.
pub(crate) fn content_hash(a: ArrayView2<f64>) -> u64 {
    let mut h = FxHasher((a.nrows() as u64) << 32 ^ a.ncols() as u64);
    for v in a.iter() {
        h.add(v.to_bits());
    }
    h.finish()
}

/// Whether two arrays have the same shape and bits.
pub(crate) fn same_bits(a: ArrayView2<f64>, b: ArrayView2<f64>) -> bool {
    a.dim() == b.dim() && a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Kept filters with their kernel planes, by the planes' hash.
type Kept = FxMap<u64, Vec<(Array2<f64>, Arc<Mask>)>>;

/// A job's input shape, kernel shape, mode and op.
pub(crate) type JobShape = ((usize, usize), (usize, usize), Mode, Op);

#[derive(Debug, Default)]
struct MaskState {
    seen: FxSet<u64>,
    kept: Kept,
    bytes: usize,
    hits: u64,
}

/// Programmed filters by kernel plane.
#[derive(Debug, Default)]
pub(crate) struct MaskCache {
    state: Mutex<MaskState>,
}

impl Clone for MaskCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl MaskCache {
    /// The filter of `kernel`: a kept one, or `program()`'s (kept when `kernel`
    /// was seen before and there is room).
    pub(crate) fn get_or_program(&self, kernel: ArrayView2<f64>, program: impl FnOnce() -> Mask) -> Arc<Mask> {
        let h = content_hash(kernel);
        let keep = {
            let mut s = self.state.lock().expect("mask cache lock");
            if let Some(m) = s
                .kept
                .get(&h)
                .and_then(|v| v.iter().find(|(k, _)| same_bits(k.view(), kernel)))
                .map(|(_, m)| m.clone())
            {
                s.hits += 1;
                return m;
            }
            if s.seen.len() >= SEEN_KERNELS {
                s.seen.clear();
            }
            !s.seen.insert(h)
        };
        let mask = Arc::new(program());
        if keep {
            let bytes = mask.bytes() + kernel.len() * std::mem::size_of::<f64>();
            let mut s = self.state.lock().expect("mask cache lock");
            let present = s
                .kept
                .get(&h)
                .is_some_and(|v| v.iter().any(|(k, _)| same_bits(k.view(), kernel)));
            if !present && s.bytes + bytes <= MASK_CACHE_BYTES {
                s.bytes += bytes;
                s.kept.entry(h).or_default().push((kernel.to_owned(), mask.clone()));
            }
        }
        mask
    }

    /// Filters kept, and how often one was found.
    pub(crate) fn counts(&self) -> (usize, u64) {
        let s = self.state.lock().expect("mask cache lock");
        (s.kept.values().map(Vec::len).sum(), s.hits)
    }
}

/// Everything a plan depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PlanKey {
    pub(crate) frame: (usize, usize),
    pub(crate) config: PlannerConfig,
    /// Per job: input shape, kernel shape, mode, op.
    pub(crate) jobs: Vec<JobShape>,
    /// Per job: which input (first-appearance numbering).
    pub(crate) inputs: Vec<usize>,
    /// Per job: which effective kernel (first-appearance numbering).
    pub(crate) kernels: Vec<usize>,
}

#[derive(Debug, Default)]
struct PlanState {
    plans: FxMap<PlanKey, Arc<Plan>>,
    hits: u64,
}

/// Plans by [`PlanKey`].
#[derive(Debug, Default)]
pub(crate) struct PlanCache {
    state: Mutex<PlanState>,
}

impl Clone for PlanCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PlanCache {
    pub(crate) fn get(&self, key: &PlanKey) -> Option<Arc<Plan>> {
        let mut s = self.state.lock().expect("plan cache lock");
        let found = s.plans.get(key).cloned();
        if found.is_some() {
            s.hits += 1;
        }
        found
    }

    pub(crate) fn insert(&self, key: PlanKey, plan: Arc<Plan>) {
        let mut s = self.state.lock().expect("plan cache lock");
        if s.plans.len() >= PLAN_CACHE_PLANS {
            s.plans.clear();
        }
        s.plans.insert(key, plan);
    }

    /// Plans kept, and how often one was found.
    pub(crate) fn counts(&self) -> (usize, u64) {
        let s = self.state.lock().expect("plan cache lock");
        (s.plans.len(), s.hits)
    }
}
