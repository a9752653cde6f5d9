//! Generator networks trained without a likelihood, *Deep Learning* chapter 20.10.4–20.10.6.
//!
//! [`adversarial`] is the two-player game every GAN variant shares (losses, k discriminator
//! steps, two stores and optimizers, fixed-noise grids); [`gan`] plays it with MLPs, as
//! `gan` (minimax or non-saturating) and `cgan` (class-conditional, Mirza & Osindero 2014).
//! [`gmmn`] holds the moment-matching models (`gmmn`, `gmmn-ae`, Li et al. 2015).
//! [`dcgan`] plays it with convolutional networks (Radford et al. 2015; transposed
//! convolutions or the "un-pooling" of §20.10.6), and [`lapgan`] with a Laplacian pyramid of
//! GANs, each finer level generating the residual given the coarser image (Denton et al. 2015).
//!
//! A GAN from a config, one training step (a discriminator update, then a generator update
//! every `d_steps`), samples, and its likelihoods — none: a GAN has no likelihood, and
//! `gm eval` measures its samples instead (from a program of your own: README, "Using gm
//! crates in your own project"):
//!
//! ```
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"gan\"\nlatent = 2\ngenerator_hidden = [16]\ndiscriminator_hidden = [16]\n\
//!      [data]\ndataset = \"eight-gaussians\"",
//! )?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let ctx = BuildContext { cfg: &cfg, data: &data, device: Device::Cpu };
//! let mut gan = gm_gan::gan::build(&ctx)?;
//! let m = gan.train_step(&Batch::inputs(&data.train.x.narrow(0, 0, 64)))?;
//! assert_eq!(m.iter().map(|(k, _)| *k).collect::<Vec<_>>(), ["loss_d", "loss_g", "d_real", "d_fake"]);
//! assert_eq!(gan.sample(16)?.size(), [16, 2]);
//! assert!(gan.log_likelihoods(&data.test.x, &cfg)?.is_empty());
//! # Ok::<(), gm_core::Error>(())
//! ```
//!
//! [`coverage`] is the mode-collapse watch: at each epoch's end the GANs classify fresh
//! samples (28×28 grey MNIST / Fashion-MNIST, when gm-eval's classifier is cached) and
//! warn when class coverage is low or falls.
//!
//! The `gm` command builds models by name from [`register`]ed entries.

pub mod adversarial;
pub mod coverage;
pub mod dcgan;
pub mod gan;
pub mod gmmn;
pub mod lapgan;
pub mod output;

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this crate's models to `registry`.
pub fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "gmmn",
        family: "gm-gan",
        description: "generative moment-matching network (Li et al. 2015): MLP generator trained by a multi-bandwidth Gaussian-kernel MMD; no likelihood",
        default_dataset: "mnist",
        needs_labels: false,
        build: gmmn::build,
    });
    registry.add(ModelEntry {
        name: "gmmn-ae",
        family: "gm-gan",
        description: "GMMN+AE (Li et al. 2015): a sigmoid-code autoencoder trained first, then a GMMN on its codes; samples decoded; no likelihood",
        default_dataset: "mnist",
        needs_labels: false,
        build: gmmn::build_ae,
    });
    registry.add(ModelEntry {
        name: "gan",
        family: "gm-gan",
        description: "generative adversarial network (MLP G and D; minimax or non-saturating loss, k D steps, dropout in D; no likelihood)",
        default_dataset: "mnist",
        needs_labels: false,
        build: gan::build,
    });
    registry.add(ModelEntry {
        name: "cgan",
        family: "gm-gan",
        description: "conditional GAN (Mirza & Osindero 2014): the label one-hot joins G's noise and D's input; class-conditional samples",
        default_dataset: "mnist",
        needs_labels: true,
        build: gan::build_conditional,
    });
    registry.add(ModelEntry {
        name: "dcgan",
        family: "gm-gan",
        description: "DCGAN (Radford et al. 2015): strided / transposed convolutions (or un-pooling, §20.10.6), batch norm; images with sides multiples of 4; no likelihood",
        default_dataset: "mnist",
        needs_labels: false,
        build: dcgan::build,
    });
    registry.add(ModelEntry {
        name: "lapgan",
        family: "gm-gan",
        description: "LAPGAN (Denton et al. 2015): a Laplacian pyramid of GANs (7 → 14 → 28), each finer level generating the residual given the up-sampled coarser image; no likelihood",
        default_dataset: "mnist",
        needs_labels: false,
        build: lapgan::build,
    });
}

/// Serialises the tests that seed or draw from libtorch's global generator.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> gm_core::rng_guard::RngGuard {
    gm_core::rng_guard::lock()
}

/// What the tests of the convolutional GANs share.
#[cfg(test)]
pub(crate) mod test_kit {
    use gm_core::config::RunConfig;
    use gm_core::data::{self, Batch, Dataset};
    use gm_core::model::Model;
    use tch::{Kind, Tensor};

    /// A run config of `model` with `[model]` and `[data]` lines (seed 1, Adam 2e-3, β₁ 0.5).
    pub fn config(model: &str, lines: &str, data: &str) -> RunConfig {
        RunConfig::from_toml_str(&format!(
            "seed = 1\n[model]\nname = \"{model}\"\n{lines}\n[data]\n{data}\n\
             [optim]\nlr = 2e-3\nbeta1 = 0.5\n"
        ))
        .unwrap()
    }

    /// The dataset of `c`.
    pub fn load(c: &RunConfig) -> Dataset {
        data::load(&c.data.dataset, &c.data.options).unwrap()
    }

    /// `steps` training steps on successive batches of 32 training examples.
    pub fn train(m: &mut dyn Model, d: &Dataset, steps: i64) {
        let n = d.train.len();
        for step in 0..steps {
            let i = (step * 32) % (n - 32);
            m.train_step(&Batch::inputs(&d.train.x.narrow(0, i, 32)))
                .unwrap();
        }
    }

    /// The fraction of thresholded one-channel square images `[N, 1, n, n]` that are
    /// bars-and-stripes patterns (every row constant or every column constant).
    pub fn pattern_fraction(s: &Tensor) -> f64 {
        let b = s.gt(0.5).to_kind(Kind::Float).squeeze_dim(1);
        let constant = |dim: i64| {
            b.amax([dim].as_slice(), false)
                .eq_tensor(&b.amin([dim].as_slice(), false))
                .all_dim(1, false)
        };
        let ok = constant(1).logical_or(&constant(2));
        ok.to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[])
    }
}
