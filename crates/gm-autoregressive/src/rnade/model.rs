use super::config::{Dequantize, RnadeConfig};
use crate::common::{self, Autoregressive};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{
    params_table, parse_params, BuildContext, LikelihoodKind, LogLikelihood, Metrics, Model,
};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

/// Floats of one `[rows, D, H + 3K]` activation tensor allowed in evaluation.
const EVAL_BUDGET: i64 = 16 << 20;

/// ln √(2π).
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// The mixture parameters of the D conditionals, in ordering coordinates, each `[B, D, K]`.
pub struct Heads {
    /// Logits of the mixing weights.
    pub alpha_logits: Tensor,
    /// Component means.
    pub mu: Tensor,
    /// Log standard deviations.
    pub log_sigma: Tensor,
}

/// An RNADE with its parameters (in the variables' own coordinates) and optimizer.
pub struct Rnade {
    cfg: RnadeConfig,
    shape: Vec<i64>,
    dim: i64,
    order_vec: Vec<i64>,
    order: Option<Tensor>,
    vs: VarStore,
    w: Tensor,
    c: Tensor,
    rho: Tensor,
    v_alpha: Tensor,
    b_alpha: Tensor,
    v_mu: Tensor,
    b_mu: Tensor,
    v_sigma: Tensor,
    b_sigma: Tensor,
    opt: Optimizer,
}

/// Builds an RNADE from a run config (the `rnade` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: RnadeConfig = parse_params("rnade", &ctx.cfg.model.params)?;
    Ok(Box::new(Rnade::new(cfg, ctx)?))
}

impl Rnade {
    /// A new RNADE for real data shaped like `ctx.data`. Every conditional starts close to a
    /// mixture of K components spread over ±1.5 standard deviations of that variable's
    /// training marginal, each with the marginal's standard deviation.
    pub fn new(cfg: RnadeConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        if data.binary {
            return Err(Error::config(
                "data.binarize",
                data.binarization.to_string(),
                format!(
                    "real-valued data for rnade (a density over ℝᴰ), but {} is binary here: set \
                     data.binarize = \"none\"",
                    data.name
                ),
            ));
        }
        let dim: i64 = data.shape.iter().product();
        common::require_dim("rnade", dim, 1, &data.shape)?;
        let train = data.train.x.reshape([-1, dim]).to_kind(Kind::Double);
        if cfg.dequantize == Dequantize::Uniform {
            let (lo, hi) = (train.min().double_value(&[]), train.max().double_value(&[]));
            if lo < 0.0 || hi > 1.0 {
                return Err(Error::config(
                    "model.dequantize",
                    "\"uniform\"",
                    format!("intensities k/255 in [0, 1], but the data range over [{lo}, {hi}]"),
                ));
            }
        }
        let (h, k, device) = (cfg.hidden, cfg.components, ctx.device);
        let order_vec = common::ordering(cfg.ordering, cfg.ordering_seed, dim);
        let identity = order_vec.iter().enumerate().all(|(i, &o)| o == i as i64);
        let order = (!identity).then(|| Tensor::from_slice(&order_vec).to_device(device));
        // Initial heads from the (dequantized) marginals.
        let train = match cfg.dequantize {
            Dequantize::None => train,
            Dequantize::Uniform => (train * 255.0 + 0.5) / 256.0,
        };
        let mean = train.mean_dim(0, false, Kind::Double);
        let std = if train.size()[0] > 1 {
            train.std_dim(0, true, false)
        } else {
            mean.ones_like()
        }
        .clamp_min(1e-3);
        let spread = if k > 1 {
            Tensor::linspace(-1.5, 1.5, k, (Kind::Double, mean.device()))
        } else {
            Tensor::zeros([1], (Kind::Double, mean.device()))
        };
        let b_mu0 =
            (mean.unsqueeze(1) + std.unsqueeze(1) * spread.unsqueeze(0)).to_kind(Kind::Float);
        let b_sigma0 = std
            .log()
            .unsqueeze(1)
            .expand([dim, k], false)
            .to_kind(Kind::Float);
        let vs = VarStore::new(device);
        let root = vs.root() / "rnade";
        let randn = |std: f64| Init::Randn {
            mean: 0.0,
            stdev: std,
        };
        let w = root.var("w", &[h, dim], randn(cfg.init_scale / (dim as f64).sqrt()));
        let c = root.zeros("c", &[h]);
        let rho = root.ones("rho", &[dim]);
        let head = 0.1 * cfg.init_scale / (h as f64).sqrt();
        let v_alpha = root.var("v_alpha", &[dim, k, h], randn(head));
        let b_alpha = root.zeros("b_alpha", &[dim, k]);
        let v_mu = root.var("v_mu", &[dim, k, h], randn(head));
        let b_mu = root.var_copy("b_mu", &b_mu0.to_device(device));
        let v_sigma = root.var("v_sigma", &[dim, k, h], randn(head));
        let b_sigma = root.var_copy("b_sigma", &b_sigma0.contiguous().to_device(device));
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(Rnade {
            cfg,
            shape: data.shape.clone(),
            dim,
            order_vec,
            order,
            vs,
            w,
            c,
            rho,
            v_alpha,
            b_alpha,
            v_mu,
            b_mu,
            v_sigma,
            b_sigma,
            opt,
        })
    }

    /// The ordering: `o[i]` is the variable generated at step `i`.
    pub fn ordering(&self) -> &[i64] {
        &self.order_vec
    }

    fn perm(&self, t: &Tensor, dim: i64) -> Tensor {
        match &self.order {
            None => t.shallow_clone(),
            Some(o) => t.index_select(dim, o),
        }
    }

    /// The ordered inputs `[B, D]` and the mixture parameters of the D conditionals (step i
    /// is p(x_{o_i} | x_{o_<i})), from the NADE running sum a_{i+1} = a_i + W[:, o_i] x_{o_i},
    /// h_i = σ(ρ_{o_i} a_i), computed with one exclusive `cumsum` (O(BDH)). With `pseudo`,
    /// the means carry the pseudo-gradient (forward values unchanged).
    pub fn heads(&self, x: &Tensor, pseudo: bool) -> (Tensor, Heads) {
        let x_o = self.perm(&x.reshape([-1, self.dim]), 1);
        let d = self.dim;
        let w_o = self.perm(&self.w, 1);
        let x_prev = Tensor::cat(
            &[x_o.zeros_like().narrow(1, 0, 1), x_o.narrow(1, 0, d - 1)],
            1,
        );
        let w_prev = Tensor::cat(
            &[w_o.zeros_like().narrow(1, 0, 1), w_o.narrow(1, 0, d - 1)],
            1,
        );
        let a = (x_prev.unsqueeze(2) * w_prev.tr().unsqueeze(0)).cumsum(1, x_o.kind()) + &self.c;
        let h = (a * self.perm(&self.rho, 0).unsqueeze(1)).sigmoid(); // [B, D, H]
        let head = |v: &Tensor, b: &Tensor| {
            Tensor::einsum("bdh,dkh->bdk", &[&h, &self.perm(v, 0)], None::<i64>) + self.perm(b, 0)
        };
        let log_sigma = head(&self.v_sigma, &self.b_sigma);
        let mut mu = head(&self.v_mu, &self.b_mu);
        if pseudo {
            // Identity forward (μ̄ + 0), gradient into μ scaled by σ.
            let m0 = mu.detach();
            mu = &m0 + (&mu - &m0) * log_sigma.detach().exp();
        }
        let heads = Heads {
            alpha_logits: head(&self.v_alpha, &self.b_alpha),
            mu,
            log_sigma,
        };
        (x_o, heads)
    }

    /// log p(x_{o_i} | x_{o_<i}) `[B, D]` of ordered inputs under the mixtures.
    pub fn mixture_log_density(x_o: &Tensor, heads: &Heads) -> Tensor {
        let z = (x_o.unsqueeze(2) - &heads.mu) * (-&heads.log_sigma).exp();
        let log_n = z.square() * -0.5 - &heads.log_sigma - HALF_LN_2PI;
        (heads.alpha_logits.log_softmax(2, x_o.kind()) + log_n).logsumexp([2], false)
    }

    fn log_prob_with(&self, x: &Tensor, pseudo: bool) -> Tensor {
        let (x_o, heads) = self.heads(x, pseudo);
        Self::mixture_log_density(&x_o, &heads).sum_dim_intlist(-1, false, x_o.kind())
    }

    /// The values the density is fitted to: `x` itself, or (k + u)/256 with fresh uniform
    /// noise when dequantizing.
    pub fn model_inputs(&self, x: &Tensor) -> Tensor {
        let x = x.reshape([-1, self.dim]);
        match self.cfg.dequantize {
            Dequantize::None => x,
            Dequantize::Uniform => ((&x * 255.0).round() + x.rand_like()) / 256.0,
        }
    }

    fn metrics(&self, lp: &Tensor) -> Metrics {
        let nll = -lp.mean(Kind::Float);
        let d = self.dim as f64;
        let offset = match self.cfg.dequantize {
            Dequantize::None => 0.0,
            Dequantize::Uniform => d * 256f64.ln(),
        };
        let bpd = (&nll + offset) / (d * std::f64::consts::LN_2);
        vec![("loss", nll), ("bits_per_dim", bpd)]
    }

    fn log_prob_eval(&self, x: &Tensor) -> Tensor {
        let per_row = self.dim * (self.cfg.hidden + 3 * self.cfg.components);
        let rows = (EVAL_BUDGET / per_row).max(1);
        common::chunked(x, rows, |c| self.log_prob_with(c, false)).to_kind(Kind::Float)
    }
}

impl Autoregressive for Rnade {
    fn dim(&self) -> i64 {
        self.dim
    }

    /// The log-density of `x` as given (no dequantization noise).
    fn log_prob(&self, x: &Tensor) -> Tensor {
        self.log_prob_with(x, false)
    }

    fn sample_flat(&self, n: i64) -> Tensor {
        tch::no_grad(|| {
            let d = self.dim;
            let device = self.device();
            let w_rows = self.perm(&self.w, 1).tr().contiguous(); // [D, H]
            let rho = self.perm(&self.rho, 0);
            let (va, ba) = (self.perm(&self.v_alpha, 0), self.perm(&self.b_alpha, 0));
            let (vm, bm) = (self.perm(&self.v_mu, 0), self.perm(&self.b_mu, 0));
            let (vsg, bsg) = (self.perm(&self.v_sigma, 0), self.perm(&self.b_sigma, 0));
            let k = self.cfg.components;
            let gumbel = -(-Tensor::rand([d, n, k], (Kind::Float, device))
                .clamp(1e-12, 1.0 - 1e-7)
                .log())
            .log();
            let eps = Tensor::randn([d, n], (Kind::Float, device));
            let x_o = Tensor::zeros([d, n], (Kind::Float, device));
            let mut a = self.c.unsqueeze(0).repeat([n, 1]);
            for i in 0..d {
                let h = (&a * rho.get(i)).sigmoid(); // [n, H]
                let logits = h.matmul(&va.get(i).tr()) + ba.get(i); // [n, K]
                let comp = (logits + gumbel.get(i)).argmax(1, true); // [n, 1]
                let mu = (h.matmul(&vm.get(i).tr()) + bm.get(i)).gather(1, &comp, false);
                let ls = (h.matmul(&vsg.get(i).tr()) + bsg.get(i)).gather(1, &comp, false);
                let xi = mu.squeeze_dim(1) + ls.squeeze_dim(1).exp() * eps.get(i);
                x_o.get(i).copy_(&xi);
                let _ = a.addr_(&xi, &w_rows.get(i));
            }
            common::from_ordering(&x_o, self.order.as_ref())
        })
    }
}

impl Model for Rnade {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "rnade"
    }

    gm_core::single_network!(vs, opt, "opt");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let y = self.model_inputs(x);
        let lp = self.log_prob_with(&y, self.cfg.mean_pseudo_gradient);
        let m = self.metrics(&lp);
        self.opt.backward_step(&m[0].1)?;
        Ok(m.into_iter().map(|(k, t)| (k, t.detach())).collect())
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let y = self.model_inputs(x);
        Ok(self.metrics(&self.log_prob_eval(&y)))
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        let s = self.sample_flat(n);
        let s = match self.cfg.dequantize {
            Dequantize::None => s,
            Dequantize::Uniform => s.clamp(0.0, 1.0),
        };
        Ok(common::unflatten(s, &self.shape))
    }

    /// Without dequantization, the exact log-density of `x`. With it, the lower bound
    /// log P(k) ≥ log p(y) − D ln 256 on the probability of the 256-level pixels, with one
    /// uniform draw y per example (an unbiased estimate of the bound's mean).
    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let mut settings = serde_json::json!({
            "hidden": self.cfg.hidden,
            "components": self.cfg.components,
            "ordering": self.cfg.ordering,
            "ordering_seed": self.cfg.ordering_seed,
            "dequantize": self.cfg.dequantize,
        });
        let chunk = cfg.data.eval_batch_size;
        match self.cfg.dequantize {
            Dequantize::None => {
                let lp = common::chunked(x, chunk, |c| self.log_prob_eval(c));
                Ok(vec![common::exact_report("rnade", settings, &lp)?])
            }
            Dequantize::Uniform => {
                let offset = -(self.dim as f64) * 256f64.ln();
                settings["offset_nats"] = offset.into();
                settings["noise_draws"] = 1.into();
                let lp = common::chunked(x, chunk, |c| self.log_prob_eval(&self.model_inputs(c)))
                    + offset;
                let mut r = common::exact_report("rnade-dequantized", settings, &lp)?;
                r.kind = LikelihoodKind::LowerBound;
                Ok(vec![r])
            }
        }
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
