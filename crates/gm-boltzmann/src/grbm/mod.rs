//! The Gaussian–Bernoulli RBM (*Deep Learning* §20.5.1): real visible units, binary hidden
//! units, in the precision form with a visible bias (see [`energy`] for the algebra).
//!
//! - Inputs are standardised with statistics of the training split (`standardize =
//!   "per-pixel" | "global" | "none"`, computed at build time, saved in the checkpoint and
//!   summarised in the resolved config); samples and figures are mapped back to data units,
//!   and log-likelihoods are reported in data space (they include −Σ_i log s_i).
//! - Precision β fixed or learned (through log β), scalar or diagonal.
//! - Training by CD-k or PCD (persistent chains in a second `VarStore`, `chains`, so
//!   checkpoints carry them), with the gradient written by hand or taken by autograd through
//!   mean F(data) − mean F(negatives).
//! - log Z exactly by enumerating the hidden states when `hidden ≤ exact_max_hidden`
//!   (reported as `Exact`), otherwise by AIS from the data's Gaussian ([`ais`], a
//!   `StochasticEstimate`).
//! - Metrics are proxies (`free_energy_gap_proxy`, `recon_mse_proxy`) plus `nll_exact` on
//!   held-out data for models with at most 14 hidden units.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"grbm\"\nhidden = 8\nprecision = \"learned\"\n[data]\ndataset = \"eight-gaussians\"",
//! )?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut m = gm_boltzmann::grbm::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! m.train_step(&gm_core::data::Batch::inputs(&ds.train.x.narrow(0, 0, 100)))?;
//! let ll = m.log_likelihoods(&ds.test.x, &cfg)?; // exact: 2^8 hidden states
//! println!("test log-likelihood {:.3} nats ({})", ll[0].mean, ll[0].kind);
//! # Ok::<(), gm_core::Error>(())
//! ```

pub mod ais;
mod config;
pub mod energy;
mod model;

pub use config::{
    GrbmConfig, Precision, PrecisionShape, StandardizationRecord, Standardize, Update,
};
pub use model::{build, Grbm};

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "grbm",
        family: "gm-boltzmann",
        description: "Gaussian–Bernoulli RBM (§20.5.1): real visibles, fixed/learned precision, CD-k/PCD, exact log Z (≤ 20 hidden) or AIS",
        default_dataset: "fashion-mnist",
        needs_labels: false,
        build,
    });
}

#[cfg(test)]
mod tests;
