use super::config::{MaskKind, RealNvpConfig};
use crate::flow::{self, Flow, FlowConfig, FlowModel, ScaledTanh};
use gm_core::model::{BuildContext, Model};
use gm_core::nets::{Activation, ConvStack, Mlp};
use gm_core::{Error, Result};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// The conditioner of a coupling: raw log-scales and shifts from the masked input.
#[derive(Debug)]
enum Conditioner {
    /// Vectors: an MLP, then a linear layer to 2D outputs.
    Mlp(Mlp, nn::Linear),
    /// Images: a conv stack, then a convolution to 2C channels.
    Conv(ConvStack, nn::Conv2D),
}

impl Conditioner {
    /// (raw log-scale, shift), each shaped like `h`.
    fn forward(&self, h: &Tensor) -> (Tensor, Tensor) {
        let out = match self {
            Conditioner::Mlp(mlp, head) => head.forward(&mlp.forward(h, Activation::Relu)),
            Conditioner::Conv(stack, head) => head.forward(&stack.forward(h, Activation::Relu, 1)),
        };
        let parts = out.chunk(2, 1);
        (parts[0].shallow_clone(), parts[1].shallow_clone())
    }
}

/// An affine coupling layer (Dinh et al. 2017): with b the mask,
/// y = b ⊙ x + (1 − b) ⊙ (x ⊙ exp(s(b ⊙ x)) + t(b ⊙ x)), log |det| = Σ (1 − b) ⊙ s.
#[derive(Debug)]
pub struct Coupling {
    /// 1 on the inputs passed through, `[1, ..shape]` (broadcast over the batch).
    mask: Tensor,
    net: Conditioner,
    scale: ScaledTanh,
}

impl Coupling {
    /// A coupling for examples shaped `shape` with `mask`; its last layer starts at zero
    /// (the layer starts as the identity).
    fn new(path: &nn::Path, cfg: &RealNvpConfig, shape: &[i64], mask: Tensor) -> Self {
        let zero = || nn::LinearConfig {
            ws_init: nn::Init::Const(0.0),
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        let (net, scale_shape) = if let [c, _, _] = *shape {
            let stack = ConvStack::new(&(path / "net"), "conv", c, &cfg.channels, cfg.kernel);
            let last = cfg.channels.last().copied().unwrap_or(c);
            let conv = nn::ConvConfig {
                padding: cfg.kernel / 2,
                ws_init: nn::Init::Const(0.0),
                bs_init: nn::Init::Const(0.0),
                ..Default::default()
            };
            let head = nn::conv2d(path / "net" / "out", last, 2 * c, cfg.kernel, conv);
            (Conditioner::Conv(stack, head), vec![1, c, 1, 1])
        } else {
            let d = shape[0];
            let mlp = Mlp::new(&(path / "net"), "fc", d, &cfg.hidden);
            let head = nn::linear(path / "net" / "out", mlp.out_dim(), 2 * d, zero());
            (Conditioner::Mlp(mlp, head), vec![1, d])
        };
        Coupling {
            mask,
            net,
            scale: ScaledTanh::new(path, &scale_shape),
        }
    }

    /// (1 − b) ⊙ s and (1 − b) ⊙ t given the passed-through part `xb` = b ⊙ x.
    fn scale_shift(&self, xb: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
        let (raw, t) = self.net.forward(xb);
        let free: Tensor = 1.0 - b;
        (self.scale.apply(&raw) * &free, t * free)
    }

    /// y and log |det ∂y/∂x| `[B]`.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let b = self.mask.to_kind(x.kind());
        let xb = x * &b;
        let (s, t) = self.scale_shift(&xb, &b);
        let y = &xb + (x - &xb) * s.exp() + t;
        let ld = s.flatten(1, -1).sum_dim_intlist(-1, false, x.kind());
        (y, ld)
    }

    /// x from y.
    pub fn inverse(&self, y: &Tensor) -> Tensor {
        let b = self.mask.to_kind(y.kind());
        let yb = y * &b;
        let (s, t) = self.scale_shift(&yb, &b);
        &yb + (y - &yb - t) * (-s).exp()
    }
}

/// The mask `[1, ..shape]` of `kind` for examples shaped `shape`, `parity` 0 or 1 choosing
/// which part passes through; an error naming `model.mask` when it does not split them.
pub fn mask(kind: MaskKind, shape: &[i64], parity: i64) -> Result<Tensor> {
    let bad = |why: String| {
        Err(Error::config(
            "model.mask",
            format!("{kind:?}").to_lowercase(),
            why,
        ))
    };
    let opts = (Kind::Float, tch::Device::Cpu);
    match (kind, shape) {
        (MaskKind::Auto | MaskKind::Halves, &[d]) => {
            if d < 2 {
                return bad(format!(
                    "a mask that splits the input: halves of {d} value(s) leave one part empty"
                ));
            }
            let first = Tensor::arange(d, opts).lt((d + 1) / 2);
            let m = if parity == 0 {
                first
            } else {
                first.logical_not()
            };
            Ok(m.to_kind(Kind::Float).view([1, d]))
        }
        (MaskKind::Auto | MaskKind::Checkerboard, &[_, h, w]) => {
            if h * w < 2 {
                return bad(format!("a mask that splits the input: {h}×{w} pixels"));
            }
            let r = Tensor::arange(h, opts).view([h, 1]);
            let c = Tensor::arange(w, opts).view([1, w]);
            let m = (r + c + parity).remainder(2.0).eq(0.0);
            Ok(m.to_kind(Kind::Float).view([1, 1, h, w]))
        }
        (MaskKind::Channel, &[c, _, _]) => {
            if c < 2 {
                return bad(format!(
                    "a mask that splits the input: a channel mask needs at least 2 channels, \
                     the input has {c} here (use \"checkerboard\", or scales > 0)"
                ));
            }
            let first = Tensor::arange(c, opts).lt(c / 2);
            let m = if parity == 0 {
                first
            } else {
                first.logical_not()
            };
            Ok(m.to_kind(Kind::Float).view([1, c, 1, 1]))
        }
        (_, &[_]) => bad("\"halves\" (or \"auto\") for vector data".into()),
        _ => bad(format!(
            "\"checkerboard\" or \"channel\" (or \"auto\") for images, data shaped {shape:?}"
        )),
    }
}

/// [B, C, H, W] → [B, 4C, H/2, W/2]: each 2×2 block to channels.
pub fn squeeze(x: &Tensor) -> Tensor {
    let s = x.size();
    let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
    x.view([b, c, h / 2, 2, w / 2, 2])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([b, 4 * c, h / 2, w / 2])
}

/// The inverse of [`squeeze`].
pub fn unsqueeze(x: &Tensor) -> Tensor {
    let s = x.size();
    let (b, c, h, w) = (s[0], s[1] / 4, s[2], s[3]);
    x.view([b, c, 2, 2, h, w])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([b, c, 2 * h, 2 * w])
}

/// One level of the multiscale architecture: checkerboard couplings, squeeze, channel
/// couplings, half the channels factored out.
#[derive(Debug)]
struct Scale {
    before: Vec<Coupling>,
    after: Vec<Coupling>,
}

/// RealNVP: multiscale levels (images), then the couplings of the last scale.
#[derive(Debug)]
pub struct RealNvp {
    scales: Vec<Scale>,
    last: Vec<Coupling>,
    /// Shape of the input of the last scale.
    last_shape: Vec<i64>,
}

/// Couplings `name0 … name{n-1}` of alternating parity on examples shaped `shape`.
fn couplings(
    path: &nn::Path,
    name: &str,
    cfg: &RealNvpConfig,
    kind: MaskKind,
    shape: &[i64],
    n: i64,
) -> Result<Vec<Coupling>> {
    (0..n)
        .map(|i| {
            let m = mask(kind, shape, i % 2)?.to_device(path.device());
            Ok(Coupling::new(&(path / format!("{name}{i}")), cfg, shape, m))
        })
        .collect()
}

impl RealNvp {
    /// The flow for examples shaped `shape` (`[D]` or `[C, H, W]`), parameters under `path`.
    pub fn new(path: &nn::Path, cfg: &RealNvpConfig, shape: &[i64]) -> Result<Self> {
        cfg.validate()?;
        let mut cur = shape.to_vec();
        let mut scales = Vec::new();
        if cfg.scales > 0 {
            let &[_, h, w] = shape else {
                return Err(Error::config(
                    "model.scales",
                    cfg.scales,
                    format!("0 for vector data (shape {shape:?}): scales squeeze images"),
                ));
            };
            let side = 1i64 << cfg.scales.min(20);
            if h % side != 0 || w % side != 0 {
                return Err(Error::config(
                    "model.scales",
                    cfg.scales,
                    format!("a number of halvings that divides the image sides {h}×{w}"),
                ));
            }
            for l in 0..cfg.scales {
                let p = path / format!("scale{l}");
                let n = cfg.per_scale;
                let before = couplings(&p, "checker", cfg, MaskKind::Checkerboard, &cur, n)?;
                cur = vec![4 * cur[0], cur[1] / 2, cur[2] / 2];
                let after = couplings(&p, "channel", cfg, MaskKind::Channel, &cur, n)?;
                cur[0] /= 2;
                scales.push(Scale { before, after });
            }
        }
        let last = couplings(
            &(path / "last"),
            "coupling",
            cfg,
            cfg.mask,
            &cur,
            cfg.layers,
        )?;
        Ok(RealNvp {
            scales,
            last,
            last_shape: cur,
        })
    }
}

/// `h` through `layers` in order, adding their log-determinants to `ld`.
fn through(layers: &[Coupling], mut h: Tensor, ld: &mut Tensor) -> Tensor {
    for c in layers {
        let (y, l) = c.forward(&h);
        *ld += l;
        h = y;
    }
    h
}

/// `h` back through `layers` in reverse.
fn back(layers: &[Coupling], h: Tensor) -> Tensor {
    layers.iter().rev().fold(h, |h, c| c.inverse(&h))
}

impl Flow for RealNvp {
    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let b = x.size()[0];
        let mut ld = Tensor::zeros([b], (x.kind(), x.device()));
        let mut h = x.shallow_clone();
        let mut codes = Vec::new();
        for s in &self.scales {
            h = squeeze(&through(&s.before, h, &mut ld));
            h = through(&s.after, h, &mut ld);
            let half = h.size()[1] / 2;
            codes.push(h.narrow(1, 0, half).reshape([b, -1]));
            h = h.narrow(1, half, half);
        }
        h = through(&self.last, h, &mut ld);
        codes.push(h.reshape([b, -1]));
        (Tensor::cat(&codes, 1), ld)
    }

    fn inverse(&self, z: &Tensor) -> Tensor {
        let b = z.size()[0];
        let mut shape = vec![b];
        shape.extend_from_slice(&self.last_shape);
        let last_len: i64 = self.last_shape.iter().product();
        let mut end = z.size()[1];
        let mut h = back(
            &self.last,
            z.narrow(1, end - last_len, last_len)
                .reshape(shape.as_slice()),
        );
        end -= last_len;
        for s in self.scales.iter().rev() {
            let hs = h.size();
            let len = hs[1] * hs[2] * hs[3];
            let out = z.narrow(1, end - len, len).reshape(hs.as_slice());
            end -= len;
            h = back(&s.after, Tensor::cat(&[out, h], 1));
            h = back(&s.before, unsqueeze(&h));
        }
        h
    }
}

/// Builds RealNVP from a run config (the `realnvp` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    Ok(Box::new(flow_model(ctx)?))
}

/// The same as its concrete type.
pub fn flow_model(ctx: &BuildContext<'_>) -> Result<FlowModel<RealNvp>> {
    flow::build_model("realnvp", ctx, RealNvp::new)
}
