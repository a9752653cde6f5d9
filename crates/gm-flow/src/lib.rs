//! Normalizing flows: invertible networks with an exact log-likelihood by the change of
//! variables (seed `001_*.txt` §2), log p(x) = log p_z(f(x)) + log |det ∂f/∂x|.
//!
//! [`realnvp`] is RealNVP (Dinh et al. 2017: affine couplings, checkerboard / channel masks,
//! multiscale); [`glow`] is Glow (Kingma & Dhariwal 2018: actnorm, invertible 1×1
//! convolutions, affine couplings, multiscale with learned split priors); [`maf`] is the masked autoregressive flow (Papamakarios et al. 2017: MADE
//! transforms, orderings reversed between layers). [`flow`] holds what they share: the
//! data space (real vectors as they are; images uniformly dequantized, reported as a
//! lower bound on the discrete likelihood in nats and bits per dimension) and the model
//! wrapper the trainer drives.
//!
//! A flow from a config, one training step, samples and its exact log-likelihood:
//!
//! ```
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"realnvp\"\nlayers = 4\nhidden = [16]\n[data]\ndataset = \"two-moons\"\nsynthetic_size = 256",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let mut flow = gm_flow::realnvp::build(&ctx)?;
//! let metrics = flow.train_step(&Batch::inputs(&data.train.x.narrow(0, 0, 64)))?; // loss first
//! let samples = flow.sample(16)?; // [16, 2]
//! let lls = flow.log_likelihoods(&data.test.x, &cfg)?;
//! assert_eq!(samples.size(), [16, 2]);
//! assert_eq!(lls[0].kind, LikelihoodKind::Exact);
//! assert!(metrics[0].1.double_value(&[]).is_finite());
//! # Ok::<(), gm_core::Error>(())
//! ```
//!
//! The `gm` command builds models by name from [`register`]ed entries.

pub mod flow;
pub mod glow;
pub mod maf;
pub mod realnvp;

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this crate's models to `registry`.
pub fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "realnvp",
        family: "gm-flow",
        description: "RealNVP (Dinh et al. 2017): affine couplings, halves / checkerboard / channel masks, multiscale; exact log-likelihood (images: dequantized bound, bits/dim)",
        default_dataset: "two-moons",
        needs_labels: false,
        build: realnvp::build,
    });
    registry.add(ModelEntry {
        name: "glow",
        family: "gm-flow",
        description: "Glow (Kingma & Dhariwal 2018): actnorm, invertible 1×1 convolutions (LU), affine couplings, multiscale with learned split priors; exact log-likelihood (images: dequantized bound, bits/dim)",
        default_dataset: "two-moons",
        needs_labels: false,
        build: glow::build,
    });
    registry.add(ModelEntry {
        name: "maf",
        family: "gm-flow",
        description: "masked autoregressive flow (Papamakarios et al. 2017): MADE affine transforms, orderings reversed between layers; exact log-likelihood (images: dequantized bound, bits/dim)",
        default_dataset: "two-moons",
        needs_labels: false,
        build: maf::build,
    });
}

/// Serialises the tests that seed or draw from libtorch's global generator.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> gm_core::rng_guard::RngGuard {
    gm_core::rng_guard::lock()
}
#[cfg(test)]
mod testutil;
