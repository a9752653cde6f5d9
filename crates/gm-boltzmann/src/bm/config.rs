use gm_core::checks;
use gm_core::sampling::exact::MAX_ENUMERATED_UNITS;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// How the positive phase fills in the hidden units given the clamped visible ones.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PositivePhase {
    /// `positive_steps` sequential Gibbs sweeps over the hidden units (one chain per example,
    /// started from uniform noise): an unbiased sample of p(h | v) as the sweeps grow.
    #[default]
    Gibbs,
    /// `positive_steps` sequential mean-field sweeps μ_j ← σ(c_j + vᵀW_j + 2Σ_k S_jk μ_k): the
    /// factorial approximation of p(h | v) (exact when S = 0).
    MeanField,
}

/// `[model]` fields of `bm`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BmConfig {
    /// Number of hidden units (≥ 1).
    pub hidden: i64,
    /// Gibbs sampling or mean field for the positive phase.
    pub positive: PositivePhase,
    /// Sweeps of the positive phase per training step (≥ 1).
    pub positive_steps: usize,
    /// Persistent chains of the negative phase (≥ 1).
    pub chains: i64,
    /// Sequential Gibbs sweeps of the persistent chains per training step (≥ 1).
    pub negative_sweeps: usize,
    /// Gibbs sweeps from uniform noise when sampling (≥ 1).
    pub sample_sweeps: usize,
    /// Standard deviation of the initial couplings (≥ 0).
    pub init_scale: f64,
    /// Largest number of units (visible + hidden) for which the exact log-likelihood is
    /// computed by enumeration (1 ..= 24; 2^units states).
    pub exact_max_units: i64,
}

impl Default for BmConfig {
    fn default() -> Self {
        BmConfig {
            hidden: 4,
            positive: PositivePhase::Gibbs,
            positive_steps: 5,
            chains: 100,
            negative_sweeps: 1,
            sample_sweeps: 500,
            init_scale: 0.01,
            exact_max_units: 20,
        }
    }
}

impl BmConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        checks::at_least("model.hidden", self.hidden, 1, "at least 1 hidden unit (a fully visible model is `hopfield` with mode = \"boltzmann\")")?;
        checks::at_least("model.chains", self.chains, 1, "at least 1")?;
        for (field, v) in [
            ("model.positive_steps", self.positive_steps),
            ("model.negative_sweeps", self.negative_sweeps),
            ("model.sample_sweeps", self.sample_sweeps),
        ] {
            if v == 0 {
                return Err(Error::config(field, 0, "at least 1"));
            }
        }
        checks::non_negative("model.init_scale", self.init_scale)?;
        checks::in_range(
            "model.exact_max_units",
            self.exact_max_units,
            1..=MAX_ENUMERATED_UNITS,
            format!("1 ..= {MAX_ENUMERATED_UNITS}"),
        )?;
        Ok(())
    }
}
