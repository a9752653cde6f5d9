//! Generator networks trained without a likelihood, *Deep Learning* chapter 20.10.4–20.10.6:
//! generative adversarial networks (minimax and non-saturating), DCGAN, conditional GAN,
//! LAPGAN, and generative moment-matching networks (MMD, also on autoencoder codes).
//!
//! [`gmmn`] holds the moment-matching models (`gmmn`, `gmmn-ae`).
//!
//! ```no_run
//! let mut registry = gm_core::model::ModelRegistry::new();
//! gm_gan::register(&mut registry);
//! assert!(registry.get("gmmn").is_some());
//! ```

pub mod gmmn;

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this crate's models to `registry`.
pub fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "gmmn",
        family: "gm-gan",
        description: "generative moment-matching network (Li et al. 2015): MLP generator trained by a multi-bandwidth Gaussian-kernel MMD; no likelihood",
        default_dataset: "mnist",
        needs_labels: false,
        build: gmmn::build,
    });
    registry.add(ModelEntry {
        name: "gmmn-ae",
        family: "gm-gan",
        description: "GMMN+AE (Li et al. 2015): a sigmoid-code autoencoder trained first, then a GMMN on its codes; samples decoded; no likelihood",
        default_dataset: "mnist",
        needs_labels: false,
        build: gmmn::build_ae,
    });
}

/// Serialises the tests that seed or draw from libtorch's global generator.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> gm_core::rng_guard::RngGuard {
    gm_core::rng_guard::lock()
}
