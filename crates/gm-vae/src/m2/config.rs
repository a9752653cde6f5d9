use crate::vae::Likelihood;
use gm_core::checks;
use gm_core::nets::{Activation, LayerInit};
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// `[model]` fields of `m2`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct M2Config {
    /// Hidden widths of q(z | x, y); the decoder p(x | y, z) mirrors them.
    pub hidden: Vec<i64>,
    /// Hidden widths of the classifier q(y | x).
    pub classifier_hidden: Vec<i64>,
    /// Dimension of z.
    pub latent: i64,
    /// Weight of the labelled examples' mean cross-entropy −log q(y | x) against the mean
    /// bound per example (Kingma et al.'s 0.1 · N / N_l for N_l labels of N examples).
    pub alpha: f64,
    /// Labelled examples drawn (with replacement) from the observed ones for the
    /// cross-entropy term of every training step, so that a few labels among many
    /// unlabelled examples weigh in every step; 0: only the batch's own labelled examples.
    pub labelled_batch: i64,
    /// Hidden non-linearity (softplus in Kingma et al. 2014).
    pub activation: Activation,
    /// p(x | y, z): Bernoulli on binary data, a Gaussian with a learned variance per
    /// dimension on real-valued data (`auto` picks by the data; M1+M2 is Gaussian).
    pub likelihood: Likelihood,
    /// Lower clamp of the Gaussian decoder's log-variance.
    pub min_log_var: f64,
    /// M1+M2 (Kingma et al. 2014's stacked model) when > 0: the dimension of the latent
    /// code z₁ of a VAE "M1" trained first on every training image; M2 then models the codes
    /// z₁ ~ q(z₁ | x), not the pixels. 0 = M2 alone.
    pub m1_latent: i64,
    /// Hidden widths of M1's encoder; its decoder mirrors them.
    pub m1_hidden: Vec<i64>,
    /// Updates of M1 before M2 starts (M1 is frozen afterwards).
    pub m1_steps: i64,
    /// How the linear layers of M2 (and M1) start: `kaiming` (tch's default), `glorot`, `torch` or
    /// `lecun` (N(0, 1 / fan_in) weights, zero biases: Kingma et al.'s code).
    pub init: LayerInit,
}

impl Default for M2Config {
    fn default() -> Self {
        M2Config {
            hidden: vec![500],
            classifier_hidden: vec![500],
            latent: 50,
            alpha: 0.1,
            labelled_batch: 100,
            activation: Activation::Softplus,
            likelihood: Likelihood::Auto,
            min_log_var: -8.0,
            m1_latent: 0,
            m1_hidden: vec![600, 600],
            m1_steps: 50_000,
            init: LayerInit::Kaiming,
        }
    }
}

impl M2Config {
    pub(crate) fn validate(&self) -> Result<()> {
        for (field, sizes) in [
            ("model.hidden", &self.hidden),
            ("model.classifier_hidden", &self.classifier_hidden),
            ("model.m1_hidden", &self.m1_hidden),
        ] {
            if sizes.iter().any(|&h| h <= 0) {
                return Err(Error::config(
                    field,
                    format!("{sizes:?}"),
                    "a list of positive layer widths, e.g. [500]",
                ));
            }
        }
        checks::at_least("model.latent", self.latent, 1, "a positive integer")?;
        checks::at_least(
            "model.m1_latent",
            self.m1_latent,
            0,
            "0 (M2 alone) or the dimension of M1's code",
        )?;
        checks::at_least(
            "model.m1_steps",
            self.m1_steps,
            1,
            "a positive number of M1 updates",
        )?;
        checks::finite("model.min_log_var", self.min_log_var)?;
        checks::finite("model.alpha", self.alpha)?;
        checks::at_least("model.alpha", self.alpha, 0.0, "a weight ≥ 0")?;
        checks::at_least(
            "model.labelled_batch",
            self.labelled_batch,
            0,
            "a number of labelled examples ≥ 0",
        )?;
        Ok(())
    }
}
