use super::config::{Arch, BetaSchedule, Likelihood, VaeConfig};
use super::top::{self, TopLayer};
use gm_core::config::RunConfig;
use gm_core::data::{Batch, Split};
use gm_core::masks;
use gm_core::model::{
    params_table, parse_params, BuildContext, Complete, CompletionKind, Conditional, Figure,
    LikelihoodKind, LogLikelihood, Metrics, Model, Statistic, StatisticKind,
};
use gm_core::nets::{Mlp, Strided, Upsampling};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use gm_eval::importance::{importance_log_likelihood, log_mean_exp, mean_and_std_err};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

/// ln 2π.
pub(crate) const LOG_2PI: f64 = 1.837_877_066_409_345_3;

/// Encode / decode iterations of the approximate completion ([`Vae::complete_iterative`]).
pub const COMPLETION_ITERATIONS: usize = 50;

/// A trained or training VAE.
pub struct Vae {
    name: &'static str,
    pub(crate) cfg: VaeConfig,
    /// Number of classes of a conditional VAE (0 when unconditional).
    classes: i64,
    likelihood: Likelihood,
    shape: Vec<i64>,
    pub(crate) dim: i64,
    pub(crate) vs: VarStore,
    enc: Mlp,
    enc_head: nn::Linear,
    dec: Mlp,
    dec_head: nn::Linear,
    conv: Option<ConvBody>,
    /// The second stochastic layer (`top_latent` > 0).
    pub(crate) top: Option<TopLayer>,
    pub(crate) opt: Optimizer,
}

/// The convolutional ends of a VAE with `arch = "conv"`: the encoder's convolutions before
/// its fully connected layers, the decoder's transposed convolutions after its own.
struct ConvBody {
    down: Strided,
    up: Upsampling,
    /// The smallest feature map, `[C, h, w]`.
    map: Vec<i64>,
}

impl ConvBody {
    /// The layers for images shaped `shape` (`[C, H, W]`), `out` decoder channels per pixel.
    fn new(root: &nn::Path, cfg: &VaeConfig, shape: &[i64], out: i64) -> Result<Self> {
        let n = cfg.channels.len() as u32;
        let f = 1i64 << n;
        let [c, h, w] = shape else {
            return Err(Error::config(
                "model.arch",
                "\"conv\"",
                format!("image data ([C, H, W]); the data's examples have shape {shape:?}"),
            ));
        };
        if h % f != 0 || w % f != 0 {
            return Err(Error::config(
                "model.channels",
                format!("{:?}", cfg.channels),
                format!(
                    "at most as many stride-2 layers as halve {h}×{w} evenly ({n} layers need sides divisible by {f})"
                ),
            ));
        }
        let last = *cfg.channels.last().expect("validated: non-empty");
        let mut up: Vec<i64> = cfg.channels.iter().rev().skip(1).copied().collect();
        up.push(out * c);
        Ok(ConvBody {
            down: Strided::new(&(root / "encoder"), "conv", *c, &cfg.channels),
            up: Upsampling::new(&(root / "decoder"), "deconv", last, &up),
            map: vec![last, h / f, w / f],
        })
    }

    fn map_size(&self) -> i64 {
        self.map.iter().product()
    }
}

/// Builds a VAE from a run config (the `vae` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: VaeConfig = parse_params("vae", &ctx.cfg.model.params)?;
    Ok(Box::new(Vae::new(cfg, ctx)?))
}

/// Builds a conditional VAE (the `cvae` registry entry: `conditional = true` always).
pub fn build_conditional(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let mut cfg: VaeConfig = parse_params("cvae", &ctx.cfg.model.params)?;
    if ctx.cfg.model.params.get("conditional") == Some(&toml::Value::Boolean(false)) {
        return Err(Error::config(
            "model.conditional",
            false,
            "true or absent for cvae (the unconditional model is `vae`)",
        ));
    }
    cfg.conditional = true;
    let mut m = Vae::new(cfg, ctx)?;
    m.name = "cvae";
    Ok(Box::new(m))
}

/// KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ (μ² + σ² − log σ² − 1), summed over the last dimension.
pub fn kl_to_standard_normal(mu: &Tensor, log_var: &Tensor) -> Tensor {
    ((mu.square() + log_var.exp() - log_var - 1.0) * 0.5).sum_dim_intlist(-1, false, mu.kind())
}

/// `x` with each entry hidden (set to 0.5, "unknown") with probability `p`: what the encoder
/// sees when training for completion (seed §3.5.1).
fn masked_input(x: &Tensor, p: f64) -> Tensor {
    let hide = x.rand_like().lt(p);
    x.masked_fill(&hide, 0.5)
}

/// A latent dimension is active when the variance of its posterior mean over the data
/// exceeds this (Burda et al. 2015).
pub const ACTIVE_UNIT_THRESHOLD: f64 = 0.01;

/// `f(start, len)` over `n` rows in chunks of `chunk`, concatenated along dimension 0.
pub(crate) fn chunked(n: i64, chunk: i64, mut f: impl FnMut(i64, i64) -> Tensor) -> Tensor {
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        parts.push(f(start, len));
        start += len;
    }
    Tensor::cat(&parts, 0)
}

/// Draws of z per example averaged for the posterior mean of z₂ (two-layer active units).
const TOP_MEAN_DRAWS: i64 = 16;

/// log N(x; μ, e^{log σ²}) summed over the last dimension, with `out` `[…, B, 2D]` holding μ
/// then log σ² (clamped below at `min_log_var`); `x` `[B, D]` broadcasts against it.
pub(crate) fn gaussian_log_prob(out: &Tensor, x: &Tensor, dim: i64, min_log_var: f64) -> Tensor {
    let mean = out.narrow(-1, 0, dim);
    let log_var = out.narrow(-1, dim, dim).clamp_min(min_log_var);
    let sq = (x - mean).square() * (-&log_var).exp();
    ((sq + log_var + LOG_2PI) * -0.5).sum_dim_intlist(-1, false, Kind::Float)
}

/// Sets the first `D` output biases of a decoder head to the per-dimension mean of `x`
/// `[N, …]` (its logit, clamped to [0.001, 0.999], for a Bernoulli decoder).
fn start_at_data_mean(head: &mut nn::Linear, x: &Tensor, likelihood: Likelihood) {
    let n = x.size()[0];
    let mean = x.reshape([n, -1]).mean_dim(0, false, Kind::Float);
    let value = match likelihood {
        Likelihood::Bernoulli => mean.clamp(1e-3, 1.0 - 1e-3).logit(None),
        _ => mean,
    };
    let bias = head.bs.as_mut().expect("linear layers have biases");
    tch::no_grad(|| {
        bias.narrow(0, 0, value.size()[0])
            .copy_(&value.to_device(bias.device()))
    });
}

/// Active units among the columns of `means` (posterior means `[N, L]`): dimensions whose
/// variance over the examples exceeds [`ACTIVE_UNIT_THRESHOLD`].
fn active_units(means: &Tensor, method: &str) -> Result<Statistic> {
    let var = means.to_kind(Kind::Double).var_dim(0, true, false);
    let per_dim = Vec::<f64>::try_from(&var)?;
    let active = per_dim
        .iter()
        .filter(|&&v| v > ACTIVE_UNIT_THRESHOLD)
        .count();
    Ok(Statistic {
        kind: StatisticKind::ActiveUnits,
        method: method.into(),
        settings: serde_json::json!({
            "threshold": ACTIVE_UNIT_THRESHOLD,
            "latent": per_dim.len(),
            "variance_per_dimension": per_dim,
        }),
        value: active as f64,
        std_err: None,
        n: means.size()[0],
    })
}

/// Samples of z per example of the `iwae` entry when its config does not say.
pub const IWAE_DEFAULT_SAMPLES: i64 = 5;

/// Builds an importance-weighted autoencoder (the `iwae` registry entry): the VAE trained
/// on the k-sample bound, `iw_samples` = [`IWAE_DEFAULT_SAMPLES`] unless set.
pub fn build_iwae(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let mut cfg: VaeConfig = parse_params("iwae", &ctx.cfg.model.params)?;
    if !ctx.cfg.model.params.contains_key("iw_samples") {
        cfg.iw_samples = IWAE_DEFAULT_SAMPLES;
    }
    let mut m = Vae::new(cfg, ctx)?;
    m.name = "iwae";
    Ok(Box::new(m))
}

impl Vae {
    /// A new VAE for data shaped like `ctx.data`.
    pub fn new(cfg: VaeConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        let likelihood = match (cfg.likelihood, data.binary) {
            (Likelihood::Auto, true) => Likelihood::Bernoulli,
            (Likelihood::Auto, false) => Likelihood::Gaussian,
            (Likelihood::Bernoulli, false) => {
                return Err(Error::config(
                    "model.likelihood",
                    "\"bernoulli\"",
                    format!(
                        "binary data, but dataset {} is real-valued here: set data.binarize to \
                         \"dynamic\", \"stochastic\" or \"threshold\", or model.likelihood to \"gaussian\"",
                        data.name
                    ),
                ))
            }
            (l, _) => l,
        };
        if cfg.decoder_variance > 0.0 && likelihood != Likelihood::Gaussian {
            return Err(Error::config(
                "model.decoder_variance",
                cfg.decoder_variance,
                format!(
                    "0: {} is binary here, so the decoder is Bernoulli (set model.likelihood = \"gaussian\" for a fixed-variance Gaussian)",
                    data.name
                ),
            ));
        }
        let classes = match (cfg.conditional, data.num_classes) {
            (false, _) => 0,
            (true, Some(c)) if c > 0 && data.train.y.is_some() => c,
            (true, _) => {
                return Err(Error::config(
                    "data.dataset",
                    &data.name,
                    format!(
                    "a dataset with labels: the conditional VAE trains on labels and {} has none",
                    data.name
                ),
                ))
            }
        };
        let dim: i64 = data.shape.iter().product();
        if dim <= 0 {
            return Err(Error::config(
                "data",
                format!("shape {:?}", data.shape),
                "a non-empty example shape",
            ));
        }
        let vs = VarStore::new(ctx.device);
        let root = vs.root();
        let per_pixel = if likelihood == Likelihood::Gaussian && cfg.decoder_variance == 0.0 {
            2
        } else {
            1
        };
        let conv = match cfg.arch {
            Arch::Mlp => None,
            Arch::Conv => Some(ConvBody::new(&root, &cfg, &data.shape, per_pixel)?),
        };
        let features = conv.as_ref().map_or(dim, ConvBody::map_size);
        let init = cfg.init;
        let enc = Mlp::with_init(
            &(&root / "encoder"),
            "fc",
            features + classes,
            &cfg.hidden,
            init,
        );
        // μ and log σ² come from one layer (one matmul), split afterwards.
        let enc_head = init.linear(&root / "encoder" / "head", enc.out_dim(), 2 * cfg.latent);
        let rev: Vec<i64> = cfg.hidden.iter().rev().copied().collect();
        let dec = Mlp::with_init(&(&root / "decoder"), "fc", cfg.latent + classes, &rev, init);
        let out = conv.as_ref().map_or(per_pixel * dim, ConvBody::map_size);
        let mut dec_head = init.linear(&root / "decoder" / "head", dec.out_dim(), out);
        if cfg.data_bias && conv.is_none() {
            start_at_data_mean(&mut dec_head, &data.train.x, likelihood);
        }
        let top = (cfg.top_latent > 0).then(|| TopLayer::new(&root, &cfg, cfg.latent));
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(Vae {
            name: "vae",
            cfg,
            classes,
            likelihood,
            shape: data.shape.clone(),
            dim,
            vs,
            enc,
            enc_head,
            dec,
            dec_head,
            conv,
            top,
            opt,
        })
    }

    /// The resolved likelihood (never `Auto`).
    pub fn likelihood(&self) -> Likelihood {
        self.likelihood
    }

    /// Whether this is a conditional VAE.
    pub fn is_conditional(&self) -> bool {
        self.classes > 0
    }

    /// The one-hot `[B, C]` of labels `y` `i64 [B]`, or an error naming a label out of range.
    pub fn one_hot(&self, y: &Tensor) -> Result<Tensor> {
        let y = y.to_kind(Kind::Int64);
        if y.numel() > 0 {
            let (lo, hi) = (y.min().int64_value(&[]), y.max().int64_value(&[]));
            if lo < 0 || hi >= self.classes {
                return Err(Error::Msg(format!(
                    "{}: labels must lie in 0..{} (every label observed), got {}",
                    self.name,
                    self.classes,
                    if lo < 0 { lo } else { hi }
                )));
            }
        }
        Ok(y.one_hot(self.classes).to_kind(Kind::Float))
    }

    /// The label one-hot of a batch for a conditional VAE (`None` when unconditional).
    fn batch_labels(&self, batch: &Batch) -> Result<Option<Tensor>> {
        if !self.is_conditional() {
            return Ok(None);
        }
        let y = batch
            .y
            .as_ref()
            .ok_or_else(|| Error::Msg(format!("{}: a batch without labels", self.name)))?;
        if let Some(o) = &batch.observed {
            if o.logical_not().any().int64_value(&[]) != 0 {
                return Err(Error::config(
                    "data.labelled",
                    "a subset of the labels",
                    format!("every label for {} (it is not semi-supervised)", self.name),
                ));
            }
        }
        Ok(Some(self.one_hot(y)?))
    }

    /// `[t, y]` along the last dimension, `y` `[B, C]` broadcast over leading dims of `t`.
    fn with_label(t: Tensor, y: Option<&Tensor>) -> Tensor {
        match y {
            None => t,
            Some(y) => {
                let mut shape = t.size();
                *shape.last_mut().expect("a last dimension") = y.size()[1];
                Tensor::cat(&[t, y.expand(shape.as_slice(), false)], -1)
            }
        }
    }

    /// q(z | x): mean and log-variance, each `[B, latent]`.
    pub fn encode(&self, x: &Tensor) -> (Tensor, Tensor) {
        self.encode_with(x, None)
    }

    /// q(z | x, y) for a conditional VAE (`y` one-hot `[B, C]`), q(z | x) for `None`.
    pub fn encode_with(&self, x: &Tensor, y: Option<&Tensor>) -> (Tensor, Tensor) {
        let x = match &self.conv {
            None => x.reshape([-1, self.dim]),
            Some(c) => {
                let mut shape = vec![-1];
                shape.extend_from_slice(&self.shape);
                c.down
                    .forward(&x.reshape(shape.as_slice()), self.cfg.activation)
                    .flatten(1, -1)
            }
        };
        let h = Self::with_label(x, y);
        top::halves(
            &self
                .enc_head
                .forward(&self.enc.forward(&h, self.cfg.activation)),
        )
    }

    /// The decoder's raw output for `z` `[…, latent]`: logits, or mean and log-variance.
    pub fn decode_raw(&self, z: &Tensor) -> Tensor {
        self.decode_raw_with(z, None)
    }

    fn decode_raw_with(&self, z: &Tensor, y: Option<&Tensor>) -> Tensor {
        let h = Self::with_label(z.shallow_clone(), y);
        let out = self
            .dec_head
            .forward(&self.dec.forward(&h, self.cfg.activation));
        let Some(c) = &self.conv else {
            return out;
        };
        // [..., C·h·w] → feature maps → images → [..., D'] with the leading dims of z.
        let mut lead = out.size();
        lead.pop();
        let mut maps = vec![-1];
        maps.extend_from_slice(&c.map);
        let img = c.up.forward(
            &self.cfg.activation.apply(&out).reshape(maps.as_slice()),
            self.cfg.activation,
        );
        lead.push(-1);
        img.reshape(lead.as_slice())
    }

    /// E[x | z], `[B, D]`: pixel probabilities or Gaussian means.
    pub fn decode_mean(&self, z: &Tensor) -> Tensor {
        self.decode_mean_with(z, None)
    }

    /// E[x | y, z] for a conditional VAE (`y` one-hot `[B, C]`), E[x | z] for `None`.
    pub fn decode_mean_with(&self, z: &Tensor, y: Option<&Tensor>) -> Tensor {
        let out = self.decode_raw_with(z, y);
        match self.likelihood {
            Likelihood::Gaussian => out.narrow(-1, 0, self.dim),
            _ => out.sigmoid(),
        }
    }

    /// log p(x | z) summed over dimensions; `x` `[B, D]` broadcasts against `out` `[…, B, D']`.
    pub(crate) fn log_px_given_z(&self, out: &Tensor, x: &Tensor) -> Tensor {
        match self.likelihood {
            Likelihood::Gaussian if self.cfg.decoder_variance > 0.0 => {
                let var = self.cfg.decoder_variance;
                let sq = (x - out).square().sum_dim_intlist(-1, false, Kind::Float);
                sq * (-0.5 / var) - 0.5 * self.dim as f64 * (var.ln() + LOG_2PI)
            }
            Likelihood::Gaussian => gaussian_log_prob(out, x, self.dim, self.cfg.min_log_var),
            // Logits and x broadcast against each other (views, no copies): one fused
            // kernel each way.
            _ => {
                let both = Tensor::broadcast_tensors(&[out, x]);
                -both[0]
                    .binary_cross_entropy_with_logits::<Tensor>(
                        &both[1],
                        None,
                        None,
                        Reduction::None,
                    )
                    .sum_dim_intlist(-1, false, Kind::Float)
            }
        }
    }

    /// Per-example reconstruction term and KL term for a batch.
    fn terms(&self, x: &Tensor, y: Option<&Tensor>) -> (Tensor, Tensor) {
        let x = x.reshape([-1, self.dim]);
        self.terms_from(&x, &x, y)
    }

    /// The same with the encoder shown `seen` (a masked copy of `x`) and the decoder
    /// scored on the whole `x`.
    fn terms_from(&self, seen: &Tensor, x: &Tensor, y: Option<&Tensor>) -> (Tensor, Tensor) {
        let (mu, log_var) = self.encode_with(seen, y);
        let std = (&log_var * 0.5).exp();
        let z = &mu + &std * gm_core::dist::randn_rows_like(&std);
        let out = self.decode_raw_with(&z, y);
        let log_px = self.log_px_given_z(&out, x);
        (log_px, kl_to_standard_normal(&mu, &log_var))
    }

    /// The metrics of a batch at the current step: with one z sample the β-weighted ELBO
    /// terms, with k > 1 the importance-weighted bound (its negative is the loss); a
    /// two-layer model estimates its ELBO from the log weights too (no analytic KL).
    fn batch_metrics(&self, x: &Tensor, y: Option<&Tensor>, train: bool) -> Metrics {
        let k = self.cfg.iw_samples;
        if k > 1 || self.top.is_some() {
            let lw = self.log_weights_with(x, y, k);
            let elbo = lw.mean(Kind::Float);
            if k == 1 {
                return vec![("loss", -&elbo), ("elbo", elbo)];
            }
            let iwae = log_mean_exp(&lw, 0).mean(Kind::Float);
            return vec![("loss", -&iwae), ("iwae", iwae), ("elbo", elbo)];
        }
        let (log_px, kl) = if train && self.cfg.input_mask > 0.0 {
            let x = x.reshape([-1, self.dim]);
            self.terms_from(&masked_input(&x, self.cfg.input_mask), &x, y)
        } else {
            self.terms(x, y)
        };
        let rec = -log_px.mean(Kind::Float);
        let kl_m = kl.mean(Kind::Float);
        let beta = self.cfg.beta_at(self.opt.steps());
        let loss = &rec + &kl_m * beta;
        let elbo = -(&rec + &kl_m);
        let mut m = vec![("loss", loss), ("elbo", elbo), ("rec", rec), ("kl", kl_m)];
        if self.cfg.beta_schedule != BetaSchedule::Constant {
            m.push(("beta", Tensor::from(beta)));
        }
        m
    }

    /// Per-example ELBO `[B]` (one z sample), of log p(x | y) when `y` is given.
    pub fn elbo(&self, x: &Tensor, y: Option<&Tensor>) -> Tensor {
        if self.top.is_some() {
            return tch::no_grad(|| self.log_weights_with(x, y, 1).squeeze_dim(0));
        }
        let (log_px, kl) = tch::no_grad(|| self.terms(x, y));
        log_px - kl
    }

    /// log p(x, z) − log q(z | x) for `k` samples of z per example: `[k, B]`.
    pub fn log_weights(&self, x: &Tensor, k: i64) -> Tensor {
        self.log_weights_with(x, None, k)
    }

    /// The same given one-hot labels `y` `[B, C]` (of p(x, z | y) / q(z | x, y)); with a
    /// second stochastic layer, of p(x, z, z₂) / q(z, z₂ | x), z₂ ~ q(z₂ | z).
    pub fn log_weights_with(&self, x: &Tensor, y: Option<&Tensor>, k: i64) -> Tensor {
        let x = x.reshape([-1, self.dim]);
        let (mu, log_var) = self.encode_with(&x, y);
        let q = top::draw_k(&mu, &log_var, k);
        let out = self.decode_raw_with(&q.z, y);
        let log_px = self.log_px_given_z(&out, &x);
        let log_prior = match &self.top {
            None => top::log_standard_normal(&q.z),
            Some(t) => t.log_prior_ratio(&q.z, self.cfg.activation),
        };
        log_px + log_prior - q.log_q
    }
    /// The importance-weighted bound L_k with the training k, per example averaged over
    /// `x`: a lower bound on log p(x) (Burda et al. 2015), labelled as one.
    fn iwae_bound(&self, x: &Tensor, chunk: i64) -> Result<LogLikelihood> {
        let k = self.cfg.iw_samples;
        let mut b = importance_log_likelihood(x, k, chunk, |xc, k| Ok(self.log_weights(xc, k)))?;
        b.kind = LikelihoodKind::LowerBound;
        b.method = format!("iwae-{k}");
        b.settings["note"] =
            "the importance-weighted bound L_k with the training k: E[log mean of k weights] <= log p(x)"
                .into();
        Ok(b)
    }

    /// Approximate completion (the iterative scheme of Rezende et al. 2014, seed §3.5.1):
    /// hidden entries (`mask` = 0) start at 0.5; each of `iters` rounds encodes the current
    /// completion, draws z ~ q(z | x), decodes E[x | z] and resets the observed entries to
    /// `x`. Returns the last completion (decoder means on the hidden entries).
    pub fn complete_iterative(&self, x: &Tensor, mask: &Tensor, iters: usize) -> Tensor {
        tch::no_grad(|| {
            let x0 = x.reshape([-1, self.dim]).to_kind(Kind::Float);
            let m = mask.reshape([-1, self.dim]).to_kind(Kind::Float);
            let hidden: Tensor = 1.0 - &m;
            let keep = &x0 * &m;
            let mut cur = &keep + &hidden * 0.5;
            for _ in 0..iters {
                let (mu, log_var) = self.encode(&cur);
                let z = &mu + (&log_var * 0.5).exp() * mu.randn_like();
                cur = &keep + &hidden * self.decode_mean(&z);
            }
            cur.reshape(x.size().as_slice())
        })
    }

    /// The labelled ELBO log-sum-exp'd over classes under a uniform p(y) `[B]`: a lower
    /// bound on log p(x) = log Σ_y p(y) p(x | y), since each term bounds its log p(x | y).
    fn elbo_over_classes(&self, x: &Tensor) -> Result<Tensor> {
        let per = (0..self.classes)
            .map(|c| Ok(self.elbo(x, Some(&self.class_one_hot(x.size()[0], c)?))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(&per, 0).logsumexp([0], false) - (self.classes as f64).ln())
    }

    /// `n` copies of the one-hot of `class`, `[n, C]`.
    fn class_one_hot(&self, n: i64, class: i64) -> Result<Tensor> {
        self.one_hot(&Tensor::full([n], class, (Kind::Int64, self.device())))
    }
}

/// Approximate: [`COMPLETION_ITERATIONS`] rounds of [`Vae::complete_iterative`].
impl Complete for Vae {
    fn complete(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        Ok(self.complete_iterative(x, mask, COMPLETION_ITERATIONS))
    }

    fn completion_kind(&self) -> CompletionKind {
        CompletionKind::Approximate {
            method: format!(
                "{COMPLETION_ITERATIONS} rounds of encode, draw z ~ q(z|x), decode E[x|z], reset the observed pixels"
            ),
        }
    }
}

impl Conditional for Vae {
    fn num_classes(&self) -> i64 {
        self.classes
    }

    /// Decoder means E[x | y = class, z], z ~ N(0, I).
    fn sample_class(&self, n: i64, class: i64) -> Result<Tensor> {
        gm_core::model::check_class(self.name, class, self.classes)?;
        let y = self.class_one_hot(n, class)?;
        let z = Tensor::randn([n, self.cfg.latent], (Kind::Float, self.device()));
        let mut shape = vec![n];
        shape.extend_from_slice(&self.shape);
        Ok(tch::no_grad(|| self.decode_mean_with(&z, Some(&y))).reshape(shape.as_slice()))
    }
}

impl Model for Vae {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        self.name
    }

    gm_core::single_network!(vs, opt, "adam");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let y = self.batch_labels(batch)?;
        let m = self.batch_metrics(&batch.x, y.as_ref(), true);
        self.opt.backward_step(&m[0].1)?;
        Ok(m.into_iter().map(|(k, t)| (k, t.detach())).collect())
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let y = self.batch_labels(batch)?;
        Ok(tch::no_grad(|| {
            self.batch_metrics(&batch.x, y.as_ref(), false)
        }))
    }

    /// With a 2-D latent space (and no label input), the posterior means μ(x) of the
    /// held-out examples as a scatter plot coloured by class (`figures/latent-scatter.png`),
    /// on a square around their median that holds 99 % of the coordinates.
    fn labelled_figures(&self, x: &Tensor, y: &Tensor) -> Result<Vec<Figure>> {
        if self.cfg.latent != 2 || self.is_conditional() {
            return Ok(Vec::new());
        }
        let mu = tch::no_grad(|| self.encode(&x.reshape([-1, self.dim])).0).to_kind(Kind::Double);
        let center = mu.median_dim(0, false).0;
        let (cx, cy) = (center.double_value(&[0]), center.double_value(&[1]));
        let centred = &mu - center.unsqueeze(0);
        let r = centred
            .abs()
            .reshape([-1])
            .to_kind(Kind::Double)
            .quantile_scalar(0.99, None, false, "linear")
            .double_value(&[])
            .max(1e-3);
        let img = gm_core::image::scatter_classes(&centred, y, 400, (-r, r))?;
        Ok(vec![Figure {
            name: "latent-scatter".into(),
            caption: format!(
                "posterior means μ(x) of {} held-out examples, coloured by class, in the square of half-width {r:.2} around their median ({cx:.2}, {cy:.2})",
                mu.size()[0]
            ),
            images: img.unsqueeze(0),
            per_row: 1,
        }])
    }

    /// Decoder means; a conditional VAE draws each sample's class uniformly first, a
    /// two-layer one z₂ ~ N(0, I) and then z ~ p(z | z₂).
    fn sample(&self, n: i64) -> Result<Tensor> {
        let z = match &self.top {
            None => Tensor::randn([n, self.cfg.latent], (Kind::Float, self.device())),
            Some(t) => tch::no_grad(|| {
                let z2 = Tensor::randn([n, t.latent], (Kind::Float, self.device()));
                t.sample_below(&z2, self.cfg.activation)
            }),
        };
        let y = if self.is_conditional() {
            let c = Tensor::randint(self.classes, [n], (Kind::Int64, self.device()));
            Some(self.one_hot(&c)?)
        } else {
            None
        };
        let mut shape = vec![n];
        shape.extend_from_slice(&self.shape);
        Ok(tch::no_grad(|| self.decode_mean_with(&z, y.as_ref())).reshape(shape.as_slice()))
    }

    /// Reconstructions, a latent walk and (images) the completion grid of a bottom half;
    /// none for a conditional VAE (they need labels; `gm` draws its per-class grid).
    fn figures(&self, x: &Tensor) -> Result<Vec<Figure>> {
        if self.is_conditional() {
            return Ok(Vec::new());
        }
        tch::no_grad(|| -> Result<Vec<Figure>> {
            let mut shape = vec![-1];
            shape.extend_from_slice(&self.shape);
            let n = x.size()[0].min(32);
            let xs = x.narrow(0, 0, n).reshape([n, self.dim]);
            let (mu, _) = self.encode(&xs);
            let rec = self.decode_mean(&mu);
            // Rows alternate: 8 originals, their 8 reconstructions.
            let per_row = 8.min(n);
            let rows = n / per_row;
            let pairs = Tensor::stack(
                &[
                    xs.narrow(0, 0, rows * per_row)
                        .view([rows, per_row, self.dim]),
                    rec.narrow(0, 0, rows * per_row)
                        .view([rows, per_row, self.dim]),
                ],
                1,
            )
            .reshape(shape.as_slice());
            // Latent walk: straight lines between the posterior means of pairs of examples.
            let steps = 10i64;
            let m = (n / 2).min(8);
            let a = mu.narrow(0, 0, m).unsqueeze(1);
            let b = mu.narrow(0, m, m).unsqueeze(1);
            let t =
                Tensor::linspace(0.0, 1.0, steps, (Kind::Float, mu.device())).view([1, steps, 1]);
            let one_minus_t: Tensor = 1.0 - &t;
            let walk_z = (&a * &one_minus_t + &b * &t).reshape([m * steps, self.cfg.latent]);
            let walk = self.decode_mean(&walk_z).reshape(shape.as_slice());
            let mut figs = vec![
                Figure {
                    name: "reconstructions".into(),
                    caption: "odd rows: held-out examples; even rows: E[x | z = μ(x)]".into(),
                    images: pairs,
                    per_row,
                },
                Figure {
                    name: "latent-walk".into(),
                    caption: "each row: decoder means along the line between the posterior means of two held-out examples".into(),
                    images: walk,
                    per_row: steps,
                },
            ];
            if self.shape.len() == 3 {
                let xs = x.narrow(0, 0, n.min(8)).reshape(shape.as_slice());
                let spec = masks::MaskSpec::BottomHalf;
                figs.push(masks::completion_figure(self, &xs, &spec, 1, 0)?);
            }
            Ok(figs)
        })
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let n = x.size()[0];
        // ELBO with one sample of z per example (KL analytic).
        let mut elbos = Vec::new();
        let mut start = 0;
        while start < n {
            let len = cfg.data.eval_batch_size.min(n - start);
            let xc = x.narrow(0, start, len);
            let e = if self.is_conditional() {
                self.elbo_over_classes(&xc)?
            } else {
                self.elbo(&xc, None)
            };
            elbos.push(e.to_kind(Kind::Double));
            start += len;
        }
        let (mean, std_err) = mean_and_std_err(&Tensor::cat(&elbos, 0))?;
        let elbo = LogLikelihood {
            kind: LikelihoodKind::LowerBound,
            method: "elbo".into(),
            settings: serde_json::json!({
                "z_samples": 1,
                "kl": if self.top.is_some() { "monte-carlo (two stochastic layers)" } else { "analytic" },
            }),
            mean,
            std_err,
            n,
        };
        let k = cfg.eval.is_samples;
        // Keep one chunk's decoder output near 4 M floats (16 MB): larger tensors are
        // mmap-ed and page-faulted afresh by the allocator on every chunk, which costs more
        // than the arithmetic.
        let per_example = k
            * self.dim
            * if self.likelihood == Likelihood::Gaussian && self.cfg.decoder_variance == 0.0 {
                2
            } else {
                1
            };
        let chunk = cfg.eval.chunk.min((4_000_000 / per_example.max(1)).max(1));
        if !self.is_conditional() {
            let is = importance_log_likelihood(x, k, chunk, |xc, k| Ok(self.log_weights(xc, k)))?;
            let mut out = vec![elbo];
            if self.cfg.iw_samples > 1 {
                out.push(self.iwae_bound(x, chunk)?);
            }
            out.push(is);
            return Ok(out);
        }
        // p(x) = Σ_y p(y) p(x | y), uniform p(y): the k weights of every class, pooled
        // (their mean is the mean over classes of the per-class estimates).
        let mut is = importance_log_likelihood(x, k, chunk, |xc, k| {
            let per = (0..self.classes)
                .map(|c| {
                    Ok(self.log_weights_with(xc, Some(&self.class_one_hot(xc.size()[0], c)?), k))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Tensor::cat(&per, 0))
        })?;
        let labels = "log p(x) = log Σ_y p(y) p(x | y), uniform p(y) over the classes";
        is.settings["labels"] = labels.into();
        let mut elbo = elbo;
        elbo.settings["labels"] =
            "log Σ_y p(y) exp ELBO(x | y), uniform p(y): a lower bound on log p(x)".into();
        Ok(vec![elbo, is])
    }

    /// Active units (Burda et al. 2015): the latent dimensions u with
    /// Cov_x(E_q(z|x)[u]) > 0.01 over the split (unconditional VAEs).
    fn statistics(&self, split: &Split, cfg: &RunConfig) -> Result<Vec<Statistic>> {
        if self.is_conditional() {
            return Ok(Vec::new());
        }
        let n = split.len();
        let means = chunked(n, cfg.data.eval_batch_size, |start, len| {
            tch::no_grad(|| self.encode(&split.x.narrow(0, start, len)).0)
        });
        let mut stats = vec![active_units(&means, "cov-of-posterior-mean")?];
        if let Some(t) = &self.top {
            // E_q[z₂ | x] = E_{q(z | x)} μ₂(z), from TOP_MEAN_DRAWS draws of z per example.
            let means2 = chunked(n, cfg.data.eval_batch_size, |start, len| {
                tch::no_grad(|| {
                    let (mu, log_var) = self.encode(&split.x.narrow(0, start, len));
                    let z = top::draw_k(&mu, &log_var, TOP_MEAN_DRAWS).z;
                    t.posterior(&z, self.cfg.activation)
                        .0
                        .mean_dim(0, false, Kind::Float)
                })
            });
            let mut s2 = active_units(&means2, "cov-of-posterior-mean, second layer z2")?;
            s2.settings["draws_of_z_per_example"] = TOP_MEAN_DRAWS.into();
            stats.push(s2);
        }
        Ok(stats)
    }

    fn resolved_params(&self) -> toml::Table {
        let mut cfg = self.cfg.clone();
        cfg.likelihood = self.likelihood;
        params_table(&cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }

    fn as_conditional(&self) -> Option<&dyn Conditional> {
        self.is_conditional().then_some(self as &dyn Conditional)
    }

    fn as_completion(&self) -> Option<&dyn Complete> {
        (!self.is_conditional()).then_some(self as &dyn Complete)
    }
}
