//! Variational autoencoders and, later, the other directed generative nets with learned
//! inference of *Deep Learning* §20.10 (sigmoid belief nets, Helmholtz machines).
//!
//! [`vae`] is the VAE of §20.10.3 (Kingma & Welling 2014; Rezende et al. 2014): a Gaussian
//! encoder q(z | x), the reparameterization trick, a Bernoulli or Gaussian decoder, the
//! analytic KL term, β as a config field, and an importance-sampled log-likelihood; its
//! conditional form (`cvae`, Sohn et al. 2015) feeds the label to encoder and decoder and
//! samples by class. The VAE completes partly observed images approximately (iterated
//! encode / decode with the observed pixels reset).
//!
//! A VAE from a config, one training step, samples and its labelled log-likelihoods (from a
//! program of your own: README, "Using gm crates in your own project"):
//!
//! ```
//! use gm_core::prelude::*;
//! use gm_vae::vae::Vae;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"vae\"\nhidden = [16]\nlatent = 2\n[data]\ndataset = \"bars-and-stripes\"\n[eval]\nis_samples = 50",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let mut vae = Vae::new(parse_params("vae", &cfg.model.params)?, &ctx)?;
//! let metrics = vae.train_step(&Batch::inputs(&data.train.x.narrow(0, 0, 32)))?; // loss first
//! let samples = vae.sample(16)?; // decoder means, [16, 1, 4, 4]
//! let lls = vae.log_likelihoods(&data.test.x, &cfg)?; // ELBO, then importance sampling (k = 50)
//! assert_eq!(samples.size(), [16, 1, 4, 4]);
//! assert_eq!((lls[0].kind, lls[1].kind), (LikelihoodKind::LowerBound, LikelihoodKind::StochasticEstimate));
//! assert!(metrics[0].1.double_value(&[]).is_finite());
//! # Ok::<(), gm_core::Error>(())
//! ```
//!
//! The `gm` command builds models by name from [`register`]ed entries.

pub mod m2;
pub mod vae;

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this crate's models to `registry`.
pub fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "vae",
        family: "gm-vae",
        description: "variational autoencoder (MLP, Gaussian q(z|x), Bernoulli/Gaussian decoder, β, IS log-likelihood)",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build: vae::build,
    });
    registry.add(ModelEntry {
        name: "iwae",
        family: "gm-vae",
        description: "importance-weighted autoencoder (Burda et al. 2015): the VAE trained on the k-sample bound (iw_samples, default 5); reports ELBO, IWAE-k bound and IS estimate",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build: vae::build_iwae,
    });
    registry.add(ModelEntry {
        name: "m2",
        family: "gm-vae",
        description: "semi-supervised VAE M2 (Kingma et al. 2014): classifier q(y|x), q(z|x,y), p(x|y,z); unlabelled examples sum y out; validation error of q(y|x) per epoch",
        default_dataset: "mnist",
        needs_labels: true,
        build: m2::build,
    });
    registry.add(ModelEntry {
        name: "cvae",
        family: "gm-vae",
        description: "conditional VAE (Sohn et al. 2015): the label one-hot joins the encoder's and the decoder's inputs; class-conditional samples",
        default_dataset: "mnist",
        needs_labels: true,
        build: vae::build_conditional,
    });
}

/// Serialises the tests that seed or draw from libtorch's global generator.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> gm_core::rng_guard::RngGuard {
    gm_core::rng_guard::lock()
}
