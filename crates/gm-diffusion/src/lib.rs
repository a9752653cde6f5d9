//! Diffusion models (§20.13, Sohl-Dickstein et al. 2015): a fixed forward process that
//! destroys the data's structure step by step, and a learned reverse process that restores
//! it, trained on the variational bound.
//!
//! [`schedule`] holds the β schedules; [`gaussian`] the Gaussian diffusion (closed-form
//! q(x_t | x_0), the reverse mean, every term of the bound, ancestral and DDIM sampling);
//! [`binary`] the binomial diffusion of binary data; [`bound`] the timestep-subset estimate
//! of a bound's sum; [`nets`] the networks told t (an MLP, a U-Net); [`figures`] the
//! reverse-process strip. Models: [`ddpm`] (Ho et al. 2020) and [`bindiff`], the binary
//! diffusion whose bound is in nats per binary image.
//!
//! The `gm` command builds models by name from [`register`]ed entries.

pub mod binary;
pub mod bindiff;
pub mod bound;
pub mod completion;
pub mod ddpm;
pub mod figures;
pub mod gaussian;
pub mod nets;
pub mod schedule;
pub mod shaping;

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
    registry.add(ModelEntry {
        name: "binary-diffusion",
        family: "gm-diffusion",
        description: "binomial diffusion (Sohl-Dickstein et al. 2015) for binary data, reverse steps through an x_0 prediction (MLP / U-Net); variational lower bound in nats",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build: bindiff::build,
    });
}

/// Serialises the tests that seed or draw from libtorch's global generator.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> gm_core::rng_guard::RngGuard {
    gm_core::rng_guard::lock()
}
