use crate::common::OrderingKind;
use crate::narn::Activation;
use gm_core::{Error, Result};
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
        if self.hidden <= 0 {
            return Err(Error::config(
                "model.hidden",
                self.hidden,
                "a positive number of hidden units",
            ));
        }
        if !(1..=2).contains(&self.layers) {
            return Err(Error::config("model.layers", self.layers, "1 or 2"));
        }
        if !(1..=100).contains(&self.k) {
            return Err(Error::config(
                "model.k",
                self.k,
                "a number of iterations in 1..=100",
            ));
        }
        if !(1..=MAX_ENSEMBLE).contains(&self.ensemble) {
            return Err(Error::config(
                "model.ensemble",
                self.ensemble,
                format!("a number of orderings in 1..={MAX_ENSEMBLE}"),
            ));
        }
        if !(self.init_scale > 0.0 && self.init_scale.is_finite()) {
            return Err(Error::config(
                "model.init_scale",
                self.init_scale,
                "a positive finite number",
            ));
        }
        Ok(())
    }
}
