//! DDPM (Ho et al. 2020): the Gaussian diffusion of Sohl-Dickstein et al. (2015) with the
//! reverse mean parametrised by a noise predictor ε_θ(x_t, t).
//!
//! - Training: `loss = "simple"` (Ho et al.'s ‖ε − ε_θ‖² at a uniform t) or `"bound"` (a
//!   one-timestep estimate of the variational bound in nats).
//! - ε_θ: an MLP (`hidden`) on vectors, a U-Net (`channels` per resolution, `attention`
//!   at the lowest, `dropout`) on images; `schedule = "linear" | "cosine"`, `steps` T,
//!   `variance = "beta" | "posterior" | "learned"` for σ_t² (learned: the network's second
//!   output interpolates log β_t and log β̃_t, as Sohl-Dickstein et al. learn the reverse
//!   covariance; trained on the bound, or on L_simple plus 0.001 × the bound for it).
//! - Images are dequantized, y = (k + u) / L, and diffused as s = 2y − 1; `gm eval` reports
//!   the variational bound on the discrete likelihood, E_u[bound on log p(s)] + D ln 2 − D ln L,
//!   in nats and bits/dim, labelled a lower bound (its sum over t ≥ 2 estimated from
//!   `bound_timesteps` timesteps per example unless that covers them all).
//! - Sampling: `sampler = "ancestral"` (T steps; x̂_0 clamped to [−1, 1] on images) or
//!   `"ddim"` (η = 0, `sample_steps`); per-epoch grids always use DDIM. Completion: the
//!   reverse chain with observed pixels replaced by draws of q(x_t | x_0) (approximate).
//! - `figures/reverse-process.png`: samples from x_T to x_0.
//!
//! ```
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"ddpm\"\nsteps = 50\nhidden = [16]\n[data]\ndataset = \"two-moons\"\nsynthetic_size = 256",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let mut m = gm_diffusion::ddpm::build(&ctx)?;
//! m.train_step(&Batch::inputs(&data.train.x.narrow(0, 0, 64)))?;
//! let lls = m.log_likelihoods(&data.test.x.narrow(0, 0, 32), &cfg)?;
//! assert_eq!(lls[0].kind, LikelihoodKind::LowerBound);
//! assert_eq!(m.sample(8)?.size(), [8, 2]);
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::{DdpmConfig, Loss, SamplerKind};
pub use model::{build, Ddpm, Space};

#[cfg(test)]
mod tests;
