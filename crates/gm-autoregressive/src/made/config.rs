use crate::common::OrderingKind;
use gm_core::checks;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Most masks a MADE may hold.
pub const MAX_MASKS: usize = 4096;

/// `[model]` fields of `made`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MadeConfig {
    /// Widths of the hidden layers (ReLU).
    pub hidden: Vec<i64>,
    /// Number of connectivity masks (1: a single fixed MADE; > 1: connectivity-agnostic
    /// training and an ensemble of that many masks at evaluation).
    pub num_masks: usize,
    /// Give each mask its own random ordering of the inputs.
    pub order_agnostic: bool,
    /// The ordering of every mask when not order-agnostic.
    pub ordering: OrderingKind,
    /// Seed of a random `ordering`.
    pub ordering_seed: u64,
    /// Seed of the hidden units' degrees (and of the orderings when order-agnostic).
    pub mask_seed: u64,
}

impl Default for MadeConfig {
    fn default() -> Self {
        MadeConfig {
            hidden: vec![500],
            num_masks: 1,
            order_agnostic: false,
            ordering: OrderingKind::Identity,
            ordering_seed: 0,
            mask_seed: 0,
        }
    }
}

impl MadeConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.hidden.is_empty() || self.hidden.iter().any(|&h| h <= 0) {
            return Err(Error::config(
                "model.hidden",
                format!("{:?}", self.hidden),
                "a non-empty list of positive layer widths, e.g. [500]",
            ));
        }
        checks::in_range(
            "model.num_masks",
            self.num_masks,
            1..=MAX_MASKS,
            format!("an integer in 1..={MAX_MASKS}"),
        )?;
        Ok(())
    }
}
