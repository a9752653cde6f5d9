use super::config::M2Config;
use super::m1::M1;
use crate::vae::{chunked, gaussian_log_prob, kl_to_standard_normal, Likelihood, LOG_2PI};
use gm_core::config::RunConfig;
use gm_core::data::{Batch, Binarization, Dataset, Split};
use gm_core::model::{
    params_table, parse_params, BuildContext, Conditional, LikelihoodKind, LogLikelihood, Metrics,
    Model, Statistic, StatisticKind,
};
use gm_core::nets::Mlp;
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use gm_eval::importance::{importance_log_likelihood, mean_and_std_err};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

/// The M2 model: classifier q(y | x), encoder q(z | x, y), decoder p(x | y, z); with an
/// M1 below it (M1+M2), x is M1's code z₁.
pub struct M2 {
    pub(crate) cfg: M2Config,
    pub(crate) classes: i64,
    shape: Vec<i64>,
    pub(crate) dim: i64,
    /// Gaussian p(x | y, z) (mean and log-variance per dimension) instead of Bernoulli.
    gaussian: bool,
    pub(crate) m1: Option<M1>,
    pub(crate) vs: VarStore,
    enc: Mlp,
    enc_head: nn::Linear,
    dec: Mlp,
    dec_head: nn::Linear,
    cls: Mlp,
    cls_head: nn::Linear,
    opt: Optimizer,
    /// The observed training examples and labels under `[data] labelled = N`, and whether
    /// their pixels are intensities to binarize at every draw (dynamic binarization).
    pool: Option<(Tensor, Tensor, bool)>,
}

/// Builds M2 from a run config (the `m2` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: M2Config = parse_params("m2", &ctx.cfg.model.params)?;
    Ok(Box::new(M2::new(cfg, ctx)?))
}

/// Per-example bounds of a batch: L(x, c) for every class `[C, B]` and log q(y | x) `[B, C]`.
pub(crate) struct Bounds {
    pub(crate) per_class: Tensor,
    pub(crate) log_q_y: Tensor,
}

impl Bounds {
    /// U(x) = Σ_y q(y | x) L(x, y) + H(q(y | x)), `[B]`.
    pub(crate) fn unlabelled(&self) -> Tensor {
        let q = self.log_q_y.exp();
        let expected = (&q * self.per_class.tr()).sum_dim_intlist(1, false, Kind::Float);
        let entropy = -(&q * &self.log_q_y).sum_dim_intlist(1, false, Kind::Float);
        expected + entropy
    }

    /// L(x, y) at labels `y` (entries < 0 read class 0), `[B]`.
    fn labelled(&self, y: &Tensor) -> Tensor {
        self.per_class
            .gather(0, &y.clamp_min(0).unsqueeze(0), false)
            .squeeze_dim(0)
    }
}

impl M2 {
    /// A new M2 (or M1+M2) for the labelled data of `ctx`.
    pub fn new(cfg: M2Config, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        let classes = match (data.num_classes, &data.train.y) {
            (Some(c), Some(_)) if c > 1 => c,
            _ => {
                return Err(Error::config(
                    "data.dataset",
                    &data.name,
                    "a dataset with at least two classes of labels (M2 is semi-supervised)",
                ))
            }
        };
        let m1 = (cfg.m1_latent > 0)
            .then(|| M1::new(&cfg, ctx))
            .transpose()?;
        let gaussian = resolve_likelihood(&cfg, data, m1.is_some())?;
        let dim: i64 = match &m1 {
            Some(_) => cfg.m1_latent,
            None => data.shape.iter().product(),
        };
        let per_dim = if gaussian { 2 } else { 1 };
        let vs = VarStore::new(ctx.device);
        let root = vs.root();
        let init = cfg.init;
        let lin = |path: nn::Path, i: i64, o: i64| init.linear(path, i, o);
        let mlp =
            |path: nn::Path, i: i64, sizes: &[i64]| Mlp::with_init(&path, "fc", i, sizes, init);
        let enc = mlp(&root / "encoder", dim + classes, &cfg.hidden);
        let enc_head = lin(&root / "encoder" / "head", enc.out_dim(), 2 * cfg.latent);
        let rev: Vec<i64> = cfg.hidden.iter().rev().copied().collect();
        let dec = mlp(&root / "decoder", cfg.latent + classes, &rev);
        let dec_head = lin(&root / "decoder" / "head", dec.out_dim(), per_dim * dim);
        let cls = mlp(&root / "classifier", dim, &cfg.classifier_hidden);
        let cls_head = lin(&root / "classifier" / "head", cls.out_dim(), classes);
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        let pool = match data.observed_labels(ctx.cfg.data.options.labelled, ctx.cfg.seed)? {
            Some(mask) => {
                let idx = mask
                    .nonzero()
                    .squeeze_dim(1)
                    .to_device(data.train.x.device());
                let y = data.train.y.as_ref().expect("labels checked above");
                let dynamic = matches!(data.binarization, Binarization::Dynamic { .. });
                Some((
                    data.train.x.index_select(0, &idx).to_device(ctx.device),
                    y.index_select(0, &idx)
                        .to_kind(Kind::Int64)
                        .to_device(ctx.device),
                    dynamic,
                ))
            }
            None => None,
        };
        Ok(M2 {
            cfg,
            classes,
            shape: data.shape.clone(),
            dim,
            gaussian,
            m1,
            vs,
            enc,
            enc_head,
            dec,
            dec_head,
            cls,
            cls_head,
            opt,
            pool,
        })
    }

    /// log q(y | x), `[B, C]`.
    pub fn log_q_y(&self, x: &Tensor) -> Tensor {
        let h = self
            .cls
            .forward(&x.reshape([-1, self.dim]), self.cfg.activation);
        self.cls_head.forward(&h).log_softmax(-1, Kind::Float)
    }

    /// The one-hot of every class, broadcast over a batch of `b`: `[C, b, C]`.
    fn class_codes(&self, b: i64) -> Tensor {
        Tensor::eye(self.classes, (Kind::Float, self.device()))
            .unsqueeze(1)
            .expand([self.classes, b, self.classes], false)
    }

    /// q(z | x, y) for every class: mean and log-variance `[C, B, latent]`.
    fn encode_all(&self, x: &Tensor) -> (Tensor, Tensor) {
        let b = x.size()[0];
        let xs = x.unsqueeze(0).expand([self.classes, b, self.dim], false);
        let h = Tensor::cat(&[xs, self.class_codes(b)], -1);
        let out = self
            .enc_head
            .forward(&self.enc.forward(&h, self.cfg.activation));
        let mut parts = out.chunk(2, -1);
        let log_var = parts.pop().expect("two halves");
        (parts.pop().expect("two halves"), log_var)
    }

    /// Decoder output (logits, or Gaussian mean and log-variance) for `z`
    /// `[C, …, B, latent]` with class codes `y` broadcast to it.
    pub(crate) fn decode_logits(&self, z: &Tensor, y: &Tensor) -> Tensor {
        let mut shape = z.size();
        *shape.last_mut().expect("a last dimension") = self.classes;
        let h = Tensor::cat(&[z.shallow_clone(), y.expand(shape.as_slice(), false)], -1);
        self.dec_head
            .forward(&self.dec.forward(&h, self.cfg.activation))
    }

    /// log p(x | y, z) from the decoder's output, summed over the last dimension; `x`
    /// `[B, D]` broadcasts against `out` `[…, B, D′]`.
    pub(crate) fn log_px(&self, out: &Tensor, x: &Tensor) -> Tensor {
        if self.gaussian {
            gaussian_log_prob(out, x, self.dim, self.cfg.min_log_var)
        } else {
            bernoulli_log_prob(out, x)
        }
    }

    /// L(x, c) for every class with one z sample each, and log q(y | x); `x` is M2's data
    /// (M1's codes under M1+M2).
    pub(crate) fn bounds(&self, x: &Tensor) -> Bounds {
        let x = x.reshape([-1, self.dim]);
        let (mu, log_var) = self.encode_all(&x);
        let z = &mu + (&log_var * 0.5).exp() * mu.randn_like();
        let out = self.decode_logits(&z, &self.class_codes(x.size()[0]));
        let log_px = self.log_px(&out, &x);
        let log_py = -(self.classes as f64).ln();
        Bounds {
            per_class: log_px + log_py - kl_to_standard_normal(&mu, &log_var),
            log_q_y: self.log_q_y(&x),
        }
    }

    /// The batch's labels and which are observed (all, when the batch does not say).
    fn labels(&self, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let y = batch
            .y
            .as_ref()
            .ok_or_else(|| Error::Msg("m2: a batch without labels".into()))?
            .to_kind(Kind::Int64);
        let observed = match &batch.observed {
            Some(o) => o.shallow_clone(),
            None => y.ge(0),
        };
        let hi = y.max().int64_value(&[]);
        if hi >= self.classes {
            return Err(Error::Msg(format!(
                "m2: label {hi} out of range: the model has classes 0..={}",
                self.classes - 1
            )));
        }
        Ok((y, observed))
    }

    /// `labelled_batch` observed examples drawn with replacement from the pool (binarized
    /// afresh under dynamic binarization), when the run hides some labels; raw inputs, not
    /// M1's codes.
    pub(crate) fn labelled_draw(&self) -> Option<(Tensor, Tensor)> {
        let (x, y, dynamic) = self.pool.as_ref()?;
        if self.cfg.labelled_batch == 0 {
            return None;
        }
        let idx = Tensor::randint(
            x.size()[0],
            [self.cfg.labelled_batch],
            (Kind::Int64, x.device()),
        );
        let xs = x.index_select(0, &idx);
        let xs = if *dynamic { xs.bernoulli() } else { xs };
        Some((xs, y.index_select(0, &idx)))
    }

    /// M2's data for inputs `x`: `x` itself, or M1's codes (drawn, or their means).
    pub(crate) fn features(&self, x: &Tensor, draw: bool) -> Tensor {
        match &self.m1 {
            Some(m1) => m1.codes(x, draw),
            None => x.shallow_clone(),
        }
    }

    /// The loss and metrics of a batch with M2's data `x` and the labels of `batch`:
    /// −(mean of L on labelled and U on unlabelled examples) + α · a mean cross-entropy of
    /// q(y | x): on `extra` labelled examples when given (training with hidden labels), else
    /// on the batch's labelled ones; the classification error of q(y | x) on the batch's
    /// labelled ones.
    fn batch_metrics(
        &self,
        x: &Tensor,
        batch: &Batch,
        extra: Option<(Tensor, Tensor)>,
    ) -> Result<Metrics> {
        let (y, observed) = self.labels(batch)?;
        let b = self.bounds(x);
        let bound = b.labelled(&y).where_self(&observed, &b.unlabelled());
        let obs = observed.to_kind(Kind::Float);
        let n_obs = obs.sum(Kind::Float).clamp_min(1.0);
        let log_q = b
            .log_q_y
            .gather(1, &y.clamp_min(0).unsqueeze(1), false)
            .squeeze_dim(1);
        let ce = match extra {
            Some((xl, yl)) => -self
                .log_q_y(&xl)
                .gather(1, &yl.unsqueeze(1), false)
                .mean(Kind::Float),
            None => -(&log_q * &obs).sum(Kind::Float) / &n_obs,
        };
        let wrong = b
            .log_q_y
            .argmax(1, false)
            .ne_tensor(&y)
            .to_kind(Kind::Float);
        let error = (wrong * &obs).sum(Kind::Float) / &n_obs;
        let bound = bound.mean(Kind::Float);
        let loss = -&bound + &ce * self.cfg.alpha;
        Ok(vec![
            ("loss", loss),
            ("bound", bound),
            ("cross_entropy", ce),
            ("error", error),
        ])
    }

    /// log p(x, z | c) − log q(z | x, c) for `k` draws per class, pooled: `[C·k, B]`; their
    /// mean estimates p(x) = (1/C) Σ_c p(x | c).
    fn log_weights(&self, x: &Tensor, k: i64) -> Tensor {
        let x = x.reshape([-1, self.dim]);
        let b = x.size()[0];
        let (mu, log_var) = self.encode_all(&x); // [C, B, L]
        let eps = Tensor::randn(
            [self.classes, k, b, self.cfg.latent],
            (mu.kind(), mu.device()),
        );
        let z = mu.unsqueeze(1) + (log_var.unsqueeze(1) * 0.5).exp() * &eps;
        let codes = self.class_codes(b).unsqueeze(1);
        let log_px = self.log_px(&self.decode_logits(&z, &codes), &x);
        let sum = |t: Tensor| t.sum_dim_intlist(-1, false, Kind::Float);
        let half = 0.5 * LOG_2PI * self.cfg.latent as f64;
        let log_pz = sum(z.square() * -0.5) - half;
        let log_qz = sum(eps.square() * -0.5 - log_var.unsqueeze(1) * 0.5) - half;
        (log_px + log_pz - log_qz).reshape([self.classes * k, b])
    }

    /// Samples for labels `y` `i64 [n]`, z ~ N(0, I), shaped like the data: Bernoulli
    /// means; Gaussian draws x ~ N(μ, σ²); under M1+M2 a code drawn so, decoded by M1's means.
    fn sample_labels(&self, y: &Tensor) -> Tensor {
        let n = y.size()[0];
        let z = Tensor::randn([n, self.cfg.latent], (Kind::Float, self.device()));
        let codes = y.one_hot(self.classes).to_kind(Kind::Float);
        let mut shape = vec![n];
        shape.extend_from_slice(&self.shape);
        let x = tch::no_grad(|| {
            let out = self.decode_logits(&z, &codes);
            if !self.gaussian {
                return out.sigmoid();
            }
            let mean = out.narrow(-1, 0, self.dim);
            let log_var = out
                .narrow(-1, self.dim, self.dim)
                .clamp_min(self.cfg.min_log_var);
            let draw = &mean + (log_var * 0.5).exp() * mean.randn_like();
            match &self.m1 {
                Some(m1) => m1.vae.decode_mean(&draw),
                None => draw,
            }
        });
        x.reshape(shape.as_slice())
    }
}

impl M2 {
    /// Under M1+M2 (`m1_elbo` given: M1's mean one-draw ELBO on the batch), `metrics` with
    /// that ELBO and the phase (1: M1 trains, 2: M2 trains) added; in phase 1 (`m1_phase`)
    /// the loss is M1's, −ELBO.
    fn with_m1(&self, mut metrics: Metrics, m1_elbo: Option<Tensor>, m1_phase: bool) -> Metrics {
        let Some(elbo) = m1_elbo else {
            return metrics;
        };
        let phase = if m1_phase { 1.0 } else { 2.0 };
        if m1_phase {
            metrics[0].1 = -&elbo;
        }
        let device = elbo.device();
        metrics.push(("m1_elbo", elbo));
        metrics.push(("phase", Tensor::from(phase).to_device(device)));
        metrics
    }

    /// M2's data for `x` (under M1+M2 a draw of M1's codes) and, under M1+M2, M1's mean
    /// ELBO at that draw: one pass of M1 for both.
    fn features_and_m1_elbo(&self, x: &Tensor) -> (Tensor, Option<Tensor>) {
        match &self.m1 {
            Some(m1) => {
                let (z, elbo) = m1.codes_and_elbo(x);
                (z, Some(elbo))
            }
            None => (x.shallow_clone(), None),
        }
    }

    /// The M1+M2 lower bound on log p(x) = log ∫ p(x | z₁) p(z₁) dz₁ with p(z₁) M2's
    /// marginal: E_q(z₁|x)[log p(x | z₁) − log q(z₁ | x) + U(z₁)], U(z₁) ≤ log p(z₁) M2's
    /// bound with y summed out; one z₁ and one z₂ draw per example.
    fn stacked_bound(&self, x: &Tensor, cfg: &RunConfig) -> Result<LogLikelihood> {
        let m1 = self.m1.as_ref().expect("called under M1+M2");
        let n = x.size()[0];
        let values = chunked(n, cfg.data.eval_batch_size, |start, len| {
            tch::no_grad(|| {
                let (terms, z1) = m1.bound_terms(&x.narrow(0, start, len));
                terms + self.bounds(&z1).unlabelled()
            })
        });
        let (mean, std_err) = mean_and_std_err(&values)?;
        Ok(LogLikelihood {
            kind: LikelihoodKind::LowerBound,
            method: "m1+m2-bound".into(),
            settings: serde_json::json!({
                "z1_samples": 1,
                "z2_samples": 1,
                "bound": "E_q(z1|x)[log p(x|z1) - log q(z1|x) + U(z1)], U M2's bound with y summed out",
            }),
            mean,
            std_err,
            n,
        })
    }
}

/// Whether M2's decoder is Gaussian: Bernoulli needs binary data and M2 alone; M1's codes
/// are real-valued.
fn resolve_likelihood(cfg: &M2Config, data: &Dataset, stacked: bool) -> Result<bool> {
    match (cfg.likelihood, stacked) {
        (Likelihood::Bernoulli, true) => Err(Error::config(
            "model.likelihood",
            "\"bernoulli\"",
            "\"gaussian\" or \"auto\": with m1_latent > 0, M2 models M1's real-valued codes",
        )),
        (Likelihood::Bernoulli, false) if !data.binary => Err(Error::config(
            "model.likelihood",
            "\"bernoulli\"",
            format!(
                "binary data for a Bernoulli decoder: set data.binarize (dataset {} is real-valued), or model.likelihood = \"gaussian\"",
                data.name
            ),
        )),
        (Likelihood::Bernoulli, false) => Ok(false),
        (Likelihood::Gaussian, _) | (Likelihood::Auto, true) => Ok(true),
        (Likelihood::Auto, false) => Ok(!data.binary),
    }
}

/// log p(x | logits) of independent Bernoulli pixels, summed over the last dimension; `x`
/// `[B, D]` broadcasts against `logits` `[…, B, D]`.
fn bernoulli_log_prob(logits: &Tensor, x: &Tensor) -> Tensor {
    (logits * x - logits.softplus()).sum_dim_intlist(-1, false, Kind::Float)
}

impl Conditional for M2 {
    fn num_classes(&self) -> i64 {
        self.classes
    }

    /// Decoder means E[x | y = class, z], z ~ N(0, I).
    fn sample_class(&self, n: i64, class: i64) -> Result<Tensor> {
        gm_core::model::check_class("m2", class, self.classes)?;
        Ok(self.sample_labels(&Tensor::full([n], class, (Kind::Int64, self.device()))))
    }
}

impl Model for M2 {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "m2"
    }

    fn var_stores(&self) -> Vec<(&'static str, &VarStore)> {
        let mut v = vec![("model", &self.vs)];
        v.extend(self.m1.as_ref().map(|m1| ("m1", &m1.vae.vs)));
        v
    }

    fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        let mut v = vec![("model", &mut self.vs)];
        v.extend(self.m1.as_mut().map(|m1| ("m1", &mut m1.vae.vs)));
        v
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        let mut v = vec![("adam", &mut self.opt)];
        v.extend(self.m1.as_mut().map(|m1| ("m1-adam", &mut m1.vae.opt)));
        v
    }

    fn optimizers_ref(&self) -> Vec<(&'static str, &Optimizer)> {
        let mut v = vec![("adam", &self.opt)];
        v.extend(self.m1.as_ref().map(|m1| ("m1-adam", &m1.vae.opt)));
        v
    }

    /// M2's update; under M1+M2 first M1's for `m1_steps` updates (M2's metrics then
    /// measured on the codes without an update).
    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        if let Some(m1) = self.m1.as_mut().filter(|m1| m1.training()) {
            // M1's own metrics give its ELBO (before its update, as M2's metrics are).
            let m1_metrics = m1.vae.train_step(&Batch::inputs(&batch.x))?;
            let elbo = m1_metrics
                .into_iter()
                .find(|(k, _)| *k == "elbo")
                .map(|(_, t)| t)
                .ok_or_else(|| gm_core::Error::Msg("M1 reported no elbo metric".into()))?;
            return tch::no_grad(|| {
                let m = self.batch_metrics(&self.features(&batch.x, true), batch, None)?;
                Ok(self.with_m1(m, Some(elbo), true))
            });
        }
        let extra = self
            .labelled_draw()
            .map(|(x, y)| (self.features(&x, true), y));
        let (features, m1_elbo) = self.features_and_m1_elbo(&batch.x);
        let m = self.batch_metrics(&features, batch, extra)?;
        self.opt.backward_step(&m[0].1)?;
        let m = m.into_iter().map(|(k, t)| (k, t.detach())).collect();
        Ok(self.with_m1(m, m1_elbo, false))
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        tch::no_grad(|| {
            let (features, m1_elbo) = self.features_and_m1_elbo(&batch.x);
            let m = self.batch_metrics(&features, batch, None)?;
            let m1_phase = self.m1.as_ref().is_some_and(M1::training);
            Ok(self.with_m1(m, m1_elbo, m1_phase))
        })
    }

    /// Decoder means with y drawn uniformly.
    fn sample(&self, n: i64) -> Result<Tensor> {
        let y = Tensor::randint(self.classes, [n], (Kind::Int64, self.device()));
        Ok(self.sample_labels(&y))
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        if self.m1.is_some() {
            return Ok(vec![self.stacked_bound(x, cfg)?]);
        }
        let n = x.size()[0];
        let us = chunked(n, cfg.data.eval_batch_size, |start, len| {
            tch::no_grad(|| self.bounds(&x.narrow(0, start, len)).unlabelled())
        });
        let (mean, std_err) = mean_and_std_err(&us)?;
        let bound = LogLikelihood {
            kind: LikelihoodKind::LowerBound,
            method: "m2-bound".into(),
            settings: serde_json::json!({
                "z_samples": 1,
                "kl": "analytic",
                "labels": "summed out: Σ_y q(y|x) L(x, y) + H(q(y|x))",
            }),
            mean,
            std_err,
            n,
        };
        let k = cfg.eval.is_samples;
        let chunk = cfg
            .eval
            .chunk
            .min((4_000_000 / (k * self.classes * self.dim).max(1)).max(1));
        let mut is = importance_log_likelihood(x, k, chunk, |xc, k| Ok(self.log_weights(xc, k)))?;
        is.settings["labels"] =
            "log p(x) = log Σ_y p(y) p(x | y), uniform p(y): k draws of q(z|x,y) per class, pooled"
                .into();
        Ok(vec![bound, is])
    }

    /// The test classification error of q(y | x) (argmax), with its binomial standard error.
    fn statistics(&self, split: &Split, cfg: &RunConfig) -> Result<Vec<Statistic>> {
        let Some(y) = &split.y else {
            return Ok(Vec::new());
        };
        let n = split.len();
        let pred = chunked(n, cfg.data.eval_batch_size, |start, len| {
            let x = self.features(&split.x.narrow(0, start, len), false);
            tch::no_grad(|| self.log_q_y(&x)).argmax(1, false)
        });
        let e = pred
            .ne_tensor(&y.to_device(pred.device()))
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        let method = match self.m1 {
            Some(_) => "argmax q(y|z1) at z1 = the mean of M1's q(z1|x)",
            None => "argmax q(y|x)",
        };
        Ok(vec![Statistic {
            kind: StatisticKind::ClassificationError,
            method: method.into(),
            settings: serde_json::json!({}),
            value: e,
            std_err: Some((e * (1.0 - e) / n as f64).sqrt()),
            n,
        }])
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }

    fn as_conditional(&self) -> Option<&dyn Conditional> {
        Some(self)
    }
}
