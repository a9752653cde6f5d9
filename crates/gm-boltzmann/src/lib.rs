//! Energy-based models of *Deep Learning* chapter 20.1–20.5: Boltzmann machines, Hopfield
//! networks, restricted Boltzmann machines (Bernoulli and Gaussian–Bernoulli), their
//! training rules (CD-k, PCD/SML, pseudo-likelihood, ratio matching, parallel tempering) and
//! their partition functions (exact by enumeration for small models, AIS otherwise).
//!
//! - [`bm`]: the general Boltzmann machine with visible and hidden units (§20.1);
//! - [`hopfield`]: Hopfield networks, Hebbian storage and recall, and their probabilistic form;
//! - [`rbm`]: the Bernoulli–Bernoulli RBM (§20.2) with its training rules and estimators;
//! - [`grbm`]: the Gaussian–Bernoulli RBM (§20.5.1);
//! - [`dbn`]: the deep belief network (§20.3), greedy stacks of RBMs;
//! - [`dbm`]: the deep Boltzmann machine (§20.4), mean-field inference and Algorithm 20.1.
//! - [`mpdbm`]: the multi-prediction DBM (§20.4.5), trained by back-propagation through
//!   mean field.
//!
//! An RBM from a config, one training step, samples and its labelled log-likelihoods
//! (from a program of your own: README, "Using gm crates in your own project"):
//!
//! ```
//! use gm_boltzmann::rbm::Rbm;
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"rbm\"\nhidden = 8\n[data]\ndataset = \"bars-and-stripes\"\n[eval]\nais_steps = 100",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let mut rbm = Rbm::new(parse_params("rbm", &cfg.model.params)?, &ctx)?;
//! rbm.train_step(&Batch::inputs(&data.train.x.narrow(0, 0, 32)))?; // one CD-1 update
//! let samples = rbm.sample(16)?; // p(v = 1 | h) after Gibbs sweeps, [16, 1, 4, 4]
//! let lls = rbm.log_likelihoods(&data.test.x, &cfg)?; // exact (2^8 hidden states), then AIS
//! assert_eq!(samples.size(), [16, 1, 4, 4]);
//! assert_eq!((lls[0].kind, lls[1].kind), (LikelihoodKind::Exact, LikelihoodKind::StochasticEstimate));
//! # Ok::<(), gm_core::Error>(())
//! ```
//!
//! The `gm` command builds models by name from [`register`]ed entries.

pub mod bm;
pub mod dbm;
pub mod dbn;
pub mod grbm;
pub mod hopfield;
pub mod mpdbm;
pub mod rbm;

use gm_core::model::ModelRegistry;

/// Adds this crate's models to `registry`.
pub fn register(registry: &mut ModelRegistry) {
    rbm::register(registry);
    grbm::register(registry);
    bm::register(registry);
    hopfield::register(registry);
    dbn::register(registry);
    dbm::register(registry);
    mpdbm::register(registry);
}

/// Serialises the unit tests: they seed libtorch's global generator and check statistics of
/// the draws that follow, which other tests running in parallel threads would disturb (the
/// one process-wide lock of [`gm_core::rng_guard`]).
#[cfg(test)]
pub(crate) fn test_rng_lock() -> gm_core::rng_guard::RngGuard {
    gm_core::rng_guard::lock()
}
