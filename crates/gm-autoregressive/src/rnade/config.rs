use crate::common::OrderingKind;
use gm_core::checks;
use gm_core::Result;
use serde::{Deserialize, Serialize};

/// How discrete pixel values are made continuous before the density is fitted.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dequantize {
    /// Use the values as they are (real-valued data such as the 2-D toys).
    #[default]
    None,
    /// For intensities k/255 (k = 0 … 255): fit y = (k + u)/256, u ~ U(0, 1)ᴰ drawn afresh
    /// for every batch. The probability of the 256-level pixels is then bounded below by
    /// E_u[log p(y)] − D ln 256, which is what evaluation reports.
    Uniform,
}

/// `[model]` fields of `rnade`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RnadeConfig {
    /// Number of hidden units H.
    pub hidden: i64,
    /// Mixture components K of every conditional.
    pub components: i64,
    /// Multiply the gradient reaching each component mean μ_k by that component's σ_k
    /// (Uria et al. 2013's pseudo-gradient): the step on μ_k becomes ∝ r_k (x − μ_k)/σ_k
    /// instead of r_k (x − μ_k)/σ_k², so narrow components do not take huge mean steps.
    /// The forward values and every other gradient path are unchanged.
    pub mean_pseudo_gradient: bool,
    /// Dequantization of discrete data.
    pub dequantize: Dequantize,
    /// Order of the variables.
    pub ordering: OrderingKind,
    /// Seed of a random ordering.
    pub ordering_seed: u64,
    /// Standard deviation of the initial input weights is this over √D; the output heads
    /// start at a tenth of this over √H, so the untrained model is near the data marginals.
    pub init_scale: f64,
}

impl Default for RnadeConfig {
    fn default() -> Self {
        RnadeConfig {
            hidden: 100,
            components: 10,
            mean_pseudo_gradient: true,
            dequantize: Dequantize::None,
            ordering: OrderingKind::Identity,
            ordering_seed: 0,
            init_scale: 1.0,
        }
    }
}

impl RnadeConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        checks::at_least(
            "model.hidden",
            self.hidden,
            1,
            "a positive number of hidden units",
        )?;
        checks::in_range(
            "model.components",
            self.components,
            1..=1000,
            "a number of mixture components in 1..=1000",
        )?;
        checks::positive("model.init_scale", self.init_scale)?;
        Ok(())
    }
}
