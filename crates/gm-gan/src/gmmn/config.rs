pub use crate::output::Output;
use gm_core::checks;
use gm_core::nets::Activation;
use gm_core::{Error, Result};
use gm_eval::mmd::{check_bandwidths, Estimator};
use serde::{Deserialize, Serialize};

/// The statistic a GMMN minimises between a generated batch and a data batch.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MmdLoss {
    /// √MMD²_b, the square root of the biased estimate (Li et al. 2015).
    #[default]
    SqrtBiased,
    /// MMD²_b.
    Biased,
    /// MMD²_u, the unbiased estimate (can be negative; needs batches of ≥ 2).
    Unbiased,
}

impl MmdLoss {
    /// The gm-eval estimator the loss is built on.
    pub fn estimator(self) -> Estimator {
        match self {
            MmdLoss::Unbiased => Estimator::Unbiased,
            _ => Estimator::Biased,
        }
    }
}

/// `[model]` fields of `gmmn` (and the `[model.gmmn]` table of `gmmn-ae`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GmmnConfig {
    /// Dimension of the uniform noise z ~ U(−1, 1)^d fed to the generator.
    pub noise: i64,
    /// Widths of the generator's hidden layers.
    pub hidden: Vec<i64>,
    /// Hidden non-linearity.
    pub activation: Activation,
    /// Output non-linearity.
    pub output: Output,
    /// Gaussian-kernel bandwidths σ of k(a, b) = Σ_σ exp(−‖a − b‖² / 2σ²).
    pub bandwidths: Vec<f64>,
    /// The minimised statistic.
    pub loss: MmdLoss,
    /// Generated samples per training step (compared with the data batch).
    pub samples: i64,
}

impl Default for GmmnConfig {
    /// Li et al. 2015's MNIST generator: 10-64-256-256-1024-D, ReLU, σ ∈ {2, 5, … 80}.
    fn default() -> Self {
        GmmnConfig {
            noise: 10,
            hidden: vec![64, 256, 256, 1024],
            activation: Activation::Relu,
            output: Output::Auto,
            bandwidths: vec![2.0, 5.0, 10.0, 20.0, 40.0, 80.0],
            loss: MmdLoss::SqrtBiased,
            samples: 1000,
        }
    }
}

/// A non-empty list of positive layer widths, else an error naming `field`.
pub(crate) fn check_widths(field: &str, widths: &[i64]) -> Result<()> {
    if widths.is_empty() || widths.iter().any(|&h| h <= 0) {
        return Err(Error::config(
            field,
            format!("{widths:?}"),
            "a non-empty list of positive layer widths, e.g. [64, 256]",
        ));
    }
    Ok(())
}

impl GmmnConfig {
    /// Checks every field; `scope` prefixes the field names (`model` or `model.gmmn`).
    pub(crate) fn validate(&self, scope: &str) -> Result<()> {
        let f = |name: &str| format!("{scope}.{name}");
        checks::at_least(&f("noise"), self.noise, 1, "a positive noise dimension")?;
        check_widths(&f("hidden"), &self.hidden)?;
        check_bandwidths(&f("bandwidths"), &self.bandwidths)?;
        let min = if self.loss == MmdLoss::Unbiased { 2 } else { 1 };
        checks::at_least(
            &f("samples"),
            self.samples,
            min,
            format!(
                "at least {min} generated samples per step for the {:?} loss",
                self.loss
            ),
        )
    }
}

/// `[model]` fields of `gmmn-ae`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GmmnAeConfig {
    /// Widths of the encoder's hidden layers (the decoder mirrors them).
    pub ae_hidden: Vec<i64>,
    /// Dimension of the sigmoid code layer.
    pub code: i64,
    /// Hidden non-linearity of the autoencoder.
    pub ae_activation: Activation,
    /// Dropout rate on the codes during autoencoder training (0: none).
    pub code_dropout: f64,
    /// Phase 1: this many autoencoder updates; every later step trains the GMMN on codes.
    pub ae_steps: i64,
    /// The GMMN trained on the codes (`[model.gmmn]`).
    pub gmmn: GmmnConfig,
}

impl Default for GmmnAeConfig {
    /// Li et al. 2015's MNIST GMMN+AE sizes: a 784-1024-32 sigmoid autoencoder and a GMMN
    /// 10-64-256-256-1024-32. The bandwidths {0.5, 1, 2, 4} for codes in (0, 1)³² are this
    /// project's choice, not the paper's.
    fn default() -> Self {
        GmmnAeConfig {
            ae_hidden: vec![1024],
            code: 32,
            ae_activation: Activation::Sigmoid,
            code_dropout: 0.1,
            ae_steps: 10_000,
            gmmn: GmmnConfig {
                bandwidths: vec![0.5, 1.0, 2.0, 4.0],
                ..GmmnConfig::default()
            },
        }
    }
}

impl GmmnAeConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        check_widths("model.ae_hidden", &self.ae_hidden)?;
        checks::at_least("model.code", self.code, 1, "a positive code dimension")?;
        checks::in_range(
            "model.code_dropout",
            self.code_dropout,
            0.0..=0.99,
            "a dropout rate in [0, 0.99]",
        )?;
        checks::at_least(
            "model.ae_steps",
            self.ae_steps,
            1,
            "a positive number of steps",
        )?;
        self.gmmn.validate("model.gmmn")
    }
}
