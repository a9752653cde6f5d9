//! PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks"), the
//! convolutional autoregressive model that anchors the classic ones of *Deep Learning*
//! §20.10.7–10 to the modern numbers, here for binary images (one Bernoulli logit per pixel).
//!
//! p(x) = Π_p p(x_p | x_{<p}) in raster order. A `first_kernel`×`first_kernel` convolution
//! with mask A (the rows above and the pixels to the left, not the centre) is followed by
//! residual blocks whose `kernel`×`kernel` convolutions use mask B (the centre as well) and by
//! 1×1 layers, so the logit of pixel p depends on earlier pixels only: log p(x) is exact in
//! one forward pass. The stack has the known blind spot (pixels up and to the right beyond
//! the kernels' reach are never seen). Sampling is pixel by pixel, batched over images, each
//! pass on the rows up to the current one; [`PixelCnn::complete_from`] samples the rest of
//! an image given its first pixels. As `gm_core::model::Complete` it completes exactly the
//! masks whose observed pixels all precede the hidden ones in raster order (bottom-half) and
//! refuses the others (right-half, square, random), whose conditionals given later pixels
//! it does not have; the `figures` entry is the shared bottom-half completion grid.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"pixelcnn\"\nchannels = 16\nresidual_blocks = 2\n[data]\ndataset = \"bars-and-stripes\"")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut m = gm_autoregressive::pixelcnn::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let metrics = m.train_step(&gm_core::data::Batch::inputs(&ds.train.x))?;
//! println!("NLL {} nats", metrics[0].1.double_value(&[]));
//! let samples = m.sample(16)?; // [16, 1, 4, 4]
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::PixelCnnConfig;
pub use model::{build, conv_mask, MaskKind, PixelCnn};

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "pixelcnn",
        family: "gm-autoregressive",
        description: "PixelCNN (van den Oord et al. 2016): masked convolutions (A, then residual B), binary images, exact NLL in one pass",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build,
    });
}

#[cfg(test)]
mod tests;
