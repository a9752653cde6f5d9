use super::config::{Fit, FvbnConfig, FvbnLikelihood};
use crate::common::{self, Autoregressive};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{params_table, parse_params, BuildContext, LogLikelihood, Metrics, Model};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const LOG_2PI: f64 = 1.837_877_066_409_345_3;

/// Running sums of the closed-form fit (f64, non-trainable, saved in the checkpoint).
struct Stats {
    count: Tensor,
    sum: Tensor,
    outer: Tensor,
}

/// A logistic or linear-Gaussian fully-visible belief network.
///
/// Parameters live in the coordinates of the ordering: `w[i, j]` is the weight of the
/// variable generated at step `j` in the conditional of the one generated at step `i`; only
/// `j < i` is ever used (the mask is applied in every forward pass).
pub struct Fvbn {
    cfg: FvbnConfig,
    likelihood: FvbnLikelihood,
    shape: Vec<i64>,
    dim: i64,
    order: Tensor,
    order_vec: Vec<i64>,
    mask: Tensor,
    vs: VarStore,
    w: Tensor,
    b: Tensor,
    log_var: Option<Tensor>,
    stats: Option<Stats>,
    opt: Optimizer,
}

/// Builds an FVBN from a run config (the `fvbn` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: FvbnConfig = parse_params("fvbn", &ctx.cfg.model.params)?;
    Ok(Box::new(Fvbn::new(cfg, ctx)?))
}

impl Fvbn {
    /// A new FVBN for data shaped like `ctx.data`: zero weights, biases of the best factorial
    /// model (logits of the training means, or the means and variances).
    pub fn new(cfg: FvbnConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        let likelihood = match (cfg.likelihood, data.binary) {
            (FvbnLikelihood::Auto, true) => FvbnLikelihood::Bernoulli,
            (FvbnLikelihood::Auto, false) => FvbnLikelihood::Gaussian,
            (FvbnLikelihood::Bernoulli, false) => {
                common::require_binary("fvbn", "model.likelihood", "\"bernoulli\"", data)?;
                unreachable!("require_binary fails on real data")
            }
            (l, _) => l,
        };
        if cfg.fit == Fit::ClosedForm && likelihood == FvbnLikelihood::Bernoulli {
            return Err(Error::config(
                "model.fit",
                "\"closed_form\"",
                format!(
                    "\"gradient\" for the logistic FVBN that binary dataset {} gets (or model.likelihood = \"gaussian\")",
                    data.name
                ),
            ));
        }
        let dim: i64 = data.shape.iter().product();
        common::require_dim("fvbn", dim, 1, &data.shape)?;
        let device = ctx.device;
        let order_vec = common::ordering(cfg.ordering, cfg.ordering_seed, dim);
        let order = Tensor::from_slice(&order_vec).to_device(device);
        let mask = Tensor::ones([dim, dim], (Kind::Float, device)).tril(-1);
        let vs = VarStore::new(device);
        let root = vs.root() / "fvbn";
        let w = root.zeros("w", &[dim, dim]);
        let x = data
            .train
            .x
            .reshape([-1, dim])
            .index_select(1, &order.to_device(data.train.x.device()));
        let (b, log_var) = tch::no_grad(|| match likelihood {
            FvbnLikelihood::Gaussian => {
                let mean = x.mean_dim(0, false, Kind::Float);
                let var = x
                    .var_dim(0, false, false)
                    .clamp_min((cfg.min_log_var).exp());
                let b = root.var_copy("b", &mean.to_device(device));
                let lv = root.var_copy("log_var", &var.log().to_device(device));
                (b, Some(lv))
            }
            _ => {
                let init = common::logit_marginals(data, dim)
                    .index_select(0, &order.to_device(data.train.x.device()));
                (root.var_copy("b", &init.to_device(device)), None)
            }
        });
        let stats = (cfg.fit == Fit::ClosedForm).then(|| {
            let s = vs.root() / "stats";
            // Non-trainable f64 variables (a VarStore creates f32 ones: swap in f64 data).
            let f64_var = |name: &str, shape: &[i64]| {
                let mut t = s.zeros_no_train(name, shape);
                t.set_data(&Tensor::zeros(shape, (Kind::Double, device)));
                t
            };
            Stats {
                count: f64_var("count", &[]),
                sum: f64_var("sum", &[dim]),
                outer: f64_var("outer", &[dim, dim]),
            }
        });
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(Fvbn {
            cfg,
            likelihood,
            shape: data.shape.clone(),
            dim,
            order,
            order_vec,
            mask,
            vs,
            w,
            b,
            log_var,
            stats,
            opt,
        })
    }

    /// The resolved conditional family (never `Auto`).
    pub fn likelihood(&self) -> FvbnLikelihood {
        self.likelihood
    }

    /// The ordering: `o[i]` is the variable generated at step `i`.
    pub fn ordering(&self) -> &[i64] {
        &self.order_vec
    }

    /// The masked weights actually used, `[D, D]` in ordering coordinates.
    pub fn masked_weights(&self) -> Tensor {
        &self.w * &self.mask
    }

    /// Biases, weights (masked) and, for the Gaussian, variances, in ordering coordinates.
    pub fn parameters(&self) -> (Tensor, Tensor, Option<Tensor>) {
        (
            self.b.shallow_clone(),
            self.masked_weights(),
            self.log_var.as_ref().map(|l| self.clamped_log_var(l).exp()),
        )
    }

    fn clamped_log_var(&self, lv: &Tensor) -> Tensor {
        lv.clamp_min(self.cfg.min_log_var)
    }

    /// Conditional parameters in ordering coordinates for `x` `[B, …]`: the ordered inputs
    /// `[B, D]` and the logits (or Gaussian means) `[B, D]`, output `i` depending on ordered
    /// inputs `< i` only.
    pub fn conditionals(&self, x: &Tensor) -> (Tensor, Tensor) {
        let x_o = x.reshape([-1, self.dim]).index_select(1, &self.order);
        let out = x_o.linear(&self.masked_weights(), Some(&self.b));
        (x_o, out)
    }

    fn log_prob_impl(&self, x: &Tensor) -> Tensor {
        let (x_o, out) = self.conditionals(x);
        match &self.log_var {
            Some(lv) => {
                let lv = self.clamped_log_var(lv);
                let sq = (&x_o - out).square() * (-&lv).exp();
                ((sq + lv + LOG_2PI) * -0.5).sum_dim_intlist(-1, false, Kind::Float)
            }
            None => (&x_o * &out - out.softplus()).sum_dim_intlist(-1, false, Kind::Float),
        }
    }

    /// Sets the parameters to the closed-form Gaussian maximum-likelihood fit of the moments
    /// `count`, `sum` `[D]`, `outer` `[D, D]` (f64, ordering coordinates): x − μ = L̃ e with
    /// Σ + ridge·I = L̃ S² L̃ᵀ (L̃ unit lower-triangular), so W = I − L̃⁻¹, σ² = diag(S²),
    /// b = (I − W) μ: the least-squares regression of each x_i on x_<i.
    fn fit_moments(&self, count: &Tensor, sum: &Tensor, outer: &Tensor) -> Result<()> {
        let mean = sum / count;
        let cov = outer / count - mean.outer(&mean);
        let eye = Tensor::eye(self.dim, (Kind::Double, cov.device()));
        let cov = cov + &eye * self.cfg.ridge;
        let l = cov.f_linalg_cholesky(false).map_err(|e| {
            Error::Msg(format!(
                "fvbn closed-form fit: the covariance is not positive definite ({e}); raise model.ridge"
            ))
        })?;
        let s = l.diagonal(0, 0, 1);
        let l_unit = &l / s.unsqueeze(0);
        let a = l_unit.linalg_solve_triangular(&eye, false, true, true);
        let w = &eye - &a;
        let b = a.mv(&mean);
        let lv = s.square().log();
        tch::no_grad(|| {
            self.w.shallow_clone().copy_(&w);
            self.b.shallow_clone().copy_(&b);
            if let Some(l) = &self.log_var {
                l.shallow_clone().copy_(&lv);
            }
        });
        Ok(())
    }

    /// Fits the Gaussian FVBN in closed form to `x` `[N, …]` (regardless of `fit`).
    pub fn fit_closed_form(&mut self, x: &Tensor) -> Result<()> {
        if self.likelihood != FvbnLikelihood::Gaussian {
            return Err(Error::Msg(
                "fvbn: the closed-form fit needs the Gaussian FVBN".into(),
            ));
        }
        let x_o = tch::no_grad(|| {
            x.reshape([-1, self.dim])
                .index_select(1, &self.order)
                .to_kind(Kind::Double)
        });
        let count = Tensor::from(x_o.size()[0] as f64).to_device(x_o.device());
        let sum = x_o.sum_dim_intlist(0, false, Kind::Double);
        let outer = x_o.tr().mm(&x_o);
        self.fit_moments(&count, &sum, &outer)
    }
}

impl Autoregressive for Fvbn {
    fn dim(&self) -> i64 {
        self.dim
    }

    fn log_prob(&self, x: &Tensor) -> Tensor {
        self.log_prob_impl(x)
    }

    fn sample_flat(&self, n: i64) -> Tensor {
        tch::no_grad(|| {
            let d = self.dim;
            let device = self.device();
            let wm = self.masked_weights();
            // Running conditional parameters: out = b + W x_<i, updated by one outer product
            // per step (column i of W only reaches rows > i).
            let mut out = self.b.unsqueeze(0).repeat([n, 1]);
            let x_o = Tensor::zeros([n, d], (Kind::Float, device));
            let noise = match &self.log_var {
                Some(lv) => {
                    Tensor::randn([n, d], (Kind::Float, device))
                        * (self.clamped_log_var(lv) * 0.5).exp()
                }
                None => common::logistic_noise(&[n, d], device),
            };
            let gaussian = self.log_var.is_some();
            for i in 0..d {
                let oi = out.select(1, i);
                let zi = noise.select(1, i);
                let xi = if gaussian {
                    oi + zi
                } else {
                    oi.gt_tensor(&zi).to_kind(Kind::Float)
                };
                x_o.select(1, i).copy_(&xi);
                let _ = out.addr_(&xi, &wm.select(1, i));
            }
            Tensor::zeros([n, d], (Kind::Float, device)).index_copy(1, &self.order, &x_o)
        })
    }
}

impl Model for Fvbn {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "fvbn"
    }

    gm_core::single_network!(vs, opt, "opt");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        if let Some(st) = &self.stats {
            tch::no_grad(|| {
                let x_o = x
                    .reshape([-1, self.dim])
                    .index_select(1, &self.order)
                    .to_kind(Kind::Double);
                let _ = st.count.shallow_clone().g_add_scalar_(x_o.size()[0] as f64);
                let _ = st
                    .sum
                    .shallow_clone()
                    .g_add_(&x_o.sum_dim_intlist(0, false, Kind::Double));
                let _ = st.outer.shallow_clone().g_add_(&x_o.tr().mm(&x_o));
            });
            self.fit_moments(&st.count, &st.sum, &st.outer)?;
            let lp = tch::no_grad(|| self.log_prob_impl(x));
            return Ok(common::nll_metrics(&lp, self.dim));
        }
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

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let lp = common::chunked(x, cfg.data.eval_batch_size, |c| self.log_prob_impl(c));
        let method = match self.likelihood {
            FvbnLikelihood::Gaussian => "fvbn-gaussian",
            _ => "fvbn-logistic",
        };
        let settings = serde_json::json!({"ordering": self.cfg.ordering, "ordering_seed": self.cfg.ordering_seed, "fit": self.cfg.fit});
        Ok(vec![common::exact_report(method, settings, &lp)?])
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
