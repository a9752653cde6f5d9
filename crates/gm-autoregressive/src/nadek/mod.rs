//! NADE-k, the iterative neural autoregressive distribution estimator (Raiko et al. 2014;
//! *Deep Learning* §20.10.10): an order-agnostic NADE whose prediction of the missing
//! variables is refined by k steps of a mean-field-like recurrence.
//!
//! Given the values x_S of an observed set S (mask m), the missing values start at the
//! training means v⁰ and are filled in by k iterations of the same network,
//!
//! h = act(W₁ (m⊙x + (1−m)⊙v) + U m + c₁)   [then h = act(W₂ h + c₂) with `layers = 2`],
//! v ← σ(V h + b),
//!
//! (the U m term with `mask_input = true`); the k-th v gives p(x_j = 1 | x_S) for every
//! missing j. Training is order-agnostic (Uria et al. 2014): per row, d ~ U{0 … D−1}
//! observed variables chosen at random and the loss D/(D−d) Σ_{missing j} −log p(x_j | x_S),
//! back-propagated through all k steps, an unbiased estimate of the NLL averaged over every
//! ordering (that is the `loss` of training and validation).
//!
//! For one ordering o the model is the autoregressive p(x) = Π_i p(x_{o_i} | x_{o_<i}), whose
//! i-th factor needs its own fill-in pass with S = o_<i: the exact log-likelihood costs D
//! passes, run here batched over positions ([`NadeK::conditionals_along`]). `log_likelihoods`
//! reports it as exact for `ordering`, and with `ensemble = E > 1` also the exact
//! log (1/E) Σ_e p(x | o_e) of an ensemble of orderings. Sampling follows `ordering`, one
//! fill-in pass per variable, batched over samples.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"nade-k\"\nhidden = 64\nk = 3\nlayers = 2\n[data]\ndataset = \"bars-and-stripes\"")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut m = gm_autoregressive::nadek::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let metrics = m.train_step(&gm_core::data::Batch::inputs(&ds.train.x))?;
//! println!("order-agnostic NLL estimate {} nats", metrics[0].1.double_value(&[]));
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::{NadeKConfig, MAX_ENSEMBLE};
pub use model::{build, NadeK};

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "nade-k",
        family: "gm-autoregressive",
        description: "NADE-k (Raiko et al. 2014): order-agnostic NADE with k fill-in iterations, 1 or 2 hidden layers, exact NLL per ordering (D passes)",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build,
    });
}

#[cfg(test)]
mod tests;
