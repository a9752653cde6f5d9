//! Energy-based models of *Deep Learning* chapter 20.1–20.5: Boltzmann machines, Hopfield
//! networks, restricted Boltzmann machines (Bernoulli and Gaussian–Bernoulli), their
//! training rules (CD-k, PCD/SML, pseudo-likelihood, ratio matching, parallel tempering) and
//! their partition functions (exact by enumeration for small models, AIS otherwise).
//!
//! - [`bm`]: the general Boltzmann machine with visible and hidden units (§20.1);
//! - [`hopfield`]: Hopfield networks, Hebbian storage and recall, and their probabilistic form;
//! - [`rbm`]: the Bernoulli–Bernoulli RBM (§20.2) with its training rules and estimators;
//! - [`grbm`]: the Gaussian–Bernoulli RBM (§20.5.1).
//!
//! ```no_run
//! let mut registry = gm_core::model::ModelRegistry::new();
//! gm_boltzmann::register(&mut registry);
//! ```

pub mod bm;
pub mod grbm;
pub mod hopfield;
pub mod rbm;

use gm_core::model::ModelRegistry;

/// Adds this crate's models to `registry`.
pub fn register(registry: &mut ModelRegistry) {
    rbm::register(registry);
    grbm::register(registry);
    bm::register(registry);
    hopfield::register(registry);
}

/// Serialises the unit tests: they seed libtorch's global generator and check statistics of
/// the draws that follow, which other tests running in parallel threads would disturb (the
/// one process-wide lock of [`gm_core::rng_guard`]).
#[cfg(test)]
pub(crate) fn test_rng_lock() -> gm_core::rng_guard::RngGuard {
    gm_core::rng_guard::lock()
}
