use crate::adversarial::{Game, GanLoss, GP_WEIGHT};
pub use crate::output::Output;
use gm_core::checks;
pub use gm_core::nets::Activation;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// `[model]` fields of `gan` and `cgan`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GanConfig {
    /// Dimension of z ~ N(0, I).
    pub latent: i64,
    /// Widths of the generator's hidden layers (empty: G is affine in z).
    pub generator_hidden: Vec<i64>,
    /// Widths of the discriminator's hidden layers (empty: logistic regression).
    pub discriminator_hidden: Vec<i64>,
    /// The generator's loss.
    pub loss: GanLoss,
    /// Discriminator updates per generator update (k of Goodfellow et al. 2014's algorithm 1).
    pub d_steps: i64,
    /// Dropout probability after each hidden layer of the discriminator (§20.10.4).
    pub dropout: f64,
    /// The generator's hidden non-linearity.
    pub generator_activation: Activation,
    /// The discriminator's hidden non-linearity.
    pub discriminator_activation: Activation,
    /// The generator's output layer.
    pub output: Output,
    /// The generator's learning rate over the discriminator's (the scheduled one).
    pub generator_lr_scale: f64,
    /// λ of the gradient penalty when `loss = "wgan-gp"` (Gulrajani et al. 2017: 10).
    pub gp_weight: f64,
}

impl Default for GanConfig {
    fn default() -> Self {
        GanConfig {
            latent: 100,
            generator_hidden: vec![256, 256],
            discriminator_hidden: vec![256, 256],
            loss: GanLoss::NonSaturating,
            d_steps: 1,
            dropout: 0.0,
            generator_activation: Activation::Relu,
            discriminator_activation: Activation::LeakyRelu,
            output: Output::Auto,
            generator_lr_scale: 1.0,
            gp_weight: GP_WEIGHT,
        }
    }
}

fn widths(field: &str, w: &[i64]) -> Result<()> {
    if w.iter().any(|&h| h <= 0) {
        return Err(Error::config(
            field,
            format!("{w:?}"),
            "a list of positive layer widths, e.g. [256, 256]",
        ));
    }
    Ok(())
}

impl GanConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        checks::at_least("model.latent", self.latent, 1, "a positive integer")?;
        widths("model.generator_hidden", &self.generator_hidden)?;
        widths("model.discriminator_hidden", &self.discriminator_hidden)?;
        checks::at_least(
            "model.d_steps",
            self.d_steps,
            1,
            "at least 1 discriminator update per generator update",
        )?;
        checks::in_range(
            "model.dropout",
            self.dropout,
            0.0..=0.95,
            "a dropout probability in [0, 0.95]",
        )?;
        if self.loss == GanLoss::WganGp && self.dropout > 0.0 {
            return Err(Error::config(
                "model.dropout",
                self.dropout,
                "0 with loss = \"wgan-gp\": dropout makes the critic random, and the \
                 gradient penalty constrains a different critic at every evaluation",
            ));
        }
        self.game().map(|_| ())
    }

    /// The game these fields describe (an error naming a bad field).
    pub fn game(&self) -> Result<Game> {
        Game::checked(
            self.loss,
            self.d_steps,
            self.generator_lr_scale,
            self.gp_weight,
        )
    }
}
