use super::config::{DdpmConfig, Loss};
use crate::completion::{replacing, METHOD};
use crate::figures::{Strip, COLUMNS, ROWS};
use crate::gaussian::{Denoiser, GaussianDiffusion, Sampler};
use crate::nets::build_net;
use gm_core::config::RunConfig;
use gm_core::data::{Batch, Dataset};
use gm_core::model::{
    params_table, parse_params, BuildContext, Complete, CompletionKind, Figure, LikelihoodKind,
    LogLikelihood, Metrics, Model,
};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// Where the diffusion runs: real vectors as they are, or quantized images dequantized to
/// y = (k + u) / L and mapped to s = 2y − 1 in [−1, 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Space {
    /// Real vectors (exact data values).
    Real,
    /// Images with `levels` values per pixel.
    Image {
        /// L.
        levels: i64,
    },
}

impl Space {
    fn for_data(data: &Dataset, levels: i64) -> Result<Self> {
        if data.binary {
            return Err(Error::config(
                "data.binarize",
                &data.name,
                "real-valued data: ddpm is a Gaussian diffusion (binarize = \"none\")",
            ));
        }
        Ok(if data.is_image {
            Space::Image { levels }
        } else {
            Space::Real
        })
    }

    /// The diffusion's x_0 for data `x`: dequantized with fresh noise for images.
    pub fn to_model(&self, x: &Tensor) -> Tensor {
        match *self {
            Space::Real => x.shallow_clone(),
            Space::Image { levels } => {
                let k = (x * (levels - 1) as f64).round();
                (k + x.rand_like()) * (2.0 / levels as f64) - 1.0
            }
        }
    }

    /// Data values of diffusion outputs (images clamped to [0, 1]).
    pub fn to_data(&self, s: &Tensor) -> Tensor {
        match *self {
            Space::Real => s.shallow_clone(),
            Space::Image { .. } => ((s + 1.0) * 0.5).clamp(0.0, 1.0),
        }
    }

    /// Added to the log-density of s for the bound on the data: D ln 2 (s = 2y − 1) and
    /// −D ln L (the dequantization cube) for images, 0 for vectors.
    pub fn offset(&self, dim: i64) -> f64 {
        match *self {
            Space::Real => 0.0,
            Space::Image { levels } => dim as f64 * (2f64.ln() - (levels as f64).ln()),
        }
    }

    /// The range x̂_0 is clamped to when sampling.
    fn clip(&self) -> Option<(f64, f64)> {
        match self {
            Space::Real => None,
            Space::Image { .. } => Some((-1.0, 1.0)),
        }
    }
}

/// A denoising diffusion probabilistic model: the diffusion, ε_θ, its optimizer.
pub struct Ddpm {
    cfg: DdpmConfig,
    diffusion: GaussianDiffusion,
    net: Box<dyn Denoiser>,
    space: Space,
    shape: Vec<i64>,
    dim: i64,
    vs: VarStore,
    opt: Optimizer,
}

/// Builds `ddpm` from a run config: an MLP ε_θ on vectors, a U-Net on images.
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    Ok(Box::new(Ddpm::new(ctx)?))
}

impl Ddpm {
    /// The model of `ctx`'s config and data.
    pub fn new(ctx: &BuildContext<'_>) -> Result<Self> {
        let cfg: DdpmConfig = parse_params("ddpm", &ctx.cfg.model.params)?;
        cfg.validate()?;
        let space = Space::for_data(ctx.data, cfg.levels)?;
        let vs = VarStore::new(ctx.device);
        let root = vs.root() / "ddpm";
        let shape = ctx.data.shape.clone();
        let dim = shape.iter().product();
        let net = build_net(&root, cfg.net(), &shape)?;
        let diffusion =
            GaussianDiffusion::new(cfg.schedule()?, cfg.variance, Kind::Float, ctx.device);
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(Ddpm {
            cfg,
            diffusion,
            net,
            space,
            shape,
            dim,
            vs,
            opt,
        })
    }

    /// The diffusion.
    pub fn diffusion(&self) -> &GaussianDiffusion {
        &self.diffusion
    }

    /// ε_θ.
    pub fn net(&self) -> &dyn Denoiser {
        self.net.as_ref()
    }

    /// Estimates of the bound on log p(x) per example `[B]` (nats, data space), with `k`
    /// timesteps t ≥ 2 per example.
    pub fn bound(&self, x: &Tensor, k: i64) -> Tensor {
        let s = self.space.to_model(x);
        let (b, _) = tch::no_grad(|| self.diffusion.bound(self.net.as_ref(), &s, k));
        b + self.space.offset(self.dim)
    }

    /// Draws from noise with `sampler`, calling `hook` after every step (see
    /// [`GaussianDiffusion::sample_from`]); returns model-space values.
    fn draw(
        &self,
        n: i64,
        sampler: Sampler,
        hook: &mut dyn FnMut(i64, Tensor) -> Tensor,
    ) -> Tensor {
        let mut shape = vec![n];
        shape.extend_from_slice(&self.shape);
        let start = Tensor::randn(shape.as_slice(), (Kind::Float, self.device()));
        tch::no_grad(|| {
            self.diffusion
                .sample_from(self.net.as_ref(), start, sampler, self.space.clip(), hook)
        })
    }

    /// [`ROWS`] chains of the configured sampler, [`COLUMNS`] points of each.
    fn reverse_strip(&self) -> Figure {
        let sampler = self.cfg.sampler();
        let shape: Vec<i64> = [ROWS].iter().chain(&self.shape).copied().collect();
        let start = Tensor::randn(shape.as_slice(), (Kind::Float, self.device()));
        let visited = self.diffusion.timesteps(sampler).len();
        let mut strip = Strip::new(visited, self.space.to_data(&start));
        let mut hook = |_t: i64, x: Tensor| {
            strip.record(&self.space.to_data(&x));
            x
        };
        let _ = tch::no_grad(|| {
            self.diffusion.sample_from(
                self.net.as_ref(),
                start,
                sampler,
                self.space.clip(),
                &mut hook,
            )
        });
        strip.figure(format!(
            "{ROWS} samples, each at {COLUMNS} evenly spaced steps of its reverse chain ({:?}), x_T left, x_0 right",
            self.cfg.sampler
        ))
    }

    fn metrics(&self, x: &Tensor) -> Metrics {
        let s = self.space.to_model(x);
        let loss = tch::no_grad(|| self.diffusion.simple_loss(self.net.as_ref(), &s, false));
        let nll = -self.bound(x, 1).mean(Kind::Float);
        let mut m = vec![("loss", loss), ("nll_bound", nll.shallow_clone())];
        if let Space::Image { .. } = self.space {
            m.push((
                "bits_per_dim",
                nll / (self.dim as f64 * std::f64::consts::LN_2),
            ));
        }
        m
    }
}

impl Model for Ddpm {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "ddpm"
    }

    gm_core::single_network!(vs, opt, "adam");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let s = self.space.to_model(&batch.x);
        let loss = match self.cfg.loss {
            Loss::Simple => self.diffusion.simple_loss(self.net.as_ref(), &s, true),
            Loss::Bound => self.diffusion.bound_loss(self.net.as_ref(), &s),
        };
        self.opt.backward_step(&loss)?;
        Ok(vec![("loss", loss.detach())])
    }

    /// L_simple, and a one-timestep estimate of the bound (nats; bits/dim on images).
    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        Ok(self.metrics(&batch.x))
    }

    /// With the configured sampler (ancestral: T steps), images in [0, 1].
    fn sample(&self, n: i64) -> Result<Tensor> {
        let x = self.draw(n, self.cfg.sampler(), &mut |_, x| x);
        Ok(self.space.to_data(&x))
    }

    /// DDIM on `sample_steps` timesteps (cheaper than T ancestral steps every epoch).
    fn progress_samples(&self, n: i64) -> Result<Tensor> {
        let x = self.draw(n, Sampler::Ddim(self.cfg.sample_steps), &mut |_, x| x);
        Ok(self.space.to_data(&x))
    }

    /// Images: `reverse-process.png`, each row one sample from noise (left) to x_0 (right).
    fn figures(&self, _x: &Tensor) -> Result<Vec<Figure>> {
        if self.space == Space::Real {
            return Ok(Vec::new());
        }
        Ok(vec![self.reverse_strip()])
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let k = self
            .cfg
            .bound_timesteps
            .min(self.diffusion.steps() - 1)
            .max(1);
        let (mean, std_err) =
            crate::bound::mean_over(x, cfg.data.eval_batch_size, &|xc| self.bound(xc, k))?;
        let mut settings = crate::bound::settings(self.diffusion.steps(), k);
        settings["variance"] = serde_json::json!(self.diffusion.variance());
        if let Space::Image { levels } = self.space {
            settings["levels"] = levels.into();
            settings["dequantization"] =
                "uniform, one draw of u per example; s = 2 (k + u) / L - 1".into();
            settings["bits_per_dim"] = (-mean / (self.dim as f64 * std::f64::consts::LN_2)).into();
        }
        Ok(vec![LogLikelihood {
            kind: LikelihoodKind::LowerBound,
            method: "diffusion-variational-bound".into(),
            settings,
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
impl Complete for Ddpm {
    fn complete(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let known = match self.space {
            Space::Real => x.shallow_clone(),
            Space::Image { .. } => x * 2.0 - 1.0,
        };
        let mut hook = replacing(&known, mask, |t| {
            self.diffusion.q_sample(&known, t, &known.randn_like())
        });
        let s = self.draw(x.size()[0], self.cfg.sampler(), &mut hook);
        Ok(self.space.to_data(&s))
    }

    fn completion_kind(&self) -> CompletionKind {
        CompletionKind::Approximate {
            method: METHOD.into(),
        }
    }
}
