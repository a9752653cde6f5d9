//! A binary diffusion for binary data: the binomial diffusion of Sohl-Dickstein et al.
//! (2015) with the reverse process parametrised through a prediction of x_0 (see
//! [`crate::binary`]).
//!
//! - Training: a one-timestep estimate of the variational bound (nats) plus `aux_weight`
//!   times the cross-entropy of the x_0 prediction (D3PM's auxiliary loss).
//! - The network: an MLP (`hidden`) or a U-Net (`channels`, `attention`, `dropout`) told
//!   t, giving logits of x_0 (`net = "auto" | "mlp" | "unet"`).
//! - `gm eval`: the variational bound on log p(x) in nats per example, the units of NADE,
//!   the RBMs and the VAEs on the same binarization, labelled a lower bound (its sum over
//!   t ≥ 2 estimated from `bound_timesteps` timesteps per example unless that covers them all).
//! - Samples: the T-step reverse chain from Bernoulli(½) noise, x_0 drawn (0/1). Completion:
//!   the chain with observed pixels replaced by draws of q(x_t | x_0) (approximate).
//!
//! ```
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"binary-diffusion\"\nsteps = 20\nhidden = [16]\nnet = \"mlp\"\n[data]\ndataset = \"bars-and-stripes\"",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let mut m = gm_diffusion::bindiff::build(&ctx)?;
//! m.train_step(&Batch::inputs(&data.train.x.narrow(0, 0, 16)))?;
//! let lls = m.log_likelihoods(&data.test.x, &cfg)?;
//! assert!(lls[0].mean < 0.0);
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::BinaryDiffusionConfig;
pub use model::{build, BinaryDiffusionModel};

#[cfg(test)]
mod tests;
