//! Data augmentation for training: random crop with zero padding and random
//! horizontal flip (torchvision's `RandomCrop(size, padding)` and
//! `RandomHorizontalFlip()`), applied to raw `[0, 1]` images before
//! normalisation, so the padding is black as in torchvision.

use ndarray::{Array3, ArrayView3};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

fn d_pad() -> usize {
    2
}
fn d_true() -> bool {
    true
}

/// Which augmentations a training run applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Zero padding of the random crop in pixels (default 2; 0 turns cropping
    /// off).
    #[serde(default = "d_pad")]
    pub crop_padding: usize,
    /// Mirror half of the images left–right (default true).
    #[serde(default = "d_true")]
    pub flip: bool,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            crop_padding: d_pad(),
            flip: true,
        }
    }
}

impl AugmentConfig {
    /// No augmentation.
    pub fn none() -> Self {
        Self {
            crop_padding: 0,
            flip: false,
        }
    }

    /// `image` `[c, h, w]` shifted by a random crop of the zero-padded image and
    /// maybe mirrored, with random numbers from `rng`.
    pub fn apply<R: Rng + ?Sized>(&self, image: ArrayView3<f32>, rng: &mut R) -> Array3<f32> {
        let p = self.crop_padding as isize;
        let (dy, dx) = if p > 0 {
            (
                rng.random_range(0..=2 * p as usize) as isize - p,
                rng.random_range(0..=2 * p as usize) as isize - p,
            )
        } else {
            (0, 0)
        };
        let flip = self.flip && rng.random::<bool>();
        let (c, h, w) = image.dim();
        Array3::from_shape_fn((c, h, w), |(ch, y, x)| {
            let sx = if flip { w - 1 - x } else { x } as isize + dx;
            let sy = y as isize + dy;
            if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
                0.0
            } else {
                image[[ch, sy as usize, sx as usize]]
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn crops_shift_and_flips_mirror() {
        let img = Array3::from_shape_fn((1, 4, 5), |(_, y, x)| (10 * y + x) as f32 + 1.0);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(AugmentConfig::none().apply(img.view(), &mut rng), img);
        let flip = AugmentConfig {
            crop_padding: 0,
            flip: true,
        };
        let mut seen = [false, false];
        for _ in 0..20 {
            let out = flip.apply(img.view(), &mut rng);
            let mirrored = out[[0, 2, 0]] == img[[0, 2, 4]];
            assert!(mirrored || out == img);
            seen[usize::from(mirrored)] = true;
        }
        assert!(seen[0] && seen[1], "both outcomes occur");
        let crop = AugmentConfig {
            crop_padding: 2,
            flip: false,
        };
        for _ in 0..20 {
            let out = crop.apply(img.view(), &mut rng);
            // Every kept pixel is an input pixel shifted by one offset; the rest is 0.
            let kept: Vec<(usize, usize)> = out
                .indexed_iter()
                .filter(|(_, &v)| v != 0.0)
                .map(|((_, y, x), _)| (y, x))
                .collect();
            let (y0, x0) = kept[0];
            let v = out[[0, y0, x0]] as usize - 1;
            let (dy, dx) = ((v / 10) as isize - y0 as isize, (v % 10) as isize - x0 as isize);
            assert!(dy.abs() <= 2 && dx.abs() <= 2);
            for (y, x) in kept {
                assert_eq!(
                    out[[0, y, x]],
                    img[[0, (y as isize + dy) as usize, (x as isize + dx) as usize]]
                );
            }
        }
    }
}
