use gm_core::checks;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// How the RBM is trained.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Contrastive divergence CD-k: the negative phase is k block-Gibbs sweeps started at
    /// the data (§18.2).
    #[default]
    Cd,
    /// Persistent CD / stochastic maximum likelihood: k sweeps of persistent chains.
    Pcd,
    /// Pseudo-likelihood (§18.3): minimise −Σ_i log p(v_i | v_−i), exact per example.
    Pl,
    /// Ratio matching (Hyvärinen 2007, §18.4): Σ_i σ(F(v) − F(v with unit i flipped))².
    RatioMatching,
    /// Parallel tempering: persistent chains at several inverse temperatures, with
    /// Metropolis swaps between neighbours; the β = 1 replica is the negative phase.
    Pt,
}

impl Rule {
    /// Whether the rule keeps persistent chains.
    pub fn persistent(self) -> bool {
        matches!(self, Rule::Pcd | Rule::Pt)
    }
}

/// How the CD / PCD / PT gradient is computed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    /// Positive minus negative statistics with hidden probabilities, written out.
    #[default]
    Hand,
    /// The gradient of mean F(v_data) − mean F(v_model) by autograd (negatives detached).
    Autograd,
}

/// Floating-point precision of the parameters and chains.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// `f32` (fast).
    #[default]
    Float32,
    /// `f64` (exact checks on small models).
    Float64,
}

/// `[model]` fields of `rbm`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RbmConfig {
    /// Number of hidden units.
    pub hidden: i64,
    /// Training rule.
    pub rule: Rule,
    /// Gibbs sweeps per update (CD-k, PCD-k, PT).
    pub k: i64,
    /// Persistent chains (PCD) or chains per replica (PT); default the batch size.
    pub chains: Option<i64>,
    /// Replicas of parallel tempering (the β = 1 one included).
    pub pt_replicas: i64,
    /// Smallest inverse temperature of the PT ladder; the ladder is linear in β from 1
    /// down to it.
    pub pt_beta_min: f64,
    /// Hand-written or autograd gradient for CD / PCD / PT.
    pub update: Update,
    /// Units per example whose conditionals enter the pseudo-likelihood: all when unset,
    /// else a random subset of this size, rescaled so the estimate is unbiased.
    pub pl_units: Option<i64>,
    /// L2 penalty ½·λ‖W‖² on the weights (not the biases).
    pub weight_decay: f64,
    /// Target mean activation of the hidden units (Lee et al. 2008).
    pub sparsity_target: f64,
    /// Weight of the sparsity penalty Σ_j (target − q_j)², q_j the batch-mean of
    /// p(h_j = 1 | v); 0 turns it off.
    pub sparsity_cost: f64,
    /// The centering trick (Montavon & Müller 2012; Melchior et al. 2016).
    pub centering: bool,
    /// Moving-average rate of the centering offsets.
    pub centering_rate: f64,
    /// Standard deviation of the initial weights.
    pub init_std: f64,
    /// Gibbs sweeps per sample drawn by `sample`.
    pub sample_steps: i64,
    /// Largest layer size (units) enumerated for the exact log Z, at most 25; 0 disables it.
    pub exact_max_units: i64,
    /// Parameter precision.
    pub dtype: Dtype,
}

impl Default for RbmConfig {
    fn default() -> Self {
        RbmConfig {
            hidden: 500,
            rule: Rule::Cd,
            k: 1,
            chains: None,
            pt_replicas: 10,
            pt_beta_min: 0.1,
            update: Update::Hand,
            pl_units: None,
            weight_decay: 0.0,
            sparsity_target: 0.1,
            sparsity_cost: 0.0,
            centering: false,
            centering_rate: 0.01,
            init_std: 0.01,
            sample_steps: 1000,
            exact_max_units: 20,
            dtype: Dtype::Float32,
        }
    }
}

/// Largest layer the exact partition function enumerates (2^25 states).
pub const EXACT_MAX_UNITS_LIMIT: i64 = 25;

impl RbmConfig {
    /// Checks every field on its own (the visible size is checked against the data by the
    /// builder).
    pub fn validate(&self) -> Result<()> {
        checks::at_least(
            "model.hidden",
            self.hidden,
            1,
            "a positive number of hidden units",
        )?;
        checks::at_least("model.k", self.k, 1, "at least 1 Gibbs sweep")?;
        if let Some(c) = self.chains {
            if c <= 0 {
                return Err(Error::config(
                    "model.chains",
                    c,
                    "a positive number of chains",
                ));
            }
        }
        if self.pt_replicas < 2 {
            return Err(Error::config(
                "model.pt_replicas",
                self.pt_replicas,
                "at least 2 replicas (β = 1 and at least one hotter one)",
            ));
        }
        if !(0.0..1.0).contains(&self.pt_beta_min) {
            return Err(Error::config(
                "model.pt_beta_min",
                self.pt_beta_min,
                "an inverse temperature in [0, 1)",
            ));
        }
        if let Some(n) = self.pl_units {
            if n <= 0 {
                return Err(Error::config(
                    "model.pl_units",
                    n,
                    "a positive number of units (or leave it unset for all of them)",
                ));
            }
        }
        checks::non_negative("model.weight_decay", self.weight_decay)?;
        if !(self.sparsity_target > 0.0 && self.sparsity_target < 1.0) {
            return Err(Error::config(
                "model.sparsity_target",
                self.sparsity_target,
                "a probability in (0, 1)",
            ));
        }
        if !(self.sparsity_cost >= 0.0 && self.sparsity_cost.is_finite()) {
            return Err(Error::config(
                "model.sparsity_cost",
                self.sparsity_cost,
                "a finite number ≥ 0 (0 turns the penalty off)",
            ));
        }
        if !(self.centering_rate > 0.0 && self.centering_rate <= 1.0) {
            return Err(Error::config(
                "model.centering_rate",
                self.centering_rate,
                "a rate in (0, 1]",
            ));
        }
        check_init_sampling_exact(self.init_std, self.sample_steps, self.exact_max_units)?;
        Ok(())
    }
}

/// The checks `rbm` and `dbm` share: `model.init_std` > 0, `model.sample_steps` ≥ 1 and
/// `model.exact_max_units` in 0..=[`EXACT_MAX_UNITS_LIMIT`].
pub(crate) fn check_init_sampling_exact(
    init_std: f64,
    sample_steps: i64,
    exact_max_units: i64,
) -> Result<()> {
    checks::positive("model.init_std", init_std)?;
    checks::at_least(
        "model.sample_steps",
        sample_steps,
        1,
        "at least 1 Gibbs sweep",
    )?;
    checks::in_range(
        "model.exact_max_units",
        exact_max_units,
        0..=EXACT_MAX_UNITS_LIMIT,
        format!("an integer in 0..={EXACT_MAX_UNITS_LIMIT} (0 disables the exact log Z)"),
    )
}
