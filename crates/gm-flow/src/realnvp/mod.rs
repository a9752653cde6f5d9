//! RealNVP (Dinh et al. 2017): a stack of affine coupling layers.
//!
//! A coupling layer with mask b keeps b ⊙ x and moves the rest by a scale and a shift
//! computed from it: y = b ⊙ x + (1 − b) ⊙ (x ⊙ exp(s(b ⊙ x)) + t(b ⊙ x)). Its Jacobian is
//! triangular, so log |det| = Σ (1 − b) ⊙ s, and its inverse is as cheap as the forward
//! map: x = b ⊙ y + (1 − b) ⊙ (y − t(b ⊙ y)) ⊙ exp(−s(b ⊙ y)). The log-scale is a learned
//! scaled tanh, s = c ⊙ tanh(·), c from 1 (bounded steps early in training); the
//! conditioner's last layer starts at zero, so every layer starts as the identity.
//!
//! - Vectors: an MLP conditioner (ReLU, `hidden`), masks alternating between the first
//!   and the second half of the entries (`mask = "halves"`).
//! - Images: a convolutional conditioner (ReLU, `channels`, `kernel`), checkerboard masks
//!   of alternating parity or channel masks of alternating halves. With `scales = S > 0`
//!   the multiscale architecture of the paper: S times (`per_scale` checkerboard
//!   couplings, a squeeze of 2×2 blocks into channels, `per_scale` channel couplings, half
//!   the channels factored out to the code), then `layers` couplings at the last scale.
//! - No batch norm and no actnorm: the scaled tanh and the zero start keep training stable.
//!
//! The log-likelihood is exact by the change of variables with a N(0, I) base; on images
//! it is the bound of uniform dequantization on the discrete pixels (see [`crate::flow`]).
//!
//! ```no_run
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"realnvp\"\nlayers = 6\n[data]\ndataset = \"two-moons\"",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let mut flow = gm_flow::realnvp::build(&ctx)?;
//! flow.train_step(&Batch::inputs(&data.train.x.narrow(0, 0, 128)))?;
//! let lls = flow.log_likelihoods(&data.test.x, &cfg)?; // exact
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub(crate) use config::{odd_kernel, widths};
pub use config::{MaskKind, RealNvpConfig};
pub use model::{build, flow_model, mask, squeeze, unsqueeze, Coupling, RealNvp};

#[cfg(test)]
mod tests;
