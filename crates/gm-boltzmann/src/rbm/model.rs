use super::config::{Dtype, RbmConfig, Rule};
use super::exact::{self, softplus, Layer};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{
    params_table, parse_params, BuildContext, Figure, LikelihoodKind, LogLikelihood, Metrics, Model,
};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use gm_eval::ais::{self, rbm::BernoulliRbm, AisResult, Schedule};
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

/// Marginals of the data are clamped to [EPS, 1 − EPS] before taking logits (initial
/// visible biases and the AIS base-rate model).
pub(crate) const MARGINAL_EPS: f64 = 1e-3;

/// The note of a record whose log Ẑ comes from reverse AIS started at a model's persistent
/// chains: `chains` copies of the `persistent` ones, after `sweeps` more Gibbs sweeps.
pub(crate) fn reverse_note(chains: i64, persistent: i64, sweeps: i64) -> serde_json::Value {
    serde_json::json!(format!(
        "log Z from reverse AIS, its {chains} chains started from the {persistent} persistent \
         chains (chain i from chain i mod {persistent}) after {sweeps} more Gibbs sweeps: not \
         exact samples, so a check of the forward estimate rather than a bound"
    ))
}

/// A Bernoulli–Bernoulli RBM with its optimizer and training state.
pub struct Rbm {
    pub(super) cfg: RbmConfig,
    pub(super) shape: Vec<i64>,
    pub(super) nv: i64,
    pub(super) nh: i64,
    pub(super) kind: Kind,
    pub(super) vs: VarStore,
    pub(super) w: Tensor,
    pub(super) b: Tensor,
    pub(super) c: Tensor,
    pub(super) opt: Optimizer,
    /// Positions of W, b and c in [`Optimizer::params`].
    pub(super) slots: [usize; 3],
    /// Non-optimised state saved in checkpoints: persistent chains, centering offsets.
    pub(super) state: VarStore,
    /// PCD chains `[C, D]` or PT replicas `[R, C, D]`.
    pub(super) chains: Option<Tensor>,
    /// Centering offsets μ `[D]` and λ `[H]`.
    pub(super) offsets: Option<(Tensor, Tensor)>,
    /// PT inverse temperatures `[R]`, 1 first.
    pub(super) betas: Option<Tensor>,
    /// Visible biases of the base-rate model (logits of the training marginals).
    pub(super) base_b: Tensor,
}

/// Builds an RBM from a run config (the `rbm` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: RbmConfig = parse_params("rbm", &ctx.cfg.model.params)?;
    Ok(Box::new(Rbm::new(cfg, ctx)?))
}

/// x ~ Bernoulli(p), elementwise ([`gm_core::sampling::bernoulli`]).
pub(super) use gm_core::sampling::bernoulli::sample as bernoulli;

impl Rbm {
    /// A new RBM for binary data shaped like `ctx.data`: W ~ N(0, init_std²), c = 0 and b
    /// the logits of the training marginals (Hinton's practical guide, §8).
    pub fn new(cfg: RbmConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        if !data.binary {
            return Err(Error::config(
                "data.binarize",
                "\"none\"",
                format!(
                    "binary data for rbm (Bernoulli visible units), but dataset {} is \
                     real-valued here: set data.binarize to \"dynamic\", \"stochastic\" or \
                     \"threshold\"",
                    data.name
                ),
            ));
        }
        let nv = data.example_numel();
        let mean = data
            .train
            .x
            .reshape([-1, nv])
            .to_kind(Kind::Double)
            .mean_dim(0, false, Kind::Double);
        Self::with_marginals(cfg, ctx.cfg, data.shape.clone(), &mean, ctx.device)
    }

    /// An RBM on `mean.numel()` visible units (examples shaped `shape`) whose initial
    /// visible biases and base-rate model are the logits of `mean`, the visible units' mean
    /// activations (clamped to [ε, 1 − ε], ε = `MARGINAL_EPS`); optimizer and
    /// default chain count from `run`. The layers of a DBN are built this way, on the
    /// hidden units of the layer below instead of a dataset.
    pub(crate) fn with_marginals(
        cfg: RbmConfig,
        run: &RunConfig,
        shape: Vec<i64>,
        mean: &Tensor,
        device: Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let nv = mean.numel() as i64;
        let nh = cfg.hidden;
        let kind = match cfg.dtype {
            Dtype::Float32 => Kind::Float,
            Dtype::Float64 => Kind::Double,
        };
        let base_b = BernoulliRbm::base_rate_biases(&mean.to_kind(Kind::Double), MARGINAL_EPS)
            .to_kind(kind)
            .to_device(device);
        let mut vs = VarStore::new(device);
        vs.set_kind(kind);
        let root = vs.root() / "rbm";
        let w = root.var(
            "w",
            &[nv, nh],
            Init::Randn {
                mean: 0.0,
                stdev: cfg.init_std,
            },
        );
        let b = root.var_copy("b", &base_b);
        let c = root.zeros("c", &[nh]);
        let opt = Optimizer::new(&vs, &run.optim)?;
        let slot = |t: &Tensor| {
            opt.params()
                .iter()
                .position(|p| p.data_ptr() == t.data_ptr())
                .expect("every RBM parameter is optimised")
        };
        let slots = [slot(&w), slot(&b), slot(&c)];

        let state = VarStore::new(device);
        let sroot = state.root() / "state";
        let n_chains = cfg.chains.unwrap_or(run.data.batch_size);
        let p0 = base_b.sigmoid();
        let (chains, betas) = match cfg.rule {
            Rule::Pcd => {
                let init = bernoulli(&p0.unsqueeze(0).expand([n_chains, nv], false));
                (Some(sroot.add("pcd_chains", init, false)), None)
            }
            Rule::Pt => {
                let r = cfg.pt_replicas;
                let init = bernoulli(&p0.view([1, 1, nv]).expand([r, n_chains, nv], false));
                let betas = Tensor::linspace(1.0, cfg.pt_beta_min, r, (kind, device));
                (Some(sroot.add("pt_chains", init, false)), Some(betas))
            }
            _ => (None, None),
        };
        let offsets = cfg.centering.then(|| {
            let mu = sroot.add("center_v", mean.to_kind(kind).to_device(device), false);
            let lambda = sroot.add("center_h", Tensor::full([nh], 0.5, (kind, device)), false);
            (mu, lambda)
        });
        Ok(Rbm {
            cfg,
            shape,
            nv,
            nh,
            kind,
            vs,
            w,
            b,
            c,
            opt,
            slots,
            state,
            chains,
            offsets,
            betas,
            base_b,
        })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &RbmConfig {
        &self.cfg
    }

    /// Number of visible units D.
    pub fn visible(&self) -> i64 {
        self.nv
    }

    /// Number of hidden units H.
    pub fn hidden(&self) -> i64 {
        self.nh
    }

    /// The parameters W `[D, H]`, b `[D]`, c `[H]` (the variables themselves: copy into them
    /// under `tch::no_grad` to set them).
    pub fn params(&self) -> (&Tensor, &Tensor, &Tensor) {
        (&self.w, &self.b, &self.c)
    }

    /// The persistent chains (PCD `[C, D]`, PT `[R, C, D]`), if the rule keeps any.
    pub fn chains(&self) -> Option<&Tensor> {
        self.chains.as_ref()
    }

    /// The centering offsets μ (visible) and λ (hidden), when centering is on.
    pub fn offsets(&self) -> Option<(&Tensor, &Tensor)> {
        self.offsets.as_ref().map(|(m, l)| (m, l))
    }

    /// Visible biases of the base-rate model (logits of the training data's marginals).
    pub fn base_rate_biases(&self) -> &Tensor {
        &self.base_b
    }

    /// Makes `base_b` `[D]` (same kind and device) the base-rate model's visible biases: the
    /// RBM reads it from then on, so a caller that owns the tensor (a DBN keeps it in its
    /// checkpointed state) can move it in place.
    pub(crate) fn share_base_rate(&mut self, base_b: Tensor) {
        self.base_b = base_b;
    }

    /// Examples `[N, …]` as `[N, D]` in the parameters' kind.
    pub(super) fn flat(&self, v: &Tensor) -> Tensor {
        v.reshape([-1, self.nv]).to_kind(self.kind)
    }

    /// c + vW, `[N, H]` (records gradients when called outside `no_grad`).
    pub(super) fn pre_hidden_graph(&self, v: &Tensor) -> Tensor {
        self.c.addmm(v, &self.w)
    }

    /// F(v) = −v·b − Σ_j softplus(c_j + (vW)_j), `[N]`, recording gradients.
    pub(super) fn free_energy_graph(&self, v: &Tensor) -> Tensor {
        -v.mv(&self.b) - softplus(&self.pre_hidden_graph(v)).sum_dim_intlist(1, false, self.kind)
    }

    /// E(v, h) = −v·b − h·c − vᵀWh, `[N]`.
    pub fn energy(&self, v: &Tensor, h: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let v = self.flat(v);
            let h = h.to_kind(self.kind);
            -v.mv(&self.b)
                - h.mv(&self.c)
                - (v.mm(&self.w) * &h).sum_dim_intlist(1, false, self.kind)
        })
    }

    /// The free energy F(v) = −log Σ_h e^{−E(v, h)}, `[N]`.
    pub fn free_energy(&self, v: &Tensor) -> Tensor {
        tch::no_grad(|| self.free_energy_graph(&self.flat(v)))
    }

    /// p(h_j = 1 | v) = σ(c + vW), `[N, H]`.
    pub fn p_h(&self, v: &Tensor) -> Tensor {
        tch::no_grad(|| self.pre_hidden_graph(&self.flat(v)).sigmoid_())
    }

    /// p(v_i = 1 | h) = σ(b + Wh), `[N, D]`.
    pub fn p_v(&self, h: &Tensor) -> Tensor {
        tch::no_grad(|| self.b.addmm(&h.to_kind(self.kind), &self.w.tr()).sigmoid_())
    }

    /// h ~ p(h | v), `[N, H]`.
    pub fn sample_h(&self, v: &Tensor) -> Tensor {
        bernoulli(&self.p_h(v))
    }

    /// v ~ p(v | h), `[N, D]`.
    pub fn sample_v(&self, h: &Tensor) -> Tensor {
        bernoulli(&self.p_v(h))
    }

    /// `steps` block-Gibbs sweeps (h ~ p(h | v), then v ~ p(v | h)) of every row of `v`
    /// `[N, …]` at once; returns the visible states `[N, D]`.
    pub fn gibbs(&self, v: &Tensor, steps: i64) -> Tensor {
        let mut v = self.flat(v);
        for _ in 0..steps {
            v = self.sample_v(&self.sample_h(&v));
        }
        v
    }

    /// The mean-field reconstruction p(v | h = p(h | v)), `[N, D]`.
    pub fn reconstruct(&self, v: &Tensor) -> Tensor {
        self.p_v(&self.p_h(v))
    }

    /// log Z by enumerating `layer` (at most 25 units), in `f64`.
    pub fn log_z_enumerated(&self, layer: Layer) -> Result<f64> {
        exact::log_z(&self.w, &self.b, &self.c, layer)
    }

    /// The exact log Z and the layer enumerated, when the smaller layer has at most
    /// `exact_max_units` units.
    pub fn exact_log_z(&self) -> Result<Option<(f64, Layer)>> {
        let (layer, n) = if self.nh <= self.nv {
            (Layer::Hidden, self.nh)
        } else {
            (Layer::Visible, self.nv)
        };
        if n > self.cfg.exact_max_units {
            return Ok(None);
        }
        Ok(Some((self.log_z_enumerated(layer)?, layer)))
    }

    /// The model as an AIS target whose base is the base-rate model (Salakhutdinov &
    /// Murray 2008).
    pub fn ais_target(&self) -> Result<BernoulliRbm> {
        BernoulliRbm::new(
            self.w.detach(),
            self.b.detach(),
            self.c.detach(),
            self.base_b.shallow_clone(),
        )
    }

    /// Forward AIS estimate of log Z with `chains` chains along `schedule`.
    pub fn ais_log_z(&self, chains: i64, schedule: &Schedule) -> Result<AisResult> {
        ais::run(&self.ais_target()?, schedule, chains)
    }

    /// Reverse AIS estimate of log Z along `schedule`: `chains` chains copied from the
    /// persistent ones (PCD's; PT's β = 1 replica), moved by `sample_steps` Gibbs sweeps
    /// first. `None` when the rule keeps no chains. The chains are not exact samples, so it
    /// checks the forward estimate rather than bounding log Z.
    pub fn reverse_ais_log_z(&self, chains: i64, schedule: &Schedule) -> Result<Option<AisResult>> {
        let Some(pc) = &self.chains else {
            return Ok(None);
        };
        let pc = if pc.dim() == 3 {
            pc.get(0)
        } else {
            pc.shallow_clone()
        };
        let idx = Tensor::arange(chains, (Kind::Int64, pc.device())).remainder(pc.size()[0]);
        let start = tch::no_grad(|| self.gibbs(&pc.index_select(0, &idx), self.cfg.sample_steps));
        ais::run_reverse(&self.ais_target()?, schedule, start).map(Some)
    }

    /// −F(v) in `f64` for every row of `x` `[N, …]`, `chunk` rows at a time.
    pub fn neg_free_energy_f64(&self, x: &Tensor, chunk: i64) -> Tensor {
        tch::no_grad(|| {
            let (w, b, c) = (
                self.w.to_kind(Kind::Double),
                self.b.to_kind(Kind::Double),
                self.c.to_kind(Kind::Double),
            );
            let x = x.reshape([-1, self.nv]);
            let n = x.size()[0];
            let mut out = Vec::new();
            let mut start = 0;
            while start < n {
                let len = chunk.max(1).min(n - start);
                let v = x.narrow(0, start, len).to_kind(Kind::Double);
                out.push(
                    v.mv(&b) + softplus(&c.addmm(&v, &w)).sum_dim_intlist(1, false, Kind::Double),
                );
                start += len;
            }
            if out.is_empty() {
                Tensor::zeros([0], (Kind::Double, x.device()))
            } else {
                Tensor::cat(&out, 0)
            }
        })
    }

    /// Reconstruction error Σ_i (v_i − p(v_i = 1 | h))², h ~ p(h | v), given p(h | v),
    /// per example `[N]`.
    pub(super) fn recon_err_from(&self, v: &Tensor, ph: &Tensor) -> Tensor {
        let pv = self.p_v(&bernoulli(ph));
        (v - pv).square().sum_dim_intlist(1, false, Kind::Float)
    }

    /// The metrics shared by every rule, from v `[N, D]` and u = c + vW: the stochastic
    /// pseudo-likelihood proxy and the reconstruction error.
    pub(super) fn proxy_metrics(&self, v: &Tensor, u: &Tensor) -> Metrics {
        tch::no_grad(|| {
            let pl = self.pseudo_nll_proxy_from(v, u).mean(Kind::Float);
            let re = self.recon_err_from(v, &u.sigmoid()).mean(Kind::Float);
            vec![("pseudo_nll_proxy", pl), ("recon_err", re)]
        })
    }

    fn images(&self, x: &Tensor) -> Tensor {
        as_images(x, &self.shape)
    }
}

/// Rows `x` `[N, D]` as `f32` images `[N, …shape]` when `shape` is `[C, H, W]`, else as
/// `[N, 1, 1, D]`.
pub(crate) fn as_images(x: &Tensor, shape: &[i64]) -> Tensor {
    let mut dims = vec![x.size()[0]];
    if shape.len() == 3 {
        dims.extend_from_slice(shape);
    } else {
        dims.extend_from_slice(&[1, 1, x.size()[1]]);
    }
    x.to_kind(Kind::Float).reshape(dims.as_slice())
}

/// The first `m` columns of `w` `[D, H]` as rows `[m, D]`, each scaled to [0, 1], `f32`.
pub(crate) fn scaled_filters(w: &Tensor, m: i64) -> Tensor {
    let f = w.tr().narrow(0, 0, m).to_kind(Kind::Float);
    let lo = f.amin([1], true);
    let hi = f.amax([1], true);
    (f - &lo) / (hi - lo).clamp_min(1e-12)
}

impl Model for Rbm {
    fn name(&self) -> &str {
        "rbm"
    }

    fn var_stores(&self) -> Vec<(&'static str, &VarStore)> {
        let mut v = vec![("model", &self.vs)];
        if !self.state.is_empty() {
            v.push(("state", &self.state));
        }
        v
    }

    fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        let mut v = vec![("model", &mut self.vs)];
        if !self.state.is_empty() {
            v.push(("state", &mut self.state));
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
        Ok(self.step(x, true)?.unwrap_or_default())
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let v = self.flat(x);
        let u = tch::no_grad(|| self.pre_hidden_graph(&v));
        Ok(self.proxy_metrics(&v, &u))
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        tch::no_grad(|| {
            let p0 = self
                .base_b
                .sigmoid()
                .unsqueeze(0)
                .expand([n, self.nv], false);
            let v = self.gibbs(&bernoulli(&p0), self.cfg.sample_steps - 1);
            let pv = self.p_v(&self.sample_h(&v)).to_kind(Kind::Float);
            let mut shape = vec![n];
            shape.extend_from_slice(&self.shape);
            Ok(pv.reshape(shape.as_slice()))
        })
    }

    fn figures(&self, x: &Tensor) -> Result<Vec<Figure>> {
        tch::no_grad(|| {
            let m = self.nh.min(100);
            let filters = scaled_filters(&self.w, m);
            let n = x.size()[0].min(50);
            let v = self.flat(&x.narrow(0, 0, n));
            let r = self.reconstruct(&v);
            let pairs = Tensor::stack(&[v, r], 1).reshape([2 * n, self.nv]);
            Ok(vec![
                Figure {
                    name: "filters".into(),
                    caption: format!(
                        "the first {m} filters (columns of W), each scaled to its own range"
                    ),
                    images: self.images(&filters),
                    per_row: 10,
                },
                Figure {
                    name: "reconstructions".into(),
                    caption: "held-out data (left of each pair) and the mean-field \
                              reconstruction p(v | p(h | v)) (right)"
                        .into(),
                    images: self.images(&pairs),
                    per_row: 10,
                },
            ])
        })
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let neg_f = self.neg_free_energy_f64(x, cfg.data.eval_batch_size);
        let mut out = Vec::new();
        if let Some((log_z, layer)) = self.exact_log_z()? {
            let (mean, se) = gm_eval::importance::mean_and_std_err(&neg_f)?;
            out.push(LogLikelihood {
                kind: LikelihoodKind::Exact,
                method: "enumeration".into(),
                settings: serde_json::json!({
                    "enumerated": layer,
                    "units": match layer { Layer::Hidden => self.nh, Layer::Visible => self.nv },
                    "log_z": log_z,
                }),
                mean: mean - log_z,
                std_err: se,
                n: neg_f.numel() as i64,
            });
        }
        let schedule = match cfg.eval.ais_steps {
            None => Schedule::salakhutdinov_murray(),
            Some(n) => Schedule::linear(n)?,
        };
        let base = format!(
            "base-rate model: training-data visible marginals clamped to [{MARGINAL_EPS}, {}]",
            1.0 - MARGINAL_EPS
        );
        let fwd = self.ais_log_z(cfg.eval.ais_chains, &schedule)?;
        let mut ll = fwd.log_likelihood(&neg_f)?;
        ll.settings["base"] = serde_json::json!(base);
        out.push(ll);
        if !cfg.eval.ais_reverse {
            return Ok(out);
        }
        if let Some(est) = self.reverse_ais_log_z(cfg.eval.ais_chains, &schedule)? {
            let mut ll = est.log_likelihood(&neg_f)?;
            ll.method = "reverse-ais".into();
            ll.settings["base"] = serde_json::json!(base);
            let persistent = self.chains.as_ref().map_or(0, |c| c.size()[c.dim() - 2]);
            ll.settings["note"] = reverse_note(est.chains, persistent, self.cfg.sample_steps);
            ais::note_reverse_shortfall(&mut ll.settings, &fwd, &est);
            out.push(ll);
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
