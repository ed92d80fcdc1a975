//! Tests of `fourf_nn::data`: IDX round trips, every error case, and the real Fashion-MNIST
//! files: the committed test set (`data/`), and the training set of Debian's
//! `dataset-fashion-mnist` package. Without the package the training-set test says why it
//! skips; under `CI=true` (where `.ci/run` installs it) it fails with the install hint.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use fourf_nn::data::{
    load_fashion_mnist, load_idx_images, load_idx_labels, DataError, Dataset, Split, DEFAULT_DIR, FASHION_MNIST_MEAN,
    FASHION_MNIST_STD, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
};
use ndarray::Array3;

/// A fresh, empty directory for one test, removed when the handle drops.
fn scratch_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fourf-nn-data-{name}-"))
        .tempdir()
        .unwrap()
}

/// The bytes of an IDX images file, written by hand from the format description.
fn idx_images_bytes(images: &Array3<u8>) -> Vec<u8> {
    let (n, r, c) = images.dim();
    let mut b = IDX_IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [n, r, c] {
        b.extend_from_slice(&(d as u32).to_be_bytes());
    }
    b.extend(images.iter().copied());
    b
}

fn idx_labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut b = IDX_LABELS_MAGIC.to_be_bytes().to_vec();
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// 5 images of 3×4 with distinct pixels, and 5 labels.
fn small_set() -> (Array3<u8>, Vec<u8>) {
    let images = Array3::from_shape_fn((5, 3, 4), |(i, r, c)| (i * 37 + r * 11 + c * 3) as u8);
    (images, vec![3, 1, 4, 1, 5])
}

/// The training set's directory, or `None` (with the reason printed) when Debian's
/// package is absent outside CI; under `CI=true` a missing package fails with the install hint.
fn train_dir() -> Option<&'static Path> {
    let dir = Path::new(DEFAULT_DIR);
    let hint = format!(
        "{DEFAULT_DIR} is missing: install it with `apt-get install dataset-fashion-mnist` (Debian) \
         or put the IDX files from https://github.com/zalandoresearch/fashion-mnist there"
    );
    if dir.is_dir() {
        Some(dir)
    } else if std::env::var_os("CI").is_some() {
        panic!("{hint}");
    } else {
        eprintln!("skipped: the Fashion-MNIST training set is not installed ({hint})");
        None
    }
}

#[test]
fn round_trip_raw_and_gzipped() {
    let (images, labels) = small_set();
    let tmp = scratch_dir("round-trip");
    let dir = tmp.path();
    for (suffix, wrap) in [("raw", false), ("gz", true)] {
        let img_bytes = idx_images_bytes(&images);
        let lab_bytes = idx_labels_bytes(&labels);
        // The suffix is deliberately not ".gz": detection is by content, not by name.
        let ip = dir.join(format!("images.{suffix}"));
        let lp = dir.join(format!("labels.{suffix}"));
        std::fs::write(&ip, if wrap { gzip(&img_bytes) } else { img_bytes }).unwrap();
        std::fs::write(&lp, if wrap { gzip(&lab_bytes) } else { lab_bytes }).unwrap();
        assert_eq!(load_idx_images(&ip).unwrap(), images, "{suffix}");
        assert_eq!(load_idx_labels(&lp).unwrap(), labels, "{suffix}");
    }
}

#[test]
fn load_from_dir_finds_raw_and_gz_and_applies_limit() {
    let (images, labels) = small_set();
    let tmp = scratch_dir("from-dir");
    let dir = tmp.path();
    // Test split gzipped, train split raw: both naming forms are found.
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gzip(&idx_images_bytes(&images))).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gzip(&idx_labels_bytes(&labels))).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte"), idx_images_bytes(&images)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_labels_bytes(&labels)).unwrap();

    let full = load_fashion_mnist(dir, Split::Test, None).unwrap();
    assert_eq!(full, Dataset::from_u8(&images, labels.clone()));
    assert_eq!(full.images.dim(), (5, 3, 4));
    let p = full.images[[2, 1, 3]];
    assert!((p - f32::from(images[[2, 1, 3]]) / 255.0).abs() < 1e-7, "{p}");

    let three = load_fashion_mnist(dir, Split::Train, Some(3)).unwrap();
    assert_eq!(three.len(), 3);
    assert_eq!(three.labels, &labels[..3]);
    assert_eq!(three.images, full.images.slice(ndarray::s![..3, .., ..]));

    // A limit larger than the split keeps everything.
    assert_eq!(load_fashion_mnist(dir, Split::Train, Some(100)).unwrap().len(), 5);
}

#[test]
fn normalised_and_batches() {
    let (images, labels) = small_set();
    let ds = Dataset::from_u8(&images, labels.clone());
    let norm = ds.clone().normalised(0.25, 0.5);
    for (a, b) in ds.images.iter().zip(norm.images.iter()) {
        assert!((b - (a - 0.25) / 0.5).abs() < 1e-6, "{a} -> {b}");
    }
    let batches: Vec<_> = ds.batches(2).collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(
        batches.iter().map(|(x, y)| (x.dim().0, y.len())).collect::<Vec<_>>(),
        [(2, 2), (2, 2), (1, 1)]
    );
    assert_eq!(batches[2].1, &labels[4..]);
    assert_eq!(batches[1].0, ds.images.slice(ndarray::s![2..4, .., ..]));
    assert_eq!(ds.batches(5).count(), 1);
    assert_eq!(ds.batches(7).next().unwrap().0.dim().0, 5);
}

#[test]
#[should_panic(expected = "batch_size must be at least 1")]
fn zero_batch_size_panics() {
    let (images, labels) = small_set();
    let _ = Dataset::from_u8(&images, labels).batches(0);
}

#[test]
fn error_missing_dir_says_how_to_install() {
    let dir = std::env::temp_dir().join("fourf-nn-data-surely-not-here");
    let err = load_fashion_mnist(&dir, Split::Test, None).unwrap_err();
    assert!(matches!(err, DataError::MissingDir { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("fourf-nn-data-surely-not-here"), "{msg}");
    assert!(msg.contains("apt-get install dataset-fashion-mnist"), "{msg}");
    assert!(
        msg.contains("https://github.com/zalandoresearch/fashion-mnist"),
        "{msg}"
    );
}

#[test]
fn error_missing_file_lists_paths_tried() {
    let (images, _) = small_set();
    let tmp = scratch_dir("missing-file");
    let dir = tmp.path();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx_images_bytes(&images)).unwrap();
    let err = load_fashion_mnist(dir, Split::Test, None).unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("t10k labels"), "{msg}");
    assert!(msg.contains("t10k-labels-idx1-ubyte.gz"), "{msg}");
    assert!(msg.contains("apt-get install dataset-fashion-mnist"), "{msg}");
}

#[test]
fn error_missing_single_file_is_io_with_path() {
    let err = load_idx_labels("/nonexistent/fourf/labels").unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/fourf/labels"), "{err}");
}

#[test]
fn error_bad_magic() {
    let (images, labels) = small_set();
    let tmp = scratch_dir("bad-magic");
    let dir = tmp.path();
    // A labels file read as images, and plain text (gzipped, to go through the decoder too).
    let lp = dir.join("labels");
    std::fs::write(&lp, idx_labels_bytes(&labels)).unwrap();
    let err = load_idx_images(&lp).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                expected: 0x803,
                found: 0x801,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("not an IDX images file") && msg.contains("0x00000803"),
        "{msg}"
    );
    assert!(msg.contains(&lp.display().to_string()), "{msg}");

    let tp = dir.join("text.gz");
    std::fs::write(&tp, gzip(b"hello")).unwrap();
    let err = load_idx_labels(&tp).unwrap_err();
    assert!(matches!(err, DataError::BadMagic { expected: 0x801, .. }), "{err:?}");
    assert!(err.to_string().contains("0x00000801"), "{err}");

    // Shorter than a magic number.
    let sp = dir.join("short");
    std::fs::write(&sp, [0u8, 0]).unwrap();
    assert!(matches!(load_idx_images(&sp).unwrap_err(), DataError::BadMagic { .. }));

    // A corrupt gzip stream is an I/O error naming the file.
    let cp = dir.join("corrupt.gz");
    let mut z = gzip(&idx_images_bytes(&images));
    z.truncate(z.len() / 2);
    std::fs::write(&cp, z).unwrap();
    let err = load_idx_images(&cp).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("corrupt.gz"), "{err}");
}

#[test]
fn error_truncated_header_and_data() {
    let (images, labels) = small_set();
    let tmp = scratch_dir("truncated");
    let dir = tmp.path();
    let p = dir.join("images");

    let full = idx_images_bytes(&images);
    std::fs::write(&p, &full[..10]).unwrap();
    let err = load_idx_images(&p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::TruncatedHeader {
                expected: 16,
                actual: 10,
                ..
            }
        ),
        "{err:?}"
    );

    std::fs::write(&p, &full[..full.len() - 7]).unwrap();
    let err = load_idx_images(&p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::DataLength {
                expected: 60,
                actual: 53,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("need 60 bytes") && msg.contains("found 53") && msg.contains("truncated"),
        "{msg}"
    );

    let mut long = idx_labels_bytes(&labels);
    long.push(0);
    std::fs::write(&p, gzip(&long)).unwrap();
    let err = load_idx_labels(&p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::DataLength {
                expected: 5,
                actual: 6,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("longer than its header says"), "{err}");

    // Absurd dimensions do not overflow: they are just far longer than the data.
    let mut huge = IDX_IMAGES_MAGIC.to_be_bytes().to_vec();
    for _ in 0..3 {
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    std::fs::write(&p, &huge).unwrap();
    let err = load_idx_images(&p).unwrap_err();
    assert!(matches!(err, DataError::TooLarge { expected: u64::MAX, .. }), "{err:?}");
    assert!(err.to_string().contains("at most 4294967296"), "{err}");

    // A gzip bomb (reproducer from the hardening issue, which reached 1 GB before
    // the length check): one 28×28 image, then 16 MiB of zeros. Reading stops one
    // byte past what the header claims.
    let mut bomb = IDX_IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [1u32, 28, 28] {
        bomb.extend_from_slice(&d.to_be_bytes());
    }
    bomb.resize(bomb.len() + (16 << 20), 0);
    std::fs::write(&p, gzip(&bomb)).unwrap();
    let err = load_idx_images(&p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::DataLength {
                expected: 784,
                actual: 785,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn error_count_mismatch() {
    let (images, labels) = small_set();
    let tmp = scratch_dir("mismatch");
    let dir = tmp.path();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx_images_bytes(&images)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_labels_bytes(&labels[..4])).unwrap();
    let err = load_fashion_mnist(dir, Split::Test, Some(2)).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                images: 5,
                labels: 4,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("5 images") && msg.contains("4 labels"), "{msg}");
}

#[test]
fn error_zero_limit() {
    let err = load_fashion_mnist(Path::new(DEFAULT_DIR), Split::Test, Some(0)).unwrap_err();
    assert!(matches!(err, DataError::ZeroLimit), "{err:?}");
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[test]
fn fashion_mnist_test_set_loads() {
    let start = Instant::now();
    let dir = fourf_nn::data::default_test_dir();
    let ds = load_fashion_mnist(&dir, Split::Test, None).unwrap();
    eprintln!(
        "loaded Fashion-MNIST t10k ({} images) in {:?}",
        ds.len(),
        start.elapsed()
    );
    assert_eq!(ds.images.dim(), (10_000, 28, 28));
    assert_eq!(ds.labels.len(), 10_000);
    // The test set is balanced: 1000 images of each of the 10 classes.
    let mut counts = [0usize; 10];
    for &l in &ds.labels {
        assert!(l < 10, "label {l}");
        counts[usize::from(l)] += 1;
    }
    assert_eq!(counts, [1000; 10]);
    // First label of t10k-labels-idx1-ubyte is 9 (ankle boot): `zcat … | xxd` shows bytes
    // 0000 0801 0000 2710 0902 0101 (magic, n = 10000, labels 9 2 1 1).
    assert_eq!(&ds.labels[..4], &[9, 2, 1, 1]);
    let (lo, hi) = ds
        .images
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    assert!(lo == 0.0 && hi == 1.0, "pixel range [{lo}, {hi}]");

    let few = load_fashion_mnist(&dir, Split::Test, Some(17)).unwrap();
    assert_eq!(few.labels, &ds.labels[..17]);
    assert_eq!(few.images, ds.images.slice(ndarray::s![..17, .., ..]));
}

#[test]
fn fashion_mnist_constants_match_training_set() {
    let Some(dir) = train_dir() else {
        return;
    };
    let ds = load_fashion_mnist(dir, Split::Train, None).unwrap();
    assert_eq!(ds.images.dim(), (60_000, 28, 28));
    let n = ds.images.len() as f64;
    let mean = ds.images.iter().map(|&p| f64::from(p)).sum::<f64>() / n;
    let var = ds.images.iter().map(|&p| (f64::from(p) - mean).powi(2)).sum::<f64>() / n;
    let std = var.sqrt();
    eprintln!("Fashion-MNIST train: mean {mean:.5}, std {std:.5}");
    assert!((mean - f64::from(FASHION_MNIST_MEAN)).abs() < 1e-3, "mean {mean}");
    assert!((std - f64::from(FASHION_MNIST_STD)).abs() < 1e-3, "std {std}");

    // Normalising with the constants gives (nearly) zero mean and unit variance.
    let norm = ds.normalised(FASHION_MNIST_MEAN, FASHION_MNIST_STD);
    let m = norm.images.iter().map(|&p| f64::from(p)).sum::<f64>() / n;
    let v = norm.images.iter().map(|&p| (f64::from(p) - m).powi(2)).sum::<f64>() / n;
    assert!(
        m.abs() < 5e-3 && (v.sqrt() - 1.0).abs() < 5e-3,
        "normalised mean {m}, std {}",
        v.sqrt()
    );
}
