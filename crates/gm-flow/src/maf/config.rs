use crate::flow::FlowConfig;
use crate::realnvp::widths;
use gm_core::{checks, Error, Result};
use serde::{Deserialize, Serialize};

/// `[model]` fields of `maf`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MafConfig {
    /// Autoregressive layers (MADEs), the ordering reversed from one to the next.
    pub layers: i64,
    /// Hidden widths of each MADE (at least one layer).
    pub hidden: Vec<i64>,
    /// Seed of the MADE hidden-unit degrees.
    pub mask_seed: u64,
    /// Images: values per pixel (256 for 8-bit images).
    pub levels: i64,
    /// Images: α of the logit transform s = logit(α + (1 − 2α) y); 0 turns it off.
    pub logit_alpha: f64,
    /// Samples draw z ~ N(0, T² I) (T < 1: Glow's reduced-temperature samples).
    pub temperature: f64,
}

impl Default for MafConfig {
    fn default() -> Self {
        MafConfig {
            layers: 5,
            hidden: vec![64, 64],
            mask_seed: 0,
            levels: 256,
            logit_alpha: 1e-6,
            temperature: 1.0,
        }
    }
}

impl FlowConfig for MafConfig {
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
        checks::at_least("model.layers", self.layers, 1, "at least one MADE layer")?;
        if self.hidden.is_empty() {
            return Err(Error::config(
                "model.hidden",
                "[]",
                "at least one hidden layer per MADE, e.g. [64, 64]",
            ));
        }
        widths("model.hidden", &self.hidden)
    }
}
