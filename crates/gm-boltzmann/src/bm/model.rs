use super::config::{BmConfig, PositivePhase};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{
    params_table, parse_params, BuildContext, Figure, LikelihoodKind, LogLikelihood, Metrics, Model,
};
use gm_core::optim::Optimizer;
use gm_core::sampling::exact;
use gm_core::sampling::gibbs::{PairwiseBinary, Units};
use gm_core::{Error, Result};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// The parameters of E(v, h) = −vᵀRv − vᵀWh − hᵀSh − bᵀv − cᵀh, with R `[nv, nv]` and S
/// `[nh, nh]` symmetric with zero diagonal (built from strictly upper-triangular raw
/// matrices, so both hold exactly). Any float kind; differentiable when the raw tensors are.
#[derive(Debug)]
pub struct BmParams {
    /// Visible–visible couplings R (symmetric, zero diagonal).
    pub r: Tensor,
    /// Visible–hidden couplings W.
    pub w: Tensor,
    /// Hidden–hidden couplings S (symmetric, zero diagonal).
    pub s: Tensor,
    /// Visible biases b.
    pub b: Tensor,
    /// Hidden biases c.
    pub c: Tensor,
}

fn symmetric_from_upper(raw: &Tensor) -> Tensor {
    let u = raw.triu(1);
    &u + u.tr()
}

impl BmParams {
    /// From raw parameters: only the strictly upper triangles of `r_raw` and `s_raw` count
    /// (R = U + Uᵀ with U = triu(r_raw, 1)).
    pub fn from_raw(r_raw: &Tensor, w: &Tensor, s_raw: &Tensor, b: &Tensor, c: &Tensor) -> Self {
        BmParams {
            r: symmetric_from_upper(r_raw),
            w: w.shallow_clone(),
            s: symmetric_from_upper(s_raw),
            b: b.shallow_clone(),
            c: c.shallow_clone(),
        }
    }

    /// Visible units.
    pub fn nv(&self) -> i64 {
        self.b.size()[0]
    }

    /// Hidden units.
    pub fn nh(&self) -> i64 {
        self.c.size()[0]
    }

    /// The joint as a pairwise model over x = [v, h]: E = −½xᵀJx − aᵀx with
    /// J = [[2R, W], [Wᵀ, 2S]] and a = [b, c].
    pub fn joint(&self) -> (Tensor, Tensor) {
        let top = Tensor::cat(&[&self.r * 2.0, self.w.shallow_clone()], 1);
        let bottom = Tensor::cat(&[self.w.tr(), &self.s * 2.0], 1);
        (
            Tensor::cat(&[top, bottom], 0),
            Tensor::cat(&[&self.b, &self.c], 0),
        )
    }

    /// −E(v, h) for every pair of rows: v `[B, nv]`, h `[K, nh]` → `[B, K]`.
    pub fn neg_energy_grid(&self, v: &Tensor, h: &Tensor) -> Tensor {
        let kind = v.kind();
        let fv = (v.mm(&self.r) * v).sum_dim_intlist(1, false, kind) + v.mv(&self.b);
        let fh = (h.mm(&self.s) * h).sum_dim_intlist(1, false, kind) + h.mv(&self.c);
        fv.unsqueeze(1) + v.mm(&self.w).mm(&h.tr()) + fh.unsqueeze(0)
    }

    /// −E(x) of joint states x = [v, h] `[N, nv + nh]`, `[N]`.
    pub fn neg_energy(&self, x: &Tensor) -> Tensor {
        let (j, a) = self.joint();
        (x.mm(&j) * x).sum_dim_intlist(1, false, x.kind()) * 0.5 + x.mv(&a)
    }

    /// log Z by enumerating all 2^(nv+nh) states (differentiable; chunked over states).
    pub fn log_z(&self) -> Result<Tensor> {
        let d = self.nv() + self.nh();
        let states = exact::all_states(d, Units::Bernoulli, self.b.kind(), self.b.device())?;
        let chunk = 1i64 << 16;
        let n = states.size()[0];
        let mut parts = Vec::new();
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            parts.push(
                self.neg_energy(&states.narrow(0, start, len))
                    .logsumexp([0], false),
            );
            start += len;
        }
        Ok(Tensor::f_stack(&parts, 0)?.logsumexp([0], false))
    }

    /// log Σ_h exp(−E(v, h)) of visible rows `[B, nv]`, `[B]` (the unnormalised marginal).
    pub fn log_unnormalized_marginal(&self, v: &Tensor) -> Result<Tensor> {
        let h = exact::all_states(self.nh(), Units::Bernoulli, v.kind(), v.device())?;
        Ok(self.neg_energy_grid(v, &h).logsumexp([1], false))
    }

    /// Exact log p(v) `[B]` by enumeration (differentiable).
    pub fn log_marginal(&self, v: &Tensor) -> Result<Tensor> {
        Ok(self.log_unnormalized_marginal(v)? - self.log_z()?)
    }

    /// Exact model moments `E_model[x xᵀ]`, `E_model[x]` by enumerating every joint state.
    pub fn exact_model_moments(&self) -> Result<Moments> {
        let d = self.nv() + self.nh();
        let x = exact::all_states(d, Units::Bernoulli, self.b.kind(), self.b.device())?;
        let lp = self.neg_energy(&x);
        let p = (&lp - lp.logsumexp([0], false)).exp();
        Ok(Moments::weighted(&x, &p))
    }

    /// Exact data moments: x = [v, h] with h from the exact posterior p(h | v) of each row.
    pub fn exact_data_moments(&self, v: &Tensor) -> Result<Moments> {
        let h = exact::all_states(self.nh(), Units::Bernoulli, v.kind(), v.device())?;
        let logits = self.neg_energy_grid(v, &h);
        let q = (&logits - logits.logsumexp([1], true)).exp(); // [B, K]
        let n = v.size()[0] as f64;
        let mean_h = q.mm(&h); // [B, nh]
        let vv = v.tr().mm(v) / n;
        let vh = v.tr().mm(&mean_h) / n;
        let hh = h
            .tr()
            .mm(&(&h * q.sum_dim_intlist(0, false, v.kind()).unsqueeze(1)))
            / n;
        let xx = Tensor::cat(
            &[Tensor::cat(&[&vv, &vh], 1), Tensor::cat(&[vh.tr(), hh], 1)],
            0,
        );
        let x = Tensor::cat(
            &[
                v.mean_dim(0, false, v.kind()),
                mean_h.mean_dim(0, false, v.kind()),
            ],
            0,
        );
        Ok(Moments { xx, x })
    }
}

/// Second and first moments `E[x xᵀ]` `[D, D]` and `E[x]` `[D]` of joint states `x = [v, h]`.
#[derive(Debug)]
pub struct Moments {
    /// E[x xᵀ] (only the off-diagonal entries enter the gradient).
    pub xx: Tensor,
    /// `E[x]`.
    pub x: Tensor,
}

impl Moments {
    /// Plain averages over states (or mean-field values) `[N, D]`; under a factorial
    /// approximation the off-diagonal products of means are the right second moments.
    pub fn of_states(x: &Tensor) -> Self {
        let n = x.size()[0] as f64;
        Moments {
            xx: x.tr().mm(x) / n,
            x: x.mean_dim(0, false, x.kind()),
        }
    }

    /// Weighted averages with probabilities `p` `[N]` summing to one.
    pub fn weighted(x: &Tensor, p: &Tensor) -> Self {
        Moments {
            xx: x.tr().mm(&(x * p.unsqueeze(1))),
            x: p.unsqueeze(0).mm(x).squeeze_dim(0),
        }
    }
}

/// The gradient of the mean log-likelihood with respect to the raw parameters, in the order
/// (b, c, r_raw, s_raw, w) — the order of their names, which is the optimizer's.
///
/// §20.1: ∂/∂W = ⟨v hᵀ⟩_data − ⟨v hᵀ⟩_model, ∂/∂b = ⟨v⟩_data − ⟨v⟩_model, …; for the raw
/// upper triangles of R and S each entry counts twice (R = U + Uᵀ): 2·triu(⟨v vᵀ⟩_data −
/// ⟨v vᵀ⟩_model, 1).
pub fn log_likelihood_gradient(data: &Moments, model: &Moments, nv: i64) -> [Tensor; 5] {
    let d = &data.xx - &model.xx;
    let m = &data.x - &model.x;
    let nh = m.size()[0] - nv;
    [
        m.narrow(0, 0, nv),
        m.narrow(0, nv, nh),
        d.narrow(0, 0, nv).narrow(1, 0, nv).triu(1) * 2.0,
        d.narrow(0, nv, nh).narrow(1, nv, nh).triu(1) * 2.0,
        d.narrow(0, 0, nv).narrow(1, nv, nh),
    ]
}

/// A Boltzmann machine with binary visible and hidden units trained by the two-phase rule of
/// §20.1 (see the module docs).
pub struct Bm {
    cfg: BmConfig,
    shape: Vec<i64>,
    is_image: bool,
    nv: i64,
    vs: VarStore,
    chains_vs: VarStore,
    r_raw: Tensor,
    w: Tensor,
    s_raw: Tensor,
    b: Tensor,
    c: Tensor,
    chains: Tensor,
    opt: Optimizer,
}

/// Builds a Boltzmann machine from a run config (the `bm` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: BmConfig = parse_params("bm", &ctx.cfg.model.params)?;
    Ok(Box::new(Bm::new(cfg, ctx)?))
}

pub(crate) fn require_binary(model: &str, data: &gm_core::data::Dataset) -> Result<()> {
    if !data.binary {
        return Err(Error::config(
            "data.binarize",
            format!("\"none\" (dataset {} is real-valued)", data.name),
            format!("binary data for `{model}`: a binarization scheme such as \"threshold\" or \"dynamic\", or a binary dataset"),
        ));
    }
    Ok(())
}

impl Bm {
    /// A new BM for data shaped like `ctx.data`: couplings N(0, init_scale²), visible biases
    /// the logits of the training means, hidden biases 0, persistent chains uniform.
    pub fn new(cfg: BmConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        require_binary("bm", ctx.data)?;
        let nv: i64 = ctx.data.shape.iter().product();
        let nh = cfg.hidden;
        let device = ctx.device;
        let vs = VarStore::new(device);
        let root = vs.root() / "bm";
        let randn = |shape: &[i64]| Tensor::randn(shape, (Kind::Float, device)) * cfg.init_scale;
        let r_raw = root.var_copy("r", &randn(&[nv, nv]).triu(1));
        let w = root.var_copy("w", &randn(&[nv, nh]));
        let s_raw = root.var_copy("s", &randn(&[nh, nh]).triu(1));
        let mean = ctx
            .data
            .train
            .x
            .reshape([-1, nv])
            .mean_dim(0, false, Kind::Float)
            .clamp(1e-3, 1.0 - 1e-3);
        let b = root.var_copy("b", &mean.logit(None::<f64>).to_device(device));
        let c = root.zeros("c", &[nh]);
        let chains_vs = VarStore::new(device);
        let chains = (chains_vs.root() / "negative").zeros_no_train("x", &[cfg.chains, nv + nh]);
        tch::no_grad(|| {
            let p = Tensor::full([cfg.chains, nv + nh], 0.5, (Kind::Float, device));
            chains
                .shallow_clone()
                .copy_(&gm_core::sampling::gibbs::sample_bernoulli(&p));
        });
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(Bm {
            cfg,
            shape: ctx.data.shape.clone(),
            is_image: ctx.data.is_image,
            nv,
            vs,
            chains_vs,
            r_raw,
            w,
            s_raw,
            b,
            c,
            chains,
            opt,
        })
    }

    /// The current parameters, detached.
    pub fn params(&self) -> BmParams {
        let d = |t: &Tensor| t.detach();
        BmParams::from_raw(
            &d(&self.r_raw),
            &d(&self.w),
            &d(&self.s_raw),
            &d(&self.b),
            &d(&self.c),
        )
    }

    /// The persistent chains of the negative phase `[chains, nv + nh]`.
    pub fn chains(&self) -> &Tensor {
        &self.chains
    }

    /// The positive phase for visible rows `[B, nv]`: joint states [v, h] `[B, nv + nh]`
    /// with h sampled (Gibbs) or its mean-field values.
    pub fn positive_phase(&self, v: &Tensor) -> Result<Tensor> {
        let p = self.params();
        let (j, a) = p.joint();
        let (nv, nh) = (self.nv, p.nh());
        tch::no_grad(|| match self.cfg.positive {
            PositivePhase::Gibbs => {
                let model = PairwiseBinary::new(&j, &a, Units::Bernoulli, 1.0)?;
                let h0 = Tensor::rand([v.size()[0], nh], (v.kind(), v.device()))
                    .lt(0.5)
                    .to_kind(v.kind());
                let mut x = Tensor::cat(&[v.shallow_clone(), h0], 1);
                let sites: Vec<i64> = (nv..nv + nh).collect();
                model.sweeps(&mut x, &sites, self.cfg.positive_steps)?;
                Ok(x)
            }
            PositivePhase::MeanField => {
                let drive = v.mm(&p.w) + p.c.unsqueeze(0); // [B, nh]
                let s2 = &p.s * 2.0;
                let mu = drive.sigmoid();
                for _ in 0..self.cfg.positive_steps {
                    for k in 0..nh {
                        let field = drive.select(1, k) + mu.mv(&s2.select(0, k));
                        mu.select(1, k).copy_(&field.sigmoid());
                    }
                }
                Ok(Tensor::cat(&[v.shallow_clone(), mu], 1))
            }
        })
    }

    /// `sweeps` sequential Gibbs sweeps of the persistent chains.
    pub fn advance_chains(&mut self, sweeps: usize) -> Result<()> {
        let p = self.params();
        let (j, a) = p.joint();
        let model = PairwiseBinary::new(&j, &a, Units::Bernoulli, 1.0)?;
        let all: Vec<i64> = (0..self.nv + p.nh()).collect();
        let mut x = self.chains.shallow_clone();
        model.sweeps(&mut x, &all, sweeps)
    }

    /// The two-phase estimate of the log-likelihood gradient for visible rows `[B, nv]`
    /// (positive phase on the rows, then `negative_sweeps` sweeps of the persistent chains),
    /// in the order of [`log_likelihood_gradient`]; also returns the positive joint states.
    pub fn estimate_gradient(&mut self, v: &Tensor) -> Result<([Tensor; 5], Tensor)> {
        let pos = self.positive_phase(v)?;
        self.advance_chains(self.cfg.negative_sweeps)?;
        let data = Moments::of_states(&pos);
        let model = Moments::of_states(&self.chains);
        Ok((log_likelihood_gradient(&data, &model, self.nv), pos))
    }

    /// The proxy metric: −Σ_i log p(v_i | v_−i, h) with h from the positive phase (a
    /// pseudo-likelihood given the hidden states), per example. Not the likelihood.
    fn proxy(&self, pos: &Tensor) -> Tensor {
        let (j, a) = self.params().joint();
        let v = pos.narrow(1, 0, self.nv);
        let logits =
            (pos.mm(&j.narrow(1, 0, self.nv)) + a.narrow(0, 0, self.nv)).to_kind(Kind::Float);
        (logits.softplus() - &v * &logits)
            .sum_dim_intlist(1, false, Kind::Float)
            .mean(Kind::Float)
    }

    fn exact_feasible(&self) -> bool {
        self.nv + self.cfg.hidden <= self.cfg.exact_max_units
    }

    /// Exact log p(v) `[B]` (f64) by enumeration, when nv + nh ≤ `exact_max_units`.
    pub fn exact_log_prob(&self, v: &Tensor) -> Result<Tensor> {
        if !self.exact_feasible() {
            return Err(Error::config(
                "model.exact_max_units",
                self.cfg.exact_max_units,
                format!(
                    "at least {} units to enumerate this model",
                    self.nv + self.cfg.hidden
                ),
            ));
        }
        let p = self.params();
        let p = BmParams {
            r: p.r.to_kind(Kind::Double),
            w: p.w.to_kind(Kind::Double),
            s: p.s.to_kind(Kind::Double),
            b: p.b.to_kind(Kind::Double),
            c: p.c.to_kind(Kind::Double),
        };
        tch::no_grad(|| {
            let log_z = p.log_z()?;
            let v = v.reshape([-1, self.nv]).to_kind(Kind::Double);
            // Chunks of rows so that rows × 2^nh stays near 2^20 entries.
            let chunk = (1i64 << 20 >> p.nh()).max(1);
            let n = v.size()[0];
            let mut out = Vec::new();
            let mut start = 0;
            while start < n {
                let len = chunk.min(n - start);
                out.push(p.log_unnormalized_marginal(&v.narrow(0, start, len))? - &log_z);
                start += len;
            }
            Ok(Tensor::f_cat(&out, 0)?)
        })
    }

    fn visible_as_data(&self, v: &Tensor) -> Tensor {
        let mut shape = vec![v.size()[0]];
        shape.extend_from_slice(&self.shape);
        v.reshape(shape.as_slice())
    }
}

impl Model for Bm {
    fn name(&self) -> &str {
        "bm"
    }

    gm_core::single_network!(vs, opt, "opt", chains = chains_vs);

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let v = x.reshape([-1, self.nv]).to_kind(Kind::Float);
        let (grad, pos) = self.estimate_gradient(&v)?;
        // The optimizer descends: hand it minus the log-likelihood gradient.
        let descent: Vec<Tensor> = grad.iter().map(|g| -g).collect();
        self.opt.apply_gradients(&descent)?;
        Ok(vec![(
            "pseudo_nll_proxy",
            tch::no_grad(|| self.proxy(&pos)),
        )])
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let v = x.reshape([-1, self.nv]).to_kind(Kind::Float);
        let pos = self.positive_phase(&v)?;
        Ok(vec![(
            "pseudo_nll_proxy",
            tch::no_grad(|| self.proxy(&pos)),
        )])
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        let p = self.params();
        let (j, a) = p.joint();
        let model = PairwiseBinary::new(&j, &a, Units::Bernoulli, 1.0)?;
        let mut x = model.random_states(n);
        let all: Vec<i64> = (0..self.nv + p.nh()).collect();
        model.sweeps(&mut x, &all, self.cfg.sample_sweeps)?;
        Ok(self.visible_as_data(&x.narrow(1, 0, self.nv)))
    }

    fn figures(&self, _x: &Tensor) -> Result<Vec<Figure>> {
        if !self.is_image {
            return Ok(Vec::new());
        }
        let n = self.cfg.chains.min(64);
        let v = self.chains.narrow(0, 0, n).narrow(1, 0, self.nv);
        Ok(vec![Figure {
            name: "persistent-chains".into(),
            caption: format!("visible units of the first {n} persistent (negative-phase) chains"),
            images: self.visible_as_data(&v),
            per_row: 8,
        }])
    }

    fn log_likelihoods(&self, x: &Tensor, _cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        if !self.exact_feasible() {
            tracing::warn!(
                "bm: {} units > model.exact_max_units = {}: no exact log-likelihood (enumeration of 2^units states); no estimate is reported",
                self.nv + self.cfg.hidden,
                self.cfg.exact_max_units
            );
            return Ok(Vec::new());
        }
        let lp = self.exact_log_prob(x)?;
        let n = lp.size()[0];
        if n == 0 {
            return Err(Error::Msg("bm: no example to evaluate".into()));
        }
        let mean = lp.mean(Kind::Double).double_value(&[]);
        let std_err = if n > 1 {
            lp.std(true).double_value(&[]) / (n as f64).sqrt()
        } else {
            0.0
        };
        Ok(vec![LogLikelihood {
            kind: LikelihoodKind::Exact,
            method: "bm-enumeration".into(),
            settings: serde_json::json!({"visible": self.nv, "hidden": self.cfg.hidden, "states": 1u64 << (self.nv + self.cfg.hidden)}),
            mean,
            std_err,
            n,
        }])
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
