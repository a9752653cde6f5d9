use gm_core::checks;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The decoder's likelihood p(x | z).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Likelihood {
    /// Bernoulli for binary data, Gaussian otherwise.
    #[default]
    Auto,
    /// Independent Bernoulli pixels (logits from the decoder); needs 0/1 data.
    Bernoulli,
    /// Independent Gaussians with a mean and a log-variance per dimension from the decoder.
    Gaussian,
}

/// Hidden-layer non-linearity (tanh as in Kingma & Welling 2014 and Burda et al. 2015).
pub use gm_core::nets::Activation;

/// `[model]` fields of `vae`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VaeConfig {
    /// Widths of the encoder's hidden layers; the decoder mirrors them.
    pub hidden: Vec<i64>,
    /// Dimension of z.
    pub latent: i64,
    /// Decoder likelihood.
    pub likelihood: Likelihood,
    /// Weight of the KL term (1 = the ELBO; β-VAE otherwise).
    pub beta: f64,
    /// Hidden non-linearity.
    pub activation: Activation,
    /// Lower clamp of the Gaussian decoder's log-variance (keeps densities finite on
    /// quantized data).
    pub min_log_var: f64,
    /// A conditional VAE (CVAE): the label's one-hot is concatenated to the encoder's
    /// input and to the decoder's input, q(z | x, y) and p(x | y, z); needs a labelled
    /// dataset (registry entry `cvae` sets it).
    pub conditional: bool,
}

impl Default for VaeConfig {
    fn default() -> Self {
        VaeConfig {
            hidden: vec![200, 200],
            latent: 50,
            likelihood: Likelihood::Auto,
            beta: 1.0,
            activation: Activation::Tanh,
            min_log_var: -6.0,
            conditional: false,
        }
    }
}

impl VaeConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.hidden.is_empty() || self.hidden.iter().any(|&h| h <= 0) {
            return Err(Error::config(
                "model.hidden",
                format!("{:?}", self.hidden),
                "a non-empty list of positive layer widths, e.g. [200, 200]",
            ));
        }
        checks::at_least("model.latent", self.latent, 1, "a positive integer")?;
        checks::positive("model.beta", self.beta)?;
        checks::finite("model.min_log_var", self.min_log_var)?;
        Ok(())
    }
}
