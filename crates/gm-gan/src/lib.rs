//! Generator networks trained without a likelihood, *Deep Learning* chapter 20.10.4–20.10.6.
//!
//! [`adversarial`] is the two-player game every GAN variant shares (losses, k discriminator
//! steps, two stores and optimizers, fixed-noise grids); [`gan`] plays it with MLPs, as
//! `gan` (minimax or non-saturating) and `cgan` (class-conditional, Mirza & Osindero 2014).
//! [`dcgan`] plays it with convolutional networks (Radford et al. 2015; transposed
//! convolutions or the "un-pooling" of §20.10.6), and [`lapgan`] with a Laplacian pyramid of
//! GANs, each finer level generating the residual given the coarser image (Denton et al. 2015).
//!
//! ```no_run
//! let mut registry = gm_core::model::ModelRegistry::new();
//! gm_gan::register(&mut registry);
//! assert!(registry.get("gan").is_some());
//! ```

pub mod adversarial;
pub mod dcgan;
pub mod gan;
pub mod lapgan;

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this crate's models to `registry`.
pub fn register(registry: &mut ModelRegistry) {
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
    registry.add(ModelEntry {
        name: "dcgan",
        family: "gm-gan",
        description: "DCGAN (Radford et al. 2015): strided / transposed convolutions (or un-pooling, §20.10.6), batch norm; images with sides multiples of 4; no likelihood",
        default_dataset: "mnist",
        needs_labels: false,
        build: dcgan::build,
    });
    registry.add(ModelEntry {
        name: "lapgan",
        family: "gm-gan",
        description: "LAPGAN (Denton et al. 2015): a Laplacian pyramid of GANs (7 → 14 → 28), each finer level generating the residual given the up-sampled coarser image; no likelihood",
        default_dataset: "mnist",
        needs_labels: false,
        build: lapgan::build,
    });
}

/// Serialises the tests that seed or draw from libtorch's global generator.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> gm_core::rng_guard::RngGuard {
    gm_core::rng_guard::lock()
}
