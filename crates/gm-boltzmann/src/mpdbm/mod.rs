//! The multi-prediction deep Boltzmann machine (*Deep Learning* §20.4.5, figure 20.5;
//! Goodfellow et al. 2013): a DBM over binary pixels v, hidden layers h_1 … h_L and a
//! softmax label y joined to h_L,
//!
//! E(v, h, y) = −Σ_{l=0}^{L} x_l·b_l − Σ_{l=1}^{L} x_{l−1}ᵀ W_l x_l − y·c − h_Lᵀ U y,
//!
//! trained jointly, without greedy pre-training and without MCMC, by back-propagation
//! through mean-field inference.
//!
//! - **Training** (`gm train mp-dbm`): per example, each pixel and the label is a target
//!   with probability `target_prob`, the rest are inputs; `mf_steps` mean-field iterations
//!   with the inputs clamped ([`inference`]) form a recurrent net, and the loss is the
//!   cross-entropy of the targets under the final Q (pixels, plus `label_weight` × the
//!   label), its exact gradient taken by autograd. Not a bound on the likelihood: a
//!   variational approximation to the generalised pseudo-likelihood. Examples whose label
//!   is unobserved (`[data] labelled`) still train on their pixels.
//! - **Classification** ([`classify`]): argmax Q(y | x) from the same net, with all pixels,
//!   with averaged inputs (the multi-inference trick) and with pixels missing; `gm eval`
//!   reports each error.
//! - **Completion** (`gm sample --complete`): hidden pixels filled with their Q(v_j = 1).
//! - **Sampling**: block Gibbs of the same energy (label a softmax unit; clamped for
//!   `gm sample --class`), which §20.4.5 warns gives poor samples for this training.
//! - **Likelihood**: none is reported (the criterion does not fit it).
//!
//! ```no_run
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"mp-dbm\"\nhidden = [16, 8]\n[data]\ndataset = \"bars-and-stripes\"",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let mut m = gm_boltzmann::mpdbm::MpDbm::new(parse_params("mp-dbm", &cfg.model.params)?, &ctx)?;
//! let y = data.train.y.as_ref().unwrap();
//! m.train_step(&Batch::labelled(&data.train.x, y))?; // one multi-prediction step
//! let err = m.error(&data.test.x, data.test.y.as_ref().unwrap(), None, false, 100);
//! # Ok::<(), gm_core::Error>(())
//! ```

pub mod classify;
mod config;
pub mod inference;
mod model;

pub use config::MpDbmConfig;
pub use inference::{Inferred, Observed};
pub use model::{build, MpDbm};

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "mp-dbm",
        family: "gm-boltzmann",
        description: "multi-prediction DBM (Goodfellow et al. 2013): back-propagation through mean field predicting random subsets of pixels and the label; classification with missing inputs, completion",
        default_dataset: "mnist",
        needs_labels: true,
        build,
    });
}

#[cfg(test)]
mod tests;
