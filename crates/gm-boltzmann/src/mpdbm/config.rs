//! `[model]` fields of `mp-dbm`, with their defaults and checks.

use crate::rbm::Dtype;
use gm_core::checks;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// `[model]` fields of `mp-dbm`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MpDbmConfig {
    /// Hidden layer sizes h1, h2, …, bottom up; the label units join the top one.
    pub hidden: Vec<i64>,
    /// Mean-field iterations unrolled into the recurrent net, in training and in every
    /// prediction (classification, completion).
    pub mf_steps: i64,
    /// Probability that a visible unit, or the label, is a target (hidden from the
    /// inference net and predicted) in a training example; the rest are its inputs.
    pub target_prob: f64,
    /// Weight of the label's cross-entropy against the pixels' in the loss.
    pub label_weight: f64,
    /// L2 penalty ½·λ Σ ‖W‖² on the weights (not the biases).
    pub weight_decay: f64,
    /// Standard deviation of the initial weights.
    pub init_std: f64,
    /// Block-Gibbs sweeps per sample drawn by `sample` (the model read as a DBM).
    pub sample_steps: i64,
    /// Fractions of the pixels hidden at random for the classification errors with
    /// missing inputs that `gm eval` reports.
    pub missing: Vec<f64>,
    /// Parameter precision.
    pub dtype: Dtype,
}

impl Default for MpDbmConfig {
    fn default() -> Self {
        MpDbmConfig {
            hidden: vec![500, 1000],
            mf_steps: 10,
            target_prob: 0.5,
            label_weight: 1.0,
            weight_decay: 0.0,
            init_std: 0.05,
            sample_steps: 1000,
            missing: vec![0.25, 0.5],
            dtype: Dtype::Float32,
        }
    }
}

impl MpDbmConfig {
    /// Checks every field on its own.
    pub fn validate(&self) -> Result<()> {
        if self.hidden.is_empty() {
            return Err(Error::config(
                "model.hidden",
                "[]",
                "at least 1 hidden layer size (the label units join the top layer)",
            ));
        }
        for &h in &self.hidden {
            checks::at_least(
                "model.hidden",
                h,
                1,
                "positive layer sizes (no empty layer)",
            )?;
        }
        checks::at_least(
            "model.mf_steps",
            self.mf_steps,
            1,
            "at least 1 mean-field iteration",
        )?;
        if !(self.target_prob > 0.0 && self.target_prob < 1.0) {
            return Err(Error::config(
                "model.target_prob",
                self.target_prob,
                "a probability in (0, 1): some units must be inputs and some targets",
            ));
        }
        checks::non_negative("model.label_weight", self.label_weight)?;
        checks::non_negative("model.weight_decay", self.weight_decay)?;
        checks::positive("model.init_std", self.init_std)?;
        checks::at_least(
            "model.sample_steps",
            self.sample_steps,
            1,
            "at least 1 Gibbs sweep",
        )?;
        for &f in &self.missing {
            if !(f > 0.0 && f < 1.0) {
                return Err(Error::config(
                    "model.missing",
                    f,
                    "fractions of missing pixels in (0, 1)",
                ));
            }
        }
        Ok(())
    }
}
