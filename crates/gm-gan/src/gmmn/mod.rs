//! Generative moment-matching networks (*Deep Learning* §20.10.5; Li et al. 2015,
//! Dziugaite et al. 2015): `gmmn` and `gmmn-ae`.
//!
//! A GMMN is a generator network G: z → x with no discriminator and no likelihood. Each
//! step draws `samples` noise vectors z ~ U(−1, 1)^noise, generates x̃ = G(z) and minimises
//! the maximum mean discrepancy between the generated batch and the data batch, with the
//! kernel k(a, b) = Σ_σ exp(−‖a − b‖² / 2σ²) summed over the configured `bandwidths`.
//! The default statistic is √MMD²_b, the square root of the *biased* estimate, as in Li et
//! al.; `loss = "biased"` (MMD²_b) and `loss = "unbiased"` (MMD²_u) are the alternatives.
//! The MMD is gm-eval's ([`gm_eval::mmd::mmd2`]): the same kernel sums as the metric.
//!
//! `gmmn-ae` (Li et al.'s GMMN+AE) first trains an MLP autoencoder with sigmoid codes
//! (cross-entropy reconstruction, dropout on the codes) for `ae_steps` updates, then trains
//! a GMMN on the codes of the data (the autoencoder fixed); samples are decoded G(z). The
//! phase is read from the autoencoder optimizer's step count, which checkpoints save, so a
//! resumed run continues in the right phase. Both networks and both optimizers are saved.
//!
//! Neither model has a likelihood: `log_likelihoods` is empty and `gm eval` reports sample
//! quality only.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"gmmn\"\nhidden = [64, 64]\nbandwidths = [0.1, 0.5, 2.0]\nsamples = 256\n\
//!      [data]\ndataset = \"eight-gaussians\"",
//! )?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut g = gm_gan::gmmn::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let m = g.train_step(&gm_core::data::Batch::inputs(&ds.train.x.narrow(0, 0, 256)))?;
//! println!("√MMD²_b {}", m[0].1.double_value(&[]));
//! # Ok::<(), gm_core::Error>(())
//! ```

mod ae;
mod config;
mod model;

pub use ae::{build as build_ae, GmmnAe, Phase};
pub use config::{GmmnAeConfig, GmmnConfig, MmdLoss, Output};
pub use model::{build, mmd_loss, Generator, Gmmn};

#[cfg(test)]
mod tests;
