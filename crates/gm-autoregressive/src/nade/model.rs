use super::blocked::Ordered;
use super::config::NadeConfig;
use crate::common::{self, Autoregressive};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{params_table, parse_params, BuildContext, LogLikelihood, Metrics, Model};
use gm_core::optim::Optimizer;
use gm_core::Result;
use gm_core::{host, vecmath};
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

/// Floats of one `[block, rows, H]` work buffer allowed in evaluation.
const EVAL_BUDGET: i64 = 4 << 20;

/// A NADE with its parameters (in the variables' own coordinates) and optimizer.
pub struct Nade {
    cfg: NadeConfig,
    shape: Vec<i64>,
    dim: i64,
    order_vec: Vec<i64>,
    /// The ordering as a tensor, `None` for the identity (no gathers needed).
    order: Option<Tensor>,
    vs: VarStore,
    w: Tensor,
    v: Tensor,
    b: Tensor,
    c: Tensor,
    opt: Optimizer,
}

/// Builds a NADE from a run config (the `nade` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: NadeConfig = parse_params("nade", &ctx.cfg.model.params)?;
    Ok(Box::new(Nade::new(cfg, ctx)?))
}

impl Nade {
    /// A new NADE for binary data shaped like `ctx.data`: small random W and V, c = 0, and b
    /// the logits of the training means (an untrained NADE is the best factorial model).
    pub fn new(cfg: NadeConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        common::require_binary("nade", "data.binarize", "\"none\"", data)?;
        let dim: i64 = data.shape.iter().product();
        common::require_dim("nade", dim, 1, &data.shape)?;
        let h = cfg.hidden;
        let device = ctx.device;
        let order_vec = common::ordering(cfg.ordering, cfg.ordering_seed, dim);
        let identity = order_vec.iter().enumerate().all(|(i, &o)| o == i as i64);
        let order = (!identity).then(|| Tensor::from_slice(&order_vec).to_device(device));
        let vs = VarStore::new(device);
        let root = vs.root() / "nade";
        let randn = |std: f64| Init::Randn {
            mean: 0.0,
            stdev: std,
        };
        let w = root.var("w", &[h, dim], randn(cfg.init_scale / (dim as f64).sqrt()));
        let v = root.var("v", &[dim, h], randn(cfg.init_scale / (h as f64).sqrt()));
        let b = root.var_copy("b", &common::logit_marginals(data, dim).to_device(device));
        let c = root.zeros("c", &[h]);
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(Nade {
            cfg,
            shape: data.shape.clone(),
            dim,
            order_vec,
            order,
            vs,
            w,
            v,
            b,
            c,
            opt,
        })
    }

    /// The ordering: `o[i]` is the variable generated at step `i`.
    pub fn ordering(&self) -> &[i64] {
        &self.order_vec
    }

    /// Parameters permuted into ordering coordinates: W_o `[H, D]`, V_o `[D, H]`, b_o `[D]`.
    fn ordered_params(&self) -> (Tensor, Tensor, Tensor) {
        match &self.order {
            None => (
                self.w.shallow_clone(),
                self.v.shallow_clone(),
                self.b.shallow_clone(),
            ),
            Some(o) => (
                self.w.index_select(1, o),
                self.v.index_select(0, o),
                self.b.index_select(0, o),
            ),
        }
    }

    fn ordered_inputs(&self, x: &Tensor) -> Tensor {
        let x = x.reshape([-1, self.dim]);
        match &self.order {
            None => x,
            Some(o) => x.index_select(1, o),
        }
    }

    /// The ordered inputs `[B, D]` and the logits of the D conditionals `[B, D]` (output `i`
    /// is p(x_{o_i} = 1 | x_{o_<i})) for `x` `[B, …]`, in O(BDH): the pre-activations of all
    /// conditionals are c plus an exclusive cumulative sum of W_o[:, j] x_{o_j} along the
    /// ordering (one `cumsum`, no loop over the variables). It holds `[B, D, H]` at once: it is
    /// the differentiable reference the blocked pass is tested against, not what trains.
    pub fn conditionals(&self, x: &Tensor) -> (Tensor, Tensor) {
        let x_o = self.ordered_inputs(x);
        let (w_o, v_o, b_o) = self.ordered_params();
        let (bsz, d) = (x_o.size()[0], self.dim);
        // Shift by one step so the running sum at step i holds inputs j < i only (exactly:
        // no "include then subtract" rounding that would leak x_{o_i} into its own output).
        let x_prev = Tensor::cat(
            &[x_o.zeros_like().narrow(1, 0, 1), x_o.narrow(1, 0, d - 1)],
            1,
        );
        let w_prev = Tensor::cat(
            &[w_o.zeros_like().narrow(1, 0, 1), w_o.narrow(1, 0, d - 1)],
            1,
        );
        let contrib = x_prev.unsqueeze(2) * w_prev.tr().unsqueeze(0); // [B, D, H]
        let a = contrib.cumsum(1, w_o.kind()) + &self.c;
        let h = a.sigmoid();
        let logits = (h * v_o.unsqueeze(0)).sum_dim_intlist(-1, false, w_o.kind()) + b_o;
        debug_assert_eq!(logits.size(), vec![bsz, d]);
        (x_o, logits)
    }

    /// The ordered inputs `[D, B]` in the parameters' kind and W_oᵀ `[D, H]`, V_o, b_o.
    fn ordered_problem(&self, x: &Tensor) -> (Tensor, Tensor, Tensor, Tensor) {
        let (w_o, v_o, b_o) = self.ordered_params();
        let xt = self.ordered_inputs(x).to_kind(w_o.kind()).tr().contiguous();
        (xt, w_o.tr().contiguous(), v_o.contiguous(), b_o)
    }

    /// log p(x) `[B]` and the gradient of the mean NLL with respect to (W, V, b, c), written
    /// by hand (Larochelle & Murray 2011) and computed in blocks of the ordering
    /// ([`blocked`](super::blocked)): the working set is `[block, B, H]`, not `[D, B, H]`.
    /// A test checks the result against autograd for several block sizes.
    pub fn nll_gradients(&self, x: &Tensor) -> (Tensor, [Tensor; 4]) {
        tch::no_grad(|| {
            let (xt, wt, v, b) = self.ordered_problem(x);
            let problem = Ordered {
                xt: &xt,
                wt: &wt,
                v: &v,
                b: &b,
                c: &self.c,
            };
            let (lp, g) = problem.nll_gradients(self.cfg.block);
            let (dw, dv, db) = match &self.order {
                None => (g.wt.tr().contiguous(), g.v, g.b),
                Some(o) => (
                    g.wt.zeros_like().index_copy(0, o, &g.wt).tr().contiguous(),
                    g.v.zeros_like().index_copy(0, o, &g.v),
                    g.b.zeros_like().index_copy(0, o, &g.b),
                ),
            };
            (lp, [dw, dv, db, g.c])
        })
    }

    /// log p(x) `[B]` through the blocked pass, without gradients.
    fn log_prob_blocked(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let (xt, wt, v, b) = self.ordered_problem(x);
            Ordered {
                xt: &xt,
                wt: &wt,
                v: &v,
                b: &b,
                c: &self.c,
            }
            .log_prob(self.cfg.block)
        })
    }

    /// log p(x) `[B]` from [`Nade::conditionals`], differentiable by autograd (the
    /// reference the blocked pass is tested against).
    pub fn log_prob_autograd(&self, x: &Tensor) -> Tensor {
        let (x_o, logits) = self.conditionals(x);
        (&x_o * &logits - logits.softplus()).sum_dim_intlist(-1, false, logits.kind())
    }

    /// log p(x) without gradients, in chunks that bound the `[block, rows, H]` activations.
    fn log_prob_eval(&self, x: &Tensor) -> Tensor {
        let rows = (EVAL_BUDGET / (self.cfg.block.min(self.dim) * self.cfg.hidden)).max(1);
        common::chunked(x, rows, |c| self.log_prob_blocked(c)).to_kind(Kind::Float)
    }
}

impl Autoregressive for Nade {
    fn dim(&self) -> i64 {
        self.dim
    }

    fn log_prob(&self, x: &Tensor) -> Tensor {
        self.log_prob_eval(x)
    }

    fn sample_flat(&self, n: i64) -> Tensor {
        tch::no_grad(|| {
            let d = self.dim;
            let device = self.device();
            let (w_o, v_o, b_o) = self.ordered_params();
            let w_rows = w_o.tr().contiguous(); // [D, H]: row i is W[:, o_i]
                                                // x_i = 1[b_i + h·V_i > noise_i]: the biases are folded into the thresholds once.
            let thresholds =
                common::logistic_noise(&[d, n], device) - b_o.unsqueeze(1).to_kind(Kind::Float);
            if device == Device::Cpu && self.c.kind() == Kind::Float {
                let ins = [&w_rows, &v_o, &thresholds, &self.c];
                let ([x_o], ()) =
                    host::pass::<f32, 4, 1, _>(ins, [&[d, n]], |ins, [x]| sample_pass(ins, x))
                        .expect("CPU f32 tensors");
                return common::from_ordering(&x_o, self.order.as_ref());
            }
            // Elsewhere every step writes into preallocated buffers (five kernels).
            let x_o = Tensor::zeros([d, n], (Kind::Float, device));
            // The running pre-activation a = c + Σ_{j<i} W[:, o_j] x_{o_j}, one per sample.
            let mut a = self.c.unsqueeze(0).repeat([n, 1]);
            let h = a.zeros_like();
            let dot = Tensor::zeros([n], (a.kind(), device));
            let fire = Tensor::zeros([n], (Kind::Bool, device));
            for i in 0..d {
                let _ = a.sigmoid_out(&h);
                let _ = h.mv_out(&dot, &v_o.get(i));
                let _ = dot.gt_tensor_out(&fire, &thresholds.get(i));
                let mut xi = x_o.get(i);
                xi.copy_(&fire);
                let _ = a.addr_(&xi, &w_rows.get(i));
            }
            common::from_ordering(&x_o, self.order.as_ref())
        })
    }
}

/// Samples drawn together in [`sample_pass`]: their running pre-activations stay in cache
/// while the rows of W and V stream by once per block.
const SAMPLE_BLOCK: usize = 8;

/// Ancestral sampling on the CPU in one pass: for each sample b and dimension i (in the
/// ordering), x[i, b] = 1[σ(a_b)·V_i > thr[i, b]], then a_b += W_i where it fired, with
/// a_b = c at the start. `w` and `v` are `[D, H]` (rows in the ordering), `thr` and `x`
/// `[D, N]`, `c` `[H]`.
fn sample_pass([w, v, thr, c]: [&[f32]; 4], x: &mut [f32]) {
    let hn = c.len();
    let (d, n) = (w.len() / hn, x.len() / (w.len() / hn));
    let mut a = vec![0f32; SAMPLE_BLOCK * hn];
    let mut h = vec![0f32; hn];
    for b0 in (0..n).step_by(SAMPLE_BLOCK) {
        let rows = SAMPLE_BLOCK.min(n - b0);
        for ar in a.chunks_exact_mut(hn).take(rows) {
            ar.copy_from_slice(c);
        }
        for (i, (wi, vi)) in w.chunks_exact(hn).zip(v.chunks_exact(hn)).enumerate() {
            for (r, ar) in a.chunks_exact_mut(hn).take(rows).enumerate() {
                vecmath::sigmoid(ar, &mut h);
                let fire = vecmath::dot(&h, vi) > thr[i * n + b0 + r];
                x[i * n + b0 + r] = f32::from(u8::from(fire));
                if fire {
                    ar.iter_mut().zip(wi).for_each(|(a, w)| *a += w);
                }
            }
        }
    }
    debug_assert_eq!(d * n, x.len());
}

impl Model for Nade {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "nade"
    }

    gm_core::single_network!(vs, opt, "opt");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let (lp, [dw, dv, db, dc]) = self.nll_gradients(x);
        // The optimizer's parameters are sorted by name; match them by identity.
        let mut grads = Vec::with_capacity(4);
        for p in self.opt.params() {
            let g = [
                (&self.w, &dw),
                (&self.v, &dv),
                (&self.b, &db),
                (&self.c, &dc),
            ]
            .into_iter()
            .find(|(t, _)| t.data_ptr() == p.data_ptr())
            .map(|(_, g)| g.shallow_clone())
            .expect("every NADE parameter has a gradient");
            grads.push(g);
        }
        self.opt.apply_gradients(&grads)?;
        Ok(common::nll_metrics(&lp, self.dim))
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        Ok(common::nll_metrics(&self.log_prob_eval(x), self.dim))
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        Ok(common::unflatten(self.sample_flat(n), &self.shape))
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let lp = common::chunked(x, cfg.data.eval_batch_size, |c| self.log_prob_eval(c));
        let settings = serde_json::json!({
            "hidden": self.cfg.hidden,
            "ordering": self.cfg.ordering,
            "ordering_seed": self.cfg.ordering_seed,
        });
        Ok(vec![common::exact_report("nade", settings, &lp)?])
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
