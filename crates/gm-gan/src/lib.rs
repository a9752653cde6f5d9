//! Generator networks trained without a likelihood, *Deep Learning* chapter 20.10.4–20.10.6.
//!
//! [`adversarial`] is the two-player game every GAN variant shares (losses, k discriminator
//! steps, two stores and optimizers, fixed-noise grids); [`gan`] plays it with MLPs, as
//! `gan` (minimax or non-saturating) and `cgan` (class-conditional, Mirza & Osindero 2014).
//! [`gmmn`] holds the moment-matching models (`gmmn`, `gmmn-ae`, Li et al. 2015).
//!
//! ```no_run
//! let mut registry = gm_core::model::ModelRegistry::new();
//! gm_gan::register(&mut registry);
//! assert!(registry.get("gan").is_some() && registry.get("gmmn").is_some());
//! ```

pub mod adversarial;
pub mod gan;
pub mod gmmn;
pub mod output;

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
    registry.add(ModelEntry {
        name: "gan",
        family: "gm-gan",
        description: "generative adversarial network (MLP G and D; minimax or non-saturating loss, k D steps, dropout in D; no likelihood)",
        default_dataset: "mnist",
        needs_labels: false,
        build: gan::build,
    });
    registry.add(ModelEntry {
        name: "cgan",
        family: "gm-gan",
        description: "conditional GAN (Mirza & Osindero 2014): the label one-hot joins G's noise and D's input; class-conditional samples",
        default_dataset: "mnist",
        needs_labels: true,
        build: gan::build_conditional,
    });
}

/// Serialises the tests that seed or draw from libtorch's global generator.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> gm_core::rng_guard::RngGuard {
    gm_core::rng_guard::lock()
}
