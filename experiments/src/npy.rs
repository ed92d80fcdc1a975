//! NumPy `.npy` files of float maps, read and written without a NumPy crate.
//!
//! Format (numpy.lib.format, "NEP 1"): the magic `\x93NUMPY`, a version byte pair
//! (1.0 with a `u16` header length; 2.0 and 3.0 with a `u32` one; 3.0 only allows
//! UTF-8 in the header), then a Python dict literal
//! `{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces
//! and a newline, then the raw data in C (row-major) or Fortran (column-major)
//! order.
//!
//! Read: float32 or float64 (`<f4`, `<f8`, big-endian `>f4`, `>f8`), either
//! order, rank 2 (one map `[y, x]`) or rank 3 (a stack `[map, y, x]`) — and for
//! kernels rank 4 (a bank `[C_out, C_in, K, L]`, as a stack of `C_out·C_in`) — always
//! returned as a [`MapStack`] of `f64`. Written: little-endian, C order, version
//! 1.0, header padded to 64 bytes as NumPy does, atomically.

use std::path::{Path, PathBuf};

use ndarray::{Array3, ArrayD, Ix3, IxDyn, ShapeBuilder};
use thiserror::Error;

use crate::atomic::write_atomic;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Element type of a `.npy` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE single precision (`f4`).
    F32,
    /// IEEE double precision (`f8`).
    F64,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

/// Maps read from or written to a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct MapStack {
    /// Samples `[map, y, x]`; a 2-D file is a stack of one map.
    pub data: Array3<f64>,
    /// True for a 3-D file (a stack), false for a single 2-D map.
    pub stacked: bool,
    /// Element type in the file.
    pub dtype: Dtype,
}

impl MapStack {
    /// Shape as stored in the file: `[y, x]` or `[map, y, x]`.
    pub fn file_shape(&self) -> Vec<usize> {
        let s = self.data.shape();
        if self.stacked {
            s.to_vec()
        } else {
            s[1..].to_vec()
        }
    }
}

/// What can go wrong reading or writing a `.npy` file; every message names the
/// file and says what would be valid.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file does not exist.
    #[error("{}: file not found", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file does not start with the `.npy` magic.
    #[error("{}: not a NumPy .npy file (it does not start with \\x93NUMPY)", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// A format version this reader does not know.
    #[error("{}: unsupported .npy format version {major}.{minor}; valid: 1.0, 2.0, 3.0", path.display())]
    BadVersion {
        /// The file.
        path: PathBuf,
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// The header dict could not be parsed.
    #[error("{}: malformed .npy header: {reason}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An element type other than float32 or float64.
    #[error("{}: unsupported dtype `{descr}`; valid: float32 or float64 (<f4, <f8, or big-endian >f4, >f8)", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The `descr` field.
        descr: String,
    },
    /// An array of a rank the reader does not take.
    #[error("{}: array of shape {shape:?} is {}-D; valid: {valid}", path.display(), shape.len())]
    Rank {
        /// The file.
        path: PathBuf,
        /// Its shape.
        shape: Vec<usize>,
        /// What would be valid.
        valid: &'static str,
    },
    /// Fewer data bytes than the shape needs.
    #[error("{}: truncated: shape {shape:?} needs {needed} data bytes, the file holds {found}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Shape from the header.
        shape: Vec<usize>,
        /// Bytes the shape needs.
        needed: usize,
        /// Bytes present after the header.
        found: usize,
    },
    /// The file could not be written.
    #[error("{}: cannot write: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
}

/// The largest header [`read_npy`] reads (NumPy writes at most a few hundred
/// bytes; the format allows 4 GiB).
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// The largest data [`read_npy`] reads: 16 GiB (a 32768² float64 stack of 2 maps).
pub const MAX_DATA_BYTES: usize = 16 << 30;

/// Reads a float32/float64 `.npy` file holding a 2-D map or a 3-D stack of maps.
///
/// Reads only what the header says the file holds — the prefix, the header (at
/// most [`MAX_HEADER_BYTES`]) and the data its shape needs (at most
/// [`MAX_DATA_BYTES`]) — so a device or an endless stream given as the input is an
/// error, not a read until memory runs out.
pub fn read_npy(path: &Path) -> Result<MapStack, NpyError> {
    read_ranked(path, 3).map(|(maps, _)| maps)
}

/// [`read_npy`] that also takes a 4-D bank of kernels `[C_out, C_in, K, L]` (a CNN
/// layer's weight, as PyTorch's `Conv2d` stores it): returned as a stack of
/// `C_out·C_in` kernels in that order, with `Some(C_out)`.
pub fn read_npy_kernels(path: &Path) -> Result<(MapStack, Option<usize>), NpyError> {
    read_ranked(path, 4)
}

fn read_ranked(path: &Path, max_rank: usize) -> Result<(MapStack, Option<usize>), NpyError> {
    use std::io::Read;
    let read_err = |error: std::io::Error| match error.kind() {
        std::io::ErrorKind::NotFound => NpyError::NotFound { path: path.into() },
        _ => NpyError::Read {
            path: path.into(),
            error,
        },
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut r = std::io::BufReader::new(file);
    let mut bytes = Vec::new();
    // Reads until `bytes` holds `n` bytes or the file ends.
    let mut fill = |bytes: &mut Vec<u8>, n: usize| -> Result<(), NpyError> {
        let more = n.saturating_sub(bytes.len()) as u64;
        (&mut r).take(more).read_to_end(bytes).map(|_| ()).map_err(read_err)
    };
    fill(&mut bytes, 12)?;
    let at = |e: ParseError| e.at(path);
    let (start, header_len) = prefix(&bytes).map_err(at)?;
    if header_len > MAX_HEADER_BYTES {
        return Err(at(ParseError::BadHeader(format!(
            "a header of {header_len} bytes; at most {MAX_HEADER_BYTES} are read"
        ))));
    }
    fill(&mut bytes, start + header_len)?;
    let (h, dtype, _) = header(&bytes, start, header_len, max_rank).map_err(at)?;
    let needed = data_bytes(&h.shape, dtype).map_err(at)?;
    if needed > MAX_DATA_BYTES {
        return Err(at(ParseError::BadHeader(format!(
            "shape {:?} needs {needed} data bytes; at most {MAX_DATA_BYTES} are read",
            h.shape
        ))));
    }
    fill(&mut bytes, start + header_len + needed)?;
    parse(&bytes, max_rank).map_err(at)
}

/// Writes `maps` in its dtype, as a 3-D file if `maps.stacked`, else 2-D.
/// Atomic: on error no file (and no partial file) is left at `path`.
///
/// # Panics
/// If `maps` is not stacked but holds other than one map.
pub fn write_npy(path: &Path, maps: &MapStack) -> Result<(), NpyError> {
    write_atomic(path, &encode(maps)).map_err(|error| NpyError::Write {
        path: path.into(),
        error,
    })
}

/// [`NpyError`] without the path, filled in by [`read_npy`].
enum ParseError {
    BadMagic,
    BadVersion(u8, u8),
    BadHeader(String),
    Dtype(String),
    Rank(Vec<usize>, usize),
    Truncated(Vec<usize>, usize, usize),
}

impl ParseError {
    fn at(self, path: &Path) -> NpyError {
        let path = path.to_path_buf();
        match self {
            ParseError::BadMagic => NpyError::BadMagic { path },
            ParseError::BadVersion(major, minor) => NpyError::BadVersion { path, major, minor },
            ParseError::BadHeader(reason) => NpyError::BadHeader { path, reason },
            ParseError::Dtype(descr) => NpyError::Dtype { path, descr },
            ParseError::Rank(shape, max_rank) => NpyError::Rank {
                path,
                shape,
                valid: if max_rank == 4 {
                    "a 2-D map, a 3-D stack of maps, or a 4-D bank of kernels `[C_out, C_in, K, L]`"
                } else {
                    "a 2-D map or a 3-D stack of maps"
                },
            },
            ParseError::Truncated(shape, needed, found) => NpyError::Truncated {
                path,
                shape,
                needed,
                found,
            },
        }
    }
}

/// `(start of the header, header length)` from the first 12 bytes.
fn prefix(bytes: &[u8]) -> Result<(usize, usize), ParseError> {
    if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(ParseError::BadMagic);
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => return Err(ParseError::BadVersion(major, minor)),
    };
    let start = 8 + len_bytes;
    let len_field = bytes
        .get(8..start)
        .ok_or_else(|| ParseError::BadHeader("the file ends inside the header".into()))?;
    let header_len = len_field.iter().rev().fold(0usize, |acc, &b| acc << 8 | b as usize);
    Ok((start, header_len))
}

/// The header dict at `start`, its dtype and byte order.
fn header(bytes: &[u8], start: usize, header_len: usize, max_rank: usize) -> Result<(Header, Dtype, bool), ParseError> {
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| ParseError::BadHeader("the file ends inside the header".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| ParseError::BadHeader("header is not text".into()))?;
    let h = Header::parse(header).map_err(ParseError::BadHeader)?;
    let (dtype, big_endian) = match h.descr.as_str() {
        "<f4" => (Dtype::F32, false),
        "<f8" => (Dtype::F64, false),
        ">f4" => (Dtype::F32, true),
        ">f8" => (Dtype::F64, true),
        _ => return Err(ParseError::Dtype(h.descr)),
    };
    if !(2..=max_rank).contains(&h.shape.len()) {
        return Err(ParseError::Rank(h.shape, max_rank));
    }
    Ok((h, dtype, big_endian))
}

/// The data bytes `shape` needs. An array whose shape cannot be indexed (the
/// product of its nonzero sides over `isize::MAX`, even when a side is 0) is an
/// error.
fn data_bytes(shape: &[usize], dtype: Dtype) -> Result<usize, ParseError> {
    let nonzero = shape
        .iter()
        .filter(|&&d| d > 0)
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize);
    match nonzero {
        None => Err(ParseError::BadHeader(format!(
            "shape {shape:?} is too large for any array on this machine"
        ))),
        Some(_) if shape.contains(&0) => Ok(0),
        Some(n) => Ok(n),
    }
}

fn parse(bytes: &[u8], max_rank: usize) -> Result<(MapStack, Option<usize>), ParseError> {
    let (start, header_len) = prefix(bytes)?;
    let (h, dtype, big_endian) = header(bytes, start, header_len, max_rank)?;
    let data = &bytes[start + header_len..];
    let needed = data_bytes(&h.shape, dtype)?;
    if data.len() < needed {
        return Err(ParseError::Truncated(h.shape, needed, data.len()));
    }
    let values: Vec<f64> = match (dtype, big_endian) {
        (Dtype::F32, false) => decode(data, needed, |b| f32::from_le_bytes(b) as f64),
        (Dtype::F32, true) => decode(data, needed, |b| f32::from_be_bytes(b) as f64),
        (Dtype::F64, false) => decode(data, needed, f64::from_le_bytes),
        (Dtype::F64, true) => decode(data, needed, f64::from_be_bytes),
    };
    let dim = IxDyn(&h.shape);
    let array = if h.fortran_order {
        ArrayD::from_shape_vec(dim.f(), values)
    } else {
        ArrayD::from_shape_vec(dim, values)
    }
    .expect("length checked against the shape");
    let (stacked, outer) = (h.shape.len() >= 3, (h.shape.len() == 4).then(|| h.shape[0]));
    let array = match h.shape.len() {
        2 => array.insert_axis(ndarray::Axis(0)),
        3 => array,
        _ => {
            let s = &h.shape;
            array
                .as_standard_layout()
                .into_owned()
                .into_shape_with_order(IxDyn(&[s[0] * s[1], s[2], s[3]]))
                .expect("the same number of samples")
        }
    };
    let data = array
        .into_dimensionality::<Ix3>()
        .expect("rank checked")
        .as_standard_layout()
        .into_owned();
    Ok((MapStack { data, stacked, dtype }, outer))
}

fn decode<const N: usize>(data: &[u8], len: usize, f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
    data[..len]
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunk of N bytes")))
        .collect()
}

fn encode(maps: &MapStack) -> Vec<u8> {
    let shape = maps.file_shape();
    assert!(
        maps.stacked || maps.data.shape()[0] == 1,
        "write_npy: an unstacked MapStack must hold one map, got {}",
        maps.data.shape()[0]
    );
    let descr = match maps.dtype {
        Dtype::F32 => "<f4",
        Dtype::F64 => "<f8",
    };
    let mut out = npy_header(descr, &shape, maps.data.len() * maps.dtype.size());
    for &v in maps.data.iter() {
        match maps.dtype {
            Dtype::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            Dtype::F64 => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    out
}

/// The magic, version 1.0 and the header dict of a C-order file of `shape`, padded
/// as NumPy pads it (data on a 64-byte boundary), with room for `data_bytes` more.
fn npy_header(descr: &str, shape: &[usize], data_bytes: usize) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    // A 1-tuple needs its trailing comma: `(5,)`.
    let comma = if dims.len() == 1 { "," } else { "" };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}{comma}), }}",
        dims.join(", ")
    );
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let header_len = u16::try_from(header.len()).expect("a low-rank header fits in 64 KiB");
    let mut out = Vec::with_capacity(header.len() + 10 + data_bytes);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// The bytes of a complex128 (`<c16`, C order) `.npy` file holding `field` `[y, x]`:
/// NumPy reads it with `np.load` as `complex128`.
pub fn encode_complex(field: ndarray::ArrayView2<num_complex::Complex64>) -> Vec<u8> {
    let (ny, nx) = field.dim();
    let mut out = npy_header("<c16", &[ny, nx], 16 * ny * nx);
    for v in field.iter() {
        out.extend_from_slice(&v.re.to_le_bytes());
        out.extend_from_slice(&v.im.to_le_bytes());
    }
    out
}

/// The bytes of a float64 (`<f8`, C order) `.npy` file holding `map` `[y, x]`.
pub fn encode_real(map: ndarray::ArrayView2<f64>) -> Vec<u8> {
    encode(&MapStack {
        data: map.insert_axis(ndarray::Axis(0)).to_owned(),
        stacked: false,
        dtype: Dtype::F64,
    })
}

/// The fields of the header dict this reader needs.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value in the header dict.
enum PyValue {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

impl Header {
    /// Parses the Python dict literal NumPy writes: string keys, and values that
    /// are strings, `True`/`False` or tuples of integers.
    fn parse(text: &str) -> Result<Header, String> {
        let mut p = Cursor {
            s: text.trim_end(),
            i: 0,
        };
        p.expect('{')?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        loop {
            p.skip_ws();
            if p.eat('}') {
                break;
            }
            let key = p.string()?;
            p.skip_ws();
            p.expect(':')?;
            p.skip_ws();
            let value = p.value()?;
            match (key.as_str(), value) {
                ("descr", PyValue::Str(s)) => descr = Some(s),
                ("fortran_order", PyValue::Bool(b)) => fortran = Some(b),
                ("shape", PyValue::Tuple(t)) => shape = Some(t),
                ("descr" | "fortran_order" | "shape", _) => return Err(format!("'{key}' has the wrong type")),
                _ => {} // NumPy writes no other keys; tolerate them.
            }
            p.skip_ws();
            if !p.eat(',') {
                p.skip_ws();
                p.expect('}')?;
                break;
            }
        }
        let missing = |k: &str| format!("the header has no '{k}'");
        Ok(Header {
            descr: descr.ok_or_else(|| missing("descr"))?,
            fortran_order: fortran.ok_or_else(|| missing("fortran_order"))?,
            shape: shape.ok_or_else(|| missing("shape"))?,
        })
    }
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }
    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += c.len_utf8();
        }
        hit
    }
    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{c}` at byte {} of the header", self.i))
        }
    }
    /// Python's whitespace in a literal: ASCII only (U+00A0 and the like are a
    /// syntax error to `ast.literal_eval`, and so an error here).
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn string(&mut self) -> Result<String, String> {
        let q = self.peek().filter(|&c| c == '\'' || c == '"');
        let q = q.ok_or_else(|| format!("expected a quoted string at byte {} of the header", self.i))?;
        self.i += 1;
        let len = self.s[self.i..]
            .find(q)
            .ok_or_else(|| "unterminated string in the header".to_string())?;
        let out = self.s[self.i..self.i + len].to_string();
        self.i += len + 1;
        Ok(out)
    }
    fn value(&mut self) -> Result<PyValue, String> {
        for (word, b) in [("True", true), ("False", false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(PyValue::Bool(b));
            }
        }
        if !self.eat('(') {
            return self.string().map(PyValue::Str);
        }
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(')') {
                return Ok(PyValue::Tuple(dims));
            }
            let digits = self.s[self.i..].chars().take_while(char::is_ascii_digit).count();
            let n = self.s[self.i..self.i + digits]
                .parse()
                .map_err(|_| format!("expected a dimension at byte {} of the header", self.i))?;
            dims.push(n);
            self.i += digits;
            self.skip_ws();
            if !self.eat(',') {
                self.skip_ws();
                self.expect(')')?;
                return Ok(PyValue::Tuple(dims));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// A `.npy` file with the given version, header dict and data, padded the way
    /// NumPy pads (header end on a 64-byte boundary, spaces then a newline).
    fn npy_bytes(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
        let len_bytes = if version == 1 { 2 } else { 4 };
        let unpadded = 8 + len_bytes + dict.len() + 1;
        let header = format!("{dict}{}\n", " ".repeat(unpadded.next_multiple_of(64) - unpadded));
        let mut out = b"\x93NUMPY".to_vec();
        out.extend_from_slice(&[version, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes()[..len_bytes]);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn stack(data: Array3<f64>, stacked: bool, dtype: Dtype) -> MapStack {
        MapStack { data, stacked, dtype }
    }

    #[test]
    fn round_trip_f64_and_f32() {
        let dir = crate::test_dir("npy-rt");
        let a = Array3::from_shape_fn((3, 4, 5), |(k, i, j)| (k * 100 + i * 10 + j) as f64 * 0.37 - 20.0);
        for (dtype, tol) in [(Dtype::F64, 0.0), (Dtype::F32, 1e-6)] {
            for stacked in [true, false] {
                let data = if stacked {
                    a.clone()
                } else {
                    a.slice(ndarray::s![1..2, .., ..]).to_owned()
                };
                let p = dir.join(format!("{dtype:?}-{stacked}.npy"));
                write_npy(&p, &stack(data.clone(), stacked, dtype)).unwrap();
                let bytes = std::fs::read(&p).unwrap();
                let header_end = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
                assert_eq!(header_end % 64, 0, "data aligned to 64 bytes");
                let back = read_npy(&p).unwrap();
                assert_eq!((back.stacked, back.dtype), (stacked, dtype));
                assert_eq!(back.data.dim(), data.dim());
                for (x, y) in back.data.iter().zip(&data) {
                    assert!((x - y).abs() <= tol * y.abs(), "{x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn reads_a_numpy_written_header() {
        // What `np.save("a.npy", np.arange(6.0).reshape(2, 3))` writes with
        // NumPy ≥ 1.23: the 59-byte dict, 20 spaces of room for the shape to grow,
        // 38 spaces of padding and a newline (118 header bytes, data at byte 128).
        // Written out by hand from numpy/lib/format.py (`_write_array_header`,
        // `_wrap_header`), as NumPy is not installed here.
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
        let header = format!("{dict}{}\n", " ".repeat(20 + 38));
        let mut bytes = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
        bytes.extend_from_slice(header.as_bytes());
        assert_eq!(bytes.len(), 128);
        for v in 0..6 {
            bytes.extend_from_slice(&(v as f64).to_le_bytes());
        }
        let dir = crate::test_dir("npy-numpy");
        let m = read_npy(&file(&dir, "a.npy", &bytes)).unwrap();
        assert!(!m.stacked);
        assert_eq!(m.file_shape(), vec![2, 3]);
        assert_eq!(m.data.as_slice().unwrap(), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn fortran_order_big_endian_and_version_2() {
        // `np.asfortranarray(np.arange(6, dtype='>f4').reshape(2, 3))`: the data
        // is column by column: a00 a10 a01 a11 a02 a12.
        let data: Vec<u8> = [0.0f32, 3.0, 1.0, 4.0, 2.0, 5.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let dir = crate::test_dir("npy-fortran");
        for version in [1, 2, 3] {
            let bytes = npy_bytes(
                version,
                "{'descr': '>f4', 'fortran_order': True, 'shape': (2, 3), }",
                &data,
            );
            let m = read_npy(&file(&dir, &format!("v{version}.npy"), &bytes)).unwrap();
            assert_eq!(m.dtype, Dtype::F32);
            assert_eq!(m.data.as_slice().unwrap(), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        }
        // A 3-D Fortran stack: element [k, i, j] sits at k + 2i + 4j.
        let vals: Vec<u8> = (0..8).flat_map(|v| (v as f64).to_le_bytes()).collect();
        let bytes = npy_bytes(
            1,
            "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2, 2), }",
            &vals,
        );
        let m = read_npy(&file(&dir, "f3.npy", &bytes)).unwrap();
        assert!(m.stacked);
        assert_eq!(m.data[[1, 0, 1]], 5.0);
        assert_eq!(m.data[[0, 1, 1]], 6.0);
    }

    #[test]
    fn errors_name_the_file_and_what_is_valid() {
        let dir = crate::test_dir("npy-err");
        let err = |name: &str, bytes: &[u8]| read_npy(&file(&dir, name, bytes)).unwrap_err().to_string();

        let e = read_npy(&dir.join("missing.npy")).unwrap_err().to_string();
        assert!(e.contains("missing.npy") && e.contains("not found"), "{e}");

        let e = err("text.npy", b"hello, world");
        assert!(e.contains("text.npy") && e.contains("not a NumPy .npy file"), "{e}");

        let ints = npy_bytes(
            1,
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }",
            &[0; 16],
        );
        let e = err("ints.npy", &ints);
        assert!(
            e.contains("ints.npy") && e.contains("`<i4`") && e.contains("float32 or float64"),
            "{e}"
        );

        let rank1 = npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", &[0; 32]);
        let e = err("rank1.npy", &rank1);
        assert!(
            e.contains("rank1.npy") && e.contains("1-D") && e.contains("2-D map or a 3-D stack"),
            "{e}"
        );

        let short = npy_bytes(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }",
            &[0; 31],
        );
        let e = err("short.npy", &short);
        assert!(
            e.contains("short.npy") && e.contains("truncated") && e.contains("32"),
            "{e}"
        );

        let v9 = npy_bytes(1, "{}", &[])
            .iter()
            .enumerate()
            .map(|(i, &b)| if i == 6 { 9 } else { b })
            .collect::<Vec<_>>();
        assert!(err("v9.npy", &v9).contains("version 9.0"));

        let bad = npy_bytes(1, "{'descr': '<f8', 'shape': (2, 2), }", &[0; 32]);
        assert!(err("bad.npy", &bad).contains("no 'fortran_order'"));
    }

    /// Reproducers from the hardening issue's fuzzing of main: each panicked, or
    /// read until memory ran out.
    #[test]
    fn hostile_files_are_errors_not_panics() {
        let dir = crate::test_dir("npy-hostile");
        let err = |name: &str, bytes: &[u8]| read_npy(&file(&dir, name, bytes)).unwrap_err().to_string();
        // Unicode whitespace in the header ("not a char boundary" in the cursor).
        for (i, ws) in ["\u{a0}", "\u{2009}", "\u{3000}"].iter().enumerate() {
            let dict = format!("{{'descr':{ws}'<f8', 'fortran_order': False, 'shape': (1, 1), }}");
            let e = err(&format!("ws{i}.npy"), &npy_bytes(1, &dict, &[0; 8]));
            assert!(e.contains("malformed .npy header") && e.contains("expected"), "{e}");
        }
        // A zero side beside sides whose product overflows.
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 10000000000, 10000000000), }";
        let e = err("zero.npy", &npy_bytes(1, dict, &[]));
        assert!(e.contains("too large"), "{e}");
        // A legal empty stack still reads.
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4, 4), }";
        assert_eq!(
            read_npy(&file(&dir, "empty.npy", &npy_bytes(1, dict, &[])))
                .unwrap()
                .data
                .len(),
            0
        );
        // A header that claims 4 GiB.
        let mut huge = b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec();
        huge.extend_from_slice(b"{'descr'");
        let e = err("huge.npy", &huge);
        assert!(e.contains("at most 1048576"), "{e}");
        // A shape far beyond the data cap is refused from the header alone.
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }";
        let e = err("big.npy", &npy_bytes(1, dict, &[]));
        assert!(e.contains("at most 17179869184"), "{e}");
        // An endless stream: the magic is checked on the first bytes.
        if Path::new("/dev/zero").exists() {
            let e = read_npy(Path::new("/dev/zero")).unwrap_err().to_string();
            assert!(e.contains("not a NumPy .npy file"), "{e}");
        }
    }

    #[test]
    fn header_parser_accepts_numpy_variants() {
        let h = Header::parse("{\"descr\":\"<f8\",\"fortran_order\":False,\"shape\":(1,2,3)}  \n").unwrap();
        assert_eq!(h.shape, vec![1, 2, 3]);
        let h = Header::parse("{'descr': '<f4', 'fortran_order': True, 'shape': (7, 8,), }").unwrap();
        assert_eq!(
            h,
            Header {
                descr: "<f4".into(),
                fortran_order: true,
                shape: vec![7, 8]
            }
        );
        assert!(Header::parse("{'descr': '<f4', 'fortran_order': 1, 'shape': (7, 8)}").is_err());
        assert!(Header::parse("{'descr': '<f4', 'shape': (7, x)}").is_err());
    }
}
