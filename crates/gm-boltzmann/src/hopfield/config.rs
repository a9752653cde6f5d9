use super::network::Update;
use gm_core::checks;
use gm_core::sampling::exact::MAX_ENUMERATED_UNITS;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// How `hopfield` learns its weights.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum HopfieldMode {
    /// One-shot Hebbian storage: every training batch adds (1/N) Σ ξξᵀ to W. Epochs after
    /// the first store the same patterns again, which only rescales W (recall unchanged).
    #[default]
    Hebbian,
    /// The stochastic network p(x) ∝ exp(−E(x)/T) (a fully visible Boltzmann machine with ±1
    /// units) trained by ⟨x xᵀ⟩_data − ⟨x xᵀ⟩_model (`001_*.txt` §1.2), model correlations
    /// from persistent Gibbs chains; W and biases through the optimizer.
    Boltzmann,
}

/// `[model]` fields of `hopfield`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HopfieldConfig {
    /// Hebbian storage or Boltzmann learning.
    pub mode: HopfieldMode,
    /// Temperature T of the stochastic network (> 0): Gibbs sampling, training and the
    /// exact likelihood use p ∝ exp(−E/T).
    pub temperature: f64,
    /// Recall rule: `async` or `sync`.
    pub update: Update,
    /// Most sweeps (async) or steps (sync) of a recall (≥ 1).
    pub recall_sweeps: usize,
    /// Fraction of units flipped in the corrupted inputs of figures and `recall_error`, in
    /// [0, 0.5].
    pub noise: f64,
    /// Persistent Gibbs chains of the Boltzmann mode (≥ 1).
    pub chains: i64,
    /// Gibbs sweeps of the chains per training step (≥ 1).
    pub gibbs_sweeps: usize,
    /// Gibbs sweeps from uniform noise when the Boltzmann mode samples (≥ 1).
    pub sample_sweeps: usize,
    /// Largest number of units for which the exact log-likelihood is computed (1 ..= 24).
    pub exact_max_units: i64,
}

impl Default for HopfieldConfig {
    fn default() -> Self {
        HopfieldConfig {
            mode: HopfieldMode::Hebbian,
            temperature: 1.0,
            update: Update::Async,
            recall_sweeps: 20,
            noise: 0.1,
            chains: 100,
            gibbs_sweeps: 1,
            sample_sweeps: 200,
            exact_max_units: 20,
        }
    }
}

impl HopfieldConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::config(
                "model.temperature",
                self.temperature,
                "a finite number > 0",
            ));
        }
        if !(0.0..=0.5).contains(&self.noise) {
            return Err(Error::config(
                "model.noise",
                self.noise,
                "a fraction in [0, 0.5]",
            ));
        }
        checks::at_least("model.chains", self.chains, 1, "at least 1")?;
        for (field, v) in [
            ("model.recall_sweeps", self.recall_sweeps),
            ("model.gibbs_sweeps", self.gibbs_sweeps),
            ("model.sample_sweeps", self.sample_sweeps),
        ] {
            if v == 0 {
                return Err(Error::config(field, 0, "at least 1"));
            }
        }
        checks::in_range(
            "model.exact_max_units",
            self.exact_max_units,
            1..=MAX_ENUMERATED_UNITS,
            format!("1 ..= {MAX_ENUMERATED_UNITS}"),
        )?;
        Ok(())
    }
}
