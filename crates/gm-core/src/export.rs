//! Raw tensors for other tools: f32 `.safetensors` with a string metadata map, and `.npy`.
//!
//! tch's safetensors writer takes no metadata, so the format is written here: an 8-byte
//! little-endian header length, a JSON header (`__metadata__` and, per tensor, `dtype`,
//! `shape`, `data_offsets`) padded with spaces to a multiple of 8, then the raw
//! little-endian data. `.npy` is format version 1.0 (`<f4`, C order). Both are written
//! atomically.
//!
//! ```no_run
//! let x = tch::Tensor::zeros([4, 1, 2, 2], (tch::Kind::Float, tch::Device::Cpu));
//! let meta = [("model".to_string(), "vae".to_string())].into_iter().collect();
//! gm_core::export::write_safetensors(std::path::Path::new("s.safetensors"), "samples", &x, &meta)?;
//! # Ok::<(), gm_core::Error>(())
//! ```

use crate::checkpoint::atomic_write;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// The f32 values of `t` (any kind or device) in C order, little-endian bytes.
fn f32_le_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let flat = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .reshape([-1]);
    let v = Vec::<f32>::try_from(&flat)?;
    Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

/// Writes `t` as one f32 tensor named `name` with `metadata` into a `.safetensors` file.
pub fn write_safetensors(
    path: &Path,
    name: &str,
    t: &Tensor,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let data = f32_le_bytes(t)?;
    let header = serde_json::json!({
        "__metadata__": metadata,
        name: {
            "dtype": "F32",
            "shape": t.size(),
            "data_offsets": [0, data.len()],
        },
    });
    let mut h = serde_json::to_vec(&header).map_err(|e| Error::Msg(e.to_string()))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut bytes = Vec::with_capacity(8 + h.len() + data.len());
    bytes.extend_from_slice(&(h.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&h);
    bytes.extend_from_slice(&data);
    atomic_write(path, &bytes)
}

/// The `__metadata__` map of a `.safetensors` file (empty when it has none).
pub fn read_safetensors_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |msg: &str| Error::format(path, format!("not a safetensors file: {msg}"));
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| bad("shorter than 8 bytes"))?;
    let header = bytes
        .get(8..8 + len)
        .ok_or_else(|| bad("header longer than the file"))?;
    let v: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| bad(&format!("header: {e}")))?;
    match v.get("__metadata__") {
        None => Ok(BTreeMap::new()),
        Some(m) => serde_json::from_value(m.clone()).map_err(|e| bad(&format!("metadata: {e}"))),
    }
}

/// Writes `t` as an f32 `.npy` file (version 1.0, C order).
pub fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let data = f32_le_bytes(t)?;
    let dims: Vec<String> = t.size().iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + header length (2) + header, ending in '\n', a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&data);
    atomic_write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Tensor {
        Tensor::arange(24, (Kind::Float, Device::Cpu)).reshape([2, 3, 4]) * 0.25 - 1.5
    }

    #[test]
    fn safetensors_round_trip_through_tch_reader_with_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.safetensors");
        let meta: BTreeMap<String, String> = [("model", "nade"), ("seed", "7")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let x = example();
        write_safetensors(&p, "samples", &x, &meta).unwrap();
        let back = Tensor::read_safetensors(&p).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].0, "samples");
        assert_eq!(back[0].1.kind(), Kind::Float);
        assert!(back[0].1.equal(&x));
        assert_eq!(read_safetensors_metadata(&p).unwrap(), meta);
        let header_len = u64::from_le_bytes(std::fs::read(&p).unwrap()[..8].try_into().unwrap());
        assert_eq!(header_len % 8, 0);
    }

    #[test]
    fn npy_round_trip_through_tch_reader() {
        let dir = tempfile::tempdir().unwrap();
        for x in [example(), Tensor::from_slice(&[1.5f32, -2.0, 3.25])] {
            let p = dir.path().join("s.npy");
            write_npy(&p, &x).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + hlen) % 64, 0);
            let back = Tensor::read_npy(&p).unwrap();
            assert_eq!(back.size(), x.size());
            assert!(back.equal(&x));
        }
    }
}
