use crate::common::OrderingKind;
use crate::narn::Activation;
use gm_core::checks;
use gm_core::Result;
use serde::{Deserialize, Serialize};

/// Most orderings an evaluation ensemble may hold.
pub const MAX_ENSEMBLE: usize = 1024;

/// `[model]` fields of `nade-k`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NadeKConfig {
    /// Hidden units per layer.
    pub hidden: i64,
    /// Hidden layers of each iteration: 1 or 2 (Raiko et al.'s best MNIST model has 2).
    pub layers: i64,
    /// Iterations k that fill in the missing values (trained by back-propagating through all
    /// of them).
    pub k: i64,
    /// Hidden non-linearity.
    pub activation: Activation,
    /// Give the first layer the mask of observed variables as a second input.
    pub mask_input: bool,
    /// The ordering whose exact likelihood is reported and along which samples are drawn.
    pub ordering: OrderingKind,
    /// Seed of a random `ordering` (ensemble member e > 0 uses the random ordering of seed
    /// `ordering_seed + e`).
    pub ordering_seed: u64,
    /// Orderings in the evaluation ensemble (1: only `ordering`); each costs D passes.
    pub ensemble: usize,
    /// Standard deviation of the initial weights is this over √fan-in.
    pub init_scale: f64,
}

impl Default for NadeKConfig {
    fn default() -> Self {
        NadeKConfig {
            hidden: 500,
            layers: 1,
            k: 5,
            activation: Activation::Tanh,
            mask_input: true,
            ordering: OrderingKind::Identity,
            ordering_seed: 0,
            ensemble: 1,
            init_scale: 1.0,
        }
    }
}

impl NadeKConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        checks::at_least(
            "model.hidden",
            self.hidden,
            1,
            "a positive number of hidden units",
        )?;
        checks::in_range("model.layers", self.layers, 1..=2, "1 or 2")?;
        checks::in_range(
            "model.k",
            self.k,
            1..=100,
            "a number of iterations in 1..=100",
        )?;
        checks::in_range(
            "model.ensemble",
            self.ensemble,
            1..=MAX_ENSEMBLE,
            format!("a number of orderings in 1..={MAX_ENSEMBLE}"),
        )?;
        checks::positive("model.init_scale", self.init_scale)?;
        Ok(())
    }
}
