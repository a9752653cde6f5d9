//! The deep belief network (*Deep Learning* §20.3; Hinton, Osindero & Teh 2006): a stack of
//! Bernoulli RBMs over binary visible units v = h_0 and hidden layers h_1 … h_L, read as one
//! generative model whose top two layers form an undirected RBM and whose lower layers are
//! directed sigmoid belief layers,
//!
//! p(v, h_1 … h_L) = p(v | h_1) ⋯ p(h_{L−2} | h_{L−1}) · p_top(h_{L−1}, h_L),
//! p(h_{l−1} = 1 | h_l) = σ(b_l + W_l h_l),
//!
//! with W_l, b_l the weights and visible biases of the RBM between h_{l−1} and h_l.
//!
//! - **Training** is greedy and layer-wise: the RBM of layer 1 is trained on the data, then
//!   the RBM of layer l on the hidden units of layer l−1 driven by the data (samples or
//!   probabilities, `propagate`), each for its own number of epochs (`layer_epochs`), with
//!   `rbm`'s rules (CD-k, PCD-k …) and code ([`crate::rbm::Rbm`] per layer). Checkpoints
//!   hold every layer, its optimizer and chains, and the DBN's step counter, so a resumed
//!   run continues exactly. Each epoch's metrics are those of the layer it trains, with
//!   `layer` saying which.
//! - **Sampling** is ancestral: block Gibbs in the top RBM (`sample_steps` sweeps from its
//!   base-rate model), then one pass down the directed layers.
//! - **Likelihood** ([`likelihood`]): exact by enumerating h_1 … h_{L−1} when they are small
//!   (`exact_max_units`), and the variational lower bound of Salakhutdinov & Murray (2008)
//!   with the top RBM's log Z from AIS, for any size.
//! - **Fine-tuning** ([`finetune`], `finetune = true`): after the greedy epochs, the up-pass
//!   as an MLP with a softmax layer, trained on the labels; `gm eval` reports its error.
//!
//! ```no_run
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"dbn\"\nhidden = [8, 6]\nlayer_epochs = [5, 5]\n\
//!      [data]\ndataset = \"bars-and-stripes\"\n[eval]\nais_steps = 500",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let mut dbn = gm_boltzmann::dbn::Dbn::new(parse_params("dbn", &cfg.model.params)?, &ctx)?;
//! dbn.train_step(&Batch::inputs(&data.train.x.narrow(0, 0, 32)))?; // CD-1 on layer 1
//! let samples = dbn.sample(16)?; // [16, 1, 4, 4]
//! let lls = dbn.log_likelihoods(&data.test.x, &cfg)?; // exact (2^8 states of h1), AIS bound
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
pub mod finetune;
pub mod likelihood;
mod model;
mod train;

pub use config::{DbnConfig, Propagate, MAX_LAYERS};
pub(crate) use model::steps_per_epoch;
pub use model::{build, Dbn};

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "dbn",
        family: "gm-boltzmann",
        description: "deep belief net: greedy layer-wise RBMs (CD-k / PCD), ancestral sampling; exact (tiny) log p and the AIS variational lower bound",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build,
    });
}

#[cfg(test)]
mod tests;
