//! NADE, the neural autoregressive density estimator (*Deep Learning* §20.10.10; Larochelle
//! & Murray 2011).
//!
//! For an ordering o of the D binary variables,
//!
//! a_1 = c,  a_{i+1} = a_i + W[:, o_i] x_{o_i},  h_i = σ(a_i),
//! p(x_{o_i} = 1 | x_{o_<i}) = σ(b_{o_i} + V[o_i, :] · h_i),
//!
//! with W `[H, D]`, V `[D, H]`, b `[D]`, c `[H]`: the hidden units of every conditional share
//! the input weights W (the sharing of figure 20.10), so the pre-activations of all D
//! conditionals are one running sum and the whole forward pass costs O(DH) per example, not
//! the O(D²H) of a separate network per conditional. Training and evaluation walk the ordering
//! in blocks of `block` positions (module `blocked`): the carry of each block start plus one
//! masked matrix product per block, with the exact gradient written by hand and walked back
//! over the blocks, so the working set is `[block, B, H]` rather than `[D, B, H]`. Sampling
//! draws the D variables in turn, batched over samples, updating the running activation a by
//! one outer product per step. log p(x) is exact.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"nade\"\nhidden = 32\n[data]\ndataset = \"bars-and-stripes\"")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut m = gm_autoregressive::nade::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let metrics = m.train_step(&gm_core::data::Batch::inputs(&ds.train.x))?;
//! println!("NLL {} nats", metrics[0].1.double_value(&[]));
//! # Ok::<(), gm_core::Error>(())
//! ```

mod blocked;
mod config;
mod model;

pub use blocked::DEFAULT_BLOCK;
pub use config::NadeConfig;
pub use model::{build, Nade};

#[cfg(test)]
mod tests;
