use super::config::BinaryDiffusionConfig;
use crate::binary::BinaryDiffusion;
use crate::completion::{replacing, METHOD};
use crate::figures::{Strip, COLUMNS, ROWS};
use crate::gaussian::Denoiser;
use crate::nets::build_net;
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{
    params_table, parse_params, BuildContext, Complete, CompletionKind, Figure, LikelihoodKind,
    LogLikelihood, Metrics, Model,
};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// The binary diffusion model: the process, the x_0 predictor, its optimizer.
pub struct BinaryDiffusionModel {
    cfg: BinaryDiffusionConfig,
    diffusion: BinaryDiffusion,
    net: Box<dyn Denoiser>,
    shape: Vec<i64>,
    vs: VarStore,
    opt: Optimizer,
}

/// Builds `binary-diffusion` from a run config; the data must be binary.
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    Ok(Box::new(BinaryDiffusionModel::new(ctx)?))
}

impl BinaryDiffusionModel {
    /// The model of `ctx`'s config and data.
    pub fn new(ctx: &BuildContext<'_>) -> Result<Self> {
        let cfg: BinaryDiffusionConfig = parse_params("binary-diffusion", &ctx.cfg.model.params)?;
        cfg.validate()?;
        if !ctx.data.binary {
            return Err(Error::config(
                "data.binarize",
                &ctx.data.name,
                "binary data: binary-diffusion models 0/1 values (binarized-mnist, or binarize = \"threshold\" | \"stochastic\" | \"dynamic\")",
            ));
        }
        let vs = VarStore::new(ctx.device);
        let shape = ctx.data.shape.clone();
        let net = build_net(&(vs.root() / "binary_diffusion"), cfg.net(), &shape)?;
        let diffusion = BinaryDiffusion::new(cfg.schedule()?, Kind::Float, ctx.device)
            .with_reverse(cfg.reverse);
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(BinaryDiffusionModel {
            cfg,
            diffusion,
            net,
            shape,
            vs,
            opt,
        })
    }

    /// The diffusion.
    pub fn diffusion(&self) -> &BinaryDiffusion {
        &self.diffusion
    }

    /// Estimates of the bound on log p(x) per example `[B]` (nats), `k` timesteps t ≥ 2 each.
    pub fn bound(&self, x: &Tensor, k: i64) -> Tensor {
        tch::no_grad(|| self.diffusion.bound(self.net.as_ref(), x, k).0)
    }

    fn noise(&self, n: i64) -> Tensor {
        let shape: Vec<i64> = [n].iter().chain(&self.shape).copied().collect();
        Tensor::full(shape.as_slice(), 0.5, (Kind::Float, self.device())).bernoulli()
    }

    fn draw(&self, n: i64, hook: &mut dyn FnMut(i64, Tensor) -> Tensor) -> Tensor {
        let start = self.noise(n);
        tch::no_grad(|| self.diffusion.sample_from(self.net.as_ref(), start, hook))
    }
}

impl Model for BinaryDiffusionModel {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "binary-diffusion"
    }

    gm_core::single_network!(vs, opt, "adam");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let loss = self
            .diffusion
            .loss(self.net.as_ref(), &batch.x, self.cfg.aux_weight);
        self.opt.backward_step(&loss)?;
        Ok(vec![("loss", loss.detach())])
    }

    /// A one-timestep estimate of the negative bound (nats).
    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        Ok(vec![(
            "nll_bound",
            -self.bound(&batch.x, 1).mean(Kind::Float),
        )])
    }

    /// Draws of the reverse chain (0/1).
    fn sample(&self, n: i64) -> Result<Tensor> {
        Ok(self.draw(n, &mut |_, x| x))
    }

    /// `reverse-process.png`: chains from Bernoulli(½) noise (left) to x_0 (right).
    fn figures(&self, _x: &Tensor) -> Result<Vec<Figure>> {
        if self.shape.len() != 3 {
            return Ok(Vec::new());
        }
        let start = self.noise(ROWS);
        let mut strip = Strip::new(self.diffusion.steps() as usize, start.shallow_clone());
        let mut hook = |_t: i64, x: Tensor| {
            strip.record(&x);
            x
        };
        let _ = tch::no_grad(|| {
            self.diffusion
                .sample_from(self.net.as_ref(), start, &mut hook)
        });
        Ok(vec![strip.figure(format!(
            "{ROWS} samples, each at {COLUMNS} evenly spaced steps of its {}-step reverse chain, x_T left, x_0 right",
            self.diffusion.steps()
        ))])
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let k = self
            .cfg
            .bound_timesteps
            .min(self.diffusion.steps() - 1)
            .max(1);
        let (mean, std_err) =
            crate::bound::mean_over(x, cfg.data.eval_batch_size, &|xc| self.bound(xc, k))?;
        Ok(vec![LogLikelihood {
            kind: LikelihoodKind::LowerBound,
            method: "binary-diffusion-variational-bound".into(),
            settings: crate::bound::settings(self.diffusion.steps(), k),
            mean,
            std_err,
            n: x.size()[0],
        }])
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> tch::Device {
        self.vs.device()
    }

    fn as_completion(&self) -> Option<&dyn Complete> {
        Some(self)
    }
}

/// Approximate: see [`crate::completion`].
impl Complete for BinaryDiffusionModel {
    fn complete(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let mut hook = replacing(x, mask, |t| self.diffusion.q_sample(x, t));
        Ok(self.draw(x.size()[0], &mut hook))
    }

    fn completion_kind(&self) -> CompletionKind {
        CompletionKind::Approximate {
            method: METHOD.into(),
        }
    }
}
