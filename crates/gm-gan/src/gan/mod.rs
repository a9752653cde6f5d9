//! The GAN of *Deep Learning* §20.10.4 (Goodfellow et al. 2014) with MLP players, and its
//! class-conditional form `cgan` (Mirza & Osindero 2014).
//!
//! The generator maps z ~ N(0, I) (`latent` dimensions) through ReLU hidden layers
//! (`generator_hidden`) to a sample: a sigmoid output for image data in [0, 1], a linear
//! one for real-valued toy data (`output = "auto"` picks). The discriminator maps an example
//! through leaky-ReLU hidden layers (`discriminator_hidden`), each followed by dropout
//! (`dropout`, 0 by default; §20.10.4 notes it helps), to the logit of D(x). The game, the
//! losses (`loss = "non-saturating"` by default, or `"minimax"`), the `d_steps`
//! discriminator updates per generator update and the metrics are [`crate::adversarial`]'s.
//! Both players use `[optim]` (Adam with β₁ = 0.5 in the shipped configs); the generator's
//! learning rate is the scheduled one times `generator_lr_scale` (1).
//!
//! `loss = "wgan-gp"` (beyond the chapter: Gulrajani et al. 2017) makes the discriminator
//! a critic with a raw score trained with a gradient penalty (`gp_weight`, 10); see
//! [`crate::adversarial`]. Its critic takes no dropout (a config error naming
//! `model.dropout`): a random critic would be penalised at a different function each
//! time. `configs/wgan-gp-eight-gaussians.toml` and `configs/wgan-gp-mnist.toml` ship it.
//!
//! `cgan` concatenates the label's one-hot to z and to x; it needs a labelled dataset,
//! samples by class (`gm sample --class C`) and its grids cycle through the classes.
//!
//! A GAN has no likelihood: `log_likelihoods` is empty; `gm eval --parzen` reports the weak
//! Parzen-window estimate of Goodfellow et al. 2014.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"gan\"\nlatent = 2\n[data]\ndataset = \"eight-gaussians\"")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut gan = gm_gan::gan::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let m = gan.train_step(&gm_core::data::Batch::inputs(&ds.train.x.narrow(0, 0, 64)))?;
//! println!("loss_d {}", m[0].1.double_value(&[]));
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::{Activation, GanConfig, Output};
pub use model::{build, build_conditional, new_mlp_gan, MlpDiscriminator, MlpGenerator};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wgan_gp_tests;
