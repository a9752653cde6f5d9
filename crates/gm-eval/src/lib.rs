//! gm-eval: model-agnostic measurement of generative models (*Deep Learning* §20.14).
//!
//! Every number it produces says what it is — exact, a bound, a stochastic estimate with
//! its standard error, or a Parzen estimate — through
//! [`gm_core::model::LikelihoodKind`]. This first part holds the importance-sampling
//! estimator used by latent-variable models with a proposal (the VAE's encoder):
//!
//! ```
//! use gm_eval::importance::log_mean_exp;
//! let log_w = tch::Tensor::from_slice(&[0.0f64, 0.0, 0.0]).view([3, 1]);
//! let est = log_mean_exp(&log_w, 0);
//! assert!(est.double_value(&[0]).abs() < 1e-12);
//! ```

pub mod ais;
pub mod frechet;
pub mod importance;
pub mod mmd;
pub mod parzen;
