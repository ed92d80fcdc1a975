//! Datasets in the IDX format (MNIST, Fashion-MNIST): reading, normalisation, batching.
//!
//! The IDX format (LeCun et al., <http://yann.lecun.com/exdb/mnist/>) is a big-endian header
//! followed by raw data. The two kinds read here are
//!
//! | magic        | content                  | header after the magic          | data            |
//! |--------------|--------------------------|---------------------------------|-----------------|
//! | `0x00000803` | images, `u8`, n×rows×cols | `n: u32`, `rows: u32`, `cols: u32` | n·rows·cols bytes |
//! | `0x00000801` | labels, `u8`, n          | `n: u32`                        | n bytes         |
//!
//! Files may be raw or gzip-compressed; compression is detected by the gzip magic bytes
//! (`1f 8b`), not by the file name.
//!
//! Fashion-MNIST (Xiao, Rasul and Vollgraf 2017, <https://github.com/zalandoresearch/fashion-mnist>,
//! MIT licence, Zalando SE) comes from Debian's `dataset-fashion-mnist` package, which installs
//! the four `.gz` files in [`DEFAULT_DIR`] (DESIGN.md §8). [`load_fashion_mnist`] reads one split
//! of it into a [`Dataset`] with pixels scaled to `[0, 1]`.

use std::fmt;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use ndarray::{s, Array3, ArrayView3};
use thiserror::Error;

/// Where Debian's `dataset-fashion-mnist` package installs the Fashion-MNIST IDX files.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The Fashion-MNIST test set committed with fourf (`data/` at the top of the
/// repository: gzip IDX files and Zalando's MIT licence), found by the path of the
/// source tree this crate was built from.
pub const COMMITTED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data");

/// Where the test set is read from by default: the committed copy
/// ([`COMMITTED_DIR`]) if it is there, else Debian's package ([`DEFAULT_DIR`]).
pub fn default_test_dir() -> PathBuf {
    let committed = Path::new(COMMITTED_DIR);
    if committed.join("t10k-images-idx3-ubyte.gz").is_file() {
        committed.to_path_buf()
    } else {
        PathBuf::from(DEFAULT_DIR)
    }
}

/// Mean pixel value of the Fashion-MNIST training set (60 000 images), pixels in `[0, 1]`.
///
/// Computed over every pixel of `train-images-idx3-ubyte`; the test
/// `fashion_mnist_constants_match_training_set` recomputes it.
pub const FASHION_MNIST_MEAN: f32 = 0.2860;

/// Standard deviation of the pixel values of the Fashion-MNIST training set, pixels in `[0, 1]`.
///
/// Population standard deviation over every pixel of `train-images-idx3-ubyte`; the test
/// `fashion_mnist_constants_match_training_set` recomputes it.
pub const FASHION_MNIST_STD: f32 = 0.3530;

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;

/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

const INSTALL_HINT: &str = "install it with `apt-get install dataset-fashion-mnist` (Debian) or download the \
     four IDX files from https://github.com/zalandoresearch/fashion-mnist";

/// What can go wrong reading a dataset. Every variant names the file or directory involved.
#[derive(Debug, Error)]
pub enum DataError {
    /// The dataset directory does not exist.
    #[error("dataset directory {dir} does not exist; {hint}", hint = INSTALL_HINT)]
    MissingDir {
        /// The directory that was looked for.
        dir: PathBuf,
    },
    /// A file was given where the dataset directory belongs.
    #[error(
        "{dir} is a file, not a dataset directory; give the directory that holds the IDX files \
         (`t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`, and `train-…` for training)"
    )]
    NotADir {
        /// The path given.
        dir: PathBuf,
    },
    /// None of the accepted names of a dataset file exists in the directory.
    #[error("no {what} file in {dir} (looked for {tried}); {hint}", tried = join_paths(tried), hint = INSTALL_HINT)]
    MissingFile {
        /// The directory that was searched.
        dir: PathBuf,
        /// What the file should hold, e.g. "t10k images".
        what: String,
        /// The paths that were tried, in order.
        tried: Vec<PathBuf>,
    },
    /// The file could not be read or decompressed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not start with the expected IDX magic number.
    #[error("{path} is not an IDX {kind} file: expected magic 0x{expected:08x}, found 0x{found:08x}")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// "images" or "labels".
        kind: &'static str,
        /// The magic number that was expected.
        expected: u32,
        /// The first four bytes of the (decompressed) file, big-endian; fewer than four bytes
        /// are padded with zeros on the right.
        found: u32,
    },
    /// The header is shorter than the format requires.
    #[error("{path}: truncated IDX header: expected {expected} bytes, found {actual}")]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Header length in bytes that the format requires.
        expected: usize,
        /// Bytes in the (decompressed) file.
        actual: usize,
    },
    /// The data after the header is not as long as the header's dimensions say.
    #[error(
        "{path}: the header's dimensions {dims:?} need {expected} bytes of data, found {actual} \
         (the file is {state})",
        state = if actual < expected { "truncated" } else { "longer than its header says" }
    )]
    DataLength {
        /// The file.
        path: PathBuf,
        /// The dimensions read from the header.
        dims: Vec<u32>,
        /// Bytes of data the dimensions require (saturated at `u64::MAX`).
        expected: u64,
        /// Bytes of data after the header.
        actual: u64,
    },
    /// The image and label files hold different numbers of items.
    #[error("{images_path} holds {images} images but {labels_path} holds {labels} labels; they must be equal")]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },
    /// A limit of zero items was asked for.
    #[error("limit of 0 items requested; use `None` for the whole split or a limit of at least 1")]
    ZeroLimit,
    /// The header's dimensions need more data than is ever read.
    #[error(
        "{path}: the header's dimensions {dims:?} need {expected} bytes of data; at most {MAX_IDX_BYTES} are read"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The dimensions read from the header.
        dims: Vec<u32>,
        /// Bytes of data the dimensions require (saturated at `u64::MAX`).
        expected: u64,
    },
}

/// The most IDX data read from one file: 4 GiB (Fashion-MNIST's training images
/// are 47 MB).
pub const MAX_IDX_BYTES: u64 = 4 << 30;

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which half of a dataset to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split (`train-*` files; 60 000 items for Fashion-MNIST).
    Train,
    /// The test split (`t10k-*` files; 10 000 items for Fashion-MNIST).
    Test,
}

impl Split {
    /// The prefix of this split's IDX file names: `train` or `t10k`.
    pub fn file_prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_prefix())
    }
}

/// Images and their labels, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Images, n×rows×cols (n×28×28 for Fashion-MNIST); `[0, 1]` as loaded, shifted and scaled
    /// after [`Dataset::normalised`].
    pub images: Array3<f32>,
    /// One class label per image (0..=9 for Fashion-MNIST).
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Builds a dataset from `u8` images (scaled to `[0, 1]` by dividing by 255) and labels.
    ///
    /// # Panics
    /// If the number of images and labels differ.
    pub fn from_u8(images: &Array3<u8>, labels: Vec<u8>) -> Self {
        assert_eq!(
            images.shape()[0],
            labels.len(),
            "Dataset::from_u8: {} images but {} labels",
            images.shape()[0],
            labels.len()
        );
        Dataset {
            images: images.mapv(|p| f32::from(p) / 255.0),
            labels,
        }
    }

    /// The images as a batch `[N, 1, h, w]` (one channel), without copying.
    pub fn batch_view(&self) -> ndarray::ArrayView4<'_, f32> {
        let (n, h, w) = self.images.dim();
        self.images
            .view()
            .into_shape_with_order((n, 1, h, w))
            .expect("the images are contiguous")
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset holds no items.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Returns the dataset with every pixel `p` replaced by `(p - mean) / std`.
    ///
    /// For Fashion-MNIST use [`FASHION_MNIST_MEAN`] and [`FASHION_MNIST_STD`].
    ///
    /// # Panics
    /// If `std` is not a finite positive number or `mean` is not finite.
    pub fn normalised(mut self, mean: f32, std: f32) -> Self {
        assert!(mean.is_finite(), "Dataset::normalised: mean must be finite, got {mean}");
        assert!(
            std.is_finite() && std > 0.0,
            "Dataset::normalised: std must be finite and > 0, got {std}"
        );
        let inv = 1.0 / std;
        self.images.mapv_inplace(|p| (p - mean) * inv);
        self
    }

    /// Consecutive batches of `batch_size` images with their labels, in order; the last batch
    /// holds the remainder and may be shorter.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    pub fn batches(&self, batch_size: usize) -> impl Iterator<Item = (ArrayView3<'_, f32>, &[u8])> + '_ {
        assert!(batch_size > 0, "Dataset::batches: batch_size must be at least 1");
        let n = self.len();
        (0..n).step_by(batch_size).map(move |start| {
            let end = (start + batch_size).min(n);
            (self.images.slice(s![start..end, .., ..]), &self.labels[start..end])
        })
    }
}

/// The bytes of an IDX file, decompressed if it starts with the gzip magic bytes,
/// read no further than its header says: the magic and the `ndims` dimensions
/// first, then the data they need plus one byte (so that a longer file is still
/// found out). A gzip bomb or an endless stream stops there, not at the end of
/// memory; dimensions needing more than [`MAX_IDX_BYTES`] are an error.
fn read_idx(path: &Path, magic: u32, ndims: usize) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    let gzip = file.fill_buf().map_err(io)?.starts_with(&GZIP_MAGIC);
    let mut r: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let header_len = 4 + 4 * ndims;
    let mut bytes = Vec::new();
    (&mut r).take(header_len as u64).read_to_end(&mut bytes).map_err(io)?;
    // A wrong magic or a short header: parse_idx says which.
    if bytes.len() < header_len || bytes[..4] != magic.to_be_bytes() {
        return Ok(bytes);
    }
    let dims: Vec<u32> = bytes[4..]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let expected = dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(u64::from(d)));
    if expected > MAX_IDX_BYTES {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            dims,
            expected,
        });
    }
    bytes.reserve(expected as usize + 1);
    r.take(expected + 1).read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Checks the magic and the header length, then returns the header dimensions and the data.
fn parse_idx<'a>(
    path: &Path,
    bytes: &'a [u8],
    kind: &'static str,
    magic: u32,
    ndims: usize,
) -> Result<(Vec<u32>, &'a [u8]), DataError> {
    let mut first = [0u8; 4];
    let k = bytes.len().min(4);
    first[..k].copy_from_slice(&bytes[..k]);
    let found = u32::from_be_bytes(first);
    if bytes.len() < 4 || found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            kind,
            expected: magic,
            found,
        });
    }
    let header_len = 4 + 4 * ndims;
    if bytes.len() < header_len {
        return Err(DataError::TruncatedHeader {
            path: path.to_path_buf(),
            expected: header_len,
            actual: bytes.len(),
        });
    }
    let dims: Vec<u32> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let data = &bytes[header_len..];
    let expected = dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(u64::from(d)));
    if data.len() as u64 != expected {
        return Err(DataError::DataLength {
            path: path.to_path_buf(),
            dims,
            expected,
            actual: data.len() as u64,
        });
    }
    Ok((dims, data))
}

/// Reads an IDX images file (magic `0x00000803`, raw or gzipped) into an n×rows×cols array.
pub fn load_idx_images(path: impl AsRef<Path>) -> Result<Array3<u8>, DataError> {
    let path = path.as_ref();
    let bytes = read_idx(path, IDX_IMAGES_MAGIC, 3)?;
    let (dims, data) = parse_idx(path, &bytes, "images", IDX_IMAGES_MAGIC, 3)?;
    let shape = (dims[0] as usize, dims[1] as usize, dims[2] as usize);
    // The length check in parse_idx makes this infallible.
    Ok(Array3::from_shape_vec(shape, data.to_vec()).expect("IDX data length checked against its header"))
}

/// Reads an IDX labels file (magic `0x00000801`, raw or gzipped).
pub fn load_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let path = path.as_ref();
    let bytes = read_idx(path, IDX_LABELS_MAGIC, 1)?;
    let (_, data) = parse_idx(path, &bytes, "labels", IDX_LABELS_MAGIC, 1)?;
    Ok(data.to_vec())
}

/// The first existing file among `<dir>/<stem>` and `<dir>/<stem>.gz`.
fn find_file(dir: &Path, stem: &str, what: String) -> Result<PathBuf, DataError> {
    let tried = vec![dir.join(stem), dir.join(format!("{stem}.gz"))];
    match tried.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => Err(DataError::MissingFile {
            dir: dir.to_path_buf(),
            what,
            tried,
        }),
    }
}

/// Loads one split of Fashion-MNIST (or MNIST: the file names are the same) from `dir`.
///
/// Looks for `<prefix>-images-idx3-ubyte` and `<prefix>-labels-idx1-ubyte`, each raw or with a
/// `.gz` suffix (the raw name is tried first), where `<prefix>` is `train` or `t10k`. With
/// `limit = Some(k)` only the first `k` items are kept (all of them if the split is smaller).
/// Pixels are scaled to `[0, 1]`; call [`Dataset::normalised`] for zero mean and unit variance.
///
/// Use [`DEFAULT_DIR`] for Debian's `dataset-fashion-mnist` package.
pub fn load_fashion_mnist(dir: &Path, split: Split, limit: Option<usize>) -> Result<Dataset, DataError> {
    if limit == Some(0) {
        return Err(DataError::ZeroLimit);
    }
    if dir.exists() && !dir.is_dir() {
        return Err(DataError::NotADir { dir: dir.to_path_buf() });
    }
    if !dir.is_dir() {
        return Err(DataError::MissingDir { dir: dir.to_path_buf() });
    }
    let prefix = split.file_prefix();
    let images_path = find_file(dir, &format!("{prefix}-images-idx3-ubyte"), format!("{split} images"))?;
    let labels_path = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"), format!("{split} labels"))?;
    let images = load_idx_images(&images_path)?;
    let labels = load_idx_labels(&labels_path)?;
    if images.shape()[0] != labels.len() {
        return Err(DataError::CountMismatch {
            images_path,
            images: images.shape()[0],
            labels_path,
            labels: labels.len(),
        });
    }
    let n = limit.map_or(labels.len(), |k| k.min(labels.len()));
    let images = images.slice(s![..n, .., ..]).mapv(|p| f32::from(p) / 255.0);
    Ok(Dataset {
        images,
        labels: labels[..n].to_vec(),
    })
}
