use super::ais::GrbmAis;
use super::config::{
    GrbmConfig, Precision, PrecisionShape, StandardizationRecord, Standardize, Update,
};
use super::energy;
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{
    params_table, parse_params, BuildContext, Figure, LikelihoodKind, LogLikelihood, Metrics, Model,
};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use gm_eval::ais::{self, Schedule};
use gm_eval::importance::mean_and_std_err;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Hidden units up to which `eval_metrics` reports the exact NLL (log Z is recomputed on
/// every call, so it must stay cheap).
const METRIC_EXACT_MAX_HIDDEN: i64 = 14;

/// Statistics of the training split (non-trainable, in the checkpoint), data units, `[D]`.
struct Stats {
    /// Standardisation: v = (x − shift) / scale.
    shift: Tensor,
    scale: Tensor,
    /// Per-unit mean and standard deviation (floored at `min_std`): the AIS base.
    data_mean: Tensor,
    data_std: Tensor,
}

/// A Gaussian–Bernoulli RBM on standardised inputs.
pub struct Grbm {
    cfg: GrbmConfig,
    shape: Vec<i64>,
    is_image: bool,
    dim: i64,
    kind: Kind,
    vs: VarStore,
    w: Tensor,
    b: Tensor,
    c: Tensor,
    log_beta: Tensor,
    stats: Stats,
    chains_vs: Option<VarStore>,
    chains: Option<Tensor>,
    param_names: Vec<String>,
    opt: Optimizer,
}

/// Builds a GRBM from a run config (the `grbm` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: GrbmConfig = parse_params("grbm", &ctx.cfg.model.params)?;
    Ok(Box::new(Grbm::new(cfg, ctx)?))
}

impl Grbm {
    /// A new `f32` GRBM for `ctx.data` (real-valued), standardised with the training split's
    /// statistics.
    pub fn new(cfg: GrbmConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        Self::with_kind(cfg, ctx, Kind::Float)
    }

    /// The same in `kind` (`Float` or `Double`; tests use `f64`).
    pub fn with_kind(cfg: GrbmConfig, ctx: &BuildContext<'_>, kind: Kind) -> Result<Self> {
        cfg.validate()?;
        if !matches!(kind, Kind::Float | Kind::Double) {
            return Err(Error::Msg(format!(
                "grbm: kind {kind:?}, expected f32 or f64"
            )));
        }
        let data = ctx.data;
        if data.binary {
            return Err(Error::config(
                "data.binarize",
                data.binarization,
                format!(
                    "\"none\": the Gaussian–Bernoulli RBM models real values, but dataset {} is binary here (use `rbm` for binary data)",
                    data.name
                ),
            ));
        }
        let dim: i64 = data.shape.iter().product();
        if dim < 1 || data.train.is_empty() {
            return Err(Error::config(
                "data",
                format!(
                    "shape {:?}, {} training examples",
                    data.shape,
                    data.train.len()
                ),
                "a non-empty example shape and training split",
            ));
        }
        let device = ctx.device;
        let h = cfg.hidden;
        let x = data.train.x.reshape([-1, dim]).to_kind(Kind::Double);
        let mean = x.mean_dim(0, false, Kind::Double);
        let std = x.std_dim(0, false, false);
        let data_std = std.clamp_min(cfg.min_std);
        let (shift, scale) = match cfg.standardize {
            Standardize::PerPixel => (mean.shallow_clone(), data_std.shallow_clone()),
            Standardize::Global => {
                let m = x.mean(Kind::Double);
                let s = x.std(false).clamp_min(cfg.min_std);
                (
                    m.expand([dim], false).contiguous(),
                    s.expand([dim], false).contiguous(),
                )
            }
            Standardize::None => (
                Tensor::zeros([dim], (Kind::Double, x.device())),
                Tensor::ones([dim], (Kind::Double, x.device())),
            ),
        };
        let floored = std.lt(cfg.min_std).sum(Kind::Int64).int64_value(&[]);

        let vs = VarStore::new(device);
        let root = vs.root() / "grbm";
        let w = root.var(
            "w",
            &[dim, h],
            tch::nn::Init::Randn {
                mean: 0.0,
                stdev: cfg.init_scale,
            },
        );
        // Visible biases at the standardised data mean (0 under per-pixel standardisation).
        let b_init = ((&mean - &shift) / &scale)
            .to_kind(Kind::Float)
            .to_device(device);
        let b = root.var_copy("b", &b_init);
        let c = root.zeros("c", &[h]);
        let n_beta = match cfg.precision_shape {
            PrecisionShape::Scalar => 1,
            PrecisionShape::Diagonal => dim,
        };
        let lb = Tensor::full([n_beta], cfg.init_precision.ln(), (Kind::Float, device));
        let log_beta = match cfg.precision {
            Precision::Learned => root.var_copy("log_beta", &lb),
            Precision::Fixed => {
                let t = root.zeros_no_train("log_beta", &[n_beta]);
                tch::no_grad(|| t.shallow_clone().copy_(&lb));
                t
            }
        };
        let s = vs.root() / "stats";
        let stat = |name: &str, v: &Tensor| {
            let t = s.zeros_no_train(name, &[dim]);
            tch::no_grad(|| {
                t.shallow_clone()
                    .copy_(&v.to_kind(Kind::Float).to_device(device))
            });
            t
        };
        let stats = Stats {
            shift: stat("shift", &shift),
            scale: stat("scale", &scale),
            data_mean: stat("data_mean", &mean),
            data_std: stat("data_std", &data_std),
        };
        let (mut chains_vs, mut chains) = (None, None);
        if cfg.persistent {
            let n = cfg.chains.unwrap_or(ctx.cfg.data.batch_size);
            let cvs = VarStore::new(device);
            let v = (cvs.root() / "pcd").zeros_no_train("v", &[n, dim]);
            // Start the chains at training examples (standardised), drawn with replacement.
            let idx = Tensor::randint(data.train.len(), [n], (Kind::Int64, x.device()));
            let v0 = (x.index_select(0, &idx) - &shift) / &scale;
            tch::no_grad(|| {
                v.shallow_clone()
                    .copy_(&v0.to_kind(Kind::Float).to_device(device))
            });
            chains = Some(v);
            chains_vs = Some(cvs);
        }
        let mut vs = vs;
        if kind == Kind::Double {
            vs.double();
            if let Some(c) = chains_vs.as_mut() {
                c.double();
            }
        }
        let mut param_names: Vec<String> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, _)| n)
            .collect();
        param_names.sort();
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        let sum_log_scale = scale.log().sum(Kind::Double).double_value(&[]);
        let range = |t: &Tensor| [t.min().double_value(&[]), t.max().double_value(&[])];
        let mut cfg = cfg;
        cfg.standardization = Some(StandardizationRecord {
            dims: dim,
            shift_range: range(&shift),
            scale_range: range(&scale),
            sum_log_scale,
            floored,
        });
        Ok(Grbm {
            cfg,
            shape: data.shape.clone(),
            is_image: data.is_image,
            dim,
            kind,
            vs,
            w,
            b,
            c,
            log_beta,
            stats,
            chains_vs,
            chains,
            param_names,
            opt,
        })
    }

    /// The resolved config (with the standardisation record).
    pub fn config(&self) -> &GrbmConfig {
        &self.cfg
    }

    /// The visible precisions β, `[D]` (a scalar precision expanded).
    pub fn beta(&self) -> Tensor {
        self.log_beta.exp().expand([self.dim], false)
    }

    /// The parameters (W `[D, H]`, b `[D]`, c `[H]`, β `[D]`) in standardised units.
    pub fn parameters(&self) -> (Tensor, Tensor, Tensor, Tensor) {
        (
            self.w.shallow_clone(),
            self.b.shallow_clone(),
            self.c.shallow_clone(),
            self.beta(),
        )
    }

    /// The standardisation: v = (x − shift) / scale, `[D]` each.
    pub fn standardization(&self) -> (Tensor, Tensor) {
        (
            self.stats.shift.shallow_clone(),
            self.stats.scale.shallow_clone(),
        )
    }

    /// The persistent chains `[P, D]` (standardised units), under PCD.
    pub fn chains(&self) -> Option<&Tensor> {
        self.chains.as_ref()
    }

    /// Σ_i log s_i: log p(x) = log p(v) − Σ_i log s_i.
    pub fn sum_log_scale(&self) -> f64 {
        self.stats
            .scale
            .to_kind(Kind::Double)
            .log()
            .sum(Kind::Double)
            .double_value(&[])
    }

    /// Data `[N, …]` to standardised `[N, D]` in the model's kind.
    pub fn standardize(&self, x: &Tensor) -> Tensor {
        (x.reshape([-1, self.dim]).to_kind(self.kind) - &self.stats.shift) / &self.stats.scale
    }

    /// Standardised `[N, D]` back to data units `[N, D]`.
    pub fn unstandardize(&self, v: &Tensor) -> Tensor {
        v * &self.stats.scale + &self.stats.shift
    }

    /// F(v) of standardised `v` `[N, D]`.
    pub fn free_energy(&self, v: &Tensor) -> Tensor {
        energy::free_energy(v, &self.w, &self.b, &self.c, &self.beta())
    }

    /// Exact log Z (standardised space) by enumerating the 2^H hidden states.
    pub fn log_z_exact(&self) -> f64 {
        energy::log_z_exact(&self.w, &self.b, &self.c, &self.beta())
    }

    /// Exact log p(x) in data space, `f64` `[N]`: −F(v) − log Z − Σ_i log s_i.
    pub fn log_prob_exact(&self, x: &Tensor, log_z: f64) -> Tensor {
        tch::no_grad(|| {
            let v = self.standardize(x).to_kind(Kind::Double);
            let f = energy::free_energy(
                &v,
                &self.w.to_kind(Kind::Double),
                &self.b.to_kind(Kind::Double),
                &self.c.to_kind(Kind::Double),
                &self.beta().to_kind(Kind::Double),
            );
            -f - (log_z + self.sum_log_scale())
        })
    }

    /// The AIS target of the current parameters, with the data's Gaussian as base.
    pub fn ais_target(&self) -> Result<GrbmAis> {
        let s = &self.stats;
        let base_mean = (&s.data_mean - &s.shift) / &s.scale;
        let base_prec = (&s.scale / &s.data_std).square();
        GrbmAis::new(
            self.w.detach(),
            self.b.detach(),
            self.c.detach(),
            self.beta().detach().contiguous(),
            base_mean,
            base_prec,
        )
    }

    /// `k` block-Gibbs sweeps from `v` (standardised), returning the last v and h.
    pub fn gibbs(&self, v: &Tensor, k: i64) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let q = energy::hidden_probs(v, &self.w, &self.c, &self.beta());
            self.gibbs_from_probs(&q, k)
        })
    }

    /// `k` sweeps whose first hidden draw uses the given p(h = 1 | v).
    fn gibbs_from_probs(&self, q: &Tensor, k: i64) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let beta = self.beta();
            let mut h = energy::bernoulli(q);
            let mut v = energy::sample_visible(&h, &self.w, &self.b, &beta);
            for _ in 1..k {
                h = energy::sample_hidden(&v, &self.w, &self.c, &beta);
                v = energy::sample_visible(&h, &self.w, &self.b, &beta);
            }
            (v, h)
        })
    }

    /// The hand-written CD gradient of mean F(pos) − mean F(neg), in the optimizer's order,
    /// given q = p(h = 1 | ·) of both.
    fn hand_gradients_from_probs(
        &self,
        pos: &Tensor,
        q_pos: &Tensor,
        neg: &Tensor,
        q_neg: &Tensor,
    ) -> Vec<Tensor> {
        tch::no_grad(|| {
            let beta = self.beta();
            let (w, b) = (&self.w, &self.b);
            let learned = self.cfg.precision == Precision::Learned;
            let (pw, pb, pc, pbeta) =
                energy::free_energy_grads_from_probs(pos, q_pos, w, b, &beta, learned);
            let (nw, nb, nc, nbeta) =
                energy::free_energy_grads_from_probs(neg, q_neg, w, b, &beta, learned);
            let mut gw = pw - nw;
            if self.cfg.weight_decay > 0.0 {
                gw += w * self.cfg.weight_decay;
            }
            let mut gc = &pc - &nc;
            // Sparsity: λ (q̄ − p) on each hidden unit's input u = c + (β ⊙ v) W, passed to
            // c, W and β through ∂ū/∂θ (ū the batch mean of u).
            let mut g_beta_sparse = None;
            if self.cfg.sparsity_cost > 0.0 {
                let k = pos.kind();
                let s = (q_pos.mean_dim(0, false, k) - self.cfg.sparsity_target)
                    * self.cfg.sparsity_cost;
                let v_mean = pos.mean_dim(0, false, k);
                gw += (&v_mean * &beta).unsqueeze(1) * s.unsqueeze(0);
                gc += &s;
                g_beta_sparse = Some(v_mean * w.mv(&s));
            }
            // ∂/∂log β = β ∂/∂β, summed over units for a scalar precision.
            let glog_beta = match (pbeta, nbeta) {
                (Some(p), Some(n)) => {
                    let mut g = p - n;
                    if let Some(sp) = &g_beta_sparse {
                        g += sp;
                    }
                    let g = g * &beta;
                    Some(match self.cfg.precision_shape {
                        PrecisionShape::Scalar => g.sum(g.kind()).reshape([1]),
                        PrecisionShape::Diagonal => g,
                    })
                }
                _ => None,
            };
            self.param_names
                .iter()
                .map(|n| match (n.as_str(), &glog_beta) {
                    ("grbm.w", _) => gw.shallow_clone(),
                    ("grbm.b", _) => &pb - &nb,
                    ("grbm.c", _) => gc.shallow_clone(),
                    ("grbm.log_beta", Some(g)) => g.shallow_clone(),
                    (other, _) => unreachable!("grbm: unexpected trainable variable {other}"),
                })
                .collect()
        })
    }

    fn hand_gradients(&self, pos: &Tensor, neg: &Tensor) -> Vec<Tensor> {
        let beta = self.beta();
        let q_pos = energy::hidden_probs(pos, &self.w, &self.c, &beta);
        let q_neg = energy::hidden_probs(neg, &self.w, &self.c, &beta);
        self.hand_gradients_from_probs(pos, &q_pos, neg, &q_neg)
    }

    /// The gradients the configured update would apply for data `pos` and negatives `neg`
    /// (standardised), in the optimizer's parameter order (`opt.params()`), without applying them.
    pub fn cd_gradients(&self, pos: &Tensor, neg: &Tensor) -> Result<Vec<Tensor>> {
        match self.cfg.update {
            Update::Hand => Ok(self.hand_gradients(pos, neg)),
            Update::Autograd => {
                let loss = self.autograd_loss(pos, neg);
                let params = self.opt.params();
                Ok(Tensor::f_run_backward(&[loss], params, false, false)?)
            }
        }
    }

    fn autograd_loss(&self, pos: &Tensor, neg: &Tensor) -> Tensor {
        let k = self.kind;
        let mut loss = self.free_energy(pos).mean(k) - self.free_energy(&neg.detach()).mean(k);
        if self.cfg.weight_decay > 0.0 {
            loss += self.w.square().sum(k) * (0.5 * self.cfg.weight_decay);
        }
        if self.cfg.sparsity_cost > 0.0 {
            // A surrogate whose gradient is λ (q̄ − p)·∂ū/∂θ, q̄ held constant.
            let u = energy::hidden_input(pos, &self.w, &self.c, &self.beta());
            let s = (u.sigmoid().mean_dim(0, false, k).detach() - self.cfg.sparsity_target)
                * self.cfg.sparsity_cost;
            loss += (u.mean_dim(0, false, k) * s).sum(k);
        }
        loss
    }

    /// E[v | h = q(v)] mapped back to data units, `[N, D]`.
    fn reconstruct(&self, v: &Tensor) -> Tensor {
        let beta = self.beta();
        let q = energy::hidden_probs(v, &self.w, &self.c, &beta);
        self.unstandardize(&energy::visible_mean(&q, &self.w, &self.b))
    }

    /// The proxies from data `x`, its standardised `v`, the negatives, and their hidden
    /// pre-activations.
    fn proxies(
        &self,
        x: &Tensor,
        v: &Tensor,
        u_pos: &Tensor,
        neg: &Tensor,
        u_neg: &Tensor,
    ) -> Metrics {
        tch::no_grad(|| {
            let k = self.kind;
            let beta = self.beta();
            let gap = energy::free_energy_from_input(v, u_pos, &self.b, &beta).mean(k)
                - energy::free_energy_from_input(neg, u_neg, &self.b, &beta).mean(k);
            let rec = self.unstandardize(&energy::visible_mean(&u_pos.sigmoid(), &self.w, &self.b));
            let xf = x.reshape([-1, self.dim]).to_kind(k);
            let mse = (rec - xf).square().mean(k);
            vec![("free_energy_gap_proxy", gap), ("recon_mse_proxy", mse)]
        })
    }

    /// Standardised data, its negatives after `k` sweeps (from the data, or from the
    /// persistent chains, which are advanced: split across processes like the batch when
    /// as many), and both pre-activations.
    fn negatives(&self, x: &Tensor, k: i64) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
        tch::no_grad(|| {
            let beta = self.beta();
            let v = self.standardize(x);
            let u_pos = energy::hidden_input(&v, &self.w, &self.c, &beta);
            let neg = match &self.chains {
                Some(c) => gm_core::dist::advance_chains(&[c.shallow_clone()], |mine| {
                    vec![self.gibbs(&mine[0], k).0]
                })?
                .remove(0),
                None => self.gibbs_from_probs(&u_pos.sigmoid(), k).0,
            };
            let u_neg = energy::hidden_input(&neg, &self.w, &self.c, &beta);
            Ok((v, u_pos, neg, u_neg))
        })
    }

    fn images(&self, flat: &Tensor) -> Tensor {
        let mut shape = vec![-1];
        shape.extend_from_slice(&self.shape);
        flat.reshape(shape.as_slice())
    }

    fn settings(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut s = serde_json::json!({
            "hidden": self.cfg.hidden,
            "precision": self.cfg.precision,
            "precision_shape": self.cfg.precision_shape,
            "standardize": self.cfg.standardize,
            "min_std": self.cfg.min_std,
            "sum_log_scale": self.sum_log_scale(),
            "space": "data: log p(x) = log p(v) − Σ_i log s_i with v = (x − μ)/s (the standardisation's log-Jacobian is included)",
        });
        if let (Some(o), serde_json::Value::Object(e)) = (s.as_object_mut(), extra) {
            o.extend(e);
        }
        s
    }
}

impl Model for Grbm {
    fn name(&self) -> &str {
        "grbm"
    }

    fn var_stores(&self) -> Vec<(&'static str, &VarStore)> {
        let mut v = vec![("model", &self.vs)];
        if let Some(c) = &self.chains_vs {
            v.push(("chains", c));
        }
        v
    }

    fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        let mut v = vec![("model", &mut self.vs)];
        if let Some(c) = self.chains_vs.as_mut() {
            v.push(("chains", c));
        }
        v
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        vec![("opt", &mut self.opt)]
    }

    fn optimizers_ref(&self) -> Vec<(&'static str, &Optimizer)> {
        vec![("opt", &self.opt)]
    }

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let (v, u_pos, neg, u_neg) = self.negatives(x, self.cfg.cd_k)?;
        let metrics = self.proxies(x, &v, &u_pos, &neg, &u_neg);
        match self.cfg.update {
            Update::Hand => {
                let g =
                    self.hand_gradients_from_probs(&v, &u_pos.sigmoid(), &neg, &u_neg.sigmoid());
                self.opt.apply_gradients(&g)?;
            }
            Update::Autograd => {
                let loss = self.autograd_loss(&v, &neg);
                self.opt.backward_step(&loss)?;
            }
        }
        Ok(metrics)
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let v = self.standardize(x);
        let beta = self.beta();
        let u_pos = energy::hidden_input(&v, &self.w, &self.c, &beta);
        let (neg, _) = self.gibbs_from_probs(&u_pos.sigmoid(), 1);
        let u_neg = energy::hidden_input(&neg, &self.w, &self.c, &beta);
        let mut m = self.proxies(x, &v, &u_pos, &neg, &u_neg);
        if self.cfg.hidden <= METRIC_EXACT_MAX_HIDDEN.min(self.cfg.exact_max_hidden) {
            let lp = self.log_prob_exact(x, self.log_z_exact());
            m.push(("nll_exact", -lp.mean(Kind::Double)));
        }
        Ok(m)
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        tch::no_grad(|| {
            let base = self.ais_target()?;
            let v0 = gm_eval::ais::AisTarget::sample_base(&base, n)?;
            let (_, h) = self.gibbs(&v0, self.cfg.sample_steps);
            let mean = energy::visible_mean(&h, &self.w, &self.b);
            Ok(self.images(&self.unstandardize(&mean)).to_kind(Kind::Float))
        })
    }

    fn figures(&self, x: &Tensor) -> Result<Vec<Figure>> {
        if !self.is_image || self.shape.len() != 3 {
            return Ok(Vec::new());
        }
        tch::no_grad(|| {
            let h = self.cfg.hidden.min(100);
            let filters = self.w.narrow(1, 0, h).tr().to_kind(Kind::Float);
            let lo = filters.amin([1], true);
            let hi = filters.amax([1], true);
            let filters = (&filters - &lo) / (hi - &lo).clamp_min(1e-12);
            let n = x.size()[0].min(32);
            let per_row = 8.min(n);
            let rows = n / per_row;
            let xs = x
                .narrow(0, 0, rows * per_row)
                .reshape([-1, self.dim])
                .to_kind(Kind::Float);
            let rec = self
                .reconstruct(&self.standardize(&xs))
                .to_kind(Kind::Float);
            let pairs = Tensor::stack(
                &[
                    xs.view([rows, per_row, self.dim]),
                    rec.view([rows, per_row, self.dim]),
                ],
                1,
            );
            let samples = self.sample(64)?;
            Ok(vec![
                Figure {
                    name: "filters".into(),
                    caption: format!(
                        "the first {h} filters (columns of W), each scaled to its own [min, max]"
                    ),
                    images: self.images(&filters),
                    per_row: 10,
                },
                Figure {
                    name: "reconstructions".into(),
                    caption: "odd rows: held-out examples; even rows: b + W·p(h|v) in data space, clamped to [0, 1]".into(),
                    images: self.images(&pairs).clamp(0.0, 1.0),
                    per_row,
                },
                Figure {
                    name: "samples".into(),
                    caption: format!(
                        "b + W h after {} block-Gibbs sweeps from the data's Gaussian, data space, clamped to [0, 1]",
                        self.cfg.sample_steps
                    ),
                    images: samples.clamp(0.0, 1.0),
                    per_row: 8,
                },
            ])
        })
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let n = x.size()[0];
        let chunk = cfg.data.eval_batch_size.max(1);
        if self.cfg.hidden <= self.cfg.exact_max_hidden {
            let log_z = self.log_z_exact();
            let parts: Vec<Tensor> = (0..n)
                .step_by(chunk as usize)
                .map(|s| self.log_prob_exact(&x.narrow(0, s, chunk.min(n - s)), log_z))
                .collect();
            let lp = Tensor::cat(&parts, 0);
            let (mean, std_err) = mean_and_std_err(&lp)?;
            return Ok(vec![LogLikelihood {
                kind: LikelihoodKind::Exact,
                method: "grbm-enumeration".into(),
                settings: self.settings(serde_json::json!({
                    "log_z": log_z,
                    "log_z_method": format!("sum over all 2^{} hidden states of closed-form Gaussian integrals", self.cfg.hidden),
                })),
                mean,
                std_err,
                n,
            }]);
        }
        tch::manual_seed(cfg.eval.seed as i64);
        let target = self.ais_target()?;
        let schedule = match cfg.eval.ais_steps {
            Some(k) => Schedule::linear(k)?,
            None => Schedule::salakhutdinov_murray(),
        };
        let est = ais::run(&target, &schedule, cfg.eval.ais_chains)?;
        let parts: Vec<Tensor> = (0..n)
            .step_by(chunk as usize)
            .map(|s| self.log_prob_exact(&x.narrow(0, s, chunk.min(n - s)), 0.0))
            .collect();
        // log p(x) + log Z: −F(v) − Σ log s.
        let log_f = Tensor::cat(&parts, 0);
        let mut ll = est.log_likelihood(&log_f)?;
        let extra = std::mem::take(&mut ll.settings);
        ll.settings = self.settings(serde_json::json!({
            "base": "N(data mean, data variance) in standardised units, hidden units unconnected",
            "seed": cfg.eval.seed,
            "ais": extra,
        }));
        Ok(vec![ll])
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
