//! Building blocks networks are made of: hidden-unit activations, and stacks of linear and
//! convolutional layers with named parameter scopes (`{prefix}1 … {prefix}N` under a path,
//! so checkpoints name every layer the same way in every model); [`made`] holds the masks of
//! autoregressive MLPs.
//!
//! ```ignore
//! let enc = Mlp::new(&(root / "encoder"), "fc", 784, &[500, 500]); // encoder.fc1, encoder.fc2
//! let h = enc.forward(&x, Activation::Tanh);                         // [B, 500]
//! ```

use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Tensor};

pub mod made;

/// A hidden-unit non-linearity (`activation = "tanh"` in a config).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// tanh.
    #[default]
    Tanh,
    /// The logistic sigmoid.
    Sigmoid,
    /// max(0, a).
    Relu,
    /// log(1 + exp(a)).
    Softplus,
    /// max(0.2 a, a) (`"leaky_relu"`; the slope of Radford et al. 2015).
    #[serde(rename = "leaky_relu")]
    LeakyRelu,
}

impl Activation {
    /// The non-linearity applied to `a`.
    pub fn apply(self, a: &Tensor) -> Tensor {
        match self {
            Activation::Tanh => a.tanh(),
            Activation::Sigmoid => a.sigmoid(),
            Activation::Relu => a.relu(),
            Activation::Softplus => a.softplus(),
            Activation::LeakyRelu => a.maximum(&(a * 0.2)),
        }
    }
}

/// How a linear layer's parameters start (`init = "glorot"` in a config).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LayerInit {
    /// tch's default: Kaiming-uniform weights with the ReLU gain, ±√(6 / fan_in), and
    /// biases ±1/√fan_in.
    #[default]
    Kaiming,
    /// Glorot & Bengio (2010): weights ±√(6 / (fan_in + fan_out)), zero biases; the scale
    /// meant for tanh layers (Burda et al. 2015's VAEs and IWAEs start so).
    Glorot,
    /// PyTorch's `nn.Linear` ([`torch_default_init`]).
    Torch,
    /// LeCun: weights N(0, 1 / fan_in), zero biases (Kingma et al. 2014's M2 code starts so).
    Lecun,
}

impl LayerInit {
    /// A linear layer `i` → `o` under `p`, started this way.
    pub fn linear(self, p: nn::Path, i: i64, o: i64) -> nn::Linear {
        let (ws_init, bs_init) = match self {
            LayerInit::Kaiming => return nn::linear(p, i, o, Default::default()),
            LayerInit::Glorot => {
                let b = (6.0 / (i + o).max(1) as f64).sqrt();
                (nn::Init::Uniform { lo: -b, up: b }, nn::Init::Const(0.0))
            }
            LayerInit::Torch => torch_default_init(i),
            LayerInit::Lecun => {
                let stdev = (1.0 / i.max(1) as f64).sqrt();
                (nn::Init::Randn { mean: 0.0, stdev }, nn::Init::Const(0.0))
            }
        };
        let cfg = nn::LinearConfig {
            ws_init,
            bs_init: Some(bs_init),
            bias: true,
        };
        nn::linear(p, i, o, cfg)
    }
}

/// Linear layers `{prefix}1 … {prefix}N`, each followed by the activation in [`Mlp::forward`].
#[derive(Debug)]
pub struct Mlp {
    /// The layers, input side first.
    pub layers: Vec<nn::Linear>,
    out_dim: i64,
}

impl Mlp {
    /// Layers from `input` through each of `sizes` under `path` (no layer when `sizes` is
    /// empty: the stack is the identity and its output width is `input`).
    pub fn new(path: &nn::Path, prefix: &str, input: i64, sizes: &[i64]) -> Mlp {
        Mlp::with_init(path, prefix, input, sizes, LayerInit::Kaiming)
    }

    /// The same with the layers started as `init` says.
    pub fn with_init(
        path: &nn::Path,
        prefix: &str,
        input: i64,
        sizes: &[i64],
        init: LayerInit,
    ) -> Mlp {
        let mut prev = input;
        let layers = sizes
            .iter()
            .enumerate()
            .map(|(i, &h)| {
                let l = init.linear(path / format!("{prefix}{}", i + 1), prev, h);
                prev = h;
                l
            })
            .collect();
        Mlp {
            layers,
            out_dim: prev,
        }
    }

    /// The width of the last layer's output.
    pub fn out_dim(&self) -> i64 {
        self.out_dim
    }

    /// Every layer, then `act`, in turn.
    pub fn forward(&self, x: &Tensor, act: Activation) -> Tensor {
        self.layers
            .iter()
            .fold(x.shallow_clone(), |h, l| act.apply(&l.forward(&h)))
    }
}

/// Square-kernel convolutions `{prefix}1 … {prefix}N` ("same" padding for odd kernels),
/// each followed in [`ConvStack::forward`] by the activation and an optional max-pool.
#[derive(Debug)]
pub struct ConvStack {
    /// The convolutions, input side first.
    pub convs: Vec<nn::Conv2D>,
}

impl ConvStack {
    /// Convolutions from `in_channels` through each of `channels`, kernel `k`, under `path`.
    pub fn new(path: &nn::Path, prefix: &str, in_channels: i64, channels: &[i64], k: i64) -> Self {
        let cfg = nn::ConvConfig {
            padding: k / 2,
            ..Default::default()
        };
        let mut prev = in_channels;
        let convs = channels
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let l = nn::conv2d(path / format!("{prefix}{}", i + 1), prev, c, k, cfg);
                prev = c;
                l
            })
            .collect();
        ConvStack { convs }
    }

    /// Every convolution, then `act`, then a `pool × pool` max-pool when `pool > 1`.
    pub fn forward(&self, x: &Tensor, act: Activation, pool: i64) -> Tensor {
        self.convs.iter().fold(x.shallow_clone(), |h, c| {
            let h = act.apply(&c.forward(&h));
            if pool > 1 {
                h.max_pool2d_default(pool)
            } else {
                h
            }
        })
    }
}

/// 4×4 convolutions of stride 2 and padding 1 (`{prefix}1 … {prefix}N`), each halving an
/// even height and width; [`Strided::forward`] applies the activation after every one.
#[derive(Debug)]
pub struct Strided {
    /// The convolutions, input side first.
    pub convs: Vec<nn::Conv2D>,
}

/// The 4×4, stride-2, padding-1 layer shape shared by [`Strided`] and [`Upsampling`].
fn stride2() -> nn::ConvConfig {
    nn::ConvConfig {
        stride: 2,
        padding: 1,
        ..Default::default()
    }
}

impl Strided {
    /// Convolutions from `in_channels` through each of `channels`, under `path`.
    pub fn new(path: &nn::Path, prefix: &str, in_channels: i64, channels: &[i64]) -> Self {
        let mut prev = in_channels;
        let convs = channels
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let l = nn::conv2d(path / format!("{prefix}{}", i + 1), prev, c, 4, stride2());
                prev = c;
                l
            })
            .collect();
        Strided { convs }
    }

    /// `[B, C, H, W]` → `[B, C_last, H / 2^N, W / 2^N]`.
    pub fn forward(&self, x: &Tensor, act: Activation) -> Tensor {
        self.convs
            .iter()
            .fold(x.shallow_clone(), |h, c| act.apply(&c.forward(&h)))
    }
}

/// 4×4 transposed convolutions of stride 2 and padding 1 (`{prefix}1 … {prefix}N`), each
/// doubling height and width; [`Upsampling::forward`] applies the activation after every
/// one but the last (an output layer).
#[derive(Debug)]
pub struct Upsampling {
    /// The transposed convolutions, input side first.
    pub convs: Vec<nn::ConvTranspose2D>,
}

impl Upsampling {
    /// Transposed convolutions from `in_channels` through each of `channels`, under `path`.
    pub fn new(path: &nn::Path, prefix: &str, in_channels: i64, channels: &[i64]) -> Self {
        let cfg = nn::ConvTransposeConfig {
            stride: 2,
            padding: 1,
            ..Default::default()
        };
        let mut prev = in_channels;
        let convs = channels
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let l = nn::conv_transpose2d(path / format!("{prefix}{}", i + 1), prev, c, 4, cfg);
                prev = c;
                l
            })
            .collect();
        Upsampling { convs }
    }

    /// `[B, C, H, W]` → `[B, C_last, H · 2^N, W · 2^N]`, the last layer linear.
    pub fn forward(&self, x: &Tensor, act: Activation) -> Tensor {
        let last = self.convs.len().saturating_sub(1);
        self.convs
            .iter()
            .enumerate()
            .fold(x.shallow_clone(), |h, (i, c)| {
                let y = c.forward(&h);
                if i < last {
                    act.apply(&y)
                } else {
                    y
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn layer_inits_draw_on_their_ranges() {
        let _rng = crate::rng_guard::lock();
        let vs = nn::VarStore::new(Device::Cpu);
        let (i, o) = (300, 100);
        let range = |l: &nn::Linear| {
            let w = |t: &Tensor| t.abs().max().double_value(&[]);
            (w(&l.ws), l.bs.as_ref().map(w).unwrap())
        };
        let (w, b) = range(&LayerInit::Glorot.linear(vs.root() / "g", i, o));
        let glorot = (6.0 / 400.0f64).sqrt();
        assert!(w <= glorot && w > 0.99 * glorot, "glorot weights reach {w}");
        assert_eq!(b, 0.0);
        let (w, b) = range(&LayerInit::Kaiming.linear(vs.root() / "k", i, o));
        let kaiming = (6.0 / 300.0f64).sqrt();
        assert!(
            w <= kaiming && w > 0.99 * kaiming,
            "kaiming weights reach {w}"
        );
        assert!(b <= 1.0 / 300f64.sqrt() && b > 0.0);
        let (w, b) = range(&LayerInit::Torch.linear(vs.root() / "t", i, o));
        let torch = 1.0 / 300f64.sqrt();
        assert!(w <= torch && w > 0.99 * torch, "torch weights reach {w}");
        assert!(b <= torch && b > 0.9 * torch, "torch biases reach {b}");
        let l = LayerInit::Lecun.linear(vs.root() / "l", i, o);
        let sd = l.ws.std(true).double_value(&[]);
        let lecun = 1.0 / 300f64.sqrt();
        assert!((sd / lecun - 1.0).abs() < 0.02, "lecun weights' sd {sd}");
        assert!(l.ws.mean(Kind::Float).abs().double_value(&[]) < 0.01 * lecun);
        assert_eq!(range(&l).1, 0.0);
    }

    #[test]
    fn strided_stacks_halve_and_double_the_image_and_name_their_layers() {
        let _rng = crate::rng_guard::lock();
        let vs = nn::VarStore::new(Device::Cpu);
        let down = Strided::new(&(vs.root() / "enc"), "conv", 1, &[4, 8]);
        let up = Upsampling::new(&(vs.root() / "dec"), "deconv", 8, &[4, 2]);
        let x = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu));
        let h = down.forward(&x, Activation::Relu);
        assert_eq!(h.size(), [3, 8, 7, 7]);
        assert!(h.min().double_value(&[]) >= 0.0);
        let y = up.forward(&h, Activation::Relu);
        assert_eq!(y.size(), [3, 2, 28, 28]);
        // The last transposed convolution is linear: its output takes negative values.
        assert!(y.min().double_value(&[]) < 0.0);
        let names: Vec<_> = vs.variables().into_keys().collect();
        for n in [
            "enc.conv1.weight",
            "enc.conv2.bias",
            "dec.deconv1.weight",
            "dec.deconv2.bias",
        ] {
            assert!(names.iter().any(|k| k == n), "{n} not in {names:?}");
        }
    }

    #[test]
    fn layers_are_named_and_shaped_and_forward_is_the_composition() {
        let _rng = crate::rng_guard::seeded(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&(vs.root() / "enc"), "fc", 5, &[4, 3]);
        let conv = ConvStack::new(&(vs.root() / "net"), "c", 1, &[2, 3], 3);
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "enc.fc1.bias",
                "enc.fc1.weight",
                "enc.fc2.bias",
                "enc.fc2.weight",
                "net.c1.bias",
                "net.c1.weight",
                "net.c2.bias",
                "net.c2.weight",
            ]
        );
        assert_eq!(mlp.out_dim(), 3);
        let x = Tensor::randn([2, 5], (Kind::Float, Device::Cpu));
        let (l1, l2) = (&mlp.layers[0], &mlp.layers[1]);
        let by_hand = x
            .linear(&l1.ws, l1.bs.as_ref())
            .tanh()
            .linear(&l2.ws, l2.bs.as_ref())
            .tanh();
        assert!(mlp
            .forward(&x, Activation::Tanh)
            .allclose(&by_hand, 1e-6, 1e-6, false));
        let img = Tensor::randn([2, 1, 8, 8], (Kind::Float, Device::Cpu));
        assert_eq!(conv.forward(&img, Activation::Relu, 2).size(), [2, 3, 2, 2]);
        assert_eq!(conv.forward(&img, Activation::Relu, 1).size(), [2, 3, 8, 8]);
        let id = Mlp::new(&vs.root(), "none", 7, &[]);
        assert_eq!(id.out_dim(), 7);
        let s = Tensor::from_slice(&[-1.0f32, 0.0, 2.0]);
        let got = |a: Activation| Vec::<f32>::try_from(a.apply(&s)).unwrap();
        assert_eq!(got(Activation::Relu), [0.0, 0.0, 2.0]);
        assert_eq!(got(Activation::LeakyRelu), [-0.2, 0.0, 2.0]);
        assert!((got(Activation::Softplus)[1] - 2f32.ln()).abs() < 1e-6);
        assert!((got(Activation::Sigmoid)[1] - 0.5).abs() < 1e-7);
    }
}

/// PyTorch's default initialisation of a layer whose outputs each see `fan_in` inputs
/// (`nn.Linear`, `nn.Conv2d`): weights and biases uniform on ±1/√fan_in. tch's default
/// draws weights √6 times wider (Kaiming-uniform with the ReLU gain); models compared with a
/// PyTorch reference build their layers with this.
pub fn torch_default_init(fan_in: i64) -> (nn::Init, nn::Init) {
    let b = 1.0 / (fan_in.max(1) as f64).sqrt();
    let u = nn::Init::Uniform { lo: -b, up: b };
    (u, u)
}

/// A linear layer initialised as PyTorch's `nn.Linear` ([`torch_default_init`]).
pub fn torch_linear(p: nn::Path, i: i64, o: i64) -> nn::Linear {
    let (ws_init, bs_init) = torch_default_init(i);
    let cfg = nn::LinearConfig {
        ws_init,
        bs_init: Some(bs_init),
        bias: true,
    };
    nn::linear(p, i, o, cfg)
}

/// A 2-D convolution initialised as PyTorch's `nn.Conv2d` ([`torch_default_init`]), with
/// the rest of `cfg` (stride, padding, groups) as given.
pub fn torch_conv2d(p: nn::Path, i: i64, o: i64, k: i64, cfg: nn::ConvConfig) -> nn::Conv2D {
    let (ws_init, bs_init) = torch_default_init(i / cfg.groups * k * k);
    nn::conv2d(
        p,
        i,
        o,
        k,
        nn::ConvConfig {
            ws_init,
            bs_init,
            ..cfg
        },
    )
}

#[cfg(test)]
mod torch_init_tests {
    use super::*;

    #[test]
    fn layers_span_plus_minus_one_over_root_fan_in() {
        let _rng = crate::rng_guard::seeded(2);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let lin = torch_linear(vs.root() / "l", 400, 300);
        let conv = torch_conv2d(vs.root() / "c", 16, 64, 3, Default::default());
        for (w, b, fan_in) in [
            (&lin.ws, lin.bs.as_ref(), 400.0),
            (&conv.ws, conv.bs.as_ref(), 144.0),
        ] {
            let bound = 1.0 / f64::sqrt(fan_in);
            for t in [w, b.unwrap()] {
                let (lo, hi) = (t.min().double_value(&[]), t.max().double_value(&[]));
                assert!(lo >= -bound && hi <= bound, "[{lo}, {hi}] beyond ±{bound}");
                assert!(
                    hi > 0.9 * bound && lo < -0.9 * bound,
                    "[{lo}, {hi}] narrower"
                );
            }
        }
    }
}
