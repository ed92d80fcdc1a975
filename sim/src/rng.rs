//! Seeds of independent random streams, derived from one run seed with the
//! SplitMix64 finaliser (Steele, Lea & Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014), so that every frame, image, camera row and op draws
//! the same numbers at any thread count and any batch split.
//!
//! One mixing function serves every stream; each caller keeps the formula of its
//! input (seed and index) that it has always used, so the numbers of earlier
//! releases are unchanged.

/// The golden-ratio increment of SplitMix64.
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser of `z`: a bijection of `u64` whose outputs for
/// consecutive inputs look independent.
pub fn mix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of stream `index` of the run seed `seed`: SplitMix64's
/// `index + 1`-th output from state `seed`.
pub fn split_seed(seed: u64, index: u64) -> u64 {
    mix64(seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference outputs of SplitMix64 from state 0 (the first three values of
    /// Vigna's `splitmix64.c` seeded with 0).
    #[test]
    fn matches_the_reference_sequence() {
        assert_eq!(split_seed(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(split_seed(0, 1), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(split_seed(0, 2), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn mix_is_a_bijection_on_a_sample() {
        let mut seen: Vec<u64> = (0..10_000u64).map(mix64).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 10_000);
    }
}
