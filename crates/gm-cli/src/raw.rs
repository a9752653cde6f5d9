//! `gm sample -o x.safetensors | x.npy`: the raw samples for other tools, with what they are.

use anyhow::Result;
use gm_core::data::Dataset;
use std::collections::BTreeMap;
use std::path::Path;
use tch::Tensor;

/// The raw formats `gm sample -o` writes, by extension.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RawFormat {
    /// `.safetensors`, metadata in its header.
    Safetensors,
    /// `.npy`, metadata in a `.json` sidecar of the same stem.
    Npy,
}

impl RawFormat {
    /// The raw format of an output path, `None` for a picture.
    pub fn of(path: &Path) -> Option<RawFormat> {
        match path.extension()?.to_str()? {
            "safetensors" => Some(RawFormat::Safetensors),
            "npy" => Some(RawFormat::Npy),
            _ => None,
        }
    }
}

/// What the samples are, from their values: binary draws, or means/probabilities of a
/// binary model, or real values.
pub fn describe(s: &Tensor, data: &Dataset) -> String {
    let binary_values = s.ne(0.0).logical_and(&s.ne(1.0)).any().int64_value(&[]) == 0;
    match (data.binary, binary_values) {
        (true, true) => "binary values (draws) returned by Model::sample".into(),
        (true, false) => {
            "values in [0, 1] returned by Model::sample for binary data: means (probabilities), not Bernoulli draws".into()
        }
        (false, _) => "values returned by Model::sample".into(),
    }
}

/// The metadata stored with raw samples.
pub fn metadata(
    s: &Tensor,
    data: &Dataset,
    model: &str,
    run_dir: &Path,
    seed: u64,
) -> BTreeMap<String, String> {
    [
        ("model", model.to_string()),
        ("run_dir", run_dir.display().to_string()),
        ("dataset", data.name.clone()),
        ("binarization", data.binarization.to_string()),
        ("seed", seed.to_string()),
        ("n", s.size()[0].to_string()),
        ("shape", format!("{:?}", s.size())),
        ("samples", describe(s, data)),
        ("gm_version", env!("CARGO_PKG_VERSION").to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Writes `s` (f32, `[N, ...]`) to `out` in `format` with `meta`.
pub fn write(
    out: &Path,
    format: RawFormat,
    s: &Tensor,
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    match format {
        RawFormat::Safetensors => gm_core::export::write_safetensors(out, "samples", s, meta)?,
        RawFormat::Npy => {
            gm_core::export::write_npy(out, s)?;
            gm_core::checkpoint::atomic_write(
                &out.with_extension("json"),
                &serde_json::to_vec_pretty(meta)?,
            )?;
        }
    }
    Ok(())
}
