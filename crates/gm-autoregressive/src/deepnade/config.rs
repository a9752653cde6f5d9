use crate::common::OrderingKind;
use gm_core::checks;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Most orderings an ensemble may average.
pub const MAX_ORDERINGS: usize = 4096;

/// `[model]` fields of `deep-nade`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeepNadeConfig {
    /// Widths of the hidden layers (ReLU); the input layer sees `x ⊙ m` and the mask `m`.
    pub hidden: Vec<i64>,
    /// Number K of orderings the EoNADE ensemble averages at evaluation and sampling
    /// (1: the single ordering 0).
    pub ensemble_orderings: usize,
    /// Ordering 0 (the single-ordering model): raster order or a random permutation.
    pub ordering: OrderingKind,
    /// Seed of ordering 0 when random; ordering k ≥ 1 is random with seed `ordering_seed + k`.
    pub ordering_seed: u64,
}

impl Default for DeepNadeConfig {
    fn default() -> Self {
        DeepNadeConfig {
            hidden: vec![500, 500],
            ensemble_orderings: 1,
            ordering: OrderingKind::Identity,
            ordering_seed: 0,
        }
    }
}

impl DeepNadeConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.hidden.is_empty() || self.hidden.iter().any(|&h| h <= 0) {
            return Err(Error::config(
                "model.hidden",
                format!("{:?}", self.hidden),
                "a non-empty list of positive layer widths, e.g. [500, 500]",
            ));
        }
        checks::in_range(
            "model.ensemble_orderings",
            self.ensemble_orderings,
            1..=MAX_ORDERINGS,
            format!("an integer in 1..={MAX_ORDERINGS}"),
        )?;
        Ok(())
    }
}
