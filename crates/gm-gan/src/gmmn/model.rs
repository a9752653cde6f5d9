use super::config::{GmmnConfig, MmdLoss, Output};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{params_table, parse_params, BuildContext, LogLikelihood, Metrics, Model};
use gm_core::nets::Mlp;
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use gm_eval::mmd;
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

/// The GMMN loss between generated rows `x` and data rows `y` (`[N, ...]`, flattened): the
/// chosen statistic of gm-eval's multi-kernel MMD, differentiable in both.
pub fn mmd_loss(x: &Tensor, y: &Tensor, bandwidths: &[f64], loss: MmdLoss) -> Result<Tensor> {
    let m2 = mmd::mmd2(x, y, bandwidths, loss.estimator())?;
    Ok(match loss {
        // MMD²_b ≥ 0 up to rounding; the floor keeps √ and its gradient finite at 0.
        MmdLoss::SqrtBiased => m2.clamp_min(1e-12).sqrt(),
        _ => m2,
    })
}

/// An MLP generator z ~ U(−1, 1)^noise → x (the hidden layers under `{path}.fc1…`, the
/// output layer `{path}.out`).
#[derive(Debug)]
pub struct Generator {
    cfg: GmmnConfig,
    output: Output,
    net: Mlp,
    out: nn::Linear,
}

impl Generator {
    /// A generator of `dim`-dimensional rows under `path`; `unit_data` resolves
    /// `output = "auto"`.
    pub fn new(path: &nn::Path, cfg: &GmmnConfig, dim: i64, unit_data: bool) -> Generator {
        let net = Mlp::new(path, "fc", cfg.noise, &cfg.hidden);
        let out = nn::linear(path / "out", net.out_dim(), dim, Default::default());
        Generator {
            cfg: cfg.clone(),
            output: cfg.output.resolve(unit_data),
            net,
            out,
        }
    }

    /// The resolved output non-linearity (never `Auto`).
    pub fn output(&self) -> Output {
        self.output
    }

    /// `n` noise vectors z ~ U(−1, 1)^noise (Li et al. 2015's prior).
    pub fn noise(&self, n: i64, device: Device) -> Tensor {
        Tensor::rand([n, self.cfg.noise], (Kind::Float, device)) * 2.0 - 1.0
    }

    /// G(z), `[N, dim]`.
    pub fn forward(&self, z: &Tensor) -> Tensor {
        self.output
            .apply(self.out.forward(&self.net.forward(z, self.cfg.activation)))
    }

    /// `n` generated rows.
    pub fn generate(&self, n: i64, device: Device) -> Tensor {
        self.forward(&self.noise(n, device))
    }

    /// The loss of `samples` generated rows against the data rows `y` `[B, dim]`.
    pub fn loss(&self, y: &Tensor) -> Result<Tensor> {
        let x = self.generate(self.cfg.samples, y.device());
        mmd_loss(&x, y, &self.cfg.bandwidths, self.cfg.loss)
    }
}

/// A generative moment-matching network on the data itself (the `gmmn` registry entry).
pub struct Gmmn {
    cfg: GmmnConfig,
    shape: Vec<i64>,
    dim: i64,
    vs: VarStore,
    gen: Generator,
    opt: Optimizer,
}

/// Builds a GMMN from a run config.
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: GmmnConfig = parse_params("gmmn", &ctx.cfg.model.params)?;
    Ok(Box::new(Gmmn::new(cfg, ctx)?))
}

/// Values per example of the dataset, or an error when the shape is empty.
pub(crate) fn example_dim(ctx: &BuildContext<'_>) -> Result<i64> {
    let dim: i64 = ctx.data.shape.iter().product();
    if dim <= 0 {
        return Err(Error::config(
            "data",
            format!("shape {:?}", ctx.data.shape),
            "a non-empty example shape",
        ));
    }
    Ok(dim)
}

/// `[n, ..shape]`.
pub(crate) fn with_shape(x: Tensor, shape: &[i64]) -> Tensor {
    let mut s = vec![x.size()[0]];
    s.extend_from_slice(shape);
    x.reshape(s.as_slice())
}

impl Gmmn {
    /// A new GMMN for data shaped like `ctx.data`.
    pub fn new(cfg: GmmnConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate("model")?;
        let dim = example_dim(ctx)?;
        let vs = VarStore::new(ctx.device);
        let unit = Output::unit_data(ctx.data);
        let gen = Generator::new(&(vs.root() / "generator"), &cfg, dim, unit);
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(Gmmn {
            cfg,
            shape: ctx.data.shape.clone(),
            dim,
            vs,
            gen,
            opt,
        })
    }

    /// The generator.
    pub fn generator(&self) -> &Generator {
        &self.gen
    }

    fn loss(&self, x: &Tensor) -> Result<Metrics> {
        let loss = self.gen.loss(&x.reshape([-1, self.dim]))?;
        Ok(vec![("loss", loss)])
    }
}

impl Model for Gmmn {
    fn name(&self) -> &str {
        "gmmn"
    }

    gm_core::single_network!(vs, opt, "adam");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let m = self.loss(&batch.x)?;
        self.opt.backward_step(&m[0].1)?;
        Ok(m.into_iter().map(|(k, t)| (k, t.detach())).collect())
    }

    /// The loss between a fresh generated batch and the held-out batch.
    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        tch::no_grad(|| self.loss(&batch.x))
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        let x = tch::no_grad(|| self.gen.generate(n, self.device()));
        Ok(with_shape(x, &self.shape))
    }

    /// None: a GMMN defines no density (`gm eval` reports sample quality instead).
    fn log_likelihoods(&self, _x: &Tensor, _cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        Ok(Vec::new())
    }

    fn resolved_params(&self) -> toml::Table {
        let mut cfg = self.cfg.clone();
        cfg.output = self.gen.output();
        params_table(&cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
