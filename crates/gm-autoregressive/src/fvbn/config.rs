use crate::common::OrderingKind;
use gm_core::checks;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The conditionals' family.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FvbnLikelihood {
    /// Bernoulli (logistic) for binary data, Gaussian otherwise.
    #[default]
    Auto,
    /// Logistic regression per variable; needs 0/1 data.
    Bernoulli,
    /// Linear-Gaussian regression per variable.
    Gaussian,
}

/// How the parameters are fitted.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Gradient steps of the optimizer on the exact NLL.
    #[default]
    Gradient,
    /// The closed-form least-squares / Gaussian maximum-likelihood fit of all examples seen
    /// (Gaussian only).
    ClosedForm,
}

/// `[model]` fields of `fvbn`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FvbnConfig {
    /// Conditional family.
    pub likelihood: FvbnLikelihood,
    /// Order of the variables.
    pub ordering: OrderingKind,
    /// Seed of a random ordering.
    pub ordering_seed: u64,
    /// Gradient training or the closed-form fit.
    pub fit: Fit,
    /// Added to the diagonal of the covariance in the closed-form fit (0: the exact MLE;
    /// positive keeps constant pixels from giving infinite densities).
    pub ridge: f64,
    /// Lower clamp of the Gaussian conditionals' log-variance in gradient training.
    pub min_log_var: f64,
}

impl Default for FvbnConfig {
    fn default() -> Self {
        FvbnConfig {
            likelihood: FvbnLikelihood::Auto,
            ordering: OrderingKind::Identity,
            ordering_seed: 0,
            fit: Fit::Gradient,
            ridge: 1e-6,
            min_log_var: -12.0,
        }
    }
}

impl FvbnConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        checks::non_negative("model.ridge", self.ridge)?;
        checks::finite("model.min_log_var", self.min_log_var)?;
        if self.fit == Fit::ClosedForm && self.likelihood == FvbnLikelihood::Bernoulli {
            return Err(Error::config(
                "model.fit",
                "\"closed_form\"",
                "\"gradient\" for the logistic FVBN (only the Gaussian one has a closed form)",
            ));
        }
        Ok(())
    }
}
