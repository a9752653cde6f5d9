use gm_core::checks;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Whether the visible precisions β are trained.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// β stays at `init_precision` (in standardised units).
    #[default]
    Fixed,
    /// β is learned through log β, so it stays positive.
    Learned,
}

/// One β for every visible unit, or one per unit.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionShape {
    /// β·I.
    #[default]
    Scalar,
    /// diag(β₁ … β_D).
    Diagonal,
}

/// How inputs are standardised before the model sees them (statistics of the training split,
/// computed when the model is built and saved in its checkpoint).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Standardize {
    /// v_i = (x_i − μ_i) / s_i with each unit's mean and standard deviation.
    #[default]
    PerPixel,
    /// v_i = (x_i − μ) / s with one mean and standard deviation over all units.
    Global,
    /// v = x.
    None,
}

/// How the CD / PCD gradient is computed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    /// The closed-form gradient of F(data) − F(negatives), written out.
    #[default]
    Hand,
    /// Autograd through mean F(data) − mean F(negatives).
    Autograd,
}

/// The standardisation statistics the model computed, recorded in the resolved config (a
/// summary; the exact values live in the checkpoint). Ignored when a config is read back:
/// the model recomputes them from the training split and a checkpoint overrides them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StandardizationRecord {
    /// Visible units.
    pub dims: i64,
    /// Smallest and largest shift μ_i (data units).
    pub shift_range: [f64; 2],
    /// Smallest and largest scale s_i (data units, after the `min_std` floor).
    pub scale_range: [f64; 2],
    /// Σ_i log s_i: subtracted from log p(v) to give log p(x) in data space.
    pub sum_log_scale: f64,
    /// Units whose standard deviation was below `min_std` (raised to it).
    pub floored: i64,
}

/// `[model]` fields of `grbm`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GrbmConfig {
    /// Hidden units.
    pub hidden: i64,
    /// `"fixed"` or `"learned"` precision.
    pub precision: Precision,
    /// `"scalar"` or `"diagonal"` precision.
    pub precision_shape: PrecisionShape,
    /// β at initialisation (the fixed value under `precision = "fixed"`), standardised units.
    pub init_precision: f64,
    /// `"per-pixel"`, `"global"` or `"none"`.
    pub standardize: Standardize,
    /// Floor of the standardisation scale s (data units): constant pixels are not blown up.
    pub min_std: f64,
    /// Gibbs steps of CD-k (or per update of the persistent chains).
    pub cd_k: i64,
    /// Persistent chains (PCD / SML) instead of chains restarted at the data.
    pub persistent: bool,
    /// Number of persistent chains (default: `data.batch_size`).
    pub chains: Option<i64>,
    /// `"hand"` or `"autograd"` gradient.
    pub update: Update,
    /// Standard deviation of the initial weights.
    pub init_scale: f64,
    /// L2 penalty on W only (added to its gradient), in addition to `optim.weight_decay`.
    pub weight_decay: f64,
    /// Target mean activation of the hidden units on the data, in (0, 1).
    pub sparsity_target: f64,
    /// Strength λ of the sparsity term (0: off). Each step adds λ (q̄_j − p) to the gradient
    /// with respect to hidden unit j's total input, q̄_j its batch-mean activation on the data
    /// and p the target (the cross-entropy penalty's usual simplification).
    pub sparsity_cost: f64,
    /// Block-Gibbs steps of `sample`.
    pub sample_steps: i64,
    /// Enumerate the 2^hidden hidden states for an exact log Z up to this many hidden units
    /// (at most 24); AIS above.
    pub exact_max_hidden: i64,
    /// Written by the model: its standardisation statistics (see [`StandardizationRecord`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standardization: Option<StandardizationRecord>,
}

impl Default for GrbmConfig {
    fn default() -> Self {
        GrbmConfig {
            hidden: 500,
            precision: Precision::Fixed,
            precision_shape: PrecisionShape::Scalar,
            init_precision: 1.0,
            standardize: Standardize::PerPixel,
            min_std: 1e-2,
            cd_k: 1,
            persistent: false,
            chains: None,
            update: Update::Hand,
            init_scale: 0.01,
            weight_decay: 0.0,
            sparsity_target: 0.1,
            sparsity_cost: 0.0,
            sample_steps: 1000,
            exact_max_hidden: 20,
            standardization: None,
        }
    }
}

impl GrbmConfig {
    /// Checks every field once; a typed error names the field, its value and what is expected.
    pub fn validate(&self) -> Result<()> {
        checks::at_least(
            "model.hidden",
            self.hidden,
            1,
            "a positive number of hidden units",
        )?;
        if !(self.init_precision > 0.0 && self.init_precision.is_finite()) {
            return Err(Error::config(
                "model.init_precision",
                self.init_precision,
                "a positive finite precision β",
            ));
        }
        if !(self.min_std > 0.0 && self.min_std.is_finite()) {
            return Err(Error::config(
                "model.min_std",
                self.min_std,
                "a positive finite standard deviation",
            ));
        }
        checks::at_least("model.cd_k", self.cd_k, 1, "at least 1")?;
        if let Some(c) = self.chains {
            if c < 1 {
                return Err(Error::config(
                    "model.chains",
                    c,
                    "a positive number of persistent chains",
                ));
            }
            if !self.persistent {
                return Err(Error::config(
                    "model.chains",
                    c,
                    "unset unless model.persistent = true (CD restarts one chain per example)",
                ));
            }
        }
        checks::non_negative("model.init_scale", self.init_scale)?;
        checks::non_negative("model.weight_decay", self.weight_decay)?;
        if !(self.sparsity_target > 0.0 && self.sparsity_target < 1.0) {
            return Err(Error::config(
                "model.sparsity_target",
                self.sparsity_target,
                "a mean activation in (0, 1)",
            ));
        }
        if !(self.sparsity_cost >= 0.0 && self.sparsity_cost.is_finite()) {
            return Err(Error::config(
                "model.sparsity_cost",
                self.sparsity_cost,
                "a finite number ≥ 0 (0 turns the sparsity term off)",
            ));
        }
        checks::at_least(
            "model.sample_steps",
            self.sample_steps,
            1,
            "at least 1 Gibbs step",
        )?;
        checks::in_range(
            "model.exact_max_hidden",
            self.exact_max_hidden,
            0..=24,
            "a number in 0..=24 (2^24 hidden states is the most that is enumerated)",
        )?;
        Ok(())
    }
}
