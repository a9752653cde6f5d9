use crate::flow::FlowConfig;
use gm_core::{checks, Error, Result};
use serde::{Deserialize, Serialize};

/// Which inputs a coupling layer passes through unchanged (and conditions on).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MaskKind {
    /// Halves for vectors, checkerboard for images.
    #[default]
    Auto,
    /// Vectors: the first ⌈D/2⌉ entries, then the others, alternating.
    Halves,
    /// Images: pixels with (row + column) even, then odd, alternating.
    Checkerboard,
    /// Images: the first half of the channels, then the second, alternating.
    Channel,
}

/// `[model]` fields of `realnvp`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RealNvpConfig {
    /// Coupling layers of the last (or only) scale.
    pub layers: i64,
    /// Hidden widths of the MLP conditioner (vector data).
    pub hidden: Vec<i64>,
    /// Channels of the convolutional conditioner's hidden layers (images).
    pub channels: Vec<i64>,
    /// Kernel side of the conditioner's convolutions (odd).
    pub kernel: i64,
    /// The mask of the last scale's couplings.
    pub mask: MaskKind,
    /// Images: multiscale levels, each `per_scale` checkerboard couplings, a squeeze
    /// (2×2 blocks to channels), `per_scale` channel couplings, then half the channels
    /// factored out to the code (Dinh et al. 2017). 0: a single scale.
    pub scales: i64,
    /// Couplings before and after the squeeze of each scale.
    pub per_scale: i64,
    /// Images: values per pixel (256 for 8-bit images).
    pub levels: i64,
    /// Images: α of the logit transform s = logit(α + (1 − 2α) y); 0 turns it off.
    pub logit_alpha: f64,
    /// Samples draw z ~ N(0, T² I) (T < 1: Glow's reduced-temperature samples).
    pub temperature: f64,
}

impl Default for RealNvpConfig {
    fn default() -> Self {
        RealNvpConfig {
            layers: 8,
            hidden: vec![64, 64],
            channels: vec![32, 32],
            kernel: 3,
            mask: MaskKind::Auto,
            scales: 0,
            per_scale: 3,
            levels: 256,
            logit_alpha: 1e-6,
            temperature: 1.0,
        }
    }
}

/// A list of positive widths, or an error naming `field`.
pub(crate) fn widths(field: &str, v: &[i64]) -> Result<()> {
    if v.iter().any(|&h| h <= 0) {
        return Err(Error::config(
            field,
            format!("{v:?}"),
            "a list of positive layer widths",
        ));
    }
    Ok(())
}

/// `model.kernel` is a positive odd side (same padding), or an error naming it.
pub(crate) fn odd_kernel(kernel: i64) -> Result<()> {
    checks::at_least("model.kernel", kernel, 1, "an odd kernel side")?;
    if kernel % 2 == 0 {
        return Err(Error::config(
            "model.kernel",
            kernel,
            "an odd kernel side (same padding)",
        ));
    }
    Ok(())
}

impl FlowConfig for RealNvpConfig {
    fn levels(&self) -> i64 {
        self.levels
    }

    fn logit_alpha(&self) -> f64 {
        self.logit_alpha
    }

    fn temperature(&self) -> f64 {
        self.temperature
    }

    fn validate(&self) -> Result<()> {
        checks::at_least(
            "model.layers",
            self.layers,
            1,
            "at least one coupling layer",
        )?;
        widths("model.hidden", &self.hidden)?;
        widths("model.channels", &self.channels)?;
        odd_kernel(self.kernel)?;
        checks::at_least("model.scales", self.scales, 0, "0 or more scales")?;
        checks::at_least(
            "model.per_scale",
            self.per_scale,
            1,
            "at least one coupling",
        )?;
        Ok(())
    }
}
