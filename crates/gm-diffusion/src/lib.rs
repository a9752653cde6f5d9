//! Diffusion models (§20.13, Sohl-Dickstein et al. 2015): a fixed forward process that
//! destroys the data's structure step by step, and a learned reverse process that restores
//! it, trained on the variational bound.
//!
//! [`schedule`] holds the β schedules; [`gaussian`] the Gaussian diffusion (closed-form
//! q(x_t | x_0), the reverse mean, every term of the bound, ancestral and DDIM sampling);
//! [`nets`] the noise predictors (an MLP, a U-Net); [`ddpm`] the model of Ho et al. (2020).
//!
//! The `gm` command builds models by name from [`register`]ed entries.

pub mod ddpm;
pub mod gaussian;
pub mod nets;
pub mod schedule;

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this crate's models to `registry`.
pub fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "ddpm",
        family: "gm-diffusion",
        description: "DDPM (Ho et al. 2020): Gaussian diffusion, ε-prediction (MLP / U-Net), linear or cosine schedule, ancestral or DDIM sampling; variational lower bound (images: dequantized, bits/dim)",
        default_dataset: "two-moons",
        needs_labels: false,
        build: ddpm::build,
    });
}

/// Serialises the tests that seed or draw from libtorch's global generator.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> gm_core::rng_guard::RngGuard {
    gm_core::rng_guard::lock()
}
