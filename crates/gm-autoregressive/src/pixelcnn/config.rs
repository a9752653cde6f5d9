use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// `[model]` fields of `pixelcnn`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PixelCnnConfig {
    /// Width 2h of the residual stream (each block narrows it to h inside); even.
    pub channels: i64,
    /// Residual blocks after the first layer, each ReLU → 1×1 (2h→h) → ReLU → masked
    /// `kernel`×`kernel` conv, mask B (h→h) → ReLU → 1×1 (h→2h), plus the skip.
    pub residual_blocks: usize,
    /// Side of the first convolution (mask A); odd, at least 3.
    pub first_kernel: i64,
    /// Side of the masked convolutions in the blocks (mask B); odd.
    pub kernel: i64,
    /// Number of ReLU → 1×1 layers before the output layer.
    pub output_layers: usize,
    /// Width of those 1×1 layers.
    pub output_channels: i64,
}

impl Default for PixelCnnConfig {
    fn default() -> Self {
        PixelCnnConfig {
            channels: 64,
            residual_blocks: 7,
            first_kernel: 7,
            kernel: 3,
            output_layers: 2,
            output_channels: 64,
        }
    }
}

impl PixelCnnConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.channels < 2 || self.channels % 2 != 0 {
            return Err(Error::config(
                "model.channels",
                self.channels,
                "an even number ≥ 2 (the residual stream 2h; blocks use h inside), e.g. 64",
            ));
        }
        if self.first_kernel < 3 || self.first_kernel % 2 == 0 {
            return Err(Error::config(
                "model.first_kernel",
                self.first_kernel,
                "an odd kernel side ≥ 3, e.g. 7",
            ));
        }
        if self.kernel < 1 || self.kernel % 2 == 0 {
            return Err(Error::config(
                "model.kernel",
                self.kernel,
                "an odd kernel side ≥ 1, e.g. 3",
            ));
        }
        if self.output_layers > 0 && self.output_channels <= 0 {
            return Err(Error::config(
                "model.output_channels",
                self.output_channels,
                "a positive width of the 1×1 output layers",
            ));
        }
        Ok(())
    }
}
