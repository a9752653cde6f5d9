use super::config::{Activation, Likelihood, VaeConfig};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{
    params_table, parse_params, BuildContext, Figure, LikelihoodKind, LogLikelihood, Metrics, Model,
};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use gm_eval::importance::{importance_log_likelihood, mean_and_std_err};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

const LOG_2PI: f64 = 1.837_877_066_409_345_3;

/// A trained or training VAE.
pub struct Vae {
    cfg: VaeConfig,
    likelihood: Likelihood,
    shape: Vec<i64>,
    pub(crate) dim: i64,
    vs: VarStore,
    enc: Vec<nn::Linear>,
    enc_head: nn::Linear,
    dec: Vec<nn::Linear>,
    dec_head: nn::Linear,
    opt: Optimizer,
}

/// Builds a VAE from a run config (the `vae` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: VaeConfig = parse_params("vae", &ctx.cfg.model.params)?;
    Ok(Box::new(Vae::new(cfg, ctx)?))
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
        let mut enc = Vec::new();
        let mut prev = dim;
        for (i, &h) in cfg.hidden.iter().enumerate() {
            enc.push(nn::linear(
                &root / "encoder" / format!("fc{}", i + 1),
                prev,
                h,
                Default::default(),
            ));
            prev = h;
        }
        // μ and log σ² come from one layer (one matmul), split afterwards.
        let enc_head = nn::linear(
            &root / "encoder" / "head",
            prev,
            2 * cfg.latent,
            Default::default(),
        );
        let mut dec = Vec::new();
        let mut prev = cfg.latent;
        for (i, &h) in cfg.hidden.iter().rev().enumerate() {
            dec.push(nn::linear(
                &root / "decoder" / format!("fc{}", i + 1),
                prev,
                h,
                Default::default(),
            ));
            prev = h;
        }
        let out = if likelihood == Likelihood::Gaussian {
            2 * dim
        } else {
            dim
        };
        let dec_head = nn::linear(&root / "decoder" / "head", prev, out, Default::default());
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(Vae {
            cfg,
            likelihood,
            shape: data.shape.clone(),
            dim,
            vs,
            enc,
            enc_head,
            dec,
            dec_head,
            opt,
        })
    }

    /// The resolved likelihood (never `Auto`).
    pub fn likelihood(&self) -> Likelihood {
        self.likelihood
    }

    fn act(&self, x: Tensor) -> Tensor {
        match self.cfg.activation {
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.relu(),
            Activation::Softplus => x.softplus(),
        }
    }

    /// q(z | x): mean and log-variance, each `[B, latent]`.
    pub fn encode(&self, x: &Tensor) -> (Tensor, Tensor) {
        let mut h = x.reshape([-1, self.dim]);
        for l in &self.enc {
            h = self.act(l.forward(&h));
        }
        let out = self.enc_head.forward(&h);
        let mut parts = out.chunk(2, 1);
        let log_var = parts.pop().expect("two halves");
        let mu = parts.pop().expect("two halves");
        (mu, log_var)
    }

    /// The decoder's raw output for `z` `[…, latent]`: logits, or mean and log-variance.
    pub(crate) fn decode_raw(&self, z: &Tensor) -> Tensor {
        let mut h = z.shallow_clone();
        for l in &self.dec {
            h = self.act(l.forward(&h));
        }
        self.dec_head.forward(&h)
    }

    /// E[x | z], `[B, D]`: pixel probabilities or Gaussian means.
    pub fn decode_mean(&self, z: &Tensor) -> Tensor {
        let out = self.decode_raw(z);
        match self.likelihood {
            Likelihood::Gaussian => out.narrow(-1, 0, self.dim),
            _ => out.sigmoid(),
        }
    }

    /// log p(x | z) summed over dimensions; `x` `[B, D]` broadcasts against `out` `[…, B, D']`.
    pub(crate) fn log_px_given_z(&self, out: &Tensor, x: &Tensor) -> Tensor {
        match self.likelihood {
            Likelihood::Gaussian => {
                let mean = out.narrow(-1, 0, self.dim);
                let log_var = out
                    .narrow(-1, self.dim, self.dim)
                    .clamp_min(self.cfg.min_log_var);
                let sq = (x - mean).square() * (-&log_var).exp();
                ((sq + log_var + LOG_2PI) * -0.5).sum_dim_intlist(-1, false, Kind::Float)
            }
            _ => {
                if out.dim() == x.dim() {
                    -out.binary_cross_entropy_with_logits::<Tensor>(x, None, None, Reduction::None)
                        .sum_dim_intlist(-1, false, Kind::Float)
                } else {
                    // −BCE(l, x) = x·l − softplus(l), with x broadcast over samples.
                    (out * x - out.softplus()).sum_dim_intlist(-1, false, Kind::Float)
                }
            }
        }
    }

    /// Per-example reconstruction term, KL term and β-weighted loss for a batch.
    fn terms(&self, x: &Tensor) -> (Tensor, Tensor) {
        let x = x.reshape([-1, self.dim]);
        let (mu, log_var) = self.encode(&x);
        let std = (&log_var * 0.5).exp();
        let z = &mu + &std * std.randn_like();
        let out = self.decode_raw(&z);
        let log_px = self.log_px_given_z(&out, &x);
        // KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ (μ² + σ² − log σ² − 1)
        let kl = ((mu.square() + log_var.exp() - log_var - 1.0) * 0.5).sum_dim_intlist(
            -1,
            false,
            Kind::Float,
        );
        (log_px, kl)
    }

    fn metrics(&self, log_px: &Tensor, kl: &Tensor) -> Metrics {
        let rec = -log_px.mean(Kind::Float);
        let kl_m = kl.mean(Kind::Float);
        let loss = &rec + &kl_m * self.cfg.beta;
        let elbo = -(&rec + &kl_m);
        vec![("loss", loss), ("elbo", elbo), ("rec", rec), ("kl", kl_m)]
    }

    /// log p(x, z) − log q(z | x) for `k` samples of z per example: `[k, B]`.
    pub fn log_weights(&self, x: &Tensor, k: i64) -> Tensor {
        let x = x.reshape([-1, self.dim]);
        let (mu, log_var) = self.encode(&x);
        let std = (&log_var * 0.5).exp();
        let eps = Tensor::randn([k, x.size()[0], self.cfg.latent], (mu.kind(), mu.device()));
        let z = &mu + &std * &eps;
        let out = self.decode_raw(&z);
        let log_px = self.log_px_given_z(&out, &x);
        let sum = |t: Tensor| t.sum_dim_intlist(-1, false, Kind::Float);
        let log_pz = sum(z.square() * -0.5) - 0.5 * LOG_2PI * self.cfg.latent as f64;
        let log_qz =
            sum(eps.square() * -0.5 - &log_var * 0.5) - 0.5 * LOG_2PI * self.cfg.latent as f64;
        log_px + log_pz - log_qz
    }
}

impl Model for Vae {
    fn name(&self) -> &str {
        "vae"
    }

    gm_core::single_network!(vs, opt, "adam");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let (log_px, kl) = self.terms(x);
        let m = self.metrics(&log_px, &kl);
        self.opt.backward_step(&m[0].1)?;
        Ok(m.into_iter().map(|(k, t)| (k, t.detach())).collect())
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let (log_px, kl) = tch::no_grad(|| self.terms(x));
        Ok(self.metrics(&log_px, &kl))
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        let z = Tensor::randn([n, self.cfg.latent], (Kind::Float, self.device()));
        let mut shape = vec![n];
        shape.extend_from_slice(&self.shape);
        Ok(tch::no_grad(|| self.decode_mean(&z)).reshape(shape.as_slice()))
    }

    fn figures(&self, x: &Tensor) -> Result<Vec<Figure>> {
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
            Ok(vec![
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
            ])
        })
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let n = x.size()[0];
        // ELBO with one sample of z per example (KL analytic).
        let mut elbos = Vec::new();
        let mut start = 0;
        while start < n {
            let len = cfg.data.eval_batch_size.min(n - start);
            let (log_px, kl) = tch::no_grad(|| self.terms(&x.narrow(0, start, len)));
            elbos.push((log_px - kl).to_kind(Kind::Double));
            start += len;
        }
        let (mean, std_err) = mean_and_std_err(&Tensor::cat(&elbos, 0))?;
        let elbo = LogLikelihood {
            kind: LikelihoodKind::LowerBound,
            method: "elbo".into(),
            settings: serde_json::json!({"z_samples": 1, "kl": "analytic"}),
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
            * if self.likelihood == Likelihood::Gaussian {
                2
            } else {
                1
            };
        let chunk = cfg.eval.chunk.min((4_000_000 / per_example.max(1)).max(1));
        let is = importance_log_likelihood(x, k, chunk, |xc, k| Ok(self.log_weights(xc, k)))?;
        Ok(vec![elbo, is])
    }

    fn resolved_params(&self) -> toml::Table {
        let mut cfg = self.cfg.clone();
        cfg.likelihood = self.likelihood;
        params_table(&cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
