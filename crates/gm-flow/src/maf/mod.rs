//! MAF, the masked autoregressive flow (Papamakarios et al. 2017).
//!
//! Each layer is an affine autoregressive transform whose shift and log-scale come from a
//! MADE (Germain et al. 2015; masks from [`gm_core::nets::made`]):
//! u_i = (x_i − μ_i(x_<i)) exp(−α_i(x_<i)). The Jacobian is triangular in the layer's
//! ordering, so log |det ∂u/∂x| = −Σ α_i, and the density takes one pass per layer;
//! sampling inverts a layer in D passes (x_i = u_i exp(α_i) + μ_i, one variable fixed per
//! pass). The ordering is reversed from one layer to the next. α is a learned scaled tanh
//! (c ⊙ tanh(·), c from 1) and each MADE's output layer starts at zero (the identity); hidden
//! units are ReLU with degrees drawn from `mask_seed`. No batch norm between layers.
//! Images are flattened, dequantized and (by default) logit-transformed as in
//! [`crate::flow`].
//!
//! ```no_run
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"maf\"\nlayers = 5\nhidden = [64, 64]\n[data]\ndataset = \"two-moons\"",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let flow = gm_flow::maf::build(&ctx)?;
//! let samples = flow.sample(100)?; // [100, 2]
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::MafConfig;
pub use model::{build, flow_model, MadeLayer, Maf};

#[cfg(test)]
mod tests;
