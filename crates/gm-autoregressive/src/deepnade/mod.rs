//! Deep, order-agnostic NADE (Uria, Murray & Larochelle 2014) and its ensembles over
//! orderings (EoNADE), the extension of NADE that *Deep Learning* §20.10.10 describes last:
//! one network that predicts any variables from any observed subset.
//!
//! The network is an MLP (ReLU hidden layers) whose input is `x ⊙ m` concatenated with the
//! mask `m` (1 = observed) and whose D outputs are the logits of p(x_i = 1 | x_observed).
//! Training draws, per example, a split d ~ U{0..D−1} and a random observed subset of size
//! d, and minimises D/(D−d) Σ_{i missing} −log p(x_i | x_observed): an unbiased estimate of
//! the NLL averaged over all orderings. Any ordering o then defines an exact model
//! p(x | o) = Π_i p(x_{o_i} | x_{o_<i}) (D conditionals, computed in one batched pass with
//! the first layer as a running sum), and K orderings an ensemble
//! p(x) = (1/K) Σ_k p(x | o_k), evaluated exactly by log-mean-exp.
//!
//! Because every observed subset was trained on, the model also scores and samples
//! x_missing given any x_observed ([`DeepNade::log_prob_missing`],
//! [`DeepNade::sample_missing`]) along the ordering that takes the observed variables first;
//! it implements `gm_core::model::Complete` exactly with them, and its `figures` are the
//! shared completion grids (bottom half or the centred square hidden).
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::{BuildContext, Model}};
//! use gm_autoregressive::deepnade::DeepNade;
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"deep-nade\"\nhidden = [64, 64]\nensemble_orderings = 4\n[data]\ndataset = \"bars-and-stripes\"")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu };
//! let mut m = DeepNade::new(gm_core::model::parse_params("deep-nade", &cfg.model.params)?, &ctx)?;
//! m.train_step(&gm_core::data::Batch::inputs(&ds.train.x))?;
//! let ensemble = m.log_prob_ensemble(&ds.test.x);            // exact, [N]
//! let observed = tch::Tensor::ones([ds.test.len(), 16], (tch::Kind::Float, tch::Device::Cpu));
//! let _ = observed.narrow(1, 8, 8).fill_(0.0);              // bottom half missing
//! let filled = m.sample_missing(&ds.test.x, &observed, m.ordering(0))?;
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::{DeepNadeConfig, MAX_ORDERINGS};
pub use model::{build, DeepNade};

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "deep-nade",
        family: "gm-autoregressive",
        description: "deep order-agnostic NADE (Uria et al. 2014): any-subset inference, inpainting, EoNADE ensembles over orderings, exact NLL",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build,
    });
}

#[cfg(test)]
mod tests;
