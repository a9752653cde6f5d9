//! DCGAN (Radford et al. 2015; *Deep Learning* §20.10.4, §20.10.6): a GAN whose players are
//! convolutional networks, with the paper's architecture rules adapted to 28×28 images.
//!
//! - Generator: z ~ N(0, I) → linear → `[2c, H/4, W/4]` → batch norm, ReLU → up-sampling to
//!   `[c, H/2, W/2]` → batch norm, ReLU → up-sampling to `[C, H, W]` → sigmoid (images in
//!   (0, 1)). Up-sampling is a 4×4 transposed convolution of stride 2 (`upsample =
//!   "transposed"`), or the "un-pooling" of Dosovitskiy et al. (2015) that §20.10.6 describes
//!   (`upsample = "unpool"`): every value copied to the top-left corner of a 2×2 block of
//!   zeros (the inverse of 2×2 max-pooling when the maximum is assumed there and the rest
//!   zero), followed by a 5×5 convolution that learns to fill the block in.
//! - Discriminator: 4×4 convolutions of stride 2 (no pooling) `[C, H, W]` → `[d, H/2, W/2]`
//!   → LeakyReLU(0.2) → `[2d, H/4, W/4]` → batch norm, LeakyReLU(0.2) → linear → logit. No
//!   batch norm on the discriminator's input layer nor the generator's output layer.
//! - With `loss = "wgan-gp"` (beyond the chapter, [`crate::adversarial`]) the
//!   discriminator is a critic with **no batch norm** (its second convolution gets a bias):
//!   the gradient penalty is on each example's own score, which batch norm would mix with
//!   the rest of the batch.
//! - Weights N(0, 0.02²), batch-norm scales N(1, 0.02²); the paper's Adam(2e-4, β₁ 0.5) and
//!   batch 64 are in `configs/dcgan-mnist.toml`.
//!
//! Any image size whose height and width are multiples of 4 is accepted (28×28 → 7×7
//! base maps, 4×4 bars-and-stripes → 1×1); other sizes and vector data are a config error
//! naming the dataset and its shape. Batch norm uses batch statistics in training steps and
//! its running averages when sampling and evaluating, so a sample does not depend on the
//! other samples drawn with it. The game itself (losses, the two stores and optimizers,
//! fixed-noise grids, metrics) is [`crate::adversarial`]'s.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str(
//!     "[model]\nname = \"dcgan\"\ng_channels = 16\nd_channels = 16\n[data]\ndataset = \"mnist\"",
//! )?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut gan = gm_gan::dcgan::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let m = gan.train_step(&gm_core::data::Batch::inputs(&ds.train.x.narrow(0, 0, 64)))?;
//! println!("{} {}", m[0].0, m[0].1.double_value(&[]));
//! let images = gan.sample(16)?; // [16, 1, 28, 28] in (0, 1)
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;
mod nets;

pub(crate) use config::image_shape;
pub use config::{DcganConfig, Upsample};
pub use model::{build, new_dcgan};
pub use nets::{unpool2, Discriminator, Generator};

#[cfg(test)]
mod tests;
