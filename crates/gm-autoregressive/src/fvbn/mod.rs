//! The fully-visible belief network (*Deep Learning* §20.10.7–20.10.8; Frey 1998).
//!
//! The chain rule p(x) = Π_i p(x_{o_i} | x_{o_<i}) with a *linear* model per conditional and
//! no hidden units or sharing: D(D − 1)/2 weights of a `[D, D]` matrix whose mask (strictly
//! lower-triangular in the ordering) is applied in every forward pass, plus D biases.
//!
//! - Binary data: logistic regression on the preceding variables,
//!   p(x_i = 1 | x_<i) = σ(b_i + Σ_{j<i} W_ij x_j), trained by gradient descent on the exact
//!   NLL (a convex problem).
//! - Real data: linear-Gaussian regression, x_i ~ N(b_i + Σ_{j<i} W_ij x_j, σ_i²): another way
//!   of writing a multivariate Gaussian. It can be trained by gradient descent or fitted in
//!   closed form (`fit = "closed_form"`): each train step adds its batch to running sums kept
//!   in the checkpoint and sets the parameters to the least-squares regression of every x_i
//!   on x_<i (residual variance as σ_i²) over all examples seen, computed at once from the
//!   Cholesky factor of their covariance. That fit *is* the Gaussian maximum-likelihood fit:
//!   its log-likelihood equals that of N(sample mean, sample covariance).
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"fvbn\"\n[data]\ndataset = \"bars-and-stripes\"")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut m = gm_autoregressive::fvbn::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let metrics = m.train_step(&gm_core::data::Batch::inputs(&ds.train.x))?;
//! println!("NLL {}", metrics[0].1.double_value(&[]));
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::{Fit, FvbnConfig, FvbnLikelihood};
pub use model::{build, Fvbn};

#[cfg(test)]
mod tests;
