//! Noise-prediction networks ε_θ(x_t, t): an MLP for vectors and a small U-Net for images,
//! both told t through a sinusoidal embedding (Vaswani et al. 2017, as Ho et al. 2020) and
//! a two-layer MLP. Layers are initialised as PyTorch's (±1/√fan_in, weights and biases);
//! each net ends in a zero-initialised layer, so ε_θ starts at 0.
//!
//! The U-Net has one level per entry of `channels`, resolution halved between levels
//! (28 → 14 → 7 on MNIST); a residual block per level on the way down and on the way up
//! (the skip concatenated), two around an optional self-attention block in the middle.
//! Residual blocks: GroupNorm, SiLU, 3×3 convolution, plus a projection of the time
//! embedding, GroupNorm, SiLU, dropout, 3×3 convolution, and a 1×1 shortcut when the
//! channel count changes.

use crate::gaussian::Denoiser;
use gm_core::nets::{torch_conv2d, torch_linear};
use gm_core::{Error, Result};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Groups of every GroupNorm (channel counts must be multiples of it).
pub const GROUPS: i64 = 8;

/// The sinusoidal embedding of timesteps `t` `[B]` in `dim` (even) features.
pub fn sinusoidal(t: &Tensor, dim: i64) -> Tensor {
    let half = dim / 2;
    let freqs =
        (Tensor::arange(half, (Kind::Float, t.device())) * (-(10_000f64.ln()) / half as f64)).exp();
    let args = t.to_kind(Kind::Float).unsqueeze(1) * freqs.unsqueeze(0);
    Tensor::cat(&[args.sin(), args.cos()], 1)
}

/// Timestep embedding: sinusoidal features through Linear → SiLU → Linear.
#[derive(Debug)]
struct TimeEmbedding {
    dim: i64,
    l1: nn::Linear,
    l2: nn::Linear,
}

impl TimeEmbedding {
    fn new(p: &nn::Path, dim: i64) -> Self {
        TimeEmbedding {
            dim,
            l1: torch_linear(p / "t1", dim, dim),
            l2: torch_linear(p / "t2", dim, dim),
        }
    }

    fn forward(&self, t: &Tensor, kind: Kind) -> Tensor {
        let e = sinusoidal(t, self.dim).to_kind(kind);
        self.l2.forward(&self.l1.forward(&e).silu())
    }
}

fn zero_linear(p: nn::Path, i: i64, o: i64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: nn::Init::Const(0.0),
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    nn::linear(p, i, o, cfg)
}

/// ε_θ for vectors: h_0 = x, h_l = SiLU(W_l h_{l−1} + V_l e(t)), ε = W_out h_L.
#[derive(Debug)]
pub struct EpsMlp {
    factor: i64,
    time: TimeEmbedding,
    layers: Vec<(nn::Linear, nn::Linear)>,
    out: nn::Linear,
}

impl EpsMlp {
    /// Hidden widths `hidden` (non-empty) on `dim`-dimensional data, `factor` outputs per
    /// input (2: noise and variance).
    pub fn new(p: &nn::Path, dim: i64, hidden: &[i64], factor: i64) -> Self {
        let temb = 2 * ((hidden[0] + 1) / 2);
        let mut layers = Vec::new();
        let mut prev = dim;
        for (i, &h) in hidden.iter().enumerate() {
            let l = torch_linear(p / format!("fc{}", i + 1), prev, h);
            let v = torch_linear(p / format!("temb{}", i + 1), temb, h);
            layers.push((l, v));
            prev = h;
        }
        EpsMlp {
            factor,
            time: TimeEmbedding::new(&(p / "time"), temb),
            layers,
            out: zero_linear(p / "out", prev, factor * dim),
        }
    }
}

/// Flattens examples of any shape; the output has the input's shape, its dimension 1
/// `factor` times as large.
impl Denoiser for EpsMlp {
    fn predict(&self, x: &Tensor, t: &Tensor, _train: bool) -> Tensor {
        let e = self.time.forward(t, x.kind());
        let mut h = x.flatten(1, -1);
        for (l, v) in &self.layers {
            h = (l.forward(&h) + v.forward(&e)).silu();
        }
        let mut shape = x.size();
        shape[1] *= self.factor;
        self.out.forward(&h).view(shape.as_slice())
    }
}

/// Which network a diffusion model uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetKind {
    /// A U-Net on images, an MLP on vectors.
    #[default]
    Auto,
    /// The MLP (images flattened).
    Mlp,
    /// The U-Net (images only).
    Unet,
}

/// The sizes a diffusion model's network is built from.
#[derive(Clone, Copy, Debug)]
pub struct NetSpec<'a> {
    /// MLP or U-Net.
    pub kind: NetKind,
    /// MLP hidden widths.
    pub hidden: &'a [i64],
    /// U-Net channels per level.
    pub channels: &'a [i64],
    /// U-Net self-attention at the lowest resolution.
    pub attention: bool,
    /// U-Net dropout.
    pub dropout: f64,
    /// Outputs per input entry (1; 2 with a learned variance).
    pub factor: i64,
}

/// The network of `spec` for examples of `shape`, under `p`; a U-Net asked for on vectors
/// is a config error naming `model.net`.
pub fn build_net(p: &nn::Path, spec: NetSpec<'_>, shape: &[i64]) -> Result<Box<dyn Denoiser>> {
    let image = shape.len() == 3;
    match (spec.kind, image) {
        (NetKind::Mlp, _) | (NetKind::Auto, false) => Ok(Box::new(EpsMlp::new(
            p,
            shape.iter().product(),
            spec.hidden,
            spec.factor,
        ))),
        (_, true) => Ok(Box::new(UNet::new(
            p,
            shape,
            spec.channels,
            spec.attention,
            spec.dropout,
            spec.factor,
        )?)),
        (NetKind::Unet, false) => Err(Error::config(
            "model.net",
            "unet",
            format!("\"mlp\" or \"auto\": the data are vectors {shape:?}, not images"),
        )),
    }
}

fn conv(p: nn::Path, i: i64, o: i64, k: i64, stride: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding: k / 2,
        ..Default::default()
    };
    torch_conv2d(p, i, o, k, cfg)
}

fn norm(p: nn::Path, c: i64) -> nn::GroupNorm {
    nn::group_norm(p, GROUPS, c, Default::default())
}

/// A residual block with the time embedding added between its two convolutions.
#[derive(Debug)]
struct ResBlock {
    n1: nn::GroupNorm,
    c1: nn::Conv2D,
    temb: nn::Linear,
    n2: nn::GroupNorm,
    c2: nn::Conv2D,
    skip: Option<nn::Conv2D>,
    dropout: f64,
}

impl ResBlock {
    fn new(p: &nn::Path, i: i64, o: i64, temb: i64, dropout: f64) -> Self {
        ResBlock {
            n1: norm(p / "norm1", i),
            c1: conv(p / "conv1", i, o, 3, 1),
            temb: torch_linear(p / "temb", temb, o),
            n2: norm(p / "norm2", o),
            c2: conv(p / "conv2", o, o, 3, 1),
            skip: (i != o).then(|| conv(p / "skip", i, o, 1, 1)),
            dropout,
        }
    }

    fn forward(&self, x: &Tensor, e: &Tensor, train: bool) -> Tensor {
        let h = self.c1.forward(&self.n1.forward(x).silu());
        let h = h + self.temb.forward(&e.silu()).unsqueeze(-1).unsqueeze(-1);
        let h = self.n2.forward(&h).silu().dropout(self.dropout, train);
        let h = self.c2.forward(&h);
        match &self.skip {
            Some(s) => s.forward(x) + h,
            None => x + h,
        }
    }
}

/// Single-head self-attention over the pixels of a feature map, residual.
#[derive(Debug)]
struct Attention {
    norm: nn::GroupNorm,
    qkv: nn::Conv2D,
    out: nn::Conv2D,
}

impl Attention {
    fn new(p: &nn::Path, c: i64) -> Self {
        Attention {
            norm: norm(p / "norm", c),
            qkv: conv(p / "qkv", c, 3 * c, 1, 1),
            out: conv(p / "out", c, c, 1, 1),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, c, h, w) = x.size4().expect("a feature map");
        let qkv = self
            .qkv
            .forward(&self.norm.forward(x))
            .view([b, 3, c, h * w]);
        let (q, k, v) = (qkv.select(1, 0), qkv.select(1, 1), qkv.select(1, 2));
        let att = (q.transpose(1, 2).matmul(&k) / (c as f64).sqrt()).softmax(-1, x.kind());
        let o = v.matmul(&att.transpose(1, 2)).view([b, c, h, w]);
        x + self.out.forward(&o)
    }
}

/// The U-Net ε_θ for images `[B, C, H, W]`.
#[derive(Debug)]
pub struct UNet {
    time: TimeEmbedding,
    conv_in: nn::Conv2D,
    down: Vec<ResBlock>,
    downsample: Vec<nn::Conv2D>,
    mid: (ResBlock, Option<Attention>, ResBlock),
    up: Vec<ResBlock>,
    upsample: Vec<nn::Conv2D>,
    norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
}

impl UNet {
    /// `channels` per level (multiples of [`GROUPS`]) for images of `shape` `[C, H, W]`
    /// whose sides are multiples of 2^(levels − 1); `factor` · C output channels.
    pub fn new(
        p: &nn::Path,
        shape: &[i64],
        channels: &[i64],
        attention: bool,
        dropout: f64,
        factor: i64,
    ) -> Result<Self> {
        check_unet(shape, channels)?;
        let (c_in, levels) = (shape[0], channels.len());
        let temb = 4 * channels[0];
        let mut down = Vec::new();
        let mut prev = channels[0];
        for (l, &c) in channels.iter().enumerate() {
            down.push(ResBlock::new(
                &(p / format!("down{l}")),
                prev,
                c,
                temb,
                dropout,
            ));
            prev = c;
        }
        let downsample = (0..levels - 1)
            .map(|l| conv(p / format!("downsample{l}"), channels[l], channels[l], 3, 2))
            .collect();
        let top = channels[levels - 1];
        let mid = (
            ResBlock::new(&(p / "mid1"), top, top, temb, dropout),
            attention.then(|| Attention::new(&(p / "attention"), top)),
            ResBlock::new(&(p / "mid2"), top, top, temb, dropout),
        );
        let up = (0..levels)
            .map(|l| {
                let from = if l + 1 == levels {
                    top
                } else {
                    channels[l + 1]
                };
                ResBlock::new(
                    &(p / format!("up{l}")),
                    from + channels[l],
                    channels[l],
                    temb,
                    dropout,
                )
            })
            .collect();
        let upsample = (1..levels)
            .map(|l| conv(p / format!("upsample{l}"), channels[l], channels[l], 3, 1))
            .collect();
        let zero = nn::ConvConfig {
            padding: 1,
            ws_init: nn::Init::Const(0.0),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        Ok(UNet {
            time: TimeEmbedding::new(&(p / "time"), temb),
            conv_in: conv(p / "conv_in", c_in, channels[0], 3, 1),
            down,
            downsample,
            mid,
            up,
            upsample,
            norm_out: norm(p / "norm_out", channels[0]),
            conv_out: nn::conv2d(p / "conv_out", channels[0], factor * c_in, 3, zero),
        })
    }
}

/// A config error unless `channels` suit a U-Net on images of `shape`.
pub fn check_unet(shape: &[i64], channels: &[i64]) -> Result<()> {
    check_channels(channels)?;
    let f = 1i64 << (channels.len() - 1);
    if shape.len() != 3 || shape[1] % f != 0 || shape[2] % f != 0 {
        return Err(Error::config(
            "model.channels",
            format!("{channels:?}"),
            format!("at most as many levels as halvings of the image sides: {shape:?} must be divisible by {f}"),
        ));
    }
    Ok(())
}

/// A config error unless `channels` is a non-empty list of positive multiples of [`GROUPS`].
pub fn check_channels(channels: &[i64]) -> Result<()> {
    if channels.is_empty() || channels.iter().any(|c| *c <= 0 || c % GROUPS != 0) {
        return Err(Error::config(
            "model.channels",
            format!("{channels:?}"),
            format!("a non-empty list of positive multiples of {GROUPS} (GroupNorm groups)"),
        ));
    }
    Ok(())
}

impl Denoiser for UNet {
    fn predict(&self, x: &Tensor, t: &Tensor, train: bool) -> Tensor {
        let e = self.time.forward(t, x.kind());
        let levels = self.down.len();
        let mut h = self.conv_in.forward(x);
        let mut skips = Vec::with_capacity(levels);
        for l in 0..levels {
            h = self.down[l].forward(&h, &e, train);
            skips.push(h.shallow_clone());
            if l + 1 < levels {
                h = self.downsample[l].forward(&h);
            }
        }
        h = self.mid.0.forward(&h, &e, train);
        if let Some(a) = &self.mid.1 {
            h = a.forward(&h);
        }
        h = self.mid.2.forward(&h, &e, train);
        for l in (0..levels).rev() {
            h = self.up[l].forward(&Tensor::cat(&[&h, &skips[l]], 1), &e, train);
            if l > 0 {
                let (_, _, hh, ww) = h.size4().expect("a feature map");
                let big = h.upsample_nearest2d([2 * hh, 2 * ww], None, None);
                h = self.upsample[l - 1].forward(&big);
            }
        }
        self.conv_out.forward(&self.norm_out.forward(&h).silu())
    }
}
