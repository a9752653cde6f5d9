use crate::common::OrderingKind;
use gm_core::checks;
use gm_core::Result;
use serde::{Deserialize, Serialize};

/// A hidden-unit non-linearity.
pub use gm_core::nets::Activation;

/// `[model]` fields of `narn`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NarnConfig {
    /// Hidden units per group: group j (one per position j = 0 … D−2 of the ordering) reads
    /// the inputs at positions ≤ j.
    pub group_size: i64,
    /// Hidden non-linearity.
    pub activation: Activation,
    /// Also connect the inputs directly to the outputs (the logistic FVBN of §20.10.8 as a
    /// linear part beside the hidden groups).
    pub direct: bool,
    /// Order of the variables.
    pub ordering: OrderingKind,
    /// Seed of a random ordering.
    pub ordering_seed: u64,
    /// Standard deviation of the initial weights is this over √fan-in (each row's own).
    pub init_scale: f64,
}

impl Default for NarnConfig {
    fn default() -> Self {
        NarnConfig {
            group_size: 2,
            activation: Activation::Tanh,
            direct: true,
            ordering: OrderingKind::Identity,
            ordering_seed: 0,
            init_scale: 1.0,
        }
    }
}

impl NarnConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        checks::at_least(
            "model.group_size",
            self.group_size,
            1,
            "a positive number of hidden units per group",
        )?;
        checks::positive("model.init_scale", self.init_scale)?;
        Ok(())
    }
}
