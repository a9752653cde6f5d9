use super::config::GlowConfig;
use crate::flow::{self, Flow, FlowConfig, FlowModel};
use crate::realnvp::{squeeze, unsqueeze};
use gm_core::model::{BuildContext, Model};
use gm_core::nets::{Activation, ConvStack, Mlp};
use gm_core::{dist, Error, Result};
use tch::nn::{self, Module};
use tch::Tensor;

/// Σ over all but the first dimension, `[B]`.
fn per_example(t: &Tensor) -> Tensor {
    t.flatten(1, -1).sum_dim_intlist(-1, false, t.kind())
}

/// Positions per channel of `x` `[B, C, ..]`: H·W for images, 1 for vectors.
fn positions(x: &Tensor) -> f64 {
    x.size()[2..].iter().product::<i64>() as f64
}

/// `v` `[C]` shaped to broadcast over `x` `[B, C, ..]`.
fn per_channel(v: &Tensor, x: &Tensor) -> Tensor {
    let mut shape = vec![1, -1];
    shape.resize(x.dim(), 1);
    v.view(shape.as_slice())
}

/// A log-determinant the same for every example, `[B]`.
fn constant_log_det(v: Tensor, x: &Tensor) -> Tensor {
    v.expand([x.size()[0]], false)
}

/// Actnorm: y = (x + b) ⊙ e^s per channel.
#[derive(Debug)]
pub struct ActNorm {
    pub(crate) bias: Tensor,
    logs: Tensor,
}

impl ActNorm {
    pub(crate) fn new(path: &nn::Path, c: i64) -> Self {
        ActNorm {
            bias: path.zeros("bias", &[c]),
            logs: path.zeros("logs", &[c]),
        }
    }

    /// y and log |det| `[B]`.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let y = (x + per_channel(&self.bias, x)) * per_channel(&self.logs, x).exp();
        let ld = self.logs.sum(x.kind()) * positions(x);
        (y, constant_log_det(ld, x))
    }

    /// x from y.
    pub fn inverse(&self, y: &Tensor) -> Tensor {
        y * per_channel(&(-&self.logs).exp(), y) - per_channel(&self.bias, y)
    }

    /// b = −mean and s = −log std per channel of `x` over the global batch and positions.
    pub fn init(&self, x: &Tensor) -> Result<()> {
        let c = x.size()[1];
        let rows = x.transpose(0, 1).reshape([c, -1]).tr();
        let mean = dist::batch_mean(&rows)?;
        let var = dist::batch_mean(&rows.square())? - mean.square();
        let logs = -(var.clamp_min(0.0).sqrt() + 1e-6).log();
        tch::no_grad(|| {
            self.bias.shallow_clone().copy_(&(-mean));
            self.logs.shallow_clone().copy_(&logs);
        });
        Ok(())
    }
}

/// The invertible 1×1 convolution, W = P L (U + diag(sign ⊙ e^s)).
#[derive(Debug)]
pub struct InvConv {
    perm: Tensor,
    sign: Tensor,
    lower: Tensor,
    upper: Tensor,
    logs: Tensor,
}

impl InvConv {
    /// A random rotation's LU factors (P and the signs fixed, saved with the model).
    pub(crate) fn new(path: &nn::Path, c: i64) -> Self {
        let rotation = Tensor::linalg_qr(&Tensor::randn([c, c], tch::kind::FLOAT_CPU), "reduced").0;
        let (p, l, u) = Tensor::linalg_lu(&rotation, true);
        let s = u.diagonal(0, 0, 1);
        let fixed = |name: &str, t: &Tensor| {
            let v = path.zeros_no_train(name, &t.size());
            tch::no_grad(|| v.shallow_clone().copy_(t));
            v
        };
        InvConv {
            perm: fixed("perm", &p),
            sign: fixed("sign", &s.sign()),
            lower: path.var_copy("lower", &l.tril(-1)),
            upper: path.var_copy("upper", &u.triu(1)),
            logs: path.var_copy("logs", &s.abs().log()),
        }
    }

    /// W `[C, C]`.
    pub fn weight(&self) -> Tensor {
        let c = self.logs.size()[0];
        let eye = Tensor::eye(c, (self.logs.kind(), self.logs.device()));
        let l = self.lower.tril(-1) + &eye;
        let u = self.upper.triu(1) + (&self.sign * self.logs.exp()).diag(0);
        self.perm.matmul(&l).matmul(&u)
    }

    /// W applied to every position's channel vector of `x` `[B, C, ..]`.
    fn apply(w: &Tensor, x: &Tensor) -> Tensor {
        x.movedim([1], [-1]).matmul(&w.tr()).movedim([-1], [1])
    }

    /// y and log |det| `[B]`.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let ld = self.logs.sum(x.kind()) * positions(x);
        (Self::apply(&self.weight(), x), constant_log_det(ld, x))
    }

    /// x from y (W⁻¹ computed in f64).
    pub fn inverse(&self, y: &Tensor) -> Tensor {
        let w = self.weight();
        let inv = Tensor::linalg_inv(&w.to_kind(tch::Kind::Double)).to_kind(w.kind());
        Self::apply(&inv, y)
    }
}

/// A network from the first channels (features) to 2 × the rest, its last layer at zero.
#[derive(Debug)]
enum Net {
    Mlp(Mlp, nn::Linear),
    Conv(ConvStack, nn::Conv2D),
}

impl Net {
    fn new(path: &nn::Path, cfg: &GlowConfig, image: bool, inputs: i64, outputs: i64) -> Self {
        if !image {
            let mlp = Mlp::new(&(path / "net"), "fc", inputs, &cfg.hidden);
            let zero = nn::LinearConfig {
                ws_init: nn::Init::Const(0.0),
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            };
            let head = nn::linear(path / "net" / "out", mlp.out_dim(), outputs, zero);
            return Net::Mlp(mlp, head);
        }
        let stack = ConvStack::new(&(path / "net"), "conv", inputs, &cfg.channels, cfg.kernel);
        let last = cfg.channels.last().copied().unwrap_or(inputs);
        Net::Conv(
            stack,
            zero_conv(&(path / "net" / "out"), last, outputs, cfg.kernel),
        )
    }

    fn forward(&self, h: &Tensor) -> Tensor {
        match self {
            Net::Mlp(mlp, head) => head.forward(&mlp.forward(h, Activation::Relu)),
            Net::Conv(stack, head) => head.forward(&stack.forward(h, Activation::Relu, 1)),
        }
    }
}

/// A same-padded convolution that starts at zero.
fn zero_conv(path: &nn::Path, inputs: i64, outputs: i64, kernel: i64) -> nn::Conv2D {
    let conv = nn::ConvConfig {
        padding: kernel / 2,
        ws_init: nn::Init::Const(0.0),
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    nn::conv2d(path, inputs, outputs, kernel, conv)
}

/// The two halves of `h` `[.., 2k, ..]` along dimension 1.
fn halves(h: &Tensor) -> (Tensor, Tensor) {
    let k = h.size()[1] / 2;
    (h.narrow(1, 0, k), h.narrow(1, k, k))
}

/// Glow's affine coupling: x_b → (x_b + t(x_a)) ⊙ sigmoid(h(x_a) + 2).
#[derive(Debug)]
struct Coupling {
    net: Net,
    /// Channels (features) passed through.
    keep: i64,
}

impl Coupling {
    fn new(path: &nn::Path, cfg: &GlowConfig, shape: &[i64]) -> Self {
        let keep = shape[0] / 2;
        let net = Net::new(path, cfg, shape.len() == 3, keep, 2 * (shape[0] - keep));
        Coupling { net, keep }
    }

    /// (x_a, x_b, t, log σ).
    fn parts(&self, x: &Tensor) -> (Tensor, Tensor, Tensor, Tensor) {
        let c = x.size()[1];
        let xa = x.narrow(1, 0, self.keep);
        let (t, raw) = halves(&self.net.forward(&xa));
        (
            xa,
            x.narrow(1, self.keep, c - self.keep),
            t,
            (raw + 2.0).log_sigmoid(),
        )
    }

    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let (xa, xb, t, log_s) = self.parts(x);
        let yb = (xb + t) * log_s.exp();
        (Tensor::cat(&[xa, yb], 1), per_example(&log_s))
    }

    fn inverse(&self, y: &Tensor) -> Tensor {
        let (ya, yb, t, log_s) = self.parts(y);
        Tensor::cat(&[ya, yb * (-log_s).exp() - t], 1)
    }
}

/// The split with a learned prior: z_out ~ N(μ(h), e^{2s(h)}) given the kept half h,
/// written as ε = (z_out − μ) e^{−s}.
#[derive(Debug)]
struct Split {
    prior: nn::Conv2D,
}

impl Split {
    fn new(path: &nn::Path, cfg: &GlowConfig, c: i64) -> Self {
        Split {
            prior: zero_conv(path, c - c / 2, 2 * (c / 2), cfg.kernel),
        }
    }

    /// (ε, the kept half, log |det| `[B]`).
    fn forward(&self, h: &Tensor) -> (Tensor, Tensor, Tensor) {
        let c = h.size()[1];
        let (out, kept) = (h.narrow(1, 0, c / 2), h.narrow(1, c / 2, c - c / 2));
        let (mean, logs) = halves(&self.prior.forward(&kept));
        let eps = (out - mean) * (-&logs).exp();
        (eps, kept, -per_example(&logs))
    }

    fn inverse(&self, eps: &Tensor, kept: &Tensor) -> Tensor {
        let (mean, logs) = halves(&self.prior.forward(kept));
        Tensor::cat(&[eps * logs.exp() + mean, kept.shallow_clone()], 1)
    }
}

/// One flow step: actnorm, invertible 1×1 convolution, affine coupling.
#[derive(Debug)]
struct Step {
    norm: ActNorm,
    conv: InvConv,
    coupling: Coupling,
}

impl Step {
    fn new(path: &nn::Path, cfg: &GlowConfig, shape: &[i64]) -> Self {
        Step {
            norm: ActNorm::new(&(path / "actnorm"), shape[0]),
            conv: InvConv::new(&(path / "invconv"), shape[0]),
            coupling: Coupling::new(&(path / "coupling"), cfg, shape),
        }
    }

    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let (a, l1) = self.norm.forward(x);
        let (b, l2) = self.conv.forward(&a);
        let (c, l3) = self.coupling.forward(&b);
        (c, l1 + l2 + l3)
    }

    fn inverse(&self, y: &Tensor) -> Tensor {
        let b = self.coupling.inverse(y);
        self.norm.inverse(&self.conv.inverse(&b))
    }
}

/// One level: its steps and, but for the last, its split.
#[derive(Debug)]
struct Level {
    steps: Vec<Step>,
    split: Option<Split>,
    /// The shape its steps work on, `[C, H, W]` after the squeeze, or `[D]`.
    shape: Vec<i64>,
}

/// Glow.
#[derive(Debug)]
pub struct Glow {
    levels: Vec<Level>,
    image: bool,
}

impl Glow {
    /// The flow for examples shaped `shape` (`[D]` or `[C, H, W]`), parameters under `path`.
    pub fn new(path: &nn::Path, cfg: &GlowConfig, shape: &[i64]) -> Result<Self> {
        cfg.validate()?;
        let image = check_shape(cfg, shape)?;
        let mut cur = shape.to_vec();
        let mut levels = Vec::new();
        for l in 0..cfg.scales {
            if image {
                cur = vec![4 * cur[0], cur[1] / 2, cur[2] / 2];
            }
            let p = path / format!("level{l}");
            let steps = (0..cfg.steps)
                .map(|k| Step::new(&(&p / format!("step{k}")), cfg, &cur))
                .collect();
            let split = (l + 1 < cfg.scales).then(|| Split::new(&(&p / "split"), cfg, cur[0]));
            levels.push(Level {
                steps,
                split,
                shape: cur.clone(),
            });
            cur[0] -= cur[0] / 2;
        }
        Ok(Glow { levels, image })
    }

    /// The first step's actnorm.
    #[cfg(test)]
    pub(crate) fn first_actnorm(&self) -> &ActNorm {
        &self.levels[0].steps[0].norm
    }

    /// z, log |det| and, with `init`, every actnorm set from its input on the way.
    fn run(&self, y: &Tensor, init: bool) -> Result<(Tensor, Tensor)> {
        let b = y.size()[0];
        let mut ld = Tensor::zeros([b], (y.kind(), y.device()));
        let mut h = y.shallow_clone();
        let mut codes = Vec::new();
        for level in &self.levels {
            if self.image {
                h = squeeze(&h);
            }
            for step in &level.steps {
                if init {
                    step.norm.init(&h)?;
                }
                let (out, l) = step.forward(&h);
                (h, ld) = (out, ld + l);
            }
            if let Some(split) = &level.split {
                let (eps, kept, l) = split.forward(&h);
                codes.push(eps.reshape([b, -1]));
                (h, ld) = (kept, ld + l);
            }
        }
        codes.push(h.reshape([b, -1]));
        Ok((Tensor::cat(&codes, 1), ld))
    }
}

/// Whether `shape` is an image; errors for shapes Glow cannot take.
fn check_shape(cfg: &GlowConfig, shape: &[i64]) -> Result<bool> {
    match *shape {
        [d] if d < 2 => Err(Error::config(
            "data.dataset",
            format!("shape {shape:?}"),
            "at least 2 features: a coupling splits them",
        )),
        [_] if cfg.scales != 1 => Err(Error::config(
            "model.scales",
            cfg.scales,
            format!("1 for vector data (shape {shape:?}): levels squeeze images"),
        )),
        [_] => Ok(false),
        [_, h, w] => {
            let side = 1i64 << cfg.scales.min(20);
            if h % side != 0 || w % side != 0 {
                return Err(Error::config(
                    "model.scales",
                    cfg.scales,
                    format!("a number of levels whose halvings divide the image sides {h}×{w}"),
                ));
            }
            Ok(true)
        }
        _ => Err(Error::config(
            "data.dataset",
            format!("shape {shape:?}"),
            "vectors [D] or images [C, H, W]",
        )),
    }
}

impl Flow for Glow {
    fn forward(&self, y: &Tensor) -> (Tensor, Tensor) {
        self.run(y, false).expect("no collective runs without init")
    }

    fn inverse(&self, z: &Tensor) -> Tensor {
        let b = z.size()[0];
        let mut end = z.size()[1];
        let mut take = |shape: &[i64]| {
            let len: i64 = shape.iter().product();
            let mut full = vec![b];
            full.extend_from_slice(shape);
            end -= len;
            z.narrow(1, end, len).reshape(full.as_slice())
        };
        let top = self.levels.last().expect("at least one level");
        let mut h = take(&top.shape);
        for level in self.levels.iter().rev() {
            if let Some(split) = &level.split {
                let mut out = level.shape.clone();
                out[0] /= 2;
                h = split.inverse(&take(&out), &h);
            }
            h = level.steps.iter().rev().fold(h, |h, s| s.inverse(&h));
            if self.image {
                h = unsqueeze(&h);
            }
        }
        h
    }

    fn wants_data_init(&self) -> bool {
        true
    }

    fn data_init(&self, y: &Tensor) -> Result<()> {
        self.run(y, true).map(|_| ())
    }
}

/// Builds Glow from a run config (the `glow` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    Ok(Box::new(flow_model(ctx)?))
}

/// The same as its concrete type.
pub fn flow_model(ctx: &BuildContext<'_>) -> Result<FlowModel<Glow>> {
    flow::build_model("glow", ctx, Glow::new)
}
