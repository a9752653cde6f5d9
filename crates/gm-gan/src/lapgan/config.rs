use crate::adversarial::{Game, GanLoss, GP_WEIGHT};
use crate::gan::GanConfig;
use gm_core::checks;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Most pyramid levels a LAPGAN may have (each level is a GAN with two stores).
pub const MAX_LEVELS: i64 = 4;

/// `[model]` fields of `lapgan`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LapganConfig {
    /// Pyramid levels (3: 7 → 14 → 28 on MNIST); height and width must be multiples of
    /// 2^(levels − 1).
    pub levels: i64,
    /// Dimension of the coarsest level's noise.
    pub coarse_latent: i64,
    /// Hidden widths of the coarsest level's MLP generator and discriminator.
    pub coarse_hidden: Vec<i64>,
    /// Feature maps of the finer levels' hidden convolutions (generator and discriminator).
    pub channels: Vec<i64>,
    /// Kernel size of the finer levels' convolutions (odd: "same" padding).
    pub kernel: i64,
    /// The generators' loss.
    pub loss: GanLoss,
    /// Discriminator updates per generator update, at every level.
    pub d_steps: i64,
    /// The generators' learning rate over the discriminators'.
    pub generator_lr_scale: f64,
}

impl Default for LapganConfig {
    fn default() -> Self {
        LapganConfig {
            levels: 3,
            coarse_latent: 100,
            coarse_hidden: vec![512, 512],
            channels: vec![32, 32],
            kernel: 3,
            loss: GanLoss::NonSaturating,
            d_steps: 1,
            generator_lr_scale: 1.0,
        }
    }
}

fn widths(field: &str, w: &[i64], example: &str) -> Result<()> {
    if w.is_empty() || w.iter().any(|&h| h <= 0) {
        return Err(Error::config(
            field,
            format!("{w:?}"),
            format!("a non-empty list of positive sizes, e.g. {example}"),
        ));
    }
    Ok(())
}

impl LapganConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        checks::in_range(
            "model.levels",
            self.levels,
            2..=MAX_LEVELS,
            format!("2 to {MAX_LEVELS} pyramid levels"),
        )?;
        checks::at_least(
            "model.coarse_latent",
            self.coarse_latent,
            1,
            "a positive integer",
        )?;
        widths("model.coarse_hidden", &self.coarse_hidden, "[512, 512]")?;
        widths("model.channels", &self.channels, "[32, 32]")?;
        if self.kernel < 1 || self.kernel % 2 == 0 {
            return Err(Error::config(
                "model.kernel",
                self.kernel,
                "an odd kernel size ≥ 1",
            ));
        }
        self.game().map(|_| ())
    }

    /// The game every level plays (an error naming a bad field).
    pub fn game(&self) -> Result<Game> {
        if self.loss.is_critic() {
            return Err(Error::config(
                "model.loss",
                "\"wgan-gp\"",
                "\"non-saturating\" or \"minimax\": lapgan's levels play the classifier \
                 game only (wgan-gp is for gan, cgan and dcgan)",
            ));
        }
        Game::checked(self.loss, self.d_steps, self.generator_lr_scale, GP_WEIGHT)
    }

    /// The MLP GAN settings of the coarsest level.
    pub(crate) fn coarse(&self) -> GanConfig {
        GanConfig {
            latent: self.coarse_latent,
            generator_hidden: self.coarse_hidden.clone(),
            discriminator_hidden: self.coarse_hidden.clone(),
            loss: self.loss,
            d_steps: self.d_steps,
            generator_lr_scale: self.generator_lr_scale,
            ..GanConfig::default()
        }
    }
}
