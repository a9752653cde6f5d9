//! The variational autoencoder (*Deep Learning* §20.10.3).
//!
//! The encoder is an MLP giving q(z | x) = N(μ(x), diag σ²(x)); a sample is drawn as
//! z = μ + σ ⊙ ε with ε ~ N(0, I) (the reparameterization trick), so the gradient of the
//! bound flows through the sample. The decoder is an MLP giving p(x | z): Bernoulli logits
//! for binary data, or a Gaussian mean and log-variance for real-valued data. The prior is
//! N(0, I) and the KL term is analytic. Training minimises
//! −E_q[log p(x | z)] + β · KL(q(z | x) ‖ p(z)) per example (β = 1 gives the ELBO).
//!
//! With `top_latent` > 0 a second stochastic layer z₂ sits above z (Burda et al. 2015):
//! p(x | z) p(z | z₂) N(z₂; 0, I) with q(z | x) q(z₂ | z), every latent conditional a
//! diagonal Gaussian from an MLP; its ELBO and IWAE bounds come from the log weights.
//!
//! Evaluation reports the ELBO (a lower bound) and an importance-sampled log-likelihood with
//! q(z | x) as proposal and k samples per example (a stochastic estimate; Burda et al. 2015).
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"vae\"\nlatent = 8\n[data]\ndataset = \"bars-and-stripes\"")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut vae = gm_vae::vae::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let m = vae.train_step(&gm_core::data::Batch::inputs(&ds.train.x.narrow(0, 0, 16)))?;
//! println!("loss {}", m[0].1.double_value(&[]));
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;
mod top;

pub use config::{Activation, Arch, BetaSchedule, Likelihood, VaeConfig};
pub use model::{
    build, build_conditional, build_iwae, kl_to_standard_normal, Vae, ACTIVE_UNIT_THRESHOLD,
    COMPLETION_ITERATIONS, IWAE_DEFAULT_SAMPLES,
};
pub(crate) use model::{chunked, gaussian_log_prob, LOG_2PI};

#[cfg(test)]
mod tests;
