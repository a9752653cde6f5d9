//! The DCGAN generator and discriminator (Radford et al. 2015, adapted to 28×28): strided
//! and transposed convolutions instead of pooling, batch norm in both players except the
//! generator's output and the discriminator's input layer, ReLU in the generator, LeakyReLU
//! in the discriminator, N(0, 0.02²) initial weights.

use super::config::{DcganConfig, Upsample};
use crate::adversarial;
use tch::nn::{self, Init, Module, ModuleT};
use tch::Tensor;

/// The initialisation of Radford et al.: weights N(0, 0.02²).
const W_INIT: Init = Init::Randn {
    mean: 0.0,
    stdev: 0.02,
};

/// Batch norm with scales N(1, 0.02²) and zero shifts (as pytorch/examples' dcgan).
pub(crate) fn batch_norm(path: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(
        path,
        c,
        nn::BatchNormConfig {
            ws_init: Init::Randn {
                mean: 1.0,
                stdev: 0.02,
            },
            ..Default::default()
        },
    )
}

/// A 4×4 convolution of stride 2 and padding 1: halves an even height and width.
fn down(path: nn::Path, cin: i64, cout: i64, bias: bool) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride: 2,
        padding: 1,
        bias,
        ws_init: W_INIT,
        ..Default::default()
    };
    nn::conv2d(path, cin, cout, 4, cfg)
}

/// "Un-pooling" by 2 (Dosovitskiy et al. 2015): every value of `x` `[B, C, h, w]` goes to
/// the top-left corner of a 2×2 block of zeros, giving `[B, C, 2h, 2w]`.
pub fn unpool2(x: &Tensor) -> Tensor {
    let (b, c, h, w) = x.size4().expect("a [B, C, H, W] input");
    x.reshape([b, c, h, 1, w, 1])
        .constant_pad_nd([0, 1, 0, 0, 0, 1])
        .reshape([b, c, 2 * h, 2 * w])
}

/// A layer that doubles height and width.
#[derive(Debug)]
enum Up {
    Transposed(nn::ConvTranspose2D),
    Unpool(nn::Conv2D),
}

impl Up {
    fn new(path: nn::Path, cin: i64, cout: i64, kind: Upsample, bias: bool) -> Up {
        match kind {
            Upsample::Transposed => {
                let cfg = nn::ConvTransposeConfig {
                    stride: 2,
                    padding: 1,
                    bias,
                    ws_init: W_INIT,
                    ..Default::default()
                };
                Up::Transposed(nn::conv_transpose2d(path, cin, cout, 4, cfg))
            }
            Upsample::Unpool => {
                let cfg = nn::ConvConfig {
                    padding: 2,
                    bias,
                    ws_init: W_INIT,
                    ..Default::default()
                };
                Up::Unpool(nn::conv2d(path, cin, cout, 5, cfg))
            }
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Up::Transposed(t) => t.forward(x),
            Up::Unpool(c) => c.forward(&unpool2(x)),
        }
    }
}

/// z `[B, latent]` → images `[B, C, H, W]` in (0, 1): a linear projection to
/// `[2·g_channels, H/4, W/4]`, batch norm, ReLU; up-sampling to `[g_channels, H/2, W/2]`,
/// batch norm, ReLU; up-sampling to `[C, H, W]`, sigmoid.
#[derive(Debug)]
pub struct Generator {
    fc: nn::Linear,
    bn0: nn::BatchNorm,
    up1: Up,
    bn1: nn::BatchNorm,
    up2: Up,
    /// `[2·g_channels, H/4, W/4]`.
    base: [i64; 3],
}

impl Generator {
    /// The generator's layers under `path` (`fc`, `bn0`, `up1`, `bn1`, `up2`).
    pub fn new(path: &nn::Path, cfg: &DcganConfig, image: [i64; 3]) -> Generator {
        let [c, h, w] = image;
        let base = [2 * cfg.g_channels, h / 4, w / 4];
        let lin = nn::LinearConfig {
            ws_init: W_INIT,
            bias: false,
            ..Default::default()
        };
        Generator {
            fc: nn::linear(path / "fc", cfg.latent, base.iter().product(), lin),
            bn0: batch_norm(path / "bn0", base[0]),
            up1: Up::new(path / "up1", base[0], cfg.g_channels, cfg.upsample, false),
            bn1: batch_norm(path / "bn1", cfg.g_channels),
            up2: Up::new(path / "up2", cfg.g_channels, c, cfg.upsample, true),
            base,
        }
    }

    /// Images for noise `z`; batch norm uses batch statistics when `train`, running ones
    /// otherwise.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Tensor {
        let [c, h, w] = self.base;
        let h0 = self.fc.forward(z).view([-1, c, h, w]);
        let h0 = self.bn0.forward_t(&h0, train).relu();
        let h1 = self.bn1.forward_t(&self.up1.forward(&h0), train).relu();
        self.up2.forward(&h1).sigmoid()
    }
}

/// Images `[B, C, H, W]` → logits `[B]`: a strided convolution to `[d_channels, H/2, W/2]`
/// and LeakyReLU (no batch norm on the input layer); a strided convolution to
/// `[2·d_channels, H/4, W/4]`, batch norm, LeakyReLU; a linear layer to one logit.
///
/// As a WGAN-GP critic (`loss = "wgan-gp"`) the batch norm is left out (the second
/// convolution gets a bias instead): batch norm makes each score depend on the other
/// examples of the batch, while the gradient penalty constrains the gradient of one
/// example's score with respect to that example alone (Gulrajani et al. 2017, §4).
#[derive(Debug)]
pub struct Discriminator {
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    bn2: Option<nn::BatchNorm>,
    fc: nn::Linear,
    /// The LeakyReLU slope as a `[1]` tensor (`prelu`'s weight: one fused kernel).
    slope: Tensor,
}

impl Discriminator {
    /// The discriminator's layers under `path` (`conv1`, `conv2`, `bn2` unless it is a
    /// WGAN-GP critic, `fc`).
    pub fn new(path: &nn::Path, cfg: &DcganConfig, image: [i64; 3]) -> Discriminator {
        let [c, h, w] = image;
        let d = cfg.d_channels;
        let lin = nn::LinearConfig {
            ws_init: W_INIT,
            ..Default::default()
        };
        let norm = !cfg.loss.is_critic();
        Discriminator {
            conv1: down(path / "conv1", c, d, true),
            conv2: down(path / "conv2", d, 2 * d, !norm),
            bn2: norm.then(|| batch_norm(path / "bn2", 2 * d)),
            fc: nn::linear(path / "fc", 2 * d * (h / 4) * (w / 4), 1, lin),
            slope: Tensor::from_slice(&[cfg.leak as f32]).to_device(path.device()),
        }
    }

    /// The logit of "real" for each image of `x`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h1 = self.conv1.forward(x).prelu(&self.slope);
        let mut h2 = self.conv2.forward(&h1);
        if let Some(bn) = &self.bn2 {
            h2 = bn.forward_t(&h2, train);
        }
        let h2 = h2.prelu(&self.slope);
        self.fc.forward(&h2.flatten(1, -1)).view([-1])
    }
}

impl adversarial::Generator for Generator {
    fn forward(&self, z: &Tensor, _y: Option<&Tensor>, train: bool) -> Tensor {
        self.forward_t(z, train)
    }
}

impl adversarial::Discriminator for Discriminator {
    fn forward(&self, x: &Tensor, _y: Option<&Tensor>, train: bool) -> Tensor {
        self.forward_t(x, train)
    }
}
