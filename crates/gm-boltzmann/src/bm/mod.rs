//! The general Boltzmann machine with visible and hidden binary units (*Deep Learning* §20.1).
//!
//! E(v, h) = −vᵀRv − vᵀWh − hᵀSh − bᵀv − cᵀh, p(v, h) = exp(−E)/Z, with R and S symmetric and
//! zero on the diagonal: they are built from the strictly upper triangles of raw matrices,
//! so both properties hold exactly whatever the optimizer does.
//!
//! Learning follows §20.1: the gradient of log p(v) is ⟨·⟩_data − ⟨·⟩_model of the
//! sufficient statistics (v vᵀ, v hᵀ, h hᵀ, v, h).
//! - positive phase: visible units clamped to the batch, hidden units by `positive_steps`
//!   sequential Gibbs sweeps (`positive = "gibbs"`) or mean-field sweeps
//!   (`positive = "mean_field"`);
//! - negative phase: persistent chains (`chains` of them, `negative_sweeps` sequential Gibbs
//!   sweeps per step) kept in a second `VarStore`, `chains.safetensors`, so checkpoints
//!   resume them exactly;
//! - the update goes through [`gm_core::optim::Optimizer::apply_gradients`] with the gradient
//!   negated (the optimizer descends).
//!
//! Measurement: with at most `exact_max_units` units (visible + hidden, default 20) the
//! log-likelihood is computed exactly by enumerating all 2^units states and reported as
//! `Exact` (`bm-enumeration`). Larger machines report no likelihood: the hidden–hidden
//! couplings make AIS's tractable base-rate trick of the RBM unavailable, and gm reports no
//! number it cannot label honestly. The training metric `pseudo_nll_proxy`,
//! −Σ_i log p(v_i | v_−i, h) with h from the positive phase, is a *proxy* for monitoring only.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"bm\"\nhidden = 4\n[data]\ndataset = \"bars-and-stripes\"\nbars_size = 3")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut m = gm_boltzmann::bm::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! m.train_step(&gm_core::data::Batch::inputs(&ds.train.x))?;
//! let ll = m.log_likelihoods(&ds.test.x, &cfg)?; // exact: 9 + 4 units
//! println!("{} nats ({})", ll[0].mean, ll[0].kind);
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::{BmConfig, PositivePhase};
pub use model::{build, log_likelihood_gradient, Bm, BmParams, Moments};

pub(crate) use model::require_binary;

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "bm",
        family: "gm-boltzmann",
        description: "Boltzmann machine with visible + hidden units, sequential Gibbs, persistent negative phase, exact likelihood when small (§20.1)",
        default_dataset: "bars-and-stripes",
        needs_labels: false,
        build,
    });
}

#[cfg(test)]
mod tests;
