use super::config::LapganConfig;
use super::nets::{ResidualDiscriminator, ResidualGenerator};
use super::pyramid;
use crate::adversarial::{Adversarial, Players, Spec};
use crate::coverage::{CoverageWatch, COVERAGE_SAMPLES};
use crate::dcgan::image_shape;
use crate::gan::{MlpDiscriminator, MlpGenerator};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{
    params_table, parse_params, BuildContext, Figure, LogLikelihood, Metrics, Model,
};
use gm_core::optim::Optimizer;
use gm_core::Result;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Store and optimizer names of each level's generator and discriminator.
const STORES: [[&str; 2]; 4] = [
    ["level0-generator", "level0-discriminator"],
    ["level1-generator", "level1-discriminator"],
    ["level2-generator", "level2-discriminator"],
    ["level3-generator", "level3-discriminator"],
];

/// Metric names of each level (the shared game's four, suffixed by the level).
const METRICS: [[&str; 4]; 4] = [
    ["loss_d0", "loss_g0", "d_real0", "d_fake0"],
    ["loss_d1", "loss_g1", "d_real1", "d_fake1"],
    ["loss_d2", "loss_g2", "d_real2", "d_fake2"],
    ["loss_d3", "loss_g3", "d_real3", "d_fake3"],
];

/// A Laplacian pyramid of GANs (Denton et al. 2015), coarsest level first.
pub struct Lapgan {
    cfg: LapganConfig,
    /// `[C, h, w]` of every level, coarsest first.
    sizes: Vec<[i64; 3]>,
    levels: Vec<Adversarial>,
    coverage: CoverageWatch,
}

/// Builds a LAPGAN from a run config (the `lapgan` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: LapganConfig = parse_params("lapgan", &ctx.cfg.model.params)?;
    Ok(Box::new(Lapgan::new(cfg, ctx)?))
}

/// The name of store / optimizer `name` ("generator" or "discriminator") of level `k`.
fn renamed(k: usize, name: &str) -> &'static str {
    STORES[k][usize::from(name != "generator")]
}

impl Lapgan {
    /// A LAPGAN for the images of `ctx` (height and width multiples of 2^(levels − 1)).
    pub fn new(cfg: LapganConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let n = cfg.levels as usize;
        let [c, h, w] = image_shape("lapgan", &ctx.data.shape, &ctx.data.name, 1 << (n - 1))?;
        let sizes: Vec<[i64; 3]> = (0..n)
            .map(|k| [c, h >> (n - 1 - k), w >> (n - 1 - k)])
            .collect();
        let game = cfg.game()?;
        let spec = |latent| Spec {
            name: "lapgan",
            params: params_table(&cfg),
            game,
            latent,
            classes: 0,
        };
        let mut levels = Vec::with_capacity(n);
        for (k, &image) in sizes.iter().enumerate() {
            let (vs_g, vs_d) = (VarStore::new(ctx.device), VarStore::new(ctx.device));
            let (gp, dp) = (vs_g.root() / "net", vs_d.root() / "net");
            let (players, latent) = if k == 0 {
                let coarse = cfg.coarse();
                let dim = image.iter().product();
                let g = MlpGenerator::new(&gp, &coarse, 0, dim, true);
                let d = MlpDiscriminator::new(&dp, &coarse, 0, dim);
                ((Box::new(g) as _, Box::new(d) as _), coarse.latent)
            } else {
                let g = ResidualGenerator::new(&gp, image, &cfg.channels, cfg.kernel);
                let d = ResidualDiscriminator::new(&dp, image, &cfg.channels, cfg.kernel);
                let latent = g.latent();
                ((Box::new(g) as _, Box::new(d) as _), latent)
            };
            let (g, d) = players;
            let players = Players { vs_g, g, vs_d, d };
            levels.push(Adversarial::new(spec(latent), players, ctx)?);
        }
        let coverage = CoverageWatch::for_data("lapgan", ctx.data, ctx.device);
        Ok(Lapgan {
            cfg,
            sizes,
            levels,
            coverage,
        })
    }

    /// The GAN of each level, coarsest first.
    pub fn levels(&self) -> &[Adversarial] {
        &self.levels
    }

    /// `n` samples drawn coarse to fine, at every level (`[n, C, h_k, w_k]`, coarsest
    /// first): the coarsest from its GAN, each finer one as u(coarser) plus its generator's
    /// residual given u(coarser), clamped to [0, 1].
    pub fn sample_levels(&self, n: i64) -> Vec<Tensor> {
        let dev = self.device();
        self.levels_from(n, |level| {
            Tensor::randn([n, level.latent()], (Kind::Float, dev))
        })
    }

    /// As [`Lapgan::sample_levels`], with each level's z the saved fixed noise of that
    /// level ([`Adversarial::progress_noise`]): the same samples before and after a resume.
    pub fn fixed_levels(&self, n: i64) -> Vec<Tensor> {
        self.levels_from(n, |level| level.progress_noise(n))
    }

    /// Samples at every level, coarse to fine, each level's z from `noise(level)`.
    fn levels_from(&self, n: i64, noise: impl Fn(&Adversarial) -> Tensor) -> Vec<Tensor> {
        let [c, h, w] = self.sizes[0];
        let coarse = &self.levels[0];
        let mut x = coarse.generate(&noise(coarse), None).view([n, c, h, w]);
        let mut out = vec![x.shallow_clone()];
        for level in &self.levels[1..] {
            let cond = pyramid::up(&x);
            x = (level.generate(&noise(level), Some(&cond)) + &cond).clamp(0.0, 1.0);
            out.push(x.shallow_clone());
        }
        out
    }
}

/// What each level trains on for images `x`: the coarsest level's images (no condition),
/// then every finer level's residual with its condition, the up-sampled coarser image.
fn level_inputs(x: &Tensor, levels: usize) -> Vec<(Tensor, Option<Tensor>)> {
    let gauss = pyramid::gaussian(x, levels);
    let mut inputs = vec![(gauss[0].shallow_clone(), None)];
    let finer = pyramid::residuals(&gauss).into_iter();
    inputs.extend(finer.map(|(cond, h)| (h, Some(cond))));
    inputs
}

/// Level `k`'s metrics under their level names.
fn named(k: usize, m: Metrics) -> impl Iterator<Item = (&'static str, Tensor)> {
    m.into_iter()
        .zip(METRICS[k])
        .map(|((_, t), name)| (name, t))
}

impl Model for Lapgan {
    fn name(&self) -> &str {
        "lapgan"
    }

    fn var_stores(&self) -> Vec<(&'static str, &VarStore)> {
        let per = self.levels.iter().map(Adversarial::var_stores);
        per.enumerate()
            .flat_map(|(k, v)| v.into_iter().map(move |(n, vs)| (renamed(k, n), vs)))
            .collect()
    }

    fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        let per = self.levels.iter_mut().map(Adversarial::var_stores_mut);
        per.enumerate()
            .flat_map(|(k, v)| v.into_iter().map(move |(n, vs)| (renamed(k, n), vs)))
            .collect()
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        let per = self.levels.iter_mut().map(Adversarial::optimizers);
        per.enumerate()
            .flat_map(|(k, v)| v.into_iter().map(move |(n, o)| (renamed(k, n), o)))
            .collect()
    }

    fn optimizers_ref(&self) -> Vec<(&'static str, &Optimizer)> {
        let per = self.levels.iter().map(Adversarial::optimizers_ref);
        per.enumerate()
            .flat_map(|(k, v)| v.into_iter().map(move |(n, o)| (renamed(k, n), o)))
            .collect()
    }

    /// One step of every level's game on the batch's pyramid (each level is trained on its
    /// own data, independently of the others, as in Denton et al.).
    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let inputs = level_inputs(&batch.x, self.levels.len());
        let mut all = Vec::new();
        for (k, (level, (x, cond))) in self.levels.iter_mut().zip(&inputs).enumerate() {
            all.extend(named(k, level.train_on(x, cond.as_ref())?));
        }
        Ok(all)
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let inputs = level_inputs(&batch.x, self.levels.len());
        let mut all = Vec::new();
        for (k, (level, (x, cond))) in self.levels.iter().zip(&inputs).enumerate() {
            all.extend(named(k, level.eval_on(x, cond.as_ref())?));
        }
        Ok(all)
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        Ok(self.sample_levels(n).pop().expect("at least two levels"))
    }

    /// The finest level of samples drawn from every level's saved fixed noise.
    fn progress_samples(&self, n: i64) -> Result<Tensor> {
        Ok(self.fixed_levels(n).pop().expect("at least two levels"))
    }

    /// The class coverage of fresh samples when the watch is on ([`crate::coverage`]).
    fn epoch_checks(&mut self) -> Result<Vec<(&'static str, f64)>> {
        if !self.coverage.is_on() {
            return Ok(Vec::new());
        }
        let s = self.sample(COVERAGE_SAMPLES)?;
        self.coverage.check(&s)
    }

    /// Eight samples at every level, coarse to fine: row k shows level k up-sampled to the
    /// full size (nearest neighbour), so each column follows one sample.
    fn figures(&self, _x: &Tensor) -> Result<Vec<Figure>> {
        let per_row = 8;
        let levels = self.sample_levels(per_row);
        let [_, h, w] = *self.sizes.last().expect("levels");
        let rows: Vec<Tensor> = levels
            .iter()
            .map(|x| x.upsample_nearest2d([h, w], None, None))
            .collect();
        let sizes: Vec<String> = self
            .sizes
            .iter()
            .map(|s| format!("{}×{}", s[1], s[2]))
            .collect();
        Ok(vec![Figure {
            name: "pyramid-levels".into(),
            caption: format!(
                "each column one sample drawn coarse to fine; rows: levels {} (coarser ones \
                 shown enlarged)",
                sizes.join(" → ")
            ),
            images: Tensor::cat(&rows, 0),
            per_row,
        }])
    }

    /// None: no level defines a density.
    fn log_likelihoods(&self, _x: &Tensor, _cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        Ok(Vec::new())
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.levels[0].device()
    }
}
