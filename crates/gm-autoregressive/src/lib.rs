//! Autoregressive models of *Deep Learning* chapter 20.10.7–20.10.10, whose likelihoods are
//! exact: the logistic fully-visible belief network, neural autoregressive networks, NADE,
//! NADE-k, RNADE, order-agnostic and deep NADE, MADE, and PixelCNN.
//!
//! Every model factors p(x) = Π_i p(x_{o_i} | x_{o_<i}) along an ordering o of the
//! variables, so log p(x) is a sum of D exact terms and sampling is ancestral (D sequential
//! steps, batched over samples). Implemented so far:
//!
//! - [`fvbn`]: the fully-visible belief network of §20.10.8 (Frey 1998), logistic for
//!   binary data and linear-Gaussian for real data (with its closed-form fit);
//! - [`nade`]: NADE (§20.10.10; Larochelle & Murray 2011), the shared-weight network whose
//!   forward pass costs O(DH) through a running sum;
//! - [`made`]: MADE (Germain et al. 2015), a masked MLP with connectivity-agnostic and
//!   order-agnostic training and mask ensembles.
//!
//! [`common`] holds what they share (orderings, enumeration of small binary spaces, total
//! variation, exact likelihood reports).
//!
//! A NADE from a config, one training step, samples and its exact log-likelihood (from a
//! program of your own: README, "Using gm crates in your own project"):
//!
//! ```
//! use gm_autoregressive::nade::Nade;
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"nade\"\nhidden = 16\n[data]\ndataset = \"bars-and-stripes\"",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let mut nade = Nade::new(parse_params("nade", &cfg.model.params)?, &ctx)?;
//! let metrics = nade.train_step(&Batch::inputs(&data.train.x.narrow(0, 0, 32)))?; // NLL first
//! let samples = nade.sample(16)?; // ancestral 0/1 draws, [16, 1, 4, 4]
//! let lls = nade.log_likelihoods(&data.test.x, &cfg)?;
//! assert_eq!(samples.size(), [16, 1, 4, 4]);
//! assert_eq!(lls[0].kind, LikelihoodKind::Exact);
//! assert!(metrics[0].1.double_value(&[]) > 0.0);
//! # Ok::<(), gm_core::Error>(())
//! ```
//!
//! The `gm` command builds models by name from [`register`]ed entries.

pub mod common;
pub mod deepnade;
pub mod fvbn;
pub mod made;
pub mod nade;
pub mod nadek;
pub mod narn;
pub mod pixelcnn;
pub mod rnade;

#[cfg(test)]
mod testutil;

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this crate's models to `registry`.
pub fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "fvbn",
        family: "gm-autoregressive",
        description: "fully-visible belief net: logistic (binary) or linear-Gaussian (real, closed-form fit), exact NLL",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build: fvbn::build,
    });
    registry.add(ModelEntry {
        name: "nade",
        family: "gm-autoregressive",
        description: "NADE (Larochelle & Murray 2011): shared-weight O(DH) autoregressive net, any ordering, exact NLL",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build: nade::build,
    });
    registry.add(ModelEntry {
        name: "made",
        family: "gm-autoregressive",
        description: "MADE (Germain et al. 2015): masked MLP, connectivity/order-agnostic training, mask ensembles, exact NLL",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build: made::build,
    });
    narn::register(registry);
    nadek::register(registry);
    rnade::register(registry);
    deepnade::register(registry);
    pixelcnn::register(registry);
}

/// Serialises the unit tests: they seed libtorch's global generator and check statistics of
/// the draws that follow, which other tests running in parallel threads would disturb (the
/// one process-wide lock of [`gm_core::rng_guard`]).
#[cfg(test)]
pub(crate) fn test_rng_lock() -> gm_core::rng_guard::RngGuard {
    gm_core::rng_guard::lock()
}
