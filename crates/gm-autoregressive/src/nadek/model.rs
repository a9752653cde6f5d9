use super::config::NadeKConfig;
use crate::common::{self, Autoregressive, OrderingKind};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{params_table, parse_params, BuildContext, LogLikelihood, Metrics, Model};
use gm_core::optim::Optimizer;
use gm_core::Result;
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

/// Floats of the `[rows, H + D]` activations of one evaluation chunk (rows = examples ×
/// positions).
const EVAL_BUDGET: i64 = 8 << 20;

/// A NADE-k with its parameters and optimizer.
pub struct NadeK {
    cfg: NadeKConfig,
    shape: Vec<i64>,
    dim: i64,
    order_vec: Vec<i64>,
    vs: VarStore,
    w1: Tensor,
    u: Option<Tensor>,
    c1: Tensor,
    second: Option<(Tensor, Tensor)>,
    v: Tensor,
    b: Tensor,
    /// The initial guess of every missing value: the training means (not trained).
    v0: Tensor,
    opt: Optimizer,
}

/// Builds a NADE-k from a run config (the `nade-k` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: NadeKConfig = parse_params("nade-k", &ctx.cfg.model.params)?;
    Ok(Box::new(NadeK::new(cfg, ctx)?))
}

impl NadeK {
    /// A new NADE-k for binary data shaped like `ctx.data`: small random weights, zero
    /// hidden biases, output biases the logits of the training means, and those means as the
    /// initial guess of the missing values.
    pub fn new(cfg: NadeKConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        common::require_binary("nade-k", "data.binarize", "\"none\"", data)?;
        let dim: i64 = data.shape.iter().product();
        common::require_dim("nade-k", dim, 1, &data.shape)?;
        let (h, device) = (cfg.hidden, ctx.device);
        let order_vec = common::ordering(cfg.ordering, cfg.ordering_seed, dim);
        let vs = VarStore::new(device);
        let root = vs.root() / "nadek";
        let randn = |fan_in: i64| Init::Randn {
            mean: 0.0,
            stdev: cfg.init_scale / (fan_in as f64).sqrt(),
        };
        let w1 = root.var("w1", &[h, dim], randn(dim));
        let u = cfg.mask_input.then(|| root.var("u", &[h, dim], randn(dim)));
        let c1 = root.zeros("c1", &[h]);
        let second =
            (cfg.layers == 2).then(|| (root.var("w2", &[h, h], randn(h)), root.zeros("c2", &[h])));
        let v = root.var("v", &[dim, h], randn(h));
        let logits = common::logit_marginals(data, dim).to_device(device);
        let b = root.var_copy("b", &logits);
        let v0 = root.zeros_no_train("v0", &[dim]);
        tch::no_grad(|| v0.shallow_clone().copy_(&logits.sigmoid()));
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(NadeK {
            cfg,
            shape: data.shape.clone(),
            dim,
            order_vec,
            vs,
            w1,
            u,
            c1,
            second,
            v,
            b,
            v0,
            opt,
        })
    }

    /// The ordering of the reported likelihood and of sampling.
    pub fn ordering(&self) -> &[i64] {
        &self.order_vec
    }

    /// The logits `[N, D]` of every variable after the k iterations, given `x` `[N, D]` and
    /// the mask `observed` (bool, `[N, D]` or broadcastable): observed values stay clamped
    /// to `x`, the missing ones start at the training means and are replaced at each step by
    /// the network's prediction, v ← m⊙x + (1−m)⊙σ(V h(v) + b).
    pub fn fill_in(&self, x: &Tensor, observed: &Tensor) -> Tensor {
        let act = self.cfg.activation;
        let mask_term = self.u.as_ref().map(|u| {
            observed
                .to_kind(Kind::Float)
                .expand_as(x)
                .linear(u, Some(&self.c1))
        });
        let bias = match &mask_term {
            Some(t) => t.shallow_clone(),
            None => self.c1.shallow_clone(),
        };
        let mut v = x.where_self(observed, &self.v0);
        let mut logits = Tensor::zeros_like(x);
        for t in 0..self.cfg.k {
            let mut h = act.apply(&(v.linear::<Tensor>(&self.w1, None) + &bias));
            if let Some((w2, c2)) = &self.second {
                h = act.apply(&h.linear(w2, Some(c2)));
            }
            logits = h.linear(&self.v, Some(&self.b));
            if t + 1 < self.cfg.k {
                v = x.where_self(observed, &logits.sigmoid());
            }
        }
        logits
    }

    /// The order-agnostic training loss of Uria et al. (2014) per row `[B]`: with d uniform in
    /// 0 … D−1 and a uniformly random set of d observed variables per row,
    /// D/(D−d) Σ_{missing j} −log p(x_j | x_observed), an unbiased estimate of the NLL
    /// averaged over all D! orderings.
    pub fn order_agnostic_nll(&self, x: &Tensor) -> Tensor {
        let x = x.reshape([-1, self.dim]);
        let (bsz, d) = (x.size()[0], self.dim);
        let device = x.device();
        let n_obs = Tensor::randint(d, [bsz, 1], (Kind::Int64, device));
        let ranks = Tensor::rand([bsz, d], (Kind::Float, device))
            .argsort(1, false)
            .argsort(1, false);
        let observed = ranks.lt_tensor(&n_obs);
        let logits = self.fill_in(&x, &observed);
        let nll = logits.softplus() - &x * &logits;
        let missing = observed.logical_not().to_kind(Kind::Float);
        let scale = (d as f64) / (-n_obs.to_kind(Kind::Float) + d as f64);
        ((nll * missing).sum_dim_intlist(1, true, Kind::Float) * scale).squeeze_dim(1)
    }

    /// The ordered inputs `[B, D]` and the logits of the D conditionals along `order`
    /// (column i is p(x_{o_i} = 1 | x_{o_<i})), `[B, D]`: D fill-in passes (one per
    /// position, observed set o_<i), batched `positions` at a time.
    pub fn conditionals_along(
        &self,
        x: &Tensor,
        order: &[i64],
        positions: i64,
    ) -> (Tensor, Tensor) {
        let x = x.reshape([-1, self.dim]);
        let (bsz, d) = (x.size()[0], self.dim);
        let device = x.device();
        let o = Tensor::from_slice(order).to_device(device);
        // rank[var] = the step at which var is generated.
        let rank = Tensor::zeros([d], (Kind::Int64, device)).index_copy(
            0,
            &o,
            &Tensor::arange(d, (Kind::Int64, device)),
        );
        let mut out = Vec::new();
        let mut start = 0;
        while start < d {
            let p = positions.max(1).min(d - start);
            let steps = Tensor::arange_start(start, start + p, (Kind::Int64, device));
            // observed[s, ·, var] = rank[var] < step s
            let observed = rank
                .unsqueeze(0)
                .lt_tensor(&steps.unsqueeze(1))
                .unsqueeze(1);
            let xs = x.unsqueeze(0).expand([p, bsz, d], false);
            let logits = self
                .fill_in(
                    &xs.reshape([p * bsz, d]),
                    &observed.expand([p, bsz, d], false).reshape([p * bsz, d]),
                )
                .reshape([p, bsz, d]);
            let var = o
                .narrow(0, start, p)
                .view([p, 1, 1])
                .expand([p, bsz, 1], false);
            out.push(logits.gather(2, &var, false).squeeze_dim(2).tr());
            start += p;
        }
        (x.index_select(1, &o), Tensor::cat(&out, 1))
    }

    /// The logits of the conditionals along the model's ordering, every position in one batch.
    pub fn conditionals(&self, x: &Tensor) -> (Tensor, Tensor) {
        self.conditionals_along(x, &self.order_vec, self.dim)
    }

    fn positions_per_chunk(&self, rows: i64) -> i64 {
        (EVAL_BUDGET / (rows.max(1) * (self.cfg.hidden + self.dim))).max(1)
    }

    /// Exact log p(x | order) `[B]`.
    fn log_prob_along(&self, x: &Tensor, order: &[i64]) -> Tensor {
        let rows = x.size()[0];
        let (x_o, logits) = self.conditionals_along(x, order, self.positions_per_chunk(rows));
        (&x_o * &logits - logits.softplus()).sum_dim_intlist(-1, false, Kind::Float)
    }

    /// The e-th ordering of the evaluation ensemble.
    fn ensemble_ordering(&self, e: usize) -> Vec<i64> {
        if e == 0 {
            self.order_vec.clone()
        } else {
            common::ordering(
                OrderingKind::Random,
                self.cfg.ordering_seed + e as u64,
                self.dim,
            )
        }
    }

    /// Exact log of the ensemble (1/E) Σ_e p(x | o_e) `[B]`.
    pub(crate) fn log_prob_ensemble(&self, x: &Tensor) -> Tensor {
        let e = self.cfg.ensemble;
        let lps: Vec<Tensor> = (0..e)
            .map(|i| self.log_prob_along(x, &self.ensemble_ordering(i)))
            .collect();
        Tensor::stack(&lps, 0).logsumexp([0], false) - (e as f64).ln()
    }
}

impl Autoregressive for NadeK {
    fn dim(&self) -> i64 {
        self.dim
    }

    fn log_prob(&self, x: &Tensor) -> Tensor {
        self.log_prob_along(x, &self.order_vec)
    }

    fn sample_flat(&self, n: i64) -> Tensor {
        tch::no_grad(|| {
            let d = self.dim;
            let device = self.device();
            let x = Tensor::zeros([n, d], (Kind::Float, device));
            let observed = Tensor::zeros([1, d], (Kind::Bool, device));
            let noise = common::logistic_noise(&[d, n], device);
            for (i, &var) in self.order_vec.iter().enumerate() {
                let logit = self.fill_in(&x, &observed).select(1, var);
                let xi = logit.gt_tensor(&noise.get(i as i64)).to_kind(Kind::Float);
                x.narrow(1, var, 1).copy_(&xi.unsqueeze(1));
                let _ = observed.narrow(1, var, 1).fill_(1);
            }
            x
        })
    }
}

impl Model for NadeK {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "nade-k"
    }

    gm_core::single_network!(vs, opt, "opt");

    /// One step on the order-agnostic loss (reported as `loss`).
    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let nll = self.order_agnostic_nll(x);
        let m = common::nll_metrics(&-nll, self.dim);
        self.opt.backward_step(&m[0].1)?;
        Ok(m.into_iter().map(|(k, t)| (k, t.detach())).collect())
    }

    /// The order-agnostic estimate of the training loss (one random observed set per row);
    /// the exact likelihood of an ordering costs D passes and is in `log_likelihoods`.
    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let nll = tch::no_grad(|| self.order_agnostic_nll(x));
        Ok(common::nll_metrics(&-nll, self.dim))
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        Ok(common::unflatten(self.sample_flat(n), &self.shape))
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let settings = |ensemble: usize| {
            serde_json::json!({
                "hidden": self.cfg.hidden,
                "layers": self.cfg.layers,
                "k": self.cfg.k,
                "mask_input": self.cfg.mask_input,
                "ordering": self.cfg.ordering,
                "ordering_seed": self.cfg.ordering_seed,
                "orderings": ensemble,
            })
        };
        let chunk = cfg.data.eval_batch_size;
        let lp = common::chunked(x, chunk, |c| self.log_prob_along(c, &self.order_vec));
        let mut out = vec![common::exact_report("nade-k", settings(1), &lp)?];
        if self.cfg.ensemble > 1 {
            let lp = common::chunked(x, chunk, |c| self.log_prob_ensemble(c));
            out.push(common::exact_report(
                "nade-k-ensemble",
                settings(self.cfg.ensemble),
                &lp,
            )?);
        }
        Ok(out)
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
