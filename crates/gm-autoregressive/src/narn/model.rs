use super::config::NarnConfig;
use crate::common::{self, Autoregressive};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{params_table, parse_params, BuildContext, LogLikelihood, Metrics, Model};
use gm_core::optim::Optimizer;
use gm_core::Result;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// A neural autoregressive network with its masks, parameters (in ordering coordinates) and
/// optimizer.
pub struct Narn {
    cfg: NarnConfig,
    shape: Vec<i64>,
    dim: i64,
    order_vec: Vec<i64>,
    /// The ordering as a tensor, `None` for the identity.
    order: Option<Tensor>,
    vs: VarStore,
    /// Input → hidden weights `[(D−1)G, D]` and their mask (row of group j sees positions ≤ j).
    w: Tensor,
    w_mask: Tensor,
    c: Tensor,
    /// Hidden → output weights `[D, (D−1)G]` and their mask (output i sees groups < i).
    v: Tensor,
    v_mask: Tensor,
    /// Direct input → output weights `[D, D]` (strictly lower-triangular mask), if enabled.
    a: Option<(Tensor, Tensor)>,
    b: Tensor,
    opt: Optimizer,
}

/// Builds a neural autoregressive network from a run config (the `narn` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: NarnConfig = parse_params("narn", &ctx.cfg.model.params)?;
    Ok(Box::new(Narn::new(cfg, ctx)?))
}

/// The group of each of `n` hidden units (`r / group`), `i64 [n]`.
fn groups(n: i64, group: i64, device: Device) -> Tensor {
    Tensor::arange(n, (Kind::Int64, device)).divide_scalar_mode(group, "floor")
}

/// `1[row_pos[r] ≥ col_pos[k]]` (`inclusive`) or `1[row_pos[r] > col_pos[k]]`, `f32`.
fn position_mask(row_pos: &Tensor, col_pos: &Tensor, inclusive: bool) -> Tensor {
    let (r, k) = (row_pos.unsqueeze(1), col_pos.unsqueeze(0));
    let m = if inclusive {
        r.ge_tensor(&k)
    } else {
        r.gt_tensor(&k)
    };
    m.to_kind(Kind::Float)
}

impl Narn {
    /// A new network for binary data shaped like `ctx.data`: masked random weights (zero where
    /// masked), c = 0, and b the logits of the training means.
    pub fn new(cfg: NarnConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        common::require_binary("narn", "data.binarize", "\"none\"", data)?;
        let dim: i64 = data.shape.iter().product();
        common::require_dim("narn", dim, 2, &data.shape)?;
        let device = ctx.device;
        let g = cfg.group_size;
        let nh = (dim - 1) * g;
        let order_vec = common::ordering(cfg.ordering, cfg.ordering_seed, dim);
        let identity = order_vec.iter().enumerate().all(|(i, &o)| o == i as i64);
        let order = (!identity).then(|| Tensor::from_slice(&order_vec).to_device(device));
        let pos = Tensor::arange(dim, (Kind::Int64, device));
        let grp = groups(nh, g, device);
        let w_mask = position_mask(&grp, &pos, true); // group j reads positions ≤ j
        let v_mask = position_mask(&pos, &grp, false); // output i reads groups < i
        let a_mask = position_mask(&pos, &pos, false); // output i reads positions < i
                                                       // Weights N(0, scale²/fan-in) with each row's own fan-in, zero where masked.
        let init = |mask: &Tensor| {
            let fan_in = mask.sum_dim_intlist(1, true, Kind::Float).clamp_min(1.0);
            Tensor::randn(mask.size().as_slice(), (Kind::Float, device)) * mask * cfg.init_scale
                / fan_in.sqrt()
        };
        let vs = VarStore::new(device);
        let root = vs.root() / "narn";
        let w = root.var_copy("w", &init(&w_mask));
        let c = root.zeros("c", &[nh]);
        let v = root.var_copy("v", &init(&v_mask));
        let a = cfg
            .direct
            .then(|| (root.var_copy("a", &init(&a_mask)), a_mask));
        let b0 = common::logit_marginals(data, dim).to_device(device);
        let b0 = match &order {
            None => b0,
            Some(o) => b0.index_select(0, o),
        };
        let b = root.var_copy("b", &b0);
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(Narn {
            cfg,
            shape: data.shape.clone(),
            dim,
            order_vec,
            order,
            vs,
            w,
            w_mask,
            c,
            v,
            v_mask,
            a,
            b,
            opt,
        })
    }

    /// The ordering: `o[i]` is the variable generated at step `i`.
    pub fn ordering(&self) -> &[i64] {
        &self.order_vec
    }

    fn ordered_inputs(&self, x: &Tensor) -> Tensor {
        let x = x.reshape([-1, self.dim]);
        match &self.order {
            None => x,
            Some(o) => x.index_select(1, o),
        }
    }

    /// The ordered inputs `[B, D]` and the logits of the D conditionals `[B, D]` (output `i`
    /// is p(x_{o_i} = 1 | x_{o_<i})), all in one pass of masked matrix products: the hidden
    /// groups `h_j = act(W_j x_{o_≤j} + c_j)` are computed once and read by every later output.
    pub fn conditionals(&self, x: &Tensor) -> (Tensor, Tensor) {
        let x_o = self.ordered_inputs(x);
        let act = self.cfg.activation;
        let h = act.apply(&x_o.linear(&(&self.w * &self.w_mask), Some(&self.c)));
        let mut logits = h.linear(&(&self.v * &self.v_mask), Some(&self.b));
        if let Some((a, m)) = &self.a {
            logits += x_o.linear::<Tensor>(&(a * m), None);
        }
        (x_o, logits)
    }

    fn log_prob_impl(&self, x: &Tensor) -> Tensor {
        let (x_o, logits) = self.conditionals(x);
        (&x_o * &logits - logits.softplus()).sum_dim_intlist(-1, false, Kind::Float)
    }
}

impl Autoregressive for Narn {
    fn dim(&self) -> i64 {
        self.dim
    }

    fn log_prob(&self, x: &Tensor) -> Tensor {
        self.log_prob_impl(x)
    }

    fn sample_flat(&self, n: i64) -> Tensor {
        tch::no_grad(|| {
            let (d, g) = (self.dim, self.cfg.group_size);
            let device = self.device();
            let act = self.cfg.activation;
            let w_cols = (&self.w * &self.w_mask).tr().contiguous(); // [D, (D−1)G]
            let v_m = &self.v * &self.v_mask;
            let a_cols = self.a.as_ref().map(|(a, m)| (a * m).tr().contiguous()); // [D, D]
            let noise = common::logistic_noise(&[d, n], device);
            let x_o = Tensor::zeros([d, n], (Kind::Float, device));
            // Running pre-activations of every group and direct logits of every output.
            let mut pre = self.c.unsqueeze(0).repeat([n, 1]);
            let mut direct = Tensor::zeros([n, d], (Kind::Float, device));
            for i in 0..d {
                // Groups 0 … i−1 are complete (group j reads positions ≤ j < i).
                let k = i * g;
                let mut logit = direct.select(1, i) + self.b.get(i);
                if k > 0 {
                    let h = act.apply(&pre.narrow(1, 0, k));
                    logit += h.mv(&v_m.get(i).narrow(0, 0, k));
                }
                let xi = logit.gt_tensor(&noise.get(i)).to_kind(Kind::Float);
                x_o.get(i).copy_(&xi);
                if i + 1 < d {
                    let _ = pre.addr_(&xi, &w_cols.get(i));
                    if let Some(ac) = &a_cols {
                        let _ = direct.addr_(&xi, &ac.get(i));
                    }
                }
            }
            common::from_ordering(&x_o, self.order.as_ref())
        })
    }
}

impl Model for Narn {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "narn"
    }

    gm_core::single_network!(vs, opt, "opt");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
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
        let settings = serde_json::json!({
            "group_size": self.cfg.group_size,
            "activation": self.cfg.activation,
            "direct": self.cfg.direct,
            "ordering": self.cfg.ordering,
            "ordering_seed": self.cfg.ordering_seed,
        });
        Ok(vec![common::exact_report("narn", settings, &lp)?])
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
