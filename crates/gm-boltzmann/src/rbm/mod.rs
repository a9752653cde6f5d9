//! The Bernoulli–Bernoulli restricted Boltzmann machine (*Deep Learning* §20.2), its training
//! rules and its partition function.
//!
//! E(v, h) = −v·b − h·c − vᵀWh over binary visible units v (the flattened data) and hidden
//! units h. The conditionals factorise, p(h_j = 1 | v) = σ(c_j + (vW)_j) and
//! p(v_i = 1 | h) = σ(b_i + (Wh)_i), so block Gibbs sampling alternates two matrix products,
//! batched over chains, and the free energy F(v) = −v·b − Σ_j softplus(c_j + (vW)_j) is
//! exact.
//!
//! Training rules (`rule`): CD-k, PCD-k (stochastic maximum likelihood, persistent chains
//! kept in the checkpoint), parallel tempering, pseudo-likelihood and ratio matching
//! (§18.2–18.4). The CD-type gradient is written by hand (positive minus negative statistics
//! with hidden probabilities, `update = "hand"`) or taken by autograd from
//! mean F(v_data) − mean F(v_model) (`update = "autograd"`); both give the same numbers.
//! Options: L2 weight decay on W, a sparsity penalty on the hidden activations, and the
//! centering trick (§20.4.5). log Z is exact by enumerating the smaller layer
//! ([`exact`]) when it is small, and estimated by AIS from the base-rate model otherwise.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::{BuildContext, Model}};
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"rbm\"\nhidden = 16\nrule = \"pcd\"\n[data]\ndataset = \"bars-and-stripes\"",
//! )?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu };
//! let mut rbm = gm_boltzmann::rbm::Rbm::new(gm_core::model::parse_params("rbm", &cfg.model.params)?, &ctx)?;
//! rbm.train_batch(&ds.train.x.narrow(0, 0, 100))?;
//! let lls = rbm.log_likelihoods(&ds.test.x, &cfg)?; // exact (2^16 hidden states) and AIS
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
pub mod exact;
mod model;
mod train;

pub(crate) use config::check_init_sampling_exact;
pub use config::{Dtype, RbmConfig, Rule, Update, EXACT_MAX_UNITS_LIMIT};
pub(crate) use model::{as_images, reverse_note, scaled_filters, MARGINAL_EPS};
pub use model::{build, Rbm};

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "rbm",
        family: "gm-boltzmann",
        description: "Bernoulli RBM: CD-k / PCD / parallel tempering / pseudo-likelihood / ratio matching, centering; exact (small) and AIS log Z",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build,
    });
}

#[cfg(test)]
mod tests;
