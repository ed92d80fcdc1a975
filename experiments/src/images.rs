//! PNG pictures of real-valued planes: 8-bit, grayscale or the perceptual
//! "inferno" colormap, linear or logarithmic (dB) scaling. Row 0 of the array is
//! the top row of the picture.

use std::path::{Path, PathBuf};

use ndarray::ArrayView2;
use thiserror::Error;

use crate::atomic::write_atomic;

/// How values map to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colormap {
    /// Black to white.
    Gray,
    /// Matplotlib's perceptually uniform "inferno" (black, purple, orange, pale yellow).
    Inferno,
}

/// How values map to the `[0, 1]` colour scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// `min → 0`, `max → 1`.
    Linear,
    /// Decibels relative to the maximum, `10·log10(v / max)`, with `floor_db → 0`
    /// and `0 dB → 1`; values below the floor (and `v ≤ 0`) are clipped to it. For a
    /// power-like quantity (intensity, `|t|²`).
    Decibel {
        /// The lowest level shown, negative, e.g. `-60.0`.
        floor_db: f64,
    },
}

/// The log scale used for pictures of spectra: 60 dB of dynamic range.
pub const DB60: Scale = Scale::Decibel { floor_db: -60.0 };

/// A PNG that could not be written.
#[derive(Debug, Error)]
#[error("{}: cannot write image: {error}", path.display())]
pub struct ImageError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub error: std::io::Error,
}

/// Matplotlib "inferno" sampled at `i/9`, `i = 0..=9` (the `viridisLite::inferno(10)`
/// palette); colours between anchors are interpolated linearly.
const INFERNO: [[u8; 3]; 10] = [
    [0x00, 0x00, 0x04],
    [0x1b, 0x0c, 0x42],
    [0x4b, 0x0c, 0x6b],
    [0x78, 0x1c, 0x6d],
    [0xa5, 0x2c, 0x60],
    [0xcf, 0x44, 0x46],
    [0xed, 0x69, 0x25],
    [0xfb, 0x9a, 0x06],
    [0xf7, 0xd0, 0x3c],
    [0xfc, 0xff, 0xa4],
];

impl Colormap {
    /// The 8-bit RGB colour of `t ∈ [0, 1]` (clamped; NaN is 0).
    pub fn rgb(self, t: f64) -> [u8; 3] {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        match self {
            Colormap::Gray => [(t * 255.0).round() as u8; 3],
            Colormap::Inferno => {
                let x = t * (INFERNO.len() - 1) as f64;
                let i = (x.floor() as usize).min(INFERNO.len() - 2);
                let f = x - i as f64;
                let (a, b) = (INFERNO[i], INFERNO[i + 1]);
                std::array::from_fn(|c| (a[c] as f64 + f * (b[c] as f64 - a[c] as f64)).round() as u8)
            }
        }
    }
}

impl Scale {
    /// Maps every value of `data` to `[0, 1]`. A constant array maps to 0;
    /// non-finite values are ignored for the range and map to 0.
    pub fn normalise(self, data: ArrayView2<f64>) -> Vec<f64> {
        let finite = || data.iter().copied().filter(|v| v.is_finite());
        let max = finite().fold(f64::NEG_INFINITY, f64::max);
        let norm = |v: f64| if v.is_finite() { v } else { f64::NAN };
        match self {
            Scale::Linear => {
                let min = finite().fold(f64::INFINITY, f64::min);
                let span = max - min;
                data.iter()
                    .map(|&v| if span > 0.0 { (norm(v) - min) / span } else { 0.0 })
                    .collect()
            }
            Scale::Decibel { floor_db } => data
                .iter()
                .map(|&v| {
                    if max > 0.0 && v > 0.0 {
                        let db = (10.0 * (norm(v) / max).log10()).max(floor_db);
                        1.0 - db / floor_db
                    } else {
                        0.0
                    }
                })
                .collect(),
        }
    }
}

/// Writes `data` (`[y, x]`) as an 8-bit PNG, atomically.
pub fn write_png(path: &Path, data: ArrayView2<f64>, scale: Scale, colormap: Colormap) -> Result<(), ImageError> {
    let (h, w) = data.dim();
    let t = scale.normalise(data);
    let (color, pixels): (png::ColorType, Vec<u8>) = match colormap {
        Colormap::Gray => (
            png::ColorType::Grayscale,
            t.iter().map(|&t| colormap.rgb(t)[0]).collect(),
        ),
        Colormap::Inferno => (png::ColorType::Rgb, t.iter().flat_map(|&t| colormap.rgb(t)).collect()),
    };
    let io = |error| ImageError {
        path: path.into(),
        error,
    };
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w as u32, h as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut wr| {
            wr.write_image_data(&pixels)?;
            wr.finish()
        })
        .map_err(|e| io(std::io::Error::other(e)))?;
    write_atomic(path, &bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    #[test]
    fn colormap_ends_and_interpolation() {
        assert_eq!(Colormap::Inferno.rgb(0.0), INFERNO[0]);
        assert_eq!(Colormap::Inferno.rgb(1.0), INFERNO[9]);
        assert_eq!(Colormap::Inferno.rgb(2.0), INFERNO[9]);
        assert_eq!(Colormap::Inferno.rgb(f64::NAN), INFERNO[0]);
        // Halfway between anchors 4 and 5.
        let mid = Colormap::Inferno.rgb(4.5 / 9.0);
        assert_eq!(mid, [0xba, 0x38, 0x53]);
        assert_eq!(Colormap::Gray.rgb(0.5), [128; 3]);
        // Inferno brightens monotonically (perceptual ordering).
        let lum = |c: [u8; 3]| 0.2126 * c[0] as f64 + 0.7152 * c[1] as f64 + 0.0722 * c[2] as f64;
        let l: Vec<f64> = (0..=100)
            .map(|i| lum(Colormap::Inferno.rgb(i as f64 / 100.0)))
            .collect();
        assert!(l.windows(2).all(|w| w[1] >= w[0] - 0.5), "{l:?}");
    }

    #[test]
    fn scales() {
        let a = array![[1.0, 3.0], [5.0, 5.0]];
        assert_eq!(Scale::Linear.normalise(a.view()), vec![0.0, 0.5, 1.0, 1.0]);
        assert_eq!(Scale::Linear.normalise(Array2::ones((2, 2)).view()), vec![0.0; 4]);
        let p = array![[1.0, 1e-3, 1e-9, 0.0]];
        let t = DB60.normalise(p.view());
        let want = [1.0, 0.5, 0.0, 0.0];
        assert!(t.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{t:?}");
    }

    #[test]
    fn writes_decodable_pngs() {
        let dir = crate::test_dir("images");
        let a = Array2::from_shape_fn((3, 5), |(i, j)| (i * 5 + j) as f64);
        for (cmap, channels) in [(Colormap::Gray, 1), (Colormap::Inferno, 3)] {
            let p = dir.join(format!("{cmap:?}.png"));
            write_png(&p, a.view(), Scale::Linear, cmap).unwrap();
            let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&p).unwrap()));
            let mut reader = dec.read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert_eq!((info.width, info.height), (5, 3));
            assert_eq!(buf.len(), 15 * channels);
            assert_eq!(&buf[..channels], &cmap.rgb(0.0)[..channels]);
            assert_eq!(&buf[14 * channels..], &cmap.rgb(1.0)[..channels]);
        }
    }
}
