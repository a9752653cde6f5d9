//! MADE, the masked autoencoder for distribution estimation (Germain et al. 2015), the
//! feed-forward form of the neural autoregressive networks of *Deep Learning* §20.10.9–10.
//!
//! An MLP from x to the D conditional logits whose weight matrices are multiplied by binary
//! masks, so that output d only sees inputs earlier than d in an ordering. Each input gets
//! its position in the ordering as degree 1..D; each hidden unit a degree drawn uniformly
//! between the smallest degree of the previous layer and D − 1; a hidden unit connects to
//! the units below it of degree ≤ its own, and output d to hidden units of degree < the
//! degree of input d. The masks are applied in every forward pass.
//!
//! With `num_masks > 1` (connectivity-agnostic training) the model holds that many degree
//! assignments, drawn once from `mask_seed`; every training step uses one of them chosen at
//! random (libtorch's generator, which the trainer seeds per step, so runs and resumed runs
//! are reproducible). With `order_agnostic = true` each mask also gets its own random
//! ordering. The model's distribution is the ensemble p(x) = (1/M) Σ_m p_m(x), evaluated in
//! log space as logsumexp_m log p_m(x) − log M (exact), and sampled by drawing a mask per
//! sample, then the variables in that mask's order.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"made\"\nhidden = [64]\nnum_masks = 4\n[data]\ndataset = \"bars-and-stripes\"")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut m = gm_autoregressive::made::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let metrics = m.train_step(&gm_core::data::Batch::inputs(&ds.train.x))?;
//! println!("NLL {} nats", metrics[0].1.double_value(&[]));
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::MadeConfig;
pub use model::{build, Made};

#[cfg(test)]
mod tests;
