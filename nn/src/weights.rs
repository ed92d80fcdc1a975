//! Safetensors weights: named `f32` tensors loaded from and saved to
//! [safetensors](https://github.com/huggingface/safetensors) files.
//!
//! A [`TensorStore`] is a state dict: tensor name → `f32` array. It is read from a
//! file ([`TensorStore::load`]; `F32`, `F64`, `F16` and `BF16` tensors are
//! converted exactly or, for `F64`, rounded to nearest), written to one
//! ([`TensorStore::save`], always `F32`, atomically), taken from a model
//! ([`TensorStore::from_params`]) or copied into one ([`TensorStore::load_into`],
//! all or nothing: shapes are checked before anything is written, and a tensor the
//! model lacks or does not ask for is an error). [`load_weights`] and
//! [`save_weights`] do the file round trip in one call.
//!
//! ## Names follow timm
//! The [`Parameters`] implementations of the layers (here, next to the format
//! code) use the names and shapes of timm / PyTorch `state_dict()`, so a timm
//! ViT/DeiT checkpoint exported with `safetensors.torch.save_file(model.state_dict())`
//! loads unchanged, and a file saved here loads back into timm:
//!
//! | layer | tensors (relative to the layer's prefix) |
//! |---|---|
//! | [`Linear`] | `weight` `[out, in]`, `bias` `[out]` (if any) |
//! | [`LayerNorm`] | `weight` `[d]`, `bias` `[d]` |
//! | [`MultiHeadSelfAttention`] | `qkv.weight` `[3d, d]`, `qkv.bias`, `proj.weight` `[d, d]`, `proj.bias` |
//! | [`Mlp`] | `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias` |
//! | [`PatchEmbedding`] | `proj.weight` as the `Conv2d` weight `[d, c, p, p]`, `proj.bias` `[d]` |
//! | [`TokenEmbedding`] | `cls_token` `[1, 1, d]` (if any), `pos_embed` `[1, tokens, d]` |
//!
//! A model joins these to its own path with [`join`]: `blocks.3.attn` +
//! `qkv.weight` → `blocks.3.attn.qkv.weight`, and calls the token embedding with
//! prefix `""` so that its names are exactly timm's `cls_token` and `pos_embed`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayViewMutD, Axis, IxDyn};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors, View};
use thiserror::Error;

use crate::layers::{LayerNorm, Linear, Mlp, MultiHeadSelfAttention, PatchEmbedding, Real, TokenEmbedding};
use crate::params::{join, Parameters};

/// How many names an [`WeightsError::Unexpected`] message lists before "… and N more".
const LIST_NAMES: usize = 5;

/// Why weights could not be read, written or copied into a model.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// The file could not be read or written.
    #[error("I/O error on weights file `{}`: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is not a valid safetensors file (or could not be encoded as one).
    #[error("weights file `{}`: {message}", .path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong and what would be valid.
        message: String,
    },
    /// A tensor in the file has an element type that cannot be read as `f32`.
    #[error(
        "weights file `{}`: tensor `{tensor}` has dtype {dtype}; only F32, F64, F16 and BF16 tensors can be loaded",
        .path.display()
    )]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// Name of the tensor.
        tensor: String,
        /// Its safetensors dtype, e.g. `I64`.
        dtype: String,
    },
    /// The model asks for a tensor that the weights do not contain.
    #[error(
        "{}missing tensor `{tensor}` (the model expects shape {expected:?}){}",
        origin(.path),
        more(*.others, "missing")
    )]
    Missing {
        /// The file the weights came from, if any.
        path: Option<PathBuf>,
        /// Name of the first missing tensor, in the model's order.
        tensor: String,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// How many further tensors are missing.
        others: usize,
    },
    /// A tensor the model would compute with holds NaN or an infinity.
    #[error(
        "{}tensor `{tensor}` holds {count} non-finite value(s) (the first, {first}, at flat index {index}); \
         a model cannot compute with them: retrain, or replace the tensor",
        origin(.path)
    )]
    NonFinite {
        /// The file the weights came from, if any.
        path: Option<PathBuf>,
        /// Name of the tensor.
        tensor: String,
        /// How many of its values are not finite.
        count: usize,
        /// The first of them.
        first: f32,
        /// Its flat (row-major) index.
        index: usize,
    },
    /// A tensor has another shape than the model's parameter of that name.
    #[error(
        "{}tensor `{tensor}` has shape {actual:?}, but the model expects {expected:?}",
        origin(.path)
    )]
    Shape {
        /// The file the weights came from, if any.
        path: Option<PathBuf>,
        /// Name of the tensor.
        tensor: String,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// The shape in the weights.
        actual: Vec<usize>,
    },
    /// The weights contain tensors that the model does not have.
    #[error(
        "{}{} tensor(s) not used by the model: {}; the weights must hold exactly the model's parameters",
        origin(.path),
        .names.len(),
        list_names(.names)
    )]
    Unexpected {
        /// The file the weights came from, if any.
        path: Option<PathBuf>,
        /// All unused names, sorted.
        names: Vec<String>,
    },
}

fn origin(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!("weights file `{}`: ", p.display()),
        None => String::new(),
    }
}

fn more(others: usize, what: &str) -> String {
    if others == 0 {
        String::new()
    } else {
        format!(" and {others} more {what}")
    }
}

fn list_names(names: &[String]) -> String {
    let shown: Vec<String> = names.iter().take(LIST_NAMES).map(|n| format!("`{n}`")).collect();
    let rest = names.len().saturating_sub(LIST_NAMES);
    if rest == 0 {
        shown.join(", ")
    } else {
        format!("{}, … and {rest} more", shown.join(", "))
    }
}

/// Named `f32` tensors (a state dict), sorted by name.
#[derive(Debug, Clone, Default)]
pub struct TensorStore {
    tensors: BTreeMap<String, ArrayD<f32>>,
    /// The file this store was loaded from, named in errors of [`Self::load_into`].
    path: Option<PathBuf>,
    /// String metadata of the file header (`__metadata__`), besides `format`.
    pub metadata: BTreeMap<String, String>,
}

impl TensorStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `tensor` under `name`, returning the tensor it replaces, if any.
    pub fn insert(&mut self, name: impl Into<String>, tensor: ArrayD<f32>) -> Option<ArrayD<f32>> {
        self.tensors.insert(name.into(), tensor)
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&ArrayD<f32>> {
        self.tensors.get(name)
    }

    /// Removes and returns the tensor named `name`.
    pub fn remove(&mut self, name: &str) -> Option<ArrayD<f32>> {
        self.tensors.remove(name)
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.tensors.keys().map(String::as_str)
    }

    /// `(name, tensor)` pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ArrayD<f32>)> + '_ {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the store holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The file this store was read from ([`Self::load`]), if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads every tensor of the safetensors file at `path`, converting `F32`,
    /// `F16`, `BF16` (exactly) and `F64` (rounded to nearest) to `f32`.
    ///
    /// `Err` if the file cannot be read ([`WeightsError::Io`]), is not a
    /// safetensors file ([`WeightsError::Format`]) or holds a tensor of another
    /// dtype ([`WeightsError::UnsupportedDtype`]).
    pub fn load(path: &Path) -> Result<Self, WeightsError> {
        let bytes = read_safetensors(path)?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::Format {
            path: path.to_path_buf(),
            message: format!(
                "not a valid safetensors file ({e}); expected an 8-byte little-endian header length, \
                 a JSON header of tensors and their data"
            ),
        })?;
        let metadata = SafeTensors::read_metadata(&bytes)
            .ok()
            .and_then(|(_, m)| m.metadata().clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "format")
            .collect();
        let mut tensors = BTreeMap::new();
        for (name, view) in st.iter() {
            let data = decode(&view).ok_or_else(|| WeightsError::UnsupportedDtype {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                dtype: view.dtype().to_string(),
            })?;
            let array = ArrayD::from_shape_vec(IxDyn(view.shape()), data).map_err(|e| WeightsError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "tensor `{name}` of shape {:?} cannot be built ({e}); its data must hold one element per index",
                    view.shape()
                ),
            })?;
            tensors.insert(name.to_string(), array);
        }
        Ok(Self {
            tensors,
            path: Some(path.to_path_buf()),
            metadata,
        })
    }

    /// Writes every tensor as `F32` (little-endian, row-major; metadata
    /// `format = pt` as PyTorch's `save_file`) to `path`, atomically: the bytes go
    /// to a temporary file in the same directory which is then renamed over
    /// `path`, so a reader never sees a partial file and a failed write leaves
    /// `path` untouched.
    pub fn save(&self, path: &Path) -> Result<(), WeightsError> {
        let views: Vec<(&str, F32Tensor)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let bytes = t.iter().flat_map(|v| v.to_le_bytes()).collect();
                (
                    name.as_str(),
                    F32Tensor {
                        shape: t.shape().to_vec(),
                        bytes,
                    },
                )
            })
            .collect();
        let mut metadata: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        metadata.insert("format".to_string(), "pt".to_string());
        let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| WeightsError::Format {
            path: path.to_path_buf(),
            message: format!("cannot encode the tensors as safetensors: {e}"),
        })?;
        write_atomic(path, &bytes).map_err(|source| WeightsError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The state dict of `model`: a copy of every parameter under its name.
    pub fn from_params<P: Parameters + ?Sized>(model: &mut P) -> Self {
        let mut store = Self::new();
        model.visit_params("", &mut |name, t| {
            store.insert(name, t.to_owned());
        });
        store
    }

    /// Copies every parameter of `model` from the tensor of the same name.
    ///
    /// All or nothing: `Err` without changing `model` if a parameter has no tensor
    /// ([`WeightsError::Missing`], the first in the model's order), a tensor has
    /// another shape ([`WeightsError::Shape`]), or the store holds tensors the
    /// model does not ask for ([`WeightsError::Unexpected`], all names sorted).
    pub fn load_into<P: Parameters + ?Sized>(&self, model: &mut P) -> Result<(), WeightsError> {
        // Pass 1: check, without writing.
        let mut visited: HashSet<String> = HashSet::new();
        let mut first_error: Option<WeightsError> = None;
        let mut missing: Vec<(String, Vec<usize>)> = Vec::new();
        model.visit_params("", &mut |name, t| {
            visited.insert(name.to_string());
            match self.tensors.get(name) {
                None => missing.push((name.to_string(), t.shape().to_vec())),
                Some(stored) if stored.shape() != t.shape() => {
                    first_error.get_or_insert_with(|| WeightsError::Shape {
                        path: self.path.clone(),
                        tensor: name.to_string(),
                        expected: t.shape().to_vec(),
                        actual: stored.shape().to_vec(),
                    });
                }
                Some(stored) => {
                    if let Some((index, &first)) = stored.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                        first_error.get_or_insert_with(|| WeightsError::NonFinite {
                            path: self.path.clone(),
                            tensor: name.to_string(),
                            count: stored.iter().filter(|v| !v.is_finite()).count(),
                            first,
                            index,
                        });
                    }
                }
            }
        });
        if let Some(e) = first_error {
            return Err(e);
        }
        if let Some((tensor, expected)) = missing.first().cloned() {
            return Err(WeightsError::Missing {
                path: self.path.clone(),
                tensor,
                expected,
                others: missing.len() - 1,
            });
        }
        let unexpected: Vec<String> = self
            .names()
            .filter(|n| !visited.contains(*n))
            .map(String::from)
            .collect();
        if !unexpected.is_empty() {
            return Err(WeightsError::Unexpected {
                path: self.path.clone(),
                names: unexpected,
            });
        }
        // Pass 2: copy; every name and shape was checked above.
        model.visit_params("", &mut |name, mut t| {
            t.assign(&self.tensors[name]);
        });
        Ok(())
    }
}

/// Reads the safetensors file at `path` into `model` ([`TensorStore::load`] then
/// [`TensorStore::load_into`]); `model` is unchanged on error.
pub fn load_weights<P: Parameters + ?Sized>(path: &Path, model: &mut P) -> Result<(), WeightsError> {
    TensorStore::load(path)?.load_into(model)
}

/// Writes the parameters of `model` to the safetensors file at `path`
/// ([`TensorStore::from_params`] then [`TensorStore::save`]).
pub fn save_weights<P: Parameters + ?Sized>(path: &Path, model: &mut P) -> Result<(), WeightsError> {
    TensorStore::from_params(model).save(path)
}

/// An owned little-endian `F32` tensor for [`safetensors::serialize`].
struct F32Tensor {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for F32Tensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The elements of `view` as `f32`, or `None` for an unsupported dtype. The data
/// length was validated against shape and dtype by [`SafeTensors::deserialize`].
fn decode(view: &TensorView<'_>) -> Option<Vec<f32>> {
    let data = view.data();
    let out = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        _ => return None,
    };
    Some(out)
}

/// The largest weights file [`TensorStore::load`] reads: 16 GiB (four billion
/// `f32` parameters).
pub const MAX_WEIGHTS_BYTES: u64 = 16 << 30;

/// The largest safetensors header: 100 MB, the limit of the `safetensors` crate.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The bytes of the safetensors file at `path`, read with limits: the 8-byte
/// header length is checked before anything else is read, and no more than
/// [`MAX_WEIGHTS_BYTES`] are read, so a device or an endless stream given as the
/// weights is an error rather than a read until memory runs out.
fn read_safetensors(path: &Path) -> Result<Vec<u8>, WeightsError> {
    use std::io::Read;
    let io_err = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let format = |message: String| WeightsError::Format {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_file() && meta.len() > MAX_WEIGHTS_BYTES {
        return Err(format(format!(
            "{} bytes; at most {MAX_WEIGHTS_BYTES} are read",
            meta.len()
        )));
    }
    let mut r = io::BufReader::new(file);
    let mut bytes = Vec::new();
    (&mut r).take(8).read_to_end(&mut bytes).map_err(io_err)?;
    if let Ok(len) = <[u8; 8]>::try_from(bytes.as_slice()) {
        let n = u64::from_le_bytes(len);
        if !(2..=MAX_HEADER_BYTES).contains(&n) {
            return Err(format(format!(
                "not a valid safetensors file: its header length is {n} bytes; \
                 expected an 8-byte little-endian length in 2..={MAX_HEADER_BYTES}, then a JSON header"
            )));
        }
    }
    (&mut r)
        .take(MAX_WEIGHTS_BYTES + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > MAX_WEIGHTS_BYTES {
        return Err(format(format!(
            "more than {MAX_WEIGHTS_BYTES} bytes; at most that many are read"
        )));
    }
    Ok(bytes)
}

/// The IEEE 754 binary16 value with bit pattern `bits` as `f32` (exact: every
/// half-precision value, subnormals included, is an `f32`). Infinities keep their
/// sign; NaNs stay NaN with the payload shifted into the top of the `f32`
/// mantissa (so quiet stays quiet).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1f);
    let man = u32::from(bits & 0x3ff);
    let magnitude = match exp {
        // ±0 and subnormals man · 2⁻²⁴; the product is exact (man < 2¹⁰ and 2⁻²⁴ is
        // a normal f32).
        0 => (man as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        // ±∞ and NaN.
        0x1f => 0x7f80_0000 | (man << 13),
        // Normal: rebias the exponent from 15 to 127.
        _ => ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// The bfloat16 value with bit pattern `bits` as `f32` (exact: bfloat16 is the top
/// half of an `f32`).
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

pub use fourf_sim::files::{read_text_limited, MAX_CONFIG_BYTES};

/// Temporary files being written now, removed by [`remove_temporaries`] (which
/// the `fourf` binary calls on SIGINT and SIGTERM).
static IN_FLIGHT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes every temporary file a [`write_atomic`] of this process is writing; for
/// a signal handler, before the process exits.
pub fn remove_temporaries() {
    let files = match IN_FLIGHT.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for f in files {
        let _ = fs::remove_file(f);
    }
}

/// Removes `.NAME.tmp-PID-N` files beside `path` left by processes that are no
/// longer running (a SIGKILL leaves them). Only where `/proc` tells which
/// processes run; elsewhere nothing is removed.
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = n.strip_prefix(&prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory,
/// fsync, rename): a reader sees the old file or the complete new one, never a
/// partial one. On error the temporary file is removed and `path` is untouched.
/// Temporary names carry the process id and a counter, so concurrent writes from
/// one process do not collide; stale ones of killed processes are removed first.
/// (Every command of fourf writes through this.)
///
/// What is already at `path` decides how:
/// - a symbolic link is written through: its target is replaced, the link kept;
/// - a device, FIFO or socket (e.g. `/dev/null`, `/dev/stdout`) is written to
///   directly, never replaced;
/// - a read-only file, or a directory, is refused (`PermissionDenied`,
///   `IsADirectory`), even for root.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_via(path, bytes, 0)
}

/// [`write_atomic`] after following `links` symbolic links.
fn write_atomic_via(path: &Path, bytes: &[u8], links: usize) -> io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    if let Ok(meta) = fs::symlink_metadata(path) {
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(path)?;
            let target = match path.parent() {
                Some(dir) if target.is_relative() => dir.join(target),
                _ => target,
            };
            if links >= 40 {
                return Err(io::Error::other(format!(
                    "{}: too many levels of symbolic links",
                    path.display()
                )));
            }
            return write_atomic_via(&target, bytes, links + 1);
        }
        if kind.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory; give a file name", path.display()),
            ));
        }
        if !kind.is_file() {
            let mut f = fs::OpenOptions::new().write(true).open(path)?;
            return f.write_all(bytes).and_then(|()| f.flush());
        }
        if meta.permissions().readonly() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is read-only; fourf does not replace it", path.display()),
            ));
        }
    }
    remove_stale_temporaries(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let track = |add: bool| {
        let mut g = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
        if add {
            g.push(tmp.clone());
        } else {
            g.retain(|t| t != &tmp);
        }
    };
    track(true);
    let result = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    track(false);
    result
}

// ---------------------------------------------------------------------------
// `Parameters` of the layers, with timm / PyTorch names and shapes.

impl<T: Real> Parameters<T> for Linear<T> {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>)) {
        f(&join(prefix, "weight"), self.weight.view_mut().into_dyn());
        if let Some(b) = &mut self.bias {
            f(&join(prefix, "bias"), b.view_mut().into_dyn());
        }
    }
}

impl<T: Real> Parameters<T> for LayerNorm<T> {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>)) {
        f(&join(prefix, "weight"), self.weight.view_mut().into_dyn());
        f(&join(prefix, "bias"), self.bias.view_mut().into_dyn());
    }
}

impl<T: Real> Parameters<T> for MultiHeadSelfAttention<T> {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>)) {
        self.qkv.visit_params(&join(prefix, "qkv"), f);
        self.proj.visit_params(&join(prefix, "proj"), f);
    }
}

impl<T: Real> Parameters<T> for Mlp<T> {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>)) {
        self.fc1.visit_params(&join(prefix, "fc1"), f);
        self.fc2.visit_params(&join(prefix, "fc2"), f);
    }
}

impl<T: Real> Parameters<T> for PatchEmbedding<T> {
    /// `proj.weight` is visited as the `Conv2d` weight `[d, c, p, p]` (a reshaped
    /// view of the `[d, c·p·p]` linear weight), then `proj.bias`.
    ///
    /// # Panics
    /// If `proj.weight` does not have `in_channels · patch²` columns (the public
    /// fields were set inconsistently).
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>)) {
        let (c, p) = (self.in_channels, self.patch);
        let (d, cols) = self.proj.weight.dim();
        assert_eq!(
            cols,
            c * p * p,
            "PatchEmbedding: proj.weight [d, c·p·p] = {:?} does not match in_channels {c}, patch {p}",
            self.proj.weight.dim()
        );
        if !self.proj.weight.is_standard_layout() {
            self.proj.weight = self.proj.weight.as_standard_layout().into_owned();
        }
        let proj = join(prefix, "proj");
        let conv = self
            .proj
            .weight
            .view_mut()
            .into_shape_with_order((d, c, p, p))
            .expect("standard layout with d·c·p·p elements");
        f(&join(&proj, "weight"), conv.into_dyn());
        if let Some(b) = &mut self.proj.bias {
            f(&join(&proj, "bias"), b.view_mut().into_dyn());
        }
    }
}

impl<T: Real> Parameters<T> for TokenEmbedding<T> {
    /// `cls_token` as `[1, 1, d]` (if present), then `pos_embed` as `[1, tokens, d]`
    /// (timm's shapes, with a leading batch axis).
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, ArrayViewMutD<'_, T>)) {
        if let Some(c) = &mut self.class_token {
            let view = c.view_mut().insert_axis(Axis(0)).insert_axis(Axis(0));
            f(&join(prefix, "cls_token"), view.into_dyn());
        }
        let pos = self.position.view_mut().insert_axis(Axis(0));
        f(&join(prefix, "pos_embed"), pos.into_dyn());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{
        LayerNormConfig, LinearConfig, MlpConfig, MultiHeadSelfAttentionConfig, PatchEmbeddingConfig,
        TokenEmbeddingConfig,
    };
    use ndarray::{Array1, Array2, Array4};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// A fresh empty directory under the system temp dir, unique per test.
    fn test_dir(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fourf-weights-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create test dir");
        dir
    }

    fn bits(a: &ArrayD<f32>) -> Vec<u32> {
        a.iter().map(|v| v.to_bits()).collect()
    }

    fn assert_same_bits(a: &TensorStore, b: &TensorStore) {
        assert_eq!(a.names().collect::<Vec<_>>(), b.names().collect::<Vec<_>>());
        for (name, t) in a.iter() {
            let u = b.get(name).unwrap();
            assert_eq!(t.shape(), u.shape(), "{name}");
            assert_eq!(bits(t), bits(u), "{name}");
        }
    }

    /// A safetensors file of one tensor with raw `dtype` bytes, written by the
    /// safetensors crate itself (independent of [`TensorStore::save`]).
    fn write_raw(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
        let views: Vec<(&str, TensorView<'_>)> = tensors
            .iter()
            .map(|(n, dt, shape, data)| (*n, TensorView::new(*dt, shape.clone(), data).unwrap()))
            .collect();
        fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
    }

    /// Reproducers from the hardening issue: NaN weights were reported as an
    /// accuracy, and `/dev/zero` as the weights was read until memory ran out.
    #[test]
    fn non_finite_weights_and_endless_files_are_errors() {
        let dir = test_dir("hostile");
        let p = dir.join("nan.safetensors");
        let data: Vec<u8> = [1.0f32, f32::NAN, 2.0, f32::INFINITY]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_raw(&p, &[("w", Dtype::F32, vec![2, 2], data)]);
        // The store keeps any bits (a round trip is exact); a model refuses them.
        let store = TensorStore::load(&p).unwrap();
        let mut model = mlp(1);
        let before = model.clone();
        let mut bad = TensorStore::from_params(&mut mlp(2));
        let mut w = bad.get("fc1.weight").unwrap().clone();
        w.iter_mut()
            .zip(store.get("w").unwrap().iter().cycle())
            .for_each(|(o, &v)| *o = v);
        bad.insert("fc1.weight", w);
        let e = bad.load_into(&mut model).unwrap_err();
        assert!(matches!(e, WeightsError::NonFinite { .. }), "{e:?}");
        let e = e.to_string();
        let n = model.fc1.weight.len() / 2;
        assert!(
            e.contains("`fc1.weight`") && e.contains(&format!("{n} non-finite")) && e.contains("flat index 1"),
            "{e}"
        );
        assert_eq!(model, before);
        if Path::new("/dev/zero").exists() {
            let e = TensorStore::load(Path::new("/dev/zero")).unwrap_err().to_string();
            assert!(e.contains("header length is 0 bytes"), "{e}");
        }
        let p = dir.join("huge-header.safetensors");
        fs::write(&p, u64::MAX.to_le_bytes()).unwrap();
        let e = TensorStore::load(&p).unwrap_err().to_string();
        assert!(e.contains("not a valid safetensors file"), "{e}");
    }

    /// Reproducers from the hardening issue: the atomic rename replaced a
    /// symlink, a read-only file and (as root) `/dev/full`.
    #[test]
    fn write_atomic_keeps_links_devices_and_read_only_files() {
        let dir = test_dir("atomic-kinds");
        let target = dir.join("target.bin");
        fs::write(&target, b"old").unwrap();
        #[cfg(unix)]
        {
            let link = dir.join("link.bin");
            std::os::unix::fs::symlink("target.bin", &link).unwrap();
            write_atomic(&link, b"new").unwrap();
            assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
            assert_eq!(fs::read(&target).unwrap(), b"new");
            let lp = dir.join("loop.bin");
            std::os::unix::fs::symlink("loop.bin", &lp).unwrap();
            assert!(write_atomic(&lp, b"x").is_err());
        }
        let ro = dir.join("ro.bin");
        fs::write(&ro, b"keep").unwrap();
        let mut perm = fs::metadata(&ro).unwrap().permissions();
        perm.set_readonly(true);
        fs::set_permissions(&ro, perm).unwrap();
        let e = write_atomic(&ro, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        assert_eq!(fs::read(&ro).unwrap(), b"keep");
        assert_eq!(
            write_atomic(&dir, b"x").unwrap_err().kind(),
            io::ErrorKind::IsADirectory
        );
        if Path::new("/dev/full").exists() {
            // Written to (and failing: the device is full), never replaced.
            assert!(write_atomic(Path::new("/dev/full"), b"x").is_err());
            assert!(!fs::metadata("/dev/full").unwrap().is_file());
        }
        if Path::new("/dev/null").exists() {
            write_atomic(Path::new("/dev/null"), b"x").unwrap();
            assert!(!fs::metadata("/dev/null").unwrap().is_file());
        }
        // Nothing left over but the files made here.
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }

    /// A SIGKILL leaves a temporary file; the next write beside it removes it
    /// when its process is gone (pid 2^22 + 1 is above Linux's pid_max).
    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = test_dir("stale");
        let p = dir.join("out.bin");
        let stale = dir.join(".out.bin.tmp-4194305-0");
        let mine = dir.join(format!(".out.bin.tmp-{}-999", std::process::id()));
        fs::write(&stale, b"half").unwrap();
        fs::write(&mine, b"live").unwrap();
        write_atomic(&p, b"done").unwrap();
        if Path::new("/proc/self").exists() {
            assert!(!stale.exists());
        }
        assert!(mine.exists(), "a live process's temporary is kept");
        assert_eq!(fs::read(&p).unwrap(), b"done");
    }

    fn mlp(seed: u64) -> Mlp {
        MlpConfig::new(6, 10).init(&mut StdRng::seed_from_u64(seed)).unwrap()
    }

    fn attention(seed: u64) -> MultiHeadSelfAttention {
        MultiHeadSelfAttentionConfig::new(8, 2)
            .init(&mut StdRng::seed_from_u64(seed))
            .unwrap()
    }

    #[test]
    fn store_round_trip_is_bit_exact() {
        let dir = test_dir("store");
        let path = dir.join("w.safetensors");
        let mut store = TensorStore::new();
        let special = [
            0.0f32,
            -0.0,
            1.0,
            -1.5e-42, // subnormal
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x7fc0_1234), // NaN with payload
            std::f32::consts::PI,
            -123.456,
            7.0,
        ];
        store.insert(
            "a.weight",
            ArrayD::from_shape_vec(IxDyn(&[3, 4]), special.to_vec()).unwrap(),
        );
        // A transposed (non-standard-layout) array is saved in logical order.
        let t = Array2::from_shape_fn((2, 3), |(i, j)| (10 * i + j) as f32).reversed_axes();
        store.insert("b.t", t.clone().into_dyn());
        store.insert("c.scalar", ArrayD::from_elem(IxDyn(&[]), 2.5));
        store.insert("d.empty", ArrayD::zeros(IxDyn(&[0, 3])));
        store.save(&path).unwrap();
        let back = TensorStore::load(&path).unwrap();
        assert_eq!(back.len(), 4);
        assert_same_bits(&store, &back);
        assert_eq!(back.get("b.t").unwrap(), &t.into_dyn());
        assert_eq!(back.path(), Some(path.as_path()));
        // Atomic write left no temporary file behind; saving again replaces the file.
        store.remove("d.empty");
        store.save(&path).unwrap();
        assert_eq!(TensorStore::load(&path).unwrap().len(), 3);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn saved_file_is_plain_f32_safetensors() {
        let dir = test_dir("format");
        let path = dir.join("w.safetensors");
        let mut store = TensorStore::new();
        store.insert("x", ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.0, -2.0]).unwrap());
        store.save(&path).unwrap();
        let bytes = fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let x = st.tensor("x").unwrap();
        assert_eq!(x.dtype(), Dtype::F32);
        assert_eq!(x.shape(), &[2]);
        assert_eq!(x.data(), &[0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn model_round_trip_is_bit_exact() {
        let dir = test_dir("model");
        let path = dir.join("mlp.safetensors");
        let mut a = mlp(1);
        let mut b = mlp(2);
        assert_ne!(a, b);
        save_weights(&path, &mut a).unwrap();
        load_weights(&path, &mut b).unwrap();
        assert_eq!(
            bits(&a.fc1.weight.clone().into_dyn()),
            bits(&b.fc1.weight.clone().into_dyn())
        );
        assert_eq!(a, b);

        let path = dir.join("attn.safetensors");
        let mut a = attention(3);
        let mut b = attention(4);
        save_weights(&path, &mut a).unwrap();
        load_weights(&path, &mut b).unwrap();
        assert_same_bits(&TensorStore::from_params(&mut a), &TensorStore::from_params(&mut b));
        assert_eq!(a, b);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_and_shapes_follow_timm() {
        let mut attn = attention(5);
        let sd = TensorStore::from_params(&mut attn);
        let got: Vec<(&str, Vec<usize>)> = sd.iter().map(|(n, t)| (n, t.shape().to_vec())).collect();
        assert_eq!(
            got,
            vec![
                ("proj.bias", vec![8]),
                ("proj.weight", vec![8, 8]),
                ("qkv.bias", vec![24]),
                ("qkv.weight", vec![24, 8]),
            ]
        );
        // Visit order is the PyTorch module order, with the prefix joined by `.`.
        let mut order = Vec::new();
        attn.visit_params("blocks.0.attn", &mut |n, _| order.push(n.to_string()));
        assert_eq!(
            order,
            [
                "blocks.0.attn.qkv.weight",
                "blocks.0.attn.qkv.bias",
                "blocks.0.attn.proj.weight",
                "blocks.0.attn.proj.bias"
            ]
        );

        let mut m = mlp(6);
        let names: Vec<String> = TensorStore::from_params(&mut m).names().map(String::from).collect();
        assert_eq!(names, ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);

        let mut ln = LayerNormConfig::new(4).init().unwrap();
        ln.bias[2] = 0.5;
        let sd = TensorStore::from_params(&mut ln);
        assert_eq!(sd.names().collect::<Vec<_>>(), ["bias", "weight"]);
        assert_eq!(sd.get("bias").unwrap()[[2]], 0.5);

        let mut no_bias = LinearConfig::new(3, 2)
            .with_bias(false)
            .init(&mut StdRng::seed_from_u64(7))
            .unwrap();
        assert_eq!(
            TensorStore::from_params(&mut no_bias).names().collect::<Vec<_>>(),
            ["weight"]
        );
        assert_eq!(no_bias.parameter_count(), 6);
    }

    #[test]
    fn patch_embedding_weight_is_the_conv_weight() {
        let mut pe = PatchEmbeddingConfig::new(2, 3, 5)
            .init(&mut StdRng::seed_from_u64(8))
            .unwrap();
        let sd = TensorStore::from_params(&mut pe);
        assert_eq!(sd.names().collect::<Vec<_>>(), ["proj.bias", "proj.weight"]);
        let w = sd.get("proj.weight").unwrap();
        assert_eq!(w.shape(), &[5, 2, 3, 3]);
        for o in 0..5 {
            for c in 0..2 {
                for ky in 0..3 {
                    for kx in 0..3 {
                        assert_eq!(w[[o, c, ky, kx]], pe.proj.weight[[o, c * 9 + ky * 3 + kx]]);
                    }
                }
            }
        }
        // Loading a Conv2d weight gives the same layer as `from_conv_weight`.
        let conv = Array4::from_shape_fn((5, 2, 3, 3), |(o, c, y, x)| (o * 1000 + c * 100 + y * 10 + x) as f32);
        let bias = Array1::from_shape_fn(5, |i| -(i as f32));
        let mut store = TensorStore::new();
        store.insert("proj.weight", conv.clone().into_dyn());
        store.insert("proj.bias", bias.clone().into_dyn());
        store.load_into(&mut pe).unwrap();
        assert_eq!(pe, PatchEmbedding::from_conv_weight(conv, Some(bias)).unwrap());
    }

    #[test]
    fn token_embedding_uses_timm_names_and_batch_axis() {
        let mut te = TokenEmbeddingConfig::new(4, 6)
            .init(&mut StdRng::seed_from_u64(9))
            .unwrap();
        let sd = TensorStore::from_params(&mut te);
        assert_eq!(sd.names().collect::<Vec<_>>(), ["cls_token", "pos_embed"]);
        assert_eq!(sd.get("cls_token").unwrap().shape(), &[1, 1, 4]);
        assert_eq!(sd.get("pos_embed").unwrap().shape(), &[1, 7, 4]);
        assert_eq!(sd.get("pos_embed").unwrap()[[0, 3, 2]], te.position[[3, 2]]);

        let mut store = TensorStore::new();
        store.insert("cls_token", ArrayD::from_shape_fn(IxDyn(&[1, 1, 4]), |i| i[2] as f32));
        store.insert(
            "pos_embed",
            ArrayD::from_shape_fn(IxDyn(&[1, 7, 4]), |i| (10 * i[1] + i[2]) as f32),
        );
        store.load_into(&mut te).unwrap();
        assert_eq!(
            te.class_token.as_ref().unwrap(),
            &Array1::from_vec(vec![0.0, 1.0, 2.0, 3.0])
        );
        assert_eq!(te.position[[6, 1]], 61.0);

        let mut gf = TokenEmbeddingConfig::new(4, 6)
            .with_class_token(false)
            .init(&mut StdRng::seed_from_u64(9))
            .unwrap();
        let sd = TensorStore::from_params(&mut gf);
        assert_eq!(sd.names().collect::<Vec<_>>(), ["pos_embed"]);
        assert_eq!(sd.get("pos_embed").unwrap().shape(), &[1, 6, 4]);
    }

    #[test]
    fn wrong_shape_names_tensor_and_both_shapes_and_changes_nothing() {
        let dir = test_dir("shape");
        let path = dir.join("w.safetensors");
        let mut store = TensorStore::from_params(&mut mlp(1));
        store.insert("fc2.weight", ArrayD::zeros(IxDyn(&[6, 9])));
        store.save(&path).unwrap();
        let mut model = mlp(2);
        let before = model.clone();
        let err = load_weights(&path, &mut model).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, WeightsError::Shape { .. }), "{err:?}");
        assert!(msg.contains("`fc2.weight`"), "{msg}");
        assert!(msg.contains("[6, 9]") && msg.contains("[6, 10]"), "{msg}");
        assert!(msg.contains("w.safetensors"), "{msg}");
        assert!(!msg.contains('\n'));
        // All or nothing: fc1 (valid in the file) was not copied either.
        assert_eq!(model, before);

        // A transposed weight (same element count, other shape) is refused too.
        let mut store = TensorStore::from_params(&mut mlp(1));
        let t = store.get("fc1.weight").unwrap().t().to_owned();
        store.insert("fc1.weight", t);
        let err = store.load_into(&mut model).unwrap_err();
        assert!(
            matches!(&err, WeightsError::Shape { tensor, expected, actual, .. }
                if tensor == "fc1.weight" && expected == &[10, 6] && actual == &[6, 10]),
            "{err:?}"
        );
        assert_eq!(model, before);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_tensor_is_named_with_its_shape() {
        let mut store = TensorStore::from_params(&mut attention(1));
        store.remove("qkv.bias");
        store.remove("proj.weight");
        let mut model = attention(2);
        let before = model.clone();
        let err = store.load_into(&mut model).unwrap_err();
        let msg = err.to_string();
        match &err {
            WeightsError::Missing {
                tensor,
                expected,
                others,
                path,
            } => {
                assert_eq!(tensor, "qkv.bias");
                assert_eq!(expected, &[24]);
                assert_eq!(*others, 1);
                assert!(path.is_none());
            }
            other => panic!("expected Missing, got {other:?}"),
        }
        assert!(
            msg.contains("`qkv.bias`") && msg.contains("[24]") && msg.contains("1 more"),
            "{msg}"
        );
        assert_eq!(model, before);
    }

    #[test]
    fn extra_tensors_are_listed_sorted() {
        let mut store = TensorStore::from_params(&mut mlp(1));
        for name in ["zz", "head.weight", "aa", "b1", "b2", "b3", "b4"] {
            store.insert(name, ArrayD::zeros(IxDyn(&[1])));
        }
        let mut model = mlp(2);
        let before = model.clone();
        let err = store.load_into(&mut model).unwrap_err();
        match &err {
            WeightsError::Unexpected { names, .. } => {
                assert_eq!(names, &["aa", "b1", "b2", "b3", "b4", "head.weight", "zz"]);
            }
            other => panic!("expected Unexpected, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.starts_with("7 tensor(s) not used"), "{msg}");
        assert!(msg.contains("`aa`, `b1`, `b2`, `b3`, `b4`, … and 2 more"), "{msg}");
        assert!(!msg.contains("zz"), "{msg}");
        assert_eq!(model, before);
    }

    #[test]
    fn f16_conversion_is_exact() {
        let cases: [(u16, f32); 16] = [
            (0x0000, 0.0),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 1365.0 / 4096.0),
            (0x3e00, 1.5),
            (0x7bff, 65504.0),
            (0xfbff, -65504.0),
            (0x0400, 1.0 / 16384.0),         // smallest normal 2⁻¹⁴
            (0x0001, 1.0 / 16_777_216.0),    // smallest subnormal 2⁻²⁴
            (0x03ff, 1023.0 / 16_777_216.0), // largest subnormal 1023 · 2⁻²⁴
            (0x8001, -(1.0 / 16_777_216.0)), // negative subnormal
            (0x0200, 1.0 / 32768.0),         // subnormal 2⁻¹⁵
            (0x7c00, f32::INFINITY),
            (0xfc00, f32::NEG_INFINITY),
            (0x5640, 100.0),
            (0x2e66, 1638.0 / 16384.0),
        ];
        for (b, want) in cases {
            let got = f16_to_f32(b);
            assert_eq!(got.to_bits(), want.to_bits(), "f16 {b:#06x}: {got:e} vs {want:e}");
        }
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000); // -0
        assert_eq!(f16_to_f32(0x0001), 1.0 / 16_777_216.0);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert!(f16_to_f32(0xfc01).is_nan());
        assert!(f16_to_f32(0x7c01).is_nan()); // signalling NaN stays NaN, not ∞
                                              // All positive finite halves map to strictly increasing f32s, and the
                                              // negatives mirror them.
        let mut prev = -1.0f32;
        for b in 0..0x7c00u16 {
            let v = f16_to_f32(b);
            assert!(v > prev, "{b:#06x}");
            assert_eq!(f16_to_f32(b | 0x8000), -v);
            prev = v;
        }
    }

    #[test]
    fn bf16_conversion_is_exact() {
        let cases: [(u16, f32); 9] = [
            (0x0000, 0.0),
            (0x3f80, 1.0),
            (0xc000, -2.0),
            (0x4049, 3.140_625),
            (0xc2f7, -123.5),
            (0x7f7f, 255.0 * 2f32.powi(120)), // largest finite 255 · 2¹²⁰
            (0x0080, f32::MIN_POSITIVE),      // smallest normal
            (0x7f80, f32::INFINITY),
            (0xff80, f32::NEG_INFINITY),
        ];
        for (b, want) in cases {
            let got = bf16_to_f32(b);
            assert_eq!(got.to_bits(), want.to_bits(), "bf16 {b:#06x}: {got:e} vs {want:e}");
        }
        assert_eq!(bf16_to_f32(0x0001), f32::MIN_POSITIVE / 128.0); // smallest subnormal
        assert_eq!(bf16_to_f32(0x8001), -(f32::MIN_POSITIVE / 128.0));
        assert_eq!(bf16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert!(bf16_to_f32(0x7fc0).is_nan());
        assert!(bf16_to_f32(0xff81).is_nan());
    }

    #[test]
    fn loads_half_bfloat_and_double_files() {
        let dir = test_dir("dtypes");
        let path = dir.join("mixed.safetensors");
        let half: Vec<u8> = [0x3c00u16, 0x0001, 0xfc00, 0xc000]
            .iter()
            .flat_map(|b| b.to_le_bytes())
            .collect();
        let bf: Vec<u8> = [0x4049u16, 0x8001].iter().flat_map(|b| b.to_le_bytes()).collect();
        let dbl: Vec<u8> = [0.1f64, -1e300].iter().flat_map(|v| v.to_le_bytes()).collect();
        write_raw(
            &path,
            &[
                ("h", Dtype::F16, vec![2, 2], half),
                ("b", Dtype::BF16, vec![2], bf),
                ("d", Dtype::F64, vec![2], dbl),
            ],
        );
        let s = TensorStore::load(&path).unwrap();
        let h = s.get("h").unwrap();
        assert_eq!(h.shape(), &[2, 2]);
        assert_eq!(
            h.iter().copied().collect::<Vec<_>>(),
            [1.0, 1.0 / 16_777_216.0, f32::NEG_INFINITY, -2.0]
        );
        assert_eq!(
            s.get("b").unwrap().iter().copied().collect::<Vec<_>>(),
            [3.140625, -(f32::MIN_POSITIVE / 128.0)]
        );
        assert_eq!(
            s.get("d").unwrap().iter().copied().collect::<Vec<_>>(),
            [0.1f32, f32::NEG_INFINITY]
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn unsupported_dtype_names_tensor_and_dtype() {
        let dir = test_dir("i64");
        let path = dir.join("ints.safetensors");
        write_raw(&path, &[("steps", Dtype::I64, vec![1], 7i64.to_le_bytes().to_vec())]);
        let err = TensorStore::load(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, WeightsError::UnsupportedDtype { .. }), "{err:?}");
        assert!(
            msg.contains("`steps`") && msg.contains("I64") && msg.contains("ints.safetensors"),
            "{msg}"
        );
        assert!(msg.contains("F16") && msg.contains("BF16"), "{msg}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn non_safetensors_file_is_a_format_error_naming_the_path() {
        let dir = test_dir("garbage");
        let path = dir.join("model.bin");
        fs::write(&path, b"PK\x03\x04 this is a pytorch zip, not safetensors").unwrap();
        let err = TensorStore::load(&path).unwrap_err();
        let msg = err.to_string();
        match &err {
            WeightsError::Format { path: p, .. } => assert_eq!(p, &path),
            other => panic!("expected Format, got {other:?}"),
        }
        assert!(msg.contains("model.bin") && msg.contains("safetensors"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");

        // An empty file and a truncated one are format errors too.
        fs::write(&path, b"").unwrap();
        assert!(matches!(TensorStore::load(&path), Err(WeightsError::Format { .. })));
        let good = dir.join("good.safetensors");
        TensorStore::from_params(&mut mlp(1)).save(&good).unwrap();
        let bytes = fs::read(&good).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        assert!(matches!(TensorStore::load(&path), Err(WeightsError::Format { .. })));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn io_errors_name_the_path() {
        let dir = test_dir("io");
        let missing = dir.join("nope.safetensors");
        let err = TensorStore::load(&missing).unwrap_err();
        assert!(matches!(err, WeightsError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("nope.safetensors"), "{err}");
        // Saving into a missing directory fails and leaves nothing behind.
        let bad = dir.join("no_such_dir").join("w.safetensors");
        let err = TensorStore::from_params(&mut mlp(1)).save(&bad).unwrap_err();
        assert!(matches!(err, WeightsError::Io { .. }), "{err:?}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        let _ = fs::remove_dir_all(&dir);
    }
}
