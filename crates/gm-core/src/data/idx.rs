//! Reader of the IDX format of MNIST and Fashion-MNIST (unsigned-byte arrays only).
//!
//! An IDX file is `0x00 0x00 <dtype> <ndims>`, then `ndims` big-endian `u32` dimensions, then
//! the values in row-major order. gm reads dtype `0x08` (unsigned byte), the only one these
//! datasets use, and requires the file to be exactly header plus values long. A gzip-wrapped
//! file is recognised by its magic and decompressed first.

use std::path::Path;

use tch::Tensor;

use super::files;
use crate::{Error, Result};

/// The IDX type code of unsigned bytes.
const DTYPE_U8: u8 = 0x08;

/// An unsigned-byte IDX array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (`[60000, 28, 28]` for MNIST's training images).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

impl IdxArray {
    /// The values as a `Uint8` tensor of shape `dims`.
    pub fn to_tensor(&self) -> Tensor {
        let dims: Vec<i64> = self.dims.iter().map(|&d| d as i64).collect();
        Tensor::from_slice(&self.data).view(dims.as_slice())
    }
}

/// Reads the IDX file at `path` (raw or gzip-wrapped).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    parse_idx(files::read_payload(path)?, path)
}

/// Parses an uncompressed IDX payload; `path` names the file in errors.
pub fn parse_idx(mut bytes: Vec<u8>, path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::format(
            path,
            format!(
                "IDX file too short: {} bytes, expected at least a 4-byte magic",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::format(
            path,
            format!(
                "not an IDX file: magic starts {:02x} {:02x}, expected 00 00",
                bytes[0], bytes[1]
            ),
        ));
    }
    if bytes[2] != DTYPE_U8 {
        return Err(Error::format(
            path,
            format!(
                "IDX value type 0x{:02x}, expected 0x08 (unsigned byte)",
                bytes[2]
            ),
        ));
    }
    let ndims = usize::from(bytes[3]);
    if ndims == 0 {
        return Err(Error::format(
            path,
            "IDX file with 0 dimensions, expected at least 1",
        ));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX header: {} bytes, expected {header} for {ndims} dimensions",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let shown = dims
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("×");
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_add(header))
        .ok_or_else(|| Error::format(path, format!("IDX dimensions {shown} overflow")))?;
    if bytes.len() != expected {
        let what = if bytes.len() < expected {
            "truncated"
        } else {
            "trailing bytes in"
        };
        return Err(Error::format(
            path,
            format!(
                "{what} IDX file: expected {expected} bytes ({header}-byte header + {shown} values), found {}",
                bytes.len()
            ),
        ));
    }
    bytes.drain(..header);
    Ok(IdxArray { dims, data: bytes })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// An unsigned-byte IDX payload.
    pub(crate) fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, DTYPE_U8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn format_msg(r: Result<IdxArray>, path: &Path) -> String {
        match r {
            Err(Error::Format { path: p, msg }) => {
                assert_eq!(p, path);
                msg
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn idx_reads_raw_and_gz() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..24).map(|i| i * 10).collect();
        let raw = idx_bytes(&[2, 3, 4], &data);
        let p_raw = dir.path().join("raw-idx3-ubyte");
        let p_gz = dir.path().join("gz-idx3-ubyte.gz");
        std::fs::write(&p_raw, &raw).unwrap();
        std::fs::write(&p_gz, gzip(&raw)).unwrap();
        for p in [&p_raw, &p_gz] {
            let a = read_idx(p).unwrap();
            assert_eq!(a.dims, [2, 3, 4]);
            assert_eq!(a.data, data);
            let t = a.to_tensor();
            assert_eq!(t.size(), [2, 3, 4]);
            assert_eq!(t.int64_value(&[1, 2, 3]), 230);
        }
        let labels = read_idx_bytes(&idx_bytes(&[3], &[7, 0, 9]));
        assert_eq!(labels.dims, [3]);
        assert_eq!(labels.data, [7, 0, 9]);
    }

    fn read_idx_bytes(b: &[u8]) -> IdxArray {
        parse_idx(b.to_vec(), Path::new("mem")).unwrap()
    }

    #[test]
    fn idx_truncated_is_a_format_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t10k-images-idx3-ubyte");
        let full = idx_bytes(&[2, 3, 4], &[1; 24]);
        std::fs::write(&p, &full[..full.len() - 1]).unwrap();
        let err = read_idx(&p).unwrap_err();
        assert!(err.to_string().contains("t10k-images-idx3-ubyte"), "{err}");
        let msg = format_msg(Err(err), &p);
        assert!(
            msg.contains("truncated")
                && msg.contains("expected 40 bytes")
                && msg.contains("found 39"),
            "{msg}"
        );
        // truncated inside the header
        std::fs::write(&p, &full[..9]).unwrap();
        assert!(format_msg(read_idx(&p), &p).contains("header"));
        // trailing garbage
        let mut long = full.clone();
        long.push(0);
        std::fs::write(&p, &long).unwrap();
        assert!(format_msg(read_idx(&p), &p).contains("trailing"));
        // empty file
        std::fs::write(&p, b"").unwrap();
        assert!(format_msg(read_idx(&p), &p).contains("too short"));
    }

    #[test]
    fn idx_wrong_magic_or_type_is_a_format_error() {
        let p = Path::new("/somewhere/train-labels-idx1-ubyte");
        let mut b = idx_bytes(&[3], &[1, 2, 3]);
        b[0] = 0x50;
        let msg = format_msg(parse_idx(b, p), p);
        assert!(msg.contains("not an IDX file"), "{msg}");
        let mut b = idx_bytes(&[3], &[1, 2, 3]);
        b[2] = 0x0d; // float
        let msg = format_msg(parse_idx(b, p), p);
        assert!(
            msg.contains("0x0d") && msg.contains("expected 0x08"),
            "{msg}"
        );
        let b = vec![0, 0, 8, 0];
        assert!(format_msg(parse_idx(b, p), p).contains("0 dimensions"));
        // dimensions whose product overflows never allocate or panic
        let b = idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]);
        assert!(format_msg(parse_idx(b, p), p).contains("overflow"));
        let b = idx_bytes(&[u32::MAX, 2], &[]);
        assert!(format_msg(parse_idx(b, p), p).contains("truncated"));
    }
}
