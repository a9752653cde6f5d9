use crate::adversarial::{Game, GanLoss, GP_WEIGHT};
use gm_core::checks;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// How the generator doubles the spatial size of its feature maps.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Upsample {
    /// A 4×4 transposed convolution of stride 2 (Radford et al. 2015).
    #[default]
    Transposed,
    /// "Un-pooling" (Dosovitskiy et al. 2015, *Deep Learning* §20.10.6): each value to the
    /// top-left corner of a 2×2 block of zeros, then a 5×5 convolution.
    Unpool,
}

/// `[model]` fields of `dcgan`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DcganConfig {
    /// Dimension of the noise z ~ N(0, I).
    pub latent: i64,
    /// Feature maps of the generator's first up-sampling layer's output; its input (the
    /// projected z at a quarter of the image size) has twice as many.
    pub g_channels: i64,
    /// Feature maps of the discriminator's first convolution; the second has twice as many.
    pub d_channels: i64,
    /// Up-sampling in the generator.
    pub upsample: Upsample,
    /// Negative slope of the discriminator's LeakyReLU.
    pub leak: f64,
    /// The losses (`"non-saturating"`, as Radford et al., `"minimax"`, or `"wgan-gp"`).
    pub loss: GanLoss,
    /// Discriminator updates per generator update.
    pub d_steps: i64,
    /// The generator's learning rate over the discriminator's (the scheduled one).
    pub generator_lr_scale: f64,
    /// λ of the gradient penalty when `loss = "wgan-gp"` (the critic then has no batch norm).
    pub gp_weight: f64,
}

impl Default for DcganConfig {
    fn default() -> Self {
        DcganConfig {
            latent: 100,
            g_channels: 64,
            d_channels: 64,
            upsample: Upsample::Transposed,
            leak: 0.2,
            loss: GanLoss::NonSaturating,
            d_steps: 1,
            generator_lr_scale: 1.0,
            gp_weight: GP_WEIGHT,
        }
    }
}

impl DcganConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        checks::at_least("model.latent", self.latent, 1, "a positive noise dimension")?;
        let maps = "a positive number of feature maps";
        checks::at_least("model.g_channels", self.g_channels, 1, maps)?;
        checks::at_least("model.d_channels", self.d_channels, 1, maps)?;
        checks::in_range("model.leak", self.leak, 0.0..=1.0, "a slope in [0, 1]")?;
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

/// The `[C, H, W]` of an image dataset whose height and width the networks can take: both
/// positive multiples of `multiple` (the generator doubles a `H/multiple × W/multiple` map).
pub(crate) fn image_shape(
    model: &str,
    shape: &[i64],
    name: &str,
    multiple: i64,
) -> Result<[i64; 3]> {
    match *shape {
        [c, h, w] if c > 0 && h > 0 && w > 0 && h % multiple == 0 && w % multiple == 0 => {
            Ok([c, h, w])
        }
        _ => Err(Error::config(
            "data.dataset",
            format!("{name} (example shape {shape:?})"),
            format!(
                "images [C, H, W] with H and W positive multiples of {multiple} for {model} \
                 (vector data and other sizes are not accepted)"
            ),
        )),
    }
}
