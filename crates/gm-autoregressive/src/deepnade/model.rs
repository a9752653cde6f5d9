use super::config::DeepNadeConfig;
use crate::common::{self, Autoregressive, OrderingKind};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::masks::{self, MaskSpec};
use gm_core::model::{
    params_table, parse_params, BuildContext, Complete, CompletionKind, Figure, LogLikelihood,
    Metrics, Model,
};
use gm_core::nets::Mlp;
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};

/// Floats of one `[rows, D, H]` activation tensor allowed when scoring without gradients.
const EVAL_BUDGET: i64 = 16 << 20;

/// Completions per held-out image in the completion figures.
const COMPLETIONS: i64 = 5;

/// A deep, order-agnostic NADE: an MLP from `[x ⊙ m, m]` to the logits of every variable
/// given the observed ones (`m = 1`), the K orderings of its ensemble, its optimizer.
pub struct DeepNade {
    cfg: DeepNadeConfig,
    shape: Vec<i64>,
    dim: i64,
    /// `orders[k][i]`: the variable generated at step i of ordering k.
    orders: Vec<Vec<i64>>,
    /// The same, `i64 [K, D]` on the model's device.
    orders_t: Tensor,
    vs: VarStore,
    layers: Vec<nn::Linear>,
    out: nn::Linear,
    opt: Optimizer,
}

/// Builds a deep NADE from a run config (the `deep-nade` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: DeepNadeConfig = parse_params("deep-nade", &ctx.cfg.model.params)?;
    Ok(Box::new(DeepNade::new(cfg, ctx)?))
}

impl DeepNade {
    /// A new deep NADE for binary data shaped like `ctx.data`; the output biases are the
    /// logits of the training means (an untrained model starts near the best factorial one).
    pub fn new(cfg: DeepNadeConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        common::require_binary("deep-nade", "data.binarize", "\"none\"", data)?;
        let dim: i64 = data.shape.iter().product();
        common::require_dim("deep-nade", dim, 1, &data.shape)?;
        let device = ctx.device;
        let orders: Vec<Vec<i64>> = (0..cfg.ensemble_orderings)
            .map(|k| {
                if k == 0 {
                    common::ordering(cfg.ordering, cfg.ordering_seed, dim)
                } else {
                    common::ordering(OrderingKind::Random, cfg.ordering_seed + k as u64, dim)
                }
            })
            .collect();
        let flat: Vec<i64> = orders.concat();
        let orders_t = Tensor::from_slice(&flat)
            .view([cfg.ensemble_orderings as i64, dim])
            .to_device(device);
        let vs = VarStore::new(device);
        let root = vs.root() / "deepnade";
        let layers = Mlp::new(&root, "fc", 2 * dim, &cfg.hidden);
        let out = nn::linear(&root / "out", layers.out_dim(), dim, Default::default());
        tch::no_grad(|| {
            if let Some(bs) = &out.bs {
                bs.shallow_clone()
                    .copy_(&common::logit_marginals(data, dim).to_device(device));
            }
        });
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(DeepNade {
            cfg,
            shape: data.shape.clone(),
            dim,
            orders,
            orders_t,
            vs,
            layers: layers.layers,
            out,
            opt,
        })
    }

    /// Number K of orderings in the ensemble.
    pub fn num_orderings(&self) -> usize {
        self.orders.len()
    }

    /// Ordering `k` of the ensemble (`k < K`): `o[i]` is the variable generated at step i.
    pub fn ordering(&self, k: usize) -> &[i64] {
        &self.orders[k]
    }

    fn flat(&self, x: &Tensor) -> Tensor {
        x.reshape([-1, self.dim])
    }

    fn out_bias(&self) -> Tensor {
        self.out.bs.as_ref().map_or_else(
            || Tensor::zeros([self.dim], (Kind::Float, self.device())),
            |b| b.shallow_clone(),
        )
    }

    /// The first layer split by input block: `W_xᵀ` `[D, H₁]` (for `x ⊙ m`), `W_mᵀ` `[D, H₁]`
    /// (for `m`) and its bias `[H₁]`.
    fn first_layer(&self) -> (Tensor, Tensor, Tensor) {
        let l = &self.layers[0];
        let wt = l.ws.tr(); // [2D, H1]
        let b = l.bs.as_ref().map_or_else(
            || Tensor::zeros([self.cfg.hidden[0]], (Kind::Float, self.device())),
            |b| b.shallow_clone(),
        );
        (
            wt.narrow(0, 0, self.dim),
            wt.narrow(0, self.dim, self.dim),
            b,
        )
    }

    /// The last hidden layer from the first layer's pre-activations `[…, H₁]`.
    fn hidden_from(&self, a1: Tensor) -> Tensor {
        let mut h = a1.relu();
        for l in &self.layers[1..] {
            h = h.apply(l).relu();
        }
        h
    }

    /// The logits `[B, D]` of p(x_i = 1 | x_o) for every variable i, where the observed set
    /// o is given by `observed` (`[B, D]` or `[1, D]`, 1 = observed, 0 = missing): one pass through the
    /// network on `[x ⊙ m, m]`. Entries of observed variables are computed but meaningless.
    pub fn logits(&self, x: &Tensor, observed: &Tensor) -> Tensor {
        let x = self.flat(x);
        let m = self.flat(observed).to_kind(Kind::Float).expand_as(&x);
        let input = Tensor::cat(&[&x * &m, m], 1);
        let mut h = input;
        for l in &self.layers {
            h = h.apply(l).relu();
        }
        h.apply(&self.out)
    }

    /// The logits of the D conditionals along per-example orderings: `orders` is `i64 [D]`
    /// (one ordering for all rows) or `[B, D]`, and entry `[b, i]` is the logit of
    /// p(x_{o_i} = 1 | x_{o_<i}) for row b. Exactly what D passes of [`DeepNade::logits`]
    /// with the prefix masks give, computed at once: the first layer's pre-activations for
    /// all prefixes are an exclusive running sum along the ordering (O(DH₁), as in NADE), the
    /// output layer is evaluated only for the variable each prefix predicts, so the cost
    /// per prefix is that of the hidden-to-hidden layers. Activations are `[B, D, H]`.
    pub fn step_logits(&self, x: &Tensor, orders: &Tensor) -> Tensor {
        let x = self.flat(x);
        let (b, d) = (x.size()[0], self.dim);
        let (wx, wm, b1) = self.first_layer();
        let (x_o, wx_o, wm_o, v_o, c_o) = if orders.dim() == 1 {
            (
                x.index_select(1, orders),
                wx.index_select(0, orders).unsqueeze(0),
                wm.index_select(0, orders).unsqueeze(0),
                self.out.ws.index_select(0, orders).unsqueeze(0),
                self.out_bias().index_select(0, orders).unsqueeze(0),
            )
        } else {
            let flat = orders.reshape([-1]);
            let h1 = wx.size()[1];
            let hl = self.out.ws.size()[1];
            (
                x.gather(1, orders, false),
                wx.index_select(0, &flat).view([b, d, h1]),
                wm.index_select(0, &flat).view([b, d, h1]),
                self.out.ws.index_select(0, &flat).view([b, d, hl]),
                self.out_bias().index_select(0, &flat).view([b, d]),
            )
        };
        let contrib = x_o.unsqueeze(2) * wx_o + wm_o; // [B, D, H1]: step j's input
                                                      // Shift by one step so prefix i sums steps j < i only (no "add then subtract").
        let prev = Tensor::cat(
            &[
                contrib.zeros_like().narrow(1, 0, 1),
                contrib.narrow(1, 0, d - 1),
            ],
            1,
        );
        let a1 = prev.cumsum(1, Kind::Float) + b1;
        let h = self.hidden_from(a1); // [B, D, HL]
        (h * v_o).sum_dim_intlist(-1, false, Kind::Float) + c_o
    }

    /// Rows per chunk so that `[rows, D, H]` activations stay within the budget.
    fn eval_rows(&self) -> i64 {
        let widest = self.cfg.hidden.iter().copied().max().unwrap_or(1);
        (EVAL_BUDGET / (self.dim * widest)).max(1)
    }

    /// Per-step log-probabilities `[B, D]` of x along `orders` (`[D]` or `[B, D]`).
    pub(crate) fn step_log_probs(&self, x: &Tensor, orders: &Tensor) -> Tensor {
        let x = self.flat(x);
        let logits = self.step_logits(&x, orders);
        let x_o = if orders.dim() == 1 {
            x.index_select(1, orders)
        } else {
            x.gather(1, orders, false)
        };
        x_o * &logits - logits.softplus()
    }

    /// log p(x | o_k) `[B]` under ordering k of the ensemble, exact, without gradients
    /// (chunked to bound memory).
    pub fn log_prob_ordering(&self, x: &Tensor, k: usize) -> Tensor {
        let o = self.orders_t.get(k as i64);
        let x = self.flat(x);
        common::chunked(&x, self.eval_rows(), |c| {
            self.step_log_probs(c, &o)
                .sum_dim_intlist(-1, false, Kind::Float)
        })
        .to_kind(Kind::Float)
    }

    /// The EoNADE ensemble log p(x) = log (1/K) Σ_k p(x | o_k) `[B]` (exact for that
    /// mixture), without gradients.
    pub fn log_prob_ensemble(&self, x: &Tensor) -> Tensor {
        let k = self.num_orderings();
        if k == 1 {
            return self.log_prob_ordering(x, 0);
        }
        let per: Vec<Tensor> = (0..k).map(|i| self.log_prob_ordering(x, i)).collect();
        Tensor::stack(&per, 0).logsumexp([0], false) - (k as f64).ln()
    }

    /// Per-example orderings `i64 [B, D]` that put the observed variables (`observed`
    /// `[B, D]`, 1 = observed) first and then the missing ones, each group in the order
    /// they have in `base` (a permutation of 0..D, e.g. [`DeepNade::ordering`]`(0)`).
    pub fn observed_first_orders(&self, observed: &Tensor, base: &[i64]) -> Result<Tensor> {
        let d = self.dim;
        let mut sorted = base.to_vec();
        sorted.sort_unstable();
        if sorted != (0..d).collect::<Vec<_>>() {
            return Err(Error::Msg(format!(
                "deep-nade: the base ordering must be a permutation of 0..{d}, got {} entries",
                base.len()
            )));
        }
        let mut rank = vec![0i64; d as usize];
        for (i, &v) in base.iter().enumerate() {
            rank[v as usize] = i as i64;
        }
        let observed = self.flat(observed);
        let rank = Tensor::from_slice(&rank)
            .to_device(observed.device())
            .unsqueeze(0);
        // Missing variables sort after every observed one; ties are impossible.
        let missing = observed.le(0.5).to_kind(Kind::Int64);
        let key = missing * d + rank;
        Ok(key.argsort(1, false))
    }

    /// log p(x_missing | x_observed) `[B]`, exact under the ordering that takes the observed
    /// variables first and then the missing ones in the order of `base` (valid because the
    /// training covered every observed subset). `observed` is `[B, D]` (or shaped like x),
    /// 1 = observed; no gradients.
    pub fn log_prob_missing(&self, x: &Tensor, observed: &Tensor, base: &[i64]) -> Result<Tensor> {
        let x = self.flat(x);
        let observed = self.flat(observed).gt(0.5).to_kind(Kind::Float);
        let orders = self.observed_first_orders(&observed, base)?;
        let n_obs = observed
            .sum_dim_intlist(1, false, Kind::Float)
            .round()
            .unsqueeze(1);
        let steps = Tensor::arange(self.dim, (Kind::Float, x.device())).unsqueeze(0);
        let (n, rows) = (x.size()[0], self.eval_rows());
        let mut out = Vec::new();
        let mut start = 0;
        while start < n {
            let len = rows.min(n - start);
            let lp = tch::no_grad(|| {
                self.step_log_probs(&x.narrow(0, start, len), &orders.narrow(0, start, len))
            });
            let after = steps.ge_tensor(&n_obs.narrow(0, start, len));
            out.push((lp * after.to_kind(Kind::Float)).sum_dim_intlist(-1, false, Kind::Float));
            start += len;
        }
        if out.is_empty() {
            return Ok(Tensor::zeros([0], (Kind::Float, x.device())));
        }
        Ok(Tensor::cat(&out, 0))
    }

    /// Draws the missing variables given the observed ones, `[B, D]` (observed entries
    /// copied from x): ancestral sampling along the ordering of
    /// [`DeepNade::log_prob_missing`], batched over rows. One step per missing variable,
    /// each costing only the hidden-to-hidden layers (the first layer is updated in place).
    pub fn sample_missing(&self, x: &Tensor, observed: &Tensor, base: &[i64]) -> Result<Tensor> {
        let observed = self.flat(observed).gt(0.5).to_kind(Kind::Float);
        let orders = self.observed_first_orders(&observed, base)?;
        Ok(self.sample_along(&self.flat(x), &observed, &orders))
    }

    /// Ancestral sampling along `orders` `[B, D]` whose first `Σ observed` steps are the
    /// observed variables.
    fn sample_along(&self, x: &Tensor, observed: &Tensor, orders: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let (b, d) = (x.size()[0], self.dim);
            let device = x.device();
            let n_obs = observed
                .sum_dim_intlist(1, false, Kind::Float)
                .round()
                .to_kind(Kind::Int64);
            let start = if b == 0 {
                d
            } else {
                n_obs.min().int64_value(&[])
            };
            let xs = x * observed;
            let (wx, wm, b1) = self.first_layer();
            let mut a1 = xs.matmul(&wx) + observed.matmul(&wm) + b1;
            let noise = common::logistic_noise(&[b, d], device);
            let out_w = &self.out.ws;
            let out_b = self.out_bias();
            for i in start..d {
                let v = orders.select(1, i); // [B]
                let active = n_obs.le(i).to_kind(Kind::Float); // this step is missing
                let h = self.hidden_from(a1.shallow_clone());
                let logit = (h * out_w.index_select(0, &v)).sum_dim_intlist(-1, false, Kind::Float)
                    + out_b.index_select(0, &v);
                let drawn = logit.gt_tensor(&noise.select(1, i)).to_kind(Kind::Float);
                let old = xs.gather(1, &v.unsqueeze(1), false).squeeze_dim(1);
                let xv = &old + &active * (drawn - &old);
                let _ = xs
                    .shallow_clone()
                    .scatter_(1, &v.unsqueeze(1), &xv.unsqueeze(1));
                let step = (xv.unsqueeze(1) * wx.index_select(0, &v) + wm.index_select(0, &v))
                    * active.unsqueeze(1);
                a1 += step;
            }
            xs
        })
    }

    /// The training loss of each row of `x`: with a random split d ~ U{0..D−1} and a random
    /// observed subset of size d per row, D/(D−d) Σ_{i missing} −log p(x_i | x_observed), an
    /// unbiased estimate of the NLL averaged over orderings (Uria et al. 2014), `[B]`.
    pub fn order_agnostic_loss(&self, x: &Tensor) -> Tensor {
        let x = self.flat(x);
        let (b, d) = (x.size()[0], self.dim);
        let device = x.device();
        let split = Tensor::randint(d, [b, 1], (Kind::Int64, device));
        let r = Tensor::rand([b, d], (Kind::Float, device));
        let (sorted, _) = r.sort(1, false);
        // Exactly `split` entries lie below the split-th smallest value.
        let observed = r
            .lt_tensor(&sorted.gather(1, &split, false))
            .to_kind(Kind::Float);
        let logits = self.logits(&x, &observed);
        let nll = logits.softplus() - &x * &logits;
        let missing: Tensor = 1.0 - &observed;
        let scale = (d as f64) / (-split.squeeze_dim(1).to_kind(Kind::Float) + d as f64);
        (nll * missing).sum_dim_intlist(1, false, Kind::Float) * scale
    }
}

/// Exact: the observed variables first, then the hidden ones in ordering 0, each drawn
/// from its conditional ([`DeepNade::sample_missing`]).
impl Complete for DeepNade {
    fn complete(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let done = self.sample_missing(x, mask, self.ordering(0))?;
        Ok(done.reshape(x.size().as_slice()))
    }

    fn completion_kind(&self) -> CompletionKind {
        CompletionKind::Exact
    }
}

impl Autoregressive for DeepNade {
    fn dim(&self) -> i64 {
        self.dim
    }

    /// The ensemble's log p(x).
    fn log_prob(&self, x: &Tensor) -> Tensor {
        self.log_prob_ensemble(x)
    }

    /// Samples of the ensemble: an ordering per sample drawn uniformly from the K, then the
    /// variables in that order.
    fn sample_flat(&self, n: i64) -> Tensor {
        let device = self.device();
        let k = Tensor::randint(self.num_orderings() as i64, [n], (Kind::Int64, device));
        let orders = self.orders_t.index_select(0, &k);
        let zeros = Tensor::zeros([n, self.dim], (Kind::Float, device));
        self.sample_along(&zeros, &zeros, &orders)
    }
}

impl Model for DeepNade {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "deep-nade"
    }

    gm_core::single_network!(vs, opt, "opt");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let loss = self.order_agnostic_loss(x);
        let m = common::nll_metrics(&(-loss), self.dim);
        self.opt.backward_step(&m[0].1)?;
        Ok(m.into_iter().map(|(k, t)| (k, t.detach())).collect())
    }

    /// The exact NLL under ordering 0 (D conditionals per example).
    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        Ok(common::nll_metrics(&self.log_prob_ordering(x, 0), self.dim))
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        Ok(common::unflatten(self.sample_flat(n), &self.shape))
    }

    /// Completion grids ([`masks::completion_figure`]) with the bottom half and the
    /// centred square hidden.
    fn figures(&self, x: &Tensor) -> Result<Vec<Figure>> {
        if self.shape.len() != 3 || x.size()[0] == 0 {
            return Ok(Vec::new());
        }
        let n = x.size()[0].min(8);
        let x = x.narrow(0, 0, n).to_device(self.device());
        [MaskSpec::BottomHalf, MaskSpec::Square]
            .iter()
            .map(|m| masks::completion_figure(self, &x, m, COMPLETIONS, 0))
            .collect()
    }

    fn as_completion(&self) -> Option<&dyn Complete> {
        Some(self)
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let x = match cfg.eval.limit {
            Some(l) if l < x.size()[0] => x.narrow(0, 0, l),
            _ => x.shallow_clone(),
        };
        let k = self.num_orderings();
        let per: Vec<Tensor> = (0..k)
            .map(|i| self.log_prob_ordering(&x, i).to_kind(Kind::Double))
            .collect();
        let per = Tensor::stack(&per, 0); // [K, N]
        let first = match self.cfg.ordering {
            OrderingKind::Identity => "ordering 0 = identity (raster)".to_string(),
            OrderingKind::Random => format!("ordering 0 = random, seed {}", self.cfg.ordering_seed),
        };
        let settings = |orderings: &str| {
            serde_json::json!({
                "hidden": self.cfg.hidden,
                "orderings": orderings,
                "ensemble_orderings": k,
                "ordering_seed": self.cfg.ordering_seed,
                "limit": cfg.eval.limit,
            })
        };
        let mut out = vec![common::exact_report(
            "deep-nade-single-ordering",
            settings(&first),
            &per.get(0),
        )?];
        if k > 1 {
            let all = format!(
                "{first}; orderings 1..{} random, seeds ordering_seed + k",
                k - 1
            );
            let ens = per.logsumexp([0], false) - (k as f64).ln();
            out.push(common::exact_report(
                &format!("eonade-{k}-orderings"),
                settings(&all),
                &ens,
            )?);
            out.push(common::exact_report(
                "deep-nade-mean-single-ordering",
                settings(&format!("mean over the K single-ordering models: {all}")),
                &per.mean_dim(0, false, Kind::Double),
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
