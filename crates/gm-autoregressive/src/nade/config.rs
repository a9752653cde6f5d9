use crate::common::OrderingKind;
use gm_core::checks;
use gm_core::Result;
use serde::{Deserialize, Serialize};

/// `[model]` fields of `nade`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NadeConfig {
    /// Number of hidden units H (500 in Larochelle & Murray 2011).
    pub hidden: i64,
    /// Order of the variables.
    pub ordering: OrderingKind,
    /// Seed of a random ordering.
    pub ordering_seed: u64,
    /// Standard deviation of the initial weights W and V is this over √fan-in.
    pub init_scale: f64,
    /// Ordering positions per block of the training and evaluation passes: speed and memory
    /// only (the results agree to rounding for every value).
    pub block: i64,
}

impl Default for NadeConfig {
    fn default() -> Self {
        NadeConfig {
            hidden: 500,
            ordering: OrderingKind::Identity,
            ordering_seed: 0,
            init_scale: 1.0,
            block: super::blocked::DEFAULT_BLOCK,
        }
    }
}

impl NadeConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        checks::at_least(
            "model.hidden",
            self.hidden,
            1,
            "a positive number of hidden units",
        )?;
        checks::positive("model.init_scale", self.init_scale)?;
        checks::at_least(
            "model.block",
            self.block,
            1,
            "at least one position per block",
        )?;
        Ok(())
    }
}
