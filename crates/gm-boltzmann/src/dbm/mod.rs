//! The deep Boltzmann machine (*Deep Learning* §20.4; Salakhutdinov & Hinton 2009): an
//! undirected energy model over binary visible units v = x_0 and L ≥ 2 hidden layers
//! x_1 … x_L, with connections only between neighbouring layers,
//!
//! E(x) = −Σ_{l=0}^{L} x_l·b_l − Σ_{l=1}^{L} x_{l−1}ᵀ W_l x_l.
//!
//! The layers form a bipartite graph of odd and even layers (figure 20.3): given the even
//! ones (v, h2 …) the odd ones are independent, p(x_{l,j} = 1 | neighbours) =
//! σ(b_l + x_{l−1} W_l + x_{l+1} W_{l+1}ᵀ)_j, and vice versa, so block Gibbs updates all
//! units in two blocks.
//!
//! - **Inference** ([`inference`]): mean-field fixed-point iteration (§20.4.2) to
//!   `mf_tolerance` or `mf_max_iters`, the iterations taken reported as metric `mf_iters`.
//! - **Training** ([`train`]): variational stochastic maximum likelihood, Algorithm 20.1, for
//!   biases and any L: mean field for the positive phase, `gibbs_steps` sweeps of `chains`
//!   persistent chains (kept in the checkpoint) for the negative phase, hand-written
//!   updates applied by the run's optimizer (SGD with momentum, or Adam) and its schedule.
//! - **Pre-training** ([`pretrain`]): with `[model.pretrain] epochs` > 0, greedy
//!   layer-wise training of the doubled-input RBMs of §20.4.4, composed into the DBM before
//!   the first joint update.
//! - **Sampling**: `sample_steps` block-Gibbs sweeps from fresh chains or copies of the
//!   persistent ones (`sample_start`), returning p(v = 1 | h1).
//! - **Likelihood** ([`exact`]): exact log Z and log p(v) for small models by summing one
//!   parity out in closed form and enumerating the other, and the mean-field lower bound
//!   with that log Z; for every model ([`ais`]) AIS of log Z with the odd layers summed
//!   out, and the mean-field bound with that estimate (a stochastic lower-bound estimate).
//! - **Classification** ([`classify`]): on labelled data, `gm eval` adds the error of a
//!   linear probe on the mean-field posteriors.
//! - **Fine-tuning** ([`finetune`], `finetune_after`): the mean-field equations unrolled
//!   into an MLP over v and q(h_2 | v), trained on the labels (Salakhutdinov & Hinton 2009).
//! - **Centering** (`centering = true`, [`train`]): the update of the centered energy,
//!   offsets following running means (Melchior et al. 2016).
//!
//! ```no_run
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"dbm\"\nhidden = [8, 4]\nchains = 50\n[data]\ndataset = \"bars-and-stripes\"",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let mut dbm = gm_boltzmann::dbm::Dbm::new(parse_params("dbm", &cfg.model.params)?, &ctx)?;
//! dbm.train_step(&Batch::inputs(&data.train.x.narrow(0, 0, 32)))?; // one update of Alg. 20.1
//! let samples = dbm.sample(16)?; // [16, 1, 4, 4]
//! let lls = dbm.log_likelihoods(&data.test.x, &cfg)?; // exact, mean-field bound, bound with AIS
//! # Ok::<(), gm_core::Error>(())
//! ```

pub mod ais;
pub mod classify;
mod config;
pub mod exact;
pub mod finetune;
pub mod inference;
mod model;
pub mod pretrain;
pub mod train;

pub use ais::{AisOptions, DbmTarget};
pub use config::{
    AisBase, AisState, DbmConfig, NegativePhase, PretrainConfig, PretrainMethod, SampleStart,
};
pub use inference::MeanField;
pub(crate) use model::{base_rate_biases, layer_input};
pub use model::{build, Dbm};

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "dbm",
        family: "gm-boltzmann",
        description: "deep Boltzmann machine: mean-field inference, variational SML (Algorithm 20.1) with persistent chains; exact (tiny) log p, the mean-field bound, AIS log Z",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build,
    });
}

#[cfg(test)]
mod tests;
