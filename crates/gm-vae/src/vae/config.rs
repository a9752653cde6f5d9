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
    /// Independent Gaussians: a mean per dimension from the decoder and a variance that is
    /// learned per dimension (also from the decoder) or fixed (`decoder_variance`).
    Gaussian,
}

/// How β, the weight of the KL term, moves during training (the step count is the
/// optimizer's, so a resumed run continues the schedule exactly).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BetaSchedule {
    /// β = `beta` throughout.
    #[default]
    Constant,
    /// KL annealing (Bowman et al. 2016): β rises linearly from 0 to `beta` over
    /// `beta_warmup_steps` steps, then stays.
    Linear,
    /// Cyclical annealing (Fu et al. 2019): cycles of `beta_cycle_steps` steps; in the first
    /// half of each cycle β rises linearly from 0 to `beta`, in the second it stays there.
    Cyclical,
}

/// The encoder's and decoder's bodies.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Fully connected layers of widths `hidden` on the flattened input.
    #[default]
    Mlp,
    /// Images (§20.10.6): the encoder is 4×4 stride-2 convolutions through `channels`, then
    /// the `hidden` layers; the decoder mirrors it (the `hidden` layers, a linear layer to
    /// the smallest feature map, 4×4 stride-2 transposed convolutions back to the image).
    Conv,
}

/// Hidden-layer non-linearity (tanh as in Kingma & Welling 2014 and Burda et al. 2015).
pub use gm_core::nets::Activation;
/// How the linear layers start.
pub use gm_core::nets::LayerInit;

/// `[model]` fields of `vae`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VaeConfig {
    /// Widths of the encoder's hidden layers; the decoder mirrors them.
    pub hidden: Vec<i64>,
    /// Fully connected or convolutional bodies.
    pub arch: Arch,
    /// Channels of the convolutional encoder's layers (`arch = "conv"`), input side first;
    /// each layer halves the image's height and width.
    pub channels: Vec<i64>,
    /// Dimension of z.
    pub latent: i64,
    /// Decoder likelihood.
    pub likelihood: Likelihood,
    /// Weight of the KL term (1 = the ELBO; β-VAE otherwise); the schedule's final value.
    pub beta: f64,
    /// How β moves during training.
    pub beta_schedule: BetaSchedule,
    /// Steps of the linear warm-up (`beta_schedule = "linear"`).
    pub beta_warmup_steps: i64,
    /// Steps per cycle (`beta_schedule = "cyclical"`).
    pub beta_cycle_steps: i64,
    /// Samples of z per example in the training objective: 1 trains on the ELBO (analytic
    /// KL); k > 1 on the importance-weighted bound L_k = E log (1/k) Σᵢ p(x, zᵢ) / q(zᵢ | x)
    /// of Burda et al. (2015) — the IWAE (registry entry `iwae`).
    pub iw_samples: i64,
    /// Dimension of a second stochastic layer z₂ above z (Burda et al. 2015's two-layer
    /// models): p(x | z) p(z | z₂) p(z₂) with q(z | x) q(z₂ | z), all diagonal Gaussians but
    /// the decoder. 0 = one stochastic layer.
    pub top_latent: i64,
    /// Widths of the hidden layers of q(z₂ | z); p(z | z₂) mirrors them (`top_latent` > 0).
    pub top_hidden: Vec<i64>,
    /// Training for completion (seed §3.5.1): each input entry the encoder sees is hidden
    /// (set to 0.5) with this probability, while the decoder is scored on the whole input,
    /// so that x → z stays robust to missing pixels. 0 = off; evaluation never masks.
    pub input_mask: f64,
    /// Hidden non-linearity.
    pub activation: Activation,
    /// How the linear layers start: `"glorot"` (Burda et al. 2015's, the scale for tanh
    /// layers), `"kaiming"` (tch's default, which gm's VAEs used before), `"torch"` or
    /// `"lecun"`.
    pub init: LayerInit,
    /// The fully connected decoder's output bias starts at the training data's per-dimension
    /// mean (its logit under a Bernoulli decoder, clamped to [0.001, 0.999]), so that p(x | z)
    /// begins as the data's marginal (as in Burda et al. 2015); false keeps `init`'s bias.
    pub data_bias: bool,
    /// Lower clamp of the Gaussian decoder's log-variance (keeps densities finite on
    /// quantized data).
    pub min_log_var: f64,
    /// Fixed variance σ² of the Gaussian decoder, shared by every dimension: the decoder
    /// then outputs means only and log p(x | z) = −‖x − μ(z)‖² / (2σ²) + const, the squared
    /// error of an autoencoder scaled by 1 / (2σ²). 0 = learned per dimension.
    pub decoder_variance: f64,
    /// A conditional VAE (CVAE): the label's one-hot is concatenated to the encoder's
    /// input and to the decoder's input, q(z | x, y) and p(x | y, z); needs a labelled
    /// dataset (registry entry `cvae` sets it).
    pub conditional: bool,
}

impl Default for VaeConfig {
    fn default() -> Self {
        VaeConfig {
            hidden: vec![200, 200],
            arch: Arch::Mlp,
            channels: vec![32, 64],
            latent: 50,
            likelihood: Likelihood::Auto,
            beta: 1.0,
            beta_schedule: BetaSchedule::Constant,
            beta_warmup_steps: 10_000,
            beta_cycle_steps: 10_000,
            iw_samples: 1,
            top_latent: 0,
            top_hidden: vec![100, 100],
            input_mask: 0.0,
            activation: Activation::Tanh,
            init: LayerInit::Glorot,
            data_bias: true,
            min_log_var: -6.0,
            decoder_variance: 0.0,
            conditional: false,
        }
    }
}

impl VaeConfig {
    /// β after `step` optimizer steps.
    pub fn beta_at(&self, step: u64) -> f64 {
        let ramp = |t: f64, len: f64| self.beta * (t / len).min(1.0);
        match self.beta_schedule {
            BetaSchedule::Constant => self.beta,
            BetaSchedule::Linear => ramp(step as f64, self.beta_warmup_steps as f64),
            BetaSchedule::Cyclical => {
                let len = self.beta_cycle_steps as u64;
                ramp((step % len) as f64, (len / 2) as f64)
            }
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.hidden.is_empty() || self.hidden.iter().any(|&h| h <= 0) {
            return Err(Error::config(
                "model.hidden",
                format!("{:?}", self.hidden),
                "a non-empty list of positive layer widths, e.g. [200, 200]",
            ));
        }
        if self.channels.is_empty() || self.channels.iter().any(|&c| c <= 0) {
            return Err(Error::config(
                "model.channels",
                format!("{:?}", self.channels),
                "a non-empty list of positive channel counts, e.g. [32, 64]",
            ));
        }
        checks::at_least("model.latent", self.latent, 1, "a positive integer")?;
        checks::positive("model.beta", self.beta)?;
        checks::at_least(
            "model.beta_warmup_steps",
            self.beta_warmup_steps,
            1,
            "a positive number of steps",
        )?;
        checks::at_least(
            "model.beta_cycle_steps",
            self.beta_cycle_steps,
            2,
            "at least 2 steps per cycle",
        )?;
        checks::at_least(
            "model.iw_samples",
            self.iw_samples,
            1,
            "at least 1 sample of z per example",
        )?;
        self.validate_top()?;
        checks::finite("model.input_mask", self.input_mask)?;
        if !(0.0..1.0).contains(&self.input_mask) {
            return Err(Error::config(
                "model.input_mask",
                self.input_mask,
                "a probability in [0, 1)",
            ));
        }
        if self.iw_samples > 1 && self.input_mask > 0.0 {
            return Err(Error::config(
                "model.input_mask",
                self.input_mask,
                "0 when iw_samples > 1 (masked training is for the one-sample ELBO)",
            ));
        }
        if self.iw_samples > 1 && (self.beta != 1.0 || self.beta_schedule != BetaSchedule::Constant)
        {
            return Err(Error::config(
                "model.beta",
                self.beta,
                "1 with a constant schedule when iw_samples > 1: the importance-weighted bound has no separate KL term to weight",
            ));
        }
        checks::finite("model.min_log_var", self.min_log_var)?;
        if !(self.decoder_variance.is_finite() && self.decoder_variance >= 0.0) {
            return Err(Error::config(
                "model.decoder_variance",
                self.decoder_variance,
                "a finite variance > 0, or 0 for a variance learned per dimension",
            ));
        }
        if self.decoder_variance > 0.0 && self.likelihood == Likelihood::Bernoulli {
            return Err(Error::config(
                "model.decoder_variance",
                self.decoder_variance,
                "0 with likelihood = \"bernoulli\" (a fixed variance is for the Gaussian decoder)",
            ));
        }
        Ok(())
    }

    /// The second stochastic layer's fields, and what it cannot be combined with.
    fn validate_top(&self) -> Result<()> {
        checks::at_least(
            "model.top_latent",
            self.top_latent,
            0,
            "0 (one stochastic layer) or the dimension of z₂",
        )?;
        if self.top_hidden.is_empty() || self.top_hidden.iter().any(|&h| h <= 0) {
            return Err(Error::config(
                "model.top_hidden",
                format!("{:?}", self.top_hidden),
                "a non-empty list of positive layer widths, e.g. [100, 100]",
            ));
        }
        if self.top_latent == 0 {
            return Ok(());
        }
        let refuse = |field: &str, value: String, what: &str| {
            Err(Error::config(
                field,
                value,
                format!("{what} with top_latent > 0 (the two-layer model has no analytic KL term)"),
            ))
        };
        if self.conditional {
            return refuse("model.conditional", "true".into(), "false");
        }
        if self.input_mask > 0.0 {
            return refuse("model.input_mask", self.input_mask.to_string(), "0");
        }
        if self.beta != 1.0 || self.beta_schedule != BetaSchedule::Constant {
            return refuse(
                "model.beta",
                self.beta.to_string(),
                "1 with a constant schedule",
            );
        }
        Ok(())
    }
}
