use super::config::PixelCnnConfig;
use crate::common::{self, Autoregressive};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::masks::{self, MaskSpec};
use gm_core::model::{
    params_table, parse_params, BuildContext, Complete, CompletionKind, Figure, LogLikelihood,
    Metrics, Model,
};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

/// Completions per held-out image in the completion figure.
const COMPLETIONS: i64 = 5;

/// Which centre taps a masked convolution keeps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MaskKind {
    /// Rows above the centre and the pixels left of it: the first layer, so that a pixel
    /// never sees itself.
    A,
    /// Mask A plus the centre: later layers, whose centre already only holds the past.
    B,
}

/// The `[1, 1, k, k]` 0/1 mask of a `k`×`k` kernel.
pub fn conv_mask(kind: MaskKind, k: i64, device: Device) -> Tensor {
    let c = k / 2;
    let mut m = vec![0f32; (k * k) as usize];
    for r in 0..k {
        for s in 0..k {
            let keep = r < c || (r == c && (s < c || (s == c && kind == MaskKind::B)));
            if keep {
                m[(r * k + s) as usize] = 1.0;
            }
        }
    }
    Tensor::from_slice(&m).view([1, 1, k, k]).to_device(device)
}

/// A convolution whose weights are multiplied by a fixed mask in every forward pass.
struct MaskedConv {
    conv: nn::Conv2D,
    mask: Tensor,
    pad: i64,
}

impl MaskedConv {
    fn new(p: nn::Path<'_>, cin: i64, cout: i64, k: i64, kind: MaskKind) -> Self {
        let device = p.device();
        MaskedConv {
            conv: nn::conv2d(p, cin, cout, k, Default::default()),
            mask: conv_mask(kind, k, device),
            pad: k / 2,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &(&self.conv.ws * &self.mask),
            self.conv.bs.as_ref(),
            [1, 1],
            [self.pad, self.pad],
            [1, 1],
            1,
        )
    }
}

/// One residual block: ReLU → 1×1 → ReLU → masked conv (B) → ReLU → 1×1, plus the input.
struct Block {
    down: nn::Conv2D,
    mid: MaskedConv,
    up: nn::Conv2D,
}

/// A PixelCNN for binary images `[1, H, W]`: a Bernoulli logit per pixel given the pixels
/// before it in raster order.
pub struct PixelCnn {
    cfg: PixelCnnConfig,
    shape: Vec<i64>,
    dim: i64,
    vs: VarStore,
    first: MaskedConv,
    blocks: Vec<Block>,
    head: Vec<nn::Conv2D>,
    out: nn::Conv2D,
    opt: Optimizer,
}

/// Builds a PixelCNN from a run config (the `pixelcnn` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: PixelCnnConfig = parse_params("pixelcnn", &ctx.cfg.model.params)?;
    Ok(Box::new(PixelCnn::new(cfg, ctx)?))
}

impl PixelCnn {
    /// A new PixelCNN for binary images shaped `[1, H, W]` like `ctx.data`; the output bias
    /// is the logit of the mean training pixel.
    pub fn new(cfg: PixelCnnConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        common::require_binary("pixelcnn", "data.binarize", "\"none\"", data)?;
        if data.shape.len() != 3 || data.shape[0] != 1 {
            return Err(Error::config(
                "data",
                format!("shape {:?}", data.shape),
                "binary images of one channel, [1, H, W], for pixelcnn",
            ));
        }
        let dim: i64 = data.shape.iter().product();
        let device = ctx.device;
        let vs = VarStore::new(device);
        let root = vs.root() / "pixelcnn";
        let (c, h) = (cfg.channels, cfg.channels / 2);
        let first = MaskedConv::new(&root / "first", 1, c, cfg.first_kernel, MaskKind::A);
        let blocks = (0..cfg.residual_blocks)
            .map(|i| {
                let p = &root / format!("block{}", i + 1);
                Block {
                    down: nn::conv2d(&p / "down", c, h, 1, Default::default()),
                    mid: MaskedConv::new(&p / "mid", h, h, cfg.kernel, MaskKind::B),
                    up: nn::conv2d(&p / "up", h, c, 1, Default::default()),
                }
            })
            .collect();
        let mut head = Vec::new();
        let mut prev = c;
        for i in 0..cfg.output_layers {
            head.push(nn::conv2d(
                &root / format!("head{}", i + 1),
                prev,
                cfg.output_channels,
                1,
                Default::default(),
            ));
            prev = cfg.output_channels;
        }
        let out = nn::conv2d(&root / "out", prev, 1, 1, Default::default());
        tch::no_grad(|| {
            if let Some(bs) = &out.bs {
                let p = data
                    .train
                    .x
                    .to_kind(Kind::Double)
                    .mean(Kind::Double)
                    .clamp(1e-3, 1.0 - 1e-3);
                let logit = (p.log() - (-&p).log1p()).to_kind(Kind::Float);
                bs.shallow_clone().copy_(&logit.view([1]).to_device(device));
            }
        });
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(PixelCnn {
            cfg,
            shape: data.shape.clone(),
            dim,
            vs,
            first,
            blocks,
            head,
            out,
            opt,
        })
    }

    /// The logits `[B, 1, h, W]` of p(x_p = 1 | pixels before p in raster order) for images
    /// `x` `[B, 1, h, W]` (any height h ≤ H: a top crop gives exactly the logits of its rows,
    /// since no layer looks down).
    pub fn logits(&self, x: &Tensor) -> Tensor {
        let mut y = self.first.forward(x);
        for b in &self.blocks {
            let r = b.down.forward(&y.relu()).relu();
            let r = b.mid.forward(&r).relu();
            y = y.g_add(&b.up.forward(&r)); // the skip connection
        }
        for l in &self.head {
            y = l.forward(&y.relu());
        }
        self.out.forward(&y.relu())
    }

    /// How many rows above its own a pixel's logit reads (the receptive field's height
    /// minus one): `first_kernel / 2` plus `kernel / 2` per residual block.
    pub fn rows_above(&self) -> i64 {
        self.cfg.first_kernel / 2 + self.cfg.residual_blocks as i64 * (self.cfg.kernel / 2)
    }

    /// The logits of row `i` `[B, W]` of images `x` `[B, 1, H, W]`, from the rows
    /// `i − rows_above() ..= i` only: exactly those of [`Self::logits`], at a fraction of
    /// the cost (the zero padding above the window reaches no further than the window's
    /// own rows above `i`).
    pub fn row_logits(&self, x: &Tensor, i: i64) -> Tensor {
        let top = (i - self.rows_above()).max(0);
        self.logits(&x.narrow(2, top, i - top + 1))
            .select(1, 0)
            .select(1, i - top)
    }

    fn images(&self, x: &Tensor) -> Tensor {
        x.reshape([-1, self.shape[0], self.shape[1], self.shape[2]])
    }

    fn log_prob_impl(&self, x: &Tensor) -> Tensor {
        let x = self.images(x);
        let logits = self.logits(&x);
        (&x * &logits - logits.softplus()).sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float)
    }

    /// Samples the pixels from raster position `start` on given the ones before it, for
    /// every image of `x` `[B, 1, H, W]` (pixels before `start` are kept): the exact
    /// conditional p(x_{≥start} | x_{<start}). One network pass per pixel, on the pixel's
    /// row and the `rows_above()` rows above it.
    pub fn complete_from(&self, x: &Tensor, start: i64) -> Tensor {
        self.fill(x, start, None)
    }

    /// Samples the hidden pixels (`observed` = 0, shaped like `x`) in raster order given
    /// the pixels before them; exact for p(x_hidden | x_observed) when, in every image, the
    /// observed pixels all come before the hidden ones in raster order (a bottom half,
    /// a prefix): otherwise an error, since the later observed pixels would be ignored.
    pub fn complete_prefix(&self, x: &Tensor, observed: &Tensor) -> Result<Tensor> {
        let obs = observed.reshape([-1, self.dim]).gt(0.5);
        let n_obs = obs.sum_dim_intlist(1, false, Kind::Int64);
        let steps = Tensor::arange(self.dim, (Kind::Int64, obs.device())).unsqueeze(0);
        let prefix = steps.lt_tensor(&n_obs.unsqueeze(1));
        if obs.ne_tensor(&prefix).any().int64_value(&[]) != 0 {
            return Err(Error::Msg(
                "pixelcnn completes exactly only masks whose observed pixels all precede the                  hidden ones in raster order (e.g. bottom-half); this mask hides a pixel before                  an observed one, whose conditional given later pixels the model does not have"
                    .into(),
            ));
        }
        let start = if obs.size()[0] == 0 {
            self.dim
        } else {
            n_obs.min().int64_value(&[])
        };
        Ok(self.fill(x, start, Some(&obs)))
    }

    /// Draws pixels `start..` in raster order, keeping those where `keep` (`bool [B, D]`).
    fn fill(&self, x: &Tensor, start: i64, keep: Option<&Tensor>) -> Tensor {
        tch::no_grad(|| {
            let x = self.images(x).copy();
            let (n, hh, ww) = (x.size()[0], self.shape[1], self.shape[2]);
            let noise = common::logistic_noise(&[n, hh, ww], x.device());
            for p in start.max(0)..hh * ww {
                let (i, j) = (p / ww, p % ww);
                let logit = self.row_logits(&x, i).select(1, j);
                let mut v = logit
                    .gt_tensor(&noise.select(1, i).select(1, j))
                    .to_kind(Kind::Float);
                let mut px = x.select(1, 0).select(1, i).select(1, j);
                if let Some(k) = keep {
                    v = px.where_self(&k.select(1, p), &v);
                }
                px.copy_(&v);
            }
            x
        })
    }
}

/// Exact for masks whose observed pixels precede the hidden ones in raster order
/// ([`PixelCnn::complete_prefix`]); other masks are refused.
impl Complete for PixelCnn {
    fn complete(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        Ok(self.complete_prefix(x, mask)?.reshape(x.size().as_slice()))
    }

    fn completion_kind(&self) -> CompletionKind {
        CompletionKind::Exact
    }
}

impl Autoregressive for PixelCnn {
    fn dim(&self) -> i64 {
        self.dim
    }

    fn log_prob(&self, x: &Tensor) -> Tensor {
        self.log_prob_impl(x)
    }

    fn sample_flat(&self, n: i64) -> Tensor {
        let mut shape = vec![n];
        shape.extend_from_slice(&self.shape);
        let zeros = Tensor::zeros(shape.as_slice(), (Kind::Float, self.device()));
        self.complete_from(&zeros, 0).reshape([n, self.dim])
    }
}

impl Model for PixelCnn {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "pixelcnn"
    }

    gm_core::single_network!(vs, opt, "opt");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let lp = self.log_prob_impl(x);
        common::nll_step(&mut self.opt, &lp, self.dim)
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let lp = tch::no_grad(|| self.log_prob_impl(x));
        Ok(common::nll_metrics(&lp, self.dim))
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        Ok(common::unflatten(self.sample_flat(n), &self.shape))
    }

    /// The completion grid ([`masks::completion_figure`]) with the bottom half hidden.
    fn figures(&self, x: &Tensor) -> Result<Vec<Figure>> {
        if x.size()[0] == 0 {
            return Ok(Vec::new());
        }
        let n = x.size()[0].min(8);
        let x = self.images(&x.narrow(0, 0, n).to_device(self.device()));
        Ok(vec![masks::completion_figure(
            self,
            &x,
            &MaskSpec::BottomHalf,
            COMPLETIONS,
            0,
        )?])
    }

    fn as_completion(&self) -> Option<&dyn Complete> {
        Some(self)
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let x = match cfg.eval.limit {
            Some(l) if l < x.size()[0] => x.narrow(0, 0, l),
            _ => x.shallow_clone(),
        };
        let lp = common::chunked(&x, cfg.data.eval_batch_size, |c| self.log_prob_impl(c));
        let settings = serde_json::json!({
            "channels": self.cfg.channels,
            "residual_blocks": self.cfg.residual_blocks,
            "first_kernel": self.cfg.first_kernel,
            "kernel": self.cfg.kernel,
            "output_layers": self.cfg.output_layers,
            "ordering": "raster",
            "limit": cfg.eval.limit,
        });
        Ok(vec![common::exact_report("pixelcnn", settings, &lp)?])
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
