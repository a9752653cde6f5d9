//! The two-player game every GAN variant of this crate shares (*Deep Learning* §20.10.4):
//! the generator G and the discriminator D, their losses, the k discriminator steps per
//! generator step, the two parameter stores and optimizers, metrics, sampling from a fixed
//! or fresh z, the latent interpolation figure, the "D wins" warning and the class-coverage
//! (mode-collapse) watch of [`crate::coverage`].
//!
//! # How a variant plugs in
//!
//! A variant (MLP GAN, DCGAN, conditional GAN, …) writes only its two networks:
//!
//! - a [`Generator`]: `forward(z, y, train)` maps noise `z` `[B, latent]` (and, for a
//!   conditional model, the label one-hot `y` `[B, C]`) to samples `[B, ..data shape]` in
//!   the data's range;
//! - a [`Discriminator`]: `forward(x, y, train)` maps examples `[B, ..data shape]` (and `y`)
//!   to logits `[B]`, D(x) = sigmoid(logit) being the probability that x is real.
//!
//! `train` is true in training steps (dropout, batch-norm batch statistics) and false when
//! sampling and evaluating. The variant creates its networks' parameters in two
//! `VarStore`s on the run's device (the generator's in one, the discriminator's in the
//! other), and hands both with the networks and the [`Game`] settings to
//! [`Adversarial::new`], which returns a complete [`Model`]:
//!
//! ```ignore
//! let (vs_g, vs_d) = (VarStore::new(ctx.device), VarStore::new(ctx.device));
//! let g = MyGenerator::new(&(vs_g.root() / "net"), …);
//! let d = MyDiscriminator::new(&(vs_d.root() / "net"), …);
//! let spec = Spec { name: "my-gan", params: params_table(&cfg), game: cfg.game(), latent: cfg.latent, classes: 0 };
//! let model = Adversarial::new(spec, Players { vs_g, g: Box::new(g), vs_d, d: Box::new(d) }, ctx)?;
//! ```
//!
//! The core then owns: the two stores saved as `generator.safetensors` and
//! `discriminator.safetensors`, two [`Optimizer`]s (state saved under `generator` and
//! `discriminator`; the generator's learning rate is the scheduled one times
//! [`Game::generator_lr_scale`]), a fixed noise tensor `fixed_noise` (not trained) kept in
//! the generator's store so that the per-epoch grids ([`Model::progress_samples`]) show the
//! same z before and after a resume, while [`Model::sample`] draws fresh z.
//!
//! # One training step
//!
//! With z ~ N(0, I) and a batch of data x (labels y for a conditional model), logits
//! a = D(x), b = D(G(z)):
//!
//! - the discriminator descends J⁽ᴰ⁾ = −E log D(x) − E log(1 − D(G(z))) = E softplus(−a) +
//!   E softplus(b), once per step;
//! - every `d_steps`-th step (counted by the discriminator optimizer's saved step count, so a
//!   resumed run keeps the phase), the generator descends, on the same z and with the
//!   updated D, either the minimax loss E log(1 − D(G(z))) = −E softplus(b) (the game of
//!   §20.10.4, which saturates when D rejects the samples) or the non-saturating loss
//!   −E log D(G(z)) = E softplus(−b) (what the chapter says is used in practice).
//!
//! Metrics of a step (from the discriminator before its update): `loss_d`, `loss_g` (the
//! chosen generator loss), `d_real` = mean D(x), `d_fake` = mean D(G(z)). When mean
//! D(G(z)) stays below [`D_WINS_BELOW`] over [`WATCH_STEPS`] steps a warning is logged: the
//! discriminator has won and the generator's gradient is vanishing (minimax) or its samples
//! are rejected outright.
//!
//! # WGAN-GP (beyond the chapter)
//!
//! `loss = "wgan-gp"` plays the game of Gulrajani et al. (2017), a stabilised variant a
//! user reaches for today; it is not in *Deep Learning*. D is then a critic whose output is
//! a raw score (no sigmoid). With x̂ = ε x + (1 − ε) G(z), ε ~ U(0, 1) per example:
//!
//! - the critic descends E D(G(z)) − E D(x) + λ E (‖∇ₓ D(x̂)‖₂ − 1)² ([`critic_loss`] plus
//!   [`gradient_penalty`], λ = `gp_weight`, 10 by default; the penalty is differentiated
//!   twice, `run_backward` with `create_graph`);
//! - the generator descends −E D(G(z)), every `d_steps`-th step (5 in the shipped
//!   `configs/wgan-gp-*.toml`, with Adam β = (0, 0.9); lr 1e-4 on MNIST as in the paper;
//!   the eight-Gaussians file uses λ = 0.1, as the authors' toy-data script does: λ = 10
//!   covered 3 of its 8 modes where 0.1 covered all 8).
//!
//! Its metrics: `loss_d` (penalty included), `loss_g`, `d_real` and `d_fake` = the mean
//! raw **scores** E D(x) and E D(G(z)) (not probabilities), `gp` (λ times the mean
//! penalty) and `w_dist` = E D(x) − E D(G(z)), the critic's estimate of the Wasserstein-1
//! distance between the data and the samples (it should fall as G improves). Validation
//! computes the same six (the penalty needs a gradient even there). The "D wins" warning
//! does not apply to raw scores and is not given. The critic must not mix examples (batch
//! norm) nor be random (dropout): `dcgan` drops its batch norm under `wgan-gp`, `gan`
//! refuses `dropout > 0` with it, and `lapgan` refuses `wgan-gp` (config errors naming the
//! field).
//!
//! GANs have no likelihood: [`Model::log_likelihoods`] is empty (`gm eval --parzen` gives
//! the weak Parzen-window estimate of Goodfellow et al. 2014 from samples).

use crate::coverage::{CoverageWatch, COVERAGE_SAMPLES};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{BuildContext, Conditional, Figure, LogLikelihood, Metrics, Model};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// The generator network of a GAN.
pub trait Generator {
    /// Samples `[B, ..data shape]` in the data's range from noise `z` `[B, latent]` and, for
    /// a conditional model, label one-hots `y` `[B, C]`.
    fn forward(&self, z: &Tensor, y: Option<&Tensor>, train: bool) -> Tensor;
}

/// The discriminator network of a GAN.
pub trait Discriminator {
    /// Logits `[B]` of D(x) (the probability that `x` `[B, ..data shape]` is real), given
    /// label one-hots `y` `[B, C]` for a conditional model.
    fn forward(&self, x: &Tensor, y: Option<&Tensor>, train: bool) -> Tensor;
}

/// The game's losses (`loss = "minimax" | "non-saturating" | "wgan-gp"`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GanLoss {
    /// Descend E log(1 − D(G(z))): the zero-sum game of §20.10.4.
    Minimax,
    /// Descend −E log D(G(z)): the heuristic the chapter says is used in practice.
    #[default]
    NonSaturating,
    /// WGAN-GP (Gulrajani et al. 2017), **beyond the chapter**: D is a critic with a raw
    /// score, it descends E D(G(z)) − E D(x) + λ E (‖∇D(x̂)‖ − 1)² ([`critic_loss`],
    /// [`gradient_penalty`]) and the generator descends −E D(G(z)).
    WganGp,
}

impl GanLoss {
    /// The generator's loss from the discriminator's logits (the critic's scores for
    /// [`GanLoss::WganGp`]) on generated samples.
    pub fn generator_loss(self, fake_logits: &Tensor) -> Tensor {
        match self {
            GanLoss::Minimax => -fake_logits.softplus().mean(fake_logits.kind()),
            GanLoss::NonSaturating => (-fake_logits).softplus().mean(fake_logits.kind()),
            GanLoss::WganGp => -fake_logits.mean(fake_logits.kind()),
        }
    }

    /// Whether D is a critic with a raw score (WGAN-GP) rather than a classifier.
    pub fn is_critic(self) -> bool {
        self == GanLoss::WganGp
    }
}

/// The WGAN critic's loss E D(G(z)) − E D(x) from its scores (the penalty excluded): minus
/// the critic's estimate of the Wasserstein-1 distance.
pub fn critic_loss(real_scores: &Tensor, fake_scores: &Tensor) -> Tensor {
    fake_scores.mean(fake_scores.kind()) - real_scores.mean(real_scores.kind())
}

/// Added under the square root of the gradient norm, so that a zero gradient (a dead ReLU
/// critic) has a finite derivative; it moves the norm by at most 1e-6.
pub const GP_NORM_EPS: f64 = 1e-12;

/// The gradient penalty of Gulrajani et al. (2017): `weight` · E (‖∇ₓ D(x̂)‖₂ − 1)² on
/// x̂ = ε x + (1 − ε) x̃, one ε ~ U(0, 1) per example, between `real` x and (detached)
/// `fake` x̃. The critic runs with `train` as given and the graph is kept (double backward),
/// so the returned scalar can be descended in D's parameters.
pub fn gradient_penalty(
    d: &dyn Discriminator,
    real: &Tensor,
    fake: &Tensor,
    y: Option<&Tensor>,
    weight: f64,
    train: bool,
) -> Tensor {
    let b = real.size()[0];
    let mut shape = vec![1i64; real.dim()];
    shape[0] = b;
    let eps = Tensor::rand(shape.as_slice(), (real.kind(), real.device()));
    let one_minus: Tensor = 1.0 - &eps;
    // An MLP generator's images come flat: interpolate in the data's shape.
    let fake = fake.detach().reshape(real.size());
    let x_hat = (real.detach() * &eps + fake * one_minus)
        .detach()
        .set_requires_grad(true);
    let scores = d.forward(&x_hat, y, train);
    let grad = Tensor::run_backward(&[scores.sum(scores.kind())], &[&x_hat], true, true)
        .pop()
        .expect("one input, one gradient");
    let norm = (grad
        .reshape([b, -1])
        .square()
        .sum_dim_intlist(1, false, grad.kind())
        + GP_NORM_EPS)
        .sqrt();
    (norm - 1.0).square().mean(grad.kind()) * weight
}

/// The discriminator's loss −E log D(x) − E log(1 − D(G(z))) from its logits.
pub fn discriminator_loss(real_logits: &Tensor, fake_logits: &Tensor) -> Tensor {
    (-real_logits).softplus().mean(real_logits.kind())
        + fake_logits.softplus().mean(fake_logits.kind())
}

/// The settings of the game.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Game {
    /// The losses.
    pub loss: GanLoss,
    /// Discriminator updates per generator update (k ≥ 1).
    pub d_steps: u64,
    /// The generator's learning rate over the scheduled one (the discriminator's).
    pub generator_lr_scale: f64,
    /// λ of the gradient penalty (used by [`GanLoss::WganGp`] only).
    pub gp_weight: f64,
}

/// The default λ of the gradient penalty (Gulrajani et al. 2017).
pub const GP_WEIGHT: f64 = 10.0;

impl Game {
    /// The game of the `[model]` fields `loss`, `d_steps`, `generator_lr_scale` and
    /// `gp_weight`, each bad value a config error naming its field.
    pub fn checked(
        loss: GanLoss,
        d_steps: i64,
        generator_lr_scale: f64,
        gp_weight: f64,
    ) -> Result<Game> {
        let k = "at least 1 discriminator update per generator update";
        gm_core::checks::at_least("model.d_steps", d_steps, 1, k)?;
        gm_core::checks::positive("model.generator_lr_scale", generator_lr_scale)?;
        gm_core::checks::positive("model.gp_weight", gp_weight)?;
        Ok(Game {
            loss,
            d_steps: d_steps as u64,
            generator_lr_scale,
            gp_weight,
        })
    }
}

/// What a variant tells the core about itself.
pub struct Spec {
    /// Registry name.
    pub name: &'static str,
    /// Its resolved `[model]` parameters (for [`Model::resolved_params`]).
    pub params: toml::Table,
    /// The game.
    pub game: Game,
    /// Dimension of z.
    pub latent: i64,
    /// Number of classes of a conditional model (0: unconditional).
    pub classes: i64,
}

/// The two networks and their stores.
pub struct Players {
    /// The generator's parameters.
    pub vs_g: VarStore,
    /// The generator.
    pub g: Box<dyn Generator>,
    /// The discriminator's parameters.
    pub vs_d: VarStore,
    /// The discriminator.
    pub d: Box<dyn Discriminator>,
}

/// Mean D(G(z)) below which, over [`WATCH_STEPS`] steps, the discriminator is said to win.
pub const D_WINS_BELOW: f64 = 0.01;
/// Steps of the "D wins" window.
pub const WATCH_STEPS: u64 = 100;

/// Sums mean D(G(z)) over a window of steps and warns when the discriminator wins.
#[derive(Default)]
struct Watch {
    sum: Option<Tensor>,
    steps: u64,
}

impl Watch {
    /// Adds a step's mean D(G(z)); at the end of a window, returns the window's mean.
    fn observe(&mut self, d_fake: &Tensor) -> Option<f64> {
        let s = match self.sum.take() {
            None => d_fake.detach().to_kind(Kind::Double),
            Some(s) => s + d_fake.detach().to_kind(Kind::Double),
        };
        self.steps += 1;
        if self.steps < WATCH_STEPS {
            self.sum = Some(s);
            return None;
        }
        let mean = s.double_value(&[]) / self.steps as f64;
        self.steps = 0;
        Some(mean)
    }
}

/// A GAN: any generator and discriminator playing the game of §20.10.4.
pub struct Adversarial {
    spec: Spec,
    shape: Vec<i64>,
    players: Players,
    opt_g: Optimizer,
    opt_d: Optimizer,
    fixed_noise: Tensor,
    watch: Watch,
    coverage: CoverageWatch,
}

impl Adversarial {
    /// The model of `players` for the data of `ctx`: the two optimizers from `[optim]`, and
    /// `train.n_samples` rows of fixed noise drawn now (from the seeded generator) into
    /// the generator's store.
    pub fn new(spec: Spec, players: Players, ctx: &BuildContext<'_>) -> Result<Self> {
        if spec.game.d_steps == 0 {
            return Err(Error::config("model.d_steps", 0, "at least 1"));
        }
        let n = ctx.cfg.train.n_samples.max(1);
        let fixed_noise = players
            .vs_g
            .root()
            .zeros_no_train("fixed_noise", &[n, spec.latent]);
        tch::no_grad(|| {
            fixed_noise
                .shallow_clone()
                .copy_(&Tensor::randn([n, spec.latent], (Kind::Float, ctx.device)));
        });
        let opt_g = Optimizer::new(&players.vs_g, &ctx.cfg.optim)?;
        let opt_d = Optimizer::new(&players.vs_d, &ctx.cfg.optim)?;
        Ok(Adversarial {
            shape: ctx.data.shape.clone(),
            players,
            opt_g,
            opt_d,
            watch: Watch::default(),
            coverage: CoverageWatch::off(spec.name),
            fixed_noise,
            spec,
        })
    }

    /// The model with the mode-collapse watch of [`crate::coverage`] for the data of `ctx`
    /// (on when that data is 28×28 grey MNIST or Fashion-MNIST and its classifier is cached).
    pub fn watching_coverage(mut self, ctx: &BuildContext<'_>) -> Self {
        self.coverage = CoverageWatch::for_data(self.spec.name, ctx.data, ctx.device);
        self
    }

    /// Replaces the mode-collapse watch.
    pub fn set_coverage_watch(&mut self, watch: CoverageWatch) {
        self.coverage = watch;
    }

    /// The mode-collapse watch.
    pub fn coverage_watch(&self) -> &CoverageWatch {
        &self.coverage
    }

    /// The game's settings.
    pub fn game(&self) -> Game {
        self.spec.game
    }

    /// Dimension of z.
    pub fn latent(&self) -> i64 {
        self.spec.latent
    }

    /// The generator.
    pub fn generator(&self) -> &dyn Generator {
        self.players.g.as_ref()
    }

    /// The discriminator.
    pub fn discriminator(&self) -> &dyn Discriminator {
        self.players.d.as_ref()
    }

    /// Number of generator updates made so far.
    pub fn generator_steps(&self) -> u64 {
        self.opt_g.steps()
    }

    /// Number of discriminator updates made so far.
    pub fn discriminator_steps(&self) -> u64 {
        self.opt_d.steps()
    }

    fn is_conditional(&self) -> bool {
        self.spec.classes > 0
    }

    /// One-hots `[B, C]` of labels `y` `i64 [B]`, or an error naming a label out of range.
    pub fn one_hot(&self, y: &Tensor) -> Result<Tensor> {
        let c = self.spec.classes;
        if y.numel() > 0 {
            let (lo, hi) = (y.min().int64_value(&[]), y.max().int64_value(&[]));
            if lo < 0 || hi >= c {
                return Err(Error::Msg(format!(
                    "{}: labels must lie in 0..{c}, got {}",
                    self.spec.name,
                    if lo < 0 { lo } else { hi }
                )));
            }
        }
        Ok(y.to_kind(Kind::Int64).one_hot(c).to_kind(Kind::Float))
    }

    /// The label one-hots of a batch for a conditional model (`None` when unconditional).
    fn batch_labels(&self, batch: &Batch) -> Result<Option<Tensor>> {
        if !self.is_conditional() {
            return Ok(None);
        }
        let y = batch
            .y
            .as_ref()
            .ok_or_else(|| Error::Msg(format!("{}: a batch without labels", self.spec.name)))?;
        if let Some(o) = &batch.observed {
            if o.logical_not().any().int64_value(&[]) != 0 {
                return Err(Error::config(
                    "data.labelled",
                    "a subset of the labels",
                    format!(
                        "every label for {} (it is not semi-supervised)",
                        self.spec.name
                    ),
                ));
            }
        }
        Ok(Some(self.one_hot(y)?))
    }

    fn noise(&self, n: i64) -> Tensor {
        Tensor::randn([n, self.spec.latent], (Kind::Float, self.device()))
    }

    /// Random labels (uniform over the classes) for `n` samples of a conditional model.
    fn random_labels(&self, n: i64) -> Result<Option<Tensor>> {
        if !self.is_conditional() {
            return Ok(None);
        }
        let c = Tensor::randint(self.spec.classes, [n], (Kind::Int64, self.device()));
        Ok(Some(self.one_hot(&c)?))
    }

    /// Labels 0, 1, …, C−1, 0, … for `n` samples of a conditional model (grids).
    fn cycling_labels(&self, n: i64) -> Result<Option<Tensor>> {
        if !self.is_conditional() {
            return Ok(None);
        }
        let c = Tensor::arange(n, (Kind::Int64, self.device())).remainder(self.spec.classes);
        Ok(Some(self.one_hot(&c)?))
    }

    /// The z of the progress grids: the first `n` rows of the saved fixed noise (fresh
    /// rows beyond them).
    pub fn progress_noise(&self, n: i64) -> Tensor {
        let k = self.fixed_noise.size()[0].min(n);
        let z = self.fixed_noise.narrow(0, 0, k);
        if n > k {
            Tensor::cat(&[z, self.noise(n - k)], 0)
        } else {
            z
        }
    }

    /// G(z, y) in evaluation mode, without gradients.
    pub fn generate(&self, z: &Tensor, y: Option<&Tensor>) -> Tensor {
        tch::no_grad(|| self.players.g.forward(z, y, false))
    }

    /// The discriminator's loss and the step's metrics from its logits (scores) on real
    /// `x` and generated `fake`: `loss_d`, `loss_g`, `d_real`, `d_fake` (for WGAN-GP the
    /// mean raw scores, then `gp` and `w_dist` = E D(x) − E D(G(z))).
    fn loss_and_metrics(
        &self,
        x: &Tensor,
        fake: &Tensor,
        y: Option<&Tensor>,
        train: bool,
    ) -> (Tensor, Metrics) {
        let d = &self.players.d;
        let real = d.forward(x, y, train);
        let fake_scores = d.forward(&fake.detach(), y, train);
        let loss = self.spec.game.loss;
        let loss_g = loss.generator_loss(&fake_scores).detach();
        if !loss.is_critic() {
            let p = |t: &Tensor| t.detach().sigmoid().mean(Kind::Float);
            let loss_d = discriminator_loss(&real, &fake_scores);
            let m = vec![
                ("loss_d", loss_d.detach()),
                ("loss_g", loss_g),
                ("d_real", p(&real)),
                ("d_fake", p(&fake_scores)),
            ];
            return (loss_d, m);
        }
        let gp = tch::with_grad(|| {
            gradient_penalty(d.as_ref(), x, fake, y, self.spec.game.gp_weight, train)
        });
        let wasserstein = -critic_loss(&real, &fake_scores);
        let loss_d = -&wasserstein + &gp;
        let mean = |t: &Tensor| t.detach().mean(Kind::Float);
        let m = vec![
            ("loss_d", loss_d.detach()),
            ("loss_g", loss_g),
            ("d_real", mean(&real)),
            ("d_fake", mean(&fake_scores)),
            ("gp", gp.detach()),
            ("w_dist", wasserstein.detach()),
        ];
        (loss_d, m)
    }

    /// A discriminator update on `x` against `fake` (detached); returns the metrics.
    fn discriminator_step(
        &mut self,
        x: &Tensor,
        fake: &Tensor,
        y: Option<&Tensor>,
    ) -> Result<Metrics> {
        let (loss, m) = self.loss_and_metrics(x, fake, y, true);
        self.opt_d.backward_step(&loss)?;
        Ok(m)
    }

    /// A generator update through the (updated) discriminator on `fake` = G(z).
    fn generator_step(&mut self, fake: &Tensor, y: Option<&Tensor>) -> Result<()> {
        self.opt_g
            .set_lr(self.opt_d.lr() * self.spec.game.generator_lr_scale);
        let logits = self.players.d.forward(fake, y, true);
        self.opt_g
            .backward_step(&self.spec.game.loss.generator_loss(&logits))
    }

    /// One step of the game on examples `x`, with `y` handed to both networks as it is (a
    /// class one-hot, or any other condition: LAPGAN's finer levels get the up-sampled
    /// coarser image). [`Model::train_step`] is this with the batch's label one-hots.
    pub fn train_on(&mut self, x: &Tensor, y: Option<&Tensor>) -> Result<Metrics> {
        let z = self.noise(x.size()[0]);
        let fake = self.players.g.forward(&z, y, true);
        let m = self.discriminator_step(x, &fake, y)?;
        if self.opt_d.steps().is_multiple_of(self.spec.game.d_steps) {
            self.generator_step(&fake, y)?;
        }
        if !self.spec.game.loss.is_critic() {
            self.warn_if_d_wins(&m[3].1);
        }
        Ok(m)
    }

    /// The step's metrics on examples `x` with condition `y` (as in [`Adversarial::train_on`]),
    /// networks in evaluation mode, without gradients (but for the gradient penalty of
    /// WGAN-GP, which is a gradient).
    pub fn eval_on(&self, x: &Tensor, y: Option<&Tensor>) -> Result<Metrics> {
        let fake = self.generate(&self.noise(x.size()[0]), y);
        let (_, m) = tch::no_grad(|| self.loss_and_metrics(x, &fake, y, false));
        Ok(m)
    }

    fn warn_if_d_wins(&mut self, d_fake: &Tensor) {
        if let Some(mean) = self.watch.observe(d_fake) {
            if mean < D_WINS_BELOW {
                tracing::warn!(
                    "{}: the discriminator wins: mean D(G(z)) = {mean:.2e} over the last \
                     {WATCH_STEPS} steps (generator step {}); the generator's samples are \
                     rejected outright{}",
                    self.spec.name,
                    self.opt_g.steps(),
                    if self.spec.game.loss == GanLoss::Minimax {
                        " and the minimax loss saturates: try loss = \"non-saturating\""
                    } else {
                        ""
                    }
                );
            }
        }
    }

    fn with_shape(&self, x: Tensor) -> Tensor {
        let mut shape = vec![x.size()[0]];
        shape.extend_from_slice(&self.shape);
        x.reshape(shape.as_slice())
    }

    /// Linear walks in z between pairs of fixed noise vectors: `rows` rows of `steps`.
    fn interpolation(&self, rows: i64, steps: i64) -> Result<Figure> {
        let k = self.fixed_noise.size()[0];
        let a = self.fixed_noise.narrow(0, 0, rows.min(k));
        let b = self.fixed_noise.roll([1], [0]).narrow(0, 0, rows.min(k));
        let rows = a.size()[0];
        let t = Tensor::linspace(0.0, 1.0, steps, (Kind::Float, self.device())).view([1, steps, 1]);
        let one_minus_t: Tensor = 1.0 - &t;
        let z = (a.unsqueeze(1) * &one_minus_t + b.unsqueeze(1) * &t)
            .reshape([rows * steps, self.spec.latent]);
        // A conditional model keeps one class per row.
        let y = self
            .cycling_labels(rows)?
            .map(|y| y.repeat_interleave_self_int(steps, 0, None::<i64>));
        Ok(Figure {
            name: "latent-interpolation".into(),
            caption: format!(
                "each row: G(z) along the straight line between two fixed noise vectors ({steps} steps){}",
                if self.is_conditional() { ", one class per row" } else { "" }
            ),
            images: self.with_shape(self.generate(&z, y.as_ref())),
            per_row: steps,
        })
    }
}

impl Conditional for Adversarial {
    fn num_classes(&self) -> i64 {
        self.spec.classes
    }

    fn sample_class(&self, n: i64, class: i64) -> Result<Tensor> {
        gm_core::model::check_class(self.spec.name, class, self.spec.classes)?;
        let y = self.one_hot(&Tensor::full([n], class, (Kind::Int64, self.device())))?;
        Ok(self.with_shape(self.generate(&self.noise(n), Some(&y))))
    }
}

impl Model for Adversarial {
    fn name(&self) -> &str {
        self.spec.name
    }

    fn var_stores(&self) -> Vec<(&'static str, &VarStore)> {
        vec![
            ("generator", &self.players.vs_g),
            ("discriminator", &self.players.vs_d),
        ]
    }

    fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        vec![
            ("generator", &mut self.players.vs_g),
            ("discriminator", &mut self.players.vs_d),
        ]
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        vec![
            ("generator", &mut self.opt_g),
            ("discriminator", &mut self.opt_d),
        ]
    }

    fn optimizers_ref(&self) -> Vec<(&'static str, &Optimizer)> {
        vec![("generator", &self.opt_g), ("discriminator", &self.opt_d)]
    }

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let y = self.batch_labels(batch)?;
        self.train_on(&batch.x, y.as_ref())
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let y = self.batch_labels(batch)?;
        self.eval_on(&batch.x, y.as_ref())
    }

    /// G(z) for fresh z ~ N(0, I); a conditional model draws each sample's class uniformly.
    fn sample(&self, n: i64) -> Result<Tensor> {
        let y = self.random_labels(n)?;
        Ok(self.with_shape(self.generate(&self.noise(n), y.as_ref())))
    }

    /// G(z) for the saved fixed noise (fresh z beyond its rows); classes cycle 0, 1, ….
    fn progress_samples(&self, n: i64) -> Result<Tensor> {
        let z = self.progress_noise(n);
        let y = self.cycling_labels(n)?;
        Ok(self.with_shape(self.generate(&z, y.as_ref())))
    }

    /// The class coverage of [`COVERAGE_SAMPLES`] fresh samples when the watch is on
    /// ([`crate::coverage`]).
    fn epoch_checks(&mut self) -> Result<Vec<(&'static str, f64)>> {
        if !self.coverage.is_on() {
            return Ok(Vec::new());
        }
        let s = self.sample(COVERAGE_SAMPLES)?;
        self.coverage.check(&s)
    }

    fn figures(&self, _x: &Tensor) -> Result<Vec<Figure>> {
        Ok(vec![self.interpolation(8, 10)?])
    }

    /// None: a GAN defines no density (the Parzen estimate is `gm eval --parzen`'s).
    fn log_likelihoods(&self, _x: &Tensor, _cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        Ok(Vec::new())
    }

    fn resolved_params(&self) -> toml::Table {
        self.spec.params.clone()
    }

    fn device(&self) -> Device {
        self.players.vs_g.device()
    }

    fn as_conditional(&self) -> Option<&dyn Conditional> {
        self.is_conditional().then_some(self as &dyn Conditional)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_reports_the_mean_of_each_full_window() {
        let mut w = Watch::default();
        let mut reports = Vec::new();
        for i in 0..2 * WATCH_STEPS + 5 {
            let v = if i < WATCH_STEPS { 0.004 } else { 0.5 };
            reports.extend(w.observe(&Tensor::from(v as f32)));
        }
        assert_eq!(reports.len(), 2);
        approx::assert_abs_diff_eq!(reports[0], 0.004, epsilon = 1e-6);
        approx::assert_abs_diff_eq!(reports[1], 0.5, epsilon = 1e-6);
        assert!(reports[0] < D_WINS_BELOW && reports[1] > D_WINS_BELOW);
    }
}
