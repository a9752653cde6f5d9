//! LAPGAN (Denton et al. 2015): a Laplacian pyramid of generative adversarial networks.
//!
//! An image x is split into a pyramid: its 2×2-averaged versions x₀ (coarsest, 7×7 for
//! MNIST with `levels = 3`), x₁ (14×14), …, x_{L−1} = x, and for every finer level the
//! residual h_k = x_k − u(x_{k−1}), u being 2× nearest-neighbour up-sampling (so that x_k =
//! u(x_{k−1}) + h_k exactly). Each level is its own GAN, trained independently on its part
//! of the pyramid of the data:
//!
//! - level 0: an MLP GAN (the `gan` networks, [`crate::gan`]) on x₀;
//! - level k ≥ 1: a conditional convolutional GAN whose generator maps the condition
//!   l = u(x_{k−1}) and a plane of noise to a residual ĥ_k (tanh), and whose discriminator
//!   judges (h_k, l) pairs.
//!
//! Sampling runs coarse to fine: x̃₀ = G₀(z₀), then x̃_k = clamp(u(x̃_{k−1}) + G_k(z_k,
//! u(x̃_{k−1})), 0, 1). [`Model::figures`] shows every level of the same samples. The
//! per-epoch grids ([`Model::progress_samples`]) draw every level's z from that level's
//! saved fixed noise, as the other GANs do, so successive grids show the same z. Every
//! level's two stores and two optimizers are saved (`level{k}-generator`,
//! `level{k}-discriminator`), so a resumed run is exact. No likelihood is defined.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"lapgan\"\n[data]\ndataset = \"mnist\"")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut gan = gm_gan::lapgan::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! gan.train_step(&gm_core::data::Batch::inputs(&ds.train.x.narrow(0, 0, 64)))?;
//! let figs = gan.figures(&ds.test.x)?; // 7×7, 14×14 and 28×28 rows
//! # Ok::<(), gm_core::Error>(())
//! ```
//!
//! [`Model::figures`]: gm_core::model::Model::figures
//! [`Model::progress_samples`]: gm_core::model::Model::progress_samples

mod config;
mod model;
mod nets;
pub mod pyramid;

pub use config::{LapganConfig, MAX_LEVELS};
pub use model::{build, Lapgan};
pub use nets::{ResidualDiscriminator, ResidualGenerator};

#[cfg(test)]
mod tests;
