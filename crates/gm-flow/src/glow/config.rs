use crate::flow::FlowConfig;
use crate::realnvp::{odd_kernel, widths};
use gm_core::{checks, Result};
use serde::{Deserialize, Serialize};

/// `[model]` fields of `glow`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GlowConfig {
    /// Images: levels of the multiscale architecture, each a squeeze (2×2 blocks to
    /// channels), `steps` flow steps and, but for the last, a split. Vectors: 1.
    pub scales: i64,
    /// Flow steps (actnorm, invertible 1×1 convolution, affine coupling) per level.
    pub steps: i64,
    /// Hidden widths of the coupling's MLP (vector data).
    pub hidden: Vec<i64>,
    /// Hidden channels of the coupling's convolutional network (images).
    pub channels: Vec<i64>,
    /// Kernel side of the coupling network's convolutions (odd).
    pub kernel: i64,
    /// Images: values per pixel (256 for 8-bit images).
    pub levels: i64,
    /// Images: α of a logit transform; 0 (Glow's choice) models the dequantized pixels.
    pub logit_alpha: f64,
    /// Samples draw z ~ N(0, T² I) (T < 1: Glow's reduced-temperature samples).
    pub temperature: f64,
}

impl Default for GlowConfig {
    fn default() -> Self {
        GlowConfig {
            scales: 1,
            steps: 8,
            hidden: vec![64, 64],
            channels: vec![64, 64],
            kernel: 3,
            levels: 256,
            logit_alpha: 0.0,
            temperature: 1.0,
        }
    }
}

impl FlowConfig for GlowConfig {
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
        checks::at_least("model.scales", self.scales, 1, "at least one level")?;
        checks::at_least(
            "model.steps",
            self.steps,
            1,
            "at least one flow step per level",
        )?;
        widths("model.hidden", &self.hidden)?;
        widths("model.channels", &self.channels)?;
        odd_kernel(self.kernel)
    }
}
