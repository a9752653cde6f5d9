//! The networks of LAPGAN's finer levels (Denton et al. 2015): convolutional, conditioned on
//! the up-sampled coarser image, which enters as extra input channels; the generator's noise
//! is one more channel, a plane of N(0, 1) values.

use crate::adversarial;
use gm_core::nets::{Activation, ConvStack};
use tch::nn::{self, Module};
use tch::Tensor;

/// `[B, C, h, w]` condition + noise plane → residual `[B, C, h, w]` in (−1, 1): "same"
/// convolutions with ReLU, then a convolution to `C` channels and tanh.
#[derive(Debug)]
pub struct ResidualGenerator {
    hidden: ConvStack,
    out: nn::Conv2D,
    /// `[h, w]` of this level.
    size: [i64; 2],
}

impl ResidualGenerator {
    /// Layers under `path` (`conv1 …`, `out`) for `[c, h, w]` images.
    pub fn new(path: &nn::Path, image: [i64; 3], channels: &[i64], k: i64) -> Self {
        let [c, h, w] = image;
        let hidden = ConvStack::new(path, "conv", c + 1, channels, k);
        let last = *channels.last().expect("validated: non-empty");
        let cfg = nn::ConvConfig {
            padding: k / 2,
            ..Default::default()
        };
        ResidualGenerator {
            hidden,
            out: nn::conv2d(path / "out", last, c, k, cfg),
            size: [h, w],
        }
    }

    /// Dimension of the noise (one plane).
    pub fn latent(&self) -> i64 {
        self.size[0] * self.size[1]
    }
}

impl adversarial::Generator for ResidualGenerator {
    /// `z` `[B, h·w]` is the noise plane; `y` the up-sampled coarser image.
    fn forward(&self, z: &Tensor, y: Option<&Tensor>, _train: bool) -> Tensor {
        let cond = y.expect("a LAPGAN level is conditioned on the coarser image");
        let noise = z.view([-1, 1, self.size[0], self.size[1]]);
        let h = self
            .hidden
            .forward(&Tensor::cat(&[cond, &noise], 1), Activation::Relu, 1);
        self.out.forward(&h).tanh()
    }
}

/// Residual `[B, C, h, w]` and condition → logit: "same" convolutions with LeakyReLU over
/// both, then a linear layer.
#[derive(Debug)]
pub struct ResidualDiscriminator {
    hidden: ConvStack,
    head: nn::Linear,
}

impl ResidualDiscriminator {
    /// Layers under `path` (`conv1 …`, `head`) for `[c, h, w]` images.
    pub fn new(path: &nn::Path, image: [i64; 3], channels: &[i64], k: i64) -> Self {
        let [c, h, w] = image;
        let last = *channels.last().expect("validated: non-empty");
        ResidualDiscriminator {
            hidden: ConvStack::new(path, "conv", 2 * c, channels, k),
            head: nn::linear(path / "head", last * h * w, 1, Default::default()),
        }
    }
}

impl adversarial::Discriminator for ResidualDiscriminator {
    fn forward(&self, x: &Tensor, y: Option<&Tensor>, _train: bool) -> Tensor {
        let cond = y.expect("a LAPGAN level is conditioned on the coarser image");
        let h = self
            .hidden
            .forward(&Tensor::cat(&[x, cond], 1), Activation::LeakyRelu, 1);
        self.head.forward(&h.flatten(1, -1)).view([-1])
    }
}
